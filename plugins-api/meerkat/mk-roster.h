#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The roster service: a module that keeps rosters (mod_roster) lets other
 * modules read who is in a user's roster, without knowing it: XEP-0313's
 * "roster" archiving preference, PubSub's roster access model. Changes
 * are announced with the roster_changed hook (mk-hooks.h). Since ABI 2. */

typedef struct {
    /* On a storage thread inside the caller's storage job: appends the
     * bare JIDs of @user's roster items (transfer full strings) to @out.
     * FALSE with @error when storage failed. */
    gboolean (*contacts)(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                         GError **error);
    /* Appended for PubSub's access models. On a storage thread: whether
     * @contact (a bare JID) receives @user's presence (subscription
     * 'from' or 'both') into *@from, and the roster groups @user put
     * @contact in appended to @groups (transfer full strings); FALSE and
     * none when @contact is not in the roster. */
    gboolean (*relation)(gpointer data, MkDbConn *conn, MkJid *user, const char *contact,
                         gboolean *from, GPtrArray *groups, GError **error);
    /* On a storage thread: appends the bare JIDs that receive @user's
     * presence (subscription 'from' or 'both'), transfer full strings. */
    gboolean (*presence_subscribers)(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                                     GError **error);
} MkRosterFuncs;

/* Provides the service on @mod's host type. FALSE with an error when
 * another module provides it. Main thread, in start(); removed on stop. */
MK_API gboolean mk_roster_register(MkModule *mod, const MkRosterFuncs *funcs, gpointer data,
                                   GError **error);

/* Reads the bare JIDs in @user's roster (an account of @caller's host
 * type) into @out (a GPtrArray of strings freed with g_free) on @conn.
 * When no module provides the service, *@available is FALSE and @out
 * stays empty. FALSE with @error when storage failed. A storage thread,
 * inside a storage job of @caller (MkDbWork, a user-cache load). */
MK_API gboolean mk_roster_contacts(MkModule *caller, MkDbConn *conn, MkJid *user, GPtrArray *out,
                                   gboolean *available, GError **error);

/* See MkRosterFuncs.relation. *@available FALSE (and *@from FALSE)
 * when no module provides it. A storage thread, inside a storage job of
 * @caller. */
MK_API gboolean mk_roster_relation(MkModule *caller, MkDbConn *conn, MkJid *user,
                                   const char *contact, gboolean *from, GPtrArray *groups,
                                   gboolean *available, GError **error);
/* See MkRosterFuncs.presence_subscribers; as mk_roster_contacts. */
MK_API gboolean mk_roster_presence_subscribers(MkModule *caller, MkDbConn *conn, MkJid *user,
                                               GPtrArray *out, gboolean *available, GError **error);

G_END_DECLS
