/* Transactions on an acquired connection: BEGIN/COMMIT around a unit
 * of work, savepoints when nested, and batches of reads. */
#include "db-priv.h"

static gboolean conn_exec(MkDbConn *conn, const char *sql, GError **error)
{
    return conn->db->be_ops->exec(conn, sql, error);
}

/* Runs @work inside BEGIN/COMMIT on @conn (ROLLBACK when it fails).
 * Nested calls use a savepoint, so a failing inner step undoes only
 * itself. Storage thread. */
gboolean mk_db_conn_transaction(MkDbConn *conn, MkDbWork work, gpointer user_data, GError **error)
{
    g_return_val_if_fail(conn != NULL && work != NULL, FALSE);
    g_autofree char *savepoint = NULL;
    const char *begin;
    if (conn->tx_depth > 0) {
        savepoint = g_strdup_printf("mk_sp_%u", conn->tx_depth);
        begin = NULL;
    } else {
        begin = conn->db->be_ops->begin;
    }
    g_autofree char *sp_sql = savepoint ? g_strdup_printf("SAVEPOINT %s", savepoint) : NULL;
    if (!conn_exec(conn, begin ? begin : sp_sql, error))
        return FALSE;
    conn->tx_depth++;

    GError *werr = NULL;
    gboolean ok = work(conn, user_data, &werr);
    if (!ok && !werr)
        g_set_error_literal(&werr, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                            "the transaction's work failed without saying why");
    /* COMMIT and ROLLBACK as string constants: sqlite's statement cache
     * finds those by their address, without hashing (db-sqlite.c). */
    if (ok) {
        g_autofree char *end =
            savepoint ? g_strdup_printf("RELEASE SAVEPOINT %s", savepoint) : NULL;
        ok = conn_exec(conn, end ? end : "COMMIT", &werr);
    }
    if (!ok) {
        g_autofree char *undo =
            savepoint ? g_strdup_printf("ROLLBACK TO SAVEPOINT %s", savepoint) : NULL;
        g_autoptr(GError) rerr = NULL;
        if (!conn_exec(conn, undo ? undo : "ROLLBACK", &rerr))
            g_debug("storage: %s", rerr->message);
        if (savepoint) {
            g_autofree char *rel = g_strdup_printf("RELEASE SAVEPOINT %s", savepoint);
            conn_exec(conn, rel, NULL);
        }
    }
    conn->tx_depth--;
    if (!ok)
        g_propagate_error(error, werr);
    return ok;
}

/* See db.h. */
gboolean mk_db_conn_reads(MkDbConn *conn, MkDbWork work, gpointer user_data, GError **error)
{
    g_return_val_if_fail(conn != NULL && work != NULL, FALSE);
    if (!conn->db->be_ops->reads_in_transaction || conn->tx_depth > 0)
        return work(conn, user_data, error);
    g_autoptr(GError) berr = NULL;
    if (!conn_exec(conn, "BEGIN", &berr)) {
        /* Not worth failing the reads for. */
        g_debug("storage: %s", berr->message);
        return work(conn, user_data, error);
    }
    conn->tx_depth++;
    gboolean ok = work(conn, user_data, error);
    conn->tx_depth--;
    g_autoptr(GError) cerr = NULL;
    if (!conn_exec(conn, "COMMIT", &cerr)) {
        g_debug("storage: %s", cerr->message);
        conn_exec(conn, "ROLLBACK", NULL);
    }
    return ok;
}
