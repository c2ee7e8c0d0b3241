/* Module routes: stanzas to a domain a module claims (a subdomain such
 * as muc.localhost) go to that module's function. Domains are global,
 * not per host type: one route per domain on the whole server. */
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"

void mk_route_reg_free(gpointer reg)
{
    MkRouteReg *r = reg;
    g_free(r->domain);
    g_free(r);
}

/* Adds @mod's routes to @routes (snapshot build). Main thread. */
void mk_routes_build(GHashTable *routes, MkModule *mod)
{
    for (guint i = 0; i < mod->routes->len; i++) {
        MkRouteReg *r = g_ptr_array_index(mod->routes, i);
        MkRouteEntry *e = g_new0(MkRouteEntry, 1);
        e->func = r->func;
        e->user_data = r->user_data;
        e->mod = mod;
        g_hash_table_insert(routes, g_strdup(r->domain), e);
    }
}

/* Public module API (mk-router.h). Main thread, in start(). FALSE with
 * MK_MODULE_ERROR_DUPLICATE when the domain is routed or served already. */
gboolean mk_route_register(MkModule *mod, const char *domain, MkRouteFunc func, gpointer user_data,
                           GError **error)
{
    g_return_val_if_fail(mod != NULL && domain != NULL && func != NULL, FALSE);
    if (!mod->live) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "%s: routes are added while the module runs", mod->name);
        return FALSE;
    }
    g_autoptr(GError) local = NULL;
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, domain, NULL, &local);
    if (!jid) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "%s: route %s: %s", mod->name,
                    domain, local ? local->message : "invalid domain");
        return FALSE;
    }
    const char *prepared = mk_jid_domain(jid);
    MkModules *mods = mod->mods;
    const char *served = mods->server ? mk_hosts_lookup(mods->server->hosts, prepared) : NULL;
    if (served) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                    "%s: cannot route %s: it is a domain of host type %s", mod->name, prepared,
                    served);
        return FALSE;
    }
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *other = g_ptr_array_index(mods->instances, i);
        for (guint j = 0; j < other->routes->len; j++) {
            MkRouteReg *r = g_ptr_array_index(other->routes, j);
            if (g_str_equal(r->domain, prepared)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                            "%s: %s is routed to %s (host type %s) already", mod->name, prepared,
                            other->name, other->host_type);
                return FALSE;
            }
        }
    }
    MkRouteReg *r = g_new0(MkRouteReg, 1);
    r->domain = g_strdup(prepared);
    r->func = func;
    r->user_data = user_data;
    g_ptr_array_add(mod->routes, r);
    mk_modules_publish(mods);
    return TRUE;
}

/* See modules.h. Any thread. */
gboolean mk_routes_dispatch(MkModules *mods, const char *domain, MkStanza *stanza)
{
    if (!mods || !domain)
        return FALSE;
    MkRouteEntry *e = g_hash_table_lookup(mk_modules_snapshot(mods)->routes, domain);
    if (!e)
        return FALSE;
    e->func(stanza, e->user_data);
    return TRUE;
}

/* See modules.h. Any thread. */
gboolean mk_routes_has(MkModules *mods, const char *domain)
{
    return mods && domain && g_hash_table_contains(mk_modules_snapshot(mods)->routes, domain);
}
