/* Keyed owners (mk-owner.h): a key's work runs on one worker, picked by
 * a stable hash of the key, through that worker's mailbox. The job holds
 * a reference on its module, as timers do, so the module's data outlives
 * a job still queued when the module stops. */
#include "modules.h"
#include "server.h"
#include "worker.h"

typedef struct {
    MkModule *mod; /* reference */
    MkTimerFunc func;
    gpointer data;
    GDestroyNotify destroy;
} OwnerJob;

/* FNV-1a: stable across builds and runs, so a future cluster can use the
 * same placement rule. */
static guint32 owner_hash(const char *key)
{
    guint32 h = 2166136261u;
    for (const guchar *p = (const guchar *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static MkWorker *owner_of(const char *key)
{
    MkServer *srv = mk_server_get();
    if (!srv || !srv->workers)
        return NULL;
    guint n = mk_workers_count(srv->workers);
    return mk_workers_get(srv->workers, owner_hash(key) % n);
}

static void owner_job_free(gpointer data)
{
    OwnerJob *job = data;
    if (job->destroy)
        job->destroy(job->data);
    MkModule *mod = job->mod;
    g_free(job);
    mk_module_unref(mod); /* last: may free what @destroy used */
}

/* On the owner. */
static void owner_job_run(gpointer data)
{
    OwnerJob *job = data;
    if (mk_module_is_running(job->mod))
        job->func(job->data);
    owner_job_free(job);
}

/* Public module API (mk-owner.h). Any thread. */
void mk_owner_post(MkModule *mod, const char *key, MkTimerFunc func, gpointer user_data,
                   GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && key != NULL && func != NULL);
    MkWorker *w = owner_of(key);
    if (!w || !mk_module_is_running(mod)) {
        if (destroy)
            destroy(user_data);
        return;
    }
    OwnerJob *job = g_new0(OwnerJob, 1);
    job->mod = mk_module_ref(mod);
    job->func = func;
    job->data = user_data;
    job->destroy = destroy;
    mk_worker_post(w, owner_job_run, job, owner_job_free);
}

/* Public module API. Any thread. */
gboolean mk_owner_is_self(const char *key)
{
    g_return_val_if_fail(key != NULL, FALSE);
    MkWorker *self = mk_worker_self();
    return self && self == owner_of(key);
}
