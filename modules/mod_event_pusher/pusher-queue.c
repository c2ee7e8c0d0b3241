/* The bounded queue between the hooks (any worker) and one backend's
 * thread. A full queue drops the new event: the stanza path never waits
 * for a backend.
 *
 * Events are records in one byte buffer, not pointers to events: a push
 * copies the JSON in under the lock (no allocation per event made on a
 * worker and freed on the backend's thread, no reference count), and the
 * backend's thread takes them all by swapping buffers. */
#include "pusher.h"
#include <string.h>

/* A record: this head, the user and its NUL, the JSON. */
typedef struct {
    guint32 kind;
    guint32 user_len;
    guint32 json_len;
} RecordHead;

struct PusherQueue {
    GMutex lock;
    GCond cond;
    PusherBuf buf; /* the records */
    guint len;     /* records in @buf */
    gint length;   /* @len, for lock-free reads */
    gint held;     /* taken, not yet done by the backend: within the bound */
    guint waiters; /* takes waiting on @cond */
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

gsize pusher_record_read(const guint8 *p, PusherRecord *rec)
{
    RecordHead h;
    memcpy(&h, p, sizeof h); /* the buffer gives no alignment */
    rec->kind = (PusherKind)h.kind;
    rec->user = (const char *)p + sizeof h;
    rec->user_len = h.user_len;
    rec->json = rec->user + h.user_len + 1;
    rec->json_len = h.json_len;
    return sizeof h + h.user_len + 1 + h.json_len;
}

PusherQueue *pusher_queue_new(MkModule *mod, const char *name, guint max, void (*wake)(gpointer),
                              gpointer wake_data)
{
    PusherQueue *q = g_new0(PusherQueue, 1);
    g_mutex_init(&q->lock);
    g_mutex_init(&q->log_lock);
    g_cond_init(&q->cond);
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
    g_free(q->buf.data);
    g_mutex_clear(&q->lock);
    g_mutex_clear(&q->log_lock);
    g_cond_clear(&q->cond);
    g_free(q->name);
    g_free(q);
}

gboolean pusher_queue_full(PusherQueue *q)
{
    return (guint)g_atomic_int_get(&q->length) + (guint)g_atomic_int_get(&q->held) >= q->max;
}

void pusher_queue_hold(PusherQueue *q, guint n)
{
    g_atomic_int_set(&q->held, (gint)n);
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

/* Any thread (a hook's worker). */
void pusher_queue_push(PusherQueue *q, PusherKind kind, const char *user, const char *json,
                       gsize json_len)
{
    gsize ulen = strlen(user);
    RecordHead h = {(guint32)kind, (guint32)ulen, (guint32)json_len};
    gboolean was_empty = FALSE, drop = FALSE;
    g_mutex_lock(&q->lock);
    if (q->closed || q->len + (guint)g_atomic_int_get(&q->held) >= q->max) {
        drop = TRUE;
    } else {
        was_empty = q->len == 0;
        /* Plain copies: the buffer keeps its size between takes, so
         * this rarely allocates. */
        gsize size = sizeof h + ulen + 1 + json_len;
        pusher_buf_reserve(&q->buf, size);
        guint8 *p = q->buf.data + q->buf.len;
        memcpy(p, &h, sizeof h);
        memcpy(p + sizeof h, user, ulen + 1);
        memcpy(p + sizeof h + ulen + 1, json, json_len);
        q->buf.len += size;
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

/* Under the lock: waits up to @wait_us until @want events or a close. */
static void wait_for(PusherQueue *q, guint want, gint64 wait_us)
{
    if (wait_us <= 0 || q->len >= want || q->closed)
        return;
    gint64 until = g_get_monotonic_time() + wait_us;
    q->want = want; /* one backend thread takes from a queue: no other waiter */
    q->waiters++;
    while (q->len < want && !q->closed)
        if (!g_cond_wait_until(&q->cond, &q->lock, until))
            break;
    q->waiters--;
}

/* The backend's thread. */
guint pusher_queue_take(PusherQueue *q, PusherBuf *buf, guint want, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    wait_for(q, want, wait_us);
    guint n = q->len;
    if (n && buf->len == 0) {
        PusherBuf t = *buf;
        *buf = q->buf;
        q->buf = t;
    } else if (n) {
        pusher_buf_append(buf, q->buf.data, q->buf.len);
        q->buf.len = 0;
    }
    q->len = 0;
    g_atomic_int_set(&q->length, 0);
    g_mutex_unlock(&q->lock);
    return n;
}

gboolean pusher_queue_wait(PusherQueue *q, gint64 wait_us)
{
    g_mutex_lock(&q->lock);
    wait_for(q, 1, wait_us);
    gboolean any = q->len > 0 && !q->closed;
    g_mutex_unlock(&q->lock);
    return any;
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
