/* The cluster: membership and the session table in Redis. See cluster.h
 * and docs/clustering.md (the key layout is described there).
 *
 * Everything Redis runs on the cluster thread. Two connections: one for
 * commands, one subscribed to the session channel. While Redis is away
 * nothing is queued: session changes are dropped and the whole local
 * table is written again when Redis is back. */
#include "cluster.h"
#include "cluster-metrics.h"
#include "fanout.h"
#include "c2s-sm.h"
#include "hosts.h"
#include "metrics.h"
#include "modules.h"
#include "router.h"
#include "server.h"
#include "sm.h"
#include "worker.h"
#include <hiredis/adapters/glib.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <string.h>

#define TICK_MS       500
#define HEARTBEAT_TTL 3000                 /* ms: a node silent this long is dead */
#define REAP_GRACE_US (4 * G_USEC_PER_SEC) /* after (re)connecting, before judging peers */
#define RETRY_US      (1 * G_USEC_PER_SEC)
#define STOP_WAIT_US  (2 * G_USEC_PER_SEC)
#define PENDING_MAX   100000 /* replies awaited before session updates are dropped */
#define CHANNEL       "mk:sess"
#define WRITTEN_WAIT  2000                  /* ms a bind waits for Redis at most */
#define DROPPED_KEEP  (30 * G_USEC_PER_SEC) /* ended sessions remembered this long */

/* KEYS[1] mk:s:BARE, KEYS[2] mk:n:NODE; ARGV: resource, "NODE\tID\t",
 * "BARE/RESOURCE", "D\tBARE\tRESOURCE\t". Removes the record only if it
 * is still this session's (another node may have replaced it). */
static const char unbind_lua[] = "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
                                 "if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then\n"
                                 "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                                 "  redis.call('SREM', KEYS[2], ARGV[3])\n"
                                 "  redis.call('PUBLISH', '" CHANNEL "', ARGV[4] .. v)\n"
                                 "  return 1\n"
                                 "end\n"
                                 "return 0\n";

/* KEYS[1] mk:s:BARE, KEYS[2] mk:n:NODE; ARGV: resource, record,
 * "BARE/RESOURCE", event. A bind replaces whatever the resource had, as
 * a bind on one node does: one command (and one reply) instead of three. */
static const char bind_lua[] = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                               "redis.call('SADD', KEYS[2], ARGV[3])\n"
                               "redis.call('PUBLISH', '" CHANNEL "', ARGV[4])\n"
                               "return 1\n";

/* KEYS[1] mk:s:BARE, KEYS[2] mk:n:NODE; ARGV: resource, "NODE\tID\t",
 * "BARE/RESOURCE", record, event. A session's update (presence, flags,
 * rewrite after Redis came back): only while the record is absent or
 * still this session's, never over a newer bind of another node. */
static const char update_lua[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if v and string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])\n"
    "redis.call('SADD', KEYS[2], ARGV[3])\n"
    "redis.call('PUBLISH', '" CHANNEL "', ARGV[5])\n"
    "return 1\n";

/* KEYS[1] mk:n:NODE; ARGV: NODE, "NODE\t", leave ("1": out of mk:nodes),
 * self ("1": even while its heartbeat exists). Removes the node's
 * sessions; returns "BARE\tRESOURCE\tRECORD" of each one removed, so
 * only the first caller gets them (and speaks for them), and "\tLEFT"
 * to the caller that took the node out of mk:nodes. */
static const char reap_lua[] =
    "if ARGV[4] ~= '1' and redis.call('EXISTS', 'mk:node:' .. ARGV[1]) == 1 then\n"
    "  return {}\n"
    "end\n"
    "local out = {}\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local slash = string.find(m, '/', 1, true)\n"
    "  if slash then\n"
    "    local bare = string.sub(m, 1, slash - 1)\n"
    "    local res = string.sub(m, slash + 1)\n"
    "    local v = redis.call('HGET', 'mk:s:' .. bare, res)\n"
    "    if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then\n"
    "      redis.call('HDEL', 'mk:s:' .. bare, res)\n"
    "      redis.call('PUBLISH', '" CHANNEL "', 'D\\t' .. bare .. '\\t' .. res .. '\\t' .. v)\n"
    "      out[#out + 1] = bare .. '\\t' .. res .. '\\t' .. v\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('DEL', 'mk:synced:' .. ARGV[1])\n"
    "if ARGV[3] == '1' and redis.call('SREM', 'mk:nodes', ARGV[1]) == 1 then\n"
    "  out[#out + 1] = '\\tLEFT'\n"
    "end\n"
    "return out\n";

/* Every node and its heartbeat value ('' once expired). */
static const char nodes_lua[] = "local out = {}\n"
                                "for _, n in ipairs(redis.call('SMEMBERS', 'mk:nodes')) do\n"
                                "  out[#out + 1] = n\n"
                                "  out[#out + 1] = redis.call('GET', 'mk:node:' .. n) or ''\n"
                                "end\n"
                                "return out\n";

/* Every session of the nodes other than ARGV[1] (only of node ARGV[2]
 * unless it is ''), and "\tSYNCED\tNODE" for each node whose sessions
 * in Redis are complete (mk:synced:NODE, set after it rewrote them). */
static const char sync_lua[] = "local out = {}\n"
                               "for _, n in ipairs(redis.call('SMEMBERS', 'mk:nodes')) do\n"
                               "  if n ~= ARGV[1] and (ARGV[2] == '' or n == ARGV[2]) then\n"
                               "    if redis.call('EXISTS', 'mk:synced:' .. n) == 1 then\n"
                               "      out[#out + 1] = '\\tSYNCED\\t' .. n\n"
                               "    end\n"
                               "    for _, m in ipairs(redis.call('SMEMBERS', 'mk:n:' .. n)) do\n"
                               "      local slash = string.find(m, '/', 1, true)\n"
                               "      if slash then\n"
                               "        local bare = string.sub(m, 1, slash - 1)\n"
                               "        local res = string.sub(m, slash + 1)\n"
                               "        local v = redis.call('HGET', 'mk:s:' .. bare, res)\n"
                               "        if v and string.sub(v, 1, #n + 1) == n .. '\\t' then\n"
                               "          out[#out + 1] = bare .. '\\t' .. res .. '\\t' .. v\n"
                               "        end\n"
                               "      end\n"
                               "    end\n"
                               "  end\n"
                               "end\n"
                               "return out\n";

typedef struct {
    redisAsyncContext *ac;
    GSource *src;
    gboolean ready; /* connected (and subscribed, for the subscriber) */
} RedisConn;

struct MkCluster {
    MkServer *srv;
    GMutex c2s_lock;  /* a release runs, or c2s goes away: not both */
    MkC2sServer *c2s; /* for releases of resumable sessions; under c2s_lock */
    char *name;
    guint number;
    char *redis_host;
    guint16 redis_port;
    char *redis_password;
    char *advertise;
    GMainContext *ctx;
    GMainLoop *loop;
    GThread *thread;
    MkLinks *links;
    MkHomes *homes; /* homes of keys (MUC rooms), cluster-home.c */
    /* Cluster thread only from here. */
    RedisConn cmd, sub;
    gint64 up_since;      /* monotonic: both connections ready; 0 = not */
    gint64 retry_at;      /* monotonic: next connection attempt */
    gboolean ever_up;     /* the first connection reaps this node's leftovers */
    gboolean down_logged; /* "Redis unreachable" said once per outage */
    gint pending;         /* replies awaited on cmd; atomic (read by the collector) */
    gint redis_ready;     /* atomic: up_since != 0, for the collector */
    GHashTable *peers;    /* node -> GINT_TO_POINTER(1): known alive */
    /* "NODE\tID" of sessions of other nodes that ended -> monotonic time:
     * a Redis read that raced their end does not bring them back. */
    GHashTable *dropped;
    GSource *tick;
    gboolean stopping;
    MkClusterMetrics metrics; /* set at start, then read only */
};

void mk_remote_session_free(MkRemoteSession *r)
{
    if (!r)
        return;
    g_free(r->node);
    if (r->flags)
        g_hash_table_destroy(r->flags);
    g_free(r->presence);
    g_free(r);
}

/* ---- session records --------------------------------------------------- */

/* "NODE\tID\tPRIORITY\tAVAILABLE\tSINCE\tFLAGS\tPRESENCE" of a local
 * session (SINCE: wall clock, µs, of its last unavailable -> available). */
/* Writes @v in decimal at @p; returns the end. The login path builds
 * its strings without printf (formatting was a tenth of a cluster
 * login's instructions). */
static char *put_u64(char *p, guint64 v)
{
    char buf[24];
    int i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(p, buf + i, sizeof buf - (gsize)i);
    return p + (sizeof buf - (gsize)i);
}

static void append_u64(GString *out, guint64 v)
{
    char buf[24];
    gsize n = (gsize)(put_u64(buf, v) - buf);
    g_string_append_len(out, buf, (gssize)n);
}

static void append_i64(GString *out, gint64 v)
{
    if (v < 0) {
        g_string_append_c(out, '-');
        append_u64(out, (guint64)0 - (guint64)v);
    } else {
        append_u64(out, (guint64)v);
    }
}

static char *record_of(MkCluster *cl, MkSession *s)
{
    g_autofree char *flags = mk_session_flags_text(s);
    g_autoptr(MkStanza) last = mk_session_last_presence(s);
    GString *r = g_string_sized_new(128);
    g_string_append(r, cl->name);
    g_string_append_c(r, '\t');
    append_u64(r, s->id);
    g_string_append_c(r, '\t');
    append_i64(r, mk_session_priority(s));
    g_string_append(r, mk_session_is_available(s) ? "\t1\t" : "\t0\t");
    append_i64(r, mk_session_available_since_us(s));
    g_string_append_c(r, '\t');
    g_string_append(r, flags);
    g_string_append_c(r, '\t');
    if (last)
        mk_xml_write(mk_stanza_xml(last), NULL, r);
    return g_string_free(r, FALSE);
}

typedef struct {
    char *node;
    guint64 id;
    int priority;
    gboolean available;
    gint64 since_us;
    char *flags;
    char *presence;
} Record;

static void record_clear(Record *r)
{
    g_free(r->node);
    g_free(r->flags);
    g_free(r->presence);
}

static gboolean record_parse(const char *text, Record *r)
{
    g_auto(GStrv) f = g_strsplit(text, "\t", 7);
    memset(r, 0, sizeof *r);
    if (g_strv_length(f) != 7)
        return FALSE;
    r->node = g_strdup(f[0]);
    r->id = g_ascii_strtoull(f[1], NULL, 10);
    r->priority = atoi(f[2]);
    r->available = g_str_equal(f[3], "1");
    r->since_us = g_ascii_strtoll(f[4], NULL, 10);
    r->flags = g_strdup(f[5]);
    r->presence = g_strdup(f[6]);
    return TRUE;
}

/* The session @id of @node ended (cluster thread). */
static void remember_dropped(MkCluster *cl, const char *node, guint64 id)
{
    gint64 *at = g_new(gint64, 1);
    *at = g_get_monotonic_time();
    g_hash_table_replace(cl->dropped, g_strdup_printf("%s\t%" G_GUINT64_FORMAT, node, id), at);
}

/* A stand-in for the session @bare/@resource that @rec describes. */
static void put_proxy(MkCluster *cl, const char *bare, const char *resource, const Record *rec)
{
    g_autofree char *full = g_strdup_printf("%s/%s", bare, resource);
    g_autoptr(MkJid) jid = mk_jid_new(full, NULL);
    if (!jid)
        return;
    MkRemoteSession *r = g_new0(MkRemoteSession, 1);
    r->node = g_strdup(rec->node);
    r->id = rec->id;
    if (*rec->flags) {
        r->flags = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_auto(GStrv) pairs = g_strsplit(rec->flags, ",", -1);
        for (char **p = pairs; *p; p++) {
            char *eq = strchr(*p, '=');
            if (eq)
                g_hash_table_replace(r->flags, g_strndup(*p, (gsize)(eq - *p)),
                                     GUINT_TO_POINTER((guint)atoi(eq + 1)));
        }
    }
    if (*rec->presence && rec->available)
        r->presence = g_strdup(rec->presence); /* parsed when asked for (sm.c) */
    g_autoptr(MkSession) proxy =
        mk_session_new_remote(jid, r, rec->priority, rec->available, rec->since_us, NULL);
    mk_sm_put_remote(cl->srv->sm, proxy);
    g_debug("cluster: %s on %s (%s)", full, rec->node,
            rec->available ? "available" : "unavailable");
}

/* ---- Redis plumbing (cluster thread) ---------------------------------- */

/* A reply to a command of cmd_send came (NULL: the connection went):
 * one fewer awaited; an error counted. */
static void reply_seen(MkCluster *cl, redisReply *r)
{
    if (g_atomic_int_get(&cl->pending) > 0)
        g_atomic_int_add(&cl->pending, -1);
    if (r && r->type == REDIS_REPLY_ERROR) {
        mk_metric_add(cl->metrics.redis_errors, 1);
        g_debug("cluster: Redis answered an error: %s", r->str);
    }
}

static void on_reply_counted(redisAsyncContext *ac, void *reply, void *data)
{
    MkCluster *cl = ac->data;
    (void)data;
    if (cl)
        reply_seen(cl, reply);
}

static gboolean cmd_vsend(MkCluster *cl, redisCallbackFn *cb, void *priv, const char *fmt,
                          va_list ap)
{
    if (!cl->cmd.ready)
        return FALSE;
    int rc = redisvAsyncCommand(cl->cmd.ac, cb ? cb : on_reply_counted, priv, fmt, ap);
    if (rc == REDIS_OK)
        g_atomic_int_inc(&cl->pending);
    return rc == REDIS_OK;
}

/* Sends the command @argv (@argc strings) on the command connection,
 * written in RESP here rather than by hiredis's printf-like formatting;
 * dropped while Redis is away. Cluster thread. */
static gboolean cmd_argv(MkCluster *cl, redisCallbackFn *cb, void *priv, guint argc,
                         const char *const *argv)
{
    if (!cl->cmd.ready)
        return FALSE;
    /* Sized first, then written with memcpy: a GString append per piece
     * was half of a login's cost on this thread. */
    gsize lens[16];
    g_return_val_if_fail(argc <= G_N_ELEMENTS(lens), FALSE);
    gsize total = 16;
    for (guint i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
        total += lens[i] + 32;
    }
    char stack[4096];
    char *buf = total <= sizeof stack ? stack : g_malloc(total);
    char *p = buf;
    *p++ = '*';
    p = put_u64(p, argc);
    *p++ = '\r';
    *p++ = '\n';
    for (guint i = 0; i < argc; i++) {
        *p++ = '$';
        p = put_u64(p, lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    int rc = redisAsyncFormattedCommand(cl->cmd.ac, cb ? cb : on_reply_counted, priv, buf,
                                        (size_t)(p - buf));
    if (buf != stack)
        g_free(buf);
    if (rc == REDIS_OK)
        g_atomic_int_inc(&cl->pending);
    return rc == REDIS_OK;
}

/* Sends a command on the command connection; dropped while Redis is away. */
static gboolean cmd_send(MkCluster *cl, redisCallbackFn *cb, void *priv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gboolean ok = cmd_vsend(cl, cb, priv, fmt, ap);
    va_end(ap);
    return ok;
}

/* For cluster-home.c (cluster.h). Cluster thread. */
gboolean mk_cluster_cmd(MkCluster *cl, redisCallbackFn *cb, void *priv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gboolean ok = cmd_vsend(cl, cb, priv, fmt, ap);
    va_end(ap);
    return ok;
}

void mk_cluster_reply_seen(MkCluster *cl, void *reply)
{
    reply_seen(cl, reply);
}

static gboolean source_destroy_later(gpointer data)
{
    g_source_destroy(data);
    return G_SOURCE_REMOVE;
}

/* Forgets @c's context. From inside one of its callbacks (@later) the
 * source goes on the next iteration, since hiredis still calls the
 * adapter's cleanup on it; otherwise at once, so that it is never
 * dispatched for a freed context. */
static void conn_drop(RedisConn *c, gboolean later)
{
    c->ac = NULL;
    c->ready = FALSE;
    if (c->src && !later) {
        g_source_destroy(c->src);
        g_source_unref(c->src);
        c->src = NULL;
    }
    if (c->src) {
        GSource *idle = g_idle_source_new();
        g_source_set_callback(idle, source_destroy_later, c->src, (GDestroyNotify)g_source_unref);
        g_source_attach(idle, g_source_get_context(c->src));
        g_source_unref(idle);
        c->src = NULL;
    }
}

/* @c's context is being freed by hiredis (after this callback): forget
 * it, free the other one too, and try again later. */
static void redis_lost(MkCluster *cl, RedisConn *c, const char *why)
{
    conn_drop(c, TRUE);
    if (cl->up_since && !cl->stopping)
        g_warning("cluster: Redis connection lost (%s): local sessions keep working; sessions "
                  "of other nodes are routed from the last known table until it is back",
                  why);
    if (cl->up_since && !cl->stopping)
        mk_metric_add(cl->metrics.redis_errors, 1);
    cl->up_since = 0;
    g_atomic_int_set(&cl->redis_ready, 0);
    RedisConn *o = c == &cl->cmd ? &cl->sub : &cl->cmd;
    if (o->ac) {
        o->ac->data = NULL; /* its callbacks now see no cluster */
        redisAsyncFree(o->ac);
        conn_drop(o, FALSE);
    }
    g_atomic_int_set(&cl->pending, 0);
    cl->retry_at = g_get_monotonic_time() + RETRY_US;
}

static RedisConn *conn_of(MkCluster *cl, const redisAsyncContext *ac)
{
    return ac == cl->cmd.ac ? &cl->cmd : &cl->sub;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    MkCluster *cl = ac->data;
    if (cl)
        redis_lost(cl, conn_of(cl, ac), status == REDIS_OK ? "closed" : ac->errstr);
}

static void register_local_sessions(MkCluster *cl);
static void after_subscribe(MkCluster *cl);
static void on_sub_message(redisAsyncContext *ac, void *reply, void *data);

static void on_connect(const redisAsyncContext *ac, int status)
{
    MkCluster *cl = ac->data;
    if (!cl)
        return;
    if (status != REDIS_OK) {
        mk_metric_add(cl->metrics.redis_errors, 1);
        if (!cl->down_logged)
            g_warning("cluster: cannot reach Redis at %s:%u: %s (retrying)", cl->redis_host,
                      cl->redis_port, ac->errstr);
        cl->down_logged = TRUE;
        redis_lost(cl, conn_of(cl, ac), ac->errstr); /* hiredis frees it after this */
        return;
    }
    redisAsyncContext *w = (redisAsyncContext *)ac;
    if (*cl->redis_password)
        redisAsyncCommand(w, NULL, NULL, "AUTH %s", cl->redis_password);
    if (ac == cl->cmd.ac) {
        cl->cmd.ready = TRUE;
        if (cl->sub.ready)
            after_subscribe(cl);
    } else {
        redisAsyncCommand(w, on_sub_message, cl, "SUBSCRIBE " CHANNEL);
    }
}

static gboolean conn_open(MkCluster *cl, RedisConn *c)
{
    redisAsyncContext *ac = redisAsyncConnect(cl->redis_host, cl->redis_port);
    if (!ac)
        return FALSE;
    if (ac->err) {
        mk_metric_add(cl->metrics.redis_errors, 1);
        if (!cl->down_logged)
            g_warning("cluster: cannot reach Redis at %s:%u: %s (retrying)", cl->redis_host,
                      cl->redis_port, ac->errstr);
        cl->down_logged = TRUE;
        redisAsyncFree(ac);
        return FALSE;
    }
    ac->data = cl;
    c->ac = ac;
    c->src = redis_source_new(ac);
    g_source_attach(c->src, cl->ctx);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return TRUE;
}

static void redis_connect(MkCluster *cl)
{
    if (cl->cmd.ac || cl->sub.ac)
        return;
    if (!conn_open(cl, &cl->cmd)) {
        cl->retry_at = g_get_monotonic_time() + RETRY_US;
        return;
    }
    if (!conn_open(cl, &cl->sub)) {
        cl->cmd.ac->data = NULL;
        redisAsyncFree(cl->cmd.ac);
        conn_drop(&cl->cmd, FALSE);
        cl->retry_at = g_get_monotonic_time() + RETRY_US;
    }
}

/* ---- membership ------------------------------------------------------- */

static void heartbeat(MkCluster *cl)
{
    g_autofree char *value =
        g_strdup_printf("%u\t%s\t%u", cl->number, cl->advertise, mk_links_port(cl->links));
    cmd_send(cl, NULL, NULL, "SET mk:node:%s %s PX %d", cl->name, value, HEARTBEAT_TTL);
    cmd_send(cl, NULL, NULL, "SADD mk:nodes %s", cl->name);
}

typedef struct {
    MkJid *jid;
} GhostJob;

static void ghost_deliver(MkSession *s, MkStanza *st)
{
    (void)s;
    (void)st;
}

static void ghost_close(MkSession *s, const char *err)
{
    (void)s;
    (void)err;
}

static const MkSessionTransport ghost_transport = {ghost_deliver, ghost_close, NULL};

/* On a worker: the unavailable presence a session of a dead node would
 * have sent when its stream ended (c2s_end_session), broadcast through
 * the same hook so that mod_roster tells the contacts. */
static void ghost_run(gpointer p)
{
    GhostJob *g = p;
    MkServer *srv = mk_server_get();
    /* Not in the table: only the hooks below see it. */
    MkSession *s = mk_session_new(g->jid, mk_worker_self(), &ghost_transport, NULL);
    g_autoptr(MkXml) xml = mk_xml_new("presence", "jabber:client");
    mk_xml_set_attr(xml, "type", "unavailable");
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, g->jid, NULL);
    MkHookCall call = {
        .domain = mk_jid_domain(g->jid), .session = s, .stanza = mk_stanza_ref(st), .from = g->jid};
    mk_hooks_run(srv->modules, MK_HOOK_PRESENCE_BROADCAST, &call);
    mk_hook_call_clear(&call);
    /* The account's other resources, wherever they are, see it go too. */
    g_autoptr(MkJid) bare = mk_jid_bare(g->jid);
    g_autoptr(GPtrArray) own = mk_sm_sessions(srv->sm, bare);
    for (guint i = 0; i < own->len; i++) {
        MkSession *o = g_ptr_array_index(own, i);
        if (!mk_session_is_available(o))
            continue;
        g_autoptr(MkStanza) copy = mk_stanza_new_addressed(xml, g->jid, mk_session_jid(o));
        mk_session_send(o, copy);
    }
    g_clear_pointer(&s->slots, g_hash_table_destroy);
    mk_session_unref(s);
    mk_jid_unref(g->jid);
    g_free(g);
}

static void ghost_free(gpointer p)
{
    GhostJob *g = p;
    mk_jid_unref(g->jid);
    g_free(g);
}

static MkWorker *worker_for(MkCluster *cl, const char *bare)
{
    MkWorkers *ws = cl->srv->workers;
    return mk_workers_get(ws, g_str_hash(bare) % mk_workers_count(ws));
}

typedef struct {
    MkCluster *cl;
    char *node;
    gboolean speak; /* send unavailable for what is reaped */
} ReapOp;

static void on_reaped(redisAsyncContext *ac, void *reply, void *data)
{
    ReapOp *op = data;
    redisReply *r = reply;
    MkCluster *cl = op->cl;
    if (ac->data)
        reply_seen(cl, r);
    guint n = 0;
    gboolean left = FALSE;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            if (g_str_equal(e->str, "\tLEFT")) {
                left = TRUE;
                continue;
            }
            g_auto(GStrv) f = g_strsplit(e->str, "\t", 3);
            Record rec;
            if (g_strv_length(f) != 3 || !record_parse(f[2], &rec))
                continue;
            g_autofree char *full = g_strdup_printf("%s/%s", f[0], f[1]);
            MkJid *jid = mk_jid_new(full, NULL);
            remember_dropped(cl, rec.node, rec.id);
            if (jid) {
                mk_sm_drop_remote(cl->srv->sm, jid, rec.node, rec.id);
                if (op->speak && rec.available && !cl->stopping) {
                    GhostJob *g = g_new0(GhostJob, 1);
                    g->jid = jid;
                    mk_worker_post(worker_for(cl, f[0]), ghost_run, g, ghost_free);
                } else {
                    mk_jid_unref(jid);
                }
            }
            record_clear(&rec);
            n++;
        }
    }
    if (left && !g_str_equal(op->node, cl->name)) {
        /* Only the first survivor gets them: one node counts each death. */
        mk_metric_add(cl->metrics.nodes_reaped, 1);
        mk_metric_add(cl->metrics.sessions_reaped, n);
    }
    if (n && !g_str_equal(op->node, cl->name))
        g_message("cluster: node %s is gone: %u of its sessions removed", op->node, n);
    else if (n)
        g_message("cluster: %u sessions of an earlier run of this node removed", n);
    g_free(op->node);
    g_free(op);
}

/* Removes @node's sessions from Redis (a dead peer, or this node's own
 * leftovers); @speak: send unavailable presence on their behalf. */
static void reap(MkCluster *cl, const char *node, gboolean leave, gboolean self, gboolean speak)
{
    ReapOp *op = g_new0(ReapOp, 1);
    op->cl = cl;
    op->node = g_strdup(node);
    op->speak = speak;
    g_autofree char *prefix = g_strdup_printf("%s\t", node);
    if (!cmd_send(cl, on_reaped, op, "EVAL %s 1 mk:n:%s %s %s %s %s", reap_lua, node, node, prefix,
                  leave ? "1" : "0", self ? "1" : "0")) {
        g_free(op->node);
        g_free(op);
    }
    mk_homes_reap(cl->homes, node, self);
}

static void peer_gone(MkCluster *cl, const char *node)
{
    if (!g_hash_table_remove(cl->peers, node))
        return;
    mk_sm_drop_node(cl->srv->sm, node);
    mk_links_peer_gone(cl->links, node);
    mk_homes_node_gone(cl->homes, node);
    g_message("cluster: node %s left", node);
}

static void on_nodes(redisAsyncContext *ac, void *reply, void *data)
{
    (void)data;
    MkCluster *cl = ac->data;
    redisReply *r = reply;
    if (!cl)
        return;
    reply_seen(cl, r);
    if (!r || r->type != REDIS_REPLY_ARRAY || cl->stopping)
        return;
    gint64 now = g_get_monotonic_time();
    g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *node = r->element[i]->str;
        const char *value = r->element[i + 1]->str;
        if (!node || !value || g_str_equal(node, cl->name))
            continue;
        g_hash_table_add(listed, (gpointer)node);
        g_auto(GStrv) f = g_strsplit(value, "\t", 3);
        if (*value && g_strv_length(f) == 3) {
            if (!g_hash_table_contains(cl->peers, node))
                g_message("cluster: node %s at %s:%s", node, f[1], f[2]);
            g_hash_table_replace(cl->peers, g_strdup(node), GINT_TO_POINTER(1));
            mk_links_peer_seen(cl->links, node, f[1], (guint16)atoi(f[2]));
            continue;
        }
        /* Its heartbeat expired. Judge only after this node has been
         * connected long enough for every live node to have renewed its
         * key (a restarted Redis starts empty), and not while its link
         * still works. */
        if (now - cl->up_since < REAP_GRACE_US || mk_links_peer_up(cl->links, node))
            continue;
        reap(cl, node, TRUE, FALSE, TRUE);
        peer_gone(cl, node);
    }
    /* Nodes that left (or were removed by another survivor). A restarted
     * Redis lists none until each has renewed its heartbeat, and a node
     * that leaves closes its links: neither a fresh table nor a working
     * link is a departure. */
    GHashTableIter it;
    gpointer k;
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
    gboolean settled = now - cl->up_since >= REAP_GRACE_US;
    g_hash_table_iter_init(&it, cl->peers);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(listed, k) && settled && !mk_links_peer_up(cl->links, k))
            g_ptr_array_add(gone, g_strdup(k));
    for (guint i = 0; i < gone->len; i++)
        peer_gone(cl, g_ptr_array_index(gone, i));
}

static gboolean on_tick(gpointer data)
{
    MkCluster *cl = data;
    if (cl->stopping)
        return G_SOURCE_CONTINUE;
    GHashTableIter it;
    gpointer v;
    gint64 now = g_get_monotonic_time();
    g_hash_table_iter_init(&it, cl->dropped);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (*(gint64 *)v < now - DROPPED_KEEP)
            g_hash_table_iter_remove(&it);
    if (!cl->cmd.ac && !cl->sub.ac && g_get_monotonic_time() >= cl->retry_at)
        redis_connect(cl);
    if (!cl->up_since)
        return G_SOURCE_CONTINUE;
    heartbeat(cl);
    cmd_send(cl, on_nodes, NULL, "EVAL %s 0", nodes_lua);
    mk_homes_tick(cl->homes);
    return G_SOURCE_CONTINUE;
}

/* ---- session table in Redis ------------------------------------------- */

/* "NODE\tID\t", what a session's record in Redis starts with when it
 * is this node's session @id. Caller frees. */
static GString *session_prefix(MkCluster *cl, guint64 id)
{
    GString *prefix = g_string_new(cl->name);
    g_string_append_c(prefix, '\t');
    append_u64(prefix, id);
    g_string_append_c(prefix, '\t');
    return prefix;
}

/* A bind (@fresh: it replaces whatever the resource had, as a bind on
 * one node does) or an update of a session of this node. */
static void session_write(MkCluster *cl, const char *bare, const char *resource, guint64 id,
                          const char *record, gboolean fresh)
{
    if (g_atomic_int_get(&cl->pending) > PENDING_MAX) {
        /* Redis is not keeping up: bounded; the next reconnect rewrites all */
        mk_metric_add(cl->metrics.updates_dropped, 1);
        return;
    }
    g_autofree char *ev = g_strconcat("S\t", bare, "\t", resource, "\t", record, NULL);
    g_autofree char *key = g_strconcat("mk:s:", bare, NULL);
    g_autofree char *set = g_strconcat("mk:n:", cl->name, NULL);
    g_autofree char *member = g_strconcat(bare, "/", resource, NULL);
    if (fresh) {
        const char *const argv[] = {"EVAL", bind_lua, "2", key, set, resource, record, member, ev};
        cmd_argv(cl, NULL, NULL, G_N_ELEMENTS(argv), argv);
        return;
    }
    GString *prefix = session_prefix(cl, id);
    const char *const argv[] = {"EVAL",   update_lua,  "2",    key,    set,
                                resource, prefix->str, member, record, ev};
    cmd_argv(cl, NULL, NULL, G_N_ELEMENTS(argv), argv);
    g_string_free(prefix, TRUE);
}

static void session_remove(MkCluster *cl, const char *bare, const char *resource, guint64 id)
{
    g_autofree char *key = g_strconcat("mk:s:", bare, NULL);
    g_autofree char *set = g_strconcat("mk:n:", cl->name, NULL);
    g_autofree char *member = g_strconcat(bare, "/", resource, NULL);
    g_autofree char *ev = g_strconcat("D\t", bare, "\t", resource, "\t", NULL);
    GString *prefix = session_prefix(cl, id);
    const char *const argv[] = {"EVAL",   unbind_lua,  "2",    key, set,
                                resource, prefix->str, member, ev};
    cmd_argv(cl, NULL, NULL, G_N_ELEMENTS(argv), argv);
    g_string_free(prefix, TRUE);
}

static void register_local_sessions(MkCluster *cl)
{
    g_autoptr(GPtrArray) all = mk_sm_local_sessions(cl->srv->sm);
    for (guint i = 0; i < all->len; i++) {
        MkSession *s = g_ptr_array_index(all, i);
        g_autofree char *rec = record_of(cl, s);
        session_write(cl, mk_jid_bare_string(mk_session_jid(s)), mk_jid_resource(mk_session_jid(s)),
                      s->id, rec, FALSE);
    }
    if (all->len)
        g_message("cluster: %u local sessions written to Redis", all->len);
}

/* The sessions of every other node (@data NULL: after connecting) or of
 * node @data (it rewrote its sessions after Redis came back). The
 * stand-ins of a node whose sessions in Redis are complete (all of
 * them after an R event; those marked SYNCED in a full read) and that
 * are not in the answer are stale: they go. A node not marked is still
 * rewriting; its R event comes later (we are subscribed already). */
static void on_sync(redisAsyncContext *ac, void *reply, void *data)
{
    g_autofree char *only = data;
    MkCluster *cl = ac->data;
    redisReply *r = reply;
    if (!cl)
        return;
    reply_seen(cl, r);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    /* node -> set of session ids (guint64*) */
    g_autoptr(GHashTable) keep =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
    g_autoptr(GPtrArray) synced = g_ptr_array_new_with_free_func(g_free);
    if (only)
        g_ptr_array_add(synced, g_strdup(only));
    guint n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        const char *text = r->element[i]->str;
        if (g_str_has_prefix(text, "\tSYNCED\t")) {
            if (!only)
                g_ptr_array_add(synced, g_strdup(text + strlen("\tSYNCED\t")));
            continue;
        }
        g_auto(GStrv) f = g_strsplit(text, "\t", 3);
        Record rec;
        if (g_strv_length(f) == 3 && record_parse(f[2], &rec)) {
            put_proxy(cl, f[0], f[1], &rec);
            GHashTable *ids = g_hash_table_lookup(keep, rec.node);
            if (!ids) {
                ids = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
                g_hash_table_insert(keep, g_strdup(rec.node), ids);
            }
            guint64 *id = g_new(guint64, 1);
            *id = rec.id;
            g_hash_table_add(ids, id);
            record_clear(&rec);
            n++;
        }
    }
    g_autoptr(GHashTable) none = g_hash_table_new(g_int64_hash, g_int64_equal);
    guint dropped = 0;
    for (guint i = 0; i < synced->len; i++) {
        const char *node = g_ptr_array_index(synced, i);
        GHashTable *ids = g_hash_table_lookup(keep, node);
        dropped += mk_sm_prune_node(cl->srv->sm, node, ids ? ids : none);
    }
    if (only)
        g_message("cluster: node %s rewrote its %u sessions (%u stale ones dropped)", only, n,
                  dropped);
    else
        g_message("cluster: %u sessions of other nodes known (%u stale ones dropped)", n, dropped);
}

/* Both connections are up: announce, clean up, write, read. */
static void after_subscribe(MkCluster *cl)
{
    cl->up_since = g_get_monotonic_time();
    g_atomic_int_set(&cl->redis_ready, 1);
    if (cl->ever_up)
        mk_metric_add(cl->metrics.redis_reconnects, 1);
    if (cl->down_logged || cl->ever_up)
        g_message("cluster: Redis at %s:%u reachable again", cl->redis_host, cl->redis_port);
    else
        g_message("cluster: joined as %s (node %u), links on %s:%u", cl->name, cl->number,
                  cl->advertise, mk_links_port(cl->links));
    cl->down_logged = FALSE;
    heartbeat(cl);
    /* Leftovers of this node: from a crash before anyone reaped them
     * (then contacts are told they went), or from this run while Redis
     * was away (then the live ones are written again right after). */
    /* Not complete until rewritten (the reap removes the mark too). */
    reap(cl, cl->name, FALSE, TRUE, !cl->ever_up);
    cl->ever_up = TRUE;
    register_local_sessions(cl);
    mk_homes_redis_up(cl->homes);
    cmd_send(cl, NULL, NULL, "SET mk:synced:%s 1", cl->name);
    /* After the writes (one connection keeps the order): the others
     * replace their stand-ins of this node with what is in Redis now,
     * forgetting sessions that ended while Redis was away. */
    cmd_send(cl, NULL, NULL, "PUBLISH " CHANNEL " R\t%s", cl->name);
    cmd_send(cl, on_sync, NULL, "EVAL %s 0 %s %s", sync_lua, cl->name, ""); /* "": every node */
}

/* Whether the session event @msg ("S|D\tBARE\tRESOURCE\tNODE\t...")
 * is about a session of this node. */
static gboolean own_event(MkCluster *cl, const char *msg)
{
    const char *p = msg;
    for (int tabs = 0; tabs < 3; tabs++) {
        p = strchr(p, '\t');
        if (!p)
            return FALSE;
        p++;
    }
    gsize n = strlen(cl->name);
    return strncmp(p, cl->name, n) == 0 && p[n] == '\t';
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *data)
{
    MkCluster *cl = data;
    redisReply *r = reply;
    (void)ac;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    const char *kind = r->element[0]->str;
    if (g_strcmp0(kind, "subscribe") == 0) {
        cl->sub.ready = TRUE;
        if (cl->cmd.ready)
            after_subscribe(cl);
        return;
    }
    if (g_strcmp0(kind, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    /* "R \t NODE": the node rewrote all its sessions. */
    const char *msg = r->element[2]->str;
    if (msg[0] == 'R' && msg[1] == '\t') {
        const char *node = msg + 2;
        if (!g_str_equal(node, cl->name))
            cmd_send(cl, on_sync, g_strdup(node), "EVAL %s 0 %s %s", sync_lua, cl->name, node);
        return;
    }
    /* "S|D \t BARE \t RESOURCE \t RECORD", the record starting with its
     * node's name: this node's own events (two per login) come back
     * too and are skipped before anything is split or allocated. */
    if (own_event(cl, msg))
        return;
    g_auto(GStrv) f = g_strsplit(msg, "\t", 4);
    Record rec;
    if (g_strv_length(f) != 4 || !record_parse(f[3], &rec))
        return;
    if (!g_str_equal(rec.node, cl->name)) {
        if (g_str_equal(f[0], "S")) {
            put_proxy(cl, f[1], f[2], &rec);
        } else {
            g_autofree char *full = g_strdup_printf("%s/%s", f[1], f[2]);
            g_autoptr(MkJid) jid = mk_jid_new(full, NULL);
            if (jid)
                mk_sm_drop_remote(cl->srv->sm, jid, rec.node, rec.id);
            remember_dropped(cl, rec.node, rec.id);
            g_debug("cluster: %s on %s ended", full, rec.node);
        }
    }
    record_clear(&rec);
}

/* Notifications from the session table, carried to the cluster thread. */
typedef struct {
    MkCluster *cl;
    gboolean remove;
    gboolean fresh; /* a bind */
    char *bare;
    char *resource;
    char *record;
    guint64 id;
} SessionEvent;

static void session_event_free(gpointer p)
{
    SessionEvent *ev = p;
    g_free(ev->bare);
    g_free(ev->resource);
    g_free(ev->record);
    g_free(ev);
}

static gboolean session_event_run(gpointer p)
{
    SessionEvent *ev = p;
    if (ev->remove)
        session_remove(ev->cl, ev->bare, ev->resource, ev->id);
    else
        session_write(ev->cl, ev->bare, ev->resource, ev->id, ev->record, ev->fresh);
    return G_SOURCE_REMOVE;
}

static void session_event(MkCluster *cl, MkSession *s, gboolean remove, gboolean fresh)
{
    SessionEvent *ev = g_new0(SessionEvent, 1);
    ev->cl = cl;
    ev->remove = remove;
    ev->fresh = fresh;
    ev->bare = g_strdup(mk_jid_bare_string(mk_session_jid(s)));
    ev->resource = g_strdup(mk_jid_resource(mk_session_jid(s)));
    ev->id = s->id;
    if (!remove)
        ev->record = record_of(cl, s);
    /* In order from one thread: invoke's sources of one priority run
     * in the order they were added. */
    g_main_context_invoke_full(cl->ctx, G_PRIORITY_DEFAULT, session_event_run, ev,
                               session_event_free);
}

void mk_cluster_session_bound(MkCluster *cl, MkSession *s)
{
    session_event(cl, s, FALSE, TRUE);
}

void mk_cluster_session_changed(MkCluster *cl, MkSession *s)
{
    session_event(cl, s, FALSE, FALSE);
}

void mk_cluster_session_unbound(MkCluster *cl, MkSession *s)
{
    session_event(cl, s, TRUE, FALSE);
}

/* ---- stanzas over links ------------------------------------------------ */

static void forward_buf_free(gpointer p)
{
    g_string_free(p, TRUE);
}

/* A worker's buffer for the stanzas it forwards (mk_cluster_forward). */
static GPrivate forward_buf = G_PRIVATE_INIT(forward_buf_free);

void mk_cluster_forward(MkCluster *cl, MkSession *proxy, MkStanza *st)
{
    gboolean sent = FALSE;
    if (cl && mk_stanza_kind(st) != MK_STANZA_OTHER) {
        /* Serialised once, as the recipient's stream gets it: its node
         * writes these bytes out without parsing or serialising again
         * (a fan-out copy's shared bytes are reused here too). */
        GString *out = g_private_get(&forward_buf);
        if (G_UNLIKELY(!out)) {
            out = g_string_sized_new(1024);
            g_private_set(&forward_buf, out);
        }
        g_string_truncate(out, 0);
        MkWire *wire = mk_stanza_wire(st);
        if (wire)
            mk_wire_write(wire, mk_stanza_to(st), out);
        else
            mk_xml_write(mk_stanza_xml(st), "jabber:client", out);
        MkJid *from = mk_stanza_from(st), *to = mk_stanza_to(st);
        sent = mk_links_send_wire(
            cl->links, proxy->remote->node, mk_jid_string(mk_session_jid(proxy)),
            from ? mk_jid_string(from) : NULL, to ? mk_jid_string(to) : NULL, out->str, out->len);
        if (G_UNLIKELY(out->allocated_len > 64 * 1024))
            g_private_replace(&forward_buf, g_string_sized_new(1024));
    } else if (cl) {
        g_autofree char *xml = mk_xml_to_string(mk_stanza_xml(st), NULL);
        g_autofree char *id = g_strdup_printf("%" G_GUINT64_FORMAT, proxy->remote->id);
        sent = mk_links_send(cl->links, proxy->remote->node, MK_LINK_STANZA,
                             mk_jid_string(mk_session_jid(proxy)), id, xml);
    }
    if (sent) {
        mk_metric_add(cl->metrics.link_sent, 1);
        return;
    }
    if (cl)
        mk_metric_add(cl->metrics.link_unreachable, 1);
    g_debug("cluster: no link to %s for %s: handled as a gone session", proxy->remote->node,
            mk_jid_string(mk_session_jid(proxy)));
    mk_router_session_gone(st);
}

gboolean mk_cluster_reachable(MkCluster *cl, const char *node)
{
    return cl && mk_links_peer_up(cl->links, node);
}

void mk_cluster_close_remote(MkCluster *cl, MkSession *proxy, const char *stream_error)
{
    g_autofree char *id = g_strdup_printf("%" G_GUINT64_FORMAT, proxy->remote->id);
    if (cl)
        mk_links_send(cl->links, proxy->remote->node, MK_LINK_CLOSE,
                      mk_jid_string(mk_session_jid(proxy)), id, stream_error ? stream_error : "");
}

typedef struct {
    guint8 type;
    char *target;
    guint64 id;
    char *rest;   /* CLOSE: the stream error */
    MkXml *xml;   /* STANZA */
    MkStanza *st; /* WIRE */
} LinkJob;

static void link_job_free(gpointer p)
{
    LinkJob *job = p;
    g_free(job->target);
    g_free(job->rest);
    if (job->xml)
        mk_xml_unref(job->xml);
    mk_stanza_unref(job->st);
    g_free(job);
}

/* On a worker: a stanza or close request for one of this node's sessions. */
/* A message from a peer for a session that is no longer here: it may
 * have moved to another node (XEP-0198 resumption, docs/clustering.md)
 * while the sender still pointed at this one. Like a message that found
 * no session, it is looked up in Redis first and routed again (once, no
 * second archive row), so it reaches the session where it lives now;
 * only then offline. TRUE when the look-up took it. Worker. */
static gboolean recheck_gone(MkStanza *st)
{
    const char *type = mk_stanza_type(st);
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE || g_strcmp0(type, "error") == 0 ||
        g_strcmp0(type, "groupchat") == 0)
        return FALSE;
    return mk_cluster_offline_recheck(mk_sm_get_cluster(mk_server_get()->sm), st);
}

static void link_job_run(gpointer p)
{
    LinkJob *job = p;
    MkServer *srv = mk_server_get();
    g_autoptr(MkJid) target = mk_jid_new(job->target, NULL);
    g_autoptr(MkSession) s = target ? mk_sm_find_local(srv->sm, target) : NULL;
    if (job->type == MK_LINK_CLOSE) {
        if (s && s->id == job->id)
            mk_session_close(s, *job->rest ? job->rest : NULL);
    } else {
        g_autoptr(GError) error = NULL;
        g_autoptr(MkStanza) st = job->st ? mk_stanza_ref(job->st) : mk_stanza_new(job->xml, &error);
        if (!st)
            g_warning("cluster: unreadable stanza from a peer: %s", error ? error->message : "?");
        else if (s)
            mk_session_send(s, st);
        else if (!recheck_gone(st))
            mk_router_session_gone(st);
    }
    link_job_free(job);
}

/* One worker per account: what one peer sends to one account stays in
 * order (the mailbox is FIFO). */
static void link_job_post(MkCluster *cl, LinkJob *job)
{
    const char *slash = strchr(job->target, '/');
    g_autofree char *bare =
        slash ? g_strndup(job->target, (gsize)(slash - job->target)) : g_strdup(job->target);
    mk_worker_post(worker_for(cl, bare), link_job_run, job, link_job_free);
}

void mk_cluster_link_stanza(MkCluster *cl, const char *target, guint64 id, MkXml *stanza)
{
    /* The usual case in one hop: straight into the session's worker's
     * mailbox (the cluster thread reads a link in order, and a session's
     * mailbox is FIFO, so per-session order holds). */
    mk_metric_add(cl->metrics.link_received, 1);
    g_autoptr(MkJid) jid = mk_jid_new(target, NULL);
    g_autoptr(MkSession) s = jid ? mk_sm_find_local(cl->srv->sm, jid) : NULL;
    if (s) {
        g_autoptr(GError) error = NULL;
        g_autoptr(MkStanza) st = mk_stanza_new(stanza, &error);
        if (st)
            mk_session_send(s, st);
        else
            g_warning("cluster: unusable stanza from a peer: %s", error->message);
        return;
    }
    /* For a session moving here from another node (cluster-resume.c)? */
    if (G_UNLIKELY(mk_cluster_resume_hold(cl, target, stanza)))
        return;
    LinkJob *job = g_new0(LinkJob, 1);
    job->type = MK_LINK_STANZA;
    job->target = g_strdup(target);
    job->id = id;
    job->xml = mk_xml_ref(stanza);
    link_job_post(cl, job);
}

/* See cluster.h. The stanza is made from the frame's bytes and
 * addresses: no parse here, and its recipient's stream writes the bytes
 * as they came (mk_stanza_new_whole_wire). */
void mk_cluster_link_wire(MkCluster *cl, const char *target, const char *from, const char *to,
                          const char *xml, gsize xml_len)
{
    mk_metric_add(cl->metrics.link_received, 1);
    g_autoptr(MkJid) jid = mk_jid_new(target, NULL);
    g_autoptr(MkJid) fj = *from ? mk_jid_new(from, NULL) : NULL;
    /* Usually the stanza is for the target itself: one parse for both. */
    g_autoptr(MkJid) tj = !*to                             ? NULL
                          : jid && strcmp(to, target) == 0 ? mk_jid_ref(jid)
                                                           : mk_jid_new(to, NULL);
    if (!jid || (*from && !fj) || (*to && !tj)) {
        g_warning("cluster: unusable addresses from a peer (%s, %s, %s)", target, from, to);
        return;
    }
    g_autoptr(MkWire) wire = mk_wire_new_whole(xml, xml_len);
    g_autoptr(MkStanza) st = mk_stanza_new_whole_wire(wire, fj, tj);
    g_autoptr(MkSession) s = mk_sm_find_local(cl->srv->sm, jid);
    if (s) {
        mk_session_send(s, st);
        return;
    }
    /* For a session moving here from another node (cluster-resume.c)? */
    if (G_UNLIKELY(mk_cluster_resume_hold(cl, target, mk_stanza_xml(st))))
        return;
    LinkJob *job = g_new0(LinkJob, 1);
    job->type = MK_LINK_WIRE;
    job->target = g_strdup(target);
    job->st = g_steal_pointer(&st);
    link_job_post(cl, job);
}

void mk_cluster_set_c2s(MkCluster *cl, MkC2sServer *cs)
{
    if (!cl)
        return;
    g_mutex_lock(&cl->c2s_lock);
    cl->c2s = cs;
    g_mutex_unlock(&cl->c2s_lock);
}

void mk_cluster_resumed_elsewhere(MkCluster *cl, const char *previd, const char *bare, guint32 h)
{
    const char *tilde = previd && bare ? strchr(previd, '~') : NULL;
    if (!cl || !tilde)
        return;
    g_autofree char *node = g_strndup(previd, (gsize)(tilde - previd));
    if (g_str_equal(node, cl->name))
        return;
    g_autofree char *hs = g_strdup_printf("%u", h);
    if (!mk_links_send(cl->links, node, MK_LINK_RELEASE, previd, bare, hs))
        g_debug("cluster: %s resumed %s of node %s, which is unreachable", bare, previd, node);
}

/* See cluster.h. Cluster thread. */
void mk_cluster_link_refused(MkCluster *cl, int reason)
{
    if (reason > 0 && reason < (int)G_N_ELEMENTS(cl->metrics.link_refused))
        mk_metric_add(cl->metrics.link_refused[reason], 1);
}

void mk_cluster_link_frame(MkCluster *cl, const char *node, guint8 type, const char *data,
                           gsize len)
{
    if (type == MK_LINK_HOMED) {
        mk_homes_frame(cl->homes, node, data, len);
        return;
    }
    if (type >= MK_LINK_RESUME_ASK && type <= MK_LINK_RESUME_DONE) {
        g_mutex_lock(&cl->c2s_lock);
        if (cl->c2s)
            mk_cluster_resume_frame(cl, cl->c2s, node, type, data, len);
        g_mutex_unlock(&cl->c2s_lock);
        return;
    }
    if (type != MK_LINK_CLOSE && type != MK_LINK_RELEASE)
        return;
    const char *end = data + len;
    const char *nul1 = memchr(data, 0, len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (gsize)(end - nul1 - 1)) : NULL;
    if (!nul2)
        return;
    if (type == MK_LINK_RELEASE) {
        g_autofree char *previd = g_strndup(data, (gsize)(nul1 - data));
        g_autofree char *bare = g_strndup(nul1 + 1, (gsize)(nul2 - nul1 - 1));
        g_autofree char *hs = g_strndup(nul2 + 1, (gsize)(end - nul2 - 1));
        g_mutex_lock(&cl->c2s_lock);
        if (cl->c2s)
            mk_c2s_sm_release(cl->c2s, previd, bare, (guint32)g_ascii_strtoull(hs, NULL, 10));
        g_mutex_unlock(&cl->c2s_lock);
        return;
    }
    LinkJob *job = g_new0(LinkJob, 1);
    job->type = type;
    job->target = g_strndup(data, (gsize)(nul1 - data));
    job->id = g_ascii_strtoull(nul1 + 1, NULL, 10);
    job->rest = g_strndup(nul2 + 1, (gsize)(end - nul2 - 1));
    link_job_post(cl, job);
}

/* ---- start and stop ----------------------------------------------------- */

static gpointer cluster_thread(gpointer data)
{
    MkCluster *cl = data;
    g_main_context_push_thread_default(cl->ctx);
    g_main_loop_run(cl->loop);
    g_main_context_pop_thread_default(cl->ctx);
    return NULL;
}

MkCluster *mk_cluster_start(MkServer *srv, const MkClusterConfig *cfg, GError **error)
{
    MkCluster *cl = g_new0(MkCluster, 1);
    cl->srv = srv;
    cl->name = g_strdup(cfg->name);
    cl->number = cfg->node_number;
    cl->redis_host = g_strdup(cfg->redis_host);
    cl->redis_port = cfg->redis_port;
    cl->redis_password = g_strdup(cfg->redis_password);
    cl->advertise = g_strdup(cfg->link_advertise);
    g_mutex_init(&cl->c2s_lock);
    cl->ctx = g_main_context_new();
    cl->loop = g_main_loop_new(cl->ctx, FALSE);
    cl->peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    cl->dropped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    cl->links = mk_links_new(cl, cl->ctx, cfg->link_address, cfg->link_port, cfg->name, cfg->secret,
                             cfg->link_certfile, cfg->link_keyfile, cfg->link_cafile, error);
    if (!cl->links) {
        g_main_loop_unref(cl->loop);
        g_main_context_unref(cl->ctx);
        g_hash_table_destroy(cl->peers);
        g_hash_table_destroy(cl->dropped);
        g_free(cl->name);
        g_free(cl->redis_host);
        g_free(cl->redis_password);
        g_free(cl->advertise);
        g_free(cl);
        return NULL;
    }
    mk_cluster_metrics_init(srv, cl, &cl->metrics);
    cl->homes = mk_homes_new(cl, srv);
    cl->tick = g_timeout_source_new(TICK_MS);
    g_source_set_callback(cl->tick, on_tick, cl, NULL);
    g_source_attach(cl->tick, cl->ctx);
    redis_connect(cl);
    mk_sm_set_cluster(srv->sm, cl);
    cl->thread = g_thread_new("mk-cluster", cluster_thread, cl);
    g_message("cluster: node %s, links on %s:%u, Redis at %s:%u", cl->name, cfg->link_address,
              mk_links_port(cl->links), cl->redis_host, cl->redis_port);
    return cl;
}

static gboolean stop_check(gpointer data)
{
    MkCluster *cl = data;
    if (g_atomic_int_get(&cl->pending) == 0 || !cl->cmd.ready)
        g_main_loop_quit(cl->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean stop_give_up(gpointer data)
{
    MkCluster *cl = data;
    g_warning("cluster: Redis did not confirm the leave in time");
    g_main_loop_quit(cl->loop);
    return G_SOURCE_REMOVE;
}

/* Cluster thread: leave, then wait for Redis to confirm. */
static gboolean stop_begin(gpointer data)
{
    MkCluster *cl = data;
    cl->stopping = TRUE;
    if (cl->cmd.ready) {
        cmd_send(cl, NULL, NULL, "DEL mk:node:%s", cl->name);
        reap(cl, cl->name, TRUE, TRUE, FALSE);
    }
    GSource *check = g_timeout_source_new(20);
    g_source_set_callback(check, stop_check, cl, NULL);
    g_source_attach(check, cl->ctx);
    g_source_unref(check);
    GSource *limit = g_timeout_source_new(STOP_WAIT_US / 1000);
    g_source_set_callback(limit, stop_give_up, cl, NULL);
    g_source_attach(limit, cl->ctx);
    g_source_unref(limit);
    return G_SOURCE_REMOVE;
}

void mk_cluster_stop(MkCluster *cl)
{
    if (!cl)
        return;
    mk_cluster_metrics_stop(cl->srv, cl);
    /* Session events queued by the streams that just ended run first
     * (invoke's sources run in order). */
    g_main_context_invoke(cl->ctx, stop_begin, cl);
    g_thread_join(cl->thread);
    /* From here workers route as on a single node: no stand-in, no
     * notification (every stream ended already). */
    mk_sm_set_cluster(cl->srv->sm, NULL);
    mk_sm_drop_node(cl->srv->sm, NULL);
    /* The thread is gone: its context is ours now. */
    g_main_context_push_thread_default(cl->ctx);
    if (cl->cmd.ac) {
        cl->cmd.ac->data = NULL;
        redisAsyncFree(cl->cmd.ac);
    }
    if (cl->sub.ac) {
        cl->sub.ac->data = NULL;
        redisAsyncFree(cl->sub.ac);
    }
    conn_drop(&cl->cmd, FALSE);
    conn_drop(&cl->sub, FALSE);
    g_source_destroy(cl->tick);
    g_source_unref(cl->tick);
    /* Whatever the context still holds (a late session event, a link's
     * wish to write) runs now, while the links exist. */
    while (g_main_context_iteration(cl->ctx, FALSE))
        ;
    mk_links_free(cl->links);
    mk_homes_free(cl->homes);
    g_main_context_pop_thread_default(cl->ctx);
    g_main_loop_unref(cl->loop);
    g_main_context_unref(cl->ctx);
    g_hash_table_destroy(cl->peers);
    g_hash_table_destroy(cl->dropped);
    g_free(cl->name);
    g_free(cl->redis_host);
    g_free(cl->redis_password);
    g_free(cl->advertise);
    g_mutex_clear(&cl->c2s_lock);
    g_free(cl);
}

/* Public API (mk-cluster.h). Any thread. */
gboolean mk_cluster_active(void)
{
    MkServer *srv = mk_server_get();
    MkConfigData *cfg = srv ? g_atomic_pointer_get(&srv->config) : NULL;
    return cfg && cfg->cluster;
}

/* Public API (mk-cluster.h). Any thread. */
guint mk_cluster_node_number(void)
{
    MkServer *srv = mk_server_get();
    MkConfigData *cfg = srv ? g_atomic_pointer_get(&srv->config) : NULL;
    return cfg && cfg->cluster ? cfg->cluster->node_number : 0;
}

/* For cluster-resume.c. Any thread. */
MkLinks *mk_cluster_links(MkCluster *cl)
{
    return cl->links;
}

const char *mk_cluster_name(MkCluster *cl)
{
    return cl->name;
}

GMainContext *mk_cluster_context(MkCluster *cl)
{
    return cl->ctx;
}

MkHomes *mk_cluster_homes(MkCluster *cl)
{
    return cl->homes;
}

MkWorker *mk_cluster_worker_for(MkCluster *cl, const char *key)
{
    return worker_for(cl, key);
}

/* For the collector (cluster-metrics.h). Any thread. */
const MkClusterMetrics *mk_cluster_metrics(MkCluster *cl)
{
    return &cl->metrics;
}

guint mk_cluster_links_up(MkCluster *cl)
{
    return mk_links_count_up(cl->links);
}

guint mk_cluster_redis_pending(MkCluster *cl)
{
    return (guint)MAX(g_atomic_int_get(&cl->pending), 0);
}

gboolean mk_cluster_redis_up(MkCluster *cl)
{
    return g_atomic_int_get(&cl->redis_ready) != 0;
}

/* ---- a new session is visible (docs/clustering.md, A new session) ------ */

typedef struct {
    MkCluster *cl;
    MkWorker *worker;
    MkJobFunc func;
    gpointer data;
    GDestroyNotify free;
    GSource *timer; /* cluster thread */
    gboolean done;  /* func posted */
} WrittenWait;

/* Cluster thread (or the main thread at stop): posts the caller's
 * function once. */
static void written_post(WrittenWait *w)
{
    if (w->done)
        return;
    w->done = TRUE;
    mk_worker_post(w->worker, w->func, w->data, w->free);
}

static gboolean written_timeout(gpointer data)
{
    WrittenWait *w = data;
    g_warning("cluster: Redis did not confirm a session's record within %d ms", WRITTEN_WAIT);
    g_source_unref(w->timer); /* ours; the context keeps it until removed */
    w->timer = NULL;
    written_post(w);
    return G_SOURCE_REMOVE;
}

/* The PING after the session's writes was answered (NULL: the
 * connection went): one connection answers in order, so the writes are
 * done. Always called once by hiredis. */
static void on_written(redisAsyncContext *ac, void *reply, void *data)
{
    WrittenWait *w = data;
    if (ac->data)
        reply_seen(w->cl, reply);
    if (w->timer) {
        g_source_destroy(w->timer);
        g_source_unref(w->timer);
    }
    written_post(w);
    g_free(w);
}

static gboolean written_send(gpointer data)
{
    WrittenWait *w = data;
    MkCluster *cl = w->cl;
    /* After the session events queued before (invoke keeps the order). */
    if (cl->stopping || !cmd_argv(cl, on_written, w, 1, (const char *const[]){"PING"})) {
        written_post(w);
        g_free(w);
        return G_SOURCE_REMOVE;
    }
    w->timer = g_timeout_source_new(WRITTEN_WAIT);
    g_source_set_callback(w->timer, written_timeout, w, NULL);
    g_source_attach(w->timer, cl->ctx);
    return G_SOURCE_REMOVE;
}

void mk_cluster_when_written(MkCluster *cl, MkWorker *worker, MkJobFunc func, gpointer data,
                             GDestroyNotify free_func)
{
    WrittenWait *w = g_new0(WrittenWait, 1);
    w->cl = cl;
    w->worker = worker;
    w->func = func;
    w->data = data;
    w->free = free_func;
    g_main_context_invoke_full(cl->ctx, G_PRIORITY_DEFAULT, written_send, w, NULL);
}

typedef struct {
    MkCluster *cl;
    MkStanza *st;
    char *bare;
} Recheck;

static void recheck_free(gpointer p)
{
    Recheck *rc = p;
    mk_stanza_unref(rc->st);
    g_free(rc->bare);
    g_free(rc);
}

static void recheck_run(gpointer p)
{
    Recheck *rc = p;
    mk_router_message_rechecked(rc->st);
    recheck_free(rc);
}

/* The account's records in Redis: stand-ins for those of live nodes
 * that this node did not know yet (their S event is still on its way),
 * then the message is routed again on the account's worker. */
static void on_recheck(redisAsyncContext *ac, void *reply, void *data)
{
    Recheck *rc = data;
    MkCluster *cl = rc->cl;
    redisReply *r = reply;
    if (ac->data)
        reply_seen(cl, r);
    guint added = 0;
    for (size_t i = 0; ac->data && r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        const char *resource = r->element[i]->str;
        const char *text = r->element[i + 1]->str;
        Record rec;
        if (!resource || !text || !record_parse(text, &rec))
            continue;
        g_autofree char *key = g_strdup_printf("%s\t%" G_GUINT64_FORMAT, rec.node, rec.id);
        g_autofree char *full = g_strdup_printf("%s/%s", rc->bare, resource);
        g_autoptr(MkJid) jid = mk_jid_new(full, NULL);
        g_autoptr(MkSession) known = jid ? mk_sm_find(cl->srv->sm, jid) : NULL;
        if (jid && !known && !g_str_equal(rec.node, cl->name) &&
            g_hash_table_contains(cl->peers, rec.node) &&
            !g_hash_table_contains(cl->dropped, key)) {
            put_proxy(cl, rc->bare, resource, &rec);
            added++;
        }
        record_clear(&rec);
    }
    if (added)
        g_debug("cluster: %s: %u sessions found in Redis before their announcement", rc->bare,
                added);
    mk_worker_post(worker_for(cl, rc->bare), recheck_run, rc, recheck_free);
}

static gboolean recheck_send(gpointer data)
{
    Recheck *rc = data;
    MkCluster *cl = rc->cl;
    if (cl->stopping || !cmd_send(cl, on_recheck, rc, "HGETALL mk:s:%s", rc->bare))
        mk_worker_post(worker_for(cl, rc->bare), recheck_run, rc, recheck_free);
    return G_SOURCE_REMOVE;
}

gboolean mk_cluster_offline_recheck(MkCluster *cl, MkStanza *st)
{
    if (!cl || !g_atomic_int_get(&cl->redis_ready) || !mk_stanza_to(st))
        return FALSE;
    Recheck *rc = g_new0(Recheck, 1);
    rc->cl = cl;
    rc->st = mk_stanza_ref(st);
    rc->bare = g_strdup(mk_jid_bare_string(mk_stanza_to(st)));
    g_main_context_invoke_full(cl->ctx, G_PRIORITY_DEFAULT, recheck_send, rc, NULL);
    return TRUE;
}
