/* Asynchronous storage: work runs on a GThreadPool (as many threads as
 * the connection pool has connections) and its completion comes back to
 * the main context of the thread that asked. See db.h and mk-db.h. */
#include "db.h"
#include "jobpool.h"
#include "modules.h"
#include "server.h"
#include "worker.h"

struct MkDbAsync {
    MkDb *db;
    MkJobPool *pool;
};

typedef struct {
    MkDb *db;
    /* Transaction work (mk_db_run), or reads (mk_db_reads_async) ... */
    MkDbWork work;
    gboolean reads;
    MkDbWorkDone done;
    GDestroyNotify destroy;
    /* ... or a single query (mk_db_query_async). */
    char *sql;
    MkDbParam *params;
    MkDbQueryDone query_done;
    MkDbResult *result;

    gpointer user_data;
    GMainContext *ctx; /* the caller's thread-default context */
    MkModule *mod;     /* (nullable) reference: keeps the module's data alive */
    GError *error;
} DbJob;

static void job_free(gpointer data)
{
    DbJob *job = data;
    if (job->destroy)
        job->destroy(job->user_data);
    if (job->params) {
        for (guint i = 0; job->params[i].type != MK_DB_PARAM_END; i++)
            g_free((char *)job->params[i].s);
        g_free(job->params);
    }
    g_free(job->sql);
    mk_db_result_free(job->result);
    g_clear_error(&job->error);
    g_main_context_unref(job->ctx);
    mk_module_unref(job->mod); /* last: may free the data @destroy used */
    g_free(job);
}

/* On the caller's thread. */
static gboolean job_complete(gpointer data)
{
    DbJob *job = data;
    if (job->query_done)
        job->query_done(job->error ? NULL : job->result, job->error, job->user_data);
    else if (job->done)
        job->done(job->error, job->user_data);
    return G_SOURCE_REMOVE;
}

/* Sends @job back to its caller's context. */
static void job_return(DbJob *job)
{
    mk_context_post(job->ctx, job_complete, job, job_free, "mk-db-completion");
}

static gboolean query_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    DbJob *job = user_data;
    job->result = mk_db_conn_queryv(conn, job->sql, job->params, error);
    return job->result != NULL;
}

/* On a storage thread. */
static void pool_run(gpointer data, gpointer pool_data)
{
    DbJob *job = data;
    MkDbConn *conn = mk_db_acquire(job->db, &job->error);
    if (conn) {
        if (job->sql)
            query_work(conn, job, &job->error); /* one statement: autocommit */
        else if (job->reads)
            mk_db_conn_reads(conn, job->work, job->user_data, &job->error);
        else
            mk_db_conn_transaction(conn, job->work, job->user_data, &job->error);
        mk_db_release(job->db, conn);
    }
    job_return(job);
}

MkDbAsync *mk_db_async_new(MkDb *db, guint threads)
{
    MkDbAsync *a = g_new0(MkDbAsync, 1);
    a->db = db;
    /* Threads start on demand, so meerkatctl pays nothing. */
    a->pool = mk_job_pool_new("mk-storage", MAX(threads, 1), pool_run, a);
    return a;
}

/* Runs what is queued, waits for it, then frees the pool. Main thread. */
void mk_db_async_free(MkDbAsync *async)
{
    if (!async)
        return;
    mk_job_pool_free(async->pool);
    g_free(async);
}

/* See db.h. Any thread. */
guint mk_db_async_queued(MkDbAsync *async)
{
    return async ? mk_job_pool_queued(async->pool) : 0;
}

static DbJob *job_new(MkDb *db, gpointer user_data)
{
    DbJob *job = g_new0(DbJob, 1);
    job->db = db;
    job->user_data = user_data;
    job->ctx = g_main_context_ref_thread_default();
    return job;
}

static void job_push(DbJob *job)
{
    MkDbAsync *a = job->db ? mk_db_get_async(job->db) : NULL;
    if (!a) {
        g_set_error_literal(&job->error, MK_DB_ERROR, MK_DB_ERROR_CONNECT,
                            "storage is not available");
        job_return(job);
        return;
    }
    mk_job_pool_push(a->pool, job);
}

/* Asynchronous: runs @work in a transaction on the storage pool, then
 * @done (nullable) on the calling thread's thread-default main context,
 * then @destroy (nullable) on @user_data. Any thread. */
static void run(MkDb *db, MkModule *mod, gboolean reads, MkDbWork work, MkDbWorkDone done,
                gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(work != NULL);
    DbJob *job = job_new(db, user_data);
    job->mod = mod ? mk_module_ref(mod) : NULL;
    job->work = work;
    job->reads = reads;
    job->done = done;
    job->destroy = destroy;
    job_push(job);
}

void mk_db_run(MkDb *db, MkDbWork work, MkDbWorkDone done, gpointer user_data,
               GDestroyNotify destroy)
{
    run(db, NULL, FALSE, work, done, user_data, destroy);
}

/* Asynchronous single query: @params are copied; @done (nullable) gets
 * the rows (transfer none) on the calling thread. Any thread. */
static void query_async(MkDb *db, MkModule *mod, const char *sql, const MkDbParam *params,
                        MkDbQueryDone done, gpointer user_data)
{
    g_return_if_fail(sql != NULL);
    DbJob *job = job_new(db, user_data);
    job->mod = mod ? mk_module_ref(mod) : NULL;
    job->sql = g_strdup(sql);
    guint n = 0;
    while (params && params[n].type != MK_DB_PARAM_END)
        n++;
    job->params = g_new0(MkDbParam, n + 1);
    for (guint i = 0; i < n; i++) {
        job->params[i] = params[i];
        job->params[i].s = g_strdup(params[i].s);
    }
    job->params[n] = MK_DB_END;
    job->query_done = done;
    job_push(job);
}

void mk_db_query_async(MkDb *db, const char *sql, const MkDbParam *params, MkDbQueryDone done,
                       gpointer user_data)
{
    query_async(db, NULL, sql, params, done, user_data);
}

static MkDb *server_db(void)
{
    MkServer *srv = mk_server_get();
    return srv ? srv->db : NULL;
}

/* Public module API: see mk-db.h. Any thread that runs a main context. */
void mk_db_queryv(MkModule *mod, const char *sql, const MkDbParam *params, MkDbQueryDone done,
                  gpointer user_data)
{
    g_return_if_fail(mod != NULL);
    query_async(server_db(), mod, sql, params, done, user_data);
}

/* See db.h. */
void mk_db_reads_async(MkDbWork work, MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy)
{
    run(server_db(), NULL, TRUE, work, done, user_data, destroy);
}

/* Public module API: see mk-db.h. Any thread that runs a main context. */
void mk_db_transaction_run(MkModule *mod, MkDbWork work, MkDbWorkDone done, gpointer user_data,
                           GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL);
    run(server_db(), mod, FALSE, work, done, user_data, destroy);
}
