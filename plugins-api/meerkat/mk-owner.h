#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>
#include <meerkat/mk-timer.h>

G_BEGIN_DECLS
/* Keyed owners: state that belongs to a key (a MUC room) is touched only
 * by the worker that owns the key, chosen by a stable hash of the key
 * over the workers. A module posts the work about a key to its owner
 * instead of locking the state (docs/architecture.md, Keyed owners). */

/* Runs @func(@user_data) once, soon, on the worker that owns @key, after
 * the caller returned (never inline, also on the owner itself), in the
 * order posted by one thread. @func's return value is ignored. @destroy
 * (nullable) runs exactly once afterwards, or without @func when the
 * module stopped (or the workers went away) first. @key is not kept.
 * Any thread. Since ABI 2.1. */
MK_API void mk_owner_post(MkModule *mod, const char *key, MkTimerFunc func, gpointer user_data,
                          GDestroyNotify destroy);
/* TRUE when the calling thread is the worker that owns @key. Any thread.
 * Since ABI 2.1. */
MK_API gboolean mk_owner_is_self(const char *key);

G_END_DECLS
