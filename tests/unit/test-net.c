/* Workers, listeners, connections and TLS, end to end on loopback.
 *
 * The server side runs on real workers behind a real listener; a tiny
 * line protocol lets the client (this thread, blocking sockets, GnuTLS as
 * client) make the server write, close, pause or start TLS. */
#include "conn.h"
#include "jobpool.h"
#include "listener.h"
#include "tls.h"
#include "worker.h"

#include <errno.h>
#include <gio/gio.h>
#include <gnutls/x509.h>
#include <glib/gstdio.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers: run on a worker and wait ---------------------------------- */

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean done;
    void (*func)(gpointer);
    gpointer data;
} SyncCall;

static void sync_call_job(gpointer data)
{
    SyncCall *sc = data;
    sc->func(sc->data);
    g_mutex_lock(&sc->lock);
    sc->done = TRUE;
    g_cond_signal(&sc->cond);
    g_mutex_unlock(&sc->lock);
}

static void run_on(MkWorker *w, void (*func)(gpointer), gpointer data)
{
    SyncCall sc = {.func = func, .data = data};
    g_mutex_init(&sc.lock);
    g_cond_init(&sc.cond);
    mk_worker_post(w, sync_call_job, &sc, NULL);
    g_mutex_lock(&sc.lock);
    while (!sc.done)
        g_cond_wait(&sc.cond, &sc.lock);
    g_mutex_unlock(&sc.lock);
    g_mutex_clear(&sc.lock);
    g_cond_clear(&sc.cond);
}

/* Waits up to 5 s for *@counter to reach @value (read atomically). */
static gboolean wait_for(gint *counter, gint value)
{
    for (int i = 0; i < 5000; i++) {
        if (g_atomic_int_get(counter) >= value)
            return TRUE;
        g_usleep(1000);
    }
    return g_atomic_int_get(counter) >= value;
}

/* ---- workers ------------------------------------------------------------ */

typedef struct {
    MkWorker *w;
    gboolean self_ok;
    gboolean ctx_ok;
} WhoAmI;

static void whoami_job(gpointer data)
{
    WhoAmI *x = data;
    x->self_ok = mk_worker_self() == x->w;
    x->ctx_ok = g_main_context_get_thread_default() == mk_worker_context(x->w);
}

/* mk_worker_defer: runs once per batch, in order, after the batch's jobs. */
typedef struct {
    MkDeferred d;
    GString *log;
    char name;
} DeferItem;

typedef struct {
    MkWorker *w;
    DeferItem a, b, c;
    GString *log;
    gboolean batching_in_job;
} DeferTest;

static void defer_ran(MkDeferred *d)
{
    DeferItem *it = (DeferItem *)d;
    g_string_append_c(it->log, it->name);
}

static void defer_job(gpointer data)
{
    DeferTest *t = data;
    t->batching_in_job = mk_worker_batching(t->w);
    mk_worker_defer(t->w, &t->a.d);
    mk_worker_defer(t->w, &t->b.d);
    mk_worker_defer(t->w, &t->a.d); /* already queued: still once */
    mk_worker_defer(t->w, &t->c.d);
    mk_worker_undefer(t->w, &t->b.d);
    mk_worker_undefer(t->w, &t->b.d); /* not queued: no-op */
    g_string_append_c(t->log, 'j');
}

static void defer_check_job(gpointer data)
{
    DeferTest *t = data;
    g_string_append_c(t->log, '|');
}

static void test_workers_defer(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(1, &error);
    g_assert_no_error(error);
    DeferTest t = {.w = mk_workers_get(ws, 0), .log = g_string_new(NULL)};
    DeferItem *items[] = {&t.a, &t.b, &t.c};
    for (guint i = 0; i < 3; i++) {
        items[i]->d.func = defer_ran;
        items[i]->log = t.log;
        items[i]->name = (char)('a' + i);
    }
    run_on(t.w, defer_job, &t);
    run_on(t.w, defer_check_job, &t);
    g_assert_true(t.batching_in_job);
    /* The job, then a and c (b was taken back) before the next batch. */
    g_assert_cmpstr(t.log->str, ==, "jac|");
    g_assert_false(t.a.d.queued || t.b.d.queued || t.c.d.queued);
    mk_workers_stop(ws);
    g_string_free(t.log, TRUE);
}

/* The worker's poll function: GLib's own wake-ups (a source attached
 * from another thread) and timeouts still work through our epoll set. */
static gboolean count_source(gpointer data)
{
    g_atomic_int_inc((gint *)data);
    return G_SOURCE_REMOVE;
}

static void test_workers_glib_sources(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(1, &error);
    g_assert_no_error(error);
    GMainContext *ctx = mk_worker_context(mk_workers_get(ws, 0));
    gint fired = 0;
    g_usleep(20 * 1000); /* the worker sleeps in its poll with no timeout */
    for (int i = 0; i < 3; i++) {
        GSource *idle = g_idle_source_new();
        g_source_set_callback(idle, count_source, &fired, NULL);
        g_source_attach(idle, ctx); /* wakes it through GLib's eventfd */
        g_source_unref(idle);
        g_assert_true(wait_for(&fired, 2 * i + 1));
        GSource *timer = g_timeout_source_new(30);
        g_source_set_callback(timer, count_source, &fired, NULL);
        g_source_attach(timer, ctx);
        g_source_unref(timer);
        g_assert_true(wait_for(&fired, 2 * i + 2));
    }
    mk_workers_stop(ws);
}

/* ---- job pools ---------------------------------------------------------- */

typedef struct {
    GMutex lock;
    GArray *order; /* job numbers in the order they ran */
    gint running;  /* at the same time */
    gint max_running;
    gint gather; /* a slow job waits until this many ran at once */
    gint done;
    GHashTable *threads;
    MkJobPool *pool; /* for jobs that push jobs */
} PoolTest;

typedef struct {
    PoolTest *t;
    guint n;
    guint sleep_ms;
    gboolean push_child;
} PoolJob;

static void pool_job_run(gpointer data, gpointer pool_data)
{
    PoolJob *job = data;
    PoolTest *t = pool_data;
    g_assert_true(job->t == t);
    gint now = g_atomic_int_add(&t->running, 1) + 1;
    g_mutex_lock(&t->lock);
    g_atomic_int_set(&t->max_running, MAX(t->max_running, now));
    g_array_append_val(t->order, job->n);
    g_hash_table_add(t->threads, g_thread_self());
    g_mutex_unlock(&t->lock);
    /* Waits for the others rather than hoping a sleep overlaps them: a
     * busy machine may start the threads far apart. */
    gint64 give_up = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (t->gather && g_atomic_int_get(&t->max_running) < t->gather &&
           g_get_monotonic_time() < give_up)
        g_usleep(1000);
    if (job->sleep_ms)
        g_usleep(job->sleep_ms * 1000);
    if (job->push_child) {
        PoolJob *child = g_new0(PoolJob, 1);
        child->t = t;
        child->n = 1000 + job->n;
        mk_job_pool_push(t->pool, child);
    }
    g_atomic_int_add(&t->running, -1);
    g_atomic_int_inc(&t->done);
    g_free(job);
}

static void pool_test_init(PoolTest *t, guint threads)
{
    memset(t, 0, sizeof *t);
    g_mutex_init(&t->lock);
    t->order = g_array_new(FALSE, FALSE, sizeof(guint));
    t->threads = g_hash_table_new(NULL, NULL);
    t->pool = mk_job_pool_new("test-pool", threads, pool_job_run, t);
}

static void pool_test_clear(PoolTest *t)
{
    g_array_free(t->order, TRUE);
    g_hash_table_destroy(t->threads);
    g_mutex_clear(&t->lock);
}

static void pool_push(PoolTest *t, guint n, guint sleep_ms, gboolean push_child)
{
    PoolJob *job = g_new0(PoolJob, 1);
    job->t = t;
    job->n = n;
    job->sleep_ms = sleep_ms;
    job->push_child = push_child;
    mk_job_pool_push(t->pool, job);
}

static void test_job_pool(void)
{
    PoolTest t;
    /* One thread: FIFO. */
    pool_test_init(&t, 1);
    for (guint i = 0; i < 200; i++)
        pool_push(&t, i, 0, FALSE);
    g_assert_true(wait_for(&t.done, 200));
    mk_job_pool_free(t.pool);
    for (guint i = 0; i < 200; i++)
        g_assert_cmpuint(g_array_index(t.order, guint, i), ==, i);
    g_assert_cmpuint(g_hash_table_size(t.threads), ==, 1);
    pool_test_clear(&t);

    /* Four threads: slow jobs run four at a time, never more. */
    pool_test_init(&t, 4);
    t.gather = 4;
    for (guint i = 0; i < 12; i++)
        pool_push(&t, i, 30, FALSE);
    g_assert_true(wait_for(&t.done, 12));
    g_assert_cmpint(t.max_running, ==, 4);
    g_assert_cmpuint(g_hash_table_size(t.threads), ==, 4);
    mk_job_pool_free(t.pool);
    pool_test_clear(&t);

    /* Free runs what is queued, including jobs pushed by jobs. */
    pool_test_init(&t, 2);
    for (guint i = 0; i < 20; i++)
        pool_push(&t, i, 2, TRUE);
    mk_job_pool_free(t.pool);
    g_assert_cmpint(g_atomic_int_get(&t.done), ==, 40);
    pool_test_clear(&t);

    /* A pool that never got a job starts no thread. */
    mk_job_pool_free(mk_job_pool_new("idle", 8, pool_job_run, NULL));
}

static void test_workers_start_stop(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(3, &error);
    g_assert_no_error(error);
    g_assert_nonnull(ws);
    g_assert_cmpuint(mk_workers_count(ws), ==, 3);
    g_assert_null(mk_worker_self());
    for (guint i = 0; i < 3; i++) {
        MkWorker *w = mk_workers_get(ws, i);
        g_assert_cmpuint(mk_worker_index(w), ==, i);
        g_assert_nonnull(mk_worker_scratch(w));
        for (guint j = 0; j < i; j++)
            g_assert_true(mk_worker_context(w) != mk_worker_context(mk_workers_get(ws, j)));
        WhoAmI x = {.w = w};
        run_on(w, whoami_job, &x);
        g_assert_true(x.self_ok);
        g_assert_true(x.ctx_ok);
    }
    mk_workers_stop(ws);
}

#define POSTERS         4
#define JOBS_PER_POSTER 5000

typedef struct {
    MkWorkers *ws;
    /* Written only by the worker thread that owns the slot. */
    guint last[2][POSTERS];
    guint count[2][POSTERS];
    gboolean out_of_order;
} OrderState;

typedef struct {
    OrderState *st;
    guint worker;
    guint poster;
    guint seq;
} OrderJob;

static void order_job(gpointer data)
{
    OrderJob *j = data;
    OrderState *st = j->st;
    g_assert_true(mk_worker_self() == mk_workers_get(st->ws, j->worker));
    if (st->count[j->worker][j->poster] > 0 && j->seq <= st->last[j->worker][j->poster])
        st->out_of_order = TRUE;
    st->last[j->worker][j->poster] = j->seq;
    st->count[j->worker][j->poster]++;
    g_free(j);
}

typedef struct {
    OrderState *st;
    guint poster;
} PosterArgs;

static gpointer poster_thread(gpointer data)
{
    PosterArgs *a = data;
    for (guint seq = 1; seq <= JOBS_PER_POSTER; seq++) {
        OrderJob *j = g_new(OrderJob, 1);
        j->st = a->st;
        j->worker = seq % 2;
        j->poster = a->poster;
        j->seq = seq;
        mk_worker_post(mk_workers_get(a->st->ws, j->worker), order_job, j, g_free);
    }
    return NULL;
}

static void nop(gpointer data)
{
}

/* Ping-pong between two workers: each hop posts to the other. */
typedef struct {
    MkWorkers *ws;
    gint hops;
    gboolean wrong_thread;
} PingPong;

static void ping_job(gpointer data)
{
    PingPong *pp = data;
    MkWorker *self = mk_worker_self();
    guint hop = (guint)g_atomic_int_get(&pp->hops);
    if (self != mk_workers_get(pp->ws, hop % 2))
        pp->wrong_thread = TRUE;
    g_atomic_int_inc(&pp->hops);
    if (hop + 1 < 1000)
        mk_worker_post(mk_workers_get(pp->ws, (hop + 1) % 2), ping_job, pp, NULL);
}

static void test_workers_post_order(void)
{
    g_autoptr(GError) error = NULL;
    OrderState st = {0};
    st.ws = mk_workers_start(2, &error);
    g_assert_no_error(error);

    GThread *threads[POSTERS];
    PosterArgs args[POSTERS];
    for (guint p = 0; p < POSTERS; p++) {
        args[p] = (PosterArgs){.st = &st, .poster = p};
        threads[p] = g_thread_new("poster", poster_thread, &args[p]);
    }
    for (guint p = 0; p < POSTERS; p++)
        g_thread_join(threads[p]);
    /* Everything posted before these markers has run once they ran. */
    run_on(mk_workers_get(st.ws, 0), nop, NULL);
    run_on(mk_workers_get(st.ws, 1), nop, NULL);

    g_assert_false(st.out_of_order);
    for (guint w = 0; w < 2; w++)
        for (guint p = 0; p < POSTERS; p++)
            g_assert_cmpuint(st.count[w][p], ==, JOBS_PER_POSTER / 2);

    PingPong pp = {.ws = st.ws};
    mk_worker_post(mk_workers_get(st.ws, 0), ping_job, &pp, NULL);
    g_assert_true(wait_for(&pp.hops, 1000));
    g_assert_false(pp.wrong_thread);
    mk_workers_stop(st.ws);
}

typedef struct {
    gboolean outer_done;
    gboolean inner_ran_inline;
    gint inner_runs;
} SelfPost;

static void self_inner(gpointer data)
{
    SelfPost *sp = data;
    if (!sp->outer_done)
        sp->inner_ran_inline = TRUE;
    g_atomic_int_inc(&sp->inner_runs);
}

static void self_outer(gpointer data)
{
    SelfPost *sp = data;
    mk_worker_post(mk_worker_self(), self_inner, sp, NULL);
    sp->outer_done = TRUE;
}

static void test_workers_post_self(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(1, &error);
    g_assert_no_error(error);
    SelfPost sp = {0};
    run_on(mk_workers_get(ws, 0), self_outer, &sp);
    g_assert_true(wait_for(&sp.inner_runs, 1));
    g_assert_false(sp.inner_ran_inline);
    mk_workers_stop(ws);
}

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean open;
    MkWorker *w;
    gint ran;
    gint destroyed;
} Gate;

static void counted_job(gpointer data)
{
    Gate *g = data;
    g_atomic_int_inc(&g->ran);
}

static void counted_destroy(gpointer data)
{
    Gate *g = data;
    g_atomic_int_inc(&g->destroyed);
}

static void gate_job(gpointer data)
{
    Gate *g = data;
    g_mutex_lock(&g->lock);
    while (!g->open)
        g_cond_wait(&g->cond, &g->lock);
    g_mutex_unlock(&g->lock);
    /* Posted after mk_workers_stop() queued its quit: never run. */
    for (int i = 0; i < 100; i++)
        mk_worker_post(g->w, counted_job, g, counted_destroy);
}

static gpointer stop_thread(gpointer data)
{
    mk_workers_stop(data);
    return NULL;
}

static void test_workers_stop_destroys(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(1, &error);
    g_assert_no_error(error);
    Gate g = {.w = mk_workers_get(ws, 0)};
    g_mutex_init(&g.lock);
    g_cond_init(&g.cond);
    mk_worker_post(g.w, gate_job, &g, NULL);
    GThread *t = g_thread_new("stopper", stop_thread, ws);
    g_usleep(100 * 1000); /* the stopper queues its quit meanwhile */
    g_mutex_lock(&g.lock);
    g.open = TRUE;
    g_cond_signal(&g.cond);
    g_mutex_unlock(&g.lock);
    g_thread_join(t);
    g_assert_cmpint(g.ran + g.destroyed, ==, 100);
    g_assert_cmpint(g.destroyed, ==, 100);
    g_mutex_clear(&g.lock);
    g_cond_clear(&g.cond);
}

/* Three ready eventfds; the first callback removes all three watches
 * (its own included); no other callback may follow. */
typedef struct {
    int fd[3];
    MkPollWatch *watch[3];
    guint calls;
} RemoveState;

static void remove_cb(gpointer data, guint32 events)
{
    RemoveState *rs = data;
    rs->calls++;
    for (int i = 0; i < 3; i++)
        g_clear_pointer(&rs->watch[i], mk_poll_watch_remove);
}

static void remove_setup(gpointer data)
{
    RemoveState *rs = data;
    for (int i = 0; i < 3; i++) {
        rs->fd[i] = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert_cmpint(rs->fd[i], >=, 0);
        rs->watch[i] = mk_poll_watch_add(mk_worker_self(), rs->fd[i], EPOLLIN, remove_cb, rs);
        g_assert_nonnull(rs->watch[i]);
    }
}

static void remove_teardown(gpointer data)
{
    RemoveState *rs = data;
    for (int i = 0; i < 3; i++) {
        g_assert_null(rs->watch[i]);
        close(rs->fd[i]);
    }
}

/* A watch that modifies itself to level-triggered silence, then is
 * removed by a later job. */
static void test_workers_watch_remove(void)
{
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(1, &error);
    g_assert_no_error(error);
    MkWorker *w = mk_workers_get(ws, 0);
    RemoveState rs = {0};
    run_on(w, remove_setup, &rs);
    /* Level-triggered and still readable: had a watch survived, it would
     * fire on each of these iterations. */
    for (int i = 0; i < 20; i++) {
        run_on(w, nop, NULL);
        g_usleep(1000);
    }
    g_assert_cmpuint(rs.calls, ==, 1);
    run_on(w, remove_teardown, &rs);
    mk_workers_stop(ws);
}

/* ---- the test server ---------------------------------------------------- */

typedef struct Fixture Fixture;

typedef struct {
    Fixture *fx;
    MkConn *conn;
    MkWorker *w;
    GString *in;
    gboolean paused;
    gint closed;
    GSource *resume;
} Peer;

struct Fixture {
    MkWorkers *ws;
    MkListener *l;
    guint16 port;
    MkListenConfig lc;
    gnutls_certificate_credentials_t creds;
    gboolean direct_tls;
    char *dir;

    GMutex lock;
    GPtrArray *peers; /* live Peer* (under lock) */
    gint accepted;
    gint closed;
    gint violations; /* data while paused, double on_closed */
    gint tls_ok;
    gint tls_fail;
    gint per_worker[2];
};

static void peer_free(Peer *p)
{
    if (p->resume) {
        g_source_destroy(p->resume);
        g_source_unref(p->resume);
    }
    g_string_free(p->in, TRUE);
    g_free(p);
}

static void peer_forget(Peer *p)
{
    g_mutex_lock(&p->fx->lock);
    g_ptr_array_remove(p->fx->peers, p);
    g_mutex_unlock(&p->fx->lock);
}

static void peer_process(Peer *p);

static gboolean peer_resume(gpointer data)
{
    Peer *p = data;
    g_clear_pointer(&p->resume, g_source_unref);
    p->paused = FALSE;
    mk_conn_pause(p->conn, FALSE);
    /* Lines that came in the same chunk as PAUSE. */
    peer_process(p);
    return G_SOURCE_REMOVE;
}

static void reply(Peer *p, const char *text)
{
    mk_conn_write(p->conn, text, strlen(text));
}

/* Handles complete lines; returns when paused or after FREE. */
static void peer_process(Peer *p)
{
    char *nl;
    while (!p->paused && p->conn && (nl = memchr(p->in->str, '\n', p->in->len))) {
        g_autofree char *line = g_strndup(p->in->str, (gsize)(nl - p->in->str));
        g_string_erase(p->in, 0, nl - p->in->str + 1);

        if (g_str_equal(line, "WHO")) {
            g_autofree char *r = g_strdup_printf("W%u\n", mk_worker_index(p->w));
            reply(p, r);
        } else if (g_str_has_prefix(line, "BIG ")) {
            gsize n = g_ascii_strtoull(line + 4, NULL, 10);
            g_autofree char *chunk = g_malloc(65536);
            for (gsize i = 0; i < 65536; i++)
                chunk[i] = (char)('a' + i % 26);
            for (gsize done = 0; done < n; done += 65536)
                mk_conn_write(p->conn, chunk, MIN(65536, n - done));
            mk_conn_close(p->conn);
            reply(p, "X"); /* after close: must be dropped */
        } else if (g_str_has_prefix(line, "PAUSE ")) {
            guint ms = (guint)g_ascii_strtoull(line + 6, NULL, 10);
            reply(p, "PAUSED\n");
            p->paused = TRUE;
            mk_conn_pause(p->conn, TRUE);
            p->resume = g_timeout_source_new(ms);
            g_source_set_callback(p->resume, peer_resume, p, NULL);
            g_source_attach(p->resume, mk_worker_context(p->w));
        } else if (g_str_equal(line, "STARTTLS")) {
            reply(p, "PROCEED\n");
            mk_conn_start_tls(p->conn, p->fx->creds);
        } else if (g_str_equal(line, "CB")) {
            const char *type = mk_conn_channel_binding_type(p->conn);
            g_autoptr(GBytes) cb = type ? mk_conn_channel_binding(p->conn, type) : NULL;
            GString *r = g_string_new("CB ");
            g_string_append(r, type ? type : "none");
            g_string_append_c(r, ' ');
            gsize len = 0;
            const guint8 *d = cb ? g_bytes_get_data(cb, &len) : NULL;
            for (gsize i = 0; i < len; i++)
                g_string_append_printf(r, "%02x", d[i]);
            g_string_append_c(r, '\n');
            reply(p, r->str);
            g_string_free(r, TRUE);
        } else if (g_str_equal(line, "PEER")) {
            g_autofree char *r = g_strdup_printf("PEER %s %d\n", mk_conn_peer(p->conn),
                                                 mk_conn_peer_is_loopback(p->conn));
            reply(p, r);
        } else if (g_str_equal(line, "CLOSE")) {
            mk_conn_close(p->conn);
        } else if (g_str_equal(line, "FREE")) {
            /* The owner frees the conn inside on_data: no callback may
             * follow, and the client sees the socket close. */
            mk_conn_free(p->conn);
            p->conn = NULL;
            g_atomic_int_inc(&p->fx->closed);
            peer_forget(p);
            return;
        } else {
            mk_conn_write(p->conn, line, strlen(line));
            reply(p, "\n");
        }
    }
}

static void on_data(gpointer user_data, const char *data, gsize len)
{
    Peer *p = user_data;
    if (p->paused)
        g_atomic_int_inc(&p->fx->violations);
    g_string_append_len(p->in, data, (gssize)len);
    peer_process(p);
    if (!p->conn)
        peer_free(p);
}

static void on_tls_done(gpointer user_data, gboolean ok)
{
    Peer *p = user_data;
    g_atomic_int_inc(ok ? &p->fx->tls_ok : &p->fx->tls_fail);
}

static void on_closed(gpointer user_data)
{
    Peer *p = user_data;
    if (++p->closed > 1)
        g_atomic_int_inc(&p->fx->violations);
    mk_conn_free(p->conn);
    p->conn = NULL;
    peer_forget(p);
    g_atomic_int_inc(&p->fx->closed);
    peer_free(p);
}

static const MkConnCallbacks peer_callbacks = {
    .on_data = on_data,
    .on_tls_done = on_tls_done,
    .on_closed = on_closed,
};

static void on_accept(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                      const MkListenConfig *lc, gpointer user_data)
{
    Fixture *fx = user_data;
    g_assert_true(mk_worker_self() == w);
    g_assert_cmpstr(lc->name, ==, "test");
    /* Inherited from the listening socket (no per-accept setsockopt). */
    int nodelay = 0;
    socklen_t optlen = sizeof nodelay;
    g_assert_cmpint(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &optlen), ==, 0);
    g_assert_cmpint(nodelay, ==, 1);
    Peer *p = g_new0(Peer, 1);
    p->fx = fx;
    p->w = w;
    p->in = g_string_new(NULL);
    p->conn = mk_conn_new(w, fd, peer, &peer_callbacks, p);
    g_assert_true(mk_conn_worker(p->conn) == w);
    g_assert_false(mk_conn_is_tls(p->conn));
    g_assert_cmpint(mk_conn_idle_seconds(p->conn), ==, 0);
    if (fx->direct_tls) {
        mk_conn_start_tls(p->conn, fx->creds);
        g_assert_true(mk_conn_is_tls(p->conn));
    }
    g_mutex_lock(&fx->lock);
    g_ptr_array_add(fx->peers, p);
    g_mutex_unlock(&fx->lock);
    g_atomic_int_inc(&fx->per_worker[mk_worker_index(w)]);
    g_atomic_int_inc(&fx->accepted);
}

static void fixture_start(Fixture *fx, gboolean tls)
{
    g_autoptr(GError) error = NULL;
    memset(fx, 0, sizeof *fx);
    g_mutex_init(&fx->lock);
    fx->peers = g_ptr_array_new();
    fx->ws = mk_workers_start(2, &error);
    g_assert_no_error(error);
    fx->lc.name = "test";
    fx->lc.type = "c2s";
    fx->lc.address = "127.0.0.1";
    fx->lc.port = 0;
    fx->lc.backlog = 4096;
    if (tls) {
        fx->dir = g_dir_make_tmp("mk-net-XXXXXX", &error);
        g_assert_no_error(error);
        g_autofree char *cert = g_build_filename(fx->dir, "sub", "cert.pem", NULL);
        g_autofree char *key = g_build_filename(fx->dir, "sub", "key.pem", NULL);
        const char *domains[] = {"localhost", "example.net", NULL};
        g_assert_true(mk_tls_ensure_selfsigned(cert, key, domains, &error));
        g_assert_no_error(error);
        fx->creds = mk_tls_load(cert, key, &error);
        g_assert_no_error(error);
        g_assert_nonnull(fx->creds);
    }
    fx->l = mk_listener_start(fx->ws, &fx->lc, on_accept, fx, &error);
    g_assert_no_error(error);
    fx->port = mk_listener_port(fx->l);
    g_assert_cmpuint(fx->port, !=, 0);
}

static void free_peers_job(gpointer data)
{
    Fixture *fx = data;
    MkWorker *self = mk_worker_self();
    g_mutex_lock(&fx->lock);
    for (guint i = fx->peers->len; i-- > 0;) {
        Peer *p = g_ptr_array_index(fx->peers, i);
        if (p->w != self)
            continue;
        g_ptr_array_remove_index(fx->peers, i);
        mk_conn_free(p->conn);
        peer_free(p);
    }
    g_mutex_unlock(&fx->lock);
}

static void rm_rf(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        if (g_file_test(path, G_FILE_TEST_IS_DIR))
            rm_rf(path);
        else
            g_unlink(path);
    }
    g_rmdir(dir);
}

static void fixture_stop(Fixture *fx)
{
    mk_listener_stop(fx->l);
    for (guint i = 0; i < 2; i++)
        run_on(mk_workers_get(fx->ws, i), free_peers_job, fx);
    g_assert_cmpuint(fx->peers->len, ==, 0);
    mk_workers_stop(fx->ws);
    g_ptr_array_unref(fx->peers);
    g_mutex_clear(&fx->lock);
    if (fx->creds)
        gnutls_certificate_free_credentials(fx->creds);
    if (fx->dir) {
        rm_rf(fx->dir);
        g_free(fx->dir);
    }
}

/* ---- the client --------------------------------------------------------- */

typedef struct {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t creds;
    GString *in;     /* received, not yet consumed */
    GString *corked; /* non-NULL: TLS output collected, not yet sent */
} Client;

/* Collects TLS records while corked, so that several records leave in
 * one send() and reach the server together. */
static ssize_t client_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
    Client *c = ptr;
    if (c->corked) {
        g_string_append_len(c->corked, data, (gssize)len);
        return (ssize_t)len;
    }
    return send(c->fd, data, len, MSG_NOSIGNAL);
}

static ssize_t client_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    Client *c = ptr;
    return recv(c->fd, data, len, 0);
}

static Client *client_connect(guint16 port)
{
    Client *c = g_new0(Client, 1);
    c->in = g_string_new(NULL);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), ==, 0);
    return c;
}

static void client_free(Client *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    if (c->creds)
        gnutls_certificate_free_credentials(c->creds);
    if (c->fd >= 0)
        close(c->fd);
    g_string_free(c->in, TRUE);
    g_free(c);
}

static void client_send(Client *c, const char *data, gsize len)
{
    while (len > 0) {
        gssize n =
            c->tls ? gnutls_record_send(c->tls, data, len) : send(c->fd, data, len, MSG_NOSIGNAL);
        g_assert_cmpint(n, >, 0);
        data += n;
        len -= (gsize)n;
    }
}

static void client_say(Client *c, const char *text)
{
    client_send(c, text, strlen(text));
}

/* Reads more; returns bytes read, 0 on EOF, -1 on error/timeout. */
static gssize client_fill(Client *c)
{
    char buf[16384];
    gssize n;
    if (c->tls) {
        n = gnutls_record_recv(c->tls, buf, sizeof buf);
        if (n == GNUTLS_E_PREMATURE_TERMINATION)
            n = 0;
        if (n < 0)
            return -1;
    } else {
        n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0)
            return -1;
    }
    g_string_append_len(c->in, buf, n);
    return n;
}

/* Returns the next line without its newline, or NULL on EOF/timeout. */
static char *client_line(Client *c)
{
    char *nl;
    while (!(nl = memchr(c->in->str, '\n', c->in->len)))
        if (client_fill(c) <= 0)
            return NULL;
    char *line = g_strndup(c->in->str, (gsize)(nl - c->in->str));
    g_string_erase(c->in, 0, nl - c->in->str + 1);
    return line;
}

static void client_expect(Client *c, const char *line)
{
    g_autofree char *got = client_line(c);
    g_assert_cmpstr(got, ==, line);
}

/* TRUE when the server closed (EOF) with nothing more to read. */
static gboolean client_eof(Client *c)
{
    return c->in->len == 0 && client_fill(c) == 0;
}

static int client_try_tls(Client *c, const char *cafile, const char *version)
{
    g_assert_cmpint(gnutls_certificate_allocate_credentials(&c->creds), ==, 0);
    g_assert_cmpint(gnutls_certificate_set_x509_trust_file(c->creds, cafile, GNUTLS_X509_FMT_PEM),
                    ==, 1);
    g_assert_cmpint(gnutls_init(&c->tls, GNUTLS_CLIENT), ==, 0);
    g_autofree char *prio = g_strdup_printf("NORMAL:-VERS-ALL:+VERS-%s", version);
    g_assert_cmpint(gnutls_priority_set_direct(c->tls, prio, NULL), ==, 0);
    g_assert_cmpint(gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->creds), ==, 0);
    gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, "example.net", strlen("example.net"));
    /* Checks the chain against our certificate and the name against its
     * subjectAltNames. */
    gnutls_session_set_verify_cert(c->tls, "example.net", 0);
    gnutls_transport_set_ptr(c->tls, c);
    gnutls_transport_set_push_function(c->tls, client_push);
    gnutls_transport_set_pull_function(c->tls, client_pull);
    int ret;
    do {
        ret = gnutls_handshake(c->tls);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    return ret;
}

static void client_start_tls(Client *c, const char *cafile, const char *version)
{
    int ret = client_try_tls(c, cafile, version);
    if (ret < 0)
        g_error("client handshake: %s", gnutls_strerror(ret));
}

static char *client_cb_hex(Client *c, const char *type)
{
    gnutls_channel_binding_t t =
        g_str_equal(type, "tls-exporter") ? GNUTLS_CB_TLS_EXPORTER : GNUTLS_CB_TLS_UNIQUE;
    gnutls_datum_t d;
    g_assert_cmpint(gnutls_session_channel_binding(c->tls, t, &d), ==, 0);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < d.size; i++)
        g_string_append_printf(s, "%02x", d.data[i]);
    gnutls_free(d.data);
    return g_string_free(s, FALSE);
}

/* ---- plain connection tests -------------------------------------------- */

static void test_net_echo(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    Client *c = client_connect(fx.port);
    client_say(c, "hello\nworld\n");
    client_expect(c, "hello");
    client_expect(c, "world");
    /* A line split over two sends. */
    client_say(c, "spl");
    g_usleep(20 * 1000);
    client_say(c, "it\n");
    client_expect(c, "split");

    client_say(c, "PEER\n");
    g_autofree char *peer = client_line(c);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(c->fd, (struct sockaddr *)&sin, &len);
    g_autofree char *want = g_strdup_printf("PEER 127.0.0.1:%u 1", ntohs(sin.sin_port));
    g_assert_cmpstr(peer, ==, want);

    /* 1 MiB echoed: the server's queue grows and drains via EPOLLOUT,
     * and reads are split by the per-wake-up budget. */
    GString *big = g_string_new(NULL);
    for (int i = 0; big->len < 1024 * 1024; i++)
        g_string_append_printf(big, "line %d with some padding to make it longer\n", i);
    client_send(c, big->str, big->len);
    while (c->in->len < big->len)
        g_assert_cmpint(client_fill(c), >, 0);
    g_assert_cmpuint(c->in->len, ==, big->len);
    g_assert_true(memcmp(c->in->str, big->str, big->len) == 0);
    g_string_free(big, TRUE);
    client_free(c);
    fixture_stop(&fx);
}

static void test_net_spread(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    Client *c[100];
    for (int i = 0; i < 100; i++)
        c[i] = client_connect(fx.port);
    gint seen[2] = {0, 0};
    for (int i = 0; i < 100; i++) {
        client_say(c[i], "WHO\n");
        g_autofree char *who = client_line(c[i]);
        g_assert_nonnull(who);
        g_assert_true(g_str_equal(who, "W0") || g_str_equal(who, "W1"));
        seen[who[1] - '0']++;
    }
    g_assert_cmpint(seen[0] + seen[1], ==, 100);
    /* SO_REUSEPORT hashes the 4-tuple: 100 connections on one socket
     * would mean the second worker's socket is not in the group. */
    g_assert_cmpint(seen[0], >, 0);
    g_assert_cmpint(seen[1], >, 0);
    g_assert_cmpint(g_atomic_int_get(&fx.per_worker[0]), ==, seen[0]);
    for (int i = 0; i < 100; i++)
        client_free(c[i]);
    g_assert_true(wait_for(&fx.closed, 100));
    fixture_stop(&fx);
}

static void test_net_eof(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    for (int i = 0; i < 10; i++) {
        Client *c = client_connect(fx.port);
        client_say(c, "ping\n");
        client_expect(c, "ping");
        if (i % 2)
            shutdown(c->fd, SHUT_WR); /* half-close: EOF for the server too */
        client_free(c);
    }
    g_assert_true(wait_for(&fx.closed, 10));
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&fx.closed), ==, 10);
    g_assert_cmpint(g_atomic_int_get(&fx.violations), ==, 0);
    g_mutex_lock(&fx.lock);
    g_assert_cmpuint(fx.peers->len, ==, 0);
    g_mutex_unlock(&fx.lock);
    fixture_stop(&fx);
}

static void test_net_close_flushes(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    Client *c = client_connect(fx.port);
    /* 4 MiB cannot all fit in socket buffers: most of it sits in the
     * write queue when mk_conn_close is called. */
    const gsize n = 4 * 1024 * 1024;
    client_say(c, "BIG 4194304\n");
    g_usleep(100 * 1000); /* let the queue build up */
    gssize r;
    while ((r = client_fill(c)) > 0)
        ;
    g_assert_cmpint(r, ==, 0); /* EOF, not a reset or timeout */
    g_assert_cmpuint(c->in->len, ==, n);
    for (gsize i = 0; i < n; i += 4099)
        g_assert_cmpint(c->in->str[i], ==, 'a' + (i % 65536) % 26);
    client_free(c);
    g_assert_true(wait_for(&fx.closed, 1));

    /* CLOSE with nothing queued: EOF at once, on_closed after our FIN. */
    c = client_connect(fx.port);
    client_say(c, "a\nCLOSE\nb\n");
    client_expect(c, "a");
    g_assert_true(client_eof(c));
    client_free(c);
    g_assert_true(wait_for(&fx.closed, 2));
    g_assert_cmpint(g_atomic_int_get(&fx.violations), ==, 0);
    fixture_stop(&fx);
}

static void test_net_pause(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    Client *c = client_connect(fx.port);
    gint64 t0 = g_get_monotonic_time();
    client_say(c, "PAUSE 300\nsame-chunk\n");
    client_expect(c, "PAUSED");
    g_usleep(50 * 1000);
    client_say(c, "while-paused\n");
    client_expect(c, "same-chunk");
    client_expect(c, "while-paused");
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 290 * 1000);
    client_say(c, "after\n");
    client_expect(c, "after");
    g_assert_cmpint(g_atomic_int_get(&fx.violations), ==, 0);
    client_free(c);
    fixture_stop(&fx);
}

static void test_net_free_in_callback(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    Client *c = client_connect(fx.port);
    client_say(c, "x\nFREE\ny\n");
    client_expect(c, "x");
    g_assert_true(client_eof(c));
    client_free(c);
    g_assert_true(wait_for(&fx.closed, 1));
    g_usleep(50 * 1000);
    g_assert_cmpint(g_atomic_int_get(&fx.closed), ==, 1); /* no on_closed after free */
    fixture_stop(&fx);
}

static void test_net_port_taken(void)
{
    Fixture fx;
    fixture_start(&fx, FALSE);
    g_autoptr(GError) error = NULL;
    MkListenConfig lc = fx.lc;
    lc.port = fx.port;
    /* A second, separate socket group on the same port would only be
     * allowed by SO_REUSEPORT for the same user; bind a plain socket to
     * check the error path instead. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof sin), ==, 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    lc.port = ntohs(sin.sin_port);
    MkListener *l = mk_listener_start(fx.ws, &lc, on_accept, &fx, &error);
    g_assert_null(l);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
    g_autofree char *port = g_strdup_printf("127.0.0.1:%u", lc.port);
    g_assert_nonnull(strstr(error->message, port));
    close(fd);
    g_clear_error(&error);

    lc.address = "no-such-host.invalid";
    l = mk_listener_start(fx.ws, &lc, on_accept, &fx, &error);
    g_assert_null(l);
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, "no-such-host.invalid"));
    fixture_stop(&fx);
}

static void test_net_localhost(void)
{
    /* "localhost" may resolve to both ::1 and 127.0.0.1: every address
     * gets sockets on the same port. */
    g_autoptr(GError) error = NULL;
    Fixture fx;
    fixture_start(&fx, FALSE);
    MkListenConfig lc = fx.lc;
    lc.address = "localhost";
    MkListener *l = mk_listener_start(fx.ws, &lc, on_accept, &fx, &error);
    g_assert_no_error(error);
    Client *c = client_connect(mk_listener_port(l));
    client_say(c, "hi\n");
    client_expect(c, "hi");
    client_free(c);
    mk_listener_stop(l);
    fixture_stop(&fx);
}

static gint64 cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (gint64)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* Out of descriptors: the listener backs off instead of spinning on a
 * socket that stays readable, and accepts again once fds are free. */
static void test_net_emfile(void)
{
    enum { K = 5 };
    Fixture fx;
    fixture_start(&fx, FALSE);
    /* The listener logs a warning here; not fatal for this test. */
    GLogLevelFlags fatal = g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    Client *c[K];
    for (int i = 0; i < K; i++) {
        c[i] = g_new0(Client, 1);
        c[i]->in = g_string_new(NULL);
        c[i]->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(c[i]->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    /* GLib makes the default context (with its wakeup fd) lazily, e.g.
     * when logging: have it now. */
    g_main_context_default();
    /* No descriptor can be made once the limit is the lowest free one. */
    int lowest = dup(0);
    g_assert_cmpint(lowest, >=, 0);
    close(lowest);
    struct rlimit saved, rl;
    getrlimit(RLIMIT_NOFILE, &saved);
    rl = saved;
    rl.rlim_cur = (rlim_t)lowest;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(fx.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < K; i++)
        g_assert_cmpint(connect(c[i]->fd, (struct sockaddr *)&sin, sizeof sin), ==, 0);
    gint64 cpu0 = cpu_us();
    g_usleep(400 * 1000);
    gint64 cpu = cpu_us() - cpu0;
    g_assert_cmpint(g_atomic_int_get(&fx.accepted), ==, 0);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &saved), ==, 0);
    g_log_set_always_fatal(fatal);
    /* A spinning accept loop would burn about the whole 400 ms. */
    g_assert_cmpint(cpu, <, 150 * 1000);

    g_assert_true(wait_for(&fx.accepted, K));
    for (int i = 0; i < K; i++) {
        client_say(c[i], "back\n");
        client_expect(c[i], "back");
        client_free(c[i]);
    }
    g_assert_true(wait_for(&fx.closed, K));
    fixture_stop(&fx);
}

static gsize heap_in_use(void)
{
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_net_memory(void)
{
    enum { N = 1000 };
    Fixture fx;
    fixture_start(&fx, FALSE);
    /* Warm up: per-worker structures that exist once. */
    Client *warm = client_connect(fx.port);
    client_say(warm, "w\n");
    client_expect(warm, "w");

    gsize before = heap_in_use();
    Client **c = g_new(Client *, N);
    for (int i = 0; i < N; i++) {
        c[i] = g_new0(Client, 1);
        c[i]->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(fx.port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        g_assert_cmpint(connect(c[i]->fd, (struct sockaddr *)&sin, sizeof sin), ==, 0);
    }
    g_assert_true(wait_for(&fx.accepted, N + 1));
    gsize after = heap_in_use();
    /* The client side allocated N small Client structs in this process. */
    gsize client_side = N * (sizeof(Client) + 16);
    gssize per_conn = ((gssize)after - (gssize)before - (gssize)client_side) / N;
    g_test_message("heap per idle plain connection (server side: MkConn, watch, peer "
                   "string, test Peer + GString): %" G_GSSIZE_FORMAT " bytes",
                   per_conn);
    g_printerr("# heap per idle plain connection: %" G_GSSIZE_FORMAT " bytes\n", per_conn);
    /* Far below the old 16 KiB read buffer per connection. */
    g_assert_cmpint(per_conn, <, 2048);
    for (int i = 0; i < N; i++) {
        close(c[i]->fd);
        g_free(c[i]);
    }
    g_free(c);
    client_free(warm);
    g_assert_true(wait_for(&fx.closed, N + 1));
    fixture_stop(&fx);
}

/* ---- TLS ---------------------------------------------------------------- */

static void test_tls_selfsigned(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("mk-tls-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *cert = g_build_filename(dir, "a", "b", "cert.pem", NULL);
    g_autofree char *key = g_build_filename(dir, "a", "b", "key.pem", NULL);
    const char *domains[] = {"xmpp.example", "conference.xmpp.example", NULL};

    gnutls_certificate_credentials_t creds = mk_tls_load(cert, key, &error);
    g_assert_null(creds);
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, cert));
    g_clear_error(&error);

    g_assert_true(mk_tls_ensure_selfsigned(cert, key, domains, &error));
    g_assert_no_error(error);
    struct stat st;
    g_assert_cmpint(g_stat(key, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);

    g_autofree char *pem = NULL;
    gsize pem_len;
    g_assert_true(g_file_get_contents(cert, &pem, &pem_len, NULL));
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)pem_len};
    gnutls_x509_crt_init(&crt);
    g_assert_cmpint(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), ==, 0);
    g_assert_true(gnutls_x509_crt_check_hostname(crt, "xmpp.example"));
    g_assert_true(gnutls_x509_crt_check_hostname(crt, "conference.xmpp.example"));
    g_assert_false(gnutls_x509_crt_check_hostname(crt, "other.example"));
    char cn[256];
    size_t cn_len = sizeof cn;
    g_assert_cmpint(
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len), ==, 0);
    g_assert_cmpstr(cn, ==, "xmpp.example");
    g_assert_cmpint(gnutls_x509_crt_get_pk_algorithm(crt, NULL), ==, GNUTLS_PK_ECDSA);
    time_t exp = gnutls_x509_crt_get_expiration_time(crt);
    g_assert_cmpint(exp - time(NULL), >, (time_t)9 * 365 * 86400);
    unsigned int verify = 1;
    g_assert_cmpint(gnutls_x509_crt_verify(crt, &crt, 1, 0, &verify), ==, 0);
    g_assert_cmpuint(verify, ==, 0); /* self-signature checks out */
    gnutls_x509_crt_deinit(crt);

    /* Both present: left alone. */
    g_assert_true(mk_tls_ensure_selfsigned(cert, key, domains, &error));
    g_autofree char *pem2 = NULL;
    g_assert_true(g_file_get_contents(cert, &pem2, NULL, NULL));
    g_assert_cmpstr(pem, ==, pem2);

    creds = mk_tls_load(cert, key, &error);
    g_assert_no_error(error);
    g_assert_nonnull(creds);
    gnutls_certificate_free_credentials(creds);

    /* A key that does not parse: the error names the files. */
    g_assert_true(g_file_set_contents(key, "garbage", -1, NULL));
    creds = mk_tls_load(cert, key, &error);
    g_assert_null(creds);
    g_assert_nonnull(strstr(error->message, key));
    rm_rf(dir);
}

static void tls_echo(const char *version, const char *want_cb)
{
    Fixture fx;
    fixture_start(&fx, TRUE);
    fx.direct_tls = TRUE;
    g_autofree char *cafile = g_build_filename(fx.dir, "sub", "cert.pem", NULL);
    Client *c = client_connect(fx.port);
    client_start_tls(c, cafile, version);
    /* Sent right after the handshake, likely with the client's Finished. */
    client_say(c, "first\nsecond\n");
    client_expect(c, "first");
    client_expect(c, "second");
    g_assert_true(wait_for(&fx.tls_ok, 1));

    client_say(c, "CB\n");
    g_autofree char *cb = client_line(c);
    g_autofree char *mine = client_cb_hex(c, want_cb);
    g_autofree char *expect = g_strdup_printf("CB %s %s", want_cb, mine);
    g_assert_cmpstr(cb, ==, expect);

    /* Larger than a record, both ways. */
    GString *big = g_string_new(NULL);
    for (int i = 0; big->len < 300 * 1024; i++)
        g_string_append_printf(big, "tls line %d\n", i);
    client_send(c, big->str, big->len);
    while (c->in->len < big->len)
        g_assert_cmpint(client_fill(c), >, 0);
    g_assert_true(memcmp(c->in->str, big->str, big->len) == 0);
    g_string_truncate(c->in, 0);
    g_string_free(big, TRUE);

    /* Pause with the next records in the same TCP segment: GnuTLS may
     * have read them from the socket already, so only the resume path
     * (gnutls_record_check_pending) can deliver them. */
    c->corked = g_string_new(NULL);
    client_say(c, "PAUSE 200\n");
    client_say(c, "held\n");
    client_say(c, "held too\n");
    GString *burst = c->corked;
    c->corked = NULL;
    g_assert_cmpint(send(c->fd, burst->str, burst->len, 0), ==, (gssize)burst->len);
    g_string_free(burst, TRUE);
    client_expect(c, "PAUSED");
    client_expect(c, "held");
    client_expect(c, "held too");

    /* Server-initiated close: close_notify then EOF. */
    client_say(c, "CLOSE\n");
    g_assert_true(client_eof(c));
    client_free(c);
    g_assert_true(wait_for(&fx.closed, 1));
    g_assert_cmpint(g_atomic_int_get(&fx.violations), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&fx.tls_fail), ==, 0);
    fixture_stop(&fx);
}

static void test_tls_direct13(void)
{
    tls_echo("TLS1.3", "tls-exporter");
}

static void test_tls_direct12(void)
{
    tls_echo("TLS1.2", "tls-unique");
}

/* TLS 1.1 and older are refused. */
static void test_tls_old_refused(void)
{
    Fixture fx;
    fixture_start(&fx, TRUE);
    fx.direct_tls = TRUE;
    g_autofree char *cafile = g_build_filename(fx.dir, "sub", "cert.pem", NULL);
    Client *c = client_connect(fx.port);
    g_assert_cmpint(client_try_tls(c, cafile, "TLS1.1:+VERS-TLS1.0"), <, 0);
    client_free(c);
    g_assert_true(wait_for(&fx.tls_fail, 1));
    g_assert_true(wait_for(&fx.closed, 1));
    g_assert_cmpint(g_atomic_int_get(&fx.tls_ok), ==, 0);
    fixture_stop(&fx);
}

static void test_tls_starttls(void)
{
    Fixture fx;
    fixture_start(&fx, TRUE);
    g_autofree char *cafile = g_build_filename(fx.dir, "sub", "cert.pem", NULL);
    Client *c = client_connect(fx.port);
    client_say(c, "plain\n");
    client_expect(c, "plain");
    client_say(c, "CB\n");
    client_expect(c, "CB none ");
    client_say(c, "STARTTLS\n");
    client_expect(c, "PROCEED");
    g_assert_cmpuint(c->in->len, ==, 0);
    client_start_tls(c, cafile, "TLS1.3");
    client_say(c, "secret\nCB\n");
    client_expect(c, "secret");
    g_autofree char *cb = client_line(c);
    g_autofree char *mine = client_cb_hex(c, "tls-exporter");
    g_autofree char *expect = g_strdup_printf("CB tls-exporter %s", mine);
    g_assert_cmpstr(cb, ==, expect);
    g_assert_cmpint(g_atomic_int_get(&fx.tls_ok), ==, 1);
    client_free(c);
    g_assert_true(wait_for(&fx.closed, 1));

    /* A client that speaks garbage instead of a ClientHello. */
    c = client_connect(fx.port);
    client_say(c, "STARTTLS\n");
    client_expect(c, "PROCEED");
    client_say(c, "this is not TLS at all\r\n\r\n");
    g_assert_true(client_fill(c) <= 0);
    client_free(c);
    g_assert_true(wait_for(&fx.tls_fail, 1));
    g_assert_true(wait_for(&fx.closed, 2));
    g_assert_cmpint(g_atomic_int_get(&fx.violations), ==, 0);
    fixture_stop(&fx);
}

/* Idle TLS connections, the clients in a separate process (Python's ssl)
 * so that only the server side counts. A figure for the report; the bound
 * only catches a gross regression. */
static void test_tls_memory(void)
{
    enum { N = 200 };
    static const char script[] = "import socket, ssl, sys\n"
                                 "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
                                 "ctx.check_hostname = False\n"
                                 "ctx.verify_mode = ssl.CERT_NONE\n"
                                 "port, n = int(sys.argv[1]), int(sys.argv[2])\n"
                                 "conns = []\n"
                                 "for i in range(n):\n"
                                 "    s = socket.create_connection(('127.0.0.1', port))\n"
                                 "    t = ctx.wrap_socket(s)\n"
                                 "    t.sendall(b'hi\\n')\n"
                                 "    got = b''\n"
                                 "    while len(got) < 3:\n"
                                 "        got += t.recv(3)\n"
                                 "    assert got == b'hi\\n', got\n"
                                 "    conns.append(t)\n"
                                 "print('ready', flush=True)\n"
                                 "sys.stdin.read()\n";
    g_autofree char *python = g_find_program_in_path("python3");
    if (!python) {
        g_test_skip("no python3");
        return;
    }
    Fixture fx;
    fixture_start(&fx, TRUE);
    fx.direct_tls = TRUE;
    gsize before = heap_in_use();

    g_autofree char *port = g_strdup_printf("%u", fx.port);
    g_autofree char *n = g_strdup_printf("%d", N);
    const char *argv[] = {"python3", "-c", script, port, n, NULL};
    g_autoptr(GError) error = NULL;
    GPid pid;
    int in_fd, out_fd;
    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                           G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                           NULL, &pid, &in_fd, &out_fd, NULL, &error));
    g_assert_no_error(error);
    char buf[16] = {0};
    gsize got = 0;
    while (got < 6) {
        gssize r = read(out_fd, buf + got, 6 - got);
        g_assert_cmpint(r, >, 0);
        got += (gsize)r;
    }
    g_assert_cmpstr(buf, ==, "ready\n");
    g_assert_true(wait_for(&fx.tls_ok, N));
    /* Let the workers finish what followed the echoes. */
    for (guint i = 0; i < 2; i++)
        run_on(mk_workers_get(fx.ws, i), nop, NULL);
    gsize after = heap_in_use();
    gssize per_conn = ((gssize)after - (gssize)before) / N;
    g_printerr("# heap per idle TLS 1.3 connection (server side, with the GnuTLS session): "
               "%" G_GSSIZE_FORMAT " bytes\n",
               per_conn);
    g_assert_cmpint(per_conn, <, 64 * 1024);
    close(in_fd); /* the clients exit */
    close(out_fd);
    g_assert_true(wait_for(&fx.closed, N));
    g_spawn_close_pid(pid);
    fixture_stop(&fx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g_test_add_func("/worker/start-stop", test_workers_start_stop);
    g_test_add_func("/worker/post-order", test_workers_post_order);
    g_test_add_func("/worker/post-self", test_workers_post_self);
    g_test_add_func("/worker/defer", test_workers_defer);
    g_test_add_func("/worker/glib-sources", test_workers_glib_sources);
    g_test_add_func("/worker/job-pool", test_job_pool);
    g_test_add_func("/worker/stop-destroys-queued", test_workers_stop_destroys);
    g_test_add_func("/worker/watch-remove-in-callback", test_workers_watch_remove);
    g_test_add_func("/net/echo", test_net_echo);
    g_test_add_func("/net/spread", test_net_spread);
    g_test_add_func("/net/eof", test_net_eof);
    g_test_add_func("/net/close-flushes", test_net_close_flushes);
    g_test_add_func("/net/pause", test_net_pause);
    g_test_add_func("/net/free-in-callback", test_net_free_in_callback);
    g_test_add_func("/net/bind-errors", test_net_port_taken);
    g_test_add_func("/net/localhost", test_net_localhost);
    g_test_add_func("/net/emfile", test_net_emfile);
    g_test_add_func("/net/memory-idle", test_net_memory);
    g_test_add_func("/tls/selfsigned", test_tls_selfsigned);
    g_test_add_func("/tls/direct-1.3", test_tls_direct13);
    g_test_add_func("/tls/direct-1.2", test_tls_direct12);
    g_test_add_func("/tls/starttls", test_tls_starttls);
    g_test_add_func("/tls/old-versions-refused", test_tls_old_refused);
    g_test_add_func("/tls/memory-idle", test_tls_memory);
    return g_test_run();
}
