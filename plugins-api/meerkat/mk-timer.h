#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Timers and deferred calls on the thread that created them: the main
 * thread in start(), a worker in a hook or IQ handler or in a completion
 * that came back there. They are removed when the module stops: from then
 * on their function is not called, but their @destroy still is. */

/* Returns G_SOURCE_CONTINUE to repeat or G_SOURCE_REMOVE to end. */
typedef gboolean (*MkTimerFunc)(gpointer user_data);

/* Runs @func every @interval_ms on the calling thread until it returns
 * G_SOURCE_REMOVE, mk_timer_remove() or the module stops; then @destroy
 * (nullable) on @user_data, exactly once, on the thread that ended it
 * (when the module stops: the main thread). Returns: (transfer none)
 * (nullable) a handle valid until the timer ends; NULL when the module is
 * not running (@destroy has run then). Any thread that runs a Meerkat
 * main context (the main thread, a worker). */
MK_API MkTimer *mk_timer_add_full(MkModule *mod, guint interval_ms, MkTimerFunc func,
                                  gpointer user_data, GDestroyNotify destroy);
/* mk_timer_add_full without a destroy notify. */
MK_API MkTimer *mk_timer_add(MkModule *mod, guint interval_ms, MkTimerFunc func,
                             gpointer user_data);
/* Ends @timer: its function is not called again. The handle must not
 * have ended. Any thread. */
MK_API void mk_timer_remove(MkTimer *timer);

/* Runs @func once, soon, on the calling thread, after the caller returned
 * to its main loop: "later on my current thread" (a retry of a storage
 * job from its completion, work after the current stanza). @func's return
 * value is ignored. @destroy (nullable) runs exactly once afterwards, or
 * without @func when the module stopped first. Any thread that runs a
 * Meerkat main context. */
MK_API void mk_timer_post(MkModule *mod, MkTimerFunc func, gpointer user_data,
                          GDestroyNotify destroy);

G_END_DECLS
