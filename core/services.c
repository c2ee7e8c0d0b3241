/* Services between modules: one module provides a named table of
 * functions for its host type, others call it through the typed API of
 * the service (mk-archive.h), so that modules never call each other and
 * the core knows no module by name. The registration lives in the
 * published snapshot like hooks and routes: a call from a worker needs
 * no lock and no reference (the snapshot's grace period keeps the
 * provider's instance), and work the provider starts (storage jobs)
 * keeps it alive by itself. */
#include "modules-priv.h"
#include "modules.h"

void mk_service_reg_free(gpointer reg)
{
    MkServiceReg *r = reg;
    g_free(r->name);
    g_free(r);
}

/* Adds @mod's services to @hr (snapshot build). Main thread. */
void mk_services_build(MkHostReg *hr, MkModule *mod)
{
    for (guint i = 0; i < mod->services->len; i++) {
        MkServiceReg *r = g_ptr_array_index(mod->services, i);
        g_hash_table_insert(hr->services, r->name, r);
    }
}

gboolean mk_service_provide(MkModule *mod, const char *name, gconstpointer funcs, gpointer data,
                            GError **error)
{
    g_return_val_if_fail(mod != NULL && name != NULL && funcs != NULL, FALSE);
    if (!g_atomic_int_get(&mod->live)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "%s: services are provided while the module runs", mod->name);
        return FALSE;
    }
    MkModules *mods = mod->mods;
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *other = g_ptr_array_index(mods->instances, i);
        if (g_strcmp0(other->host_type, mod->host_type) != 0)
            continue;
        for (guint j = 0; j < other->services->len; j++) {
            MkServiceReg *r = g_ptr_array_index(other->services, j);
            if (g_str_equal(r->name, name)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                            "%s: the %s service is provided by %s already", mod->name, name,
                            other->name);
                return FALSE;
            }
        }
    }
    MkServiceReg *r = g_new0(MkServiceReg, 1);
    r->name = g_strdup(name);
    r->funcs = funcs;
    r->data = data;
    r->mod = mod;
    g_ptr_array_add(mod->services, r);
    mk_modules_publish(mods);
    return TRUE;
}

const MkServiceReg *mk_service_lookup(MkModules *mods, const char *host_type, const char *name)
{
    MkRegSnapshot *s = mods ? mk_modules_snapshot(mods) : NULL;
    MkHostReg *hr = s && host_type ? g_hash_table_lookup(s->hosts, host_type) : NULL;
    return hr ? g_hash_table_lookup(hr->services, name) : NULL;
}

gboolean mk_service_enter(MkModules *mods, const char *host_type, const char *name,
                          MkServiceReg *out)
{
    const MkServiceReg *r = mk_service_lookup(mods, host_type, name);
    if (!r)
        return FALSE;
    *out = *r;
    /* The reference keeps the struct; entering keeps the instance from
     * stopping under the call, as for auth_preload handlers. */
    mk_module_ref(out->mod);
    if (!mk_module_enter(out->mod)) {
        mk_module_unref(out->mod);
        return FALSE;
    }
    return TRUE;
}

void mk_service_leave(MkServiceReg *reg)
{
    mk_module_leave(reg->mod);
    mk_module_unref(reg->mod);
}
