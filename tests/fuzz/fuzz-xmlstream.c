/* libFuzzer target for the XMPP stream parser (not built by default).
 *
 * Build from a configured build directory (for config.h and mk-version.h),
 * compiling the four sources it needs with the sanitizers, and run:
 *
 *   S=/path/to/source
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -I$S/core -I$S/plugins-api -Iplugins-api -I. \
 *     $(pkg-config --cflags glib-2.0 libxml-2.0) \
 *     $S/tests/fuzz/fuzz-xmlstream.c $S/core/xml.c $S/core/xmlstream.c \
 *     $S/core/jid.c $S/core/stanza.c \
 *     $(pkg-config --libs glib-2.0 libxml-2.0 libidn) -o fuzz-xmlstream
 *   ./fuzz-xmlstream -max_len=2048 CORPUS_DIR
 *
 * The first input byte chooses how the rest is cut into feeds and whether
 * the parser is released or reset between them, so chunking, release and
 * reset paths are all explored. Every stanza is serialised and wrapped in
 * a stanza, exercising the tree, the serialiser and JID preparation. */
#include "xmlstream.h"

#include <stdint.h>

typedef struct {
    MkXmlStream *xs;
    unsigned errors;
    gboolean reset_next;
} Fz;

static void fz_start(gpointer user_data, MkXml *header)
{
    g_autofree char *s = mk_xml_to_string(header, NULL);
}

static void fz_stanza(gpointer user_data, MkXml *el)
{
    Fz *f = user_data;
    g_autofree char *s = mk_xml_to_string(el, "jabber:client");
    g_autoptr(MkStanza) st = mk_stanza_new(el, NULL);
    if (st) {
        g_autoptr(MkStanza) r = mk_stanza_new_error_reply(st, MK_ERR_BAD_REQUEST, "x");
    }
    if (f->reset_next) {
        mk_xml_stream_reset(f->xs);
        f->errors = 0; /* a new stream may have its own error */
    }
    mk_xml_unref(el);
}

static void fz_end(gpointer user_data)
{
}

static void fz_error(gpointer user_data, const char *condition, const char *text)
{
    Fz *f = user_data;
    if (++f->errors > 1)
        __builtin_trap(); /* errors are reported once */
}

static const MkXmlStreamCallbacks fz_cb = {fz_start, fz_stanza, fz_end, fz_error};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    Fz f = {0};
    f.reset_next = (mode & 0x80) != 0;
    f.xs = mk_xml_stream_new(&fz_cb, &f, NULL, 2048, 16);
    size_t step = (mode & 0x3f) + 1;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        mk_xml_stream_feed(f.xs, (const char *)data + off, n);
        if (mode & 0x40)
            mk_xml_stream_release(f.xs);
    }
    mk_xml_stream_free(f.xs);

    g_autoptr(MkXml) doc = mk_xml_parse((const char *)data, size, NULL);
    return 0;
}
