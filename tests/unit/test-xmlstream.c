/* The XMPP stream parser: delivery, restrictions, release/prime, reset,
 * hand-over. */
#include "xmlstream.h"

#include <malloc.h>
#include <string.h>

#define HDR                                                                                        \
    "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en' "            \
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

typedef struct {
    MkXmlStream *xs;
    GPtrArray *events;
    guint errors;
    guint errors_since_reset; /* must never exceed 1 */
    char *reset_after;        /* reset from inside the stanza callback after this element */
    char *hand_over_after;    /* hand the stream over after this element */
    GString *more;            /* mk_xml_stream_has_more_input after each stanza: '1'/'0' */
} Rec;

static void rec_start(gpointer user_data, MkXml *header)
{
    Rec *r = user_data;
    g_ptr_array_add(r->events,
                    g_strdup_printf("start to=%s ns=%s lang=%s", mk_xml_get_attr(header, "to"),
                                    mk_xml_get_attr(header, "xmlns"),
                                    mk_xml_get_attr(header, "xml:lang")));
}

static void rec_stanza(gpointer user_data, MkXml *el)
{
    Rec *r = user_data;
    g_ptr_array_add(r->events, mk_xml_to_string(el, "jabber:client"));
    if (r->more)
        g_string_append_c(r->more, mk_xml_stream_has_more_input(r->xs) ? '1' : '0');
    if (r->reset_after && mk_xml_is(el, r->reset_after, NULL))
        mk_xml_stream_reset(r->xs);
    if (r->hand_over_after && mk_xml_is(el, r->hand_over_after, NULL))
        mk_xml_stream_hand_over(r->xs);
    mk_xml_unref(el);
}

static void rec_end(gpointer user_data)
{
    Rec *r = user_data;
    g_ptr_array_add(r->events, g_strdup("end"));
}

static void rec_error(gpointer user_data, const char *condition, const char *text)
{
    Rec *r = user_data;
    r->errors++;
    g_assert_cmpuint(++r->errors_since_reset, ==, 1);
    g_ptr_array_add(r->events, g_strdup_printf("error:%s", condition));
}

static const MkXmlStreamCallbacks rec_cb = {rec_start, rec_stanza, rec_end, rec_error};

static Rec *rec_new(MkXmlShared *shared, gsize max_stanza, guint max_depth)
{
    Rec *r = g_new0(Rec, 1);
    r->events = g_ptr_array_new_with_free_func(g_free);
    r->xs = mk_xml_stream_new(&rec_cb, r, shared, max_stanza, max_depth);
    return r;
}

static void rec_free(Rec *r)
{
    mk_xml_stream_free(r->xs);
    g_ptr_array_unref(r->events);
    g_free(r);
}

static char *rec_joined(Rec *r)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < r->events->len; i++) {
        if (i)
            g_string_append_c(s, '|');
        g_string_append(s, r->events->pdata[i]);
    }
    return g_string_free(s, FALSE);
}

static void feed_bytewise(MkXmlStream *xs, const char *s)
{
    for (; *s; s++)
        mk_xml_stream_feed(xs, s, 1);
}

#define BODY                                                                                       \
    HDR " <message to='a@b' id='1'><body>hi &amp; &lt;bye&gt; &#x41;</body></message>\n"           \
        "<iq type='get' id='2'><query xmlns='jabber:iq:roster'/></iq> "                            \
        "<presence><x:foo xmlns:x='urn:a'><x:bar/></x:foo></presence></stream:stream>"
#define EXPECTED                                                                                   \
    "start to=example.com ns=jabber:client lang=en|"                                               \
    "<message to='a@b' id='1'><body>hi &amp; &lt;bye&gt; A</body></message>|"                      \
    "<iq type='get' id='2'><query xmlns='jabber:iq:roster'/></iq>|"                                \
    "<presence><foo xmlns='urn:a'><bar/></foo></presence>|end"

static void test_one_chunk(void)
{
    Rec *r = rec_new(NULL, 65536, 64);
    g_assert_false(mk_xml_stream_feed(r->xs, BODY, strlen(BODY))); /* ended */
    g_autofree char *got = rec_joined(r);
    g_assert_cmpstr(got, ==, EXPECTED);
    rec_free(r);
}

static void test_bytewise(void)
{
    MkXmlShared *sh = mk_xml_shared_new();
    Rec *r = rec_new(sh, 65536, 64);
    feed_bytewise(r->xs, BODY);
    g_autofree char *got = rec_joined(r);
    g_assert_cmpstr(got, ==, EXPECTED);
    rec_free(r);
    mk_xml_shared_free(sh);
}

static void test_attr_escapes(void)
{
    Rec *r = rec_new(NULL, 0, 0);
    const char *in = HDR "<message id='a&amp;b&apos;&quot;&lt;&#38;#38;' "
                         "xmlns:q='urn:q' q:x='1' xml:lang='fr'/>";
    g_assert_true(mk_xml_stream_feed(r->xs, in, strlen(in)));
    g_assert_cmpuint(r->events->len, ==, 2);
    g_assert_cmpstr(r->events->pdata[1], ==,
                    "<message id='a&amp;b&apos;&quot;&lt;&amp;#38;' q:x='1' xmlns:q='urn:q' "
                    "xml:lang='fr'/>");
    rec_free(r);
}

/* Each restricted or malformed input: exactly one error, with @cond, and
 * nothing after it even when more bytes come. */
static void expect_error(const char *input, const char *cond, gsize max_stanza, guint max_depth,
                         gboolean bytewise)
{
    Rec *r = rec_new(NULL, max_stanza, max_depth);
    if (bytewise)
        feed_bytewise(r->xs, input);
    else
        mk_xml_stream_feed(r->xs, input, strlen(input));
    const char *more = "<message><body>x</body></message><iq/>";
    g_assert_false(mk_xml_stream_feed(r->xs, more, strlen(more)));
    g_assert_cmpuint(r->errors, ==, 1);
    g_autofree char *want = g_strdup_printf("error:%s", cond);
    g_assert_cmpstr(r->events->pdata[r->events->len - 1], ==, want);
    g_assert_true(mk_xml_stream_is_idle(r->xs));
    rec_free(r);
}

static void test_restrictions(void)
{
    static const struct {
        const char *in;
        const char *cond;
    } cases[] = {
        {"<?xml version='1.0'?><!DOCTYPE stream:stream>" HDR, "restricted-xml"},
        {"<!DOCTYPE stream:stream [<!ENTITY x 'y'>]>" HDR, "restricted-xml"},
        {"<!DOCTYPE stream:stream [<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>" HDR
         "<message>&ext;</message>",
         "restricted-xml"},
        {HDR "<message><body>&foo;</body></message>", "restricted-xml"},
        {HDR "<message to='&foo;'/>", "restricted-xml"},
        {HDR "<message><!-- hi --></message>", "restricted-xml"},
        {"<!-- hi -->" HDR, "restricted-xml"},
        {HDR "<!-- between -->", "restricted-xml"},
        {HDR "<message><?pi data?></message>", "restricted-xml"},
        {HDR "<?pi data?>", "restricted-xml"},
        {HDR "<message></iq>", "not-well-formed"},
        {HDR "<message a='1' a='2'/>", "not-well-formed"},
        {HDR "<message><<</message>", "not-well-formed"},
        {HDR "<message>&#0;</message>", "not-well-formed"},
        {HDR "<message a=1/>", "not-well-formed"},
        {HDR "<x:message/>", "bad-namespace-prefix"},
        {"<stream:stream xmlns:stream='urn:wrong'>", "invalid-namespace"},
        {"<stream xmlns='jabber:client'>", "invalid-namespace"},
        {"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace"},
        {"garbage", "not-well-formed"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_message("case %u: %s", i, cases[i].in);
        expect_error(cases[i].in, cases[i].cond, 65536, 64, FALSE);
        expect_error(cases[i].in, cases[i].cond, 65536, 64, TRUE);
    }
}

static void test_limits(void)
{
    /* Depth: the stanza element is depth 1. */
    Rec *r = rec_new(NULL, 65536, 3);
    const char *ok = HDR "<message><a><b/></a></message>";
    g_assert_true(mk_xml_stream_feed(r->xs, ok, strlen(ok)));
    g_assert_cmpuint(r->events->len, ==, 2);
    rec_free(r);
    expect_error(HDR "<message><a><b><c/></b></a></message>", "policy-violation", 65536, 3, FALSE);

    /* Size: a stanza bigger than the limit, in one chunk and bytewise. */
    GString *big = g_string_new(HDR "<message><body>");
    for (int i = 0; i < 300; i++)
        g_string_append_c(big, 'x');
    g_string_append(big, "</body></message>");
    expect_error(big->str, "policy-violation", 200, 64, FALSE);
    expect_error(big->str, "policy-violation", 200, 64, TRUE);
    /* A start tag that never ends, a text run, an oversized header. */
    GString *tag = g_string_new(HDR "<message to='");
    for (int i = 0; i < 10000; i++)
        g_string_append_c(tag, 'y');
    expect_error(tag->str, "policy-violation", 1000, 64, FALSE);
    expect_error(tag->str, "policy-violation", 1000, 64, TRUE);
    g_string_free(tag, TRUE);
    expect_error(HDR, "policy-violation", 60, 64, FALSE);

    /* Many stanzas, each under the limit, in one chunk: fine. */
    r = rec_new(NULL, 200, 64);
    GString *many = g_string_new(HDR);
    for (int i = 0; i < 100; i++)
        g_string_append_printf(many, "<message id='%d'><body>hello</body></message> ", i);
    g_assert_true(mk_xml_stream_feed(r->xs, many->str, many->len));
    g_assert_cmpuint(r->errors, ==, 0);
    g_assert_cmpuint(r->events->len, ==, 101);
    g_string_free(many, TRUE);
    rec_free(r);
    g_string_free(big, TRUE);
}

static void test_release(void)
{
    MkXmlShared *sh = mk_xml_shared_new();
    Rec *r = rec_new(sh, 65536, 64);
    const char *hdr = "<stream:stream xmlns='jabber:server' xmlns:stream="
                      "'http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>";
    g_assert_true(mk_xml_stream_feed(r->xs, hdr, strlen(hdr)));
    g_assert_true(mk_xml_stream_is_idle(r->xs));
    mk_xml_stream_release(r->xs);
    const char *parts[] = {
        "<message id='1'/>",
        " ",
        "<db:result from='a' to='b'>key</db:result>",
        "<iq id='2'><q xmlns='urn:x'><r/></q></iq>",
        "\n",
    };
    for (guint i = 0; i < G_N_ELEMENTS(parts); i++) {
        g_assert_true(mk_xml_stream_feed(r->xs, parts[i], strlen(parts[i])));
        g_assert_true(mk_xml_stream_is_idle(r->xs));
        mk_xml_stream_release(r->xs);
    }
    /* Half a stanza: not idle, release is a no-op, the rest completes it. */
    g_assert_true(mk_xml_stream_feed(r->xs, "<presence><sh", 13));
    g_assert_false(mk_xml_stream_is_idle(r->xs));
    mk_xml_stream_release(r->xs);
    g_assert_true(mk_xml_stream_feed(r->xs, "ow>away</show></presence>", 25));
    mk_xml_stream_release(r->xs);
    g_assert_false(mk_xml_stream_feed(r->xs, "</stream:stream>", 16));
    g_autofree char *got = rec_joined(r);
    g_assert_cmpstr(got, ==,
                    "start to=(null) ns=jabber:server lang=(null)|"
                    "<message xmlns='jabber:server' id='1'/>|"
                    "<result xmlns='jabber:server:dialback' from='a' to='b'>key</result>|"
                    "<iq xmlns='jabber:server' id='2'><q xmlns='urn:x'><r/></q></iq>|"
                    "<presence xmlns='jabber:server'><show>away</show></presence>|end");
    rec_free(r);
    mk_xml_shared_free(sh);
}

static void test_reset_in_callback(void)
{
    const char *in = HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
                         "<stream:stream to='second' xmlns='jabber:client' "
                         "xmlns:stream='http://etherx.jabber.org/streams'><iq id='x'/>";
    const char *want = "start to=example.com ns=jabber:client lang=en|"
                       "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>|"
                       "start to=second ns=jabber:client lang=(null)|<iq id='x'/>";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        Rec *r = rec_new(NULL, 65536, 64);
        r->reset_after = "auth";
        if (bytewise)
            feed_bytewise(r->xs, in);
        else
            g_assert_true(mk_xml_stream_feed(r->xs, in, strlen(in)));
        g_autofree char *got = rec_joined(r);
        g_assert_cmpstr(got, ==, want);
        g_assert_cmpuint(r->errors, ==, 0);
        rec_free(r);
    }
}

static void test_reset_between_feeds(void)
{
    Rec *r = rec_new(NULL, 65536, 64);
    g_assert_true(mk_xml_stream_feed(r->xs, HDR "<starttls/>", strlen(HDR "<starttls/>")));
    mk_xml_stream_reset(r->xs);
    /* A new stream, with its own XML declaration, after the reset. */
    g_assert_true(mk_xml_stream_feed(r->xs, HDR "<iq id='y'/>", strlen(HDR "<iq id='y'/>")));
    g_autofree char *got = rec_joined(r);
    g_assert_cmpstr(got, ==,
                    "start to=example.com ns=jabber:client lang=en|<starttls/>|"
                    "start to=example.com ns=jabber:client lang=en|<iq id='y'/>");
    rec_free(r);
}

/* XEP-0198 resumption on another worker: the parser stops after
 * <resume/>; what followed it (a whole stanza, half of one, and a later
 * feed) is kept unparsed and continues in a new parser primed with the
 * header, or in the same stream after take_rest. */
static void test_hand_over(void)
{
    const char *in = HDR "<resume xmlns='urn:xmpp:sm:3' h='1' previd='x'/>"
                         "<message id='a'><body>1</body></message><message id='b'><bo";
    const char *later = "dy>2</body></message>";
    const char *rest_want = "<message id='a'><body>1</body></message><message id='b'><body>2</body>"
                            "</message>";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        for (int same = 0; same < 2; same++) {
            Rec *r = rec_new(NULL, 65536, 64);
            r->hand_over_after = "resume";
            if (bytewise)
                feed_bytewise(r->xs, in);
            else
                g_assert_true(mk_xml_stream_feed(r->xs, in, strlen(in)));
            g_assert_true(mk_xml_stream_feed(r->xs, later, strlen(later)));
            g_autofree char *got = rec_joined(r);
            g_assert_cmpstr(got, ==,
                            "start to=example.com ns=jabber:client lang=en|"
                            "<resume xmlns='urn:xmpp:sm:3' h='1' previd='x'/>");
            g_assert_false(mk_xml_stream_is_idle(r->xs)); /* not released meanwhile */
            g_autoptr(GBytes) rest = mk_xml_stream_take_rest(r->xs);
            gsize n;
            const char *data = g_bytes_get_data(rest, &n);
            g_assert_cmpmem(data, n, rest_want, strlen(rest_want));
            g_assert_null(mk_xml_stream_take_rest(r->xs));

            Rec *to = r;
            if (!same) {
                /* Another worker's parser, with its own dictionary. */
                MkXmlShared *sh = mk_xml_shared_new();
                to = rec_new(sh, 65536, 64);
                g_autofree char *primer = mk_xml_stream_dup_primer(r->xs);
                mk_xml_stream_set_primer(to->xs, primer);
                g_assert_true(mk_xml_stream_feed(to->xs, data, n));
                g_assert_true(mk_xml_stream_feed(to->xs, "<iq id='c'/>", 12));
                g_autofree char *moved = rec_joined(to);
                g_assert_cmpstr(moved, ==,
                                "<message id='a'><body>1</body></message>|"
                                "<message id='b'><body>2</body></message>|<iq id='c'/>");
                rec_free(to);
                mk_xml_shared_free(sh);
            } else {
                g_assert_true(mk_xml_stream_feed(r->xs, data, n));
                g_autofree char *all = rec_joined(r);
                g_assert_cmpstr(all, ==,
                                "start to=example.com ns=jabber:client lang=en|"
                                "<resume xmlns='urn:xmpp:sm:3' h='1' previd='x'/>|"
                                "<message id='a'><body>1</body></message>|"
                                "<message id='b'><body>2</body></message>");
            }
            g_assert_cmpuint(r->errors, ==, 0);
            rec_free(r);
        }
    }
}

/* Whether bytes follow an element in the same feed (c2s hands the
 * stream over only then): in one chunk, yes after each element but the
 * last; fed byte by byte, never; after a feed that ends with an element,
 * no; with more than a feed slice of input, yes. */
static void test_has_more_input(void)
{
    const char *in = HDR "<a/><b/><c/>";
    Rec *r = rec_new(NULL, 65536, 64);
    r->more = g_string_new(NULL);
    g_assert_true(mk_xml_stream_feed(r->xs, in, strlen(in)));
    g_assert_cmpstr(r->more->str, ==, "110");
    g_assert_false(mk_xml_stream_has_more_input(r->xs)); /* outside a feed */
    g_string_truncate(r->more, 0);
    feed_bytewise(r->xs, "<d/><e/>");
    g_assert_cmpstr(r->more->str, ==, "00");
    g_string_truncate(r->more, 0);
    GString *big = g_string_new("<f/>");
    while (big->len < 20000)
        g_string_append(big, "<g/>");
    g_assert_true(mk_xml_stream_feed(r->xs, big->str, big->len));
    g_assert_cmpint(r->more->str[0], ==, '1');
    g_assert_cmpint(r->more->str[r->more->len - 1], ==, '0');
    g_string_free(big, TRUE);
    g_string_free(r->more, TRUE);
    rec_free(r);
}

/* Memory per idle stream, with and without release (printed; only the
 * ordering is asserted, the figures depend on the allocator). */
static void test_memory(void)
{
#ifdef __SANITIZE_ADDRESS__
    /* ASan's allocator does not feed mallinfo2(): nothing to compare. */
    g_test_skip("mallinfo2() is blind under AddressSanitizer");
    return;
#endif
    enum { N = 2000 };
    MkXmlShared *sh = mk_xml_shared_new();
    Rec *recs[N];
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < N; i++) {
        recs[i] = rec_new(sh, 65536, 64);
        g_assert_true(mk_xml_stream_feed(recs[i]->xs, HDR, strlen(HDR)));
        const char *st = "<presence/>";
        g_assert_true(mk_xml_stream_feed(recs[i]->xs, st, strlen(st)));
        g_ptr_array_set_size(recs[i]->events, 0);
        g_ptr_array_set_size(recs[i]->events, 0);
    }
    struct mallinfo2 m1 = mallinfo2();
    for (int i = 0; i < N; i++)
        mk_xml_stream_release(recs[i]->xs);
    struct mallinfo2 m2 = mallinfo2();
    double held = (double)(m1.uordblks - m0.uordblks) / N;
    double released = (double)(m2.uordblks - m0.uordblks) / N;
    g_test_message("bytes per idle stream (incl. the test's recorder): %.0f parsed, %.0f released",
                   held, released);
    g_printerr("# bytes per idle stream: %.0f with a parser, %.0f released\n", held, released);
    g_assert_cmpfloat(released, <, held);
    /* Still working after the release. */
    g_assert_true(mk_xml_stream_feed(recs[0]->xs, "<message/>", 10));
    g_assert_cmpuint(recs[0]->events->len, ==, 1);
    for (int i = 0; i < N; i++)
        rec_free(recs[i]);
    mk_xml_shared_free(sh);
}

/* The same stream cut at random places, with releases in between, gives
 * the same events; random corruption gives at most one error and never a
 * crash (run under valgrind or ASan to make that meaningful). */
static void test_random_chunks(void)
{
    MkXmlShared *sh = mk_xml_shared_new();
    GRand *rand = g_rand_new_with_seed(42);
    const gsize len = strlen(BODY);
    for (int iter = 0; iter < 300; iter++) {
        Rec *r = rec_new(sh, 65536, 64);
        for (gsize off = 0; off < len;) {
            gsize want = g_rand_int_range(rand, 1, 40); /* MIN evaluates twice */
            gsize n = MIN(len - off, want);
            mk_xml_stream_feed(r->xs, BODY + off, n);
            off += n;
            if (g_rand_boolean(rand))
                mk_xml_stream_release(r->xs);
        }
        g_autofree char *got = rec_joined(r);
        g_assert_cmpstr(got, ==, EXPECTED);
        rec_free(r);
    }
    for (int iter = 0; iter < 2000; iter++) {
        g_autofree char *bad = g_strdup(BODY);
        for (int k = g_rand_int_range(rand, 1, 4); k > 0; k--)
            bad[g_rand_int_range(rand, 0, len)] = (char)g_rand_int_range(rand, 0, 256);
        Rec *r = rec_new(sh, 65536, 64);
        for (gsize off = 0; off < len;) {
            gsize want = g_rand_int_range(rand, 1, 64); /* MIN evaluates twice */
            gsize n = MIN(len - off, want);
            mk_xml_stream_feed(r->xs, bad + off, n);
            off += n;
            if (g_rand_int_range(rand, 0, 4) == 0)
                mk_xml_stream_release(r->xs);
            if (g_rand_int_range(rand, 0, 50) == 0) {
                mk_xml_stream_reset(r->xs);
                r->errors_since_reset = 0;
            }
        }
        rec_free(r);
    }
    g_rand_free(rand);
    mk_xml_shared_free(sh);
}

/* Encodings other than UTF-8 and stray bytes are errors, not crashes. */
static void test_bad_bytes(void)
{
    static const char utf16[] = "\xff\xfe<\0s\0t\0r\0>\0";
    Rec *r = rec_new(NULL, 65536, 64);
    mk_xml_stream_feed(r->xs, utf16, sizeof(utf16) - 1);
    g_assert_cmpuint(r->errors, ==, 1);
    rec_free(r);
    expect_error(HDR "<message>\xc3\x28</message>", "not-well-formed", 65536, 64, FALSE);
    r = rec_new(NULL, 65536, 64);
    const char nul[] = HDR "<message>a\0b</message>";
    mk_xml_stream_feed(r->xs, nul, sizeof(nul) - 1);
    g_assert_cmpuint(r->errors, ==, 1);
    rec_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/xmlstream/one-chunk", test_one_chunk);
    g_test_add_func("/xmlstream/bytewise", test_bytewise);
    g_test_add_func("/xmlstream/attr-escapes", test_attr_escapes);
    g_test_add_func("/xmlstream/restrictions", test_restrictions);
    g_test_add_func("/xmlstream/limits", test_limits);
    g_test_add_func("/xmlstream/release", test_release);
    g_test_add_func("/xmlstream/reset-in-callback", test_reset_in_callback);
    g_test_add_func("/xmlstream/reset-between-feeds", test_reset_between_feeds);
    g_test_add_func("/xmlstream/hand-over", test_hand_over);
    g_test_add_func("/xmlstream/has-more-input", test_has_more_input);
    g_test_add_func("/xmlstream/random-chunks", test_random_chunks);
    g_test_add_func("/xmlstream/bad-bytes", test_bad_bytes);
    g_test_add_func("/xmlstream/memory", test_memory);
    return g_test_run();
}
