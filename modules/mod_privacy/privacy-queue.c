/* Per-user serial execution of storage work (the pattern of mod_roster's
 * roster-queue.c; modules share no code, so it is repeated here).
 *
 * Storage jobs run in parallel on the storage pool and complete in any
 * order, but one user's list changes must be written and installed in the
 * cache in the order they were asked for. So the operations of one key (a bare JID) run one at a
 * time: the next starts when the previous one's completion has run.
 *
 * Each operation's completion runs on the thread that queued it, as a
 * plain mk_db_transaction's would: when the next operation belongs to
 * another thread, it is started from that thread's main context. */
#include "privacy.h"

struct PrivQueue {
    gint ref;
    MkModule *mod;
    GMutex lock;
    GHashTable *busy; /* key -> GQueue* of waiting Op (the running one is not in it) */
};

typedef struct {
    PrivQueue *q;
    char *key;
    GMainContext *ctx; /* the context of the thread that queued it */
    MkDbWork work;
    PrivOpDone done;
    gpointer data;
    GDestroyNotify destroy;
} Op;

static void op_start(Op *op);

static void op_free(Op *op)
{
    if (op->destroy)
        op->destroy(op->data);
    priv_queue_unref(op->q);
    g_main_context_unref(op->ctx);
    g_free(op->key);
    g_free(op);
}

static void waiting_free(gpointer data)
{
    g_queue_free_full(data, (GDestroyNotify)op_free);
}

PrivQueue *priv_queue_new(MkModule *mod)
{
    PrivQueue *q = g_new0(PrivQueue, 1);
    q->ref = 1;
    q->mod = mod;
    g_mutex_init(&q->lock);
    q->busy = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, waiting_free);
    return q;
}

PrivQueue *priv_queue_ref(PrivQueue *q)
{
    g_atomic_int_inc(&q->ref);
    return q;
}

void priv_queue_unref(PrivQueue *q)
{
    if (!q || !g_atomic_int_dec_and_test(&q->ref))
        return;
    g_hash_table_destroy(q->busy);
    g_mutex_clear(&q->lock);
    g_free(q);
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
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, op_start_idle, op, NULL);
    g_source_set_name(src, "mod_privacy-queue");
    g_source_attach(src, op->ctx);
    g_source_unref(src);
}

/* On the thread that queued @op. */
static void op_done(const GError *error, gpointer user_data)
{
    Op *op = user_data;
    PrivQueue *q = op->q;

    if (op->done)
        op->done(error, op->data);

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

static void op_start(Op *op)
{
    mk_db_transaction(op->q->mod, op_work, op_done, op, NULL);
}

void priv_queue_run(PrivQueue *q, const char *key, MkDbWork work, PrivOpDone done, gpointer data,
                    GDestroyNotify destroy)
{
    Op *op = g_new0(Op, 1);
    op->q = priv_queue_ref(q);
    op->key = g_strdup(key);
    op->ctx = g_main_context_ref_thread_default();
    op->work = work;
    op->done = done;
    op->data = data;
    op->destroy = destroy;

    g_mutex_lock(&q->lock);
    GQueue *waiting = g_hash_table_lookup(q->busy, key);
    if (waiting) {
        g_queue_push_tail(waiting, op);
        op = NULL;
    } else {
        g_hash_table_insert(q->busy, g_strdup(key), g_queue_new());
    }
    g_mutex_unlock(&q->lock);

    if (op)
        op_start(op);
}
