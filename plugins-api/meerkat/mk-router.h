#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Routing stanzas the server or a module originates. */

/* Routes @stanza by its 'to' as the core routes anything: local accounts
 * (session rules of RFC 6121 section 8 and the presence_in hook), served
 * domains (IQ handlers), module routes, else an error. Its 'from' is
 * trusted. Any thread. (transfer none) */
MK_API void mk_router_send(MkStanza *stanza);
/* Delivers @stanza to the local account in its 'to' by the RFC 6121
 * rules, skipping the presence_in hook: for modules that handled presence
 * themselves. Any thread. (transfer none) */
MK_API void mk_router_send_to_account(MkStanza *stanza);
/* Sends @stanza for the local account in its 'from', as that account's
 * client would but without a session (Since ABI 2.1): the
 * user_send_packet handlers run first (the sender's archive, roster,
 * privacy and blocking lists), then it is routed, unless one of them
 * took it; one that refused it bounces the error to 'from'. For APIs
 * that speak for a user. Worker. (transfer none) */
MK_API void mk_router_send_as(MkStanza *stanza);

/* Claims stanzas addressed to @domain (and its JIDs), a subdomain such as
 * "muc.localhost". The handler runs on the worker that routed the stanza.
 * Main thread, in start(); removed on stop. */
typedef void (*MkRouteFunc)(MkStanza *stanza, gpointer user_data);
MK_API gboolean mk_route_register(MkModule *mod, const char *domain, MkRouteFunc func,
                                  gpointer user_data, GError **error);

/* Routes @stanza as mk_router_send does, except that the route_unheld
 * hook (mk-hooks.h) does not run: a stanza for a local account that no
 * session here holds goes to offline storage or bounces, as on a server
 * without global distribution. For the module that took the stanza in
 * route_unheld and decided it belongs here after all, or that received
 * it from another region. Any thread. (transfer none) Since ABI 2.2. */
MK_API void mk_router_send_here(MkStanza *stanza);

G_END_DECLS
