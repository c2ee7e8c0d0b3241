/* Worker threads. Each owns a GMainContext whose sockets sit in one epoll
 * set, exposed to GLib as a single GSource (poll fd = the epoll fd), so a
 * wake-up costs O(ready sockets), not O(connections). Each worker has a
 * mailbox: a lock-protected queue plus an eventfd in its epoll set; many
 * posts share one wake-up. See docs/threads.md. */
#pragma once

#include "mk-core.h"
#include <sys/epoll.h>

/* Called on the watch's worker with the ready epoll events (EPOLLIN,
 * EPOLLOUT, EPOLLERR, EPOLLHUP, ...). */
typedef void (*MkPollFunc)(gpointer user_data, guint32 epoll_events);
typedef struct MkPollWatch MkPollWatch;
typedef void (*MkJobFunc)(gpointer data);

/* Work to finish when the worker's current batch of events is done,
 * embedded in its owner's struct (no allocation per use). Used to send
 * what a batch wrote to a socket in one system call instead of one per
 * stanza. Fields are the worker's; zero-initialise, set @func. */
typedef struct MkDeferred MkDeferred;
struct MkDeferred {
    void (*func)(MkDeferred *d);
    MkDeferred *next;
    gboolean queued;
};

/* Size of the per-worker scratch buffer (mk_worker_scratch). */
#define MK_WORKER_SCRATCH_SIZE 16384

/* Starts @n (>= 1) workers, each running its own loop on its own thread
 * with its context pushed as the thread-default. Main thread.
 * Returns: (transfer full) or NULL with @error set. */
MkWorkers *mk_workers_start(guint n, GError **error);
/* Quits every loop, joins the threads, then calls the destroy notify of
 * every job still queued (on the calling thread) and frees everything.
 * Main thread. Nothing may post to these workers afterwards: stop thread
 * pools that post completions before calling this. */
void mk_workers_stop(MkWorkers *workers);
/* Any thread. */
guint mk_workers_count(MkWorkers *workers);
/* Any thread. Returns: (transfer none) */
MkWorker *mk_workers_get(MkWorkers *workers, guint index);

/* The worker running the calling thread, or NULL (main thread, pools).
 * Returns: (transfer none) (nullable) */
MkWorker *mk_worker_self(void);
/* Jobs posted to @w and not yet taken by its drain (metrics). Any thread. */
guint mk_worker_mailbox_length(MkWorker *w);
/* Any thread. 0 .. count-1. */
guint mk_worker_index(MkWorker *w);
/* Any thread. Returns: (transfer none) */
GMainContext *mk_worker_context(MkWorker *w);
/* A MK_WORKER_SCRATCH_SIZE byte buffer for short-lived use on @w's thread
 * (socket reads land here before being handed on). Its contents are only
 * valid until the caller returns to the loop. @w's thread only.
 * Returns: (transfer none) */
char *mk_worker_scratch(MkWorker *w);

/* Queues @func(@data) to run on @w's thread. Any thread; runs in FIFO
 * order per poster. When @w is the calling worker it still queues (never
 * re-enters). @destroy (nullable) frees @data if the worker stops first;
 * it is not called after @func ran (@func owns @data). */
void mk_worker_post(MkWorker *w, MkJobFunc func, gpointer data, GDestroyNotify destroy);

/* TRUE while @w's thread is handling a batch of epoll events (socket
 * callbacks and mailbox jobs), after which deferred work runs before the
 * worker sleeps again. @w's thread only. */
gboolean mk_worker_batching(MkWorker *w);
/* The serial number of @w's current (or last) batch: consecutive batches
 * have consecutive numbers, so a callback can tell whether its socket was
 * ready again right in the next one. @w's thread only. */
guint64 mk_worker_batch_serial(MkWorker *w);
/* Runs @d->func(@d) at the end of the current batch; once, however often
 * it is deferred before then. Only while mk_worker_batching(@w). @w's
 * thread only. */
void mk_worker_defer(MkWorker *w, MkDeferred *d);
/* Forgets @d if it is queued (its owner goes away or moves to another
 * worker). @w's thread only. */
void mk_worker_undefer(MkWorker *w, MkDeferred *d);

/* Runs @func(@data) on @ctx's thread from an idle source of default
 * priority named @name, then @destroy (nullable) on @data (also if the
 * context goes away first). Any thread. Not g_main_context_invoke: that
 * runs @func right here when @ctx is the global default context and
 * nobody holds it (a main loop not running yet), which would put a
 * completion on a pool thread. */
void mk_context_post(GMainContext *ctx, GSourceFunc func, gpointer data, GDestroyNotify destroy,
                     const char *name);

/* Watches @fd in @w's epoll set (EPOLLIN/EPOLLOUT/..., edge- or
 * level-triggered as given; @events may be 0). The fd stays owned by the
 * caller; remove the watch before closing it. @w's thread only.
 * Returns: (transfer full) */
MkPollWatch *mk_poll_watch_add(MkWorker *w, int fd, guint32 events, MkPollFunc func,
                               gpointer user_data);
/* Changes the watched events. The watch's worker thread only. */
void mk_poll_watch_modify(MkPollWatch *watch, guint32 events);
/* Removes and frees the watch; safe to call from inside its own callback
 * or another callback of the same batch (its pending events are dropped).
 * The watch's worker thread only. */
void mk_poll_watch_remove(MkPollWatch *watch);

/* Waits until every worker ran the jobs posted to it before this call
 * (and, through their FIFO mailboxes, whatever those jobs posted to
 * other workers is queued ahead of anything posted after the return).
 * FALSE when a worker did not get there within @timeout_us. Main
 * thread. */
gboolean mk_workers_barrier(MkWorkers *workers, gint64 timeout_us);
