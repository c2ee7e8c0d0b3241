/* mod_register: the per-address registration limit. A sliding window:
 * each address keeps the times of its last registrations (at most @max),
 * so memory is bounded by addresses x max until the sweep forgets them. */
#include "register.h"

struct RegLimiter {
    GMutex lock;
    guint max;
    gint64 window_us;
    GHashTable *by_addr; /* char* -> GQueue* of gint64 times, oldest first */
};

static void times_free(gpointer q)
{
    g_queue_free_full(q, g_free);
}

/* (transfer full) */
RegLimiter *reg_limiter_new(guint max, gint64 window_us)
{
    RegLimiter *l = g_new0(RegLimiter, 1);
    g_mutex_init(&l->lock);
    l->max = max;
    l->window_us = window_us;
    l->by_addr = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, times_free);
    return l;
}

void reg_limiter_free(RegLimiter *l)
{
    if (!l)
        return;
    g_hash_table_destroy(l->by_addr);
    g_mutex_clear(&l->lock);
    g_free(l);
}

/* Drops the times of @q that left the window. Under the lock. */
static void prune(RegLimiter *l, GQueue *q, gint64 now_us)
{
    while (!g_queue_is_empty(q) && *(gint64 *)g_queue_peek_head(q) <= now_us - l->window_us)
        g_free(g_queue_pop_head(q));
}

gboolean reg_limiter_take(RegLimiter *l, const char *addr, gint64 now_us)
{
    if (l->max == 0)
        return TRUE;
    g_mutex_lock(&l->lock);
    GQueue *q = g_hash_table_lookup(l->by_addr, addr);
    if (!q) {
        q = g_queue_new();
        g_hash_table_insert(l->by_addr, g_strdup(addr), q);
    }
    prune(l, q, now_us);
    gboolean ok = g_queue_get_length(q) < l->max;
    if (ok)
        g_queue_push_tail(q, g_memdup2(&now_us, sizeof now_us));
    g_mutex_unlock(&l->lock);
    return ok;
}

void reg_limiter_give_back(RegLimiter *l, const char *addr)
{
    if (l->max == 0)
        return;
    g_mutex_lock(&l->lock);
    GQueue *q = g_hash_table_lookup(l->by_addr, addr);
    if (q)
        g_free(g_queue_pop_tail(q));
    if (q && g_queue_is_empty(q))
        g_hash_table_remove(l->by_addr, addr);
    g_mutex_unlock(&l->lock);
}

void reg_limiter_expire(RegLimiter *l, gint64 now_us)
{
    g_mutex_lock(&l->lock);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, l->by_addr);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        prune(l, v, now_us);
        if (g_queue_is_empty(v))
            g_hash_table_iter_remove(&it);
    }
    g_mutex_unlock(&l->lock);
}

guint reg_limiter_size(RegLimiter *l)
{
    g_mutex_lock(&l->lock);
    guint n = g_hash_table_size(l->by_addr);
    g_mutex_unlock(&l->lock);
    return n;
}
