/* Internal to the storage layer (db*.c): the pool, a connection, a
 * result, and the table each backend fills in. Nothing outside core/db*.c
 * includes it; the rest of the core uses db.h.
 *
 * Files, one concern each:
 *   db.c          the pool: open, close, acquire, release
 *   db-result.c   a query on a connection, and the result's accessors
 *   db-tx.c       transactions (savepoints when nested) and read batches
 *   db-migrate.c  schema migrations and the statement splitter
 *   db-sqlite.c   the sqlite3 backend, on SQLite's own API
 *   db-pgsql.c    the PostgreSQL backend, on libdbi
 *   db-async.c    the storage thread pool and the asynchronous calls */
#pragma once

#include "db.h"

/* What a backend does; the pool and the transactions do the rest. */
typedef struct {
    const char *name; /* "sqlite3", "pgsql": mk_db_driver() */
    /* Sets up @db's backend state (db->be) from the configuration. Main
     * thread, once. */
    gboolean (*init)(MkDb *db, const MkConfigData *cfg, GError **error);
    /* Frees db->be; every connection is closed. NULL db->be allowed. */
    void (*shutdown)(MkDb *db);
    /* A new connection, set up for use. Returns: (transfer full) the
     * backend's handle. Any thread. */
    gpointer (*conn_open)(MkDb *db, GError **error);
    void (*conn_close)(MkDb *db, gpointer handle);
    /* Whether an idle connection still works (a server restart or an
     * idle timeout may have closed it). The thread holding it. */
    gboolean (*conn_alive)(MkDb *db, gpointer handle);
    /* One statement with bound parameters. Returns: (transfer full). */
    MkDbResult *(*query)(MkDbConn *conn, const char *sql, const MkDbParam *params, GError **error);
    /* A statement whose result does not matter (BEGIN, COMMIT). */
    gboolean (*exec)(MkDbConn *conn, const char *sql, GError **error);
    /* Opens a write transaction. */
    const char *begin;
    /* Whether a batch of reads is cheaper inside one transaction. */
    gboolean reads_in_transaction;
    /* Run first in a migration step's transaction, so that two processes
     * migrating at once apply each step once; NULL when the write lock
     * taken by `begin` serializes them already. */
    const char *migration_lock;
} MkDbBackend;

extern const MkDbBackend mk_db_sqlite_backend;
extern const MkDbBackend mk_db_pgsql_backend;

struct MkDb {
    const MkDbBackend *be_ops;
    gpointer be; /* the backend's own state */
    char *name;  /* the database: a file (sqlite3) or a name (pgsql) */
    char *host;
    guint16 port;
    char *user;
    char *password;

    guint pool_size;
    GMutex lock;
    GCond cond;
    GQueue idle;      /* of MkDbConn*: open, not in use */
    guint waiting;    /* threads in mk_db_acquire's wait (GLib's g_cond_signal
                         is a futex system call even with nobody waiting) */
    guint n_open;     /* idle + in use */
    MkDbAsync *async; /* db-async.c */
};

struct MkDbConn {
    MkDb *db;
    gpointer handle; /* the backend's */
    guint tx_depth;  /* 0 = autocommit; >0 = inside BEGIN (+ savepoints) */
};

struct MkDbResult {
    guint rows;
    guint cols;
    guint64 affected;
    char **cells; /* rows * cols; NULL for SQL NULL */
};
