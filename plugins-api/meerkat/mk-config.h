#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Typed module configuration.
 *
 * A module declares its keys; the core reads the module's [mod_NAME]
 * section (and [mod_NAME@HOSTTYPE] overrides) from its conf.d file, rejects
 * unknown keys and values out of bounds naming the file and key, and only
 * then starts the module. Reads never fail: a key not set has its default. */

typedef enum {
    MK_CONFIG_BOOL,
    MK_CONFIG_INT, /* 64-bit, bounded by min/max */
    MK_CONFIG_STRING,
    MK_CONFIG_STRV, /* a ;-separated list */
} MkConfigType;

typedef struct {
    const char *name;
    MkConfigType type;
    const char *default_value; /* as written in a file; NULL = unset */
    gint64 min, max;           /* MK_CONFIG_INT only; both 0 = unbounded */
    const char *help;          /* one line for --check-config and docs */
} MkConfigKey;

/* clang-format off */
#define MK_CONFIG_KEYS_END {NULL, 0, NULL, 0, 0, NULL}
/* clang-format on */

/* Values of this module instance's keys. Main thread or any worker: the
 * values are immutable while the instance runs. (transfer none) for strings. */
MK_API gboolean mk_config_get_bool(MkModule *mod, const char *key);
MK_API gint64 mk_config_get_int(MkModule *mod, const char *key);
MK_API const char *mk_config_get_string(MkModule *mod, const char *key);
MK_API const char *const *mk_config_get_strv(MkModule *mod, const char *key);

G_END_DECLS
