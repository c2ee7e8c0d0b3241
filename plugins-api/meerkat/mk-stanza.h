#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Stanzas: an immutable XML element plus its prepared addresses. Shared
 * between threads by reference; never changed after creation. */

typedef enum {
    MK_STANZA_MESSAGE,
    MK_STANZA_PRESENCE,
    MK_STANZA_IQ,
    MK_STANZA_OTHER,
} MkStanzaKind;

/* Stanza error conditions (RFC 6120 section 8.3.3). */
typedef enum {
    MK_ERR_BAD_REQUEST,
    MK_ERR_CONFLICT,
    MK_ERR_FEATURE_NOT_IMPLEMENTED,
    MK_ERR_FORBIDDEN,
    MK_ERR_GONE,
    MK_ERR_INTERNAL_SERVER_ERROR,
    MK_ERR_ITEM_NOT_FOUND,
    MK_ERR_JID_MALFORMED,
    MK_ERR_NOT_ACCEPTABLE,
    MK_ERR_NOT_ALLOWED,
    MK_ERR_NOT_AUTHORIZED,
    MK_ERR_POLICY_VIOLATION,
    MK_ERR_RECIPIENT_UNAVAILABLE,
    MK_ERR_REDIRECT,
    MK_ERR_REGISTRATION_REQUIRED,
    MK_ERR_REMOTE_SERVER_NOT_FOUND,
    MK_ERR_REMOTE_SERVER_TIMEOUT,
    MK_ERR_RESOURCE_CONSTRAINT,
    MK_ERR_SERVICE_UNAVAILABLE,
    MK_ERR_SUBSCRIPTION_REQUIRED,
    MK_ERR_UNDEFINED_CONDITION,
    MK_ERR_UNEXPECTED_REQUEST,
} MkStanzaError;

/* Wraps @xml, reading and preparing its from/to. (transfer full) of the
 * result; (transfer none) of @xml, which is referenced and must not be
 * changed afterwards. NULL with MK_JID_ERROR when an address is invalid. */
MK_API MkStanza *mk_stanza_new(MkXml *xml, GError **error);
/* Like mk_stanza_new but with the addresses set (written into a copy of
 * @xml when they differ). @from/@to may be NULL. (transfer full) */
MK_API MkStanza *mk_stanza_new_addressed(MkXml *xml, MkJid *from, MkJid *to);
MK_API MkStanza *mk_stanza_ref(MkStanza *st);
MK_API void mk_stanza_unref(MkStanza *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkStanza, mk_stanza_unref)

/* (transfer none) */
MK_API MkXml *mk_stanza_xml(const MkStanza *st);
MK_API MkStanzaKind mk_stanza_kind(const MkStanza *st);
/* (transfer none) (nullable) */
MK_API MkJid *mk_stanza_from(const MkStanza *st);
MK_API MkJid *mk_stanza_to(const MkStanza *st);
MK_API const char *mk_stanza_type(const MkStanza *st);
MK_API const char *mk_stanza_id(const MkStanza *st);
/* TRUE when @st is type="error": nothing answers it, and filters let it
 * through where a request would bounce. Any thread. Since ABI 2. */
MK_API gboolean mk_stanza_is_error(const MkStanza *st);

/* The error reply to @st: from/to swapped, type="error", original payload
 * kept, <error/> with @cond and optional @text. (transfer full) (nullable):
 * NULL when @st is itself type="error" (an error never answers an error). */
MK_API MkStanza *mk_stanza_new_error_reply(const MkStanza *st, MkStanzaError cond,
                                           const char *text);
/* (transfer none) "service-unavailable" etc., and the error type
 * ("cancel", "modify", "auth", "wait"). */
MK_API const char *mk_stanza_error_name(MkStanzaError cond);
MK_API const char *mk_stanza_error_type(MkStanzaError cond);

/* Holds back the XEP-0198 acknowledgement of @st, a stanza a local client
 * sent on a stream with stream management, until mk_ack_hold_release():
 * for a module that takes the stanza over and makes it durable later
 * (mod_offline, until its store commits). An <a/> then never counts a
 * stanza that a crash would lose. NULL when there is nothing to hold
 * (another origin, or no stream management). (transfer full) (nullable)
 * Any thread. Since ABI 1.4 (appended). */
MK_API MkAckHold *mk_stanza_hold_ack(MkStanza *st);
/* The held stanza is durably stored, or answered (an error went back to
 * its sender): the acknowledgement may count it now. (transfer full)
 * Any thread, once per hold; NULL is ignored. Since ABI 1.4. */
MK_API void mk_ack_hold_release(MkAckHold *hold);

G_END_DECLS
