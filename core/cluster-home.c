/* Homes: a key (a MUC room's JID) lives on one node of the cluster
 * (docs/clustering.md, Rooms). Redis holds the claim (mk:home:KEY -> node,
 * set once by a Lua script, and mk:homes:NODE, the node's keys for the
 * reaper); every node caches what it learned. A stanza for a key homed on
 * another node goes there over the link in a HOMED frame; one for a key
 * whose home is not known yet waits here (in order) for the claim's
 * answer.
 *
 * Threads: mk_cluster_home_take runs on any thread (workers) under the
 * homes lock; claims, retries and frames from peers run on the cluster
 * thread; held stanzas that turn out to be ours are routed again on a
 * worker. */
#include "cluster.h"
#include "hosts.h"
#include "metrics.h"
#include "modules.h"
#include "router.h"
#include "server.h"
#include "sm.h"
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <string.h>

#define HELD_PER_KEY 1000                  /* stanzas one key may hold while its home is claimed */
#define HELD_MAX     100000                /* stanzas all keys may hold */
#define HOLD_US      (10 * G_USEC_PER_SEC) /* a home not found this long: held ones bounce */
#define CACHE_MAX    200000                /* known homes before the cache is emptied */
#define MAX_HOPS     2                     /* a stanza forwarded twice is not forwarded again */

/* KEYS[1] mk:home:KEY; ARGV[1] this node. The key's home: the node that
 * claimed it while that node's heartbeat lives, else this node. */
static const char claim_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and (v == ARGV[1] or redis.call('EXISTS', 'mk:node:' .. v) == 1) then return v end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('SADD', 'mk:homes:' .. ARGV[1], KEYS[1])\n"
    "if v then redis.call('SREM', 'mk:homes:' .. v, KEYS[1]) end\n"
    "return ARGV[1]\n";

/* KEYS[1] mk:homes:NODE; ARGV[1] NODE, ARGV[2] "1": even while its
 * heartbeat exists (this node leaving, or its earlier run). Drops the
 * node's claims so that the next stanza re-homes each key. */
static const char reap_lua[] =
    "if ARGV[2] ~= '1' and redis.call('EXISTS', 'mk:node:' .. ARGV[1]) == 1 then return 0 end\n"
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return 1\n";

typedef struct {
    MkStanza *st;
    guint hops; /* link hops it made before it was held */
} Held;

typedef struct {
    char *node;        /* NULL: not known (a claim is due or in flight) */
    gboolean claiming; /* a claim is in flight */
    gboolean flushing; /* ours: the held stanzas are being routed again */
    GQueue held;       /* Held*, in arrival order */
    gint64 since;      /* monotonic: when the first held stanza came */
} Home;

struct MkHomes {
    MkCluster *cl;
    gint ref;
    GMutex lock;
    GHashTable *homes; /* key -> Home* */
    guint n_held;
    gboolean stopped;
    gpointer m_claims, m_forwarded, m_received, m_dropped; /* metric series */
};

/* The frame being delivered on this thread came over this many hops;
 * and the home whose held stanzas this thread routes again. */
static __thread guint tls_hops;
static __thread Home *tls_flushing;

static void held_free(Held *h)
{
    mk_stanza_unref(h->st);
    g_free(h);
}

static void home_free(gpointer p)
{
    Home *h = p;
    g_free(h->node);
    g_queue_clear_full(&h->held, (GDestroyNotify)held_free);
    g_free(h);
}

static gpointer series(MkMetrics *reg, const char *name, const char *help)
{
    MkMetricFamily *f = mk_metrics_family(reg, name, help, MK_METRIC_COUNTER, NULL, NULL, 0, 1);
    return mk_metrics_series(f, NULL);
}

MkHomes *mk_homes_new(MkCluster *cl, MkServer *srv)
{
    MkHomes *hs = g_new0(MkHomes, 1);
    hs->cl = cl;
    hs->ref = 1;
    g_mutex_init(&hs->lock);
    hs->homes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, home_free);
    MkMetrics *reg = srv->modules ? srv->modules->metrics : NULL;
    if (reg) {
        hs->m_claims = series(reg, "meerkat_cluster_home_claims_total",
                              "Homes of keys (MUC rooms) this node asked Redis for.");
        hs->m_forwarded = series(reg, "meerkat_cluster_home_forwarded_total",
                                 "Stanzas for a key homed on another node sent over its link.");
        hs->m_received = series(reg, "meerkat_cluster_home_received_total",
                                "Stanzas for a key homed here received from another node.");
        hs->m_dropped = series(reg, "meerkat_cluster_home_refused_total",
                               "Stanzas for a key whose home could not be reached or that "
                               "found too many others waiting (bounced with an error).");
    }
    return hs;
}

static MkHomes *homes_ref(MkHomes *hs)
{
    g_atomic_int_inc(&hs->ref);
    return hs;
}

static void homes_unref(MkHomes *hs)
{
    if (!g_atomic_int_dec_and_test(&hs->ref))
        return;
    g_hash_table_destroy(hs->homes);
    g_mutex_clear(&hs->lock);
    g_free(hs);
}

void mk_homes_free(MkHomes *hs)
{
    if (!hs)
        return;
    g_mutex_lock(&hs->lock);
    hs->stopped = TRUE;
    g_hash_table_remove_all(hs->homes);
    hs->n_held = 0;
    g_mutex_unlock(&hs->lock);
    homes_unref(hs);
}

/* ---- sending ------------------------------------------------------------ */

/* Writes @st for @key to @node's link: FALSE when the link is down. */
static gboolean forward(MkHomes *hs, const char *node, const char *key, MkStanza *st, guint hops)
{
    g_autofree char *xml = mk_xml_to_string(mk_stanza_xml(st), NULL);
    char hop[12];
    g_snprintf(hop, sizeof hop, "%u", hops + 1);
    if (!mk_links_send(mk_cluster_links(hs->cl), node, MK_LINK_HOMED, key, hop, xml))
        return FALSE;
    mk_metric_add(hs->m_forwarded, 1);
    return TRUE;
}

static void refuse(MkHomes *hs, MkStanza *st, MkStanzaError cond, const char *why)
{
    mk_metric_add(hs->m_dropped, 1);
    mk_router_bounce(st, cond, why);
}

static void claim_start(MkHomes *hs, const char *key);

/* Under the lock: @st waits for @h's home to be known. */
static void hold(MkHomes *hs, Home *h, MkStanza *st, guint hops)
{
    if (h->held.length >= HELD_PER_KEY || hs->n_held >= HELD_MAX) {
        refuse(hs, st, MK_ERR_RESOURCE_CONSTRAINT, "too many stanzas wait for this room's node");
        return;
    }
    Held *e = g_new0(Held, 1);
    e->st = mk_stanza_ref(st);
    e->hops = hops;
    if (!h->held.length)
        h->since = g_get_monotonic_time();
    g_queue_push_tail(&h->held, e);
    hs->n_held++;
}

/* Under the lock: the cache is full; what is only a cached answer goes
 * (Redis still has it), what holds stanzas or waits for Redis stays. */
static void cache_trim(MkHomes *hs)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, hs->homes);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Home *h = v;
        if (!h->held.length && !h->claiming && !h->flushing && h != tls_flushing)
            g_hash_table_iter_remove(&it);
    }
}

/* Public API (mk-cluster.h). Any thread. */
gboolean mk_cluster_home_take(const char *key, MkStanza *stanza)
{
    MkServer *srv = mk_server_get();
    MkCluster *cl = srv && srv->sm ? mk_sm_get_cluster(srv->sm) : NULL;
    if (!cl || !key || !stanza)
        return TRUE;
    MkHomes *hs = mk_cluster_homes(cl);
    guint hops = tls_hops;
    g_mutex_lock(&hs->lock);
    Home *h = g_hash_table_lookup(hs->homes, key);
    if (hs->stopped || (h && h == tls_flushing)) {
        g_mutex_unlock(&hs->lock);
        return TRUE;
    }
    if (h && h->node && !h->flushing) {
        if (g_str_equal(h->node, mk_cluster_name(cl))) {
            g_mutex_unlock(&hs->lock);
            return TRUE;
        }
        if (hops >= MAX_HOPS) {
            g_mutex_unlock(&hs->lock);
            refuse(hs, stanza, MK_ERR_SERVICE_UNAVAILABLE, "the room's node cannot be found");
            return FALSE;
        }
        /* Under the lock: a flush of held stanzas cannot overtake it. */
        if (forward(hs, h->node, key, stanza, hops)) {
            g_mutex_unlock(&hs->lock);
            return FALSE;
        }
        /* Its node is unreachable: ask Redis again (a dead node's claim
         * is taken over once its heartbeat expired). */
        g_clear_pointer(&h->node, g_free);
    }
    gboolean start = FALSE;
    if (!h) {
        if (g_hash_table_size(hs->homes) >= CACHE_MAX)
            cache_trim(hs);
        h = g_new0(Home, 1);
        g_hash_table_insert(hs->homes, g_strdup(key), h);
    }
    hold(hs, h, stanza, hops);
    if (!h->node && !h->claiming && h->held.length) {
        h->claiming = TRUE;
        start = TRUE;
    }
    g_mutex_unlock(&hs->lock);
    if (start)
        claim_start(hs, key);
    return FALSE;
}

/* Public API (mk-cluster.h). Any thread. */
char *mk_cluster_home_node(const char *key)
{
    MkServer *srv = mk_server_get();
    MkCluster *cl = srv && srv->sm ? mk_sm_get_cluster(srv->sm) : NULL;
    if (!cl || !key)
        return NULL;
    MkHomes *hs = mk_cluster_homes(cl);
    g_mutex_lock(&hs->lock);
    Home *h = g_hash_table_lookup(hs->homes, key);
    char *node = h && h->node ? g_strdup(h->node) : NULL;
    g_mutex_unlock(&hs->lock);
    return node;
}

/* Public API (mk-cluster.h). Any thread. */
gboolean mk_cluster_node_reachable(const char *node)
{
    MkServer *srv = mk_server_get();
    MkCluster *cl = srv && srv->sm ? mk_sm_get_cluster(srv->sm) : NULL;
    if (!cl || !node)
        return cl == NULL;
    return g_str_equal(node, mk_cluster_name(cl)) || mk_cluster_reachable(cl, node);
}

/* ---- held stanzas that are ours ------------------------------------------ */

typedef struct {
    MkHomes *hs;
    char *key;
} Flush;

static void flush_free(gpointer p)
{
    Flush *f = p;
    homes_unref(f->hs);
    g_free(f->key);
    g_free(f);
}

/* On a worker: routes the held stanzas again, in order, until none is
 * left; what comes meanwhile is held behind them. */
static void flush_run(gpointer p)
{
    Flush *f = p;
    MkHomes *hs = f->hs;
    for (;;) {
        g_mutex_lock(&hs->lock);
        Home *h = g_hash_table_lookup(hs->homes, f->key);
        Held *e = h && h->flushing ? g_queue_pop_head(&h->held) : NULL;
        if (!e) {
            if (h)
                h->flushing = FALSE;
            g_mutex_unlock(&hs->lock);
            break;
        }
        hs->n_held--;
        g_mutex_unlock(&hs->lock);
        tls_flushing = h;
        tls_hops = e->hops;
        mk_router_route(e->st, NULL);
        tls_flushing = NULL;
        tls_hops = 0;
        held_free(e);
    }
    flush_free(f);
}

/* ---- claims (cluster thread) ---------------------------------------------- */

typedef struct {
    MkHomes *hs;
    char *key;
} Claim;

static void claim_free(Claim *c)
{
    homes_unref(c->hs);
    g_free(c->key);
    g_free(c);
}

/* Under the lock: the held stanzas of @h go to @node's link in order;
 * FALSE (nothing sent) when the link is down. */
static gboolean send_held(MkHomes *hs, Home *h, const char *key, const char *node)
{
    while (h->held.length) {
        Held *e = g_queue_peek_head(&h->held);
        if (!forward(hs, node, key, e->st, e->hops))
            return FALSE;
        g_queue_pop_head(&h->held);
        hs->n_held--;
        held_free(e);
    }
    return TRUE;
}

static void on_claimed(redisAsyncContext *ac, void *reply, void *data)
{
    Claim *c = data;
    MkHomes *hs = c->hs;
    redisReply *r = reply;
    if (ac->data)
        mk_cluster_reply_seen(hs->cl, r);
    const char *node = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
    const char *self = mk_cluster_name(hs->cl);
    g_mutex_lock(&hs->lock);
    Home *h = hs->stopped ? NULL : g_hash_table_lookup(hs->homes, c->key);
    if (h) {
        h->claiming = FALSE;
        if (node && g_str_equal(node, self)) {
            g_free(h->node);
            h->node = g_strdup(self);
            if (h->held.length) {
                h->flushing = TRUE;
                Flush *f = g_new0(Flush, 1);
                f->hs = homes_ref(hs);
                f->key = g_strdup(c->key);
                mk_worker_post(mk_cluster_worker_for(hs->cl, c->key), flush_run, f, flush_free);
            }
        } else if (node && send_held(hs, h, c->key, node)) {
            g_free(h->node);
            h->node = g_strdup(node);
        }
        /* Else (Redis away, or the home's link not up yet): the tick asks again. */
    }
    g_mutex_unlock(&hs->lock);
    claim_free(c);
}

static gboolean claim_send(gpointer data)
{
    Claim *c = data;
    MkHomes *hs = c->hs;
    mk_metric_add(hs->m_claims, 1);
    if (!mk_cluster_cmd(hs->cl, on_claimed, c, "EVAL %s 1 mk:home:%s %s", claim_lua, c->key,
                        mk_cluster_name(hs->cl))) {
        g_mutex_lock(&hs->lock);
        Home *h = g_hash_table_lookup(hs->homes, c->key);
        if (h)
            h->claiming = FALSE;
        g_mutex_unlock(&hs->lock);
        claim_free(c);
    }
    return G_SOURCE_REMOVE;
}

static void claim_start(MkHomes *hs, const char *key)
{
    Claim *c = g_new0(Claim, 1);
    c->hs = homes_ref(hs);
    c->key = g_strdup(key);
    g_main_context_invoke(mk_cluster_context(hs->cl), claim_send, c);
}

/* Cluster thread, every tick: homes still unknown are asked again; what
 * waited too long bounces. */
void mk_homes_tick(MkHomes *hs)
{
    gint64 now = g_get_monotonic_time();
    g_autoptr(GPtrArray) ask = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) late = g_ptr_array_new_with_free_func((GDestroyNotify)held_free);
    g_mutex_lock(&hs->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, hs->homes);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Home *h = v;
        if (h->node || h->claiming || !h->held.length)
            continue;
        if (now - h->since > HOLD_US) {
            while (h->held.length) {
                g_ptr_array_add(late, g_queue_pop_head(&h->held));
                hs->n_held--;
            }
            continue;
        }
        h->claiming = TRUE;
        g_ptr_array_add(ask, g_strdup(k));
    }
    g_mutex_unlock(&hs->lock);
    for (guint i = 0; i < late->len; i++) {
        Held *e = g_ptr_array_index(late, i);
        refuse(hs, e->st, MK_ERR_REMOTE_SERVER_TIMEOUT, "the room's node cannot be reached");
    }
    for (guint i = 0; i < ask->len; i++) {
        Claim *c = g_new0(Claim, 1);
        c->hs = homes_ref(hs);
        c->key = g_strdup(g_ptr_array_index(ask, i));
        claim_send(c);
    }
}

/* Cluster thread: @node's claims go (it died, left, or is this node's
 * earlier run). */
void mk_homes_reap(MkHomes *hs, const char *node, gboolean self)
{
    mk_cluster_cmd(hs->cl, NULL, NULL, "EVAL %s 1 mk:homes:%s %s %s", reap_lua, node, node,
                   self ? "1" : "0");
}

typedef struct {
    MkHomes *hs;
    char *key;
} Reclaim;

static void on_reclaimed(redisAsyncContext *ac, void *reply, void *data)
{
    Reclaim *c = data;
    MkHomes *hs = c->hs;
    redisReply *r = reply;
    if (ac->data)
        mk_cluster_reply_seen(hs->cl, r);
    const char *self = mk_cluster_name(hs->cl);
    if (r && r->type == REDIS_REPLY_STRING && !g_str_equal(r->str, self)) {
        /* Another node took it while this one was away from Redis. */
        g_warning("cluster: %s is homed on %s now, not here", c->key, r->str);
        g_mutex_lock(&hs->lock);
        Home *h = g_hash_table_lookup(hs->homes, c->key);
        if (h && g_strcmp0(h->node, self) == 0 && !h->flushing) {
            g_free(h->node);
            h->node = g_strdup(r->str);
        }
        g_mutex_unlock(&hs->lock);
    }
    homes_unref(c->hs);
    g_free(c->key);
    g_free(c);
}

/* Cluster thread: Redis is (back) up and this node's leftovers were just
 * reaped (after a lost connection, or a restarted, empty Redis): the
 * homes this node holds are claimed again, in order after the reap on
 * the one command connection; answers about other nodes are forgotten,
 * to be asked again. */
void mk_homes_redis_up(MkHomes *hs)
{
    const char *self = mk_cluster_name(hs->cl);
    g_autoptr(GPtrArray) mine = g_ptr_array_new_with_free_func(g_free);
    g_mutex_lock(&hs->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, hs->homes);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Home *h = v;
        if (h->node && g_str_equal(h->node, self))
            g_ptr_array_add(mine, g_strdup(k));
        else if (h->node && !h->held.length)
            g_hash_table_iter_remove(&it);
    }
    g_mutex_unlock(&hs->lock);
    for (guint i = 0; i < mine->len; i++) {
        Reclaim *c = g_new0(Reclaim, 1);
        c->hs = homes_ref(hs);
        c->key = g_strdup(g_ptr_array_index(mine, i));
        if (!mk_cluster_cmd(hs->cl, on_reclaimed, c, "EVAL %s 1 mk:home:%s %s", claim_lua, c->key,
                            self)) {
            homes_unref(c->hs);
            g_free(c->key);
            g_free(c);
        }
    }
    if (mine->len)
        g_message("cluster: %u homes of this node claimed again", mine->len);
}

/* ---- a node died ---------------------------------------------------------- */

/* On a worker: modules learn that a node went (cluster_node_gone). */
static void gone_run(gpointer p)
{
    MkServer *srv = mk_server_get();
    (void)p;
    g_auto(GStrv) types = mk_hosts_types(srv->hosts);
    for (guint i = 0; types && types[i]; i++) {
        g_auto(GStrv) domains = mk_hosts_domains(srv->hosts, types[i]);
        if (!domains || !domains[0])
            continue;
        MkHookCall call = {.domain = domains[0]};
        mk_hooks_run(srv->modules, MK_HOOK_CLUSTER_NODE_GONE, &call);
        mk_hook_call_clear(&call);
    }
}

/* Cluster thread: what this node knew @node homes is forgotten (the
 * next stanza asks Redis), and modules are told. */
void mk_homes_node_gone(MkHomes *hs, const char *node)
{
    g_mutex_lock(&hs->lock);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, hs->homes);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Home *h = v;
        if (h->node && g_str_equal(h->node, node) && !h->held.length)
            g_hash_table_iter_remove(&it);
        else if (h->node && g_str_equal(h->node, node))
            g_clear_pointer(&h->node, g_free);
    }
    g_mutex_unlock(&hs->lock);
    mk_worker_post(mk_cluster_worker_for(hs->cl, node), gone_run, NULL, NULL);
}

/* ---- frames from peers ------------------------------------------------------ */

typedef struct {
    char *key;
    guint hops;
    MkXml *xml;
} Arrived;

static void arrived_free(gpointer p)
{
    Arrived *a = p;
    g_free(a->key);
    if (a->xml)
        mk_xml_unref(a->xml);
    g_free(a);
}

/* On the key's worker: routed as if it came from here, remembering its
 * hops (mk_cluster_home_take reads them). */
static void arrived_run(gpointer p)
{
    Arrived *a = p;
    g_autoptr(GError) error = NULL;
    g_autoptr(MkStanza) st = mk_stanza_new(a->xml, &error);
    if (st) {
        tls_hops = a->hops;
        mk_router_route(st, NULL);
        tls_hops = 0;
    } else {
        g_warning("cluster: unusable stanza for %s from a peer: %s", a->key, error->message);
    }
    arrived_free(a);
}

/* Cluster thread: KEY NUL HOPS NUL XML. Posted to the key's worker, so
 * that one link's stanzas for one key stay in order. */
void mk_homes_frame(MkHomes *hs, const char *node, const char *data, gsize len)
{
    const char *end = data + len;
    const char *nul1 = memchr(data, 0, len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (gsize)(end - nul1 - 1)) : NULL;
    if (!nul2)
        return;
    g_autoptr(GError) error = NULL;
    MkXml *xml = mk_xml_parse(nul2 + 1, (gssize)(end - nul2 - 1), &error);
    if (!xml) {
        g_warning("cluster: unreadable stanza from %s: %s", node, error->message);
        return;
    }
    mk_metric_add(hs->m_received, 1);
    Arrived *a = g_new0(Arrived, 1);
    a->key = g_strndup(data, (gsize)(nul1 - data));
    a->hops = (guint)g_ascii_strtoull(nul1 + 1, NULL, 10);
    a->xml = xml;
    mk_worker_post(mk_cluster_worker_for(hs->cl, a->key), arrived_run, a, arrived_free);
}
