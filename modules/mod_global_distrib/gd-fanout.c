/* An account bound in several regions at once: each region adds itself
 * to the account's region set in the global Redis (gd:r:BARE, a sorted
 * set scored by expiry, so that a dead region leaves it by itself). A
 * message or presence for the bare JID that a region delivers to its
 * own resources is also sent, marked as a copy, to the other regions of
 * the set, which deliver it to their resources only: a copy is never
 * stored offline, bounced or sent on (docs/mod_global_distrib.md, "A
 * user in several regions"). */
#include "gd.h"
#include <hiredis/hiredis.h>

gboolean gd_fanout_kind(MkStanza *st)
{
    const char *type = mk_stanza_type(st);
    switch (mk_stanza_kind(st)) {
    case MK_STANZA_MESSAGE:
        return !mk_stanza_is_error(st) && g_strcmp0(type, "groupchat") != 0;
    case MK_STANZA_PRESENCE:
        return !type || g_str_equal(type, "unavailable");
    default:
        return FALSE;
    }
}

gboolean gd_fanout_is_copy(MkStanza *st)
{
    return mk_xml_child(mk_stanza_xml(st), "copy", GD_NS) != NULL;
}

MkStanza *gd_fanout_marked(MkStanza *st, gboolean mark)
{
    g_autoptr(MkXml) x = mk_xml_copy(mk_stanza_xml(st));
    mk_xml_remove_children(x, "copy", GD_NS);
    if (mark)
        mk_xml_add_child(x, "copy", GD_NS);
    return mk_stanza_new_addressed(x, mk_stanza_from(st), mk_stanza_to(st));
}

void gd_fanout_bind(Gd *gd, const char *bare)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    redisAsyncCommand(gd->cmd, NULL, NULL, "ZADD gd:r:%s %lld %s", bare,
                      (long long)(now + gd->expire_after), gd->local_host);
    redisAsyncCommand(gd->cmd, NULL, NULL, "EXPIRE gd:r:%s %d", bare, (int)gd->expire_after);
}

/* This region leaves the set; the bare record, if it named this region,
 * goes to another region still in the set (else away), so that lookups
 * find the account where it is still bound. */
static const char UNBIND[] =
    "redis.call('ZREM', KEYS[2], ARGV[1]) "
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "local left = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf') "
    "if #left > 0 then redis.call('SET', KEYS[1], left[1], 'EX', ARGV[3]) return 1 end "
    "redis.call('DEL', KEYS[1]) return 1";

void gd_fanout_unbind(Gd *gd, const char *bare)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    redisAsyncCommand(gd->cmd, NULL, NULL, "EVAL %s 2 gd:j:%s gd:r:%s %s %lld %d", UNBIND, bare,
                      bare, gd->local_host, (long long)now, (int)gd->expire_after);
}

typedef struct {
    Gd *gd;
    GdValuesFunc done;
    gpointer data;
    GDestroyNotify destroy;
} Pending;

static void on_regions(redisAsyncContext *ac, void *r, void *data)
{
    Pending *p = data;
    redisReply *reply = r;
    (void)ac;
    gboolean ok =
        reply && reply->type == REDIS_REPLY_ARRAY && p->gd && !g_atomic_int_get(&p->gd->stopping);
    g_autoptr(GString) joined = g_string_new(NULL);
    for (size_t i = 0; ok && i < reply->elements; i++) {
        redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (joined->len)
            g_string_append_c(joined, ' ');
        g_string_append_len(joined, e->str, (gssize)e->len);
    }
    char *values[] = {joined->len ? joined->str : NULL, NULL};
    p->done(p->gd, ok ? values : NULL, p->data);
    if (p->destroy)
        p->destroy(p->data);
    g_free(p);
}

void gd_fanout_get(Gd *gd, const char *bare, GdValuesFunc done, gpointer data,
                   GDestroyNotify destroy)
{
    Pending *p = g_new0(Pending, 1);
    *p = (Pending){gd, done, data, destroy};
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    if (!gd_redis_up(gd) ||
        redisAsyncCommand(gd->cmd, on_regions, p, "ZRANGEBYSCORE gd:r:%s %lld +inf", bare,
                          (long long)now) != REDIS_OK) {
        done(gd, NULL, data);
        if (destroy)
            destroy(data);
        g_free(p);
    }
}

gboolean gd_solo_known(Gd *gd, const char *bare)
{
    g_mutex_lock(&gd->solo_lock);
    gpointer until = g_hash_table_lookup(gd->solo, bare);
    gboolean known = until && *(gint64 *)until > g_get_monotonic_time();
    g_mutex_unlock(&gd->solo_lock);
    return known;
}

void gd_solo_learn(Gd *gd, const char *bare, const char *regions)
{
    /* Only this region (or none yet: the record follows the bind). */
    gboolean solo = regions && (!*regions || g_str_equal(regions, gd->local_host));
    if (!solo || gd->solo_lifetime <= 0) {
        gd_solo_forget(gd, bare);
        return;
    }
    gint64 *until = g_new(gint64, 1);
    *until = g_get_monotonic_time() + gd->solo_lifetime;
    g_mutex_lock(&gd->solo_lock);
    /* Bounded like the mapping cache; starting over is only slower. */
    if (g_hash_table_size(gd->solo) >= gd->solo_max)
        g_hash_table_remove_all(gd->solo);
    g_hash_table_replace(gd->solo, g_strdup(bare), until);
    g_mutex_unlock(&gd->solo_lock);
}

void gd_solo_forget(Gd *gd, const char *bare)
{
    g_mutex_lock(&gd->solo_lock);
    g_hash_table_remove(gd->solo, bare);
    g_mutex_unlock(&gd->solo_lock);
}
