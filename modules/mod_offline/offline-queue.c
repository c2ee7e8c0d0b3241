/* Per-user serial jobs.
 *
 * Storage completions arrive in any order, but one user's messages must
 * be stored in the order they came, and a delivery must not run while a
 * store for the same user is half done (or two deliveries would hand the
 * same rows out twice). So the jobs of one key (a bare JID) run one at a
 * time. Unlike a plain storage call, a job may take several round trips
 * (retries with back-off, fetch then delete): it says when it is over
 * with offline_job_finish().
 *
 * Each job runs on the thread that queued it: when the next job belongs
 * to another thread, it is started from that thread's main context. */
#include "offline.h"

struct OfflineQueue {
    gint ref;
    GMutex lock;
    GHashTable *busy; /* key -> GQueue* of waiting jobs (the running one is not in it) */
};

struct OfflineJob {
    OfflineQueue *q;
    char *key;
    GMainContext *ctx;
    OfflineJobFunc start;
    gpointer data;
    GDestroyNotify destroy;
};

static void job_free(OfflineJob *job)
{
    if (job->destroy)
        job->destroy(job->data);
    offline_queue_unref(job->q);
    g_main_context_unref(job->ctx);
    g_free(job->key);
    g_free(job);
}

/* Jobs still waiting when the queue goes (shutdown): their data's destroy
 * function reports what was not done. */
static void waiting_free(gpointer data)
{
    GQueue *waiting = data;
    OfflineJob *job;
    while ((job = g_queue_pop_head(waiting))) {
        if (job->destroy)
            job->destroy(job->data);
        g_main_context_unref(job->ctx);
        g_free(job->key);
        g_free(job);
    }
    g_queue_free(waiting);
}

OfflineQueue *offline_queue_new(void)
{
    OfflineQueue *q = g_new0(OfflineQueue, 1);
    q->ref = 1;
    g_mutex_init(&q->lock);
    q->busy = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, waiting_free);
    return q;
}

OfflineQueue *offline_queue_ref(OfflineQueue *q)
{
    g_atomic_int_inc(&q->ref);
    return q;
}

void offline_queue_unref(OfflineQueue *q)
{
    if (!q || !g_atomic_int_dec_and_test(&q->ref))
        return;
    /* Waiting jobs hold no reference (a running one does), so the last
     * reference can go while some wait: only at shutdown. */
    g_hash_table_destroy(q->busy);
    g_mutex_clear(&q->lock);
    g_free(q);
}

GMainContext *offline_job_context(OfflineJob *job)
{
    return job->ctx;
}

/* The idle source that starts a job on another thread holds it in a box
 * it empties when the job starts: the job may end (and be freed) before
 * the source is destroyed. */
static gboolean job_start_idle(gpointer user_data)
{
    OfflineJob **box = user_data;
    OfflineJob *job = g_steal_pointer(box);
    job->start(job, job->data);
    return G_SOURCE_REMOVE;
}

/* The source goes; the job never started when its thread ended first
 * (shutdown). */
static void job_box_free(gpointer user_data)
{
    OfflineJob **box = user_data;
    if (*box)
        job_free(*box);
    g_free(box);
}

/* Starts @job, which now holds a queue reference, on its own thread. */
static void job_start(OfflineJob *job)
{
    GMainContext *here = g_main_context_ref_thread_default();
    gboolean same = here == job->ctx;
    g_main_context_unref(here);
    if (same) {
        job->start(job, job->data);
        return;
    }
    OfflineJob **box = g_new(OfflineJob *, 1);
    *box = job;
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, job_start_idle, box, job_box_free);
    g_source_set_name(src, "mod_offline-queue");
    g_source_attach(src, job->ctx);
    g_source_unref(src);
}

void offline_job_finish(OfflineJob *job)
{
    OfflineQueue *q = job->q;
    OfflineJob *next = NULL;

    g_mutex_lock(&q->lock);
    GQueue *waiting = g_hash_table_lookup(q->busy, job->key);
    if (waiting)
        next = g_queue_pop_head(waiting);
    if (!next)
        g_hash_table_remove(q->busy, job->key);
    g_mutex_unlock(&q->lock);

    if (next)
        next->q = offline_queue_ref(q);
    job_free(job);
    if (next)
        job_start(next);
}

void offline_queue_drop_waiting(OfflineQueue *q)
{
    g_autoptr(GPtrArray) dropped = g_ptr_array_new();
    g_mutex_lock(&q->lock);
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, q->busy);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        OfflineJob *job;
        while ((job = g_queue_pop_head(value)))
            g_ptr_array_add(dropped, job);
    }
    g_mutex_unlock(&q->lock);
    /* Outside the lock: their destroy functions may log. They never ran,
     * so they hold no queue reference. */
    for (guint i = 0; i < dropped->len; i++) {
        OfflineJob *job = g_ptr_array_index(dropped, i);
        if (job->destroy)
            job->destroy(job->data);
        g_main_context_unref(job->ctx);
        g_free(job->key);
        g_free(job);
    }
}

void offline_job_abandon(OfflineJob *job)
{
    job_free(job);
}

void offline_queue_run(OfflineQueue *q, const char *key, OfflineJobFunc start, gpointer data,
                       GDestroyNotify destroy)
{
    OfflineJob *job = g_new0(OfflineJob, 1);
    job->key = g_strdup(key);
    job->ctx = g_main_context_ref_thread_default();
    job->start = start;
    job->data = data;
    job->destroy = destroy;

    g_mutex_lock(&q->lock);
    GQueue *waiting = g_hash_table_lookup(q->busy, key);
    if (waiting) {
        g_queue_push_tail(waiting, job);
        job = NULL;
    } else {
        g_hash_table_insert(q->busy, g_strdup(key), g_queue_new());
    }
    g_mutex_unlock(&q->lock);

    if (job) {
        job->q = offline_queue_ref(q);
        job_start(job);
    }
}
