#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Sessions of locally connected clients, and the session table. */

MK_API MkSession *mk_session_ref(MkSession *s);
MK_API void mk_session_unref(MkSession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkSession, mk_session_unref)

/* (transfer none) The full JID bound by the session. Any thread. */
MK_API MkJid *mk_session_jid(MkSession *s);
/* Priority of the last broadcast presence and whether it was available. */
MK_API int mk_session_priority(MkSession *s);
MK_API gboolean mk_session_is_available(MkSession *s);
/* (transfer full) (nullable) The last broadcast available presence. */
MK_API MkStanza *mk_session_last_presence(MkSession *s);
/* Seconds since the client last sent anything. Any thread. */
MK_API gint64 mk_session_idle_seconds(MkSession *s);

/* Writes @stanza to the client (after user_receive_packet). Any thread:
 * from another worker it travels through the owner's mailbox. (transfer none) */
MK_API void mk_session_send(MkSession *s, MkStanza *stanza);
/* Writes @el to the session's stream as it is: no hooks, no addressing.
 * For stream-level replies such as <a/> (mk-stream.h). The session's
 * worker only. (transfer none) */
MK_API void mk_session_write_xml(MkSession *s, MkXml *el);
/* Closes the stream with a stream error condition ("conflict",
 * "connection-timeout", ...), or a clean </stream:stream> when NULL. Any thread. */
MK_API void mk_session_close(MkSession *s, const char *stream_error);

/* Per-session module data, one slot per module instance. The session's
 * worker only. @destroy runs when the session ends or the slot is
 * replaced; the slot keeps @mod's instance (and its data) alive until
 * then. */
MK_API void mk_session_set_slot(MkSession *s, MkModule *mod, gpointer data, GDestroyNotify destroy);
MK_API gpointer mk_session_get_slot(MkSession *s, MkModule *mod);

/* Per-session module state that other threads read: flags (the session
 * asked for the roster, so pushes from any worker go to it; carbons are
 * enabled) and a string (the name of its active privacy list). One set
 * per module instance and session, kept with the session object (and
 * keeping @mod's instance alive as a slot does). Cheaper and simpler
 * than a module-wide table of sessions under a lock. Any thread. Since
 * ABI 2. */
/* Sets the bits of @mask to those of @flags. */
MK_API void mk_session_set_flags(MkSession *s, MkModule *mod, guint flags, guint mask);
/* The flags @mod set on @s; 0 when none. */
MK_API guint mk_session_get_flags(MkSession *s, MkModule *mod);
/* Sets (a copy of) @value (nullable: unsets it). */
MK_API void mk_session_set_string(MkSession *s, MkModule *mod, const char *value);
/* Returns: (transfer full) (nullable) a copy of what @mod set on @s. */
MK_API char *mk_session_dup_string(MkSession *s, MkModule *mod);

/* What @mod's auth_preload handler kept for this session's account
 * (mk_hook_call_set_preload), once: later calls return NULL. The caller
 * owns it and frees it as its handler's destroy would. The session's
 * worker. Returns: (transfer full) (nullable). */
MK_API gpointer mk_session_take_preload(MkSession *s, MkModule *mod);

/* The sessions of @bare (a bare JID) on this node. Returns: (transfer full)
 * array of referenced sessions (free with g_ptr_array_unref). Any thread. */
MK_API GPtrArray *mk_session_list(MkJid *bare);
/* Every local session, for periodic sweeps such as idle pings. Calls
 * @func with each one (transfer none). Main thread. */
MK_API void mk_session_foreach(void (*func)(MkSession *s, gpointer user_data), gpointer user_data);

/* TRUE while @s is detached by stream management (XEP-0198): its
 * connection dropped and the session waits, up to the resumption timeout,
 * for the client to resume it. It stays bound and stanzas sent to it are
 * queued for the resumed stream; the client cannot answer anything until
 * then, so liveness checks (pings, idle timeouts) must leave it alone: the
 * core ends it when the timeout expires. Any thread. */
MK_API gboolean mk_session_is_detached(MkSession *s);
/* TRUE while @s is in the session table: from resource binding until the
 * session ended or another session took its full JID. A detached session
 * (above) is still bound. Use it in a late completion holding a session
 * reference, to tell a session that ended meanwhile. Any thread. */
MK_API gboolean mk_session_is_bound(MkSession *s);

/* As mk_session_foreach, and also the sessions of the cluster's other
 * nodes that this node knows (their stand-ins: mk_session_jid and
 * mk_session_send work on them), for listings such as the admin API's.
 * Main thread. */
MK_API void mk_session_foreach_cluster(void (*func)(MkSession *s, gpointer user_data),
                                       gpointer user_data);

G_END_DECLS
