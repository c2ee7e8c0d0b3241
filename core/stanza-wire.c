/* Parsing a whole wire form (fanout.h, mk_wire_new_whole) when someone
 * asks for the element of a stanza that came serialised from a node
 * link: one long-lived stream parser per thread, fed each stanza as a
 * child of one endless stream, so that no parser is made per stanza.
 *
 * Threads: each thread has its own parser (GPrivate), freed at its end. */
#include "fanout.h"
#include "xmlstream.h"

#include <string.h>

#define WIRE_HEADER                                                                                \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

typedef struct {
    MkXmlShared *shared;
    MkXmlStream *xs;
    MkXml *got; /* the element of the current feed */
    gboolean failed;
} WireParser;

static void wp_start(gpointer data, MkXml *header)
{
    (void)data;
    (void)header;
}

static void wp_stanza(gpointer data, MkXml *stanza)
{
    WireParser *wp = data;
    if (wp->got) /* more than one element: not a stanza's bytes */
        wp->failed = TRUE;
    else
        wp->got = mk_xml_ref(stanza);
    mk_xml_unref(stanza);
}

static void wp_end(gpointer data)
{
    ((WireParser *)data)->failed = TRUE;
}

static void wp_error(gpointer data, const char *condition, const char *text)
{
    (void)condition;
    (void)text;
    ((WireParser *)data)->failed = TRUE;
}

static const MkXmlStreamCallbacks wp_callbacks = {wp_start, wp_stanza, wp_end, wp_error};

static void wp_free(gpointer p)
{
    WireParser *wp = p;
    if (wp->xs)
        mk_xml_stream_free(wp->xs);
    mk_xml_shared_free(wp->shared);
    g_free(wp);
}

static GPrivate wire_parser = G_PRIVATE_INIT(wp_free);

/* See fanout.h. The calling thread's parser. */
MkXml *mk_wire_parse(const MkWire *w)
{
    WireParser *wp = g_private_get(&wire_parser);
    if (G_UNLIKELY(!wp)) {
        wp = g_new0(WireParser, 1);
        wp->shared = mk_xml_shared_new();
        g_private_set(&wire_parser, wp);
    }
    if (G_UNLIKELY(!wp->xs)) {
        wp->xs = mk_xml_stream_new(&wp_callbacks, wp, wp->shared, 0, 0);
        mk_xml_stream_feed(wp->xs, WIRE_HEADER, strlen(WIRE_HEADER));
    }
    gsize len;
    const char *bytes = mk_wire_bytes(w, &len);
    wp->got = NULL;
    wp->failed = FALSE;
    gboolean ok = mk_xml_stream_feed(wp->xs, bytes, len);
    MkXml *x = wp->got;
    wp->got = NULL;
    if (G_UNLIKELY(!ok || wp->failed || !x || !mk_xml_stream_is_idle(wp->xs))) {
        /* A parser in doubt is not reused. */
        g_clear_pointer(&wp->xs, mk_xml_stream_free);
        if (x)
            mk_xml_unref(x);
        return NULL;
    }
    return x;
}
