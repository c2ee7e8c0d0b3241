#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Hooks: named events run per host type, handlers in descending priority.
 * A handler returns MK_PASS to let the next one run, MK_HANDLED to stop
 * (the event is consumed), or MK_ERROR to stop and bounce the stanza error
 * set with mk_hook_call_set_error(). Handlers run on the worker that owns
 * the event (for session events: the session's worker) and must not block:
 * use mk_db_* for storage. */

/* A local session sent a stanza; before routing. Session, stanza, from, to. */
#define MK_HOOK_USER_SEND_PACKET "user_send_packet"
/* A stanza is about to be written to a local session. Session, stanza. */
#define MK_HOOK_USER_RECEIVE_PACKET "user_receive_packet"
/* A session bound a resource. Session. */
#define MK_HOOK_SESSION_OPENED "session_opened"
/* A session ended (after its unavailable presence went out). Session. */
#define MK_HOOK_SESSION_CLOSED "session_closed"
/* A session sent broadcast presence (no 'to'); its state is updated
 * already. Modules send it to subscribers. Session, stanza. */
#define MK_HOOK_PRESENCE_BROADCAST "presence_broadcast"
/* A presence stanza addressed to a local account arrived (subscription
 * requests, probes, and presence from contacts). HANDLED means the module
 * delivered or dropped it. Stanza, from, to. */
#define MK_HOOK_PRESENCE_IN "presence_in"
/* Any stanza addressed to a local account (bare or full JID), before
 * presence_in, session delivery or offline storage; also for presence a
 * module hands to mk_router_send_to_account. For privacy and blocking.
 * HANDLED drops it silently, ERROR bounces it. Stanza, from, to. */
#define MK_HOOK_FILTER_LOCAL_PACKET "filter_local_packet"
/* A message for a local account found no resource to take it. HANDLED
 * means a module stored it; otherwise the core bounces it. Stanza. */
#define MK_HOOK_OFFLINE_MESSAGE "offline_message"
/* An account is being removed. From = the account's bare JID. */
#define MK_HOOK_REMOVE_USER "remove_user"
/* A domain was added to the host type at run time. From = the domain. */
#define MK_HOOK_DOMAIN_ADDED "domain_added"
/* A new stream resumed the session (XEP-0198): <resumed/> and the resent
 * stanzas went out, nothing the client sent on the new stream was handled
 * yet. The session, its JID, presence and slots are those it had; state
 * that belongs to a stream rather than to the session (XEP-0352's client
 * state) starts afresh here. On the session's worker. Session, from = its
 * full JID. */
#define MK_HOOK_SESSION_RESUMED "session_resumed"
/* An account is authenticating (PLAIN: authenticated; SCRAM: found, the
 * proof may still fail). A handler may read, through mk_hook_call_db(),
 * what a session of that account will need as soon as it is bound, and
 * keep it with mk_hook_call_set_preload(); the session hands it over
 * once with mk_session_take_preload(), or its destroy frees it. Runs on
 * a core thread that may block, not on a worker: it may wait on the
 * connection and must touch no session. What it read may be stale by
 * the time the session takes it (a write may come in between): the
 * module must be able to tell, and read again. The return value is
 * ignored. From = the account's bare JID. */
#define MK_HOOK_AUTH_PRELOAD "auth_preload"

/* A user's roster changed (an item added, changed or removed, or its
 * subscription state), after the change was stored; announced by the
 * module that keeps rosters (mk_hook_run), for modules that keep what they
 * derived from a roster (mod_mam's "roster" preference). On the worker
 * that completed the change. From = the account's bare JID. Since ABI 2. */
#define MK_HOOK_ROSTER_CHANGED "roster_changed"

/* A stanza for an account of a served domain that no session of this
 * node (nor, in a cluster, of its cluster) holds: for a full JID no
 * session has that resource, for a bare JID the account has none. Runs
 * before filter_local_packet, on the thread that routes the stanza, and
 * only when a handler is registered. HANDLED means a module took the
 * stanza over (mod_global_distrib forwards it to the region that holds
 * the account); it hands it back with mk_router_send_here() if it
 * belongs here after all. ERROR bounces it. Stanza, from, to. Since
 * ABI 2.2. */
#define MK_HOOK_ROUTE_UNHELD "route_unheld"

typedef MkResult (*MkHookFunc)(MkHookCall *call, gpointer user_data);

/* Registers @func for @hook on @mod's host type. Main thread, in start().
 * Removed automatically when the module stops. Higher @priority runs first. */
MK_API void mk_hook_add(MkModule *mod, const char *hook, int priority, MkHookFunc func,
                        gpointer user_data);

/* Runs the handlers of @hook on @mod's host type with from = @from, on
 * the calling thread: for events a module announces to others
 * (roster_changed). Returns the first result other than MK_PASS, or
 * MK_PASS. A worker or the main thread. Since ABI 2. */
MK_API MkResult mk_hook_run(MkModule *mod, const char *hook, MkJid *from);

/* Arguments of the running hook, (transfer none) (nullable): valid during
 * the handler only; ref what you keep. */
MK_API MkStanza *mk_hook_call_stanza(MkHookCall *call);
MK_API MkSession *mk_hook_call_session(MkHookCall *call);
MK_API MkJid *mk_hook_call_from(MkHookCall *call);
MK_API MkJid *mk_hook_call_to(MkHookCall *call);
/* Replaces the stanza later handlers and the core see. (transfer full) */
MK_API void mk_hook_call_set_stanza(MkHookCall *call, MkStanza *stanza);
/* Sets the error bounced when the handler returns MK_ERROR. */
MK_API void mk_hook_call_set_error(MkHookCall *call, MkStanzaError cond, const char *text);
/* For a filter that refuses the stanza of @call (privacy lists, block
 * lists, a room's bans): a message that is not an error, or an IQ get or
 * set, bounces with @cond; anything else (presence, errors, IQ results) is
 * dropped without an answer (XEP-0016 2.13, XEP-0191 3.3). Returns what
 * the handler returns then: MK_ERROR or MK_HANDLED. Since ABI 2. */
MK_API MkResult mk_hook_call_refuse(MkHookCall *call, MkStanzaError cond);
/* The domain the hook runs for. (transfer none) */
MK_API const char *mk_hook_call_domain(MkHookCall *call);
/* auth_preload only: the database connection of the running job, NULL in
 * any other hook. (transfer none) */
MK_API MkDbConn *mk_hook_call_db(MkHookCall *call);
/* auth_preload only: keeps @data for the running module's instance until
 * the session takes it (mk_session_take_preload); @destroy frees it when
 * nobody does (authentication failed, the stream closed, the session
 * ended), on any thread. A second call replaces the first. Ignored, and
 * @data destroyed, outside auth_preload. (transfer full) */
MK_API void mk_hook_call_set_preload(MkHookCall *call, gpointer data, GDestroyNotify destroy);

/* Another node of the cluster died or left (docs/clustering.md): the
 * homes it held (mk_cluster_home_take) are forgotten here and its
 * stand-in sessions are gone from this node's table. Runs once per host
 * type on a worker, with no stanza, from or to; handlers must be
 * idempotent (a host type's module sees it once per event). Modules
 * drop what belonged to the dead node: mod_muc removes its occupants
 * and tells local users of its rooms that they are out. Since ABI 2.3. */
#define MK_HOOK_CLUSTER_NODE_GONE "cluster_node_gone"

G_END_DECLS
