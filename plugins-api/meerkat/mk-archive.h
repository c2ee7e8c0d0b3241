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

/* ---- Users' archives for APIs (Since ABI 2.1) ----
 * An administration or client API (mod_rest_admin) reads a user's 1:1
 * archive through the module that keeps it (mod_mam), as the service
 * "archive-user". */

/* One archived message. */
typedef struct {
    char *id;       /* the archive ID (XEP-0359 stanza-id) */
    char *sender;   /* bare JID of who sent it */
    char *with;     /* bare JID of the other party */
    gint64 when_us; /* when it was archived, microseconds since the epoch */
    char *body;     /* its <body/> text, "" when none */
} MkArchivedMessage;
MK_API void mk_archived_message_free(MkArchivedMessage *m);

/* @messages (transfer none): MkArchivedMessage*, oldest first; NULL with
 * @error. */
typedef void (*MkArchiveMessagesDone)(GPtrArray *messages, const GError *error, gpointer user_data);

typedef struct {
    /* The last @limit messages of @owner's archive (with @with only, when
     * not NULL) archived before @before_us, including every message sent
     * before the call. @done, then @destroy, on the calling thread.
     * Worker. */
    void (*messages)(gpointer data, MkJid *owner, MkJid *with, gint64 before_us, guint limit,
                     MkArchiveMessagesDone done, gpointer user_data, GDestroyNotify destroy);
} MkUserArchiveFuncs;

/* Provides the service on @mod's host type. Main thread, in start(). */
MK_API gboolean mk_user_archive_register(MkModule *mod, const MkUserArchiveFuncs *funcs,
                                         gpointer data, GError **error);
/* See MkUserArchiveFuncs.messages. FALSE (and neither @done nor @destroy
 * runs) when no module provides the service. Worker. */
MK_API gboolean mk_user_archive_messages(MkModule *caller, MkJid *owner, MkJid *with,
                                         gint64 before_us, guint limit, MkArchiveMessagesDone done,
                                         gpointer user_data, GDestroyNotify destroy);

/* ---- Rooms' archives for APIs ----
 * An administration API (mod_muc's REST endpoints) reads a room's
 * archive through the module that keeps it, as the service
 * "archive-room-read". The provider's MkUserArchiveFuncs.messages gets
 * the room's bare JID as @owner and @with NULL; each record's sender is
 * the real bare JID of the occupant who wrote ("" when the room did not
 * know it), and only messages with a body are given. */

/* Provides the service on @mod's host type. Main thread, in start(). */
MK_API gboolean mk_room_archive_read_register(MkModule *mod, const MkUserArchiveFuncs *funcs,
                                              gpointer data, GError **error);
/* The last @limit messages of @room's archive archived before
 * @before_us, oldest first; as mk_user_archive_messages otherwise.
 * FALSE (and neither @done nor @destroy runs) when no module provides
 * the service. Worker. */
MK_API gboolean mk_room_archive_messages(MkModule *caller, MkJid *room, gint64 before_us,
                                         guint limit, MkArchiveMessagesDone done,
                                         gpointer user_data, GDestroyNotify destroy);

G_END_DECLS
