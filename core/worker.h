/* Worker threads. Each owns a GMainContext whose sockets sit in one epoll
 * set, exposed to GLib as a single GSource (poll fd = the epoll fd), so a
 * wake-up costs O(ready sockets), not O(connections). Each worker has a
 * mailbox: a lock-protected queue plus an eventfd in its epoll set; many
 * posts share one wake-up. */
#pragma once

#include "mk-core.h"
#include <sys/epoll.h>

typedef void (*MkPollFunc)(gpointer user_data, guint32 epoll_events);
typedef struct MkPollWatch MkPollWatch;
typedef void (*MkJobFunc)(gpointer data);

/* Starts @n workers, each running its own loop on its own thread with its
 * context pushed as the thread-default. Returns: (transfer full). */
MkWorkers *mk_workers_start(guint n, GError **error);
/* Stops every loop and joins the threads. Main thread. */
void mk_workers_stop(MkWorkers *workers);
guint mk_workers_count(MkWorkers *workers);
/* (transfer none) */
MkWorker *mk_workers_get(MkWorkers *workers, guint index);

/* The worker running the calling thread, or NULL (main thread, pools). */
MkWorker *mk_worker_self(void);
guint mk_worker_index(MkWorker *w);
/* (transfer none) */
GMainContext *mk_worker_context(MkWorker *w);

/* Queues @func(@data) to run on @w's thread. Any thread; runs in FIFO
 * order per poster. When @w is the calling worker it still queues (never
 * re-enters). @destroy frees @data if the worker stops first. */
void mk_worker_post(MkWorker *w, MkJobFunc func, gpointer data, GDestroyNotify destroy);

/* Watches @fd in @w's epoll set (EPOLLIN/EPOLLOUT/..., edge- or
 * level-triggered as given). @w's thread only. Returns: (transfer full). */
MkPollWatch *mk_poll_watch_add(MkWorker *w, int fd, guint32 events, MkPollFunc func,
                               gpointer user_data);
void mk_poll_watch_modify(MkPollWatch *watch, guint32 events);
/* Removes and frees the watch; safe to call from inside its own callback. */
void mk_poll_watch_remove(MkPollWatch *watch);
