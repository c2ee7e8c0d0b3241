/* The bounded queue between the hooks (any worker) and one backend's
 * thread. A full queue drops the new event: the stanza path never waits
 * for a backend. */
#include "pusher.h"

struct PusherQueue {
    GMutex lock;
    GCond cond;
    GQueue q;
    gint length;   /* q.length, for lock-free reads */
    guint waiters; /* pops waiting on @cond */
    guint want;    /* they wake when the queue holds this many */
    guint max;
    gboolean closed;
    char *name;
    void (*wake)(gpointer);
    gpointer wake_data;
    MkCounter *dropped;
    MkCounter *queued;
    GMutex log_lock;
    gint64 last_log_us;
    guint dropped_since_log;
};

PusherQueue *pusher_queue_new(MkModule *mod, const char *name, guint max, void (*wake)(gpointer),
                              gpointer wake_data)
{
    PusherQueue *q = g_new0(PusherQueue, 1);
    g_mutex_init(&q->lock);
    g_mutex_init(&q->log_lock);
    g_cond_init(&q->cond);
    g_queue_init(&q->q);
    q->max = max;
    q->name = g_strdup(name);
    q->wake = wake;
    q->wake_data = wake_data;
    g_autofree char *d = g_strconcat(name, "_dropped", NULL);
    g_autofree char *n = g_strconcat(name, "_queued", NULL);
    q->dropped = mk_counter_new(mod, d);
    q->queued = mk_counter_new(mod, n);
    return q;
}

void pusher_queue_free(PusherQueue *q)
{
    if (!q)
        return;
    g_queue_clear_full(&q->q, (GDestroyNotify)pusher_event_unref);
    g_mutex_clear(&q->lock);
    g_mutex_clear(&q->log_lock);
    g_cond_clear(&q->cond);
    g_free(q->name);
    g_free(q);
}

gboolean pusher_queue_full(PusherQueue *q)
{
    return (guint)g_atomic_int_get(&q->length) >= q->max;
}

/* One more event dropped: counted without a lock (a stuck backend drops
 * on every message); a line is logged at most every 10 s. Any thread. */
void pusher_queue_count_drop(PusherQueue *q)
{
    mk_counter_add(q->dropped, 1);
    g_atomic_int_inc(&q->dropped_since_log);
    gint64 now = g_get_monotonic_time();
    if (now - q->last_log_us < 10 * G_USEC_PER_SEC) /* a racy read: only a hint */
        return;
    g_mutex_lock(&q->log_lock);
    guint n = 0;
    if (now - q->last_log_us >= 10 * G_USEC_PER_SEC) {
        q->last_log_us = now;
        n = (guint)g_atomic_int_and(&q->dropped_since_log, 0);
    }
    g_mutex_unlock(&q->log_lock);
    if (n)
        g_warning("mod_event_pusher: backend %s: queue full (%u events): dropped %u event(s)"
                  " since the last such line",
                  q->name, q->max, n);
}

void pusher_queue_push(PusherQueue *q, PusherEvent *ev)
{
    gboolean was_empty = FALSE, drop = FALSE;
    g_mutex_lock(&q->lock);
    if (q->closed || q->q.length >= q->max) {
        drop = TRUE;
    } else {
        was_empty = q->q.length == 0;
        g_queue_push_tail(&q->q, pusher_event_ref(ev));
        g_atomic_int_set(&q->length, (gint)q->q.length);
        /* A signal is a system call and a switch of threads: only for a
         * sleeper, and only once the queue holds what it waits for. */
        if (q->waiters && q->q.length >= q->want)
            g_cond_signal(&q->cond);
    }
    g_mutex_unlock(&q->lock);
    if (drop) {
        pusher_queue_count_drop(q);
        return;
    }
    mk_counter_add(q->queued, 1);
    if (was_empty && q->wake)
        q->wake(q->wake_data);
}

void pusher_queue_push_head(PusherQueue *q, PusherEvent *ev)
{
    g_mutex_lock(&q->lock);
    g_queue_push_head(&q->q, ev);
    g_atomic_int_set(&q->length, (gint)q->q.length);
    g_mutex_unlock(&q->lock);
}

PusherEvent *pusher_queue_pop(PusherQueue *q, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    if (wait_us > 0 && q->q.length == 0 && !q->closed) {
        gint64 until = g_get_monotonic_time() + wait_us;
        q->want = 1;
        q->waiters++;
        while (q->q.length == 0 && !q->closed)
            if (!g_cond_wait_until(&q->cond, &q->lock, until))
                break;
        q->waiters--;
    }
    PusherEvent *ev = g_queue_pop_head(&q->q);
    g_atomic_int_set(&q->length, (gint)q->q.length);
    g_mutex_unlock(&q->lock);
    return ev;
}

guint pusher_queue_pop_many(PusherQueue *q, GPtrArray *out, guint max, guint want, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    if (wait_us > 0 && q->q.length < want && !q->closed) {
        gint64 until = g_get_monotonic_time() + wait_us;
        q->want = want; /* one backend thread pops a queue: no other waiter */
        q->waiters++;
        while (q->q.length < want && !q->closed)
            if (!g_cond_wait_until(&q->cond, &q->lock, until))
                break;
        q->waiters--;
    }
    guint n = 0;
    PusherEvent *ev;
    while (n < max && (ev = g_queue_pop_head(&q->q))) {
        g_ptr_array_add(out, ev);
        n++;
    }
    g_atomic_int_set(&q->length, (gint)q->q.length);
    g_mutex_unlock(&q->lock);
    return n;
}

void pusher_queue_close(PusherQueue *q)
{
    g_mutex_lock(&q->lock);
    q->closed = TRUE;
    g_cond_broadcast(&q->cond);
    g_mutex_unlock(&q->lock);
}

gboolean pusher_queue_closed(PusherQueue *q)
{
    g_mutex_lock(&q->lock);
    gboolean c = q->closed;
    g_mutex_unlock(&q->lock);
    return c;
}

guint pusher_queue_length(PusherQueue *q)
{
    g_mutex_lock(&q->lock);
    guint n = q->q.length;
    g_mutex_unlock(&q->lock);
    return n;
}
