/* Worker threads: one GMainContext, one epoll set and one mailbox each.
 *
 * GLib polls only the epoll fd (through one custom GSource); the source's
 * dispatch asks epoll for the ready watches and runs their callbacks, so a
 * wake-up costs O(ready sockets) however many connections sit idle. */
#include "worker.h"

#include "arena.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Events handled per dispatch: bounds the time spent before GLib gets to
 * run timers and other sources; the epoll fd stays readable, so the rest
 * comes on the next iteration. */
#define BATCH_SIZE 256

struct MkPollWatch {
    MkWorker *w;
    int fd;
    gboolean dead;
    MkPollFunc func;
    gpointer user_data;
    MkPollWatch *next_dead;
};

typedef struct Job {
    MkJobFunc func;
    gpointer data;
    GDestroyNotify destroy;
    struct Job *next;
} Job;

typedef struct {
    GSource base;
    MkWorker *w;
} EpollSource;

struct MkWorker {
    MkWorkers *owner;
    guint index;
    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;
    GSource *source;
    int epfd;
    int evfd;

    /* Mailbox: posters append under the lock. */
    GMutex lock;
    Job *head;
    Job *tail;
    guint queued; /* jobs from head to tail */

    /* Watches removed during a batch, freed once it is done. */
    gboolean dispatching;
    guint64 batch_serial; /* mk_worker_batch_serial */
    /* mk_worker_defer: run when the batch is done, in order. */
    MkDeferred *deferred_head;
    MkDeferred *deferred_tail;
    MkPollWatch *dead;
    gboolean quitting;

    char *scratch;

    /* worker_poll: the events its epoll_wait returned, handed to the
     * next dispatch instead of a second epoll_wait. */
    struct epoll_event ready[BATCH_SIZE];
    int n_ready;
    int glib_wakeup_fd; /* GLib's wake-up eventfd, in our epoll set; -1 */
};

struct MkWorkers {
    guint n;
    MkWorker **w;
};

static __thread MkWorker *current_worker;

/* The mailbox eventfd is registered with this address as its epoll data,
 * which no watch can have. */
static const char mailbox_tag;
/* And GLib's own wake-up fd with this one (see worker_poll). */
static const char glib_wakeup_tag;

static void free_dead_watches(MkWorker *w)
{
    while (w->dead) {
        MkPollWatch *watch = w->dead;
        w->dead = watch->next_dead;
        g_free(watch);
    }
}

static void mailbox_signal(MkWorker *w)
{
    guint64 one = 1;
    if (write(w->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        g_warning("worker %u: eventfd write: %s", w->index, g_strerror(errno));
}

/* The mailbox eventfd is edge-triggered (see worker_new) and never read:
 * each write of a post that found the queue empty wakes us once. A post
 * after the queue was taken below finds it empty and writes again. */
static void drain_mailbox(MkWorker *w)
{
    g_mutex_lock(&w->lock);
    Job *job = w->head;
    w->head = w->tail = NULL;
    w->queued = 0;
    g_mutex_unlock(&w->lock);

    while (job) {
        Job *next = job->next;
        job->func(job->data);
        g_free(job);
        job = next;
        if (w->quitting && job) {
            /* Stopping: what follows the quit is not run but destroyed
             * by mk_workers_stop, like everything posted later. */
            Job *last = job;
            while (last->next)
                last = last->next;
            g_mutex_lock(&w->lock);
            last->next = w->head;
            if (!w->head)
                w->tail = last;
            w->head = job;
            g_mutex_unlock(&w->lock);
            break;
        }
    }
}

/* Deferred work may defer more (or undefer); take them one at a time. */
static void run_deferred(MkWorker *w)
{
    while (w->deferred_head) {
        MkDeferred *d = w->deferred_head;
        w->deferred_head = d->next;
        if (!w->deferred_head)
            w->deferred_tail = NULL;
        d->next = NULL;
        d->queued = FALSE;
        d->func(d);
    }
}

static gboolean epoll_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
    MkWorker *w = ((EpollSource *)source)->w;
    struct epoll_event own[BATCH_SIZE];
    struct epoll_event *ev = own;
    int n;

    if (w->n_ready > 0) {
        /* worker_poll waited already: use what it got. */
        ev = w->ready;
        n = w->n_ready;
        w->n_ready = 0;
    } else {
        n = epoll_wait(w->epfd, own, BATCH_SIZE, 0);
    }
    if (n < 0) {
        if (errno != EINTR)
            g_warning("worker %u: epoll_wait: %s", w->index, g_strerror(errno));
        return G_SOURCE_CONTINUE;
    }
    w->dispatching = TRUE;
    w->batch_serial++;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == &mailbox_tag) {
            drain_mailbox(w);
            continue;
        }
        if (ev[i].data.ptr == &glib_wakeup_tag)
            continue; /* GLib acknowledges it itself */
        MkPollWatch *watch = ev[i].data.ptr;
        if (!watch->dead)
            watch->func(watch->user_data, ev[i].events);
    }
    run_deferred(w);
    w->dispatching = FALSE;
    free_dead_watches(w);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs epoll_source_funcs = {
    .dispatch = epoll_source_dispatch,
};

/* GLib's poll step for a worker's context. GLib would poll() our epoll
 * fd and its own wake-up eventfd, and our dispatch would then call
 * epoll_wait(0) to learn which sockets are ready: two system calls per
 * wake-up. With GLib's eventfd in our epoll set, one epoll_wait with
 * GLib's timeout does both, and its events go to the dispatch. Any
 * other fd in the set (a module's own GSource with fds on a worker)
 * falls back to poll(). Called on the worker's thread, context unlocked. */
static gint worker_poll(GPollFD *fds, guint nfds, gint timeout)
{
    MkWorker *w = current_worker;
    GPollFD *ep = NULL, *wake = NULL;

    if (w) {
        /* Events no dispatch took (a source of higher priority ran
         * instead) are dropped: level-triggered sockets are reported
         * again, the edge-triggered mailbox would not be, so it is
         * signalled anew. */
        for (int i = 0; i < w->n_ready; i++)
            if (w->ready[i].data.ptr == &mailbox_tag)
                mailbox_signal(w);
        w->n_ready = 0;
    }
    if (w && nfds == 2) {
        for (guint i = 0; i < 2; i++) {
            if (fds[i].fd == w->epfd)
                ep = &fds[i];
            else
                wake = &fds[i];
        }
    }
    if (ep && wake && wake->fd != w->glib_wakeup_fd) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = (gpointer)&glib_wakeup_tag};
        if (w->glib_wakeup_fd < 0 && epoll_ctl(w->epfd, EPOLL_CTL_ADD, wake->fd, &e) == 0)
            w->glib_wakeup_fd = wake->fd;
    }
    if (!ep || !wake || wake->fd != w->glib_wakeup_fd)
        return g_poll(fds, nfds, timeout);

    ep->revents = wake->revents = 0;
    int n = epoll_wait(w->epfd, w->ready, BATCH_SIZE, timeout);
    if (n < 0)
        return -1; /* errno as poll() would leave it (EINTR) */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (w->ready[i].data.ptr == &glib_wakeup_tag)
            wake->revents = G_IO_IN;
        else
            w->ready[kept++] = w->ready[i];
    }
    w->n_ready = kept;
    if (kept > 0)
        ep->revents = G_IO_IN;
    return (ep->revents != 0) + (wake->revents != 0);
}

static gpointer worker_thread(gpointer data)
{
    MkWorker *w = data;
    current_worker = w;
    mk_arena_reserve(); /* a worker's heap grows with its sessions */
    g_main_context_push_thread_default(w->ctx);
    g_main_loop_run(w->loop);
    g_main_context_pop_thread_default(w->ctx);
    current_worker = NULL;
    return NULL;
}

static void worker_free(MkWorker *w)
{
    free_dead_watches(w); /* removed after worker_poll, no dispatch since */
    Job *job = w->head;
    while (job) {
        Job *next = job->next;
        if (job->destroy)
            job->destroy(job->data);
        g_free(job);
        job = next;
    }
    if (w->source) {
        g_source_destroy(w->source);
        g_source_unref(w->source);
    }
    if (w->loop)
        g_main_loop_unref(w->loop);
    if (w->ctx)
        g_main_context_unref(w->ctx);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->evfd >= 0)
        close(w->evfd);
    g_mutex_clear(&w->lock);
    g_free(w->scratch);
    g_free(w);
}

static MkWorker *worker_new(MkWorkers *owner, guint index, GError **error)
{
    MkWorker *w = g_new0(MkWorker, 1);
    w->owner = owner;
    w->index = index;
    w->evfd = -1;
    w->glib_wakeup_fd = -1;
    g_mutex_init(&w->lock);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        goto fail;
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd < 0)
        goto fail;
    /* Edge-triggered: every write to an eventfd wakes its waiters, so each
     * post that writes (the one that finds the queue empty) is reported
     * once, and the counter need not be read back to zero, which was a
     * read() per wake-up. It grows by one per such post: 2^64 - 2 of them
     * before a write would block. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = (gpointer)&mailbox_tag};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
        goto fail;

    w->ctx = g_main_context_new();
    g_main_context_set_poll_func(w->ctx, worker_poll);
    w->loop = g_main_loop_new(w->ctx, FALSE);
    w->source = g_source_new(&epoll_source_funcs, sizeof(EpollSource));
    ((EpollSource *)w->source)->w = w;
    g_source_set_name(w->source, "mk-epoll");
    g_source_add_unix_fd(w->source, w->epfd, G_IO_IN);
    /* GLib blocks a non-recursive source around its dispatch by removing
     * its fds from the poll set and adding them back, and each of those
     * signals the context's wake-up eventfd: two writes, a read and a
     * spurious poll per iteration (GLib 2.74). Our dispatch never runs a
     * nested loop, so allowing recursion costs nothing and skips that. */
    g_source_set_can_recurse(w->source, TRUE);
    g_source_attach(w->source, w->ctx);
    w->scratch = g_malloc(MK_WORKER_SCRATCH_SIZE);
    return w;

fail:
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "worker %u: %s", index,
                g_strerror(errno));
    worker_free(w);
    return NULL;
}

static void quit_job(gpointer data)
{
    MkWorker *w = data;
    w->quitting = TRUE;
    g_main_loop_quit(w->loop);
}

/* See worker.h. Main thread. */
MkWorkers *mk_workers_start(guint n, GError **error)
{
    g_return_val_if_fail(n > 0, NULL);
    MkWorkers *ws = g_new0(MkWorkers, 1);
    ws->w = g_new0(MkWorker *, n);
    for (guint i = 0; i < n; i++) {
        ws->w[i] = worker_new(ws, i, error);
        if (!ws->w[i])
            goto fail;
        ws->n = i + 1;
    }
    for (guint i = 0; i < n; i++) {
        g_autofree char *name = g_strdup_printf("mk-worker-%u", i);
        ws->w[i]->thread = g_thread_try_new(name, worker_thread, ws->w[i], error);
        if (!ws->w[i]->thread)
            goto fail;
    }
    return ws;

fail:
    mk_workers_stop(ws);
    return NULL;
}

/* See worker.h. Main thread. */
void mk_workers_stop(MkWorkers *ws)
{
    if (!ws)
        return;
    /* Quitting through the mailbox rather than g_main_loop_quit() from
     * here: a quit that lands before the thread enters g_main_loop_run()
     * would be lost. */
    for (guint i = 0; i < ws->n; i++)
        if (ws->w[i]->thread)
            mk_worker_post(ws->w[i], quit_job, ws->w[i], NULL);
    for (guint i = 0; i < ws->n; i++)
        if (ws->w[i]->thread)
            g_thread_join(ws->w[i]->thread);
    for (guint i = 0; i < ws->n; i++)
        worker_free(ws->w[i]);
    g_free(ws->w);
    g_free(ws);
}

/* See worker.h. Any thread. */
guint mk_workers_count(MkWorkers *ws)
{
    return ws->n;
}

/* See worker.h. Any thread. (transfer none) */
MkWorker *mk_workers_get(MkWorkers *ws, guint index)
{
    g_return_val_if_fail(index < ws->n, NULL);
    return ws->w[index];
}

/* See worker.h. Any thread. (transfer none) (nullable) */
MkWorker *mk_worker_self(void)
{
    return current_worker;
}

/* See worker.h. Any thread. */
guint mk_worker_index(MkWorker *w)
{
    return w->index;
}

/* See worker.h. Any thread. (transfer none) */
GMainContext *mk_worker_context(MkWorker *w)
{
    return w->ctx;
}

/* See worker.h. @w's thread. (transfer none) */
char *mk_worker_scratch(MkWorker *w)
{
    return w->scratch;
}

/* See worker.h. Any thread. */
guint mk_worker_mailbox_length(MkWorker *w)
{
    g_mutex_lock(&w->lock);
    guint n = w->queued;
    g_mutex_unlock(&w->lock);
    return n;
}

/* See worker.h. Any thread; @data is owned by the job from here on. */
void mk_worker_post(MkWorker *w, MkJobFunc func, gpointer data, GDestroyNotify destroy)
{
    g_return_if_fail(w && func);
    Job *job = g_new(Job, 1);
    job->func = func;
    job->data = data;
    job->destroy = destroy;
    job->next = NULL;

    g_mutex_lock(&w->lock);
    gboolean was_empty = w->head == NULL;
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->queued++;
    g_mutex_unlock(&w->lock);

    /* Only the post that finds the queue empty wakes the worker; the
     * drain takes everything queued up to then. */
    if (was_empty)
        mailbox_signal(w);
}

/* See worker.h. Any thread. */
void mk_context_post(GMainContext *ctx, GSourceFunc func, gpointer data, GDestroyNotify destroy,
                     const char *name)
{
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, func, data, destroy);
    g_source_set_name(src, name);
    /* The context may run the source, and its last owner drop it, before
     * this thread lets go of the source: g_source_unref() then locks the
     * source's context, which must still exist (a storage thread hung
     * there in test-db on a freed context's mutex, 1 run in ~50). */
    GMainContext *keep = g_main_context_ref(ctx ? ctx : g_main_context_default());
    g_source_attach(src, keep);
    g_source_unref(src);
    g_main_context_unref(keep);
}

/* See worker.h. @w's thread. */
gboolean mk_worker_batching(MkWorker *w)
{
    return w->dispatching;
}

/* See worker.h. @w's thread. */
guint64 mk_worker_batch_serial(MkWorker *w)
{
    return w->batch_serial;
}

/* See worker.h. @w's thread. */
void mk_worker_defer(MkWorker *w, MkDeferred *d)
{
    g_return_if_fail(w->dispatching && d->func);
    if (d->queued)
        return;
    d->queued = TRUE;
    d->next = NULL;
    if (w->deferred_tail)
        w->deferred_tail->next = d;
    else
        w->deferred_head = d;
    w->deferred_tail = d;
}

/* See worker.h. @w's thread. O(queued): a batch defers few items. */
void mk_worker_undefer(MkWorker *w, MkDeferred *d)
{
    if (!d->queued)
        return;
    MkDeferred *prev = NULL;
    for (MkDeferred *it = w->deferred_head; it; prev = it, it = it->next) {
        if (it != d)
            continue;
        if (prev)
            prev->next = d->next;
        else
            w->deferred_head = d->next;
        if (w->deferred_tail == d)
            w->deferred_tail = prev;
        break;
    }
    d->next = NULL;
    d->queued = FALSE;
}

/* See worker.h. @w's thread. Returns: (transfer full) */
MkPollWatch *mk_poll_watch_add(MkWorker *w, int fd, guint32 events, MkPollFunc func,
                               gpointer user_data)
{
    g_return_val_if_fail(w && fd >= 0 && func, NULL);
    MkPollWatch *watch = g_new0(MkPollWatch, 1);
    watch->w = w;
    watch->fd = fd;
    watch->func = func;
    watch->user_data = user_data;
    struct epoll_event ev = {.events = events, .data.ptr = watch};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* Only a programming error (bad or duplicate fd) gets here. */
        g_critical("worker %u: epoll add fd %d: %s", w->index, fd, g_strerror(errno));
        g_free(watch);
        return NULL;
    }
    return watch;
}

/* See worker.h. The watch's worker thread. */
void mk_poll_watch_modify(MkPollWatch *watch, guint32 events)
{
    g_return_if_fail(watch && !watch->dead);
    struct epoll_event ev = {.events = events, .data.ptr = watch};
    if (epoll_ctl(watch->w->epfd, EPOLL_CTL_MOD, watch->fd, &ev) < 0)
        g_critical("worker %u: epoll mod fd %d: %s", watch->w->index, watch->fd, g_strerror(errno));
}

/* See worker.h. The watch's worker thread; frees @watch. */
void mk_poll_watch_remove(MkPollWatch *watch)
{
    if (!watch)
        return;
    g_return_if_fail(!watch->dead);
    MkWorker *w = watch->w;
    /* EBADF/ENOENT: the fd was closed already, which removed it. */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
    watch->dead = TRUE;
    /* Events of this batch, or those worker_poll got for the coming
     * dispatch (a timer may run in between), may still point at it. */
    if (w->dispatching || w->n_ready > 0) {
        watch->next_dead = w->dead;
        w->dead = watch;
    } else {
        g_free(watch);
    }
}

/* ---- Barrier ---- */

typedef struct {
    GMutex lock;
    GCond cond;
    gint pending; /* workers that have not run their job yet; under @lock */
    gint ref;     /* the caller and one per job; atomic */
} Barrier;

static void barrier_unref(gpointer data)
{
    Barrier *b = data;
    if (!g_atomic_int_dec_and_test(&b->ref))
        return;
    g_mutex_clear(&b->lock);
    g_cond_clear(&b->cond);
    g_free(b);
}

/* On each worker: everything posted to it before the barrier ran. */
static void barrier_job(gpointer data)
{
    Barrier *b = data;
    g_mutex_lock(&b->lock);
    b->pending--;
    g_cond_signal(&b->cond);
    g_mutex_unlock(&b->lock);
    barrier_unref(b);
}

/* See worker.h. Main thread (never a worker: it would wait for itself). */
gboolean mk_workers_barrier(MkWorkers *ws, gint64 timeout_us)
{
    g_return_val_if_fail(mk_worker_self() == NULL, FALSE);
    if (!ws || !ws->n)
        return TRUE;
    Barrier *b = g_new0(Barrier, 1);
    g_mutex_init(&b->lock);
    g_cond_init(&b->cond);
    b->pending = (gint)ws->n;
    b->ref = (gint)ws->n + 1;
    for (guint i = 0; i < ws->n; i++)
        mk_worker_post(ws->w[i], barrier_job, b, barrier_unref);
    g_mutex_lock(&b->lock);
    gint64 deadline = g_get_monotonic_time() + timeout_us;
    while (b->pending > 0 && g_cond_wait_until(&b->cond, &b->lock, deadline))
        ;
    gboolean all = b->pending == 0;
    g_mutex_unlock(&b->lock);
    barrier_unref(b);
    return all;
}
