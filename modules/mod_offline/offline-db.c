/* mod_offline storage: the schema and the statements, run on a storage
 * thread inside an MkDbWork. Values are always bound. */
#include "offline.h"
#include <string.h>

/* One row per stored message: the stanza as the sender's server stamped
 * it, and when it arrived (the XEP-0203 stamp). Rows reference the
 * account, so removing it (also with meerkatctl while the server runs)
 * removes its messages. The id gives the delivery order; only the column
 * type differs between the drivers. */
#define OFFLINE_COLUMNS                                                                            \
    " username TEXT NOT NULL,"                                                                     \
    " domain TEXT NOT NULL,"                                                                       \
    " sender TEXT NOT NULL,"                                                                       \
    " stamp TEXT NOT NULL,"                                                                        \
    " xml TEXT NOT NULL,"                                                                          \
    " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"        \
    ");"                                                                                           \
    "CREATE INDEX offline_messages_user ON offline_messages (username, domain, id)"

const MkMigration offline_migrations[] = {
    {"sqlite3", 1,
     "CREATE TABLE offline_messages (id INTEGER PRIMARY KEY AUTOINCREMENT," OFFLINE_COLUMNS},
    {"pgsql", 1, "CREATE TABLE offline_messages (id BIGSERIAL PRIMARY KEY," OFFLINE_COLUMNS},
    MK_MIGRATIONS_END,
};

static gboolean count_rows(MkDbConn *conn, const char *sql, const char *node, const char *domain,
                           gint64 *count, GError **error)
{
    MkDbParam params[] = {MK_DB_STR(node), MK_DB_STR(domain), MK_DB_END};
    g_autoptr(MkDbResult) r = mk_db_conn_queryv(conn, sql, params, error);
    if (!r)
        return FALSE;
    *count = mk_db_result_rows(r) ? mk_db_result_get_int(r, 0, 0) : 0;
    return TRUE;
}

/* The bare JID part of a stored full JID: the length before '/'. */
static gsize bare_len(const char *jid)
{
    const char *slash = strchr(jid, '/');
    return slash ? (gsize)(slash - jid) : strlen(jid);
}

gboolean offline_db_store(MkDbConn *conn, const char *node, const char *domain,
                          const OfflineLimits *limits, const char *sender, const char *stamp,
                          const char *xml, OfflineStoreResult *result, GError **error)
{
    gint64 n;
    /* Messages to an account that does not exist are not kept (RFC 6121
     * 8.5.1: the sender gets service-unavailable). */
    if (!count_rows(conn, "SELECT COUNT(*) FROM users WHERE username = ? AND domain = ?", node,
                    domain, &n, error))
        return FALSE;
    if (n == 0) {
        *result = OFFLINE_NO_ACCOUNT;
        return TRUE;
    }
    /* One pass over the user's rows (at most max_messages): the totals,
     * and the sender's share, so that no one sender can fill another
     * user's store and make everybody else's messages bounce. */
    MkDbParam params[] = {MK_DB_STR(node), MK_DB_STR(domain), MK_DB_END};
    g_autoptr(MkDbResult) rows = mk_db_conn_queryv(
        conn, "SELECT sender, LENGTH(xml) FROM offline_messages WHERE username = ? AND domain = ?",
        params, error);
    if (!rows)
        return FALSE;
    gint64 count = mk_db_result_rows(rows), bytes = (gint64)strlen(xml);
    gint64 from_count = 1, from_bytes = (gint64)strlen(xml);
    gsize blen = bare_len(sender);
    for (gint64 i = 0; i < count; i++) {
        const char *s = mk_db_result_get_string(rows, (guint)i, 0);
        gint64 len = mk_db_result_get_int(rows, (guint)i, 1);
        bytes += len;
        if (s && bare_len(s) == blen && strncmp(s, sender, blen) == 0) {
            from_count++;
            from_bytes += len;
        }
    }
    if (count >= limits->messages)
        *result = OFFLINE_QUOTA;
    else if (bytes > limits->bytes)
        *result = OFFLINE_QUOTA_BYTES;
    else if (from_count > limits->sender_messages || from_bytes > limits->sender_bytes)
        *result = OFFLINE_QUOTA_SENDER;
    else
        *result = OFFLINE_STORED;
    if (*result != OFFLINE_STORED)
        return TRUE;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        "INSERT INTO offline_messages (username, domain, sender, stamp, xml)"
        " VALUES (?, ?, ?, ?, ?)",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(sender), MK_DB_STR(stamp), MK_DB_STR(xml));
    if (!r)
        return FALSE;
    return TRUE;
}

gboolean offline_db_delete(MkDbConn *conn, GArray *ids, GError **error)
{
    for (guint i = 0; i < ids->len; i++) {
        g_autoptr(MkDbResult) r =
            mk_db_conn_query(conn, error, "DELETE FROM offline_messages WHERE id = ?",
                             MK_DB_INT(g_array_index(ids, gint64, i)));
        if (!r)
            return FALSE;
    }
    return TRUE;
}
