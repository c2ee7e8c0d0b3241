/* The PostgreSQL backend, on libdbi: connections through libdbi's
 * thread-safe _r API, values quoted by the driver (libdbi has no bound
 * parameters), results copied out of libdbi. */
#include "db-priv.h"
#include <dbi/dbi.h>
#include <string.h>

typedef struct {
    dbi_inst inst;
    /* libdbi keeps an unlocked list of an instance's connections, which
     * dbi_conn_new_r and dbi_conn_close change: serialize those two. */
    GMutex lock;
} PgsqlDb;

static void set_conn_error(dbi_conn conn, int code, GError **error, const char *what)
{
    const char *msg = NULL;
    if (conn)
        dbi_conn_error(conn, &msg);
    g_set_error(error, MK_DB_ERROR, code, "%s: %s", what, msg && *msg ? msg : "unknown error");
}

static gboolean exec_dbi(dbi_conn conn, const char *sql, GError **error)
{
    dbi_result res = dbi_conn_query(conn, sql);
    if (!res) {
        g_autofree char *what = g_strdup_printf("%s failed", sql);
        set_conn_error(conn, MK_DB_ERROR_QUERY, error, what);
        return FALSE;
    }
    dbi_result_free(res);
    return TRUE;
}

/* Loads libdbi's drivers. Main thread. */
static gboolean pgsql_init(MkDb *db, const MkConfigData *cfg, GError **error)
{
    PgsqlDb *pg = g_new0(PgsqlDb, 1);
    g_mutex_init(&pg->lock);
    db->be = pg;
    if (dbi_initialize_r(MK_DBD_DIR, &pg->inst) < 1) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "libdbi found no drivers in %s",
                    MK_DBD_DIR);
        pg->inst = NULL;
        return FALSE;
    }
    /* Errors come back as GErrors; libdbi must not print them itself. */
    dbi_set_verbosity_r(0, pg->inst);
    return TRUE;
}

static void pgsql_shutdown(MkDb *db)
{
    PgsqlDb *pg = db->be;
    if (!pg)
        return;
    if (pg->inst)
        dbi_shutdown_r(pg->inst);
    g_mutex_clear(&pg->lock);
    g_free(pg);
    db->be = NULL;
}

static void pgsql_close(MkDb *db, gpointer handle)
{
    PgsqlDb *pg = db->be;
    if (!handle)
        return;
    g_mutex_lock(&pg->lock);
    dbi_conn_close(handle);
    g_mutex_unlock(&pg->lock);
}

/* A new connection with the configured options. Any thread. */
static gpointer pgsql_open(MkDb *db, GError **error)
{
    PgsqlDb *pg = db->be;
    g_mutex_lock(&pg->lock);
    dbi_conn c = dbi_conn_new_r("pgsql", pg->inst);
    g_mutex_unlock(&pg->lock);
    if (!c) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                    "cannot load the libdbi driver \"pgsql\" from %s", MK_DBD_DIR);
        return NULL;
    }
    if (db->host && *db->host)
        dbi_conn_set_option(c, "host", db->host);
    if (db->port)
        dbi_conn_set_option_numeric(c, "port", db->port);
    if (db->user && *db->user)
        dbi_conn_set_option(c, "username", db->user);
    if (db->password && *db->password)
        dbi_conn_set_option(c, "password", db->password);
    dbi_conn_set_option(c, "dbname", db->name);
    dbi_conn_set_option(c, "encoding", "UTF-8");
    /* An unreachable server must give an error, not a hang. */
    dbi_conn_set_option(c, "pgsql_connect_timeout", "5");
    if (dbi_conn_connect(c) < 0) {
        g_autofree char *what = g_strdup_printf(
            "cannot connect to PostgreSQL database %s at %s:%u as %s", db->name,
            db->host && *db->host ? db->host : "(socket)", db->port ? db->port : 5432,
            db->user && *db->user ? db->user : "(default user)");
        set_conn_error(c, MK_DB_ERROR_CONNECT, error, what);
        pgsql_close(db, c);
        return NULL;
    }
    if (!exec_dbi(c, "SET client_min_messages TO WARNING", NULL))
        g_debug("storage: cannot quieten PostgreSQL notices");
    return c;
}

static gboolean pgsql_alive(MkDb *db, gpointer handle)
{
    return dbi_conn_ping(handle) == 1;
}

/* Appends @p to @out quoted for @conn's driver. */
static gboolean append_param(dbi_conn conn, GString *out, const MkDbParam *p, GError **error)
{
    switch (p->type) {
    case MK_DB_PARAM_STR: {
        if (!p->s) {
            g_string_append(out, "NULL");
            return TRUE;
        }
        char *quoted = NULL;
        if (dbi_conn_quote_string_copy(conn, p->s, &quoted) == 0 || !quoted) {
            free(quoted);
            set_conn_error(conn, MK_DB_ERROR_QUERY, error, "cannot quote a parameter");
            return FALSE;
        }
        g_string_append(out, quoted);
        free(quoted);
        return TRUE;
    }
    case MK_DB_PARAM_INT:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, p->i);
        return TRUE;
    case MK_DB_PARAM_NULL:
        g_string_append(out, "NULL");
        return TRUE;
    case MK_DB_PARAM_END:
    default:
        break;
    }
    g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "bad parameter type %d", p->type);
    return FALSE;
}

/* Replaces each `?` outside quotes ('...' literals, "..." identifiers)
 * with the next parameter, quoted. Returns: (transfer full) the SQL, or
 * NULL when the count of `?` and of parameters differ. */
static char *bind_params(dbi_conn conn, const char *sql, const MkDbParam *params, GError **error)
{
    guint n_params = 0;
    while (params && params[n_params].type != MK_DB_PARAM_END)
        n_params++;
    g_autoptr(GString) out = g_string_sized_new(strlen(sql) + 32);
    char quote = 0;
    guint used = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            /* A doubled quote ('') toggles out and back in: still right. */
            if (*p == quote)
                quote = 0;
            g_string_append_c(out, *p);
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            g_string_append_c(out, *p);
        } else if (*p == '?') {
            if (used >= n_params) {
                g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                            "more placeholders than the %u parameters given: %s", n_params, sql);
                return NULL;
            }
            if (!append_param(conn, out, &params[used++], error))
                return NULL;
        } else {
            g_string_append_c(out, *p);
        }
    }
    if (used != n_params) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                    "%u parameters given for %u placeholders: %s", n_params, used, sql);
        return NULL;
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* Copies every row out of @res, which the caller frees. */
static MkDbResult *copy_result(dbi_result res)
{
    MkDbResult *r = g_new0(MkDbResult, 1);
    unsigned long long rows = dbi_result_get_numrows(res);
    unsigned int cols = dbi_result_get_numfields(res);
    unsigned long long affected = dbi_result_get_numrows_affected(res);
    r->rows = (rows == DBI_ROW_ERROR) ? 0 : (guint)rows;
    r->cols = (cols == DBI_FIELD_ERROR) ? 0 : cols;
    r->affected = (affected == DBI_ROW_ERROR) ? 0 : affected;
    if (r->rows == 0 || r->cols == 0) {
        r->rows = r->cols == 0 ? 0 : r->rows;
        return r;
    }
    r->cells = g_new0(char *, (gsize)r->rows * r->cols);
    guint row = 0;
    while (row < r->rows && dbi_result_next_row(res)) {
        for (guint col = 0; col < r->cols; col++) {
            if (dbi_result_field_is_null_idx(res, col + 1))
                continue;
            char *v = dbi_result_get_as_string_copy_idx(res, col + 1);
            /* libdbi allocates with malloc: move the value to GLib's heap. */
            r->cells[(gsize)row * r->cols + col] = g_strdup(v ? v : "");
            free(v);
        }
        row++;
    }
    r->rows = row;
    return r;
}

static MkDbResult *pgsql_query(MkDbConn *conn, const char *sql, const MkDbParam *params,
                               GError **error)
{
    g_autofree char *bound = bind_params(conn->handle, sql, params, error);
    if (!bound)
        return NULL;
    dbi_result res = dbi_conn_query(conn->handle, bound);
    if (!res) {
        set_conn_error(conn->handle, MK_DB_ERROR_QUERY, error, "query failed");
        g_prefix_error(error, "%s: ", sql);
        return NULL;
    }
    MkDbResult *r = copy_result(res);
    dbi_result_free(res);
    return r;
}

static gboolean pgsql_exec(MkDbConn *conn, const char *sql, GError **error)
{
    return exec_dbi(conn->handle, sql, error);
}

const MkDbBackend mk_db_pgsql_backend = {
    .name = "pgsql",
    .init = pgsql_init,
    .shutdown = pgsql_shutdown,
    .conn_open = pgsql_open,
    .conn_close = pgsql_close,
    .conn_alive = pgsql_alive,
    .query = pgsql_query,
    .exec = pgsql_exec,
    .begin = "BEGIN",
    /* A BEGIN/COMMIT would be two more round trips to the server. */
    .reads_in_transaction = FALSE,
    .migration_lock = "LOCK TABLE meerkat_schema IN SHARE ROW EXCLUSIVE MODE",
};
