/* mod_roster storage: the schema and every statement, run on a storage
 * thread inside an MkDbWork. Values are always bound. */
#include "roster.h"

/* One step serves both drivers: the SQL is the common subset of sqlite3
 * and PostgreSQL. Rows reference the account so that removing it removes
 * its roster; groups reference their item. Flags are 0/1 integers, read
 * the same on both drivers. A row with in_roster = 0 holds only a pending
 * inbound request from someone not in the roster. */
const MkMigration roster_migrations[] = {
    {NULL, 1,
     "CREATE TABLE roster_items ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " contact TEXT NOT NULL,"
     " name TEXT,"
     " subscription TEXT NOT NULL DEFAULT 'none',"
     " ask INTEGER NOT NULL DEFAULT 0,"
     " approved INTEGER NOT NULL DEFAULT 0,"
     " pending_in TEXT,"
     " in_roster INTEGER NOT NULL DEFAULT 1,"
     " PRIMARY KEY (username, domain, contact),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE TABLE roster_groups ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " contact TEXT NOT NULL,"
     " grp TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, contact, grp),"
     " FOREIGN KEY (username, domain, contact)"
     "  REFERENCES roster_items (username, domain, contact) ON DELETE CASCADE"
     ");"
     "CREATE TABLE roster_versions ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " version BIGINT NOT NULL,"
     " PRIMARY KEY (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

RosterItem *roster_item_new(const char *contact)
{
    RosterItem *item = g_new0(RosterItem, 1);
    item->contact = g_strdup(contact);
    item->groups = g_new0(char *, 1);
    return item;
}

void roster_item_free(RosterItem *item)
{
    if (!item)
        return;
    g_free(item->contact);
    g_free(item->name);
    g_strfreev(item->groups);
    g_free(item->pending_xml);
    g_free(item);
}

static MkDbParam str_or_null(const char *s)
{
    return s ? MK_DB_STR(s) : MK_DB_NULL;
}

#define ITEM_COLUMNS "contact, name, subscription, ask, approved, pending_in, in_roster"

static RosterItem *item_from_row(MkDbResult *res, guint row)
{
    RosterItem *item = roster_item_new(mk_db_result_get_string(res, row, 0));
    item->name = g_strdup(mk_db_result_get_string(res, row, 1));
    item->st.sub = roster_sub_parse(mk_db_result_get_string(res, row, 2));
    item->st.ask = mk_db_result_get_int(res, row, 3) != 0;
    item->st.approved = mk_db_result_get_int(res, row, 4) != 0;
    item->pending_xml = g_strdup(mk_db_result_get_string(res, row, 5));
    item->st.pending_in = item->pending_xml != NULL;
    item->st.in_roster = mk_db_result_get_int(res, row, 6) != 0;
    return item;
}

gboolean roster_db_load_item(MkDbConn *conn, MkJid *user, const char *contact, RosterItem **out,
                             GError **error)
{
    *out = NULL;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT " ITEM_COLUMNS " FROM roster_items"
        " WHERE username = ? AND domain = ? AND contact = ?",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(contact));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) == 0)
        return TRUE;
    g_autoptr(RosterItem) item = item_from_row(res, 0);

    g_autoptr(MkDbResult) groups = mk_db_conn_query(
        conn, error,
        "SELECT grp FROM roster_groups"
        " WHERE username = ? AND domain = ? AND contact = ? ORDER BY grp",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(contact));
    if (!groups)
        return FALSE;
    guint n = mk_db_result_rows(groups);
    g_strfreev(item->groups);
    item->groups = g_new0(char *, n + 1);
    for (guint i = 0; i < n; i++)
        item->groups[i] = g_strdup(mk_db_result_get_string(groups, i, 0));
    *out = g_steal_pointer(&item);
    return TRUE;
}

/* The roster service (mk-roster.h): the contacts in @user's roster, not
 * the requests waiting for an answer (in_roster = 0). */
gboolean roster_db_contacts(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                            GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT contact FROM roster_items WHERE username = ? AND domain = ? AND in_roster = 1",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++)
        g_ptr_array_add(out, g_strdup(mk_db_result_get_string(res, i, 0)));
    return TRUE;
}

/* The roster service's relation (mk-roster.h). Storage thread. */
gboolean roster_db_relation(gpointer data, MkDbConn *conn, MkJid *user, const char *contact,
                            gboolean *from, GPtrArray *groups, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT subscription FROM roster_items WHERE username = ? AND domain = ? AND contact = ?"
        " AND in_roster = 1",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(contact));
    if (!res)
        return FALSE;
    *from = FALSE;
    if (mk_db_result_rows(res) == 0)
        return TRUE;
    *from = (roster_sub_parse(mk_db_result_get_string(res, 0, 0)) & ROSTER_SUB_FROM) != 0;
    g_autoptr(MkDbResult) g = mk_db_conn_query(
        conn, error,
        "SELECT grp FROM roster_groups WHERE username = ? AND domain = ? AND contact = ?",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(contact));
    if (!g)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(g); i++)
        g_ptr_array_add(groups, g_strdup(mk_db_result_get_string(g, i, 0)));
    return TRUE;
}

/* The roster service's presence_subscribers (mk-roster.h). Storage thread. */
gboolean roster_db_presence_subscribers(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                                        GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT contact FROM roster_items WHERE username = ? AND domain = ? AND in_roster = 1"
        " AND subscription IN ('from', 'both')",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++)
        g_ptr_array_add(out, g_strdup(mk_db_result_get_string(res, i, 0)));
    return TRUE;
}

gboolean roster_db_load_all(MkDbConn *conn, MkJid *user, GPtrArray **out, GError **error)
{
    *out = NULL;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT " ITEM_COLUMNS " FROM roster_items WHERE username = ? AND domain = ?"
        " ORDER BY contact",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func((GDestroyNotify)roster_item_free);
    if (mk_db_result_rows(res) == 0) {
        /* Groups belong to items (they are deleted with them): none to
         * read. Saves a query at most logins (roster-preload.c). */
        *out = g_steal_pointer(&items);
        return TRUE;
    }
    g_autoptr(MkDbResult) groups =
        mk_db_conn_query(conn, error,
                         "SELECT contact, grp FROM roster_groups WHERE username = ? AND domain = ?"
                         " ORDER BY contact, grp",
                         MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!groups)
        return FALSE;

    g_autoptr(GHashTable) by_contact = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        RosterItem *item = item_from_row(res, i);
        g_ptr_array_add(items, item);
        g_hash_table_insert(by_contact, item->contact, item);
    }
    /* Groups come sorted by contact: collect each contact's run. */
    g_autoptr(GPtrArray) run = g_ptr_array_new();
    RosterItem *cur = NULL;
    guint n = mk_db_result_rows(groups);
    for (guint i = 0; i <= n; i++) {
        RosterItem *item =
            i < n ? g_hash_table_lookup(by_contact, mk_db_result_get_string(groups, i, 0)) : NULL;
        if (cur && item != cur) {
            g_ptr_array_add(run, NULL);
            g_strfreev(cur->groups);
            /* Steal leaves @run empty and ready for the next contact. */
            cur->groups = (char **)g_ptr_array_steal(run, NULL);
        }
        cur = item;
        if (item)
            g_ptr_array_add(run, g_strdup(mk_db_result_get_string(groups, i, 1)));
    }
    *out = g_steal_pointer(&items);
    return TRUE;
}

gboolean roster_db_delete_item(MkDbConn *conn, MkJid *user, const char *contact, GError **error)
{
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    /* Groups first: the cascade needs foreign keys on, which a driver
     * may lack. */
    g_autoptr(MkDbResult) g = mk_db_conn_query(
        conn, error, "DELETE FROM roster_groups WHERE username = ? AND domain = ? AND contact = ?",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(contact));
    if (!g)
        return FALSE;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error, "DELETE FROM roster_items WHERE username = ? AND domain = ? AND contact = ?",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(contact));
    return r != NULL;
}

gboolean roster_db_save_item(MkDbConn *conn, MkJid *user, const RosterItem *item, gboolean groups,
                             GError **error)
{
    const char *node = mk_jid_node(user), *domain = mk_jid_domain(user);
    if (!item->st.in_roster && !item->st.pending_in)
        return roster_db_delete_item(conn, user, item->contact, error);

    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        "INSERT INTO roster_items (username, domain, contact, name, subscription, ask, approved,"
        " pending_in, in_roster) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (username, domain, contact) DO UPDATE SET name = excluded.name,"
        " subscription = excluded.subscription, ask = excluded.ask,"
        " approved = excluded.approved, pending_in = excluded.pending_in,"
        " in_roster = excluded.in_roster",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(item->contact), str_or_null(item->name),
        MK_DB_STR(roster_sub_name(item->st.sub)), MK_DB_INT(item->st.ask ? 1 : 0),
        MK_DB_INT(item->st.approved ? 1 : 0),
        str_or_null(item->st.pending_in ? item->pending_xml : NULL),
        MK_DB_INT(item->st.in_roster ? 1 : 0));
    if (!r)
        return FALSE;
    if (!groups)
        return TRUE;

    g_autoptr(MkDbResult) d = mk_db_conn_query(
        conn, error, "DELETE FROM roster_groups WHERE username = ? AND domain = ? AND contact = ?",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(item->contact));
    if (!d)
        return FALSE;
    for (guint i = 0; item->groups[i]; i++) {
        g_autoptr(MkDbResult) ins = mk_db_conn_query(
            conn, error,
            "INSERT INTO roster_groups (username, domain, contact, grp) VALUES (?, ?, ?, ?)",
            MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(item->contact),
            MK_DB_STR(item->groups[i]));
        if (!ins)
            return FALSE;
    }
    return TRUE;
}

gboolean roster_db_version(MkDbConn *conn, MkJid *user, gint64 *ver, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT version FROM roster_versions WHERE username = ? AND domain = ?",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    *ver = mk_db_result_rows(res) ? mk_db_result_get_int(res, 0, 0) : 0;
    return TRUE;
}

gboolean roster_db_bump_version(MkDbConn *conn, MkJid *user, gint64 *ver, GError **error)
{
    /* A first version taken from the clock: an account removed and made
     * again does not restart at a number a client may have cached. */
    gint64 first = g_get_real_time() / G_USEC_PER_SEC;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "INSERT INTO roster_versions (username, domain, version) VALUES (?, ?, ?)"
        " ON CONFLICT (username, domain) DO UPDATE SET version = roster_versions.version + 1",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_INT(first));
    if (!res)
        return FALSE;
    return roster_db_version(conn, user, ver, error);
}

gboolean roster_db_user_exists(MkDbConn *conn, MkJid *user, gboolean *exists, GError **error)
{
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                         MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    *exists = mk_db_result_rows(res) > 0;
    return TRUE;
}
