/* The mapping cache: JID → region, bounded, each entry with a lifetime.
 * Eviction is by age (a FIFO of insertions): lookups stay O(1) and the
 * entries that go first are the ones closest to expiring anyway. */
#include "gd-cache.h"

typedef struct {
    char *jid;
    char *host; /* NULL: a negative entry */
    gint64 expires;
    GList *link; /* in @order */
} Entry;

struct GdCache {
    GHashTable *map; /* jid → Entry */
    GQueue order;    /* oldest first */
    guint max;
    gint64 lifetime;
};

static void entry_free(gpointer p)
{
    Entry *e = p;
    g_free(e->jid);
    g_free(e->host);
    g_free(e);
}

GdCache *gd_cache_new(guint max_entries, gint64 lifetime_us)
{
    GdCache *c = g_new0(GdCache, 1);
    c->map = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, entry_free);
    g_queue_init(&c->order);
    c->max = MAX(max_entries, 1);
    c->lifetime = lifetime_us;
    return c;
}

void gd_cache_free(GdCache *c)
{
    if (!c)
        return;
    g_queue_clear(&c->order);
    g_hash_table_destroy(c->map);
    g_free(c);
}

void gd_cache_drop(GdCache *c, const char *jid)
{
    Entry *e = g_hash_table_lookup(c->map, jid);
    if (!e)
        return;
    g_queue_delete_link(&c->order, e->link);
    g_hash_table_remove(c->map, jid);
}

gboolean gd_cache_get(GdCache *c, const char *jid, gint64 now, const char **host)
{
    Entry *e = g_hash_table_lookup(c->map, jid);
    if (!e)
        return FALSE;
    if (e->expires <= now) {
        gd_cache_drop(c, jid);
        return FALSE;
    }
    *host = e->host;
    return TRUE;
}

void gd_cache_put_for(GdCache *c, const char *jid, const char *host, gint64 now, gint64 lifetime_us)
{
    gd_cache_drop(c, jid);
    while (g_hash_table_size(c->map) >= c->max) {
        Entry *old = g_queue_pop_head(&c->order);
        g_hash_table_remove(c->map, old->jid);
    }
    Entry *e = g_new0(Entry, 1);
    e->jid = g_strdup(jid);
    e->host = g_strdup(host);
    e->expires = now + lifetime_us;
    g_queue_push_tail(&c->order, e);
    e->link = c->order.tail;
    g_hash_table_insert(c->map, e->jid, e);
}

void gd_cache_put(GdCache *c, const char *jid, const char *host, gint64 now)
{
    gd_cache_put_for(c, jid, host, now, c->lifetime);
}

guint gd_cache_size(GdCache *c)
{
    return g_hash_table_size(c->map);
}
