/* The bounded queue between the hooks (any worker) and one backend's
 * thread. A full queue drops the new event: the stanza path never waits
 * for a backend.
 *
 * A ring of pointers, not a GQueue: a push is a store (no list node
 * allocated on the worker and freed on the backend's thread), and a
 * batch is taken by copying pointers, not by walking a list. */
#include "pusher.h"
#include <string.h>

/* The ring's first size; it doubles as needed (up to the bound, and
 * beyond only for events put back by push_head). */
#define RING_MIN 256

struct PusherQueue {
    GMutex lock;
    GCond cond;
    PusherEvent **ring;
    guint cap;     /* slots in @ring */
    guint head;    /* the oldest event's slot */
    guint len;     /* events held */
    gint length;   /* @len, for lock-free reads */
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
    q->cap = MIN(max, RING_MIN);
    q->ring = g_new(PusherEvent *, q->cap);
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
    for (guint i = 0; i < q->len; i++)
        pusher_event_unref(q->ring[(q->head + i) % q->cap]);
    g_free(q->ring);
    g_mutex_clear(&q->lock);
    g_mutex_clear(&q->log_lock);
    g_cond_clear(&q->cond);
    g_free(q->name);
    g_free(q);
}

/* Under the lock: doubles the ring, the events in order from slot 0. */
static void ring_grow(PusherQueue *q)
{
    guint cap = q->cap * 2;
    PusherEvent **ring = g_new(PusherEvent *, cap);
    guint first = MIN(q->len, q->cap - q->head);
    memcpy(ring, q->ring + q->head, first * sizeof *ring);
    memcpy(ring + first, q->ring, (q->len - first) * sizeof *ring);
    g_free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

/* Under the lock: the oldest event, removed (transfer full), or NULL. */
static PusherEvent *ring_pop(PusherQueue *q)
{
    if (!q->len)
        return NULL;
    PusherEvent *ev = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return ev;
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
    if (q->closed || q->len >= q->max) {
        drop = TRUE;
    } else {
        was_empty = q->len == 0;
        if (q->len == q->cap)
            ring_grow(q);
        q->ring[(q->head + q->len) % q->cap] = pusher_event_ref(ev);
        q->len++;
        g_atomic_int_set(&q->length, (gint)q->len);
        /* A signal is a system call and a switch of threads: only for a
         * sleeper, and only once the queue holds what it waits for. */
        if (q->waiters && q->len >= q->want)
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
    if (q->len == q->cap)
        ring_grow(q);
    q->head = (q->head + q->cap - 1) % q->cap;
    q->ring[q->head] = ev;
    q->len++;
    g_atomic_int_set(&q->length, (gint)q->len);
    g_mutex_unlock(&q->lock);
}

PusherEvent *pusher_queue_pop(PusherQueue *q, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    if (wait_us > 0 && q->len == 0 && !q->closed) {
        gint64 until = g_get_monotonic_time() + wait_us;
        q->want = 1;
        q->waiters++;
        while (q->len == 0 && !q->closed)
            if (!g_cond_wait_until(&q->cond, &q->lock, until))
                break;
        q->waiters--;
    }
    PusherEvent *ev = ring_pop(q);
    g_atomic_int_set(&q->length, (gint)q->len);
    g_mutex_unlock(&q->lock);
    return ev;
}

guint pusher_queue_pop_many(PusherQueue *q, GPtrArray *out, guint max, guint want, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    if (wait_us > 0 && q->len < want && !q->closed) {
        gint64 until = g_get_monotonic_time() + wait_us;
        q->want = want; /* one backend thread pops a queue: no other waiter */
        q->waiters++;
        while (q->len < want && !q->closed)
            if (!g_cond_wait_until(&q->cond, &q->lock, until))
                break;
        q->waiters--;
    }
    /* At most two runs of slots: up to the ring's end, then from 0. */
    guint n = MIN(max, q->len);
    guint first = MIN(n, q->cap - q->head);
    guint at = out->len;
    g_ptr_array_set_size(out, at + n);
    memcpy(out->pdata + at, q->ring + q->head, first * sizeof(gpointer));
    memcpy(out->pdata + at + first, q->ring, (n - first) * sizeof(gpointer));
    q->head = (q->head + n) % q->cap;
    q->len -= n;
    g_atomic_int_set(&q->length, (gint)q->len);
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
    return (guint)g_atomic_int_get(&q->length); /* no lock: the workers push under it */
}
