/* Each user's privacy state in memory (lists, default list, the roster
 * they are evaluated against), and each session's active list.
 *
 * The filters run on every worker for every stanza to or from a local
 * account, so they never touch the database: a user's state is loaded
 * once through the user's storage queue and replaced as a whole (an
 * immutable PrivState) on change. A stanza that needs a state still being
 * loaded waits and is routed again when it arrives. */
#include "privacy.h"

typedef struct {
    PrivState *st;      /* NULL while the first load runs */
    GPtrArray *waiting; /* MkStanza* to route again once loaded */
    gint64 used_us;
    gboolean stale; /* load again on next use (roster changed, load failed) */
} CacheEntry;

static void entry_free(gpointer data)
{
    CacheEntry *e = data;
    priv_state_unref(e->st);
    if (e->waiting)
        g_ptr_array_unref(e->waiting);
    g_free(e);
}

void priv_cache_init(Privacy *p)
{
    p->cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
    p->active = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
}

void priv_cache_clear(Privacy *p)
{
    g_clear_pointer(&p->cache, g_hash_table_destroy);
    g_clear_pointer(&p->active, g_hash_table_destroy);
}

typedef struct {
    Privacy *p;
    MkJid *user;
    PrivState *st;
} LoadOp;

static void load_op_free(gpointer data)
{
    LoadOp *op = data;
    privacy_unref(op->p);
    mk_jid_unref(op->user);
    priv_state_unref(op->st);
    g_free(op);
}

static gboolean load_work(MkDbConn *conn, gpointer data, GError **error)
{
    LoadOp *op = data;
    return priv_db_load(conn, op->user, &op->st, error);
}

static PrivState *empty_state(void)
{
    PrivState *st = g_new0(PrivState, 1);
    st->ref = 1;
    st->lists =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)priv_list_free);
    st->roster = g_hash_table_new(g_str_hash, g_str_equal);
    st->groups = g_hash_table_new(g_str_hash, g_str_equal);
    return st;
}

static void load_done(const GError *error, gpointer data)
{
    LoadOp *op = data;
    if (error) {
        /* Failing open beats holding the user's traffic forever; the next
         * lookup tries again. */
        g_warning("mod_privacy: loading the lists of %s: %s", mk_jid_string(op->user),
                  error->message);
        priv_cache_publish(op->p, op->user, empty_state());
        priv_cache_invalidate(op->p, op->user);
        return;
    }
    priv_cache_publish(op->p, op->user, g_steal_pointer(&op->st));
}

PrivState *priv_cache_get(Privacy *p, MkJid *user, MkStanza *defer)
{
    const char *key = mk_jid_bare_string(user);
    gboolean start = FALSE;
    PrivState *st = NULL;

    g_mutex_lock(&p->lock);
    CacheEntry *e = g_hash_table_lookup(p->cache, key);
    if (!e) {
        e = g_new0(CacheEntry, 1);
        g_hash_table_insert(p->cache, g_strdup(key), e);
        start = TRUE;
    }
    e->used_us = g_get_monotonic_time();
    if (e->stale) {
        /* The old state serves until the new one is there. */
        e->stale = FALSE;
        start = TRUE;
    }
    if (e->st) {
        st = priv_state_ref(e->st);
    } else if (defer) {
        if (!e->waiting)
            e->waiting = g_ptr_array_new_with_free_func((GDestroyNotify)mk_stanza_unref);
        g_ptr_array_add(e->waiting, mk_stanza_ref(defer));
    }
    g_mutex_unlock(&p->lock);

    if (start) {
        LoadOp *op = g_new0(LoadOp, 1);
        op->p = privacy_ref(p);
        op->user = mk_jid_bare(user);
        mk_user_queue_push(p->queue, key, load_work, load_done, op, load_op_free);
    }
    return st;
}

void priv_cache_publish(Privacy *p, MkJid *user, PrivState *st)
{
    const char *key = mk_jid_bare_string(user);
    g_mutex_lock(&p->lock);
    CacheEntry *e = g_hash_table_lookup(p->cache, key);
    if (!e) {
        e = g_new0(CacheEntry, 1);
        e->used_us = g_get_monotonic_time();
        g_hash_table_insert(p->cache, g_strdup(key), e);
    }
    priv_state_unref(e->st);
    e->st = st;
    GPtrArray *waiting = g_steal_pointer(&e->waiting);
    g_mutex_unlock(&p->lock);

    for (guint i = 0; waiting && i < waiting->len; i++)
        mk_route(g_ptr_array_index(waiting, i));
    if (waiting)
        g_ptr_array_unref(waiting);
}

void priv_cache_invalidate(Privacy *p, MkJid *user)
{
    g_mutex_lock(&p->lock);
    CacheEntry *e = g_hash_table_lookup(p->cache, mk_jid_bare_string(user));
    if (e && e->st)
        e->stale = TRUE;
    g_mutex_unlock(&p->lock);
}

void priv_cache_forget(Privacy *p, MkJid *user)
{
    g_mutex_lock(&p->lock);
    CacheEntry *e = g_hash_table_lookup(p->cache, mk_jid_bare_string(user));
    if (e && e->st && !e->waiting)
        g_hash_table_remove(p->cache, mk_jid_bare_string(user));
    g_mutex_unlock(&p->lock);
}

void priv_cache_sweep(Privacy *p)
{
    gint64 limit = g_get_monotonic_time() - p->cache_idle_s * G_USEC_PER_SEC;
    g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);
    g_mutex_lock(&p->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, p->cache);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        CacheEntry *e = v;
        if (e->st && !e->waiting && e->used_us < limit)
            g_ptr_array_add(old, g_strdup(k));
    }
    g_mutex_unlock(&p->lock);
    for (guint i = 0; i < old->len; i++) {
        g_autoptr(MkJid) user = mk_jid_new(g_ptr_array_index(old, i), NULL);
        if (!user)
            continue;
        g_autoptr(GPtrArray) sessions = mk_sm_sessions_of(user);
        if (sessions->len == 0)
            priv_cache_forget(p, user);
    }
}

/* ---- active lists ---------------------------------------------------------- */

char *priv_active_get(Privacy *p, MkSession *s)
{
    g_mutex_lock(&p->lock);
    char *name = g_strdup(g_hash_table_lookup(p->active, s));
    g_mutex_unlock(&p->lock);
    return name;
}

void priv_active_set(Privacy *p, MkSession *s, const char *name)
{
    g_mutex_lock(&p->lock);
    if (name)
        g_hash_table_replace(p->active, s, g_strdup(name));
    else
        g_hash_table_remove(p->active, s);
    g_mutex_unlock(&p->lock);
}

gboolean priv_user_has_active(Privacy *p, MkJid *user)
{
    g_autoptr(GPtrArray) sessions = mk_sm_sessions_of(user);
    gboolean any = FALSE;
    g_mutex_lock(&p->lock);
    for (guint i = 0; i < sessions->len && !any; i++)
        any = g_hash_table_contains(p->active, g_ptr_array_index(sessions, i));
    g_mutex_unlock(&p->lock);
    return any;
}

const PrivList *priv_effective_list(Privacy *p, PrivState *st, MkSession *s)
{
    g_autofree char *active = s ? priv_active_get(p, s) : NULL;
    const char *name = active ? active : st->default_name;
    return name ? g_hash_table_lookup(st->lists, name) : NULL;
}
