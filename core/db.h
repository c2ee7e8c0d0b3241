/* The storage layer: a pool of connections to sqlite3 (SQLite's own API)
 * or PostgreSQL (libdbi), used from a job pool. Each connection is used
 * by one thread at a time; connections are checked before reuse and
 * reopened when dead. The public API (mk_db_queryv etc.) is implemented
 * on top. db-priv.h lists the files. */
#pragma once

#include "mk-core.h"

/* Opens the pool (connecting once to fail fast) and sets sqlite to WAL.
 * Returns: (transfer full) or NULL with MK_DB_ERROR. Main thread. */
MkDb *mk_db_open(const MkConfigData *cfg, GError **error);
/* Waits for queued asynchronous work, then closes every connection.
 * Main thread, with no connection acquired. NULL is allowed. */
void mk_db_close(MkDb *db);
/* (transfer none) "sqlite3" or "pgsql". Any thread. */
const char *mk_db_driver(MkDb *db);

/* Applies @migrations of @component ("core", "mod_roster") that are newer
 * than the version recorded in table meerkat_schema; each step in its own
 * transaction. Synchronous: main thread at start, or meerkatctl. */
gboolean mk_db_migrate(MkDb *db, const char *component, const MkMigration *migrations,
                       GError **error);

/* Splits a migration step at ';' outside quotes ('...', "...", $$...$$)
 * and -- comments. Returns: (transfer full) the trimmed, non-empty
 * statements. Any thread. */
char **mk_db_split_statements(const char *sql);

/* Synchronous use from a non-worker thread (storage pool, auth pool,
 * meerkatctl): take a connection, use mk_db_conn_queryv, give it back.
 * A dead connection is reopened; when the database is unreachable, or no
 * connection frees up within 30 s, NULL with MK_DB_ERROR_CONNECT. Never
 * acquire a second connection while holding one (the pool may be full). */
MkDbConn *mk_db_acquire(MkDb *db, GError **error);
void mk_db_release(MkDb *db, MkDbConn *conn);
/* Runs @work inside BEGIN/COMMIT on @conn (ROLLBACK when it fails);
 * nested calls use a SAVEPOINT. */
gboolean mk_db_conn_transaction(MkDbConn *conn, MkDbWork work, gpointer user_data, GError **error);
/* Runs @work, which only reads, the cheapest way for the driver: on
 * sqlite3 inside one deferred transaction, so that the file locks are
 * taken once for all its statements rather than once per statement
 * (each costs a few system calls); elsewhere as it is (a BEGIN/COMMIT
 * would be two more round trips to the server). So it is no snapshot:
 * @work must not rely on its reads agreeing with each other. Returns
 * what @work returns. Storage or auth thread. */
gboolean mk_db_conn_reads(MkDbConn *conn, MkDbWork work, gpointer user_data, GError **error);

/* Asynchronous: runs @work in a transaction on the storage pool, then
 * @done on the calling thread's main context. Any thread with a
 * thread-default main context (workers and the main thread have one). */
void mk_db_run(MkDb *db, MkDbWork work, MkDbWorkDone done, gpointer user_data,
               GDestroyNotify destroy);
/* As mk_db_run, for @work that only reads: through mk_db_conn_reads (on
 * sqlite3 a deferred transaction, no write lock), on the server's
 * storage. The user queue's mk_user_queue_push_reads. Any such thread. */
void mk_db_reads_async(MkDbWork work, MkDbWorkDone done, gpointer user_data,
                       GDestroyNotify destroy);
/* Asynchronous single query, as mk_db_queryv but without a module. */
void mk_db_query_async(MkDb *db, const char *sql, const MkDbParam *params, MkDbQueryDone done,
                       gpointer user_data);

/* Internal between the db*.c files: the storage thread pool. */
typedef struct MkDbAsync MkDbAsync;
MkDbAsync *mk_db_async_new(MkDb *db, guint threads);
void mk_db_async_free(MkDbAsync *async);
MkDbAsync *mk_db_get_async(MkDb *db);
/* Jobs waiting for a storage thread (metrics). Any thread. */
guint mk_db_async_queued(MkDbAsync *async);

/* The core's own schema (users table); passed to mk_db_migrate("core"). */
extern const MkMigration mk_core_migrations[];
