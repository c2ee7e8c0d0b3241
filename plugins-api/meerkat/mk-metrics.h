#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Per-module counters, logged on SIGUSR1 and at shutdown
 * (docs/operations.md, Metrics). Counting is atomic and lock-free from any thread. */

/* Returns: (transfer none) the counter "MODULE.NAME" of @mod's host type,
 * created on first use. Main thread, in start(). */
MK_API MkCounter *mk_counter_new(MkModule *mod, const char *name);
MK_API void mk_counter_add(MkCounter *counter, gint64 n);
MK_API gint64 mk_counter_get(MkCounter *counter);

G_END_DECLS
