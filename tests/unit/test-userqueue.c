/* The per-user queue of the module API (core/userqueue.c) on a real
 * storage pool (sqlite3, two connections): one key runs in order and one
 * at a time, different keys run in parallel, each completion comes back
 * on the thread that pushed, and a module stop runs what waits (within
 * a deadline) and cancels the rest. */
#include "module-fixture.h"
#include "db.h"
#include "modules.h"

static ModuleFixture fx;
static MkModule *mod;
static MkUserQueue *queue;

static gboolean queue_start(MkModule *m, GError **error)
{
    queue = mk_user_queue_new(m);
    return queue != NULL;
}

static const MkModuleDesc queue_desc = {MK_MODULE_DESC_HEADER, .name = "mod_queuetest",
                                        .start = queue_start};

static void setup(void)
{
    module_fixture_start(&fx, &queue_desc);
    mod = fx.mod;
    g_assert_nonnull(queue);
}

static void teardown(void)
{
    fx.mod = mod; /* NULL when the test stopped it */
    module_fixture_stop(&fx);
    mod = NULL;
    queue = NULL;
}

/* ---- one operation, and what the test saw of it ---- */

typedef struct Shared Shared;

typedef struct {
    Shared *sh;
    guint index;
    gboolean gated;      /* its work waits until Shared.open */
    gboolean gated_done; /* its done waits until Shared.open */
    gboolean reads;      /* pushed with mk_user_queue_push_reads */
    gint work_seq;       /* sequence number when its work started; 0: never */
    gint done_seq;       /* ... when its done ran */
    GThread *done_thread;
    gboolean done, destroyed, failed;
    GQuark error_domain;
    gint error_code;
} Op;

struct Shared {
    GMutex lock;
    GCond cond;
    gboolean open;       /* gated works may go on */
    guint gated_waiting; /* gated works that are waiting */
    gint seq;            /* atomic: work starts and dones, in order */
    gint running;        /* atomic: works running on the queue's keys */
    gint max_running;    /* the most that ever ran at once */
    GArray *work_order;  /* guint index of each work, in start order */
};

static void shared_init(Shared *sh)
{
    memset(sh, 0, sizeof *sh);
    g_mutex_init(&sh->lock);
    g_cond_init(&sh->cond);
    sh->work_order = g_array_new(FALSE, FALSE, sizeof(guint));
}

static void shared_clear(Shared *sh)
{
    g_array_unref(sh->work_order);
    g_cond_clear(&sh->cond);
    g_mutex_clear(&sh->lock);
}

static void shared_open(Shared *sh)
{
    g_mutex_lock(&sh->lock);
    sh->open = TRUE;
    g_cond_broadcast(&sh->cond);
    g_mutex_unlock(&sh->lock);
}

/* Blocks until shared_open(), telling shared_wait_gated(). */
static void shared_block(Shared *sh)
{
    g_mutex_lock(&sh->lock);
    sh->gated_waiting++;
    g_cond_broadcast(&sh->cond);
    while (!sh->open)
        g_cond_wait(&sh->cond, &sh->lock);
    g_mutex_unlock(&sh->lock);
}

/* Waits until a gated work or done is blocked. */
static void shared_wait_gated(Shared *sh)
{
    g_mutex_lock(&sh->lock);
    while (sh->gated_waiting == 0)
        g_cond_wait(&sh->cond, &sh->lock);
    g_mutex_unlock(&sh->lock);
}

/* On a storage thread. */
static gboolean op_work(MkDbConn *conn, gpointer data, GError **error)
{
    Op *op = data;
    Shared *sh = op->sh;
    op->work_seq = g_atomic_int_add(&sh->seq, 1) + 1;
    gint now = g_atomic_int_add(&sh->running, 1) + 1;
    g_mutex_lock(&sh->lock);
    sh->max_running = MAX(sh->max_running, now);
    g_array_append_val(sh->work_order, op->index);
    g_mutex_unlock(&sh->lock);
    if (op->gated)
        shared_block(sh);
    /* A real statement, and time for another job to overlap if the queue
     * let it. */
    g_autoptr(MkDbResult) r = mk_db_conn_query(conn, error, "SELECT 1");
    g_usleep(2000);
    g_atomic_int_add(&sh->running, -1);
    return r != NULL;
}

static void op_done(const GError *error, gpointer data)
{
    Op *op = data;
    op->done_seq = g_atomic_int_add(&op->sh->seq, 1) + 1;
    op->done_thread = g_thread_self();
    op->done = TRUE;
    op->failed = error != NULL;
    if (error)
        g_test_message("op %u: %s", op->index, error->message);
    op->error_domain = error ? error->domain : 0;
    op->error_code = error ? error->code : 0;
    if (op->gated_done)
        shared_block(op->sh);
}

static void op_destroy(gpointer data)
{
    Op *op = data;
    g_assert_false(op->destroyed);
    op->destroyed = TRUE;
}

static void push(Op *op, Shared *sh, guint index, const char *key)
{
    op->sh = sh;
    op->index = index;
    if (op->reads)
        mk_user_queue_push_reads(queue, key, op_work, op_done, op, op_destroy);
    else
        mk_user_queue_push(queue, key, op_work, op_done, op, op_destroy);
}

/* Iterates @ctx until *@flag; the deadline only keeps a broken queue from
 * hanging the suite. */
static void iterate_until(GMainContext *ctx, gboolean *flag)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    while (!g_atomic_int_get(flag) && g_get_monotonic_time() < deadline)
        g_main_context_iteration(ctx, TRUE);
    g_assert_true(g_atomic_int_get(flag));
}

/* ---- tests ---- */

/* One key: works run one at a time and in push order, and each done runs
 * before the next work starts. */
static void test_order(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    enum { N = 16 };
    Op ops[N] = {0};
    for (guint i = 0; i < N; i++)
        push(&ops[i], &sh, i, "alice@localhost");
    /* Nothing completes before this thread runs its context. */
    g_assert_false(ops[0].done);
    iterate_until(NULL, &ops[N - 1].destroyed);

    g_assert_cmpint(sh.max_running, ==, 1);
    g_assert_cmpuint(sh.work_order->len, ==, N);
    for (guint i = 0; i < N; i++) {
        g_assert_cmpuint(g_array_index(sh.work_order, guint, i), ==, i);
        g_assert_true(ops[i].done && ops[i].destroyed && !ops[i].failed);
        g_assert_true(ops[i].done_thread == g_thread_self());
        g_assert_cmpint(ops[i].work_seq, <, ops[i].done_seq);
        if (i > 0)
            g_assert_cmpint(ops[i - 1].done_seq, <, ops[i].work_seq);
    }
    shared_clear(&sh);
    teardown();
}

/* One key, two threads: the second operation, pushed by this thread,
 * starts after the first one's done ran on the other thread, and its own
 * done comes back here. */
typedef struct {
    Shared *sh;
    Op *op;
    GThread *thread;
    gboolean pushed;
} Pusher;

static gpointer pusher_thread(gpointer data)
{
    Pusher *p = data;
    p->thread = g_thread_self();
    GMainContext *ctx = g_main_context_new();
    g_main_context_push_thread_default(ctx);
    push(p->op, p->sh, 1, "alice@localhost");
    g_atomic_int_set(&p->pushed, TRUE);
    iterate_until(ctx, &p->op->destroyed);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);
    return NULL;
}

static void test_threads(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Op first = {.gated = TRUE}, second = {0};
    Pusher p = {.sh = &sh, .op = &first};
    GThread *t = g_thread_new("pusher", pusher_thread, &p);
    shared_wait_gated(&sh); /* the other thread's operation is running */
    push(&second, &sh, 2, "alice@localhost");
    shared_open(&sh);
    iterate_until(NULL, &second.destroyed);
    g_thread_join(t);

    g_assert_true(first.done_thread == p.thread);
    g_assert_true(second.done_thread == g_thread_self());
    g_assert_cmpint(first.done_seq, <, second.work_seq);
    g_assert_false(first.failed || second.failed);
    shared_clear(&sh);
    teardown();
}

/* A thread with its own loop (as a worker) pushes @ops[0..2] under one
 * key, then runs its loop until the last is destroyed. */
typedef struct {
    Shared *sh;
    Op *ops;
    gboolean pushed;
} Pusher3;

static gpointer pusher3_thread(gpointer data)
{
    Pusher3 *p = data;
    GMainContext *ctx = g_main_context_new();
    g_main_context_push_thread_default(ctx);
    for (guint i = 0; i < 3; i++)
        push(&p->ops[i], p->sh, i + 1, "alice@localhost");
    g_atomic_int_set(&p->pushed, TRUE);
    iterate_until(ctx, &p->ops[2].destroyed);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);
    return NULL;
}

/* Opens the gate once the main thread is about to stop the module. */
static gpointer opener_thread(gpointer data)
{
    Shared *sh = data;
    g_usleep(50000); /* the main thread is inside the stop by then */
    shared_open(sh);
    return NULL;
}

/* Stop drains: operations pushed from a thread that keeps running (a
 * worker) and waiting when the module stops still run, in order, within
 * the stop's deadline: a graceful stop keeps the writes asked for. */
static void test_stop_drains(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Op ops[3] = {{.gated = TRUE}, {0}, {0}};
    Pusher3 p = {.sh = &sh, .ops = ops};
    GThread *t = g_thread_new("pusher", pusher3_thread, &p);
    shared_wait_gated(&sh); /* the first runs, two wait behind it */
    GThread *o = g_thread_new("opener", opener_thread, &sh);
    MkModule *keep = mk_module_ref(mod);
    mk_module_stop_adhoc(g_steal_pointer(&mod));
    g_thread_join(o);
    g_thread_join(t);
    for (guint i = 0; i < 3; i++) {
        g_assert_true(ops[i].done && ops[i].destroyed);
        g_assert_false(ops[i].failed);
        g_assert_cmpint(ops[i].work_seq, >, 0);
    }
    g_assert_cmpint(ops[0].done_seq, <, ops[1].work_seq);
    g_assert_cmpint(ops[1].done_seq, <, ops[2].work_seq);
    g_assert_cmpint(g_atomic_int_get(&keep->ref), ==, 1);
    mk_module_unref(keep);
    shared_clear(&sh);
    teardown();
}

/* Stop: the running operation (held past the stop's drain deadline)
 * completes normally; those waiting, and a push after the stop, are not
 * run and hear MK_USER_QUEUE_ERROR_STOPPED;
 * every destroy runs once and no operation keeps the module. */
static void test_stop(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Op running = {.gated = TRUE}, waiting1 = {0}, waiting2 = {0}, late = {0};
    push(&running, &sh, 1, "alice@localhost");
    push(&waiting1, &sh, 2, "alice@localhost");
    push(&waiting2, &sh, 3, "alice@localhost");
    shared_wait_gated(&sh);

    MkModule *keep = mk_module_ref(mod);
    mk_module_stop_adhoc(g_steal_pointer(&mod));
    push(&late, &sh, 4, "bob@localhost");
    /* Nothing is answered from inside stop or push. */
    g_assert_false(waiting1.done || late.done);

    iterate_until(NULL, &late.destroyed);
    Op *cancelled[] = {&waiting1, &waiting2, &late};
    for (guint i = 0; i < G_N_ELEMENTS(cancelled); i++) {
        Op *op = cancelled[i];
        g_assert_true(op->done && op->destroyed && op->failed);
        g_assert_true(op->error_domain == MK_USER_QUEUE_ERROR);
        g_assert_cmpint(op->error_code, ==, MK_USER_QUEUE_ERROR_STOPPED);
        g_assert_cmpint(op->work_seq, ==, 0);
        g_assert_true(op->done_thread == g_thread_self());
    }
    g_assert_cmpint(waiting1.done_seq, <, waiting2.done_seq);
    g_assert_false(running.done);

    shared_open(&sh);
    iterate_until(NULL, &running.destroyed);
    g_assert_true(running.done && !running.failed);
    g_assert_cmpuint(sh.work_order->len, ==, 1);
    /* Every operation let go of the module: only our reference is left. */
    g_assert_cmpint(g_atomic_int_get(&keep->ref), ==, 1);
    mk_module_unref(keep);
    shared_clear(&sh);
    teardown();
}

/* Two keys: while one key's operation is held (its done blocks its
 * thread; a held work would hold sqlite's write lock instead), the other
 * key's operation runs and completes, and the held key's next operation
 * does not start. */
static void test_parallel(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Op a1 = {.gated_done = TRUE}, a2 = {0}, b1 = {0};
    Pusher p = {.sh = &sh, .op = &a1};
    GThread *t = g_thread_new("pusher", pusher_thread, &p);
    shared_wait_gated(&sh);
    push(&a2, &sh, 2, "alice@localhost");
    push(&b1, &sh, 3, "bob@localhost");
    iterate_until(NULL, &b1.destroyed);
    g_assert_false(b1.failed);
    g_assert_cmpint(a2.work_seq, ==, 0);
    g_assert_false(a1.destroyed);

    shared_open(&sh);
    iterate_until(NULL, &a2.destroyed);
    g_thread_join(t);
    g_assert_false(a1.failed || a2.failed);
    g_assert_cmpint(b1.done_seq, <, a2.work_seq);
    shared_clear(&sh);
    teardown();
}

/* Reads (no write transaction) keep their place among the key's writes. */
static void test_reads(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    enum { N = 8 };
    Op ops[N] = {0};
    for (guint i = 0; i < N; i++) {
        ops[i].reads = i % 2 == 1;
        push(&ops[i], &sh, i, "alice@localhost");
    }
    iterate_until(NULL, &ops[N - 1].destroyed);
    g_assert_cmpint(sh.max_running, ==, 1);
    g_assert_cmpuint(sh.work_order->len, ==, N);
    for (guint i = 0; i < N; i++) {
        g_assert_cmpuint(g_array_index(sh.work_order, guint, i), ==, i);
        g_assert_true(ops[i].done && ops[i].destroyed && !ops[i].failed);
        if (i > 0)
            g_assert_cmpint(ops[i - 1].done_seq, <, ops[i].work_seq);
    }
    shared_clear(&sh);
    teardown();
}

/* ---- jobs of several steps ---- */

typedef struct {
    Shared *sh;
    MkUserJob *job;
    guint steps;     /* storage steps to make before finishing */
    guint made;      /* steps completed */
    gint start_seq;  /* when it started; 0: never */
    gint finish_seq; /* when it finished */
    gboolean started, destroyed;
    GThread *thread; /* where it started */
} Job;

static gboolean job_step_work(MkDbConn *conn, gpointer data, GError **error)
{
    g_autoptr(MkDbResult) r = mk_db_conn_query(conn, error, "SELECT 1");
    return r != NULL;
}

static void job_step_done(const GError *error, gpointer data)
{
    Job *j = data;
    g_assert_no_error(error);
    j->made++;
    if (j->made < j->steps) {
        mk_db_transaction_run(mod, job_step_work, job_step_done, j, NULL);
        return;
    }
    j->finish_seq = g_atomic_int_add(&j->sh->seq, 1) + 1;
    mk_user_job_finish(j->job);
}

static void job_start(MkUserJob *job, gpointer data)
{
    Job *j = data;
    j->job = job;
    j->started = TRUE;
    j->thread = g_thread_self();
    j->start_seq = g_atomic_int_add(&j->sh->seq, 1) + 1;
    if (j->steps == 0) {
        j->finish_seq = j->start_seq;
        mk_user_job_finish(job); /* at once, from inside start */
        return;
    }
    mk_db_transaction_run(mod, job_step_work, job_step_done, j, NULL);
}

static void job_destroy(gpointer data)
{
    Job *j = data;
    g_assert_false(j->destroyed);
    j->destroyed = TRUE;
}

/* A job holds its key over several storage round trips: an operation and
 * a job pushed after it start only when it finished, in push order; a
 * job that finishes inside its start lets the next one go at once. */
static void test_jobs(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Job j1 = {.sh = &sh, .steps = 3}, j2 = {.sh = &sh, .steps = 0}, j3 = {.sh = &sh, .steps = 2};
    Op op = {0};
    mk_user_queue_run(queue, "alice@localhost", job_start, &j1, job_destroy);
    g_assert_true(j1.started); /* nothing ran on the key: started from the call */
    push(&op, &sh, 1, "alice@localhost");
    mk_user_queue_run(queue, "alice@localhost", job_start, &j2, job_destroy);
    mk_user_queue_run(queue, "alice@localhost", job_start, &j3, job_destroy);
    g_assert_false(j2.started);
    iterate_until(NULL, &j3.destroyed);

    g_assert_cmpuint(j1.made, ==, 3);
    g_assert_true(j1.destroyed && j2.destroyed && op.destroyed);
    g_assert_cmpint(j1.finish_seq, <, op.work_seq);
    g_assert_cmpint(op.done_seq, <, j2.start_seq);
    g_assert_cmpint(j2.finish_seq, <, j3.start_seq);
    g_assert_true(j3.thread == g_thread_self());
    shared_clear(&sh);
    teardown();
}

/* Stop: a running job goes on until it finishes; a waiting one is never
 * started, and its destroy runs. */
static void test_jobs_stop(void)
{
    setup();
    Shared sh;
    shared_init(&sh);
    Job running = {.sh = &sh, .steps = 2}, waiting = {.sh = &sh, .steps = 1};
    mk_user_queue_run(queue, "alice@localhost", job_start, &running, job_destroy);
    mk_user_queue_run(queue, "alice@localhost", job_start, &waiting, job_destroy);
    MkModule *keep = mk_module_ref(mod);
    mk_module_stop_adhoc(g_steal_pointer(&mod));
    mod = keep; /* its storage calls still name it */
    iterate_until(NULL, &waiting.destroyed);
    g_assert_false(waiting.started);
    iterate_until(NULL, &running.destroyed);
    g_assert_cmpuint(running.made, ==, 2);
    g_assert_cmpint(g_atomic_int_get(&keep->ref), ==, 1);
    mk_module_unref(keep);
    mod = NULL;
    shared_clear(&sh);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/userqueue/order", test_order);
    g_test_add_func("/userqueue/parallel", test_parallel);
    g_test_add_func("/userqueue/threads", test_threads);
    g_test_add_func("/userqueue/stop", test_stop);
    g_test_add_func("/userqueue/stop-drains", test_stop_drains);
    g_test_add_func("/userqueue/reads", test_reads);
    g_test_add_func("/userqueue/jobs", test_jobs);
    g_test_add_func("/userqueue/jobs-stop", test_jobs_stop);
    return g_test_run();
}
