/* Stanzas: addresses, kinds, re-addressing, error replies; XEP-0082
 * stamps. */
#include "xmlstream.h"

static MkXml *parse(const char *s)
{
    g_autoptr(GError) error = NULL;
    MkXml *x = mk_xml_parse(s, -1, &error);
    g_assert_no_error(error);
    return x;
}

static void test_new(void)
{
    g_autoptr(MkXml) x = parse("<message xmlns='jabber:client' from='A@B.c/R' to='d.e' "
                               "type='chat' id='m1'><body>hi</body></message>");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkStanza) st = mk_stanza_new(x, &error);
    g_assert_no_error(error);
    g_assert_cmpint(mk_stanza_kind(st), ==, MK_STANZA_MESSAGE);
    g_assert_cmpstr(mk_jid_string(mk_stanza_from(st)), ==, "a@b.c/R");
    g_assert_cmpstr(mk_jid_string(mk_stanza_to(st)), ==, "d.e");
    g_assert_cmpstr(mk_stanza_type(st), ==, "chat");
    g_assert_cmpstr(mk_stanza_id(st), ==, "m1");
    g_assert_true(mk_stanza_xml(st) == x);

    static const struct {
        const char *xml;
        MkStanzaKind kind;
    } kinds[] = {
        {"<iq xmlns='jabber:server'/>", MK_STANZA_IQ},
        {"<presence/>", MK_STANZA_PRESENCE},
        {"<iq xmlns='urn:other'/>", MK_STANZA_OTHER},
        {"<enable xmlns='urn:xmpp:sm:3'/>", MK_STANZA_OTHER},
    };
    for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
        g_autoptr(MkXml) k = parse(kinds[i].xml);
        g_autoptr(MkStanza) ks = mk_stanza_new(k, NULL);
        g_assert_cmpint(mk_stanza_kind(ks), ==, kinds[i].kind);
        g_assert_null(mk_stanza_from(ks));
        g_assert_null(mk_stanza_to(ks));
    }

    g_autoptr(MkXml) badx = parse("<message to='a b@c'/>");
    g_assert_null(mk_stanza_new(badx, &error));
    g_assert_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED);
}

static void test_addressed(void)
{
    g_autoptr(MkXml) x =
        parse("<iq xmlns='jabber:client' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>");
    g_autoptr(MkJid) from = mk_jid_new("u@h/r", NULL);
    g_autoptr(MkJid) to = mk_jid_new("h", NULL);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(x, from, to);
    MkXml *sx = mk_stanza_xml(st);
    g_assert_true(sx != x);
    g_assert_null(mk_xml_get_attr(x, "from"));                      /* the original is untouched */
    g_assert_true(mk_xml_child_at(sx, 0) == mk_xml_child_at(x, 0)); /* children shared */
    g_assert_true(mk_stanza_from(st) == from);
    g_autofree char *s = mk_xml_to_string(sx, "jabber:client");
    g_assert_cmpstr(s, ==,
                    "<iq type='get' id='q' from='u@h/r' to='h'><ping xmlns='urn:xmpp:ping'/></iq>");

    /* Same addresses: the same XML. */
    g_autoptr(MkStanza) again = mk_stanza_new_addressed(sx, from, to);
    g_assert_true(mk_stanza_xml(again) == sx);
    /* Removing one. */
    g_autoptr(MkStanza) nofrom = mk_stanza_new_addressed(sx, NULL, to);
    g_assert_null(mk_xml_get_attr(mk_stanza_xml(nofrom), "from"));
    g_assert_cmpstr(mk_xml_get_attr(mk_stanza_xml(nofrom), "to"), ==, "h");
    g_assert_null(mk_stanza_from(nofrom));
}

static void test_error_reply(void)
{
    g_autoptr(MkXml) x = parse("<iq xmlns='jabber:client' from='u@h/r' to='s.h' type='set' "
                               "id='7'><query xmlns='urn:q'/></iq>");
    g_autoptr(MkStanza) st = mk_stanza_new(x, NULL);
    g_autoptr(MkStanza) r = mk_stanza_new_error_reply(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    g_assert_nonnull(r);
    g_assert_cmpstr(mk_jid_string(mk_stanza_from(r)), ==, "s.h");
    g_assert_cmpstr(mk_jid_string(mk_stanza_to(r)), ==, "u@h/r");
    g_assert_cmpstr(mk_stanza_type(r), ==, "error");
    g_assert_cmpstr(mk_stanza_id(r), ==, "7");
    g_autofree char *s = mk_xml_to_string(mk_stanza_xml(r), "jabber:client");
    g_assert_cmpstr(s, ==,
                    "<iq from='s.h' to='u@h/r' type='error' id='7'><query xmlns='urn:q'/>"
                    "<error type='cancel'><service-unavailable "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    /* The original keeps its attributes and children. */
    g_assert_cmpstr(mk_xml_get_attr(x, "type"), ==, "set");
    g_assert_cmpuint(mk_xml_child_count(x), ==, 1);

    g_autoptr(MkStanza) r2 = mk_stanza_new_error_reply(st, MK_ERR_FORBIDDEN, "no & never");
    g_autofree char *s2 = mk_xml_to_string(mk_stanza_xml(r2), "jabber:client");
    g_assert_true(g_str_has_suffix(
        s2,
        "<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no &amp; never</text></error></iq>"));

    /* Never an error in answer to an error. */
    g_assert_null(mk_stanza_new_error_reply(r, MK_ERR_BAD_REQUEST, NULL));

    /* No addresses: none in the reply either. */
    g_autoptr(MkXml) bare = parse("<message xmlns='jabber:client'/>");
    g_autoptr(MkStanza) bs = mk_stanza_new(bare, NULL);
    g_autoptr(MkStanza) br = mk_stanza_new_error_reply(bs, MK_ERR_RESOURCE_CONSTRAINT, NULL);
    g_autofree char *s3 = mk_xml_to_string(mk_stanza_xml(br), "jabber:client");
    g_assert_cmpstr(s3, ==,
                    "<message type='error'><error type='wait'><resource-constraint "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
}

static void test_condition_table(void)
{
    static const struct {
        MkStanzaError c;
        const char *name, *type;
    } t[] = {
        {MK_ERR_BAD_REQUEST, "bad-request", "modify"},
        {MK_ERR_CONFLICT, "conflict", "cancel"},
        {MK_ERR_FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", "cancel"},
        {MK_ERR_FORBIDDEN, "forbidden", "auth"},
        {MK_ERR_GONE, "gone", "cancel"},
        {MK_ERR_INTERNAL_SERVER_ERROR, "internal-server-error", "cancel"},
        {MK_ERR_ITEM_NOT_FOUND, "item-not-found", "cancel"},
        {MK_ERR_JID_MALFORMED, "jid-malformed", "modify"},
        {MK_ERR_NOT_ACCEPTABLE, "not-acceptable", "modify"},
        {MK_ERR_NOT_ALLOWED, "not-allowed", "cancel"},
        {MK_ERR_NOT_AUTHORIZED, "not-authorized", "auth"},
        {MK_ERR_POLICY_VIOLATION, "policy-violation", "modify"},
        {MK_ERR_RECIPIENT_UNAVAILABLE, "recipient-unavailable", "wait"},
        {MK_ERR_REDIRECT, "redirect", "modify"},
        {MK_ERR_REGISTRATION_REQUIRED, "registration-required", "auth"},
        {MK_ERR_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel"},
        {MK_ERR_REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait"},
        {MK_ERR_RESOURCE_CONSTRAINT, "resource-constraint", "wait"},
        {MK_ERR_SERVICE_UNAVAILABLE, "service-unavailable", "cancel"},
        {MK_ERR_SUBSCRIPTION_REQUIRED, "subscription-required", "auth"},
        {MK_ERR_UNDEFINED_CONDITION, "undefined-condition", "cancel"},
        {MK_ERR_UNEXPECTED_REQUEST, "unexpected-request", "wait"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(t); i++) {
        g_assert_cmpstr(mk_stanza_error_name(t[i].c), ==, t[i].name);
        g_assert_cmpstr(mk_stanza_error_type(t[i].c), ==, t[i].type);
    }
}

static void test_is_error(void)
{
    g_autoptr(MkXml) e = parse("<message xmlns='jabber:client' type='error'/>");
    g_autoptr(MkXml) c = parse("<message xmlns='jabber:client' type='chat'/>");
    g_autoptr(MkXml) n = parse("<presence xmlns='jabber:client'/>");
    g_autoptr(MkStanza) se = mk_stanza_new(e, NULL);
    g_autoptr(MkStanza) sc = mk_stanza_new(c, NULL);
    g_autoptr(MkStanza) sn = mk_stanza_new(n, NULL);
    g_assert_true(mk_stanza_is_error(se));
    g_assert_false(mk_stanza_is_error(sc));
    g_assert_false(mk_stanza_is_error(sn));
}

static void test_xep82_format(void)
{
    g_autoptr(GTimeZone) tz = g_time_zone_new_offset(2 * 3600);
    g_autoptr(GDateTime) t = g_date_time_new(tz, 2026, 12, 2, 5, 4, 5.6785);
    g_autofree char *s = mk_xep82_format(t);
    g_assert_cmpstr(s, ==, "2026-12-02T03:04:05.678Z");
}

static void test_xep82_parse(void)
{
    /* XEP-0082 section 3.2 examples and the forms in between. */
    static const struct {
        const char *text;
        gint64 unix_s; /* -1: refused */
        int usec;
    } cases[] = {
        {"1969-07-21T02:56:15Z", -14159025, 0},
        {"1969-07-20T21:56:15-05:00", -14159025, 0},
        {"2026-12-02T03:04:05.678Z", 1796180645, 678000},
        {"2026-12-02T05:04:05.678+02:00", 1796180645, 678000},
        {"2026-12-02T03:04:05.1Z", 1796180645, 100000},
        {"2026-12-02T03:04:05", -1, 0},      /* no zone */
        {"2026-12-02", -1, 0},               /* a date is not a DateTime */
        {"20261202T030405Z", -1, 0},         /* ISO 8601 basic format */
        {"2026-W49-3T03:04:05Z", -1, 0},     /* week date */
        {"2026-12-02T03:04:05.Z", -1, 0},    /* empty fraction */
        {"2026-12-02T03:04:05+0200", -1, 0}, /* zone without colon */
        {"2026-13-02T03:04:05Z", -1, 0},     /* no 13th month */
        {"2026-12-02T03:04:05Zjunk", -1, 0},
        {"", -1, 0},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GDateTime) t = mk_xep82_parse(cases[i].text);
        if (cases[i].unix_s == -1) {
            g_assert_null(t);
            continue;
        }
        g_assert_nonnull(t);
        g_assert_cmpint(g_date_time_to_unix(t), ==, cases[i].unix_s);
        g_assert_cmpint(g_date_time_get_microsecond(t), ==, cases[i].usec);
    }
    g_assert_null(mk_xep82_parse(NULL));
    /* What we write, we read. */
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *text = mk_xep82_format(now);
    g_autoptr(GDateTime) back = mk_xep82_parse(text);
    g_assert_nonnull(back);
    g_assert_cmpint(g_date_time_to_unix(back), ==, g_date_time_to_unix(now));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/stanza/new", test_new);
    g_test_add_func("/stanza/addressed", test_addressed);
    g_test_add_func("/stanza/error-reply", test_error_reply);
    g_test_add_func("/stanza/condition-table", test_condition_table);
    g_test_add_func("/stanza/is-error", test_is_error);
    g_test_add_func("/xep82/format", test_xep82_format);
    g_test_add_func("/xep82/parse", test_xep82_parse);
    return g_test_run();
}
