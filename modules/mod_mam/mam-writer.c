/* The batched archive writer.
 *
 * Archiving a message must cost the routing worker little: the row is
 * appended to one of a fixed number of shards (an archive always goes
 * to the same shard, so its rows keep their order) under the shard's
 * lock, and a shard is written as multi-row INSERTs in one transaction on
 * the storage pool when it holds batch_size rows or when the flush timer
 * finds it non-empty. A batch that fails goes back to the front of its
 * shard and is tried again after a growing pause; rows beyond max_pending
 * are refused with a log line and a metric. A query first waits until its
 * archive's rows added before it are written (mam_writer_sync), so a
 * client always finds what it just sent. docs/mod_mam.md has the
 * guarantees. */
#include "mam.h"

#define N_SHARDS       16
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   30000

typedef struct {
    gint64 target; /* the shard's row count this waiter waits for */
    GMainContext *ctx;
    MamSynced done;
    gpointer user_data;
} Waiter;

typedef struct {
    GMutex lock;
    GPtrArray *pending; /* of MamRow*, oldest first */
    gint64 added;       /* rows ever added */
    gint64 settled;     /* rows whose write was attempted to the end */
    gboolean in_flight;
    guint failures;     /* consecutive */
    gint64 retry_at_us; /* no new attempt before (monotonic) */
    GSList *waiters;    /* of Waiter*, any order */
} Shard;

struct MamWriter {
    MkModule *mod;
    guint batch_size;
    gint max_pending;
    gint queued;  /* rows pending in all shards, atomic */
    gint stopped; /* atomic */
    MamWriterCounters counters;
    Shard shards[N_SHARDS];
};

typedef struct {
    MamWriter *w;
    Shard *shard;
    GPtrArray *rows; /* of MamRow*, owned */
    gint64 end;      /* the shard's 'added' when the batch was taken */
} Flush;

void mam_row_free(MamRow *row)
{
    if (!row)
        return;
    g_free(row->archive.room);
    g_free(row->archive.username);
    g_free(row->archive.domain);
    g_free(row->with_bare);
    g_free(row->with_resource);
    g_free(row->from_bare);
    g_free(row->origin_id);
    g_free(row->xml);
    g_free(row);
}

static Shard *shard_of(MamWriter *w, const MamArchive *a)
{
    guint h = a->room ? g_str_hash(a->room) : g_str_hash(a->username) * 31 + g_str_hash(a->domain);
    return &w->shards[h % N_SHARDS];
}

MamWriter *mam_writer_new(MkModule *mod, guint batch_size, guint max_pending,
                          const MamWriterCounters *counters)
{
    MamWriter *w = g_new0(MamWriter, 1);
    w->mod = mod;
    w->batch_size = MAX(batch_size, 1);
    w->max_pending = (gint)MIN(max_pending, G_MAXINT);
    w->counters = *counters;
    for (guint i = 0; i < N_SHARDS; i++) {
        g_mutex_init(&w->shards[i].lock);
        w->shards[i].pending = g_ptr_array_new_with_free_func((GDestroyNotify)mam_row_free);
    }
    return w;
}

/* Frees what is left; the module's data destroy, once nothing is in flight. */
void mam_writer_free(MamWriter *w)
{
    if (!w)
        return;
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        if (s->pending->len)
            g_warning("mod_mam: %u messages were never archived", s->pending->len);
        g_ptr_array_unref(s->pending);
        g_slist_free_full(s->waiters, g_free);
        g_mutex_clear(&s->lock);
    }
    g_free(w);
}

/* ---- writing a batch --------------------------------------------------- */

static void flush_free(gpointer data)
{
    Flush *f = data;
    if (f->rows)
        g_ptr_array_unref(f->rows);
    g_free(f);
}

/* On a storage thread: INSERTs of at most batch_size rows each. */
static gboolean flush_work(MkDbConn *conn, gpointer data, GError **error)
{
    Flush *f = data;
    for (guint i = 0; i < f->rows->len; i += f->w->batch_size) {
        guint n = MIN(f->w->batch_size, f->rows->len - i);
        g_autoptr(GPtrArray) part = g_ptr_array_new();
        for (guint k = 0; k < n; k++)
            g_ptr_array_add(part, f->rows->pdata[i + k]);
        if (!mam_db_insert(conn, part, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean wake(gpointer data)
{
    Waiter *wt = data;
    wt->done(wt->user_data);
    return G_SOURCE_REMOVE;
}

static void waiter_free(gpointer data)
{
    Waiter *wt = data;
    g_main_context_unref(wt->ctx);
    g_free(wt);
}

/* Takes the waiters of @s that wait for no more than @upto. Shard locked. */
static GSList *take_waiters(Shard *s, gint64 upto)
{
    GSList *ready = NULL, *keep = NULL;
    for (GSList *l = s->waiters; l; l = l->next) {
        Waiter *wt = l->data;
        if (wt->target <= upto)
            ready = g_slist_prepend(ready, wt);
        else
            keep = g_slist_prepend(keep, wt);
    }
    g_slist_free(s->waiters);
    s->waiters = keep;
    return ready;
}

static void run_waiters(GSList *ready)
{
    for (GSList *l = ready; l; l = l->next) {
        Waiter *wt = l->data;
        g_main_context_invoke_full(wt->ctx, G_PRIORITY_DEFAULT, wake, wt, waiter_free);
    }
    g_slist_free(ready);
}

static void flush_start(MamWriter *w, Shard *s);

static void flush_done(const GError *error, gpointer data)
{
    Flush *f = data;
    MamWriter *w = f->w;
    Shard *s = f->shard;
    guint n = f->rows->len;
    GSList *ready;

    g_mutex_lock(&s->lock);
    s->in_flight = FALSE;
    if (error) {
        /* Back to the front, in order, for the next attempt. */
        GPtrArray *merged = g_steal_pointer(&f->rows);
        g_ptr_array_extend_and_steal(merged, g_steal_pointer(&s->pending));
        s->pending = merged;
        s->failures++;
        guint pause = RETRY_FIRST_MS << MIN(s->failures - 1, 10u);
        s->retry_at_us = g_get_monotonic_time() + (gint64)MIN(pause, RETRY_MAX_MS) * 1000;
        /* Queries waiting for these rows go ahead: they read what the
         * database has rather than wait for it to come back. */
        ready = take_waiters(s, f->end);
        if (s->failures == 1 || s->failures % 10 == 0)
            g_warning("mod_mam: writing %u archived messages failed (attempt %u, retrying in "
                      "%u ms): %s",
                      n, s->failures, MIN(pause, RETRY_MAX_MS), error->message);
        mk_counter_add(w->counters.failed_batches, 1);
    } else {
        g_atomic_int_add(&w->queued, -(gint)n);
        s->settled = MAX(s->settled, f->end);
        s->failures = 0;
        s->retry_at_us = 0;
        ready = take_waiters(s, s->settled);
        mk_counter_add(w->counters.written, n);
        mk_counter_add(w->counters.batches, 1);
    }
    /* More to write now: a full batch, or rows a waiter needs. */
    if (!error && (s->pending->len >= w->batch_size || (s->waiters && s->pending->len)))
        flush_start(w, s);
    g_mutex_unlock(&s->lock);
    run_waiters(ready);
}

/* Shard locked, nothing in flight, rows pending. */
static void flush_start(MamWriter *w, Shard *s)
{
    Flush *f = g_new0(Flush, 1);
    f->w = w;
    f->shard = s;
    f->rows = g_steal_pointer(&s->pending);
    f->end = s->added;
    s->pending = g_ptr_array_new_with_free_func((GDestroyNotify)mam_row_free);
    s->in_flight = TRUE;
    mk_db_transaction_run(w->mod, flush_work, flush_done, f, flush_free);
}

/* ---- the writer's API ---------------------------------------------------- */

gboolean mam_writer_add(MamWriter *w, MamRow *row)
{
    if (g_atomic_int_add(&w->queued, 1) >= w->max_pending) {
        g_atomic_int_add(&w->queued, -1);
        mk_counter_add(w->counters.dropped, 1);
        /* One line per thousand refused rows: the metric has the count. */
        if (mk_counter_get(w->counters.dropped) % 1000 == 1)
            g_warning("mod_mam: the archive queue is full (max_pending = %d): a message to "
                      "%s was delivered but not archived",
                      w->max_pending,
                      row->archive.room ? row->archive.room : row->archive.username);
        mam_row_free(row);
        return FALSE;
    }
    Shard *s = shard_of(w, &row->archive);
    g_mutex_lock(&s->lock);
    g_ptr_array_add(s->pending, row);
    s->added++;
    /* After stop() the flush timer is gone: a late row is written at once. */
    if (!s->in_flight && (s->pending->len >= w->batch_size || g_atomic_int_get(&w->stopped)) &&
        g_get_monotonic_time() >= s->retry_at_us)
        flush_start(w, s);
    g_mutex_unlock(&s->lock);
    return TRUE;
}

void mam_writer_sync(MamWriter *w, const MamArchive *a, MamSynced done, gpointer user_data)
{
    Shard *s = shard_of(w, a);
    g_mutex_lock(&s->lock);
    if (s->settled == s->added) {
        g_mutex_unlock(&s->lock);
        done(user_data);
        return;
    }
    Waiter *wt = g_new0(Waiter, 1);
    wt->target = s->added;
    wt->ctx = g_main_context_ref_thread_default();
    wt->done = done;
    wt->user_data = user_data;
    s->waiters = g_slist_prepend(s->waiters, wt);
    if (!s->in_flight && s->pending->len)
        flush_start(w, s); /* now, not at the next tick: a client waits */
    g_mutex_unlock(&s->lock);
}

/* The flush timer: every non-empty shard whose retry pause is over. */
void mam_writer_tick(MamWriter *w)
{
    gint64 now = g_get_monotonic_time();
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        g_mutex_lock(&s->lock);
        if (!s->in_flight && s->pending->len && now >= s->retry_at_us)
            flush_start(w, s);
        g_mutex_unlock(&s->lock);
    }
}

/* At stop: every pending row goes to the storage pool, which the core
 * drains before the process exits, so SIGTERM loses nothing queued. */
void mam_writer_stop(MamWriter *w)
{
    g_atomic_int_set(&w->stopped, TRUE);
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        g_mutex_lock(&s->lock);
        /* A batch in flight is not waited for: this one is separate. */
        if (s->pending->len)
            flush_start(w, s);
        g_mutex_unlock(&s->lock);
    }
}

gint mam_writer_queued(MamWriter *w)
{
    return g_atomic_int_get(&w->queued);
}
