/* The sqlite3 backend, on SQLite's own API: a file under the state
 * directory in WAL mode, prepared statements with bound parameters, and
 * a per-connection cache of compiled statements.
 *
 * libdbi's sqlite3 driver (0.9.0) is not used: it guesses column types
 * by parsing every SELECT with hand-written string code that loops
 * forever when "from" appears inside a word (a column named from_jid),
 * dereferences NULL on unbalanced parentheses in values and strcpy()s
 * column names into 128-byte stack buffers. */
#include "db-priv.h"
#include <errno.h>
#include <sqlite3.h>
#include <string.h>

/* Statements cached per connection at most; more (generated SQL) are
 * prepared and finalized each time. */
#define MK_DB_STMT_CACHE_MAX 128

/* How long a statement waits for another writer (meerkatctl, another
 * thread) before failing with SQLITE_BUSY. */
#define MK_DB_BUSY_TIMEOUT_MS 5000

typedef struct {
    sqlite3 *h;
    /* SQL text -> prepared statement, kept for the connection's life.
     * Compiling a statement cost more than running it (a login's few
     * queries spent most of their time in sqlite3_prepare_v2: see
     * docs/benchmarks.md). Finalized before the connection closes. */
    GHashTable *stmts;
    /* The last statements by the address of their SQL text (most is a
     * string constant): a hit costs a strcmp instead of hashing the whole
     * text. Scanned in full (comparing a few pointers is cheaper than one
     * hash), so that two statements used in turn never evict each other
     * as with one slot per address. Replaced round-robin from
     * next_recent. Keys point into stmts' own keys. */
    struct {
        const char *sql_ptr;
        const char *key;
        sqlite3_stmt *st;
    } recent[16];
    guint next_recent;
} SqliteConn;

static void set_sqlite_error(sqlite3 *h, GError **error, const char *sql)
{
    g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "%s: %s", sql, sqlite3_errmsg(h));
}

/* Runs @sql, possibly several statements, ignoring rows (set-up only). */
static gboolean exec_direct(sqlite3 *h, const char *sql, GError **error)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK)
        return TRUE;
    g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "%s failed: %s", sql,
                msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    return FALSE;
}

/* Creates the database's directory. Main thread. */
static gboolean sqlite_init(MkDb *db, const MkConfigData *cfg, GError **error)
{
    if (!g_path_is_absolute(db->name)) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                    "sqlite database path %s is not absolute", db->name);
        return FALSE;
    }
    g_autofree char *dir = g_path_get_dirname(db->name);
    if (g_mkdir_with_parents(dir, 0750) != 0) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "cannot create %s: %s", dir,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

static void sqlite_shutdown(MkDb *db)
{
}

static void sqlite_close(MkDb *db, gpointer handle)
{
    SqliteConn *sc = handle;
    if (!sc)
        return;
    /* sqlite3_close refuses a connection that still has statements. */
    if (sc->stmts) {
        GHashTableIter it;
        gpointer st;
        g_hash_table_iter_init(&it, sc->stmts);
        while (g_hash_table_iter_next(&it, NULL, &st))
            sqlite3_finalize(st);
        g_hash_table_destroy(sc->stmts);
    }
    sqlite3_close(sc->h);
    g_free(sc);
}

/* Opens the file with the settings every connection needs. Any thread. */
static gpointer sqlite_open(MkDb *db, GError **error)
{
    sqlite3 *h = NULL;
    /* NOMUTEX: a connection is used by one thread at a time (the pool). */
    int rc = sqlite3_open_v2(
        db->name, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "cannot open sqlite database %s: %s",
                    db->name, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        sqlite3_close(h);
        return NULL;
    }
    sqlite3_busy_timeout(h, MK_DB_BUSY_TIMEOUT_MS);
    /* WAL lets readers and one writer (possibly meerkatctl in another
     * process) work at once; foreign keys make ON DELETE CASCADE work. */
    g_autoptr(GError) perr = NULL;
    if (!exec_direct(h,
                     "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; "
                     "PRAGMA synchronous=NORMAL",
                     &perr)) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT, "setting up %s: %s", db->name,
                    perr->message);
        sqlite3_close(h);
        return NULL;
    }
    SqliteConn *sc = g_new0(SqliteConn, 1);
    sc->h = h;
    return sc;
}

/* The database is a file this process has open, which no server restart
 * or idle timeout takes away. (A SELECT 1 that never reads the file could
 * not fail, and cost ~3k instructions per acquire, three per login.) */
static gboolean sqlite_alive(MkDb *db, gpointer handle)
{
    return TRUE;
}

/* Ends one use of @st: a cached statement is reset (which also ends its
 * read transaction) and loses its bindings, if it had any (BEGIN, COMMIT
 * and the like have none: clearing costs more than resetting), any other
 * is finalized. */
static void stmt_done(sqlite3_stmt *st, gboolean cached, gboolean bound)
{
    if (!cached) {
        sqlite3_finalize(st);
        return;
    }
    sqlite3_reset(st);
    if (bound)
        sqlite3_clear_bindings(st);
}

/* The cached statement for @sql, or NULL. */
static sqlite3_stmt *stmt_lookup(SqliteConn *conn, const char *sql)
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

/* One statement through SQLite's prepared statements: `?` are SQLite's
 * own placeholders, so values are bound, never spliced into the text. */
static MkDbResult *sqlite_query(MkDbConn *conn, const char *sql, const MkDbParam *params,
                                GError **error)
{
    SqliteConn *sc = conn->handle;
    sqlite3 *h = sc->h;
    sqlite3_stmt *st = stmt_lookup(sc, sql);
    gboolean cached = st != NULL;
    if (!st) {
        const char *tail = NULL;
        if (sqlite3_prepare_v2(h, sql, -1, &st, &tail) != SQLITE_OK) {
            set_sqlite_error(h, error, sql);
            return NULL;
        }
        for (const char *t = tail; t && *t; t++) {
            if (!g_ascii_isspace(*t) && *t != ';') {
                sqlite3_finalize(st);
                g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                            "one statement per query, not several: %s", sql);
                return NULL;
            }
        }
        if (st) {
            if (!sc->stmts)
                sc->stmts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            if (g_hash_table_size(sc->stmts) < MK_DB_STMT_CACHE_MAX) {
                g_hash_table_insert(sc->stmts, g_strdup(sql), st);
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
    int want = sqlite3_bind_parameter_count(st);
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
            rc = sqlite3_bind_text(st, (int)i + 1, p->s, -1, SQLITE_STATIC);
        else if (p->type == MK_DB_PARAM_INT)
            rc = sqlite3_bind_int64(st, (int)i + 1, p->i);
        else if (p->type == MK_DB_PARAM_STR || p->type == MK_DB_PARAM_NULL)
            rc = sqlite3_bind_null(st, (int)i + 1);
        else {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "bad parameter type %d", p->type);
            goto fail;
        }
        if (rc != SQLITE_OK) {
            set_sqlite_error(h, error, sql);
            goto fail;
        }
    }

    GPtrArray *cells = NULL; /* with the first row: most statements have none */
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* Counted after a step: a cached statement re-prepared after a
         * schema change (SELECT * after ALTER TABLE) may change shape. */
        if (r->rows == 0) {
            r->cols = (guint)sqlite3_column_count(st);
            cells = g_ptr_array_sized_new(r->cols);
        }
        for (guint c = 0; c < r->cols; c++) {
            const unsigned char *v = sqlite3_column_type(st, (int)c) == SQLITE_NULL
                                         ? NULL
                                         : sqlite3_column_text(st, (int)c);
            g_ptr_array_add(cells, v ? g_strdup((const char *)v) : NULL);
        }
        r->rows++;
    }
    if (r->rows == 0)
        r->cols = (guint)sqlite3_column_count(st);
    if (rc != SQLITE_DONE) {
        set_sqlite_error(h, error, sql);
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
    r->affected = sqlite3_stmt_readonly(st) ? 0 : (guint64)sqlite3_changes(h);
    stmt_done(st, cached, n_params > 0);
    return r;

fail:
    stmt_done(st, cached, n_params > 0);
    mk_db_result_free(r);
    return NULL;
}

/* Through the statement cache: BEGIN and COMMIT run on every
 * transaction. */
static gboolean sqlite_exec(MkDbConn *conn, const char *sql, GError **error)
{
    MkDbResult *r = sqlite_query(conn, sql, NULL, error);
    mk_db_result_free(r);
    return r != NULL;
}

const MkDbBackend mk_db_sqlite_backend = {
    .name = "sqlite3",
    .init = sqlite_init,
    .shutdown = sqlite_shutdown,
    .conn_open = sqlite_open,
    .conn_close = sqlite_close,
    .conn_alive = sqlite_alive,
    .query = sqlite_query,
    .exec = sqlite_exec,
    /* Takes the write lock up front: a deferred transaction that later
     * writes can fail with SQLITE_BUSY without waiting. */
    .begin = "BEGIN IMMEDIATE",
    /* The file locks are then taken once for all the reads rather than
     * once per statement (each costs a few system calls). */
    .reads_in_transaction = TRUE,
    .migration_lock = NULL,
};
