/* MkXml: building, namespaces, serialising, copying, mk_xml_parse. */
#include <string.h>
#include "xmlstream.h"

static void test_build_and_write(void)
{
    g_autoptr(MkXml) iq = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(iq, "type", "result");
    mk_xml_set_attr(iq, "id", "a'b\"c<&>");
    MkXml *q = mk_xml_add_child(iq, "query", "jabber:iq:roster");
    MkXml *item = mk_xml_add_child(q, "item", NULL);
    g_assert_cmpstr(mk_xml_ns(item), ==, "jabber:iq:roster");
    mk_xml_set_attr(item, "jid", "a@b");
    mk_xml_add_text(mk_xml_add_child(item, "group", NULL), "x < y & z > 'q' \"", -1);
    mk_xml_set_attr(item, "name", "old");
    mk_xml_set_attr(item, "name", "new");
    mk_xml_set_attr(item, "gone", "1");
    mk_xml_set_attr(item, "gone", NULL);
    mk_xml_set_attr(item, "xml:lang", "en");

    g_autofree char *s = mk_xml_to_string(iq, "jabber:client");
    g_assert_cmpstr(s, ==,
                    "<iq type='result' id='a&apos;b&quot;c&lt;&amp;&gt;'>"
                    "<query xmlns='jabber:iq:roster'><item jid='a@b' name='new' xml:lang='en'>"
                    "<group>x &lt; y &amp; z &gt; 'q' \"</group></item></query></iq>");
    g_autofree char *s2 = mk_xml_to_string(iq, NULL);
    g_assert_true(g_str_has_prefix(s2, "<iq xmlns='jabber:client' type='result'"));

    g_assert_cmpuint(mk_xml_attr_count(item), ==, 3);
    const char *n, *v;
    mk_xml_attr_at(item, 1, &n, &v);
    g_assert_cmpstr(n, ==, "name");
    g_assert_cmpstr(v, ==, "new");

    /* Round trip through the parser. */
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) back = mk_xml_parse(s2, -1, &error);
    g_assert_no_error(error);
    g_autofree char *s3 = mk_xml_to_string(back, NULL);
    g_assert_cmpstr(s3, ==, s2);
    g_autofree char *group = mk_xml_child_text(
        mk_xml_child(mk_xml_child(back, "query", NULL), "item", "jabber:iq:roster"), "group", NULL);
    g_assert_cmpstr(group, ==, "x < y & z > 'q' \"");
}

static void test_inherit_late(void)
{
    /* Built bottom-up: namespaces resolve when the parent gets one. */
    g_autoptr(MkXml) msg = mk_xml_new("message", NULL);
    MkXml *body = mk_xml_add_child(msg, "body", NULL);
    MkXml *x = mk_xml_add_child(msg, "x", "urn:x");
    g_assert_null(mk_xml_ns(body));
    g_autoptr(MkXml) wrapper = mk_xml_new("forwarded", "urn:xmpp:forward:0");
    mk_xml_append(wrapper, mk_xml_ref(msg));
    g_assert_cmpstr(mk_xml_ns(msg), ==, "urn:xmpp:forward:0");
    g_assert_cmpstr(mk_xml_ns(body), ==, "urn:xmpp:forward:0");
    g_assert_cmpstr(mk_xml_ns(x), ==, "urn:x");
    g_assert_true(mk_xml_is(body, "body", NULL));
    g_assert_false(mk_xml_is(body, "body", "jabber:client"));
}

static void test_children(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el = mk_xml_parse("<a xmlns='urn:a'>one<b/>two<c xmlns='urn:c'/><b "
                                       "xmlns='urn:b'/><![CDATA[<three>]]></a>",
                                       -1, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(mk_xml_child_count(el), ==, 6);
    g_autofree char *t = mk_xml_text(el);
    g_assert_cmpstr(t, ==, "onetwo<three>");
    g_assert_true(mk_xml_is_text(mk_xml_child_at(el, 0)));
    g_assert_true(mk_xml_child(el, "b", "urn:b") == mk_xml_child_at(el, 4));
    g_assert_true(mk_xml_child(el, "b", NULL) == mk_xml_child_at(el, 1));
    g_assert_true(mk_xml_child(el, NULL, "urn:c") == mk_xml_child_at(el, 3));
    g_assert_null(mk_xml_child(el, "d", NULL));

    g_autoptr(MkXml) copy = mk_xml_copy(el);
    mk_xml_remove_children(copy, "b", NULL);
    g_assert_cmpuint(mk_xml_child_count(copy), ==, 4);
    g_assert_cmpuint(mk_xml_child_count(el), ==, 6);
    g_autofree char *cs = mk_xml_to_string(copy, NULL);
    g_assert_cmpstr(cs, ==, "<a xmlns='urn:a'>onetwo<c xmlns='urn:c'/>&lt;three&gt;</a>");

    /* Shallow copy: same children, own attributes. */
    mk_xml_set_attr(el, "k", "v");
    g_autoptr(MkXml) sh = mk_xml_copy_shallow(el);
    mk_xml_set_attr(sh, "k", "w");
    g_assert_cmpstr(mk_xml_get_attr(el, "k"), ==, "v");
    g_assert_true(mk_xml_child_at(sh, 1) == mk_xml_child_at(el, 1));

    /* Setting several attributes on a shallow copy in one go gives what
     * mk_xml_set_attr step by step gives: changed in place, removed,
     * appended in order. */
    mk_xml_set_attr(el, "to", "t");
    mk_xml_set_attr(el, "id", "1");
    static const char *const names[] = {"from", "to", "k", "x"};
    const char *values[] = {"f", "u", NULL, "y"};
    g_autoptr(MkXml) stepwise = mk_xml_copy_shallow(el);
    for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        mk_xml_set_attr(stepwise, names[i], values[i]);
    g_autoptr(MkXml) at_once = mk_xml_copy_shallow_set(el, names, values, G_N_ELEMENTS(names));
    g_autofree char *sw = mk_xml_to_string(stepwise, NULL);
    g_autofree char *ao = mk_xml_to_string(at_once, NULL);
    g_assert_cmpstr(ao, ==, sw);
    g_assert_cmpuint(mk_xml_attr_count(at_once), ==, 4);
    g_assert_cmpstr(mk_xml_get_attr(el, "to"), ==, "t");
    g_assert_true(mk_xml_child_at(at_once, 1) == mk_xml_child_at(el, 1));
    g_autoptr(MkXml) bare =
        mk_xml_copy_shallow_set(el, names, (const char *const[]){NULL, NULL, NULL, NULL}, 4);
    g_assert_cmpuint(mk_xml_attr_count(bare), ==, 1);
    g_assert_cmpstr(mk_xml_get_attr(bare, "id"), ==, "1");
}

static void test_parse_errors(void)
{
    static const struct {
        const char *in;
        const char *prefix;
    } cases[] = {
        {"<a><!-- c --></a>", "restricted-xml"},
        {"<?xml version='1.0'?><!DOCTYPE a><a/>", "restricted-xml"},
        {"<a>&nbsp;</a>", "restricted-xml"},
        {"<a><?pi x?></a>", "restricted-xml"},
        {"<a>", "not-well-formed"},
        {"<a></b>", "not-well-formed"},
        {"<a/><b/>", "not-well-formed"},
        {"", "not-well-formed"},
        {"<p:a/>", "bad-namespace-prefix"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(MkXml) el = mk_xml_parse(cases[i].in, -1, &error);
        g_assert_null(el);
        g_assert_nonnull(error);
        g_test_message("%s -> %s", cases[i].in, error->message);
        g_assert_true(g_str_has_prefix(error->message, cases[i].prefix));
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) ok =
        mk_xml_parse("<?xml version='1.0'?>\n<a b='&lt;&amp;'>&#x263A;</a>\n", -1, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_xml_get_attr(ok, "b"), ==, "<&");
    g_autofree char *t = mk_xml_text(ok);
    g_assert_cmpstr(t, ==, "\xe2\x98\xba");
}

/* mk_xml_parser: one stanza per call with one context; an error (two
 * elements, a half element, a forbidden construct) costs that call only. */
static void test_parser(void)
{
    MkXmlParser *p = mk_xml_parser_new();
    for (int i = 0; i < 3; i++) {
        g_autoptr(GError) error = NULL;
        const char *in = "<message to='a@b' id='x'><body>hi</body></message>";
        g_autoptr(MkXml) el = mk_xml_parser_parse(p, in, strlen(in), &error);
        g_assert_no_error(error);
        g_assert_cmpstr(mk_xml_name(el), ==, "message");
        g_assert_cmpstr(mk_xml_ns(el), ==, "jabber:client");
        g_assert_cmpstr(mk_xml_get_attr(el, "to"), ==, "a@b");
    }
    static const char *const bad[] = {"<a/><b/>", "<a><b>", "<!-- c --><a/>", "<a x='1' x='2'/>"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(MkXml) el = mk_xml_parser_parse(p, bad[i], strlen(bad[i]), &error);
        g_assert_null(el);
        g_assert_nonnull(error);
        g_autoptr(GError) error2 = NULL;
        g_autoptr(MkXml) ok = mk_xml_parser_parse(p, "<iq type='get'/>", 16, &error2);
        g_assert_no_error(error2);
        g_assert_cmpstr(mk_xml_name(ok), ==, "iq");
    }
    mk_xml_parser_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/xml/build-and-write", test_build_and_write);
    g_test_add_func("/xml/inherit-late", test_inherit_late);
    g_test_add_func("/xml/children", test_children);
    g_test_add_func("/xml/parse-errors", test_parse_errors);
    g_test_add_func("/xml/parser", test_parser);
    return g_test_run();
}
