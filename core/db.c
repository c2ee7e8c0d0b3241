/* The storage layer's pool: connections of one backend (db-sqlite.c,
 * db-pgsql.c), each used by one thread at a time, checked before reuse
 * and reopened when dead. See db.h; db-priv.h lists the other files. */
#include "db-priv.h"
#include "conffile.h"

/* How long mk_db_acquire waits for a free connection before failing, so
 * a stuck database gives errors rather than an ever-growing queue. */
#define MK_DB_ACQUIRE_TIMEOUT_S 30

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-db-error-quark, mk_db_error)
/* clang-format on */

/* Opens the pool (connecting once to fail fast).
 * Returns: (transfer full) or NULL with MK_DB_ERROR. Main thread. */
MkDb *mk_db_open(const MkConfigData *cfg, GError **error)
{
    g_return_val_if_fail(cfg != NULL, NULL);
    const char *driver = cfg->db_driver ? cfg->db_driver : "sqlite3";
    const MkDbBackend *ops = g_str_equal(driver, "sqlite3") ? &mk_db_sqlite_backend
                             : g_str_equal(driver, "pgsql") ? &mk_db_pgsql_backend
                                                            : NULL;
    if (!ops) {
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
    g_cond_init(&db->cond);
    g_queue_init(&db->idle);
    db->be_ops = ops;
    db->name = g_strdup(cfg->db_name);
    db->host = g_strdup(cfg->db_host);
    db->port = cfg->db_port;
    db->user = g_strdup(cfg->db_user);
    db->password = g_strdup(cfg->db_password);
    db->pool_size = MAX(cfg->db_pool_size, 1);
    if (!ops->init(db, cfg, error)) {
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

static void conn_free(MkDbConn *c)
{
    c->db->be_ops->conn_close(c->db, c->handle);
    g_free(c);
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
        conn_free(c);
        db->n_open--;
    }
    if (db->n_open)
        g_warning("storage closed with %u connections still in use", db->n_open);
    db->be_ops->shutdown(db);
    g_mutex_clear(&db->lock);
    g_cond_clear(&db->cond);
    g_free(db->name);
    g_free(db->host);
    g_free(db->user);
    g_free(db->password);
    g_free(db);
}

/* (transfer none) "sqlite3" or "pgsql". Any thread. */
const char *mk_db_driver(MkDb *db)
{
    return db->be_ops->name;
}

/* (transfer none) Any thread. */
MkDbAsync *mk_db_get_async(MkDb *db)
{
    return db->async;
}

/* Takes an idle connection (checked, reopened when dead) or opens a new
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
        if (db->be_ops->conn_alive(db, c->handle))
            return c;
        g_debug("storage: connection lost, reconnecting");
        db->be_ops->conn_close(db, c->handle);
        c->handle = db->be_ops->conn_open(db, error);
        if (c->handle) {
            c->tx_depth = 0;
            return c;
        }
        g_free(c);
    } else {
        gpointer handle = db->be_ops->conn_open(db, error);
        if (handle) {
            c = g_new0(MkDbConn, 1);
            c->db = db;
            c->handle = handle;
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
        if (!db->be_ops->exec(conn, "ROLLBACK", &e))
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
    return conn->db->be_ops->name;
}
