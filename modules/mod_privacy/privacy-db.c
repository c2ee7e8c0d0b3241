/* mod_privacy storage: the schema and every statement, run on a storage
 * thread inside an MkDbWork. Values are always bound. */
#include "privacy.h"

/* One step serves sqlite3 and PostgreSQL (the common subset). Items go
 * with their list, lists and the default with the account. 'ord' is
 * BIGINT: XEP-0016 orders are unsignedInt. 'kinds' holds PRIV_* bits. */
const MkMigration privacy_migrations[] = {
    {NULL, 1,
     "CREATE TABLE privacy_lists ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, name),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE TABLE privacy_items ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " ord BIGINT NOT NULL,"
     " type TEXT,"
     " value TEXT,"
     " action TEXT NOT NULL,"
     " kinds INTEGER NOT NULL DEFAULT 0,"
     " PRIMARY KEY (username, domain, name, ord),"
     " FOREIGN KEY (username, domain, name)"
     "  REFERENCES privacy_lists (username, domain, name) ON DELETE CASCADE"
     ");"
     "CREATE TABLE privacy_default ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " PRIMARY KEY (username, domain),"
     " FOREIGN KEY (username, domain, name)"
     "  REFERENCES privacy_lists (username, domain, name) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

void priv_list_free(PrivList *l)
{
    if (!l)
        return;
    g_free(l->name);
    g_ptr_array_unref(l->items);
    g_free(l);
}

static void contact_free(gpointer data)
{
    PrivContact *c = data;
    g_strfreev(c->groups);
    g_free(c);
}

PrivState *priv_state_new(void)
{
    PrivState *st = g_new0(PrivState, 1);
    st->ref = 1;
    st->lists =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)priv_list_free);
    st->roster = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, contact_free);
    st->groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    st->roster_ver = -1;
    return st;
}

PrivState *priv_state_ref(PrivState *st)
{
    g_atomic_int_inc(&st->ref);
    return st;
}

void priv_state_unref(PrivState *st)
{
    if (!st || !g_atomic_int_dec_and_test(&st->ref))
        return;
    g_free(st->default_name);
    g_hash_table_destroy(st->lists);
    /* The roster tables may be shared with other states (priv_db_load_lists). */
    g_hash_table_unref(st->roster);
    g_hash_table_unref(st->groups);
    g_free(st);
}

static PrivType type_parse(const char *s)
{
    if (g_strcmp0(s, "jid") == 0)
        return PRIV_TYPE_JID;
    if (g_strcmp0(s, "group") == 0)
        return PRIV_TYPE_GROUP;
    if (g_strcmp0(s, "subscription") == 0)
        return PRIV_TYPE_SUBSCRIPTION;
    return PRIV_TYPE_NONE;
}

static const char *type_name(PrivType t)
{
    switch (t) {
    case PRIV_TYPE_JID:
        return "jid";
    case PRIV_TYPE_GROUP:
        return "group";
    case PRIV_TYPE_SUBSCRIPTION:
        return "subscription";
    default:
        return NULL;
    }
}

static MkDbParam str_or_null(const char *s)
{
    return s ? MK_DB_STR(s) : MK_DB_NULL;
}

/* A stored row back to an item; NULL when a hand-edited row is unusable. */
static PrivItem *item_from_row(MkDbResult *res, guint row)
{
    g_autoptr(PrivItem) item = g_new0(PrivItem, 1);
    item->order = (guint32)mk_db_result_get_int(res, row, 1);
    item->type = type_parse(mk_db_result_get_string(res, row, 2));
    item->value = g_strdup(mk_db_result_get_string(res, row, 3));
    item->allow = g_strcmp0(mk_db_result_get_string(res, row, 4), "allow") == 0;
    item->kinds = (guint)mk_db_result_get_int(res, row, 5);
    if (item->type == PRIV_TYPE_JID) {
        g_autoptr(MkJid) jid = item->value ? mk_jid_new(item->value, NULL) : NULL;
        if (!jid)
            return NULL;
        item->node = g_strdup(mk_jid_node(jid));
        item->domain = g_strdup(mk_jid_domain(jid));
        item->res = g_strdup(mk_jid_resource(jid));
    } else if (item->type == PRIV_TYPE_SUBSCRIPTION) {
        int sub = priv_sub_parse(item->value);
        if (sub < 0)
            return NULL;
        item->sub = (guint)sub;
    }
    return g_steal_pointer(&item);
}

/* mod_roster's version of @user's roster (it changes with every change
 * a roster push shows), or -1 without mod_roster's schema. */
static gboolean roster_version(MkDbConn *conn, MkJid *user, gint64 *ver, GError **error)
{
    *ver = -1;
    g_autoptr(MkDbResult) have = mk_db_conn_query(
        conn, error, "SELECT 1 FROM meerkat_schema WHERE component = ?", MK_DB_STR("mod_roster"));
    if (!have)
        return FALSE;
    if (mk_db_result_rows(have) == 0)
        return TRUE;
    g_autoptr(MkDbResult) v = mk_db_conn_query(
        conn, error, "SELECT version FROM roster_versions WHERE username = ? AND domain = ?",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!v)
        return FALSE;
    *ver = mk_db_result_rows(v) ? mk_db_result_get_int(v, 0, 0) : 0;
    return TRUE;
}

/* The roster as the lists see it, when mod_roster's schema is there
 * (st->roster_ver >= 0). */
static gboolean load_roster(MkDbConn *conn, MkJid *user, PrivState *st, GError **error)
{
    if (st->roster_ver < 0)
        return TRUE;
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    g_autoptr(MkDbResult) items =
        mk_db_conn_query(conn, error,
                         "SELECT contact, subscription FROM roster_items"
                         " WHERE username = ? AND domain = ? AND in_roster = 1",
                         MK_DB_STR(node), MK_DB_STR(domain));
    if (!items)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(items); i++) {
        PrivContact *c = g_new0(PrivContact, 1);
        int sub = priv_sub_parse(mk_db_result_get_string(items, i, 1));
        c->sub = sub < 0 ? PRIV_SUB_NONE : (guint)sub;
        c->groups = g_new0(char *, 1);
        g_hash_table_replace(st->roster, g_strdup(mk_db_result_get_string(items, i, 0)), c);
    }
    g_autoptr(MkDbResult) groups =
        mk_db_conn_query(conn, error,
                         "SELECT contact, grp FROM roster_groups WHERE username = ? AND domain = ?"
                         " ORDER BY contact, grp",
                         MK_DB_STR(node), MK_DB_STR(domain));
    if (!groups)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(groups); i++) {
        const char *grp = mk_db_result_get_string(groups, i, 1);
        g_hash_table_add(st->groups, g_strdup(grp));
        PrivContact *c = g_hash_table_lookup(st->roster, mk_db_result_get_string(groups, i, 0));
        if (!c)
            continue;
        guint n = g_strv_length(c->groups);
        c->groups = g_renew(char *, c->groups, n + 2);
        c->groups[n] = g_strdup(grp);
        c->groups[n + 1] = NULL;
    }
    return TRUE;
}

gboolean priv_db_load(MkDbConn *conn, MkJid *user, PrivState **out, GError **error)
{
    return priv_db_load_lists(conn, user, NULL, out, error);
}

gboolean priv_db_load_lists(MkDbConn *conn, MkJid *user, PrivState *roster_from, PrivState **out,
                            GError **error)
{
    *out = NULL;
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    g_autoptr(PrivState) st = priv_state_new();
    if (!roster_version(conn, user, &st->roster_ver, error))
        return FALSE;
    gboolean share =
        roster_from && roster_from->roster_ver >= 0 && roster_from->roster_ver == st->roster_ver;
    if (share) {
        /* Immutable once published: shared, not read again. */
        g_hash_table_unref(st->roster);
        g_hash_table_unref(st->groups);
        st->roster = g_hash_table_ref(roster_from->roster);
        st->groups = g_hash_table_ref(roster_from->groups);
    }

    g_autoptr(MkDbResult) lists = mk_db_conn_query(
        conn, error, "SELECT name FROM privacy_lists WHERE username = ? AND domain = ?",
        MK_DB_STR(node), MK_DB_STR(domain));
    if (!lists)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(lists); i++) {
        PrivList *l = g_new0(PrivList, 1);
        l->name = g_strdup(mk_db_result_get_string(lists, i, 0));
        l->items = g_ptr_array_new_with_free_func((GDestroyNotify)priv_item_free);
        g_hash_table_replace(st->lists, l->name, l);
    }
    g_autoptr(MkDbResult) items =
        mk_db_conn_query(conn, error,
                         "SELECT name, ord, type, value, action, kinds FROM privacy_items"
                         " WHERE username = ? AND domain = ? ORDER BY name, ord",
                         MK_DB_STR(node), MK_DB_STR(domain));
    if (!items)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(items); i++) {
        PrivList *l = g_hash_table_lookup(st->lists, mk_db_result_get_string(items, i, 0));
        PrivItem *item = l ? item_from_row(items, i) : NULL;
        if (item)
            g_ptr_array_add(l->items, item);
    }
    g_autoptr(MkDbResult) def = mk_db_conn_query(
        conn, error, "SELECT name FROM privacy_default WHERE username = ? AND domain = ?",
        MK_DB_STR(node), MK_DB_STR(domain));
    if (!def)
        return FALSE;
    if (mk_db_result_rows(def))
        st->default_name = g_strdup(mk_db_result_get_string(def, 0, 0));
    if (!share && !load_roster(conn, user, st, error))
        return FALSE;
    *out = g_steal_pointer(&st);
    return TRUE;
}

gboolean priv_db_delete_list(MkDbConn *conn, MkJid *user, const char *name, GError **error)
{
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    /* Children first: the cascade needs foreign keys on, which a driver
     * may lack. */
    static const char *const sql[] = {
        "DELETE FROM privacy_default WHERE username = ? AND domain = ? AND name = ?",
        "DELETE FROM privacy_items WHERE username = ? AND domain = ? AND name = ?",
        "DELETE FROM privacy_lists WHERE username = ? AND domain = ? AND name = ?",
    };
    for (guint i = 0; i < G_N_ELEMENTS(sql); i++) {
        g_autoptr(MkDbResult) r = mk_db_conn_query(conn, error, sql[i], MK_DB_STR(node),
                                                   MK_DB_STR(domain), MK_DB_STR(name));
        if (!r)
            return FALSE;
    }
    return TRUE;
}

gboolean priv_db_save_list(MkDbConn *conn, MkJid *user, const char *name, GPtrArray *items,
                           GError **error)
{
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    g_autoptr(MkDbResult) l =
        mk_db_conn_query(conn, error,
                         "INSERT INTO privacy_lists (username, domain, name) VALUES (?, ?, ?)"
                         " ON CONFLICT DO NOTHING",
                         MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(name));
    if (!l)
        return FALSE;
    g_autoptr(MkDbResult) d = mk_db_conn_query(
        conn, error, "DELETE FROM privacy_items WHERE username = ? AND domain = ? AND name = ?",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(name));
    if (!d)
        return FALSE;
    for (guint i = 0; i < items->len; i++) {
        const PrivItem *it = g_ptr_array_index(items, i);
        g_autoptr(MkDbResult) r = mk_db_conn_query(
            conn, error,
            "INSERT INTO privacy_items (username, domain, name, ord, type, value, action, kinds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(name), MK_DB_INT(it->order),
            str_or_null(type_name(it->type)), str_or_null(it->value),
            MK_DB_STR(it->allow ? "allow" : "deny"), MK_DB_INT(it->kinds));
        if (!r)
            return FALSE;
    }
    return TRUE;
}

gboolean priv_db_set_default(MkDbConn *conn, MkJid *user, const char *name, GError **error)
{
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    g_autoptr(MkDbResult) r =
        name ? mk_db_conn_query(
                   conn, error,
                   "INSERT INTO privacy_default (username, domain, name) VALUES (?, ?, ?)"
                   " ON CONFLICT (username, domain) DO UPDATE SET name = excluded.name",
                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(name))
             : mk_db_conn_query(conn, error,
                                "DELETE FROM privacy_default WHERE username = ? AND domain = ?",
                                MK_DB_STR(node), MK_DB_STR(domain));
    return r != NULL;
}
