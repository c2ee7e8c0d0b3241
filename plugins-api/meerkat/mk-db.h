#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Asynchronous storage.
 *
 * Queries run on a storage thread, never on a worker; the callback runs
 * on the thread that made the call (its worker, or the main thread).
 * Values are always bound: write `?` in SQL and pass MkDbParam values.
 * SQL that works on both sqlite3 and PostgreSQL is preferred (INSERT ...
 * ON CONFLICT works on both); where it cannot, branch on
 * mk_db_conn_driver(). */

/* The domain of the errors storage calls report (to MkDbQueryDone,
 * MkDbWorkDone, mk_db_conn_queryv). New codes may be appended. */
#define MK_DB_ERROR (mk_db_error_quark())
MK_API GQuark mk_db_error_quark(void);

typedef enum {
    MK_DB_ERROR_CONNECT,   /* no connection to the database */
    MK_DB_ERROR_QUERY,     /* a statement failed (syntax, constraint, ...) */
    MK_DB_ERROR_MIGRATION, /* a schema step failed at start */
} MkDbErrorCode;

typedef enum {
    MK_DB_PARAM_END = 0,
    MK_DB_PARAM_STR,
    MK_DB_PARAM_INT,
    MK_DB_PARAM_NULL,
} MkDbParamType;

typedef struct {
    MkDbParamType type;
    const char *s;
    gint64 i;
} MkDbParam;

#define MK_DB_STR(x) ((MkDbParam){MK_DB_PARAM_STR, (x), 0})
#define MK_DB_INT(x) ((MkDbParam){MK_DB_PARAM_INT, NULL, (x)})
#define MK_DB_NULL   ((MkDbParam){MK_DB_PARAM_NULL, NULL, 0})
#define MK_DB_END    ((MkDbParam){MK_DB_PARAM_END, NULL, 0})

/* Called with the rows (transfer none, valid during the call; NULL when
 * @error is set). */
typedef void (*MkDbQueryDone)(MkDbResult *result, const GError *error, gpointer user_data);

/* Runs one statement. @params ends with MK_DB_END and is copied before
 * returning. Any thread that runs a Meerkat main context. */
MK_API void mk_db_queryv(MkModule *mod, const char *sql, const MkDbParam *params,
                         MkDbQueryDone done, gpointer user_data);
#define mk_db_query(mod, sql, done, user_data, ...)                                                \
    mk_db_queryv((mod), (sql), (const MkDbParam[]){__VA_ARGS__ __VA_OPT__(, ) MK_DB_END}, (done),  \
                 (user_data))

/* Several statements in one transaction: @work runs on a storage thread
 * with a connection inside BEGIN; returning FALSE rolls back. @done then
 * runs on the calling thread with the error, if any. @destroy frees
 * @user_data after @done. */
typedef gboolean (*MkDbWork)(MkDbConn *conn, gpointer user_data, GError **error);
typedef void (*MkDbWorkDone)(const GError *error, gpointer user_data);
MK_API void mk_db_transaction_run(MkModule *mod, MkDbWork work, MkDbWorkDone done,
                                  gpointer user_data, GDestroyNotify destroy);

/* On a storage thread, inside MkDbWork only. Returns: (transfer full)
 * (nullable) rows, or NULL with @error set. */
MK_API MkDbResult *mk_db_conn_queryv(MkDbConn *conn, const char *sql, const MkDbParam *params,
                                     GError **error);
#define mk_db_conn_query(conn, error, sql, ...)                                                    \
    mk_db_conn_queryv((conn), (sql), (const MkDbParam[]){__VA_ARGS__ __VA_OPT__(, ) MK_DB_END},    \
                      (error))
/* "sqlite3" or "pgsql". (transfer none) */
MK_API const char *mk_db_conn_driver(MkDbConn *conn);

/* Rows of a result. Columns are numbered from 0 in SELECT order. Strings
 * are (transfer none), valid until the result is freed; NULL for SQL NULL. */
MK_API guint mk_db_result_rows(const MkDbResult *res);
MK_API guint64 mk_db_result_affected(const MkDbResult *res);
MK_API const char *mk_db_result_get_string(const MkDbResult *res, guint row, guint col);
MK_API gint64 mk_db_result_get_int(const MkDbResult *res, guint row, guint col);
MK_API gboolean mk_db_result_is_null(const MkDbResult *res, guint row, guint col);
MK_API void mk_db_result_free(MkDbResult *res);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkDbResult, mk_db_result_free)

/* A schema step a module ships: applied once, in version order, at start.
 * @driver is "sqlite3", "pgsql", or NULL for both. */
typedef struct {
    const char *driver;
    int version;
    const char *sql; /* may hold several statements separated by ';' */
} MkMigration;
/* clang-format off */
#define MK_MIGRATIONS_END {NULL, 0, NULL}
/* clang-format on */

G_END_DECLS
