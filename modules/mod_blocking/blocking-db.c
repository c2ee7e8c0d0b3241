/* The block lists: their table, and how the core's cache loads them.
 *
 * filter_local_packet runs on every worker for every stanza to a local
 * account, so it must not touch the database: each user's list is kept
 * in the core's per-user cache (mk-usercache.h), loaded once (at session
 * start or when a stanza first needs it) through the user's storage
 * queue. A list is an immutable array of MkJid, replaced as a whole on
 * change; a stanza that needs a list still being loaded is held and
 * routed again when the list arrives. */
#include "blocking.h"

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

/* ---- the cache's class ------------------------------------------------ */

static GPtrArray *empty_list(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
}

/* Storage thread. */
static gboolean list_load(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                          gpointer user_data, GError **error)
{
    MkCounter *loads = user_data;
    GPtrArray *list = NULL;
    if (!blocking_db_load(conn, user, &list, error))
        return FALSE;
    mk_counter_add(loads, 1);
    *value = list;
    return TRUE;
}

/* A load failed: an empty list lets held stanzas through (failing open
 * beats holding the user's traffic forever) until the next lookup loads
 * again. */
static gpointer list_fallback(const char *key, gpointer user_data)
{
    return empty_list();
}

const MkUserCacheClass blocking_cache_class = {
    .load = list_load,
    .ref = (gpointer(*)(gpointer))g_ptr_array_ref,
    .unref = (GDestroyNotify)g_ptr_array_unref,
    .fallback = list_fallback,
    .flags = MK_USER_CACHE_SESSIONS,
};
