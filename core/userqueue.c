/* Per-user serial storage work for modules (mk-userqueue.h).
 *
 * A queue keeps, per key, the operations waiting behind the running one;
 * the running one starts the next from its completion. Each operation's
 * completion runs on the thread that pushed it, as a plain
 * mk_db_transaction_run's would: when the next operation belongs to another
 * thread, it is started from that thread's main context.
 *
 * The queue's memory belongs to its MkModule (freed with the struct, so
 * the handle is valid as long as the module's pointer is), and every
 * operation holds a reference to the module. The module's stop closes
 * the queue (mk_user_queues_close): what waits gets a few seconds to run
 * (a graceful stop keeps the writes already asked for), then what is
 * still waiting is cancelled, not run. */
#include "db.h"
#include "modules-priv.h"
#include "modules.h"
#include "worker.h"

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-user-queue-error-quark, mk_user_queue_error)
/* clang-format on */

struct MkUserQueue {
    MkModule *mod; /* no reference: the module owns the queue */
    GMutex lock;
    GHashTable *busy; /* key -> GQueue* of waiting Op (the running one is not in it) */
    gboolean closed;  /* the module stopped */
};

struct MkUserJob {
    MkUserQueue *q;
    char *key;
    GMainContext *ctx; /* (nullable) the context of the thread that pushed it */
    MkDbWork work;
    MkUserJobFunc start; /* mk_user_queue_run: a job, @work is NULL */
    gboolean reads;      /* mk_user_queue_push_reads: no write transaction */
    MkDbWorkDone done;
    gpointer data;
    GDestroyNotify destroy;
};
typedef struct MkUserJob Op; /* an operation; with @start, a job */

static void op_start(Op *op);

static void op_free(gpointer data)
{
    Op *op = data;
    if (op->destroy)
        op->destroy(op->data);
    if (op->ctx)
        g_main_context_unref(op->ctx);
    g_free(op->key);
    MkModule *mod = op->q->mod;
    g_free(op);
    mk_module_unref(mod); /* last: it may free the queue */
}

static void waiting_free(gpointer data)
{
    g_queue_free_full(data, op_free);
}

/* Frees @data, an MkUserQueue with nothing running. See modules-priv.h. */
void mk_user_queue_free(gpointer data)
{
    MkUserQueue *q = data;
    g_hash_table_destroy(q->busy);
    g_mutex_clear(&q->lock);
    g_free(q);
}

/* Public module API (mk-userqueue.h). (transfer none) Main thread. */
MkUserQueue *mk_user_queue_new(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, NULL);
    if (!mod->live) {
        g_warning("module %s: mk_user_queue_new outside a running instance ignored", mod->name);
        return NULL;
    }
    MkUserQueue *q = g_new0(MkUserQueue, 1);
    q->mod = mod;
    g_mutex_init(&q->lock);
    q->busy = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, waiting_free);
    g_ptr_array_add(mod->queues, q);
    return q;
}

static gboolean op_cancelled(gpointer data)
{
    Op *op = data;
    if (op->done) {
        g_autoptr(GError) error =
            g_error_new(MK_USER_QUEUE_ERROR, MK_USER_QUEUE_ERROR_STOPPED,
                        "module %s stopped before the operation ran", op->q->mod->name);
        op->done(error, op->data);
    }
    return G_SOURCE_REMOVE;
}

/* Tells @op's thread that @op will not run, then frees it there. The
 * context keeps the source, and only the source keeps @op: if that
 * thread's context goes away first (a worker stopping at shutdown), the
 * source is destroyed with it and @op is freed without its @done. */
static void op_cancel(Op *op)
{
    /* Taken before the attach: from then on @op may be freed over there. */
    GMainContext *ctx = g_steal_pointer(&op->ctx);
    mk_context_post(ctx, op_cancelled, op, op_free, "mk-user-queue-cancel");
    g_main_context_unref(ctx);
}

static gboolean op_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    Op *op = user_data;
    return op->work(conn, op->data, error);
}

static gboolean op_start_idle(gpointer user_data)
{
    op_start(user_data);
    return G_SOURCE_REMOVE;
}

/* Starts @op on its own thread: directly when that is this one. */
static void op_start_on_its_thread(Op *op)
{
    GMainContext *here = g_main_context_ref_thread_default();
    gboolean same = here == op->ctx;
    g_main_context_unref(here);
    if (same) {
        op_start(op);
        return;
    }
    mk_context_post(op->ctx, op_start_idle, op, NULL, "mk-user-queue-next");
}

/* @op is over: frees it and starts the key's next operation. */
static void op_next(Op *op)
{
    MkUserQueue *q = op->q;
    Op *next = NULL;
    g_mutex_lock(&q->lock);
    GQueue *waiting = g_hash_table_lookup(q->busy, op->key);
    if (waiting)
        next = g_queue_pop_head(waiting);
    if (!next)
        g_hash_table_remove(q->busy, op->key);
    g_mutex_unlock(&q->lock);

    op_free(op);
    if (next)
        op_start_on_its_thread(next);
}

/* The storage job of @op completed: on the thread that pushed it. */
static void op_done(const GError *error, gpointer user_data)
{
    Op *op = user_data;
    if (op->done)
        op->done(error, op->data);
    op_next(op);
}

/* Public module API (mk-userqueue.h). Any thread, once per job. */
void mk_user_job_finish(MkUserJob *job)
{
    g_return_if_fail(job != NULL);
    op_next((Op *)job);
}

static void op_start(Op *op)
{
    if (op->start) {
        /* The job is the operation: it ends in mk_user_job_finish. */
        op->start((MkUserJob *)op, op->data);
        return;
    }
    /* Not through mk_db_transaction_run's destroy: op_done frees @op itself,
     * after it found the next operation. */
    if (op->reads)
        mk_db_reads_async(op_work, op_done, op, NULL);
    else
        mk_db_transaction_run(op->q->mod, op_work, op_done, op, NULL);
}

static void push(MkUserQueue *q, const char *key, gboolean reads, MkDbWork work,
                 MkUserJobFunc start, MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(q != NULL && key != NULL && (work != NULL) != (start != NULL));
    Op *op = g_new0(Op, 1);
    op->reads = reads;
    op->start = start;
    op->q = q;
    mk_module_ref(q->mod);
    op->key = g_strdup(key);
    op->ctx = g_main_context_ref_thread_default();
    op->work = work;
    op->done = done;
    op->data = user_data;
    op->destroy = destroy;

    gboolean closed, run = FALSE;
    g_mutex_lock(&q->lock);
    closed = q->closed;
    if (!closed) {
        GQueue *waiting = g_hash_table_lookup(q->busy, key);
        if (waiting) {
            g_queue_push_tail(waiting, op);
        } else {
            g_hash_table_insert(q->busy, g_strdup(key), g_queue_new());
            run = TRUE;
        }
    }
    g_mutex_unlock(&q->lock);

    if (closed)
        op_cancel(op);
    else if (run)
        op_start(op);
}

/* Public module API (mk-userqueue.h). Any thread with a thread-default
 * main context. */
void mk_user_queue_push(MkUserQueue *q, const char *key, MkDbWork work, MkDbWorkDone done,
                        gpointer user_data, GDestroyNotify destroy)
{
    push(q, key, FALSE, work, NULL, done, user_data, destroy);
}

void mk_user_queue_push_reads(MkUserQueue *q, const char *key, MkDbWork work, MkDbWorkDone done,
                              gpointer user_data, GDestroyNotify destroy)
{
    push(q, key, TRUE, work, NULL, done, user_data, destroy);
}

/* Public module API (mk-userqueue.h). Any thread with a thread-default
 * main context. */
void mk_user_queue_run(MkUserQueue *q, const char *key, MkUserJobFunc start, gpointer user_data,
                       GDestroyNotify destroy)
{
    push(q, key, FALSE, NULL, start, NULL, user_data, destroy);
}

/* How long a stopping module's queues may take to run what waits. */
#define DRAIN_US (3 * G_USEC_PER_SEC)

static gboolean queues_idle(MkModule *mod)
{
    for (guint i = 0; i < mod->queues->len; i++) {
        MkUserQueue *q = g_ptr_array_index(mod->queues, i);
        g_mutex_lock(&q->lock);
        guint busy = g_hash_table_size(q->busy);
        g_mutex_unlock(&q->lock);
        if (busy)
            return FALSE;
    }
    return TRUE;
}

/* See modules-priv.h. Main thread. */
void mk_user_queues_close(MkModule *mod)
{
    /* Writes a module asked for before its stop (a room's subject just
     * changed, a roster item) still run: operations go on from the
     * threads that pushed them (the workers outlive the modules), while
     * this thread waits, bounded. One pushed from this thread cannot
     * progress meanwhile and is cancelled at the deadline. */
    gint64 deadline = g_get_monotonic_time() + DRAIN_US;
    while (!queues_idle(mod) && g_get_monotonic_time() < deadline)
        g_usleep(1000);
    for (guint i = 0; i < mod->queues->len; i++) {
        MkUserQueue *q = g_ptr_array_index(mod->queues, i);
        GQueue cancelled = G_QUEUE_INIT;
        g_mutex_lock(&q->lock);
        q->closed = TRUE;
        /* The running operations keep their keys, so that their
         * completion finds an empty queue and starts nothing. */
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, q->busy);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
            GQueue *waiting = value;
            Op *op;
            while ((op = g_queue_pop_head(waiting)))
                g_queue_push_tail(&cancelled, op);
        }
        g_mutex_unlock(&q->lock);
        Op *op;
        while ((op = g_queue_pop_head(&cancelled)))
            op_cancel(op);
    }
}
