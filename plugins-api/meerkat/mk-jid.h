#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* JIDs (RFC 7622), prepared once with the XMPP stringprep profiles
 * (nodeprep, nameprep/IDNA, resourceprep) and then immutable. Any thread. */

#define MK_JID_ERROR (mk_jid_error_quark())
MK_API GQuark mk_jid_error_quark(void);
typedef enum { MK_JID_ERROR_MALFORMED } MkJidError;

/* Parses and prepares "node@domain/resource". Returns: (transfer full)
 * (nullable) NULL with MK_JID_ERROR_MALFORMED when invalid. */
MK_API MkJid *mk_jid_new(const char *text, GError **error);
/* From parts; @node and @resource may be NULL. Returns: (transfer full). */
MK_API MkJid *mk_jid_new_from_parts(const char *node, const char *domain, const char *resource,
                                    GError **error);
MK_API MkJid *mk_jid_ref(MkJid *jid);
MK_API void mk_jid_unref(MkJid *jid);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkJid, mk_jid_unref)

/* (transfer none) (nullable for node and resource) */
MK_API const char *mk_jid_node(const MkJid *jid);
MK_API const char *mk_jid_domain(const MkJid *jid);
MK_API const char *mk_jid_resource(const MkJid *jid);
/* (transfer none) The whole JID as a string, and the bare part. */
MK_API const char *mk_jid_string(const MkJid *jid);
MK_API const char *mk_jid_bare_string(const MkJid *jid);
MK_API gboolean mk_jid_is_bare(const MkJid *jid);
/* The bare JID (the same object when already bare). Returns: (transfer full). */
MK_API MkJid *mk_jid_bare(MkJid *jid);
/* The same bare JID with another resource. Returns: (transfer full). */
MK_API MkJid *mk_jid_with_resource(const MkJid *jid, const char *resource, GError **error);
MK_API gboolean mk_jid_equal(const MkJid *a, const MkJid *b);
MK_API gboolean mk_jid_bare_equal(const MkJid *a, const MkJid *b);

G_END_DECLS
