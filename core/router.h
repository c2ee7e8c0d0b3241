/* The router: where a stanza goes, by its 'to' (docs/architecture.md, Routing).
 * Local accounts follow RFC 6121 section 8; served domains answer IQs
 * through the IQ handlers; module routes claim subdomains; anything else
 * would go to s2s, which does not exist yet, so it bounces with
 * remote-server-not-found. */
#pragma once

#include "mk-core.h"
#include "modules.h"

/* Routes @st (transfer none). @sender is the local session that sent it
 * when routing on that session's worker (for IQ handlers), else NULL.
 * Any thread. */
void mk_router_route(MkStanza *st, MkSession *sender);
/* Answers @st with an error (nothing for stanzas of type error). */
void mk_router_bounce(MkStanza *st, MkStanzaError cond, const char *text);
/* Delivers @st to the account in its 'to' by the rules for a bare or full
 * JID, without the presence_in hook. */
void mk_router_to_account(MkStanza *st, MkSession *sender);
/* @st (transfer none) was routed to a session that is gone (another
 * node's session that ended or whose node is unreachable, see
 * docs/clustering.md): a message goes to the offline_message hook as if
 * no resource were available, without running filter_local_packet a
 * second time; an IQ request bounces; the rest is dropped. Any thread. */
void mk_router_session_gone(MkStanza *st);
/* A message the cluster held to look for sessions in Redis
 * (mk_cluster_offline_recheck) goes on: to its full JID's session if one
 * is known now, else as to the bare JID, offline without a second look.
 * filter_local_packet ran already. A worker. */
void mk_router_message_rechecked(MkStanza *st);

/* Where routing hands a stanza that is for a local session: by default
 * mk_session_send. The fan-out (core/fanout.c) collects them instead, so
 * that all copies for one worker travel in one mailbox post. */
typedef struct MkRouteSink MkRouteSink;
struct MkRouteSink {
    /* @s and @st are (transfer none); called on the routing thread. */
    void (*deliver)(MkRouteSink *sink, MkSession *s, MkStanza *st);
    /* Nullable: the host and hook lookups of the stanzas' 'to' domain,
     * reused from one routed stanza to the next (modules.h). */
    MkDomainHooks *hooks;
};
/* mk_router_route with local deliveries going to @sink (nullable:
 * mk_session_send). Any thread. */
void mk_router_route_to(MkStanza *st, MkSession *sender, MkRouteSink *sink);
