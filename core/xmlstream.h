/* An XMPP stream parser: libxml2's SAX2 push parser building MkXml
 * stanzas (depth-1 children of <stream:stream>).
 *
 * Restrictions (RFC 6120 section 11): a DTD, entity declaration or
 * reference other than the five predefined ones, comment or processing
 * instruction is "restricted-xml"; a stanza larger than max_stanza bytes
 * or deeper than max_depth is "policy-violation"; anything malformed is
 * "not-well-formed". After an error the stream parser is dead.
 *
 * Memory: between stanzas the parser can be released (mk_xml_stream_idle)
 * and is re-created, primed with the stream header, on the next bytes. */
#pragma once

#include "mk-core.h"

typedef struct MkXmlStream MkXmlStream;

typedef struct {
    /* The <stream:stream> open tag (attributes only, no children). (transfer none) */
    void (*stream_start)(gpointer user_data, MkXml *header);
    /* A complete top-level element. (transfer full) */
    void (*stanza)(gpointer user_data, MkXml *stanza);
    /* </stream:stream> */
    void (*stream_end)(gpointer user_data);
    /* A stream error condition name ("not-well-formed", "restricted-xml",
     * "policy-violation", "invalid-namespace", ...) and a text for logs. */
    void (*error)(gpointer user_data, const char *condition, const char *text);
} MkXmlStreamCallbacks;

/* Per-worker shared parser state (the libxml2 dictionary). One per
 * thread; free it on that thread after its streams. */
typedef struct MkXmlShared MkXmlShared;
MkXmlShared *mk_xml_shared_new(void);
void mk_xml_shared_free(MkXmlShared *shared);

/* @shared may be NULL. */
MkXmlStream *mk_xml_stream_new(const MkXmlStreamCallbacks *cb, gpointer user_data,
                               MkXmlShared *shared, gsize max_stanza, guint max_depth);
void mk_xml_stream_free(MkXmlStream *xs);
/* Feeds bytes; callbacks run from inside. FALSE once an error was reported
 * (or the stream ended). Callbacks may call mk_xml_stream_reset/free only
 * through a deferred path: mark and act after feed returns. */
gboolean mk_xml_stream_feed(MkXmlStream *xs, const char *data, gsize len);
/* Expect a fresh <stream:stream> (after STARTTLS and SASL success). */
void mk_xml_stream_reset(MkXmlStream *xs);
/* TRUE when no stanza is half-read (releasing is then lossless). */
gboolean mk_xml_stream_is_idle(MkXmlStream *xs);
/* Frees the libxml2 parser while idle; the next feed re-primes it. */
void mk_xml_stream_release(MkXmlStream *xs);
