/* The roster service (mk-roster.h) over the core's service registry. */
#include "modules-priv.h"
#include "modules.h"

#define SERVICE "roster"

gboolean mk_roster_register(MkModule *mod, const MkRosterFuncs *funcs, gpointer data,
                            GError **error)
{
    return mk_service_provide(mod, SERVICE, funcs, data, error);
}

gboolean mk_roster_contacts(MkModule *caller, MkDbConn *conn, MkJid *user, GPtrArray *out,
                            gboolean *available, GError **error)
{
    g_return_val_if_fail(caller && conn && user && out && available, FALSE);
    MkServiceReg reg;
    *available = mk_service_enter(caller->mods, caller->host_type, SERVICE, &reg);
    if (!*available)
        return TRUE;
    const MkRosterFuncs *f = reg.funcs;
    gboolean ok = f->contacts(reg.data, conn, user, out, error);
    mk_service_leave(&reg);
    return ok;
}

/* ---- managing rosters (mk-roster.h, Since ABI 2.1) ---- */

#define ADMIN_SERVICE "roster-admin"

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-roster-error-quark, mk_roster_error)
/* clang-format on */

void mk_roster_contact_free(MkRosterContact *c)
{
    if (!c)
        return;
    g_free(c->jid);
    g_free(c->name);
    g_free(c);
}

gboolean mk_roster_admin_register(MkModule *mod, const MkRosterAdminFuncs *funcs, gpointer data,
                                  GError **error)
{
    return mk_service_provide(mod, ADMIN_SERVICE, funcs, data, error);
}

gboolean mk_roster_items(MkModule *caller, MkDbConn *conn, MkJid *user, GPtrArray *out,
                         gboolean *available, GError **error)
{
    g_return_val_if_fail(caller && conn && user && out && available, FALSE);
    MkServiceReg reg;
    *available = mk_service_enter(caller->mods, caller->host_type, ADMIN_SERVICE, &reg);
    if (!*available)
        return TRUE;
    const MkRosterAdminFuncs *f = reg.funcs;
    gboolean ok = f->items(reg.data, conn, user, out, error);
    mk_service_leave(&reg);
    return ok;
}

/* On a worker, under the snapshot's grace period (as mk_archive_store). */
static const MkServiceReg *admin_provider(MkModule *caller)
{
    g_return_val_if_fail(caller != NULL, NULL);
    return mk_service_lookup(caller->mods, caller->host_type, ADMIN_SERVICE);
}

gboolean mk_roster_set_item(MkModule *caller, MkJid *user, MkJid *contact, const char *name,
                            gboolean remove, MkRosterDone done, gpointer user_data,
                            GDestroyNotify destroy)
{
    const MkServiceReg *p = admin_provider(caller);
    if (!p)
        return FALSE;
    ((const MkRosterAdminFuncs *)p->funcs)
        ->set_item(p->data, user, contact, name, remove, done, user_data, destroy);
    return TRUE;
}

gboolean mk_roster_subscription(MkModule *caller, MkJid *user, MkJid *contact, const char *type)
{
    const MkServiceReg *p = admin_provider(caller);
    if (!p)
        return FALSE;
    ((const MkRosterAdminFuncs *)p->funcs)->subscription(p->data, user, contact, type);
    return TRUE;
}

/* The entries appended in ABI 2.1 (relation, presence_subscribers)
 * exist only in the table of a provider built for 2.1 or later: one
 * built for 2.0 has a shorter table, which must not be read past. */
static const MkRosterFuncs *funcs_2_1(const MkServiceReg *reg)
{
    const MkModuleDesc *d = reg->mod ? reg->mod->desc : NULL;
    return d && d->abi_minor >= 1 ? reg->funcs : NULL;
}

gboolean mk_roster_relation(MkModule *caller, MkDbConn *conn, MkJid *user, const char *contact,
                            gboolean *from, GPtrArray *groups, gboolean *available, GError **error)
{
    g_return_val_if_fail(caller && conn && user && contact && from && groups && available, FALSE);
    *from = FALSE;
    MkServiceReg reg;
    *available = mk_service_enter(caller->mods, caller->host_type, SERVICE, &reg);
    if (!*available)
        return TRUE;
    const MkRosterFuncs *f = funcs_2_1(&reg);
    gboolean ok =
        f && f->relation ? f->relation(reg.data, conn, user, contact, from, groups, error) : TRUE;
    *available = f && f->relation != NULL;
    mk_service_leave(&reg);
    return ok;
}

gboolean mk_roster_presence_subscribers(MkModule *caller, MkDbConn *conn, MkJid *user,
                                        GPtrArray *out, gboolean *available, GError **error)
{
    g_return_val_if_fail(caller && conn && user && out && available, FALSE);
    MkServiceReg reg;
    *available = mk_service_enter(caller->mods, caller->host_type, SERVICE, &reg);
    if (!*available)
        return TRUE;
    const MkRosterFuncs *f = funcs_2_1(&reg);
    gboolean ok = f && f->presence_subscribers
                      ? f->presence_subscribers(reg.data, conn, user, out, error)
                      : TRUE;
    *available = f && f->presence_subscribers != NULL;
    mk_service_leave(&reg);
    return ok;
}
