/* mod_failstart: a deliberately broken module whose start() fails, so
 * test-config can check that meerkatd refuses to run and names it.
 * Built for `make check` only, never installed. */
#include <meerkat/module.h>

static gboolean failstart_start(MkModule *mod, GError **error)
{
    g_set_error(error, g_quark_from_static_string("mod-failstart-error"), 1,
                "mod_failstart always fails to start");
    return FALSE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_failstart",
    .version = "1.0",
    .start = failstart_start,
};
