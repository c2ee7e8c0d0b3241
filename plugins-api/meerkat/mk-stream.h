#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>
#include <meerkat/mk-iq.h>
#include <meerkat/mk-stanza.h>

G_BEGIN_DECLS

/* Stream-level extensions: what a module adds to <stream:features> and the
 * top-level elements outside jabber:client it takes (XEP-0198's <r/>,
 * XEP-0352's <active/>, ...). */

typedef enum {
    MK_STREAM_PRE_AUTH = 1 << 0,  /* offered with the SASL mechanisms */
    MK_STREAM_POST_AUTH = 1 << 1, /* offered with <bind/>, after SASL */
} MkStreamStage;

/* Adds @xml (one serialized element with its own xmlns, e.g.
 * "<ver xmlns='urn:xmpp:features:rosterver'/>") to the stream features
 * of @mod's domains at @stages (a mask of MkStreamStage). Main thread, in
 * start(); removed on stop. The core copies @xml. */
MK_API void mk_stream_feature_add(MkModule *mod, guint stages, const char *xml);

/* Computes a stream feature that depends on the host type's service
 * discovery registries (XEP-0115's <c/> hashes them). Called on the main
 * thread whenever the registrations of @mod's host type change (a module
 * starts or stops, SIGHUP), with that host type's sorted, unique features
 * and identities (groups of 3 strings: category, type, name) as
 * mk_disco_features/_identities return them once the change is published.
 * Returns: (transfer full) (nullable) one serialized element, or NULL for
 * none. The function must not call back into the registries. */
typedef char *(*MkStreamFeatureFunc)(MkModule *mod, const char *const *features,
                                     const char *const *identities, gpointer user_data);

/* Adds the element @func computes to the stream features at @stages.
 * Main thread, in start(); removed on stop. */
MK_API void mk_stream_feature_add_func(MkModule *mod, guint stages, MkStreamFeatureFunc func,
                                       gpointer user_data);

/* Called for a top-level element in @xmlns from a bound client stream,
 * on the session's worker. @el is (transfer none), valid during the call.
 * MK_HANDLED: consumed; MK_PASS: the core treats it as unsupported (the
 * stream closes with unsupported-stanza-type). */
typedef MkResult (*MkStreamElementFunc)(MkSession *s, MkXml *el, gpointer user_data);

/* Claims top-level elements in namespace @xmlns on bound streams of @mod's
 * domains. One handler per namespace and host type (a second fails with
 * an error). Main thread, in start(); removed on stop. */
MK_API gboolean mk_stream_element_register(MkModule *mod, const char *xmlns,
                                           MkStreamElementFunc func, gpointer user_data,
                                           GError **error);

/* ---- IQs before authentication ----
 *
 * A client stream that has not authenticated has no session and no JID;
 * the core closes it on anything but STARTTLS and SASL, except an <iq/>
 * of type get or set whose one payload is in a namespace a module
 * claimed here (in-band registration, XEP-0077). Not on a listener with
 * tls = required before STARTTLS: there the stream still closes. */

typedef struct MkPreauthIq MkPreauthIq; /* one such IQ and its stream */

/* Called on the stream's worker. @iq is (transfer none): mk_preauth_iq_ref
 * it to answer after the handler returned (e.g. from a storage or
 * mk_account_* callback, which come back to the same worker). Returns
 * MK_HANDLED once it replied or will reply; MK_PASS makes the core answer
 * service-unavailable; MK_ERROR means it replied with an error. */
typedef MkResult (*MkPreauthIqFunc)(MkPreauthIq *iq, gpointer user_data);

/* Claims pre-authentication IQs whose payload is in @xmlns on streams to
 * @mod's domains. One handler per namespace and host type (a second
 * fails). Main thread, in start(); removed on stop. */
MK_API gboolean mk_preauth_iq_register(MkModule *mod, const char *xmlns, MkPreauthIqFunc func,
                                       gpointer user_data, GError **error);

/* Every function below: the stream's worker only (the thread the handler
 * ran on). A referenced MkPreauthIq keeps its stream's state alive, not
 * the connection: replying after the client left does nothing. */
MK_API MkPreauthIq *mk_preauth_iq_ref(MkPreauthIq *iq);
MK_API void mk_preauth_iq_unref(MkPreauthIq *iq);
/* (transfer none) The request <iq/> and its one payload child. */
MK_API MkXml *mk_preauth_iq_xml(MkPreauthIq *iq);
MK_API MkXml *mk_preauth_iq_payload(MkPreauthIq *iq);
MK_API MkIqType mk_preauth_iq_type(MkPreauthIq *iq);
/* (transfer none) The stream's domain (its 'to', prepared). */
MK_API const char *mk_preauth_iq_domain(MkPreauthIq *iq);
/* (transfer none) The client's IP address without the port ("127.0.0.1",
 * "::1"), for per-address limits; "unknown" when the socket has none. */
MK_API const char *mk_preauth_iq_peer(MkPreauthIq *iq);
/* Whether the stream is encrypted (STARTTLS or direct TLS). */
MK_API gboolean mk_preauth_iq_is_secure(MkPreauthIq *iq);
/* Replies once: a result with @payload (transfer full, nullable), or an
 * error with @cond and optional @text. Later replies are ignored. */
MK_API void mk_preauth_iq_reply(MkPreauthIq *iq, MkXml *payload);
MK_API void mk_preauth_iq_reply_error(MkPreauthIq *iq, MkStanzaError cond, const char *text);

/* XEP-0198 Stream Management on the client streams of @mod's domains.
 * The core implements the protocol (it has to count every stanza in both
 * directions, including those modules write with mk_session_write_xml
 * and those the core answers itself); a module (mod_stream_management)
 * switches it on and owns the settings. A detached session waits
 * @resume_timeout seconds for a <resume/> (0: no resumption offered);
 * @max_unacked (>= 2) unacknowledged stanzas close the stream with
 * policy-violation. The module still announces <sm xmlns='urn:xmpp:sm:3'/>
 * with mk_stream_feature_add. Main thread, in start(); off again on stop. */
MK_API void mk_stream_management_enable(MkModule *mod, guint resume_timeout, guint max_unacked);
/* Further XEP-0198 limits, after mk_stream_management_enable: the stream
 * is closed for max_unacked only when an <r/> went unanswered for
 * @ack_timeout seconds (>= 1; the server's own bursts never count);
 * after the client's </stream:stream> the server asks for a final <a/>
 * and waits @close_wait_ms for it; a detached session that queues more
 * than @max_detached_bytes ends as if its resumption timed out. Defaults
 * without this call: 30 s, 2000 ms, 1 MiB. Main thread, in start().
 * Since ABI 1.4 (appended). */
MK_API void mk_stream_management_limits(MkModule *mod, guint ack_timeout, guint close_wait_ms,
                                        gsize max_detached_bytes);

G_END_DECLS
