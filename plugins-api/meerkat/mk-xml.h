#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* XML element trees.
 *
 * A tree is mutable while one owner builds it. Once it is wrapped in a
 * stanza and routed it is shared between threads and must not be changed:
 * copy it (mk_xml_copy) to make a changed version. Reference counting is
 * atomic; any thread may ref/unref. */

/* A new element. @xmlns may be NULL (inherits the parent's namespace when
 * serialised). Returns: (transfer full). */
MK_API MkXml *mk_xml_new(const char *name, const char *xmlns);
/* A new text node. Returns: (transfer full). */
MK_API MkXml *mk_xml_new_text(const char *text, gssize len);
MK_API MkXml *mk_xml_ref(MkXml *node);
MK_API void mk_xml_unref(MkXml *node);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkXml, mk_xml_unref)

MK_API gboolean mk_xml_is_text(const MkXml *node);
/* (transfer none) Element name; NULL for text nodes. */
MK_API const char *mk_xml_name(const MkXml *el);
/* (transfer none) (nullable) The namespace in scope for @el. */
MK_API const char *mk_xml_ns(const MkXml *el);
/* TRUE when @el is an element named @name in namespace @xmlns (NULL = any). */
MK_API gboolean mk_xml_is(const MkXml *el, const char *name, const char *xmlns);

/* (transfer none) (nullable) The value of attribute @name. */
MK_API const char *mk_xml_get_attr(const MkXml *el, const char *name);
/* Sets (or removes, when @value is NULL) an attribute. Unshared trees only. */
MK_API void mk_xml_set_attr(MkXml *el, const char *name, const char *value);
/* Number of attributes and the i-th one (transfer none), for serialisers. */
MK_API guint mk_xml_attr_count(const MkXml *el);
MK_API void mk_xml_attr_at(const MkXml *el, guint i, const char **name, const char **value);

/* Children (elements and text nodes, in document order). */
MK_API guint mk_xml_child_count(const MkXml *el);
/* (transfer none) */
MK_API MkXml *mk_xml_child_at(const MkXml *el, guint i);
/* (transfer none) (nullable) First child element with @name (NULL = any
 * name) in @xmlns (NULL = any namespace). */
MK_API MkXml *mk_xml_child(const MkXml *el, const char *name, const char *xmlns);
/* Appends @child. (transfer full) of @child. Unshared trees only. */
MK_API void mk_xml_append(MkXml *el, MkXml *child);
/* Creates, appends and returns a child element. Returns: (transfer none). */
MK_API MkXml *mk_xml_add_child(MkXml *el, const char *name, const char *xmlns);
/* Appends a text node. */
MK_API void mk_xml_add_text(MkXml *el, const char *text, gssize len);
/* Removes every child element matching name/xmlns (NULL = any). */
MK_API void mk_xml_remove_children(MkXml *el, const char *name, const char *xmlns);

/* The concatenated text of @el's direct text children. Returns: (transfer full). */
MK_API char *mk_xml_text(const MkXml *el);
/* The text of the first child element @name/@xmlns, or NULL. (transfer full) */
MK_API char *mk_xml_child_text(const MkXml *el, const char *name, const char *xmlns);

/* A deep, unshared copy. Returns: (transfer full). */
MK_API MkXml *mk_xml_copy(const MkXml *el);
/* A copy of the top element (name, namespace, attributes) that shares the
 * children of @el by reference: cheap, for a changed version of a routed
 * stanza (another attribute, one more child). Children may be appended to
 * or removed from the copy, but the shared ones must not be changed.
 * Returns: (transfer full). Any thread. Since ABI 2. */
MK_API MkXml *mk_xml_copy_shallow(const MkXml *el);
/* Serialises @el with namespace declarations where they change from
 * @parent_ns (NULL = always declare). Returns: (transfer full). */
MK_API char *mk_xml_to_string(const MkXml *el, const char *parent_ns);
/* Appends the serialisation to @out. */
MK_API void mk_xml_write(const MkXml *el, const char *parent_ns, GString *out);
/* Parses one complete document (same restrictions as streams). (transfer full) */
MK_API MkXml *mk_xml_parse(const char *text, gssize len, GError **error);

/* A parser of stanzas that arrive one at a time (over a module's own
 * connection): each call parses one complete element in the jabber:client
 * namespace, with the restrictions of mk_xml_parse, but the libxml2
 * context and its dictionary stay between calls, which mk_xml_parse
 * creates and frees each time. After an error the next call starts a
 * fresh context. Belongs to one thread at a time. Since ABI 2.4. */
typedef struct MkXmlParser MkXmlParser;
MK_API MkXmlParser *mk_xml_parser_new(void);
MK_API void mk_xml_parser_free(MkXmlParser *p);
/* Returns: (transfer full) the element, or NULL with an error
 * "CONDITION: text" (not well-formed, not exactly one element). */
MK_API MkXml *mk_xml_parser_parse(MkXmlParser *p, const char *text, gsize len, GError **error);

G_END_DECLS
