#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* One stanza to many recipients: a group chat room's message to its
 * occupants. Since ABI 2.1.
 *
 * The stanza is serialised once; every copy shares that serialisation and
 * differs only in its 'to', which is written per recipient when a bound
 * client session takes it. Each copy is routed as mk_router_send routes
 * a stanza (filter_local_packet, the session rules, user_receive_packet
 * per session), so filters and privacy still see every copy; a hook that
 * replaces a copy makes that copy serialise itself again. */

/* Sends @stanza (its 'from' is trusted and kept, its 'to' ignored) to each
 * of the @n_recipients JIDs in @recipients:
 *
 *  - a full JID of a local bound session: that session;
 *  - a bare JID of a local account: when @stanza is type groupchat and its
 *    'from' is at a domain a module routes (a room service), every
 *    available resource with a non-negative priority; when none, the
 *    offline_message hook; when no module stores it, it is dropped
 *    without a bounce (the room's archive keeps it). Other types follow
 *    the RFC 6121 rules as with mk_router_send;
 *  - anything else (a full JID without a session, another domain): the
 *    normal routing path, with its errors to 'from'.
 *
 * (transfer none) of all arguments; the JIDs may be freed on return. Any
 * thread; deliveries to sessions of other workers go through their
 * mailboxes. */
MK_API void mk_fanout_send(MkStanza *stanza, MkJid *const *recipients, guint n_recipients);

G_END_DECLS
