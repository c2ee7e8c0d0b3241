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

gboolean mk_roster_relation(MkModule *caller, MkDbConn *conn, MkJid *user, const char *contact,
                            gboolean *from, GPtrArray *groups, gboolean *available, GError **error)
{
    g_return_val_if_fail(caller && conn && user && contact && from && groups && available, FALSE);
    *from = FALSE;
    MkServiceReg reg;
    *available = mk_service_enter(caller->mods, caller->host_type, SERVICE, &reg);
    if (!*available)
        return TRUE;
    const MkRosterFuncs *f = reg.funcs;
    gboolean ok =
        f->relation ? f->relation(reg.data, conn, user, contact, from, groups, error) : TRUE;
    *available = f->relation != NULL;
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
    const MkRosterFuncs *f = reg.funcs;
    gboolean ok =
        f->presence_subscribers ? f->presence_subscribers(reg.data, conn, user, out, error) : TRUE;
    *available = f->presence_subscribers != NULL;
    mk_service_leave(&reg);
    return ok;
}
