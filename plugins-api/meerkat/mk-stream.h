#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS

/* Stream-level extensions: what a module adds to <stream:features> and the
 * top-level elements outside jabber:client it takes (XEP-0198's <r/>,
 * XEP-0352's <active/>, ...). Since ABI 1.1. */

typedef enum {
    MK_STREAM_PRE_AUTH = 1 << 0,  /* offered with the SASL mechanisms */
    MK_STREAM_POST_AUTH = 1 << 1, /* offered with <bind/>, after SASL */
} MkStreamStage;

/* Adds @xml (one serialized element with its own xmlns, e.g.
 * "<ver xmlns='urn:xmpp:features:rosterver'/>") to the stream features
 * of @mod's domains at @stages (a mask of MkStreamStage). Main thread, in
 * start(); removed on stop. The core copies @xml. */
MK_API void mk_stream_feature_add(MkModule *mod, guint stages, const char *xml);

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

/* Writes @el to the session's stream as it is: no hooks, no addressing.
 * For stream-level replies such as <a/>. The session's worker only.
 * (transfer none) */
MK_API void mk_session_write_xml(MkSession *s, MkXml *el);

G_END_DECLS
