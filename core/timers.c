/* Module timers and deferred calls (mk-timer.h): GSources on the
 * thread-default main context of the thread that created them (the main
 * thread's in start(), a worker's in a handler), removed when their
 * module stops. Each holds a reference on its module, so the module's
 * data outlives a callback that is running while the main thread stops
 * the module. */
#include "modules-priv.h"
#include "modules.h"

struct MkTimer {
    MkModule *mod; /* reference */
    GSource *source;
    MkTimerFunc func;
    gpointer user_data;
    GDestroyNotify destroy;
    gboolean once;   /* mk_timer_post: the return value is ignored */
    gboolean listed; /* in mod->timers; under mod->timers_lock */
};

/* On the timer's thread. A module that stopped gets no more calls: its
 * stop destroyed the source, but a dispatch may already have begun. */
static gboolean timer_fire(gpointer data)
{
    MkTimer *t = data;
    if (!mk_module_is_running(t->mod))
        return G_SOURCE_REMOVE;
    gboolean again = t->func(t->user_data);
    return t->once ? G_SOURCE_REMOVE : again;
}

/* The source released its callback data: the timer ended (its function
 * returned G_SOURCE_REMOVE, mk_timer_remove, the module stopped, or the
 * context was freed). On whichever thread that happened. */
static void timer_ended(gpointer data)
{
    MkTimer *t = data;
    MkModule *mod = t->mod;
    g_mutex_lock(&mod->timers_lock);
    if (t->listed)
        g_ptr_array_remove_fast(mod->timers, t);
    g_mutex_unlock(&mod->timers_lock);
    if (t->destroy)
        t->destroy(t->user_data);
    g_source_unref(t->source);
    g_free(t);
    mk_module_unref(mod); /* last: may free the data @destroy used */
}

static MkTimer *timer_new(MkModule *mod, GSource *source, MkTimerFunc func, gpointer user_data,
                          GDestroyNotify destroy)
{
    MkTimer *t = g_new0(MkTimer, 1);
    t->mod = mk_module_ref(mod);
    t->func = func;
    t->user_data = user_data;
    t->destroy = destroy;
    t->source = source;
    g_source_set_name(t->source, mod->name);
    g_source_set_callback(t->source, timer_fire, t, timer_ended);
    t->listed = TRUE;
    g_mutex_lock(&mod->timers_lock);
    g_ptr_array_add(mod->timers, t);
    g_mutex_unlock(&mod->timers_lock);
    return t;
}

/* Refuses a timer for an instance that is not running: @destroy runs
 * now, as the API promises it always does. @what (nullable) names the
 * call for a warning; a late completion posting work is no mistake. */
static gboolean timer_refused(MkModule *mod, const char *what, gpointer user_data,
                              GDestroyNotify destroy)
{
    if (mk_module_is_running(mod))
        return FALSE;
    if (what)
        g_warning("module %s: %s outside a running instance ignored", mod->name, what);
    if (destroy)
        destroy(user_data);
    return TRUE;
}

/* Public module API (mk-timer.h). (transfer none) Any thread that runs
 * its thread-default main context. */
MkTimer *mk_timer_add_full(MkModule *mod, guint interval_ms, MkTimerFunc func, gpointer user_data,
                           GDestroyNotify destroy)
{
    g_return_val_if_fail(mod != NULL && func != NULL, NULL);
    if (timer_refused(mod, "mk_timer_add", user_data, destroy))
        return NULL;
    GSource *src = interval_ms % 1000 == 0 && interval_ms >= 10000
                       ? g_timeout_source_new_seconds(interval_ms / 1000) /* coalesced wake-ups */
                       : g_timeout_source_new(interval_ms);
    MkTimer *t = timer_new(mod, src, func, user_data, destroy);
    GMainContext *ctx = g_main_context_ref_thread_default();
    g_source_attach(t->source, ctx);
    g_main_context_unref(ctx);
    return t;
}

MkTimer *mk_timer_add(MkModule *mod, guint interval_ms, MkTimerFunc func, gpointer user_data)
{
    return mk_timer_add_full(mod, interval_ms, func, user_data, NULL);
}

/* Public module API. Any thread that runs its thread-default main context. */
void mk_timer_post(MkModule *mod, MkTimerFunc func, gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && func != NULL);
    if (timer_refused(mod, NULL, user_data, destroy))
        return;
    MkTimer *t = timer_new(mod, g_idle_source_new(), func, user_data, destroy);
    t->once = TRUE;
    g_source_set_priority(t->source, G_PRIORITY_DEFAULT);
    GMainContext *ctx = g_main_context_ref_thread_default();
    g_source_attach(t->source, ctx);
    g_main_context_unref(ctx);
}

/* Public module API. The timer's thread (or, with care, any thread: the
 * handle must not have ended). */
void mk_timer_remove(MkTimer *timer)
{
    g_return_if_fail(timer != NULL);
    g_source_destroy(timer->source);
}

/* See modules-priv.h. Main thread. */
void mk_timers_remove_all(MkModule *mod)
{
    /* Take the sources out under the lock, destroy them outside it: a
     * timer ending on its own thread meanwhile takes the same lock. */
    g_autoptr(GPtrArray) sources = g_ptr_array_new_with_free_func((GDestroyNotify)g_source_unref);
    g_mutex_lock(&mod->timers_lock);
    for (guint i = 0; i < mod->timers->len; i++) {
        MkTimer *t = g_ptr_array_index(mod->timers, i);
        t->listed = FALSE;
        g_ptr_array_add(sources, g_source_ref(t->source));
    }
    g_ptr_array_set_size(mod->timers, 0);
    g_mutex_unlock(&mod->timers_lock);
    for (guint i = 0; i < sources->len; i++)
        g_source_destroy(g_ptr_array_index(sources, i));
}
