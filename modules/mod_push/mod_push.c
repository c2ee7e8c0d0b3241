/* mod_push: XEP-0357 push notifications on their own. The engine is in
 * push-engine.c; mod_event_pusher's "push" backend runs the same engine,
 * so a site turns on one of the two (docs/mod_push.md). */
#include "push.h"

static gboolean push_start(MkModule *mod, GError **error)
{
    PushEngine *e = push_engine_start(mod, "", error);
    if (!e)
        return FALSE;
    mk_module_set_data(mod, e, (GDestroyNotify)push_engine_free);
    return TRUE;
}

static const MkConfigKey push_keys[] = {
    PUSH_CONFIG_KEYS(""),
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,         .name = "mod_push",  .version = "1.0", .config_keys = push_keys,
    .migrations = push_migrations, .start = push_start,
};
