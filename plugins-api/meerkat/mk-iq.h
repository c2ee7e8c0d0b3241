#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* IQ handlers, keyed by (scope, type, namespace). The core answers an IQ
 * nobody claims with service-unavailable; modules never do that. */

typedef enum {
    MK_IQ_GET,
    MK_IQ_SET,
} MkIqType;

typedef enum {
    /* Addressed to a served domain itself (to="localhost"). */
    MK_IQ_SCOPE_SERVER = 1 << 0,
    /* Addressed to a local account's bare JID, or sent by a user with no
     * 'to' (the server answers on the account's behalf: roster, vCard). */
    MK_IQ_SCOPE_ACCOUNT = 1 << 1,
} MkIqScope;

/* Returns MK_HANDLED once it replied or will reply (mk_iq_ref() and reply
 * later from any thread), MK_ERROR with an error set by mk_iq_reply_error,
 * or MK_PASS to decline (the core answers service-unavailable). */
typedef MkResult (*MkIqFunc)(MkIq *iq, gpointer user_data);

/* Registers a handler for IQs of @type whose payload is in @xmlns. Main
 * thread, in start(). FALSE (with @error) when the key is taken already. */
MK_API gboolean mk_iq_register(MkModule *mod, MkIqScope scopes, MkIqType type, const char *xmlns,
                               MkIqFunc func, gpointer user_data, GError **error);

MK_API MkIq *mk_iq_ref(MkIq *iq);
MK_API void mk_iq_unref(MkIq *iq);
/* (transfer none) The request, its payload child, its addresses. */
MK_API MkStanza *mk_iq_stanza(MkIq *iq);
MK_API MkXml *mk_iq_payload(MkIq *iq);
MK_API MkJid *mk_iq_from(MkIq *iq);
MK_API MkJid *mk_iq_to(MkIq *iq);
MK_API MkIqType mk_iq_type(MkIq *iq);
/* (transfer none) (nullable) The sender's session when it is local. Only
 * valid while the handler runs on the session's own worker. */
MK_API MkSession *mk_iq_session(MkIq *iq);
/* For an IQ about an account's own data (roster, privacy lists, private
 * XML, blocking): the bare JID of the account when the sender is that
 * account (no 'to', or 'to' its own bare JID). Otherwise the IQ is
 * answered forbidden and the result is NULL: the handler returns
 * MK_HANDLED. (transfer full) (nullable) Any thread. Since ABI 2. */
MK_API MkJid *mk_iq_own_account(MkIq *iq);
/* The MkModule of the handler, for storage calls. (transfer none) */
MK_API MkModule *mk_iq_module(MkIq *iq);

/* Replies once: a result with @payload (transfer full, nullable), or an
 * error. Any thread. Later replies are ignored with a warning. */
MK_API void mk_iq_reply(MkIq *iq, MkXml *payload);
MK_API void mk_iq_reply_error(MkIq *iq, MkStanzaError cond, const char *text);
/* As mk_iq_reply_error, with @app (transfer full, nullable) added to the
 * <error/> as its application-specific condition (XEP-0060's
 * <item-not-found/> siblings such as <invalid-jid xmlns='...#errors'/>).
 * Any thread. Since ABI 2.1. */
MK_API void mk_iq_reply_error_app(MkIq *iq, MkStanzaError cond, const char *text, MkXml *app);

/* Sends an IQ request from the server (or a module's JID) and calls
 * @done with the response, or with NULL after @timeout_ms, on the calling
 * thread; then @destroy (nullable) on @user_data. Both run exactly once,
 * also after the module stopped (mk_module_is_running tells; the
 * module's data is still there). When the server shuts down first, @done
 * runs with NULL on the main thread. (transfer none) of @request. */
typedef void (*MkIqResponse)(MkStanza *response, gpointer user_data);
MK_API void mk_iq_send(MkModule *mod, MkStanza *request, guint timeout_ms, MkIqResponse done,
                       gpointer user_data, GDestroyNotify destroy);

G_END_DECLS
