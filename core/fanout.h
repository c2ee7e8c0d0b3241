/* Shared serialisations of fanned-out stanzas (mk-fanout.h). A wire form
 * is the stanza serialised once without its 'to'; each copy's delivery to
 * a client writes it with that copy's 'to' spliced in after the element
 * name. */
#pragma once

#include "mk-core.h"

typedef struct MkWire MkWire;

/* Serialises @xml (an element with no 'to') for jabber:client streams.
 * Returns: (transfer full). Any thread. */
MkWire *mk_wire_new(const MkXml *xml);
/* A whole stanza as it came serialised for jabber:client (from a node
 * link): written out as it is, its 'to' included (mk_wire_write ignores
 * its @to). Copies @bytes. Returns: (transfer full). Any thread. */
MkWire *mk_wire_new_whole(const char *bytes, gsize len);
/* The bytes of @w (for a whole one: the stanza). (transfer none) */
const char *mk_wire_bytes(const MkWire *w, gsize *len);
/* The element's name (not NUL-terminated): its length. */
gsize mk_wire_name(const MkWire *w, const char **name);
/* The element of a whole @w, parsed by the calling thread's parser
 * (core/stanza-wire.c). Returns: (transfer full) (nullable) NULL when
 * the bytes are not one element. Any thread. */
MkXml *mk_wire_parse(const MkWire *w);
MkWire *mk_wire_ref(MkWire *w);
void mk_wire_unref(MkWire *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkWire, mk_wire_unref)
/* Bytes of the shared part, for sizing buffers. */
gsize mk_wire_len(const MkWire *w);
/* Appends the serialisation with to='@to' (nullable: none) to @out: the
 * bytes mk_xml_write would give for the copy, up to the order of its
 * attributes. Any thread. */
void mk_wire_write(const MkWire *w, const MkJid *to, GString *out);

/* Attaches @w (referenced) to @st, a copy made by the fan-out whose XML is
 * @w's element plus its 'to'. Before routing, by the copy's creator. */
void mk_stanza_set_wire(MkStanza *st, MkWire *w);
/* (transfer none) (nullable) Any thread. */
MkWire *mk_stanza_wire(const MkStanza *st);
/* A fan-out copy of @base (an element without 'to' whose 'from' is
 * @from) for @to, written out from @w (referenced). Its element with
 * 'to' is made only when mk_stanza_xml asks for it. (transfer none) of
 * the arguments; Returns: (transfer full). Any thread. */
MkStanza *mk_stanza_new_wire_copy(MkXml *base, MkJid *from, MkJid *to, MkWire *w);
/* Whether @st is a copy made by mk_stanza_new_wire_copy that shares its
 * base element (no element of its own until asked). Any thread. */
gboolean mk_stanza_wire_shares(const MkStanza *st);
/* Another copy like @first (mk_stanza_wire_shares) for @to: its base,
 * 'from', kind and wire, without looking at the element again.
 * (transfer none) of the arguments; Returns: (transfer full). Any
 * thread. */
MkStanza *mk_stanza_new_wire_sibling(const MkStanza *first, MkJid *to);
/* A stanza that arrived serialised (a node link's frame): @w (whole,
 * referenced) is what its recipient's stream gets, and its element is
 * parsed only when someone asks for it (mk_stanza_xml, _type, _id...),
 * once. @from/@to (referenced, nullable) must be the element's. Returns:
 * (transfer full). Any thread. */
MkStanza *mk_stanza_new_whole_wire(MkWire *w, MkJid *from, MkJid *to);
