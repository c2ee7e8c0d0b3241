/* The XMPP stream parser: libxml2's SAX2 push parser building MkXml
 * stanzas. See xmlstream.h for the contract.
 *
 * Positions: libxml2 reads UTF-8 without conversion (the encoding is fixed
 * and encoding declarations are ignored), so the parser's position
 * (input->consumed + cur - base) counts input bytes. `mark` is the
 * position where the last stanza (or the header, or text between stanzas)
 * ended; every byte past it belongs to the stanza being read, which bounds
 * a stanza, a start tag still waiting for its '>' and a text run alike.
 *
 * Reset from a callback: at an element's end callback libxml2's cursor
 * stands right after the closing '>', so the unparsed bytes [cur, end) of
 * its input buffer, followed by the rest of the current feed, are exactly
 * what the peer sent after that element. They are copied, the parser is
 * stopped, and once xmlParseChunk has returned they are fed to a fresh
 * parser as the start of the new stream. */
#include "xmlstream.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/dict.h>
#include <libxml/globals.h>
#include <string.h>

#define NS_STREAMS "http://etherx.jabber.org/streams"
/* Bytes handed to libxml2 at a time, so that the size limit is checked
 * before much more than max_stanza is buffered. */
#define FEED_SLICE 4096
/* libxml2 sizes a push parser's input buffer as 2 * xmlDefaultBufferSize
 * (4 KiB each by default); it grows on demand, so start small. */
#ifndef INPUT_BUFFER_SIZE
#define INPUT_BUFFER_SIZE 256
#endif
/* Past this many names the shared dictionary is replaced by a fresh one. */
#define DICT_MAX_NAMES 20000
/* Parser contexts a worker keeps for reuse (see take_spare). */
#define SPARES_MAX 16

struct MkXmlShared {
    /* The worker's, plus one per stream: a stream freed late (its last
     * reference dropped after the worker's state went) still gives its
     * context back to a live struct. */
    gatomicrefcount ref;
    xmlDictPtr dict;
    /* Contexts of finished streams, reset, on sh->dict. A new context
     * costs a fresh dictionary (freed at once for the shared one), its
     * stacks and a SAX handler copy; a login restarts its stream twice. */
    xmlParserCtxtPtr spares[SPARES_MAX];
    guint n_spares;
};

struct MkXmlStream {
    MkXmlStreamCallbacks cb;
    gpointer user_data;
    MkXmlShared *shared;
    gsize max_stanza;
    guint max_depth;
    guint top; /* depth of the elements delivered: 2, or 1 for documents */
    xmlParserCtxtPtr ctxt;
    guint depth;   /* open elements, the stream header included */
    MkXml **stack; /* stack[0] (owned) is the stanza being built */
    guint stack_cap;
    GString *text; /* text not yet attached to stack[depth - top] */
    char *primer;  /* the header, re-sent to a re-created parser */
    gsize fed;     /* bytes given to ctxt */
    gsize mark;    /* ctxt position where the current stanza began */
    char *carry;   /* bytes after a reset from inside a callback */
    gsize carry_len;
    gsize feed_left; /* in a feed: its bytes not yet given to ctxt */
    guint failed : 1;
    guint ended : 1;
    guint muted : 1; /* priming: the header callback stays silent */
    guint in_feed : 1;
    guint reset_pending : 1;
    guint handover : 1; /* with reset_pending: keep the carry for the caller */
    guint doc_mode : 1;
};

static gsize ctxt_pos(xmlParserCtxtPtr ctxt)
{
    return ctxt->input->consumed + (ctxt->input->cur - ctxt->input->base);
}

static gboolean active(MkXmlStream *xs)
{
    return !xs->failed && !xs->ended && !xs->reset_pending;
}

/* Reports the one error of this stream. @halt stops libxml2 (allowed from
 * SAX callbacks and between chunks, not from its error handler). */
static void fail(MkXmlStream *xs, const char *condition, const char *text, gboolean halt)
{
    if (xs->failed || xs->reset_pending)
        return;
    xs->failed = TRUE;
    if (halt && xs->ctxt)
        xmlStopParser(xs->ctxt);
    if (xs->cb.error)
        xs->cb.error(xs->user_data, condition, text);
}

static gboolean check_size(MkXmlStream *xs)
{
    if (xs->max_stanza && ctxt_pos(xs->ctxt) - xs->mark > xs->max_stanza) {
        fail(xs, "policy-violation", "stanza too large", TRUE);
        return FALSE;
    }
    return TRUE;
}

static void drop_partial(MkXmlStream *xs)
{
    if (xs->stack && xs->depth >= xs->top)
        mk_xml_unref(xs->stack[0]);
    if (xs->stack)
        xs->stack[0] = NULL;
    if (xs->text)
        g_string_truncate(xs->text, 0);
}

static void flush_text(MkXmlStream *xs)
{
    if (xs->text && xs->text->len) {
        mk_xml_add_text(xs->stack[xs->depth - xs->top], xs->text->str, xs->text->len);
        g_string_truncate(xs->text, 0);
    }
}

/* ---- the stream header ------------------------------------------------- */

static void append_attr_value(GString *s, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '&':
            g_string_append(s, "&amp;");
            break;
        case '<':
            g_string_append(s, "&lt;");
            break;
        case '\'':
            g_string_append(s, "&apos;");
            break;
        default:
            g_string_append_c(s, *v);
        }
    }
}

static void on_header(MkXmlStream *xs, const char *localname, const char *prefix, const char *uri,
                      int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                      const xmlChar **attributes)
{
    if (xs->muted) {
        xs->mark = ctxt_pos(xs->ctxt);
        return;
    }
    if (!uri || strcmp(uri, NS_STREAMS) != 0 || strcmp(localname, "stream") != 0) {
        fail(xs, "invalid-namespace", "the first element is not <stream:stream>", TRUE);
        return;
    }
    if (!check_size(xs))
        return;

    g_autoptr(MkXml) header = mk_xml_new(localname, uri);
    guint n = nb_attributes + nb_namespaces;
    g_autofree MkXmlAttrSpec *specs = g_new(MkXmlAttrSpec, MAX(n, 1));
    guint k = 0;
    for (int i = 0; i < nb_attributes; i++) {
        const xmlChar **a = attributes + 5 * i;
        specs[k++] = (MkXmlAttrSpec){(const char *)a[1], (const char *)a[0], (const char *)a[3],
                                     a[4] - a[3]};
    }
    /* The primer repeats the open tag with its namespace declarations. */
    GString *primer = g_string_sized_new(128);
    g_string_append_c(primer, '<');
    if (prefix) {
        g_string_append(primer, prefix);
        g_string_append_c(primer, ':');
    }
    g_string_append(primer, localname);
    for (int i = 0; i < nb_namespaces; i++) {
        const char *p = (const char *)namespaces[2 * i];
        const char *u = (const char *)namespaces[2 * i + 1];
        if (!u)
            u = "";
        specs[k++] = p ? (MkXmlAttrSpec){"xmlns", p, u, strlen(u)}
                       : (MkXmlAttrSpec){NULL, "xmlns", u, strlen(u)};
        g_string_append(primer, p ? " xmlns:" : " xmlns");
        if (p)
            g_string_append(primer, p);
        g_string_append(primer, "='");
        append_attr_value(primer, u);
        g_string_append_c(primer, '\'');
    }
    g_string_append_c(primer, '>');
    g_free(xs->primer);
    xs->primer = g_string_free(primer, FALSE);
    mk_xml_set_attrs(header, specs, k, TRUE);

    xs->mark = ctxt_pos(xs->ctxt);
    if (xs->cb.stream_start)
        xs->cb.stream_start(xs->user_data, header);
}

/* ---- SAX callbacks ----------------------------------------------------- */

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                     int nb_defaulted, const xmlChar **attributes)
{
    MkXmlStream *xs = ctx;
    if (!active(xs))
        return;
    if (xs->depth >= xs->top)
        flush_text(xs); /* text before this element belongs to its parent */
    xs->depth++;
    if (!xs->doc_mode && xs->depth == 1) {
        on_header(xs, (const char *)localname, (const char *)prefix, (const char *)uri,
                  nb_namespaces, namespaces, nb_attributes, attributes);
        return;
    }
    guint level = xs->depth - xs->top + 1; /* 1 = the stanza element */
    if (level == 1 && localname[0] == 's' && !xs->doc_mode &&
        strcmp((const char *)localname, "stream") == 0 && uri &&
        strcmp((const char *)uri, NS_STREAMS) == 0) {
        /* A stream header inside the open stream (not after a reset):
         * it would swallow every stanza until the size limit. */
        fail(xs, "unsupported-stanza-type", "a stream header inside the stream", TRUE);
        return;
    }
    if (xs->max_depth && level > xs->max_depth) {
        fail(xs, "policy-violation", "elements nested too deeply", TRUE);
        return;
    }
    if (!check_size(xs))
        return;

    MkXml *el = mk_xml_new((const char *)localname, (const char *)uri);
    if (nb_attributes) {
        MkXmlAttrSpec stack_specs[16];
        /* Room for a declaration per prefixed attribute. */
        guint cap = 2 * nb_attributes;
        MkXmlAttrSpec *specs =
            cap <= G_N_ELEMENTS(stack_specs) ? stack_specs : g_new(MkXmlAttrSpec, cap);
        guint k = 0;
        for (int i = 0; i < nb_attributes; i++) {
            const xmlChar **a = attributes + 5 * i;
            const char *p = (const char *)a[1];
            specs[k++] = (MkXmlAttrSpec){p, (const char *)a[0], (const char *)a[3], a[4] - a[3]};
            /* The serialiser writes default-namespace form only, so an
             * attribute's own prefix needs its declaration kept. */
            if (p && a[2] && strcmp(p, "xml") != 0) {
                gboolean seen = FALSE;
                for (guint j = 0; j < k; j++)
                    if (specs[j].prefix && g_str_equal(specs[j].prefix, "xmlns") &&
                        g_str_equal(specs[j].name, p))
                        seen = TRUE;
                if (!seen)
                    specs[k++] =
                        (MkXmlAttrSpec){"xmlns", p, (const char *)a[2], strlen((const char *)a[2])};
            }
        }
        mk_xml_set_attrs(el, specs, k, TRUE);
        if (specs != stack_specs)
            g_free(specs);
    }

    if (level > xs->stack_cap) {
        xs->stack_cap = MAX(level, xs->stack_cap ? xs->stack_cap * 2 : 8);
        xs->stack = g_renew(MkXml *, xs->stack, xs->stack_cap);
    }
    if (level > 1)
        mk_xml_append(xs->stack[level - 2], el); /* the parent owns it */
    xs->stack[level - 1] = el;
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    MkXmlStream *xs = ctx;
    if (!active(xs))
        return;
    if (xs->depth >= xs->top)
        flush_text(xs);
    if (xs->depth > xs->top) {
        xs->depth--;
        return;
    }
    if (xs->depth == xs->top) {
        MkXml *el = xs->stack[0];
        xs->stack[0] = NULL;
        xs->depth--;
        if (!check_size(xs)) {
            mk_xml_unref(el);
            return;
        }
        xs->mark = ctxt_pos(xs->ctxt);
        if (xs->cb.stanza)
            xs->cb.stanza(xs->user_data, el);
        else
            mk_xml_unref(el);
        return;
    }
    /* </stream:stream> */
    xs->depth = 0;
    xs->ended = TRUE;
    if (xs->cb.stream_end)
        xs->cb.stream_end(xs->user_data);
}

static void on_characters(void *ctx, const xmlChar *ch, int len)
{
    MkXmlStream *xs = ctx;
    if (!active(xs))
        return;
    if (xs->depth < xs->top) {
        /* Keep-alive whitespace between stanzas: not part of any stanza. */
        xs->mark = ctxt_pos(xs->ctxt);
        return;
    }
    if (!check_size(xs))
        return;
    if (!xs->text)
        xs->text = g_string_sized_new(MAX(len, 64));
    g_string_append_len(xs->text, (const char *)ch, len);
}

static void restricted(MkXmlStream *xs, const char *what)
{
    if (active(xs))
        fail(xs, "restricted-xml", what, TRUE);
}

static void on_comment(void *ctx, const xmlChar *value)
{
    restricted(ctx, "comment");
}

static void on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
    restricted(ctx, "processing instruction");
}

static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *external_id,
                               const xmlChar *system_id)
{
    restricted(ctx, "document type declaration");
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
    restricted(ctx, "entity declaration");
}

/* Called for every entity reference except the five predefined ones. */
static xmlEntityPtr on_get_entity(void *ctx, const xmlChar *name)
{
    restricted(ctx, "entity reference");
    return NULL;
}

static void on_error(void *ctx, xmlErrorPtr err)
{
    MkXmlStream *xs = ctx;
    if (!err || err->level < XML_ERR_ERROR || !active(xs))
        return;
    g_autofree char *msg = g_strchomp(g_strdup(err->message ? err->message : "parse error"));
    if (err->domain == XML_FROM_NAMESPACE && err->code == XML_NS_ERR_UNDEFINED_NAMESPACE)
        fail(xs, "bad-namespace-prefix", msg, FALSE);
    else
        fail(xs, "not-well-formed", msg, FALSE);
}

static xmlSAXHandler sax_handler = {
    .initialized = XML_SAX2_MAGIC,
    .startElementNs = on_start,
    .endElementNs = on_end,
    .characters = on_characters,
    .ignorableWhitespace = on_characters,
    .cdataBlock = on_characters,
    .comment = on_comment,
    .processingInstruction = on_pi,
    .internalSubset = on_internal_subset,
    .externalSubset = on_internal_subset,
    .entityDecl = on_entity_decl,
    .getEntity = on_get_entity,
    .getParameterEntity = on_get_entity,
    .serror = on_error,
};

/* ---- parser contexts --------------------------------------------------- */

static void init_libxml(void)
{
    static gsize once = 0;
    if (g_once_init_enter(&once)) {
        xmlInitParser();
        g_once_init_leave(&once, 1);
    }
}

static void free_spares(MkXmlShared *sh)
{
    while (sh->n_spares > 0)
        xmlFreeParserCtxt(sh->spares[--sh->n_spares]);
}

/* A reset context from the worker's spares, given a new push input for
 * @xs, or NULL. */
static xmlParserCtxtPtr take_spare(MkXmlStream *xs)
{
    MkXmlShared *sh = xs->shared;
    if (!sh || sh->n_spares == 0)
        return NULL;
    xmlParserCtxtPtr ctxt = sh->spares[--sh->n_spares];
    if (xmlCtxtResetPush(ctxt, NULL, 0, NULL, NULL) != 0) {
        xmlFreeParserCtxt(ctxt);
        return NULL;
    }
    ctxt->userData = xs;
    return ctxt;
}

/* Keeps @ctxt for another stream of this worker if there is room and it
 * still uses the current shared dictionary; frees it otherwise. */
static void give_back(MkXmlShared *sh, xmlParserCtxtPtr ctxt)
{
    if (sh && sh->n_spares < SPARES_MAX && ctxt->dict == sh->dict) {
        xmlCtxtReset(ctxt); /* drops the input buffers now */
        ctxt->userData = NULL;
        sh->spares[sh->n_spares++] = ctxt;
        return;
    }
    xmlFreeParserCtxt(ctxt);
}

/* Creates (or reuses) the libxml2 context; primes it with the header
 * when one was read before a release. FALSE (and the error reported) on
 * failure. */
static gboolean ensure_ctxt(MkXmlStream *xs)
{
    if (xs->ctxt)
        return TRUE;
#if LIBXML_VERSION < 21200
    int saved_size = xmlDefaultBufferSize;
    xmlDefaultBufferSize = INPUT_BUFFER_SIZE;
#endif
    xmlParserCtxtPtr ctxt = take_spare(xs);
    gboolean reused = ctxt != NULL;
    if (!reused)
        ctxt = xmlCreatePushParserCtxt(&sax_handler, xs, NULL, 0, NULL);
#if LIBXML_VERSION < 21200
    xmlDefaultBufferSize = saved_size;
#endif
    if (!ctxt) {
        fail(xs, "internal-server-error", "cannot create an XML parser", FALSE);
        return FALSE;
    }
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC | XML_PARSE_NOCDATA);
    xmlSwitchEncoding(ctxt, XML_CHAR_ENCODING_UTF8);
    if (xs->shared && !reused) {
        MkXmlShared *sh = xs->shared;
        if (xmlDictSize(sh->dict) > DICT_MAX_NAMES) {
            /* Parsers still using the old one hold their own reference. */
            free_spares(sh);
            xmlDictFree(sh->dict);
            sh->dict = xmlDictCreate();
        }
        xmlDictFree(ctxt->dict);
        ctxt->dict = sh->dict;
        xmlDictReference(ctxt->dict);
        /* Names the parser compares by pointer must come from its dict. */
        ctxt->str_xml = xmlDictLookup(ctxt->dict, BAD_CAST "xml", 3);
        ctxt->str_xmlns = xmlDictLookup(ctxt->dict, BAD_CAST "xmlns", 5);
        ctxt->str_xml_ns = xmlDictLookup(ctxt->dict, XML_XML_NAMESPACE, 36);
    }
    xs->ctxt = ctxt;
    xs->fed = 0;
    xs->mark = 0;
    xs->depth = 0;
    if (xs->primer) {
        gsize n = strlen(xs->primer);
        xs->muted = TRUE;
        xmlParseChunk(ctxt, xs->primer, n, 0);
        xs->muted = FALSE;
        xs->fed = n;
        if (xs->depth != 1 && active(xs))
            fail(xs, "internal-server-error", "cannot prime the XML parser", TRUE);
    }
    return active(xs);
}

static void free_ctxt(MkXmlStream *xs)
{
    drop_partial(xs);
    if (xs->ctxt) {
        give_back(xs->shared, xs->ctxt);
        xs->ctxt = NULL;
    }
    g_clear_pointer(&xs->stack, g_free);
    xs->stack_cap = 0;
    if (xs->text) {
        g_string_free(xs->text, TRUE);
        xs->text = NULL;
    }
}

/* Back to "expecting a stream header"; not while libxml2 runs. */
static void clear_stream(MkXmlStream *xs)
{
    free_ctxt(xs);
    g_clear_pointer(&xs->primer, g_free);
    xs->depth = 0;
    xs->fed = xs->mark = 0;
    xs->failed = xs->ended = xs->reset_pending = xs->handover = FALSE;
    g_clear_pointer(&xs->carry, g_free);
    xs->carry_len = 0;
}

/* ---- public API -------------------------------------------------------- */

/* (transfer full) Thread: the worker that will use it. */
MkXmlShared *mk_xml_shared_new(void)
{
    init_libxml();
    MkXmlShared *sh = g_new0(MkXmlShared, 1);
    g_atomic_ref_count_init(&sh->ref);
    sh->dict = xmlDictCreate();
    return sh;
}

/* @shared may be NULL. Thread: its worker. */
void mk_xml_shared_free(MkXmlShared *shared)
{
    if (!shared || !g_atomic_ref_count_dec(&shared->ref))
        return;
    free_spares(shared);
    xmlDictFree(shared->dict);
    g_free(shared);
}

static MkXmlStream *stream_new(const MkXmlStreamCallbacks *cb, gpointer user_data,
                               MkXmlShared *shared, gsize max_stanza, guint max_depth,
                               gboolean doc_mode)
{
    init_libxml();
    MkXmlStream *xs = g_new0(MkXmlStream, 1);
    xs->cb = *cb;
    xs->user_data = user_data;
    xs->shared = shared;
    if (shared)
        g_atomic_ref_count_inc(&shared->ref);
    xs->max_stanza = max_stanza;
    xs->max_depth = max_depth;
    xs->doc_mode = doc_mode;
    xs->top = doc_mode ? 1 : 2;
    return xs;
}

/* (transfer full) Thread: the one that feeds it. */
MkXmlStream *mk_xml_stream_new(const MkXmlStreamCallbacks *cb, gpointer user_data,
                               MkXmlShared *shared, gsize max_stanza, guint max_depth)
{
    g_return_val_if_fail(cb != NULL, NULL);
    return stream_new(cb, user_data, shared, max_stanza, max_depth, FALSE);
}

/* @xs may be NULL. Not from inside its callbacks. */
void mk_xml_stream_free(MkXmlStream *xs)
{
    if (!xs)
        return;
    g_return_if_fail(!xs->in_feed);
    clear_stream(xs);
    mk_xml_shared_free(xs->shared); /* the stream's reference */
    g_free(xs->carry);
    g_free(xs);
}

static void append_carry(MkXmlStream *xs, const char *data, gsize len)
{
    if (len == 0)
        return;
    xs->carry = g_realloc(xs->carry, xs->carry_len + len);
    memcpy(xs->carry + xs->carry_len, data, len);
    xs->carry_len += len;
}

/* Feeds @data to the current parser in slices. Returns how many bytes of
 * @data were given to libxml2 (all of them unless a reset was requested
 * from a callback; the caller then handles the rest). */
static gsize feed_slices(MkXmlStream *xs, const char *data, gsize len)
{
    gsize done = 0;
    if (!ensure_ctxt(xs))
        return len;
    while (done < len) {
        gsize n = MIN(len - done, FEED_SLICE);
        xs->feed_left = len - done - n;
        int rc = xmlParseChunk(xs->ctxt, data + done, (int)n, 0);
        xs->fed += n;
        done += n;
        if (xs->reset_pending)
            return done;
        if (!active(xs))
            return len;
        if (rc != XML_ERR_OK && !xs->ctxt->wellFormed) {
            fail(xs, "not-well-formed", "parse error", TRUE);
            return len;
        }
        /* Bytes past the last complete stanza (a partial one, a start
         * tag waiting for its '>', text...) are bounded too. */
        if (xs->max_stanza && xs->fed - xs->mark > xs->max_stanza) {
            fail(xs, "policy-violation", "stanza too large", TRUE);
            return len;
        }
    }
    return done;
}

/* Feeds bytes; callbacks run from inside. Returns FALSE once an error was
 * reported or the stream ended. Thread: the stream's. */
gboolean mk_xml_stream_feed(MkXmlStream *xs, const char *data, gsize len)
{
    g_return_val_if_fail(xs != NULL && !xs->in_feed, FALSE);
    if (xs->failed || xs->ended)
        return FALSE;
    if (xs->handover) {
        append_carry(xs, data, len); /* not ours to parse any more */
        return TRUE;
    }
    g_autofree char *owned = NULL;
    xs->in_feed = TRUE;
    while (len > 0) {
        gsize done = feed_slices(xs, data, len);
        if (!xs->reset_pending)
            break;
        /* A callback asked for a new stream: what followed the element
         * is the new stream's first bytes. */
        gsize rest = len - done;
        if (xs->handover) {
            /* The caller continues elsewhere: the rest waits with the
             * carry until mk_xml_stream_take_rest. */
            append_carry(xs, data + done, rest);
            break;
        }
        char *buf = g_malloc(xs->carry_len + rest + 1);
        if (xs->carry_len)
            memcpy(buf, xs->carry, xs->carry_len);
        if (rest)
            memcpy(buf + xs->carry_len, data + done, rest);
        len = xs->carry_len + rest;
        g_clear_pointer(&xs->carry, g_free);
        xs->carry_len = 0;
        clear_stream(xs);
        g_free(owned);
        owned = buf;
        data = buf;
    }
    xs->in_feed = FALSE;
    if (xs->reset_pending && !xs->handover) /* a reset with nothing left to feed */
        clear_stream(xs);
    return !(xs->failed || xs->ended);
}

/* Inside feed: keeps the unparsed bytes that follow the element just
 * delivered and stops libxml2; feed finishes the job once xmlParseChunk
 * has returned. */
static void stop_keeping_rest(MkXmlStream *xs)
{
    g_clear_pointer(&xs->carry, g_free);
    xs->carry_len = 0;
    if (xs->ctxt && !xs->failed && !xs->ended && xs->ctxt->input) {
        const xmlChar *cur = xs->ctxt->input->cur, *end = xs->ctxt->input->end;
        if (cur && end > cur) {
            xs->carry_len = end - cur;
            xs->carry = g_memdup2(cur, xs->carry_len);
        }
    }
    if (xs->ctxt)
        xmlStopParser(xs->ctxt);
    xs->reset_pending = TRUE;
}

/* Thread: the stream's; also from inside its callbacks. */
void mk_xml_stream_reset(MkXmlStream *xs)
{
    g_return_if_fail(xs != NULL);
    if (!xs->in_feed) {
        clear_stream(xs);
        return;
    }
    if (xs->reset_pending)
        return;
    stop_keeping_rest(xs);
}

/* Thread: the stream's; from inside the stanza callback only. */
void mk_xml_stream_hand_over(MkXmlStream *xs)
{
    g_return_if_fail(xs != NULL && xs->in_feed);
    if (xs->reset_pending || xs->failed || xs->ended)
        return;
    stop_keeping_rest(xs);
    xs->handover = TRUE;
}

/* Thread: the stream's; from inside the stanza callback. */
gboolean mk_xml_stream_has_more_input(MkXmlStream *xs)
{
    g_return_val_if_fail(xs != NULL, FALSE);
    if (!xs->in_feed || !xs->ctxt || !xs->ctxt->input)
        return FALSE;
    const xmlChar *cur = xs->ctxt->input->cur, *end = xs->ctxt->input->end;
    return (cur && end > cur) || xs->feed_left > 0;
}

/* Thread: the stream's; not from inside its callbacks. (transfer full) */
GBytes *mk_xml_stream_take_rest(MkXmlStream *xs)
{
    g_return_val_if_fail(xs != NULL && !xs->in_feed, NULL);
    if (!xs->handover)
        return NULL;
    GBytes *rest = g_bytes_new_take(g_steal_pointer(&xs->carry), xs->carry_len);
    xs->carry_len = 0;
    xs->handover = xs->reset_pending = FALSE;
    /* As after a release: the next feed re-creates a parser primed with
     * the header, and the stream goes on where the element ended. */
    free_ctxt(xs);
    xs->depth = 0;
    return rest;
}

/* Thread: the stream's. */
gboolean mk_xml_stream_is_idle(MkXmlStream *xs)
{
    g_return_val_if_fail(xs != NULL, FALSE);
    if (!xs->ctxt || xs->failed || xs->ended)
        return TRUE;
    if (xs->depth >= xs->top || xs->reset_pending)
        return FALSE;
    /* Unparsed bytes: only keep-alive whitespace may be dropped. */
    xmlParserInputPtr in = xs->ctxt->input;
    for (const xmlChar *p = in->cur; p < in->end; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            return FALSE;
    return TRUE;
}

/* Thread: the stream's; not from inside its callbacks. */
void mk_xml_stream_release(MkXmlStream *xs)
{
    g_return_if_fail(xs != NULL);
    if (xs->in_feed || !xs->ctxt || !mk_xml_stream_is_idle(xs))
        return;
    /* Before a header was read there is nothing to prime: the next
     * parser starts afresh. After the end or an error, nothing matters. */
    free_ctxt(xs);
    xs->depth = 0;
}

/* Thread: the stream's. (transfer full) (nullable) */
char *mk_xml_stream_dup_primer(MkXmlStream *xs)
{
    g_return_val_if_fail(xs != NULL, NULL);
    return g_strdup(xs->primer);
}

/* Thread: the stream's; before the first feed. */
void mk_xml_stream_set_primer(MkXmlStream *xs, const char *primer)
{
    g_return_if_fail(xs != NULL && !xs->ctxt && !xs->in_feed);
    g_free(xs->primer);
    xs->primer = g_strdup(primer);
}

/* ---- whole documents --------------------------------------------------- */

typedef struct {
    MkXml *root;
    char *condition;
    char *text;
} DocResult;

static void doc_stanza(gpointer user_data, MkXml *el)
{
    DocResult *r = user_data;
    if (r->root) /* libxml2 reports the extra content as an error too */
        mk_xml_unref(el);
    else
        r->root = el;
}

static void doc_error(gpointer user_data, const char *condition, const char *text)
{
    DocResult *r = user_data;
    r->condition = g_strdup(condition);
    r->text = g_strdup(text);
}

static const MkXmlStreamCallbacks doc_callbacks = {
    .stanza = doc_stanza,
    .error = doc_error,
};

static GQuark mk_xml_error_quark(void)
{
    return g_quark_from_static_string("mk-xml-error-quark");
}

/* Parses one complete document with the stream restrictions (no DTD,
 * entities, comments or PIs). Returns: (transfer full) (nullable) the
 * root element, or NULL with an error "CONDITION: text". Any thread. */
MkXml *mk_xml_parse(const char *text, gssize len, GError **error)
{
    g_return_val_if_fail(text != NULL, NULL);
    gsize n = len < 0 ? strlen(text) : (gsize)len;
    DocResult r = {0};
    MkXmlStream *xs = stream_new(&doc_callbacks, &r, NULL, 0, 0, TRUE);
    mk_xml_stream_feed(xs, text, n);
    if (!xs->failed && ensure_ctxt(xs)) {
        xs->in_feed = TRUE;
        xmlParseChunk(xs->ctxt, NULL, 0, 1);
        xs->in_feed = FALSE;
        if (!xs->failed && !xs->ctxt->wellFormed)
            fail(xs, "not-well-formed", "parse error", FALSE);
    }
    if (!r.condition && !r.root)
        doc_error(&r, "not-well-formed", "no root element");
    mk_xml_stream_free(xs);
    if (r.condition) {
        g_set_error(error, mk_xml_error_quark(), 0, "%s: %s", r.condition, r.text ? r.text : "");
        g_clear_pointer(&r.root, mk_xml_unref);
    }
    g_free(r.condition);
    g_free(r.text);
    return r.root;
}

/* ---- stanzas one at a time (mk-xml.h) ---------------------------------- */

struct MkXmlParser {
    MkXmlStream *xs; /* NULL: made on the next parse */
    DocResult r;
};

#define PARSER_HEADER                                                                              \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

static void parser_stanza(gpointer user_data, MkXml *el)
{
    DocResult *r = user_data;
    if (r->root && !r->condition) {
        r->condition = g_strdup("not-well-formed");
        r->text = g_strdup("more than one element");
    }
    if (r->root)
        mk_xml_unref(el);
    else
        r->root = el;
}

static const MkXmlStreamCallbacks parser_callbacks = {
    .stanza = parser_stanza,
    .error = doc_error,
};

/* (transfer full) Thread: the caller's. */
MkXmlParser *mk_xml_parser_new(void)
{
    return g_new0(MkXmlParser, 1);
}

void mk_xml_parser_free(MkXmlParser *p)
{
    if (!p)
        return;
    if (p->xs)
        mk_xml_stream_free(p->xs);
    g_free(p);
}

/* Feeds @text after the stream header read once; one stanza comes back
 * whole, or the context is dropped (a half-read element would swallow
 * the next call's bytes). Thread: the parser's. */
MkXml *mk_xml_parser_parse(MkXmlParser *p, const char *text, gsize len, GError **error)
{
    g_return_val_if_fail(p != NULL && text != NULL, NULL);
    DocResult *r = &p->r;
    if (!p->xs) {
        p->xs = mk_xml_stream_new(&parser_callbacks, r, NULL, 0, 0);
        mk_xml_stream_feed(p->xs, PARSER_HEADER, strlen(PARSER_HEADER));
    }
    gboolean fed = mk_xml_stream_feed(p->xs, text, len);
    if (!r->condition && (!fed || !r->root || !mk_xml_stream_is_idle(p->xs)))
        doc_error(r, "not-well-formed", r->root ? "trailing bytes" : "no complete element");
    MkXml *root = g_steal_pointer(&r->root);
    if (r->condition) {
        g_set_error(error, mk_xml_error_quark(), 0, "%s: %s", r->condition, r->text ? r->text : "");
        g_clear_pointer(&root, mk_xml_unref);
        mk_xml_stream_free(p->xs);
        p->xs = NULL;
    }
    g_clear_pointer(&r->condition, g_free);
    g_clear_pointer(&r->text, g_free);
    return root;
}
