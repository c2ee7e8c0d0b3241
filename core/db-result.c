/* A query on an acquired connection, through its backend, and the rows
 * it returns: copied out of the driver, so a result outlives the
 * connection and may be read on any thread. */
#include "db-priv.h"
#include "metrics.h"

/* On a storage thread, inside MkDbWork only (or with a connection from
 * mk_db_acquire). Returns: (transfer full) the rows (an empty result for
 * statements without rows), or NULL with @error set. */
MkDbResult *mk_db_conn_queryv(MkDbConn *conn, const char *sql, const MkDbParam *params,
                              GError **error)
{
    g_return_val_if_fail(conn != NULL, NULL);
    g_return_val_if_fail(sql != NULL, NULL);
    gint64 start = g_get_monotonic_time();
    MkDbResult *res = conn->db->be_ops->query(conn, sql, params, error);
    mk_metrics_db_query(mk_db_conn_driver(conn), g_get_monotonic_time() - start, res != NULL);
    return res;
}

/* Rows of a result. Any thread. */
guint mk_db_result_rows(const MkDbResult *res)
{
    g_return_val_if_fail(res != NULL, 0);
    return res->rows;
}

guint64 mk_db_result_affected(const MkDbResult *res)
{
    g_return_val_if_fail(res != NULL, 0);
    return res->affected;
}

/* (transfer none) (nullable) NULL for SQL NULL or out of range. */
const char *mk_db_result_get_string(const MkDbResult *res, guint row, guint col)
{
    g_return_val_if_fail(res != NULL, NULL);
    g_return_val_if_fail(row < res->rows && col < res->cols, NULL);
    return res->cells[(gsize)row * res->cols + col];
}

/* The value as an integer; 0 for NULL or text that is no number. PostgreSQL
 * booleans ("t"/"f") read as 1/0, but modules should store integers. */
gint64 mk_db_result_get_int(const MkDbResult *res, guint row, guint col)
{
    const char *s = mk_db_result_get_string(res, row, col);
    if (!s)
        return 0;
    if (g_str_equal(s, "t"))
        return 1;
    if (g_str_equal(s, "f"))
        return 0;
    return g_ascii_strtoll(s, NULL, 10);
}

gboolean mk_db_result_is_null(const MkDbResult *res, guint row, guint col)
{
    g_return_val_if_fail(res != NULL, TRUE);
    g_return_val_if_fail(row < res->rows && col < res->cols, TRUE);
    return res->cells[(gsize)row * res->cols + col] == NULL;
}

/* Any thread. NULL is allowed. */
void mk_db_result_free(MkDbResult *res)
{
    if (!res)
        return;
    if (res->cells) {
        for (gsize i = 0; i < (gsize)res->rows * res->cols; i++)
            g_free(res->cells[i]);
        g_free(res->cells);
    }
    g_free(res);
}
