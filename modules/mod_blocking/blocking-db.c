/* The block lists in memory, and their storage.
 *
 * filter_local_packet runs on every worker for every stanza to a local
 * account, so it must not touch the database: each user's list is kept
 * here, loaded once (at session start or when a stanza first needs it)
 * through the user's storage queue. A list is an immutable array of
 * MkJid, replaced as a whole on change, so readers only take the lock
 * for the hash lookup and a reference.
 *
 * A stanza that needs a list still being loaded waits in the entry and is
 * routed again when the list arrives: nothing slips through unfiltered. */
#include "blocking.h"

typedef struct {
    GPtrArray *list;    /* MkJid*, NULL while the first load runs */
    GPtrArray *waiting; /* MkStanza* to route again once the list is there */
    gint64 used_us;     /* monotonic time of the last lookup */
    gboolean stale;     /* the last load failed: load again on next use */
} CacheEntry;

static void entry_free(gpointer data)
{
    CacheEntry *e = data;
    if (e->list)
        g_ptr_array_unref(e->list);
    if (e->waiting)
        g_ptr_array_unref(e->waiting);
    g_free(e);
}

const MkMigration blocking_migrations[] = {
    /* One step serves sqlite3 and PostgreSQL (the common subset); rows go
     * with the account. */
    {NULL, 1,
     "CREATE TABLE blocking_items ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " jid TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, jid),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

gboolean blocking_item_matches(const MkJid *item, const MkJid *jid)
{
    return blocking_jid_match(mk_jid_node(item), mk_jid_domain(item), mk_jid_resource(item),
                              mk_jid_node(jid), mk_jid_domain(jid), mk_jid_resource(jid));
}

gboolean blocking_list_matches(const GPtrArray *list, const MkJid *jid)
{
    for (guint i = 0; list && i < list->len; i++)
        if (blocking_item_matches(g_ptr_array_index(list, i), jid))
            return TRUE;
    return FALSE;
}

gboolean blocking_db_load(MkDbConn *conn, MkJid *user, GPtrArray **out, GError **error)
{
    *out = NULL;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT jid FROM blocking_items WHERE username = ? AND domain = ? ORDER BY jid",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        MkJid *jid = mk_jid_new(mk_db_result_get_string(res, i, 0), NULL);
        if (jid) /* stored prepared: only a hand-edited row can fail */
            g_ptr_array_add(list, jid);
    }
    *out = list;
    return TRUE;
}

void blocking_cache_init(Blocking *b)
{
    b->cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
}

void blocking_cache_clear(Blocking *b)
{
    g_clear_pointer(&b->cache, g_hash_table_destroy);
}

/* ---- loading ------------------------------------------------------------ */

typedef struct {
    Blocking *b;
    MkJid *user;
    GPtrArray *list;
} LoadOp;

static void load_op_free(gpointer data)
{
    LoadOp *op = data;
    blocking_unref(op->b);
    mk_jid_unref(op->user);
    if (op->list)
        g_ptr_array_unref(op->list);
    g_free(op);
}

static gboolean load_work(MkDbConn *conn, gpointer data, GError **error)
{
    LoadOp *op = data;
    return blocking_db_load(conn, op->user, &op->list, error);
}

static void load_done(const GError *error, gpointer data)
{
    LoadOp *op = data;
    if (error) {
        /* Failing open beats holding the user's traffic forever: an empty
         * list lets the waiting stanzas through, and the next lookup
         * tries the database again. */
        g_warning("mod_blocking: loading the block list of %s: %s", mk_jid_string(op->user),
                  error->message);
        blocking_cache_publish(op->b, op->user,
                               g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref));
        g_mutex_lock(&op->b->lock);
        CacheEntry *e = g_hash_table_lookup(op->b->cache, mk_jid_string(op->user));
        if (e)
            e->stale = TRUE;
        g_mutex_unlock(&op->b->lock);
        return;
    }
    mk_counter_add(op->b->loads, 1);
    blocking_cache_publish(op->b, op->user, g_steal_pointer(&op->list));
}

GPtrArray *blocking_cache_get(Blocking *b, MkJid *user, MkStanza *defer)
{
    const char *key = mk_jid_bare_string(user);
    gboolean start = FALSE;
    GPtrArray *list = NULL;

    g_mutex_lock(&b->lock);
    CacheEntry *e = g_hash_table_lookup(b->cache, key);
    if (!e) {
        e = g_new0(CacheEntry, 1);
        g_hash_table_insert(b->cache, g_strdup(key), e);
        start = TRUE;
    }
    e->used_us = g_get_monotonic_time();
    if (e->stale) {
        e->stale = FALSE;
        start = TRUE;
    }
    if (e->list) {
        list = g_ptr_array_ref(e->list);
    } else if (defer) {
        if (!e->waiting)
            e->waiting = g_ptr_array_new_with_free_func((GDestroyNotify)mk_stanza_unref);
        g_ptr_array_add(e->waiting, mk_stanza_ref(defer));
    }
    g_mutex_unlock(&b->lock);

    if (start) {
        LoadOp *op = g_new0(LoadOp, 1);
        op->b = blocking_ref(b);
        op->user = mk_jid_bare(user);
        mk_user_queue_push(b->queue, key, load_work, load_done, op, load_op_free);
    }
    return list;
}

void blocking_cache_publish(Blocking *b, MkJid *user, GPtrArray *list)
{
    const char *key = mk_jid_bare_string(user);
    g_mutex_lock(&b->lock);
    CacheEntry *e = g_hash_table_lookup(b->cache, key);
    if (!e) {
        e = g_new0(CacheEntry, 1);
        e->used_us = g_get_monotonic_time();
        g_hash_table_insert(b->cache, g_strdup(key), e);
    }
    if (e->list)
        g_ptr_array_unref(e->list);
    e->list = list;
    e->stale = FALSE;
    GPtrArray *waiting = g_steal_pointer(&e->waiting);
    g_mutex_unlock(&b->lock);

    /* Routed again from the top: this time the filter finds the list. */
    for (guint i = 0; waiting && i < waiting->len; i++)
        mk_route(g_ptr_array_index(waiting, i));
    if (waiting)
        g_ptr_array_unref(waiting);
}

void blocking_cache_forget(Blocking *b, MkJid *user)
{
    g_mutex_lock(&b->lock);
    CacheEntry *e = g_hash_table_lookup(b->cache, mk_jid_bare_string(user));
    if (e && e->list && !e->waiting)
        g_hash_table_remove(b->cache, mk_jid_bare_string(user));
    g_mutex_unlock(&b->lock);
}

void blocking_cache_sweep(Blocking *b)
{
    gint64 limit = g_get_monotonic_time() - b->cache_idle_s * G_USEC_PER_SEC;
    g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);

    g_mutex_lock(&b->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, b->cache);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        CacheEntry *e = v;
        if (e->list && !e->waiting && e->used_us < limit)
            g_ptr_array_add(old, g_strdup(k));
    }
    g_mutex_unlock(&b->lock);

    /* Users with a session keep their list: it is needed on every stanza. */
    for (guint i = 0; i < old->len; i++) {
        g_autoptr(MkJid) user = mk_jid_new(g_ptr_array_index(old, i), NULL);
        if (!user)
            continue;
        g_autoptr(GPtrArray) sessions = mk_sm_sessions_of(user);
        if (sessions->len == 0)
            blocking_cache_forget(b, user);
    }
}
