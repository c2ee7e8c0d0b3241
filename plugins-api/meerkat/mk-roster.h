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

/* ---- Managing rosters (Since ABI 2.1) ----
 * For administration and client APIs (mod_rest_admin): read the items
 * with their subscription states, change items and send subscription
 * requests on a user's behalf, as the user's own client would, so that
 * pushes, presence and the RFC 6121 state machine follow. A separate
 * service ("roster-admin") so that a provider built for 2.0 is never
 * asked for functions it lacks. */

/* One roster item as the API shows it. */
typedef struct {
    char *jid;                /* the contact's bare JID */
    char *name;               /* nullable */
    const char *subscription; /* "none", "to", "from", "both" (static) */
    const char *ask;          /* "none", "out", "in", "both" (static) */
} MkRosterContact;
MK_API void mk_roster_contact_free(MkRosterContact *c);

#define MK_ROSTER_ERROR (mk_roster_error_quark())
MK_API GQuark mk_roster_error_quark(void);
typedef enum {
    MK_ROSTER_ERROR_NOT_FOUND, /* no such item to remove */
    MK_ROSTER_ERROR_REFUSED,   /* a limit of the user's roster */
    MK_ROSTER_ERROR_FAILED,    /* storage failed */
} MkRosterErrorCode;
/* @error (transfer none) is NULL on success. */
typedef void (*MkRosterDone)(const GError *error, gpointer user_data);

typedef struct {
    /* As contacts above, with states: MkRosterContact* (transfer full,
     * freed with mk_roster_contact_free) of the items in the roster. */
    gboolean (*items)(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out, GError **error);
    /* Adds @contact to @user's roster, renames it (@name nullable), or
     * removes it (@remove: also ends subscriptions, RFC 6121 2.5.2);
     * pushes go to @user's resources. @done, then @destroy, on the
     * calling thread. Worker. */
    void (*set_item)(gpointer data, MkJid *user, MkJid *contact, const char *name, gboolean remove,
                     MkRosterDone done, gpointer user_data, GDestroyNotify destroy);
    /* @user sends subscription presence @type ("subscribe", "subscribed",
     * "unsubscribe", "unsubscribed") to @contact. Worker. */
    void (*subscription)(gpointer data, MkJid *user, MkJid *contact, const char *type);
} MkRosterAdminFuncs;

/* Provides the managing service on @mod's host type. Main thread, in
 * start(); removed on stop. */
MK_API gboolean mk_roster_admin_register(MkModule *mod, const MkRosterAdminFuncs *funcs,
                                         gpointer data, GError **error);
/* See MkRosterAdminFuncs.items: *@available FALSE when no module
 * provides the service. A storage thread, inside a storage job of
 * @caller. */
MK_API gboolean mk_roster_items(MkModule *caller, MkDbConn *conn, MkJid *user, GPtrArray *out,
                                gboolean *available, GError **error);
/* See MkRosterAdminFuncs.set_item. FALSE (and neither @done nor
 * @destroy runs) when no module provides the service. Worker. */
MK_API gboolean mk_roster_set_item(MkModule *caller, MkJid *user, MkJid *contact, const char *name,
                                   gboolean remove, MkRosterDone done, gpointer user_data,
                                   GDestroyNotify destroy);
/* See MkRosterAdminFuncs.subscription. FALSE when no module provides
 * the service. Worker. */
MK_API gboolean mk_roster_subscription(MkModule *caller, MkJid *user, MkJid *contact,
                                       const char *type);

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
