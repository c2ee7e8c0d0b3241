#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Timers on the main thread, removed automatically when the module stops. */

/* Returns G_SOURCE_CONTINUE to repeat or G_SOURCE_REMOVE to end. */
typedef gboolean (*MkTimerFunc)(gpointer user_data);
/* Returns: (transfer none) a handle valid until the timer ends. Main thread. */
MK_API MkTimer *mk_timer_add(MkModule *mod, guint interval_ms, MkTimerFunc func,
                             gpointer user_data);
MK_API void mk_timer_remove(MkTimer *timer);

G_END_DECLS
