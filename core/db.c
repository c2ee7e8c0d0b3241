/* The storage layer over libdbi: a pool of connections, bound parameters,
 * results copied out of libdbi, transactions and schema migrations.
 * See db.h. Asynchronous execution lives in db-async.c.
 *
 * COMPAT: libdbi's sqlite3 driver (0.9.0) guesses column types by parsing
 * every SELECT with hand-written string code that loops forever when
 * "from" appears inside a word (a column named from_jid, or a value like
 * 'from-x'), dereferences NULL on unbalanced parentheses in values and
 * strcpy()s column names into 128-byte stack buffers. So with sqlite3,
 * libdbi opens, configures, pings and closes the connection, but queries
 * run through SQLite's own prepared statements on the handle libdbi
 * opened, with real bound parameters. The SQLite functions are looked up
 * at run time in the libsqlite3 that the driver already loaded, so the
 * build needs nothing beyond libdbi. */
#include "db.h"
#include "conffile.h"
#include <dbi/dbi-dev.h>
#include <dbi/dbi.h>
#include <errno.h>
#include <gmodule.h>
#include <string.h>

/* How long mk_db_acquire waits for a free connection before failing, so
 * a stuck database gives errors rather than an ever-growing queue. */
#define MK_DB_ACQUIRE_TIMEOUT_S 30

/* The part of SQLite's C API we use; the ABI of these is stable. */
typedef struct sqlite3 Sq3;
typedef struct sqlite3_stmt Sq3Stmt;
#define SQ3_OK     0
#define SQ3_ROW    100
#define SQ3_DONE   101
#define SQ3_NULL   5
#define SQ3_STATIC ((void (*)(void *))0)
typedef struct {
    GModule *module;
    int (*prepare_v2)(Sq3 *, const char *, int, Sq3Stmt **, const char **);
    int (*bind_text)(Sq3Stmt *, int, const char *, int, void (*)(void *));
    int (*bind_int64)(Sq3Stmt *, int, long long);
    int (*bind_null)(Sq3Stmt *, int);
    int (*bind_parameter_count)(Sq3Stmt *);
    int (*step)(Sq3Stmt *);
    int (*column_count)(Sq3Stmt *);
    int (*column_type)(Sq3Stmt *, int);
    const unsigned char *(*column_text)(Sq3Stmt *, int);
    int (*finalize)(Sq3Stmt *);
    int (*reset)(Sq3Stmt *);
    int (*clear_bindings)(Sq3Stmt *);
    int (*changes)(Sq3 *);
    const char *(*errmsg)(Sq3 *);
    int (*stmt_readonly)(Sq3Stmt *);
} SqliteApi;

struct MkDb {
    dbi_inst inst;
    SqliteApi sq; /* sqlite3 only */
    char *driver; /* "sqlite3" | "pgsql" */
    /* sqlite3 */
    char *sqlite_dir;
    char *sqlite_file;
    /* pgsql (and the name of the database for both) */
    char *name;
    char *host;
    guint16 port;
    char *user;
    char *password;

    guint pool_size;
    GMutex lock;
    /* libdbi keeps an unlocked list of an instance's connections, which
     * dbi_conn_new_r and dbi_conn_close change: serialize those two. */
    GMutex dbi_lock;
    GCond cond;
    GQueue idle;      /* of MkDbConn*: open, not in use */
    guint waiting;    /* threads in mk_db_acquire's wait (GLib's g_cond_signal
                         is a futex system call even with nobody waiting) */
    guint n_open;     /* idle + in use */
    MkDbAsync *async; /* db-async.c */
};

struct MkDbConn {
    MkDb *db;
    dbi_conn conn;
    guint tx_depth; /* 0 = autocommit; >0 = inside BEGIN (+ savepoints) */
    /* sqlite3: SQL text -> prepared Sq3Stmt, kept for the connection's
     * life. Compiling a statement cost more than running it (a login's
     * few queries spent most of their time in sqlite3_prepare_v2: see
     * docs/benchmarks.md). Finalized before the connection closes. */
    GHashTable *stmts;
    /* The last statements by the address of their SQL text (most is a
     * string constant): a hit costs a strcmp instead of hashing the whole
     * text, ~2% of a login. Scanned in full (comparing a few pointers is
     * cheaper than one hash), so that two statements used in turn never
     * evict each other as with one slot per address. Replaced round-robin
     * from next_recent. Keys point into stmts' own keys. */
    struct {
        const char *sql_ptr;
        const char *key;
        Sq3Stmt *st;
    } recent[16];
    guint next_recent;
};

/* Statements cached per connection at most; more (generated SQL) are
 * prepared and finalized each time. */
#define MK_DB_STMT_CACHE_MAX 128

struct MkDbResult {
    guint rows;
    guint cols;
    guint64 affected;
    char **cells; /* rows * cols; NULL for SQL NULL */
};

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-db-error-quark, mk_db_error)
/* clang-format on */

/* ------------------------------------------------------------------ */
/* Connections */

static void set_conn_error(dbi_conn conn, int code, GError **error, const char *what)
{
    const char *msg = NULL;
    if (conn)
        dbi_conn_error(conn, &msg);
    g_set_error(error, MK_DB_ERROR, code, "%s: %s", what, msg && *msg ? msg : "unknown error");
}

/* Runs one statement whose result does not matter, through SQLite's API
 * for sqlite3 (see the COMPAT note above) or libdbi otherwise. */
static gboolean exec_simple(MkDb *db, dbi_conn conn, const char *sql, GError **error)
{
    if (db->sq.module) {
        Sq3 *h = ((dbi_conn_t *)conn)->connection;
        Sq3Stmt *st = NULL;
        int rc = db->sq.prepare_v2(h, sql, -1, &st, NULL);
        if (rc == SQ3_OK && st) {
            while ((rc = db->sq.step(st)) == SQ3_ROW)
                ;
            if (rc == SQ3_DONE)
                rc = SQ3_OK;
        }
        if (rc != SQ3_OK)
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "%s failed: %s", sql,
                        db->sq.errmsg(h));
        if (st)
            db->sq.finalize(st);
        return rc == SQ3_OK;
    }
    dbi_result res = dbi_conn_query(conn, sql);
    if (!res) {
        g_autofree char *what = g_strdup_printf("%s failed", sql);
        set_conn_error(conn, MK_DB_ERROR_QUERY, error, what);
        return FALSE;
    }
    dbi_result_free(res);
    return TRUE;
}

static void conn_close(MkDb *db, dbi_conn c)
{
    g_mutex_lock(&db->dbi_lock);
    dbi_conn_close(c);
    g_mutex_unlock(&db->dbi_lock);
}

static gboolean conn_exec(MkDbConn *conn, const char *sql, GError **error);

/* Finalizes @c's cached statements: sqlite3_close refuses a connection
 * that still has some. The thread holding @c. */
static void conn_drop_stmts(MkDbConn *c)
{
    if (!c->stmts)
        return;
    GHashTableIter it;
    gpointer st;
    g_hash_table_iter_init(&it, c->stmts);
    while (g_hash_table_iter_next(&it, NULL, &st))
        c->db->sq.finalize(st);
    g_clear_pointer(&c->stmts, g_hash_table_destroy);
    memset(c->recent, 0, sizeof c->recent);
    c->next_recent = 0;
}

/* dbi_conn_ping, except for sqlite3: its database is a file this
 * process has open, which no server restart or idle timeout takes away.
 * (The check it had, a SELECT 1 that never reads the file, could not
 * fail and cost ~3k instructions per acquire, three per login.) */
static gboolean conn_alive(MkDb *db, dbi_conn c)
{
    if (db->sq.module)
        return TRUE;
    return dbi_conn_ping(c) == 1;
}

/* Opens a new libdbi connection with the driver's options and the
 * per-connection settings. Any thread. */
static dbi_conn conn_open(MkDb *db, GError **error)
{
    g_mutex_lock(&db->dbi_lock);
    dbi_conn c = dbi_conn_new_r(db->driver, db->inst);
    g_mutex_unlock(&db->dbi_lock);
    if (!c) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                    "cannot load the libdbi driver \"%s\" from %s", db->driver, MK_DBD_DIR);
        return NULL;
    }
    if (g_str_equal(db->driver, "sqlite3")) {
        dbi_conn_set_option(c, "sqlite3_dbdir", db->sqlite_dir);
        dbi_conn_set_option(c, "dbname", db->sqlite_file);
        /* Wait for another writer (meerkatctl, another thread) instead of
         * failing at once with SQLITE_BUSY. */
        dbi_conn_set_option_numeric(c, "sqlite3_timeout", 5000);
    } else {
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
    }
    if (dbi_conn_connect(c) < 0) {
        g_autofree char *what =
            g_str_equal(db->driver, "pgsql")
                ? g_strdup_printf("cannot connect to PostgreSQL database %s at %s:%u as %s",
                                  db->name, db->host && *db->host ? db->host : "(socket)",
                                  db->port ? db->port : 5432,
                                  db->user && *db->user ? db->user : "(default user)")
                : g_strdup_printf("cannot open sqlite database %s", db->name);
        set_conn_error(c, MK_DB_ERROR_CONNECT, error, what);
        conn_close(db, c);
        return NULL;
    }
    if (g_str_equal(db->driver, "pgsql") &&
        !exec_simple(db, c, "SET client_min_messages TO WARNING", NULL))
        g_debug("storage: cannot quieten PostgreSQL notices");
    if (g_str_equal(db->driver, "sqlite3")) {
        /* WAL lets readers and one writer (possibly meerkatctl in another
         * process) work at once; foreign keys make ON DELETE CASCADE work. */
        g_autoptr(GError) perr = NULL;
        if (!exec_simple(db, c, "PRAGMA journal_mode=WAL", &perr) ||
            !exec_simple(db, c, "PRAGMA foreign_keys=ON", &perr) ||
            !exec_simple(db, c, "PRAGMA synchronous=NORMAL", &perr)) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "setting up %s: %s", db->name,
                        perr->message);
            conn_close(db, c);
            return NULL;
        }
    }
    return c;
}

static gboolean sqlite_api_load(SqliteApi *api, GError **error)
{
    /* The libdbi driver loaded it already: this only takes a reference. */
    api->module = g_module_open("libsqlite3.so.0", G_MODULE_BIND_LOCAL);
    if (!api->module) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "cannot load libsqlite3: %s",
                    g_module_error());
        return FALSE;
    }
    struct {
        const char *name;
        gpointer *slot;
    } syms[] = {
        {"sqlite3_prepare_v2", (gpointer *)&api->prepare_v2},
        {"sqlite3_bind_text", (gpointer *)&api->bind_text},
        {"sqlite3_bind_int64", (gpointer *)&api->bind_int64},
        {"sqlite3_bind_null", (gpointer *)&api->bind_null},
        {"sqlite3_bind_parameter_count", (gpointer *)&api->bind_parameter_count},
        {"sqlite3_step", (gpointer *)&api->step},
        {"sqlite3_column_count", (gpointer *)&api->column_count},
        {"sqlite3_column_type", (gpointer *)&api->column_type},
        {"sqlite3_column_text", (gpointer *)&api->column_text},
        {"sqlite3_finalize", (gpointer *)&api->finalize},
        {"sqlite3_reset", (gpointer *)&api->reset},
        {"sqlite3_clear_bindings", (gpointer *)&api->clear_bindings},
        {"sqlite3_changes", (gpointer *)&api->changes},
        {"sqlite3_errmsg", (gpointer *)&api->errmsg},
        {"sqlite3_stmt_readonly", (gpointer *)&api->stmt_readonly},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(syms); i++) {
        if (!g_module_symbol(api->module, syms[i].name, syms[i].slot) || !*syms[i].slot) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "libsqlite3 lacks %s",
                        syms[i].name);
            return FALSE;
        }
    }
    return TRUE;
}

/* Opens the pool (connecting once to fail fast) and sets sqlite to WAL.
 * Returns: (transfer full) or NULL with MK_DB_ERROR. Main thread. */
MkDb *mk_db_open(const MkConfigData *cfg, GError **error)
{
    g_return_val_if_fail(cfg != NULL, NULL);
    const char *driver = cfg->db_driver ? cfg->db_driver : "sqlite3";
    if (!g_str_equal(driver, "sqlite3") && !g_str_equal(driver, "pgsql")) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                    "unknown storage driver \"%s\" (expected sqlite3 or pgsql)", driver);
        return NULL;
    }
    if (!cfg->db_name || !*cfg->db_name) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "no database name configured");
        return NULL;
    }
    MkDb *db = g_new0(MkDb, 1);
    g_mutex_init(&db->lock);
    g_mutex_init(&db->dbi_lock);
    g_cond_init(&db->cond);
    g_queue_init(&db->idle);
    db->driver = g_strdup(driver);
    db->name = g_strdup(cfg->db_name);
    db->host = g_strdup(cfg->db_host);
    db->port = cfg->db_port;
    db->user = g_strdup(cfg->db_user);
    db->password = g_strdup(cfg->db_password);
    db->pool_size = MAX(cfg->db_pool_size, 1);

    if (g_str_equal(driver, "sqlite3")) {
        if (!g_path_is_absolute(cfg->db_name)) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                        "sqlite database path %s is not absolute", cfg->db_name);
            mk_db_close(db);
            return NULL;
        }
        db->sqlite_dir = g_path_get_dirname(cfg->db_name);
        db->sqlite_file = g_path_get_basename(cfg->db_name);
        if (g_mkdir_with_parents(db->sqlite_dir, 0750) != 0) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "cannot create %s: %s",
                        db->sqlite_dir, g_strerror(errno));
            mk_db_close(db);
            return NULL;
        }
    }

    if (dbi_initialize_r(MK_DBD_DIR, &db->inst) < 1) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "libdbi found no drivers in %s",
                    MK_DBD_DIR);
        db->inst = NULL;
        mk_db_close(db);
        return NULL;
    }
    /* Errors come back as GErrors; libdbi must not print them itself. */
    dbi_set_verbosity_r(0, db->inst);
    if (g_str_equal(driver, "sqlite3") && !sqlite_api_load(&db->sq, error)) {
        mk_db_close(db);
        return NULL;
    }

    MkDbConn *first = mk_db_acquire(db, error);
    if (!first) {
        mk_db_close(db);
        return NULL;
    }
    mk_db_release(db, first);
    db->async = mk_db_async_new(db, db->pool_size);
    return db;
}

/* Closes every connection; waits for queued asynchronous work first.
 * Main thread, with no connection acquired. */
void mk_db_close(MkDb *db)
{
    if (!db)
        return;
    if (db->async)
        mk_db_async_free(db->async);
    MkDbConn *c;
    while ((c = g_queue_pop_head(&db->idle))) {
        conn_drop_stmts(c);
        conn_close(db, c->conn);
        g_free(c);
        db->n_open--;
    }
    if (db->n_open)
        g_warning("storage closed with %u connections still in use", db->n_open);
    if (db->inst)
        dbi_shutdown_r(db->inst);
    if (db->sq.module)
        g_module_close(db->sq.module);
    g_mutex_clear(&db->lock);
    g_mutex_clear(&db->dbi_lock);
    g_cond_clear(&db->cond);
    g_free(db->driver);
    g_free(db->sqlite_dir);
    g_free(db->sqlite_file);
    g_free(db->name);
    g_free(db->host);
    g_free(db->user);
    g_free(db->password);
    g_free(db);
}

/* (transfer none) "sqlite3" or "pgsql". Any thread. */
const char *mk_db_driver(MkDb *db)
{
    return db->driver;
}

/* (transfer none) Any thread. */
MkDbAsync *mk_db_get_async(MkDb *db)
{
    return db->async;
}

/* Takes an idle connection (pinged, reopened when dead) or opens a new
 * one while the pool has room; otherwise waits for one. Returns:
 * (transfer full) give it back with mk_db_release. Never on a worker. */
MkDbConn *mk_db_acquire(MkDb *db, GError **error)
{
    g_return_val_if_fail(db != NULL, NULL);
    gint64 deadline = g_get_monotonic_time() + MK_DB_ACQUIRE_TIMEOUT_S * G_TIME_SPAN_SECOND;
    MkDbConn *c = NULL;

    g_mutex_lock(&db->lock);
    while (g_queue_is_empty(&db->idle) && db->n_open >= db->pool_size) {
        db->waiting++;
        gboolean signalled = g_cond_wait_until(&db->cond, &db->lock, deadline);
        db->waiting--;
        if (!signalled) {
            g_mutex_unlock(&db->lock);
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                        "no free database connection after %d s (pool_size %u)",
                        MK_DB_ACQUIRE_TIMEOUT_S, db->pool_size);
            return NULL;
        }
    }
    c = g_queue_pop_head(&db->idle);
    if (!c)
        db->n_open++; /* reserve the slot; the connection opens unlocked */
    g_mutex_unlock(&db->lock);

    if (c) {
        /* A server restart or an idle timeout leaves dead connections. */
        if (conn_alive(db, c->conn))
            return c;
        g_debug("storage: connection lost, reconnecting");
        conn_drop_stmts(c);
        conn_close(db, c->conn);
        c->conn = conn_open(db, error);
        if (c->conn) {
            c->tx_depth = 0;
            return c;
        }
        g_free(c);
    } else {
        dbi_conn dc = conn_open(db, error);
        if (dc) {
            c = g_new0(MkDbConn, 1);
            c->db = db;
            c->conn = dc;
            return c;
        }
    }
    /* Give the slot back so that a later call tries again. */
    g_mutex_lock(&db->lock);
    db->n_open--;
    if (db->waiting)
        g_cond_signal(&db->cond);
    g_mutex_unlock(&db->lock);
    return NULL;
}

/* Gives @conn back to the pool. The thread that acquired it. */
void mk_db_release(MkDb *db, MkDbConn *conn)
{
    if (!conn)
        return;
    if (conn->tx_depth) {
        /* Work that forgot to finish must not leak into the next user. */
        g_warning("storage: connection released inside a transaction; rolling back");
        g_autoptr(GError) e = NULL;
        if (!exec_simple(conn->db, conn->conn, "ROLLBACK", &e))
            g_warning("%s", e->message);
        conn->tx_depth = 0;
    }
    g_mutex_lock(&db->lock);
    g_queue_push_head(&db->idle, conn);
    if (db->waiting)
        g_cond_signal(&db->cond);
    g_mutex_unlock(&db->lock);
}

/* (transfer none) "sqlite3" or "pgsql". Storage thread. */
const char *mk_db_conn_driver(MkDbConn *conn)
{
    g_return_val_if_fail(conn != NULL, NULL);
    return conn->db->driver;
}

/* ------------------------------------------------------------------ */
/* Parameters and queries */

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

static void set_sqlite_error(MkDbConn *conn, GError **error, const char *sql)
{
    g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "%s: %s", sql,
                conn->db->sq.errmsg(((dbi_conn_t *)conn->conn)->connection));
}

/* One statement through SQLite's prepared statements: `?` are SQLite's
 * own placeholders, so values are bound, never spliced into the text. */
/* Ends one use of @st: a cached statement is reset (which also ends its
 * read transaction) and loses its bindings, if it had any (BEGIN, COMMIT
 * and the like have none: clearing costs more than resetting), any other
 * is finalized. */
static void stmt_done(const SqliteApi *api, Sq3Stmt *st, gboolean cached, gboolean bound)
{
    if (!cached) {
        api->finalize(st);
        return;
    }
    api->reset(st);
    if (bound)
        api->clear_bindings(st);
}

/* The cached statement for @sql, or NULL. */
static Sq3Stmt *stmt_lookup(MkDbConn *conn, const char *sql)
{
    guint n = G_N_ELEMENTS(conn->recent);
    guint slot = conn->next_recent;
    for (guint i = 0; i < n; i++) {
        if (conn->recent[i].sql_ptr != sql)
            continue;
        if (strcmp(conn->recent[i].key, sql) == 0)
            return conn->recent[i].st;
        slot = i; /* the address holds other text now: reuse its entry */
        break;
    }
    gpointer key = NULL, value = NULL;
    if (!conn->stmts || !g_hash_table_lookup_extended(conn->stmts, sql, &key, &value))
        return NULL;
    if (slot == conn->next_recent)
        conn->next_recent = (slot + 1) % n;
    conn->recent[slot].sql_ptr = sql;
    conn->recent[slot].key = key;
    conn->recent[slot].st = value;
    return value;
}

static MkDbResult *sqlite_query(MkDbConn *conn, const char *sql, const MkDbParam *params,
                                GError **error)
{
    const SqliteApi *api = &conn->db->sq;
    Sq3 *h = ((dbi_conn_t *)conn->conn)->connection;
    Sq3Stmt *st = stmt_lookup(conn, sql);
    gboolean cached = st != NULL;
    if (!st) {
        const char *tail = NULL;
        if (api->prepare_v2(h, sql, -1, &st, &tail) != SQ3_OK) {
            set_sqlite_error(conn, error, sql);
            return NULL;
        }
        for (const char *t = tail; t && *t; t++) {
            if (!g_ascii_isspace(*t) && *t != ';') {
                api->finalize(st);
                g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                            "one statement per query, not several: %s", sql);
                return NULL;
            }
        }
        if (st) {
            if (!conn->stmts)
                conn->stmts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            if (g_hash_table_size(conn->stmts) < MK_DB_STMT_CACHE_MAX) {
                g_hash_table_insert(conn->stmts, g_strdup(sql), st);
                cached = TRUE;
            }
        }
    }
    MkDbResult *r = g_new0(MkDbResult, 1);
    if (!st) /* only whitespace or a comment */
        return r;

    guint n_params = 0;
    while (params && params[n_params].type != MK_DB_PARAM_END)
        n_params++;
    int want = api->bind_parameter_count(st);
    if (want < 0 || (guint)want != n_params) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                    "%u parameters given for %d placeholders: %s", n_params, want, sql);
        goto fail;
    }
    /* Strings are bound without a copy (SQLITE_STATIC): the caller's
     * values outlive this call, and stmt_done clears the bindings before
     * it returns. */
    for (guint i = 0; i < n_params; i++) {
        const MkDbParam *p = &params[i];
        int rc;
        if (p->type == MK_DB_PARAM_STR && p->s)
            rc = api->bind_text(st, (int)i + 1, p->s, -1, SQ3_STATIC);
        else if (p->type == MK_DB_PARAM_INT)
            rc = api->bind_int64(st, (int)i + 1, p->i);
        else if (p->type == MK_DB_PARAM_STR || p->type == MK_DB_PARAM_NULL)
            rc = api->bind_null(st, (int)i + 1);
        else {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "bad parameter type %d", p->type);
            goto fail;
        }
        if (rc != SQ3_OK) {
            set_sqlite_error(conn, error, sql);
            goto fail;
        }
    }

    GPtrArray *cells = NULL; /* with the first row: most statements have none */
    int rc;
    while ((rc = api->step(st)) == SQ3_ROW) {
        /* Counted after a step: a cached statement re-prepared after a
         * schema change (SELECT * after ALTER TABLE) may change shape. */
        if (r->rows == 0) {
            r->cols = (guint)api->column_count(st);
            cells = g_ptr_array_sized_new(r->cols);
        }
        for (guint c = 0; c < r->cols; c++) {
            const unsigned char *v =
                api->column_type(st, (int)c) == SQ3_NULL ? NULL : api->column_text(st, (int)c);
            g_ptr_array_add(cells, v ? g_strdup((const char *)v) : NULL);
        }
        r->rows++;
    }
    if (r->rows == 0)
        r->cols = (guint)api->column_count(st);
    if (rc != SQ3_DONE) {
        set_sqlite_error(conn, error, sql);
        if (cells) {
            for (guint i = 0; i < cells->len; i++)
                g_free(cells->pdata[i]);
            g_ptr_array_free(cells, TRUE);
        }
        r->rows = 0;
        goto fail;
    }
    if (cells)
        r->cells = r->cols ? (char **)g_ptr_array_free(cells, FALSE)
                           : (g_ptr_array_free(cells, TRUE), NULL);
    r->affected = api->stmt_readonly(st) ? 0 : (guint64)api->changes(h);
    stmt_done(api, st, cached, n_params > 0);
    return r;

fail:
    stmt_done(api, st, cached, n_params > 0);
    mk_db_result_free(r);
    return NULL;
}

/* On a storage thread, inside MkDbWork only (or with a connection from
 * mk_db_acquire). Returns: (transfer full) the rows (an empty result for
 * statements without rows), or NULL with @error set. */
MkDbResult *mk_db_conn_queryv(MkDbConn *conn, const char *sql, const MkDbParam *params,
                              GError **error)
{
    g_return_val_if_fail(conn != NULL, NULL);
    g_return_val_if_fail(sql != NULL, NULL);
    if (conn->db->sq.module)
        return sqlite_query(conn, sql, params, error);
    g_autofree char *bound = bind_params(conn->conn, sql, params, error);
    if (!bound)
        return NULL;
    dbi_result res = dbi_conn_query(conn->conn, bound);
    if (!res) {
        set_conn_error(conn->conn, MK_DB_ERROR_QUERY, error, "query failed");
        g_prefix_error(error, "%s: ", sql);
        return NULL;
    }
    MkDbResult *r = copy_result(res);
    dbi_result_free(res);
    return r;
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

/* ------------------------------------------------------------------ */
/* Transactions */

/* exec_simple on an acquired connection: on sqlite3 through the
 * statement cache (BEGIN and COMMIT run on every transaction). */
static gboolean conn_exec(MkDbConn *conn, const char *sql, GError **error)
{
    if (!conn->db->sq.module)
        return exec_simple(conn->db, conn->conn, sql, error);
    MkDbResult *r = sqlite_query(conn, sql, NULL, error);
    mk_db_result_free(r);
    return r != NULL;
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
        /* sqlite: take the write lock up front; a deferred transaction that
         * later writes can fail with SQLITE_BUSY without waiting. */
        begin = g_str_equal(conn->db->driver, "sqlite3") ? "BEGIN IMMEDIATE" : "BEGIN";
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
    /* COMMIT and ROLLBACK as string constants: the statement cache finds
     * those by their address, without hashing (see MkDbConn). */
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
    if (!conn->db->sq.module || conn->tx_depth > 0)
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

/* ------------------------------------------------------------------ */
/* Migrations */

/* Splits @sql into statements at ';' outside quotes ('...', "...",
 * $$...$$) and -- comments. Returns: (transfer full) non-empty
 * statements, trimmed. */
char **mk_db_split_statements(const char *sql)
{
    GPtrArray *out = g_ptr_array_new();
    GString *cur = g_string_new(NULL);
    char quote = 0; /* ', ", or '$' for $$ */
    for (const char *p = sql; *p; p++) {
        if (quote == '$') {
            if (p[0] == '$' && p[1] == '$') {
                g_string_append(cur, "$$");
                p++;
                quote = 0;
            } else {
                g_string_append_c(cur, *p);
            }
            continue;
        }
        if (quote) {
            if (*p == quote)
                quote = 0;
            g_string_append_c(cur, *p);
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            /* A comment may hold quotes or ';': skip to the line's end. */
            while (p[1] && p[1] != '\n')
                p++;
            continue;
        }
        if (p[0] == '$' && p[1] == '$') {
            quote = '$';
            g_string_append(cur, "$$");
            p++;
            continue;
        }
        if (*p == '\'' || *p == '"')
            quote = *p;
        if (*p == ';') {
            g_strstrip(cur->str);
            if (*cur->str)
                g_ptr_array_add(out, g_strdup(cur->str));
            g_string_truncate(cur, 0);
            continue;
        }
        g_string_append_c(cur, *p);
    }
    g_strstrip(cur->str);
    if (*cur->str)
        g_ptr_array_add(out, g_strdup(cur->str));
    g_string_free(cur, TRUE);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

typedef struct {
    const char *component;
    const MkMigration *step;
    gboolean applied;
} MigrateStep;

static gint64 recorded_version(MkDbConn *conn, const char *component, GError **error)
{
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "SELECT version FROM meerkat_schema WHERE component = ?",
                         MK_DB_STR(component));
    if (!r)
        return -1;
    return mk_db_result_rows(r) ? mk_db_result_get_int(r, 0, 0) : 0;
}

/* One step in its own transaction: re-reads the recorded version under
 * the lock, so two processes migrating at once apply each step once. */
static gboolean migrate_step(MkDbConn *conn, gpointer user_data, GError **error)
{
    MigrateStep *ms = user_data;
    if (g_str_equal(conn->db->driver, "pgsql") &&
        !exec_simple(conn->db, conn->conn, "LOCK TABLE meerkat_schema IN SHARE ROW EXCLUSIVE MODE",
                     error))
        return FALSE;
    gint64 have = recorded_version(conn, ms->component, error);
    if (have < 0)
        return FALSE;
    if (ms->step->version <= have)
        return TRUE;
    g_auto(GStrv) stmts = mk_db_split_statements(ms->step->sql);
    for (guint i = 0; stmts[i]; i++) {
        g_autoptr(MkDbResult) r = mk_db_conn_queryv(conn, stmts[i], NULL, error);
        if (!r)
            return FALSE;
    }
    g_autoptr(MkDbResult) r =
        have == 0
            ? mk_db_conn_query(conn, error,
                               "INSERT INTO meerkat_schema (component, version) VALUES (?, ?)",
                               MK_DB_STR(ms->component), MK_DB_INT(ms->step->version))
            : mk_db_conn_query(conn, error,
                               "UPDATE meerkat_schema SET version = ? WHERE component = ?",
                               MK_DB_INT(ms->step->version), MK_DB_STR(ms->component));
    if (!r)
        return FALSE;
    ms->applied = TRUE;
    return TRUE;
}

/* Applies @migrations of @component ("core", "mod_roster") that are newer
 * than the version recorded in table meerkat_schema; each step in its own
 * transaction. Steps for another driver are skipped: the steps for one
 * driver (its own plus the driver-NULL ones) must have strictly increasing
 * versions. Synchronous: main thread at start, or meerkatctl. */
gboolean mk_db_migrate(MkDb *db, const char *component, const MkMigration *migrations,
                       GError **error)
{
    g_return_val_if_fail(db != NULL && component != NULL, FALSE);
    if (!migrations)
        return TRUE;
    /* Check the list before touching the database. */
    int last = 0;
    for (const MkMigration *m = migrations; m->sql; m++) {
        if (m->driver && !g_str_equal(m->driver, db->driver))
            continue;
        if (m->version <= last) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_MIGRATION,
                        "%s: migration versions for %s must increase (%d after %d)", component,
                        db->driver, m->version, last);
            return FALSE;
        }
        last = m->version;
    }

    MkDbConn *conn = mk_db_acquire(db, error);
    if (!conn)
        return FALSE;
    gboolean ok = TRUE;
    g_autoptr(MkDbResult) t =
        mk_db_conn_queryv(conn,
                          "CREATE TABLE IF NOT EXISTS meerkat_schema ("
                          "component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
                          NULL, error);
    if (!t)
        ok = FALSE;
    gint64 have = ok ? recorded_version(conn, component, error) : -1;
    if (ok && have < 0)
        ok = FALSE;
    if (ok && have > last)
        g_warning("storage: %s schema is at version %" G_GINT64_FORMAT
                  ", newer than this program knows (%d)",
                  component, have, last);
    for (const MkMigration *m = migrations; ok && m->sql; m++) {
        if (m->driver && !g_str_equal(m->driver, db->driver))
            continue;
        if (m->version <= have)
            continue;
        MigrateStep ms = {component, m, FALSE};
        if (!mk_db_conn_transaction(conn, migrate_step, &ms, error)) {
            g_prefix_error(error, "%s migration %d (%s): ", component, m->version, db->driver);
            if (error && *error) {
                (*error)->domain = MK_DB_ERROR;
                (*error)->code = MK_DB_ERROR_MIGRATION;
            }
            ok = FALSE;
            break;
        }
        if (ms.applied)
            g_info("storage: %s schema migrated to version %d", component, m->version);
    }
    mk_db_release(db, conn);
    return ok;
}
