/* See jobpool.h. */
#include "jobpool.h"

#include "arena.h"

struct MkJobPool {
    GMutex lock;
    GCond cond;
    GQueue jobs;
    GPtrArray *threads; /* of GThread* */
    guint max_threads;
    guint idle;       /* threads waiting for a job */
    gboolean closing; /* mk_job_pool_free: threads leave once the queue is empty */
    MkJobPoolFunc func;
    gpointer pool_data;
    char *name;
};

static gpointer pool_thread(gpointer data)
{
    MkJobPool *p = data;
    /* What jobs allocate may outlive them (an auth job's results go to
     * the session), so pool threads' heaps grow with sessions too. */
    mk_arena_reserve();
    g_mutex_lock(&p->lock);
    for (;;) {
        gpointer job = g_queue_pop_head(&p->jobs);
        if (job) {
            g_mutex_unlock(&p->lock);
            p->func(job, p->pool_data);
            g_mutex_lock(&p->lock);
            continue;
        }
        if (p->closing)
            break;
        p->idle++;
        g_cond_wait(&p->cond, &p->lock);
        p->idle--;
    }
    g_mutex_unlock(&p->lock);
    return NULL;
}

/* See jobpool.h. Any thread. Returns: (transfer full) */
MkJobPool *mk_job_pool_new(const char *name, guint max_threads, MkJobPoolFunc func,
                           gpointer pool_data)
{
    g_return_val_if_fail(name && func, NULL);
    MkJobPool *p = g_new0(MkJobPool, 1);
    g_mutex_init(&p->lock);
    g_cond_init(&p->cond);
    g_queue_init(&p->jobs);
    p->threads = g_ptr_array_new();
    p->max_threads = MAX(max_threads, 1);
    p->func = func;
    p->pool_data = pool_data;
    p->name = g_strdup(name);
    return p;
}

/* See jobpool.h. Any thread. */
void mk_job_pool_push(MkJobPool *p, gpointer job)
{
    g_return_if_fail(p && job);
    g_mutex_lock(&p->lock);
    g_queue_push_tail(&p->jobs, job);
    /* More jobs queued than threads idle (a woken thread counts as idle
     * until it runs): start another thread if allowed. */
    gboolean wake = p->idle > 0;
    gboolean spawn = p->jobs.length > p->idle && p->threads->len < p->max_threads;
    if (spawn) {
        g_autoptr(GError) error = NULL;
        GThread *t = g_thread_try_new(p->name, pool_thread, p, &error);
        if (t)
            g_ptr_array_add(p->threads, t);
        else if (p->threads->len == 0)
            g_error("%s: cannot start a thread: %s", p->name, error->message);
        else
            g_warning("%s: cannot start a thread: %s", p->name, error->message);
    }
    g_mutex_unlock(&p->lock);
    /* After the unlock, so the woken thread does not run into our lock. */
    if (wake)
        g_cond_signal(&p->cond);
}

/* See jobpool.h. Not from a pool thread. */
void mk_job_pool_free(MkJobPool *p)
{
    if (!p)
        return;
    g_mutex_lock(&p->lock);
    p->closing = TRUE;
    g_mutex_unlock(&p->lock);
    g_cond_broadcast(&p->cond);
    /* Threads started meanwhile (a job pushing another) are joined too. */
    for (guint i = 0;; i++) {
        g_mutex_lock(&p->lock);
        GThread *t = i < p->threads->len ? g_ptr_array_index(p->threads, i) : NULL;
        g_mutex_unlock(&p->lock);
        if (!t)
            break;
        g_thread_join(t);
    }
    g_warn_if_fail(g_queue_is_empty(&p->jobs));
    g_ptr_array_unref(p->threads);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->cond);
    g_free(p->name);
    g_free(p);
}

/* See jobpool.h. Any thread. */
guint mk_job_pool_queued(MkJobPool *p)
{
    g_mutex_lock(&p->lock);
    guint n = p->jobs.length;
    g_mutex_unlock(&p->lock);
    return n;
}
