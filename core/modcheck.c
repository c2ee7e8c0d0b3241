/* See modcheck.h. */
#include "modcheck.h"
#include <gmodule.h>

static const MkModuleDesc *load_desc(const MkConfigData *cfg, const MkModuleConfig *mc,
                                     GModule **out, GError **error)
{
    g_autofree char *file = g_strdup_printf("%s/%s.so", cfg->module_dir, mc->name);
    GModule *m = g_module_open(file, G_MODULE_BIND_LOCAL);
    gpointer sym = NULL;
    if (!m) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_LOAD, "%s: cannot load %s: %s",
                    mc->name, file, g_module_error());
        return NULL;
    }
    if (!g_module_symbol(m, "mk_module_desc", &sym) || !sym) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_LOAD, "%s: %s has no mk_module_desc",
                    mc->name, file);
        g_module_close(m);
        return NULL;
    }
    const MkModuleDesc *desc = sym;
    if (desc->abi_major != MK_ABI_MAJOR || desc->abi_minor > MK_ABI_MINOR) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_ABI,
                    "%s: built for module ABI %u.%u, this server has %d.%d", mc->name,
                    desc->abi_major, desc->abi_minor, MK_ABI_MAJOR, MK_ABI_MINOR);
        g_module_close(m);
        return NULL;
    }
    *out = m;
    return desc;
}

gboolean mk_modules_check(const MkConfigData *cfg, GError **error)
{
    for (guint i = 0; i < cfg->modules->len; i++) {
        const MkModuleConfig *mc = g_ptr_array_index(cfg->modules, i);
        GModule *m = NULL;
        const MkModuleDesc *desc = load_desc(cfg, mc, &m, error);
        if (!desc)
            return FALSE;
        gboolean ok = TRUE;
        for (const char *const *d = desc->depends; ok && d && *d; d++) {
            if (!mk_config_find_module(cfg, *d)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY,
                            "%s requires %s, which is not enabled (no conf.d/%s.conf)", mc->name,
                            *d, *d);
                ok = FALSE;
            }
        }
        for (guint h = 0; ok && h < cfg->host_types->len; h++) {
            MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, h);
            GHashTable *values = mk_config_module_values(mc, desc->config_keys, ht->name, error);
            if (!values)
                ok = FALSE;
            else
                g_hash_table_unref(values);
        }
        g_module_close(m);
        if (!ok)
            return FALSE;
    }
    return TRUE;
}
