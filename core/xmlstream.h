/* An XMPP stream parser: libxml2's SAX2 push parser building MkXml
 * stanzas (depth-1 children of <stream:stream>).
 *
 * Restrictions (RFC 6120 section 11.1): a DTD, entity declaration or
 * reference other than the five predefined ones, comment or processing
 * instruction is "restricted-xml" (the XML declaration is allowed); a
 * stanza larger than max_stanza input bytes or nested deeper than max_depth
 * (the stanza element itself is depth 1) is "policy-violation", and so is
 * a stream header or a run of bytes between stanzas longer than
 * max_stanza; an undeclared namespace prefix is "bad-namespace-prefix";
 * a first element that is not <stream> in the streams namespace is
 * "invalid-namespace" (also when only the name is wrong); anything else
 * malformed is "not-well-formed". The error callback runs exactly once;
 * after it the stream parser is dead (feed returns FALSE).
 *
 * Memory: between stanzas the parser can be released
 * (mk_xml_stream_release) and is re-created, primed with a copy of the
 * stream header, on the next bytes.
 *
 * Threads: a stream and its MkXmlShared belong to one thread. */
#pragma once

#include "mk-core.h"

typedef struct MkXmlStream MkXmlStream;

typedef struct {
    /* The <stream:stream> open tag (attributes only, no children).
     * (transfer none) The namespace declarations of the tag are given as
     * attributes too: "xmlns" holds the default namespace (e.g.
     * "jabber:client"; absent when none was declared) and "xmlns:PREFIX"
     * each prefixed one. mk_xml_write never writes an "xmlns" attribute. */
    void (*stream_start)(gpointer user_data, MkXml *header);
    /* A complete top-level element. (transfer full) */
    void (*stanza)(gpointer user_data, MkXml *stanza);
    /* </stream:stream> */
    void (*stream_end)(gpointer user_data);
    /* A stream error condition name ("not-well-formed", "restricted-xml",
     * "policy-violation", "invalid-namespace", "bad-namespace-prefix") and
     * a text for logs. */
    void (*error)(gpointer user_data, const char *condition, const char *text);
} MkXmlStreamCallbacks;

/* Per-worker shared parser state: the libxml2 dictionary of names and a
 * few reset parser contexts of finished streams, reused by new ones (a
 * login restarts its stream twice). One per thread, used on that thread;
 * each stream holds a reference, so mk_xml_shared_free (dropping the
 * creator's) may come before or after the streams are freed. The
 * dictionary is replaced by a fresh one once it holds many names, so that
 * peers sending random names cannot grow it forever. */
typedef struct MkXmlShared MkXmlShared;
MkXmlShared *mk_xml_shared_new(void);
void mk_xml_shared_free(MkXmlShared *shared);

/* A new stream parser. @shared may be NULL (the parser then has its own
 * dictionary); the stream keeps a reference to it. max_stanza 0 and
 * max_depth 0 mean no limit. (transfer full) */
MkXmlStream *mk_xml_stream_new(const MkXmlStreamCallbacks *cb, gpointer user_data,
                               MkXmlShared *shared, gsize max_stanza, guint max_depth);
/* Not from inside a callback of the same stream. */
void mk_xml_stream_free(MkXmlStream *xs);
/* Feeds bytes; callbacks run from inside. Returns FALSE once an error was
 * reported or the stream ended (the bytes are then ignored). */
gboolean mk_xml_stream_feed(MkXmlStream *xs, const char *data, gsize len);
/* Expect a fresh <stream:stream> (after STARTTLS and SASL success).
 * May be called between feeds or from inside the stanza callback: the
 * bytes that follow the current stanza (in this chunk and later ones) are
 * then parsed exactly as the start of a new stream. Also clears a
 * previous error or end. */
void mk_xml_stream_reset(MkXmlStream *xs);
/* TRUE when no stanza is half-read (releasing is then lossless; pending
 * whitespace keep-alives are dropped). */
gboolean mk_xml_stream_is_idle(MkXmlStream *xs);
/* Frees the libxml2 parser while idle (no-op otherwise); the next feed
 * re-creates it, primed with the stream header's namespace declarations. */
void mk_xml_stream_release(MkXmlStream *xs);

/* Continuing a stream in another parser (XEP-0198 resumption moves a
 * connection to another worker, whose parsers share another dictionary):
 * the open tag of the current stream header, or NULL before one was read.
 * (transfer full) (nullable) */
char *mk_xml_stream_dup_primer(MkXmlStream *xs);
/* On a fresh stream: parse as if the header @primer opened was read
 * already (no stream_start callback); the next bytes are stanzas. */
void mk_xml_stream_set_primer(MkXmlStream *xs, const char *primer);

/* Handing a stream over (XEP-0198 resumption moves a connection, and the
 * bytes a client pipelined after <resume/> must follow it): from inside
 * the stanza callback, stop parsing after the element just delivered.
 * No callback follows; the unparsed bytes after the element, those of
 * this feed and of later feeds, are kept as they are. */
void mk_xml_stream_hand_over(MkXmlStream *xs);
/* From inside the stanza callback: TRUE when bytes of the current feed
 * follow the element just delivered (a client pipelining), which a
 * hand-over would have to keep; FALSE when the element ended the input
 * so far. */
gboolean mk_xml_stream_has_more_input(MkXmlStream *xs);
/* After a hand-over (not from inside a callback): the bytes kept, and the
 * stream is usable again, continuing after the element as if released
 * (the next feed primes a new parser with the header). NULL when no
 * hand-over is pending. (transfer full) (nullable) */
GBytes *mk_xml_stream_take_rest(MkXmlStream *xs);

/* ---- core-internal helpers of core/xml.c (not for modules) ---------- */

/* One attribute for mk_xml_set_attrs: @prefix may be NULL, @value need not
 * be NUL-terminated. */
typedef struct {
    const char *prefix;
    const char *name;
    const char *value;
    gsize value_len;
} MkXmlAttrSpec;

/* Appends @value escaped for an attribute in single quotes, as
 * mk_xml_write writes attribute values (the fan-out's per-copy 'to'). */
void mk_xml_append_attr_value(GString *out, const char *value);

/* Replaces all attributes of @el (one allocation). @decode turns libxml2's
 * "&#38;" back into '&' (parser use only). */
void mk_xml_set_attrs(MkXml *el, const MkXmlAttrSpec *specs, guint n, gboolean decode);
/* The same with @n (at most 8) attributes set, NULL values removing
 * (as mk_xml_set_attr on the copy). Returns: (transfer full). Any thread. */
MkXml *mk_xml_copy_shallow_set(const MkXml *el, const char *const *names, const char *const *values,
                               guint n);
