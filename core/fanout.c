/* One stanza to many recipients with one serialisation (mk-fanout.h).
 * Why and the measurements: docs/architecture.md, "Fan-out". */
#include "fanout.h"
#include "router.h"
#include "xmlstream.h"

#include <string.h>

#define NS_CLIENT "jabber:client"

struct MkWire {
    gint ref;
    gsize split; /* bytes of "<name" (and its xmlns): 'to' goes here */
    gsize len;
    char bytes[];
};

MkWire *mk_wire_new(const MkXml *xml)
{
    g_return_val_if_fail(xml != NULL && !mk_xml_is_text(xml), NULL);
    GString *out = g_string_sized_new(512);
    mk_xml_write(xml, NS_CLIENT, out);
    MkWire *w = g_malloc(sizeof(MkWire) + out->len + 1);
    w->ref = 1;
    w->len = out->len;
    memcpy(w->bytes, out->str, out->len + 1);
    g_string_free(out, TRUE);
    /* mk_xml_write starts with '<', the name, then a space or the end of
     * the start tag: the attributes may go in order after the name. */
    w->split = 1 + strlen(mk_xml_name(xml));
    return w;
}

MkWire *mk_wire_ref(MkWire *w)
{
    g_atomic_int_inc(&w->ref);
    return w;
}

void mk_wire_unref(MkWire *w)
{
    if (w && g_atomic_int_dec_and_test(&w->ref))
        g_free(w);
}

gsize mk_wire_len(const MkWire *w)
{
    return w->len;
}

void mk_wire_write(const MkWire *w, const MkJid *to, GString *out)
{
    g_string_append_len(out, w->bytes, w->split);
    if (to) {
        g_string_append(out, " to='");
        mk_xml_append_attr_value(out, mk_jid_string(to));
        g_string_append_c(out, '\'');
    }
    g_string_append_len(out, w->bytes + w->split, w->len - w->split);
}

/* Public module API (mk-fanout.h). Any thread. */
void mk_fanout_send(MkStanza *stanza, MkJid *const *recipients, guint n_recipients)
{
    g_return_if_fail(stanza != NULL && (recipients != NULL || n_recipients == 0));
    if (!n_recipients)
        return;
    MkXml *xml = mk_stanza_xml(stanza);
    MkJid *from = mk_stanza_from(stanza);
    /* The shared part: the stanza without 'to', serialised once. */
    g_autoptr(MkXml) base = NULL;
    if (mk_xml_get_attr(xml, "to")) {
        static const char *const names[] = {"to"};
        static const char *const values[] = {NULL};
        base = mk_xml_copy_shallow_set(xml, names, values, 1);
    } else {
        base = mk_xml_ref(xml);
    }
    g_autoptr(MkWire) wire = mk_wire_new(base);
    for (guint i = 0; i < n_recipients; i++) {
        g_autoptr(MkStanza) copy = mk_stanza_new_addressed(base, from, recipients[i]);
        mk_stanza_set_wire(copy, wire);
        mk_router_route(copy, NULL);
    }
}
