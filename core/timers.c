/* Module timers on the main context, removed when their module stops. */
#include "modules-priv.h"
#include "modules.h"

struct MkTimer {
    MkModule *mod;
    GSource *source; /* attached to the default main context */
    MkTimerFunc func;
    gpointer user_data;
};

static gboolean timer_fire(gpointer data)
{
    MkTimer *t = data;
    return t->func(t->user_data);
}

/* The source released its callback data: the timer ended (its function
 * returned G_SOURCE_REMOVE, mk_timer_remove, or the module stopped). */
static void timer_ended(gpointer data)
{
    MkTimer *t = data;
    if (t->mod)
        g_ptr_array_remove_fast(t->mod->timers, t);
    g_source_unref(t->source);
    g_free(t);
}

/* Public module API (mk-timer.h). (transfer none) Main thread. */
MkTimer *mk_timer_add(MkModule *mod, guint interval_ms, MkTimerFunc func, gpointer user_data)
{
    g_return_val_if_fail(mod != NULL && func != NULL, NULL);
    if (!mod->live) {
        g_warning("module %s: mk_timer_add outside a running instance ignored", mod->name);
        return NULL;
    }
    MkTimer *t = g_new0(MkTimer, 1);
    t->mod = mod;
    t->func = func;
    t->user_data = user_data;
    t->source = interval_ms % 1000 == 0 && interval_ms >= 10000
                    ? g_timeout_source_new_seconds(interval_ms / 1000) /* coalesced wake-ups */
                    : g_timeout_source_new(interval_ms);
    g_source_set_name(t->source, mod->name);
    g_source_set_callback(t->source, timer_fire, t, timer_ended);
    g_ptr_array_add(mod->timers, t);
    g_source_attach(t->source, g_main_context_default());
    return t;
}

/* Public module API. Main thread; @timer must not have ended. */
void mk_timer_remove(MkTimer *timer)
{
    g_return_if_fail(timer != NULL);
    g_source_destroy(timer->source);
}

/* See modules-priv.h. Main thread. */
void mk_timers_remove_all(MkModule *mod)
{
    while (mod->timers->len > 0) {
        MkTimer *t = g_ptr_array_index(mod->timers, mod->timers->len - 1);
        /* A timer stopped from inside its own callback ends after the
         * callback returns; take it off the list now all the same. */
        g_ptr_array_remove_index_fast(mod->timers, mod->timers->len - 1);
        t->mod = NULL;
        g_source_destroy(t->source);
    }
}
