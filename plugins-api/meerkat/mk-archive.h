#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The room archive service: group chat modules (MUC, MUC Light) archive
 * their rooms' messages and answer XEP-0313 queries at a room's JID
 * through whichever module provides the service on their host type
 * (mod_mam), without knowing it. When none does, the calls say so and
 * the room module goes on without an archive. Since ABI 2.
 *
 * Calls from a user are made on a worker (a route handler, a hook, an
 * IQ handler or a completion there): the provider runs them there and
 * must not block. */

typedef struct {
    /* Archives @msg, a groupchat message as the room sends it to its
     * occupants (from room/nick), in the archive of @room (a bare JID),
     * sent by @real_jid (the occupant's real JID) under @nick. Returns
     * the archive ID for the <stanza-id by=room/> the room adds to what
     * it sends (transfer full), or NULL when the message is not kept. */
    char *(*store)(gpointer data, MkJid *room, MkStanza *msg, const char *nick, MkJid *real_jid);
    /* Answers @iq, an <iq type='set'> with an XEP-0313 <query/> sent to
     * @room by someone the room allowed to read its archive: the results
     * and the closing IQ result or error go to the sender, from @room. */
    void (*query)(gpointer data, MkJid *room, MkStanza *iq);
    /* Removes the archive of @room (the room was destroyed). */
    void (*remove)(gpointer data, MkJid *room);
} MkArchiveFuncs;

/* Provides the service on @mod's host type with @funcs (static, must
 * outlive the module) and @data for them. FALSE with an error when
 * another module provides it already. Main thread, in start(); removed
 * on stop. */
MK_API gboolean mk_archive_register(MkModule *mod, const MkArchiveFuncs *funcs, gpointer data,
                                    GError **error);

/* Whether a module on @user's host type provides the service. Worker. */
MK_API gboolean mk_archive_available(MkModule *user);
/* See MkArchiveFuncs.store. Returns: (transfer full) (nullable) NULL when
 * no archive service runs or the message is not kept. Worker. */
MK_API char *mk_archive_store(MkModule *user, MkJid *room, MkStanza *msg, const char *nick,
                              MkJid *real_jid);
/* See MkArchiveFuncs.query. FALSE when no archive service runs: the
 * caller then answers service-unavailable. (transfer none) Worker. */
MK_API gboolean mk_archive_query(MkModule *user, MkJid *room, MkStanza *iq);
/* See MkArchiveFuncs.remove; nothing when no archive service runs. Worker
 * or the main thread. */
MK_API void mk_archive_remove(MkModule *user, MkJid *room);

G_END_DECLS
