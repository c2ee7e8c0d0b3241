/* The global Redis: the mapping JID → region, each region's link
 * endpoints, and the invalidation channel (docs/mod_global_distrib.md,
 * "What is in Redis"). Two connections on the module thread: commands,
 * and the subscription. While Redis is away nothing is written and
 * every lookup answers "unknown" (the stanza stays in this region);
 * the connections are retried every second and the mapping rewritten. */
#include "gd.h"
#include <hiredis/adapters/glib.h>
#include <hiredis/hiredis.h>

#define CHANNEL  "gd:inval"
#define RETRY_MS 1000

/* A value written by a region that is unbound: only its own. */
static const char DEL_IF_MINE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

typedef struct {
    Gd *gd;
    GdValuesFunc done;
    gpointer data;
    GDestroyNotify destroy;
} Pending;

static gboolean source_destroy_later(gpointer data)
{
    g_source_destroy(data);
    return G_SOURCE_REMOVE;
}

/* hiredis still calls the adapter's cleanup on the source after the
 * disconnect callback: destroy it on the next iteration. */
static void drop_source_later(Gd *gd, redisAsyncContext *ac)
{
    GSource *src = ac->ev.data;
    if (!src)
        return;
    GSource *idle = g_idle_source_new();
    g_source_set_callback(idle, source_destroy_later, src, (GDestroyNotify)g_source_unref);
    g_source_attach(idle, gd->ctx);
    g_source_unref(idle);
}

/* Frees @ac from outside its own callbacks: its source goes at once, so
 * that it is not dispatched later in this iteration for a freed context
 * (hiredis's cleanup still touches it during the free). */
static void free_ctx(redisAsyncContext *ac)
{
    GSource *src = ac->ev.data;
    ac->data = NULL;
    redisAsyncFree(ac);
    if (src) {
        g_source_destroy(src);
        g_source_unref(src);
    }
}

static void lost(Gd *gd, const redisAsyncContext *ac, const char *why)
{
    gboolean was_up = gd->cmd && gd->sub;
    if (ac == gd->cmd)
        gd->cmd = NULL;
    if (ac == gd->sub)
        gd->sub = NULL;
    if (was_up && !gd->stopping && !gd->redis_warned) {
        g_warning("mod_global_distrib: global Redis lost (%s): stanzas stay in this region "
                  "until it is back",
                  why);
        gd->redis_warned = TRUE;
    }
    /* Take the other one down too: both come back together. */
    redisAsyncContext *other = gd->cmd ? gd->cmd : gd->sub;
    gd->cmd = gd->sub = NULL;
    if (other)
        free_ctx(other);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    Gd *gd = ac->data;
    if (!gd)
        return;
    drop_source_later(gd, (redisAsyncContext *)ac);
    lost(gd, ac, status == REDIS_OK ? "closed" : ac->errstr);
}

static void on_sub(redisAsyncContext *ac, void *r, void *data)
{
    Gd *gd = data;
    redisReply *reply = r;
    (void)ac;
    if (!reply || !gd || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    redisReply *kind = reply->element[0], *msg = reply->element[2];
    if (kind->type == REDIS_REPLY_STRING && g_str_equal(kind->str, "message") &&
        msg->type == REDIS_REPLY_STRING)
        gd_invalidate(gd, msg->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    Gd *gd = ac->data;
    if (!gd)
        return;
    if (status != REDIS_OK) {
        if (!gd->redis_warned)
            g_warning("mod_global_distrib: cannot reach the global Redis at %s:%d: %s "
                      "(retrying every second)",
                      gd->redis_host, gd->redis_port, ac->errstr);
        gd->redis_warned = TRUE;
        drop_source_later(gd, (redisAsyncContext *)ac);
        lost(gd, ac, ac->errstr);
        return;
    }
    redisAsyncContext *w = (redisAsyncContext *)ac;
    if (gd->redis_password && *gd->redis_password)
        redisAsyncCommand(w, NULL, NULL, "AUTH %s", gd->redis_password);
    if (ac == gd->sub) {
        redisAsyncCommand(w, on_sub, gd, "SUBSCRIBE " CHANNEL);
        return;
    }
    if (gd->redis_warned)
        g_message("mod_global_distrib: global Redis at %s:%d reachable again", gd->redis_host,
                  gd->redis_port);
    else
        g_message("mod_global_distrib: region %s of %s on Redis %s:%d", gd->local_host,
                  gd->global_host, gd->redis_host, gd->redis_port);
    gd->redis_warned = FALSE;
    gd_redis_refresh(gd, TRUE);
}

static redisAsyncContext *open_one(Gd *gd)
{
    redisAsyncContext *ac = redisAsyncConnect(gd->redis_host, gd->redis_port);
    if (!ac)
        return NULL;
    if (ac->err) {
        if (!gd->redis_warned)
            g_warning("mod_global_distrib: cannot reach the global Redis at %s:%d: %s",
                      gd->redis_host, gd->redis_port, ac->errstr);
        gd->redis_warned = TRUE;
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = gd;
    GSource *src = redis_source_new(ac);
    g_source_attach(src, gd->ctx);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static gboolean on_retry(gpointer data)
{
    Gd *gd = data;
    if (!gd->cmd && !gd->sub && !gd->stopping) {
        gd->cmd = open_one(gd);
        gd->sub = gd->cmd ? open_one(gd) : NULL;
        if (gd->cmd && !gd->sub) {
            free_ctx(gd->cmd);
            gd->cmd = NULL;
        }
    }
    return G_SOURCE_CONTINUE;
}

void gd_redis_connect(Gd *gd)
{
    on_retry(gd);
    gd->redis_retry = g_timeout_source_new(RETRY_MS);
    g_source_set_callback(gd->redis_retry, on_retry, gd, NULL);
    g_source_attach(gd->redis_retry, gd->ctx);
}

void gd_redis_close(Gd *gd)
{
    if (gd->redis_retry) {
        g_source_destroy(gd->redis_retry);
        g_source_unref(gd->redis_retry);
        gd->redis_retry = NULL;
    }
    redisAsyncContext *acs[] = {gd->cmd, gd->sub};
    gd->cmd = gd->sub = NULL;
    for (guint i = 0; i < G_N_ELEMENTS(acs); i++)
        if (acs[i])
            free_ctx(acs[i]); /* pending callbacks run with NULL now */
}

gboolean gd_redis_up(Gd *gd)
{
    return gd->cmd && gd->sub && !gd->cmd->err;
}

void gd_redis_bind(Gd *gd, const char *full, const char *bare)
{
    if (!gd_redis_up(gd))
        return;
    redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:j:%s %s EX %d", full, gd->local_host,
                      (int)gd->expire_after);
    redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:j:%s %s EX %d", bare, gd->local_host,
                      (int)gd->expire_after);
    redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:h:%s %s", bare, gd->local_host);
    gd_fanout_bind(gd, bare);
    redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", full);
    redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", bare);
}

void gd_redis_unbind(Gd *gd, const char *full, const char *bare, gboolean bare_too)
{
    if (!gd_redis_up(gd))
        return;
    redisAsyncCommand(gd->cmd, NULL, NULL, "EVAL %s 1 gd:j:%s %s", DEL_IF_MINE, full,
                      gd->local_host);
    redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", full);
    if (bare_too) {
        gd_fanout_unbind(gd, bare); /* the bare record, and the region set */
        redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", bare);
    }
}

/* Every refresh_after seconds: this node's sessions and link endpoint
 * get their expiry pushed back. After a (re)connection (@all), also the
 * home records and an invalidation for each, since a Redis that was
 * restarted empty lost them and other nodes may cache "nobody". */
void gd_redis_refresh(Gd *gd, gboolean all)
{
    if (!gd_redis_up(gd))
        return;
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, gd->local_jids);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        const char *full = key;
        g_autofree char *bare = g_strndup(full, strcspn(full, "/"));
        redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:j:%s %s EX %d", full, gd->local_host,
                          (int)gd->expire_after);
        redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:j:%s %s EX %d", bare, gd->local_host,
                          (int)gd->expire_after);
        gd_fanout_bind(gd, bare);
        if (all) {
            redisAsyncCommand(gd->cmd, NULL, NULL, "SET gd:h:%s %s", bare, gd->local_host);
            redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", full);
            redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH " CHANNEL " %s", bare);
        }
    }
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    g_autofree char *ep = g_strdup_printf("%s:%d", gd->advertise, gd->listen_port);
    redisAsyncCommand(gd->cmd, NULL, NULL, "ZADD gd:ep:%s %lld %s", gd->local_host,
                      (long long)(now + gd->expire_after), ep);
    /* Endpoints of nodes that stopped advertising long ago go. */
    redisAsyncCommand(gd->cmd, NULL, NULL, "ZREMRANGEBYSCORE gd:ep:%s -inf %lld", gd->local_host,
                      (long long)(now - 3600));
    redisAsyncCommand(gd->cmd, NULL, NULL, "SADD gd:regions %s", gd->local_host);
    gd_services_refresh(gd, all);
}

static void on_values(redisAsyncContext *ac, void *r, void *data)
{
    Pending *p = data;
    redisReply *reply = r;
    (void)ac;
    g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
    gboolean ok = reply && reply->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; ok && i < reply->elements; i++) {
        redisReply *e = reply->element[i];
        g_ptr_array_add(values, e->type == REDIS_REPLY_STRING ? g_strndup(e->str, e->len) : NULL);
    }
    g_ptr_array_add(values, NULL);
    if (p->gd && !g_atomic_int_get(&p->gd->stopping))
        p->done(p->gd, ok ? (char **)values->pdata : NULL, p->data);
    else
        p->done(p->gd, NULL, p->data);
    if (p->destroy)
        p->destroy(p->data);
    g_free(p);
}

static void run_unreachable(Gd *gd, GdValuesFunc done, gpointer data, GDestroyNotify destroy)
{
    done(gd, NULL, data);
    if (destroy)
        destroy(data);
}

void gd_redis_get(Gd *gd, const char *const *keys, GdValuesFunc done, gpointer data,
                  GDestroyNotify destroy)
{
    guint n = g_strv_length((char **)keys);
    if (!gd_redis_up(gd) || n == 0) {
        run_unreachable(gd, done, data, destroy);
        return;
    }
    const char **argv = g_new0(const char *, n + 1);
    char **owned = g_new0(char *, n + 1);
    argv[0] = "MGET";
    for (guint i = 0; i < n; i++)
        argv[i + 1] = owned[i] = g_strdup_printf("gd:%s", keys[i]);
    Pending *p = g_new0(Pending, 1);
    *p = (Pending){gd, done, data, destroy};
    if (redisAsyncCommandArgv(gd->cmd, on_values, p, (int)n + 1, argv, NULL) != REDIS_OK) {
        g_free(p);
        run_unreachable(gd, done, data, destroy);
    }
    g_strfreev(owned);
    g_free(argv);
}

void gd_redis_endpoints(Gd *gd, const char *host, GdValuesFunc done, gpointer data,
                        GDestroyNotify destroy)
{
    if (!gd_redis_up(gd)) {
        run_unreachable(gd, done, data, destroy);
        return;
    }
    Pending *p = g_new0(Pending, 1);
    *p = (Pending){gd, done, data, destroy};
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    if (redisAsyncCommand(gd->cmd, on_values, p, "ZRANGEBYSCORE gd:ep:%s %lld +inf", host,
                          (long long)now) != REDIS_OK) {
        g_free(p);
        run_unreachable(gd, done, data, destroy);
    }
}

/* One round trip for the REST listing: each region, then its endpoints
 * still alive, space-separated. */
static const char REGIONS[] =
    "local out = {} for _, r in ipairs(redis.call('SMEMBERS', 'gd:regions')) do "
    "table.insert(out, r) table.insert(out, table.concat(redis.call('ZRANGEBYSCORE', "
    "'gd:ep:' .. r, ARGV[1], '+inf'), ' ')) end return out";

void gd_redis_regions(Gd *gd, GdValuesFunc done, gpointer data, GDestroyNotify destroy)
{
    if (!gd_redis_up(gd)) {
        run_unreachable(gd, done, data, destroy);
        return;
    }
    Pending *p = g_new0(Pending, 1);
    *p = (Pending){gd, done, data, destroy};
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    if (redisAsyncCommand(gd->cmd, on_values, p, "EVAL %s 0 %lld", REGIONS, (long long)now) !=
        REDIS_OK) {
        g_free(p);
        run_unreachable(gd, done, data, destroy);
    }
}
