/* The in-process session table. See sm.h. */
#include "sm.h"
#include "cluster.h"
#include "modules.h"
#include "preload.h"
#include "server.h"

#include <string.h>

#define SM_SHARDS 64

typedef struct {
    GMutex lock;
    GHashTable *by_bare; /* SmKey -> GPtrArray of MkSession* (refs) */
    /* The latest availability stamp given and bare-JID choice made in
     * this shard: keeps the two strictly ordered (mk_sm_bare_targets). */
    gint64 last_since_us;
    gint64 last_chosen_us;
} SmShard;

struct MkSm {
    SmShard shards[SM_SHARDS];
    gint count;
    MkCluster *cluster; /* NULL: one node, no cost but this test */
};

typedef struct {
    gpointer data;
    GDestroyNotify destroy;
    MkModule *mod; /* reference: @destroy may use the module's data */
} SessionSlot;

/* Per-module state of a session that any thread reads. */
typedef struct {
    MkModule *mod; /* reference, as a slot's */
    guint flags;
    char *string;
} SessionShared;

static void shared_clear(gpointer p)
{
    SessionShared *sh = p;
    g_free(sh->string);
    mk_module_unref(sh->mod);
}

static void slot_free(gpointer p)
{
    SessionSlot *slot = p;
    if (slot->destroy)
        slot->destroy(slot->data);
    mk_module_unref(slot->mod);
    g_free(slot);
}

/* The table's keys: a bare JID with its mk_jid_bare_hash, which picks
 * the shard and is the table's hash, so a lookup hashes no string. */
typedef struct {
    guint hash;
    const char *bare;
} SmKey;

static guint sm_key_hash(gconstpointer p)
{
    return ((const SmKey *)p)->hash;
}

static gboolean sm_key_equal(gconstpointer a, gconstpointer b)
{
    const SmKey *x = a, *y = b;
    return x->hash == y->hash && strcmp(x->bare, y->bare) == 0;
}

static SmShard *shard_of(MkSm *sm, const MkJid *jid)
{
    return &sm->shards[mk_jid_bare_hash(jid) % SM_SHARDS];
}

/* (transfer none) (nullable) @jid's sessions. Under @sh's lock. */
static GPtrArray *shard_lookup(SmShard *sh, const MkJid *jid)
{
    SmKey k = {mk_jid_bare_hash(jid), mk_jid_bare_string(jid)};
    return g_hash_table_lookup(sh->by_bare, &k);
}

/* Takes @list for @jid's bare JID, absent until now. Under the lock. */
static void shard_insert(SmShard *sh, const MkJid *jid, GPtrArray *list)
{
    const char *bare = mk_jid_bare_string(jid);
    gsize len = strlen(bare);
    SmKey *k = g_malloc(sizeof(SmKey) + len + 1);
    char *copy = (char *)(k + 1);
    memcpy(copy, bare, len + 1);
    k->hash = mk_jid_bare_hash(jid);
    k->bare = copy;
    g_hash_table_insert(sh->by_bare, k, list);
}

static void shard_remove(SmShard *sh, const MkJid *jid)
{
    SmKey k = {mk_jid_bare_hash(jid), mk_jid_bare_string(jid)};
    g_hash_table_remove(sh->by_bare, &k);
}

MkSm *mk_sm_new(void)
{
    MkSm *sm = g_new0(MkSm, 1);
    for (guint i = 0; i < SM_SHARDS; i++) {
        g_mutex_init(&sm->shards[i].lock);
        sm->shards[i].by_bare = g_hash_table_new_full(sm_key_hash, sm_key_equal, g_free,
                                                      (GDestroyNotify)g_ptr_array_unref);
    }
    return sm;
}

void mk_sm_free(MkSm *sm)
{
    if (!sm)
        return;
    for (guint i = 0; i < SM_SHARDS; i++) {
        g_hash_table_destroy(sm->shards[i].by_bare);
        g_mutex_clear(&sm->shards[i].lock);
    }
    g_free(sm);
}

MkSession *mk_session_new(MkJid *jid, MkWorker *w, const MkSessionTransport *transport,
                          gpointer data)
{
    /* A process-wide counter, not state: ids only need to be unique. */
    static guint64 next_id;
    MkSession *s = g_new0(MkSession, 1);
    s->ref = 1;
    s->jid = mk_jid_ref(jid);
    s->worker = w;
    s->transport = transport;
    s->transport_data = data;
    s->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    s->last_input_us = g_get_monotonic_time();
    return s;
}

MkSession *mk_session_ref(MkSession *s)
{
    g_return_val_if_fail(s, NULL);
    g_atomic_int_inc(&s->ref);
    return s;
}

void mk_session_unref(MkSession *s)
{
    if (!s || !g_atomic_int_dec_and_test(&s->ref))
        return;
    /* Slots and directed presence are worker-owned and were released when
     * the stream ended (mk_c2s frees them); only leftovers from sessions
     * that never bound land here. */
    if (s->slots)
        g_hash_table_destroy(s->slots);
    if (s->directed)
        g_hash_table_destroy(s->directed);
    if (s->shared)
        g_array_unref(s->shared);
    mk_preloads_free(s->preloads);
    if (s->remote)
        mk_remote_session_free(s->remote);
    mk_caps_record_unref(s->caps);
    if (s->last_presence)
        mk_stanza_unref(s->last_presence);
    mk_jid_unref(s->jid);
    g_free(s);
}

gboolean mk_sm_register_limited(MkSm *sm, MkSession *s, guint max, MkSession **old)
{
    SmShard *sh = shard_of(sm, s->jid);
    *old = NULL;

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, s->jid);
    if (!list) {
        list = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);
        shard_insert(sh, s->jid, list);
    }
    guint same = list->len;
    for (guint i = 0; i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (g_strcmp0(mk_jid_resource(o->jid), mk_jid_resource(s->jid)) == 0) {
            same = i;
            break;
        }
    }
    /* A new resource past the cap is refused; a rebind of an existing
     * full JID replaces it and does not grow the count. */
    if (max && same == list->len && list->len >= max) {
        g_mutex_unlock(&sh->lock);
        return FALSE;
    }
    if (same < list->len) {
        *old = g_ptr_array_steal_index(list, same);
        g_atomic_int_set(&(*old)->bound, 0);
        if (!(*old)->remote)
            g_atomic_int_add(&sm->count, -1);
    }
    g_ptr_array_add(list, mk_session_ref(s));
    g_atomic_int_set(&s->bound, 1);
    g_atomic_int_inc(&sm->count);
    g_mutex_unlock(&sh->lock);
    if (G_UNLIKELY(sm->cluster))
        mk_cluster_session_bound(sm->cluster, s);
    return TRUE;
}

MkSession *mk_sm_register(MkSm *sm, MkSession *s)
{
    MkSession *old = NULL;
    mk_sm_register_limited(sm, s, 0, &old);
    return old;
}

void mk_sm_unregister(MkSm *sm, MkSession *s)
{
    SmShard *sh = shard_of(sm, s->jid);

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, s->jid);
    if (list && g_ptr_array_remove_fast(list, s)) {
        g_atomic_int_set(&s->bound, 0);
        g_atomic_int_add(&sm->count, -1);
        if (list->len == 0)
            shard_remove(sh, s->jid);
    }
    g_mutex_unlock(&sh->lock);
    /* Also when another bind replaced it: the cluster checks the id. */
    if (G_UNLIKELY(sm->cluster) && !s->remote)
        mk_cluster_session_unbound(sm->cluster, s);
}

MkSession *mk_sm_find(MkSm *sm, MkJid *jid)
{
    SmShard *sh = shard_of(sm, jid);
    MkSession *found = NULL;

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, jid);
    for (guint i = 0; list && i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (g_strcmp0(mk_jid_resource(o->jid), mk_jid_resource(jid)) == 0) {
            found = mk_session_ref(o);
            break;
        }
    }
    g_mutex_unlock(&sh->lock);
    return found;
}

GPtrArray *mk_sm_sessions(MkSm *sm, MkJid *bare)
{
    SmShard *sh = shard_of(sm, bare);
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, bare);
    for (guint i = 0; list && i < list->len; i++)
        g_ptr_array_add(out, mk_session_ref(g_ptr_array_index(list, i)));
    g_mutex_unlock(&sh->lock);
    return out;
}

GPtrArray *mk_sm_bare_targets(MkSm *sm, MkJid *bare, gboolean every, gint64 *chosen_us)
{
    SmShard *sh = shard_of(sm, bare);
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);
    int prio[16];
    int *prios = prio;

    g_mutex_lock(&sh->lock);
    /* Not before any availability already stamped: those sessions are in
     * the choice below. */
    gint64 now = MAX(g_get_real_time(), sh->last_since_us);
    sh->last_chosen_us = MAX(sh->last_chosen_us, now);
    *chosen_us = now;
    GPtrArray *list = shard_lookup(sh, bare);
    if (list && list->len > G_N_ELEMENTS(prio))
        prios = g_new(int, list->len);
    for (guint i = 0; list && i < list->len; i++) {
        MkSession *s = g_ptr_array_index(list, i);
        if (s->available && s->priority >= 0) {
            prios[out->len] = s->priority;
            g_ptr_array_add(out, mk_session_ref(s));
        }
    }
    g_mutex_unlock(&sh->lock);
    /* A stand-in of a node without a link takes nothing (see
     * mk_session_is_available); asked outside the lock, as there. */
    int best = G_MININT;
    for (guint i = 0; i < out->len; i++) {
        MkSession *s = g_ptr_array_index(out, i);
        if (G_UNLIKELY(s->remote) && !mk_cluster_reachable(sm->cluster, s->remote->node))
            prios[i] = -1;
        best = MAX(best, prios[i]);
    }
    for (guint i = out->len; i-- > 0;) {
        if (prios[i] < 0 || (!every && prios[i] != best))
            g_ptr_array_remove_index(out, i); /* keeps the order */
    }
    if (prios != prio)
        g_free(prios);
    return out;
}

void mk_sm_set_presence(MkSm *sm, MkSession *s, MkStanza *presence, gboolean available,
                        int priority)
{
    SmShard *sh = shard_of(sm, s->jid);
    MkStanza *old;

    g_mutex_lock(&sh->lock);
    old = s->last_presence;
    s->last_presence = available && presence ? mk_stanza_ref(presence) : NULL;
    if (available && !s->available) {
        /* After every choice already made, even in the same microsecond
         * (or with the clock set back): those choices did not see it. */
        s->available_since_us = MAX(g_get_real_time(), sh->last_chosen_us + 1);
        sh->last_since_us = MAX(sh->last_since_us, s->available_since_us);
    }
    s->available = available;
    s->priority = priority;
    g_mutex_unlock(&sh->lock);
    if (old)
        mk_stanza_unref(old);
    if (G_UNLIKELY(sm->cluster) && g_atomic_int_get(&s->bound))
        mk_cluster_session_changed(sm->cluster, s);
}

gboolean mk_sm_available_since(MkSm *sm, MkSession *s, gint64 since_us)
{
    SmShard *sh = shard_of(sm, s->jid);
    g_mutex_lock(&sh->lock);
    gboolean yes = s->available && s->priority >= 0 && s->available_since_us <= since_us;
    g_mutex_unlock(&sh->lock);
    return yes;
}

guint mk_sm_count(MkSm *sm)
{
    return (guint)g_atomic_int_get(&sm->count);
}

/* Public API (mk-session.h). */

MkJid *mk_session_jid(MkSession *s)
{
    return s->jid;
}

static SmShard *session_shard(MkSession *s)
{
    MkServer *srv = mk_server_get();
    return shard_of(srv->sm, s->jid);
}

int mk_session_priority(MkSession *s)
{
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    int p = s->priority;
    g_mutex_unlock(&sh->lock);
    return p;
}

gboolean mk_session_is_available(MkSession *s)
{
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    gboolean a = s->available;
    g_mutex_unlock(&sh->lock);
    /* A session on a node this one has no link to cannot take anything
     * from here: offline storage must not hand it the messages that
     * would come straight back to it (docs/clustering.md). */
    if (G_UNLIKELY(s->remote) && a)
        a = mk_cluster_reachable(mk_server_get()->sm->cluster, s->remote->node);
    return a;
}

/* @mod's entry in @s->shared, created when @create. Under the shard lock. */
static SessionShared *shared_of(MkSession *s, MkModule *mod, gboolean create)
{
    for (guint i = 0; s->shared && i < s->shared->len; i++) {
        SessionShared *e = &g_array_index(s->shared, SessionShared, i);
        if (e->mod == mod)
            return e;
    }
    if (!create)
        return NULL;
    if (!s->shared) {
        GArray *a = g_array_new(FALSE, TRUE, sizeof(SessionShared));
        g_array_set_clear_func(a, shared_clear);
        g_atomic_pointer_set(&s->shared, a); /* read without the lock first */
    }
    SessionShared e = {mk_module_ref(mod), 0, NULL};
    g_array_append_val(s->shared, e);
    return &g_array_index(s->shared, SessionShared, s->shared->len - 1);
}

/* Public module API (mk-session.h). Any thread. */
void mk_session_set_flags(MkSession *s, MkModule *mod, guint flags, guint mask)
{
    g_return_if_fail(s != NULL && mod != NULL);
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    SessionShared *e = shared_of(s, mod, TRUE);
    guint before = e->flags;
    e->flags = (e->flags & ~mask) | (flags & mask);
    gboolean changed = e->flags != before;
    g_mutex_unlock(&sh->lock);
    MkCluster *cl = mk_server_get()->sm->cluster;
    if (G_UNLIKELY(cl) && changed && g_atomic_int_get(&s->bound))
        mk_cluster_session_changed(cl, s);
}

guint mk_session_get_flags(MkSession *s, MkModule *mod)
{
    g_return_val_if_fail(s != NULL && mod != NULL, 0);
    if (G_UNLIKELY(s->remote))
        return s->remote->flags
                   ? GPOINTER_TO_UINT(g_hash_table_lookup(s->remote->flags, mk_module_name(mod)))
                   : 0;
    if (!g_atomic_pointer_get(&s->shared))
        return 0; /* most sessions of most modules: no lock */
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    SessionShared *e = shared_of(s, mod, FALSE);
    guint flags = e ? e->flags : 0;
    g_mutex_unlock(&sh->lock);
    return flags;
}

void mk_session_set_string(MkSession *s, MkModule *mod, const char *value)
{
    g_return_if_fail(s != NULL && mod != NULL);
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    SessionShared *e = shared_of(s, mod, value != NULL);
    if (e) {
        g_free(e->string);
        e->string = g_strdup(value);
    }
    g_mutex_unlock(&sh->lock);
}

char *mk_session_dup_string(MkSession *s, MkModule *mod)
{
    g_return_val_if_fail(s != NULL && mod != NULL, NULL);
    if (!g_atomic_pointer_get(&s->shared))
        return NULL;
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    SessionShared *e = shared_of(s, mod, FALSE);
    char *value = e ? g_strdup(e->string) : NULL;
    g_mutex_unlock(&sh->lock);
    return value;
}

MkStanza *mk_session_last_presence(MkSession *s)
{
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    if (G_UNLIKELY(s->remote && s->remote->presence && !s->last_presence)) {
        /* A stand-in's presence is parsed when first asked for: most
         * are never asked (probes), and every login would else cost a
         * parse on every other node. */
        g_autoptr(MkXml) xml = mk_xml_parse(s->remote->presence, -1, NULL);
        s->last_presence = xml ? mk_stanza_new(xml, NULL) : NULL;
        g_clear_pointer(&s->remote->presence, g_free);
    }
    MkStanza *p = s->last_presence ? mk_stanza_ref(s->last_presence) : NULL;
    g_mutex_unlock(&sh->lock);
    return p;
}

/* Public module API (mk-session.h). Any thread. */
gboolean mk_session_is_detached(MkSession *s)
{
    g_return_val_if_fail(s != NULL, FALSE);
    return g_atomic_int_get(&s->detached) != 0;
}

/* Public module API (mk-session.h). Any thread. */
gboolean mk_session_is_bound(MkSession *s)
{
    g_return_val_if_fail(s != NULL, FALSE);
    return g_atomic_int_get(&s->bound) != 0;
}

gint64 mk_session_idle_seconds(MkSession *s)
{
    return (g_get_monotonic_time() - s->last_input_us) / G_USEC_PER_SEC;
}

void mk_session_set_slot(MkSession *s, MkModule *mod, gpointer data, GDestroyNotify destroy)
{
    g_return_if_fail(mk_worker_self() == s->worker);
    if (!s->slots)
        s->slots = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, slot_free);
    SessionSlot *slot = g_new0(SessionSlot, 1);
    slot->data = data;
    slot->destroy = destroy;
    slot->mod = mk_module_ref(mod);
    g_hash_table_replace(s->slots, mod, slot);
}

gpointer mk_session_get_slot(MkSession *s, MkModule *mod)
{
    if (G_UNLIKELY(s->remote))
        return NULL; /* another node's session: its slots are there */
    g_return_val_if_fail(mk_worker_self() == s->worker, NULL);
    SessionSlot *slot = s->slots ? g_hash_table_lookup(s->slots, mod) : NULL;
    return slot ? slot->data : NULL;
}

void mk_session_set_preloads(MkSession *s, MkPreloads *preloads)
{
    mk_preloads_free(s->preloads);
    s->preloads = preloads;
}

/* Public module API (mk-session.h). */
gpointer mk_session_take_preload(MkSession *s, MkModule *mod)
{
    g_return_val_if_fail(mk_worker_self() == s->worker, NULL);
    return mk_preloads_take(s->preloads, mod);
}

GPtrArray *mk_session_list(MkJid *bare)
{
    return mk_sm_sessions(mk_server_get()->sm, bare);
}

/* Calls @func on every session of the table, without the stand-ins of
 * other nodes' sessions unless @remote_too. Main thread. */
static void session_foreach(gboolean remote_too, void (*func)(MkSession *s, gpointer user_data),
                            gpointer user_data)
{
    MkSm *sm = mk_server_get()->sm;
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);

    /* Collect first so that @func runs without any shard lock held. */
    for (guint i = 0; i < SM_SHARDS; i++) {
        SmShard *sh = &sm->shards[i];
        GHashTableIter it;
        gpointer v;
        g_mutex_lock(&sh->lock);
        g_hash_table_iter_init(&it, sh->by_bare);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            GPtrArray *list = v;
            for (guint j = 0; j < list->len; j++) {
                MkSession *o = g_ptr_array_index(list, j);
                if (remote_too || !o->remote)
                    g_ptr_array_add(all, mk_session_ref(o));
            }
        }
        g_mutex_unlock(&sh->lock);
    }
    for (guint i = 0; i < all->len; i++)
        func(g_ptr_array_index(all, i), user_data);
}

void mk_session_foreach(void (*func)(MkSession *s, gpointer user_data), gpointer user_data)
{
    session_foreach(FALSE, func, user_data); /* another node's: it sweeps its own */
}

/* Public module API (mk-session.h). Main thread. */
void mk_session_foreach_cluster(void (*func)(MkSession *s, gpointer user_data), gpointer user_data)
{
    session_foreach(TRUE, func, user_data);
}

void mk_session_deliver_local(MkSession *s, MkStanza *st)
{
    mk_session_deliver_cached(s, st, NULL);
}

void mk_session_deliver_cached(MkSession *s, MkStanza *st, MkDomainHooks *dh)
{
    if (!s->transport_data)
        return; /* the stream ended meanwhile */
    MkModules *mods = mk_server_get()->modules;
    MkHookCall call = {.domain = mk_jid_domain(s->jid),
                       .session = s,
                       .stanza = mk_stanza_ref(st),
                       .from = mk_stanza_from(st),
                       .to = mk_stanza_to(st)};
    MkResult r = dh ? mk_hooks_run_list(mk_domain_hooks_for(dh, mods, call.domain)->received, &call)
                    : mk_hooks_run(mods, MK_HOOK_USER_RECEIVE_PACKET, &call);
    if (r == MK_PASS && s->transport_data)
        s->transport->deliver(s, call.stanza);
    mk_hook_call_clear(&call);
}

/* Delivery from any thread: direct on the owner worker, else a mailbox
 * post (many posts share one wake-up). */
typedef struct {
    MkSession *s;
    MkStanza *st;
    char *error;
} SessionJob;

static void session_job_free(gpointer p)
{
    SessionJob *job = p;
    mk_session_unref(job->s);
    if (job->st)
        mk_stanza_unref(job->st);
    g_free(job->error);
    g_free(job);
}

static void deliver_job_run(gpointer p)
{
    SessionJob *job = p;
    mk_session_deliver_local(job->s, job->st);
    session_job_free(job);
}

void mk_session_send(MkSession *s, MkStanza *st)
{
    g_return_if_fail(s && st);
    if (G_UNLIKELY(s->remote)) {
        mk_cluster_forward(mk_server_get()->sm->cluster, s, st);
        return;
    }
    if (mk_worker_self() == s->worker) {
        mk_session_deliver_local(s, st);
        return;
    }
    SessionJob *job = g_new0(SessionJob, 1);
    job->s = mk_session_ref(s);
    job->st = mk_stanza_ref(st);
    mk_worker_post(s->worker, deliver_job_run, job, session_job_free);
}

static void close_job_run(gpointer p)
{
    SessionJob *job = p;
    if (job->s->transport_data)
        job->s->transport->close(job->s, job->error);
    session_job_free(job);
}

void mk_session_close(MkSession *s, const char *stream_error)
{
    if (G_UNLIKELY(s->remote)) {
        mk_cluster_close_remote(mk_server_get()->sm->cluster, s, stream_error);
        return;
    }
    /* Always through the mailbox, even on the owner worker: closing runs
     * hooks and must not happen in the middle of the caller's work. */
    SessionJob *job = g_new0(SessionJob, 1);
    job->s = mk_session_ref(s);
    job->error = g_strdup(stream_error);
    mk_worker_post(s->worker, close_job_run, job, session_job_free);
}

/* ---- cluster stand-ins (sm.h) ----------------------------------------- */

void mk_sm_set_cluster(MkSm *sm, MkCluster *cl)
{
    sm->cluster = cl;
}

MkCluster *mk_sm_get_cluster(MkSm *sm)
{
    return sm->cluster;
}

MkSession *mk_session_new_remote(MkJid *jid, MkRemoteSession *remote, int priority,
                                 gboolean available, gint64 since_us, MkStanza *last_presence)
{
    MkSession *s = mk_session_new(jid, NULL, NULL, NULL);
    s->remote = remote;
    s->priority = priority;
    s->available = available;
    s->available_since_us = since_us; /* the other node's clock */
    s->last_presence = last_presence ? mk_stanza_ref(last_presence) : NULL;
    s->bound = 1;
    return s;
}

void mk_sm_put_remote(MkSm *sm, MkSession *proxy)
{
    SmShard *sh = shard_of(sm, proxy->jid);

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, proxy->jid);
    if (!list) {
        list = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);
        shard_insert(sh, proxy->jid, list);
    }
    for (guint i = 0; i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (o->remote && g_strcmp0(mk_jid_resource(o->jid), mk_jid_resource(proxy->jid)) == 0) {
            g_ptr_array_remove_index_fast(list, i);
            break;
        }
    }
    g_ptr_array_add(list, mk_session_ref(proxy));
    g_mutex_unlock(&sh->lock);
}

void mk_sm_drop_remote(MkSm *sm, MkJid *full, const char *node, guint64 id)
{
    SmShard *sh = shard_of(sm, full);

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, full);
    for (guint i = 0; list && i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (o->remote && g_str_equal(o->remote->node, node) && (!id || o->remote->id == id) &&
            g_strcmp0(mk_jid_resource(o->jid), mk_jid_resource(full)) == 0) {
            g_atomic_int_set(&o->bound, 0);
            g_ptr_array_remove_index_fast(list, i);
            if (list->len == 0)
                shard_remove(sh, full);
            break;
        }
    }
    g_mutex_unlock(&sh->lock);
}

void mk_sm_drop_node(MkSm *sm, const char *node)
{
    for (guint i = 0; i < SM_SHARDS; i++) {
        SmShard *sh = &sm->shards[i];
        GHashTableIter it;
        gpointer v;
        g_mutex_lock(&sh->lock);
        g_hash_table_iter_init(&it, sh->by_bare);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            GPtrArray *list = v;
            for (guint j = list->len; j-- > 0;) {
                MkSession *o = g_ptr_array_index(list, j);
                if (o->remote && (!node || g_str_equal(o->remote->node, node))) {
                    g_atomic_int_set(&o->bound, 0);
                    g_ptr_array_remove_index_fast(list, j);
                }
            }
            if (list->len == 0)
                g_hash_table_iter_remove(&it);
        }
        g_mutex_unlock(&sh->lock);
    }
}

guint mk_sm_prune_node(MkSm *sm, const char *node, GHashTable *keep)
{
    guint n = 0;
    for (guint i = 0; i < SM_SHARDS; i++) {
        SmShard *sh = &sm->shards[i];
        GHashTableIter it;
        gpointer v;
        g_mutex_lock(&sh->lock);
        g_hash_table_iter_init(&it, sh->by_bare);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            GPtrArray *list = v;
            for (guint j = list->len; j-- > 0;) {
                MkSession *o = g_ptr_array_index(list, j);
                if (o->remote && g_str_equal(o->remote->node, node) &&
                    !g_hash_table_contains(keep, &o->remote->id)) {
                    g_atomic_int_set(&o->bound, 0);
                    g_ptr_array_remove_index_fast(list, j);
                    n++;
                }
            }
            if (list->len == 0)
                g_hash_table_iter_remove(&it);
        }
        g_mutex_unlock(&sh->lock);
    }
    return n;
}

MkSession *mk_sm_find_local(MkSm *sm, MkJid *full)
{
    SmShard *sh = shard_of(sm, full);
    MkSession *found = NULL;

    g_mutex_lock(&sh->lock);
    GPtrArray *list = shard_lookup(sh, full);
    for (guint i = 0; list && i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (!o->remote && g_strcmp0(mk_jid_resource(o->jid), mk_jid_resource(full)) == 0) {
            found = mk_session_ref(o);
            break;
        }
    }
    g_mutex_unlock(&sh->lock);
    return found;
}

GPtrArray *mk_sm_local_sessions(MkSm *sm)
{
    GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)mk_session_unref);
    for (guint i = 0; i < SM_SHARDS; i++) {
        SmShard *sh = &sm->shards[i];
        GHashTableIter it;
        gpointer v;
        g_mutex_lock(&sh->lock);
        g_hash_table_iter_init(&it, sh->by_bare);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            GPtrArray *list = v;
            for (guint j = 0; j < list->len; j++) {
                MkSession *o = g_ptr_array_index(list, j);
                if (!o->remote)
                    g_ptr_array_add(all, mk_session_ref(o));
            }
        }
        g_mutex_unlock(&sh->lock);
    }
    return all;
}

gint64 mk_session_available_since_us(MkSession *s)
{
    SmShard *sh = session_shard(s);
    g_mutex_lock(&sh->lock);
    gint64 since = s->available_since_us;
    g_mutex_unlock(&sh->lock);
    return since;
}

char *mk_session_flags_text(MkSession *s)
{
    SmShard *sh = session_shard(s);
    GString *out = g_string_new(NULL);
    g_mutex_lock(&sh->lock);
    for (guint i = 0; s->shared && i < s->shared->len; i++) {
        SessionShared *e = &g_array_index(s->shared, SessionShared, i);
        if (e->flags)
            g_string_append_printf(out, "%s%s=%u", out->len ? "," : "", mk_module_name(e->mod),
                                   e->flags);
    }
    g_mutex_unlock(&sh->lock);
    return g_string_free(out, FALSE);
}
