/* XEP-0198 counters and the unacknowledged queue (core/ackqueue.c):
 * counting, trimming by h, refusing an h above what was sent, and the
 * wrap-around at 2^32. */
#include "ackqueue.h"

static MkXml *stanza(const char *name, const char *id)
{
    MkXml *x = mk_xml_new(name, "jabber:client");
    mk_xml_set_attr(x, "id", id);
    return x;
}

static void test_is_stanza(void)
{
    static const struct {
        const char *name, *ns;
        gboolean is;
    } t[] = {
        {"message", "jabber:client", TRUE}, {"presence", "jabber:client", TRUE},
        {"iq", "jabber:client", TRUE},      {"iq", NULL, TRUE},
        {"r", "urn:xmpp:sm:3", FALSE},      {"a", "urn:xmpp:sm:3", FALSE},
        {"message", "urn:other", FALSE},    {"features", "http://etherx.jabber.org/streams", FALSE},
    };
    for (guint i = 0; i < G_N_ELEMENTS(t); i++) {
        g_autoptr(MkXml) x = mk_xml_new(t[i].name, t[i].ns);
        g_assert_cmpint(mk_ack_queue_is_stanza(x), ==, t[i].is);
    }
}

static void test_trim(void)
{
    MkAckQueue q;
    mk_ack_queue_init(&q);
    for (int i = 0; i < 5; i++) {
        g_autofree char *id = g_strdup_printf("m%d", i);
        g_autoptr(MkXml) x = stanza("message", id);
        mk_ack_queue_sent(&q, x, 10 + (gsize)i, 1000 + i, 0);
    }
    g_assert_cmpuint(q.h_out, ==, 5);
    g_assert_cmpuint(q.unacked.length, ==, 5);
    g_assert_cmpuint(q.bytes, ==, 10 + 11 + 12 + 13 + 14);

    g_assert_true(mk_ack_queue_ack(&q, 2));
    g_assert_cmpuint(q.unacked.length, ==, 3);
    MkAckEntry *head = g_queue_peek_head(&q.unacked);
    g_assert_cmpstr(mk_xml_get_attr(head->xml, "id"), ==, "m2");
    g_assert_cmpint(head->stamp_us, ==, 1002);
    g_assert_cmpuint(q.bytes, ==, 12 + 13 + 14);
    /* The same h again changes nothing; more than sent is refused. */
    g_assert_true(mk_ack_queue_ack(&q, 2));
    g_assert_cmpuint(q.unacked.length, ==, 3);
    g_assert_false(mk_ack_queue_ack(&q, 6));
    g_assert_cmpuint(q.unacked.length, ==, 3);
    g_assert_cmpuint(q.acked, ==, 2);
    /* An h below the last one would ack ~2^32 stanzas: refused too. */
    g_assert_false(mk_ack_queue_ack(&q, 1));
    /* Popping (the session ended) keeps the byte count right. */
    MkAckEntry *e = mk_ack_queue_pop(&q);
    g_assert_cmpstr(mk_xml_get_attr(e->xml, "id"), ==, "m2");
    mk_ack_entry_free(e);
    g_assert_cmpuint(q.bytes, ==, 13 + 14);
    g_assert_true(mk_ack_queue_ack(&q, 4));
    g_assert_cmpuint(q.unacked.length, ==, 0);
    g_assert_cmpuint(q.bytes, ==, 0);
    mk_ack_queue_clear(&q);
}

static void test_wrap(void)
{
    MkAckQueue q;
    mk_ack_queue_init(&q);
    q.h_out = q.acked = G_MAXUINT32 - 1;
    for (int i = 0; i < 4; i++) {
        g_autoptr(MkXml) x = stanza("iq", "w");
        mk_ack_queue_sent(&q, x, 1, 0, 0);
    }
    g_assert_cmpuint(q.h_out, ==, 2); /* 2^32 - 2 + 4, modulo 2^32 */
    g_assert_true(mk_ack_queue_ack(&q, G_MAXUINT32));
    g_assert_cmpuint(q.unacked.length, ==, 3);
    g_assert_true(mk_ack_queue_ack(&q, 0));
    g_assert_cmpuint(q.unacked.length, ==, 2);
    g_assert_false(mk_ack_queue_ack(&q, 3));
    g_assert_true(mk_ack_queue_ack(&q, 2));
    g_assert_cmpuint(q.unacked.length, ==, 0);

    q.h_in = G_MAXUINT32;
    q.h_in++;
    g_assert_cmpuint(q.h_in, ==, 0);
    mk_ack_queue_clear(&q);
}

static void test_parse_h(void)
{
    guint32 h = 7;
    g_assert_true(mk_ack_queue_parse_h("0", &h));
    g_assert_cmpuint(h, ==, 0);
    g_assert_true(mk_ack_queue_parse_h("4294967295", &h));
    g_assert_cmpuint(h, ==, G_MAXUINT32);
    g_assert_false(mk_ack_queue_parse_h("4294967296", &h));
    g_assert_false(mk_ack_queue_parse_h("-1", &h));
    g_assert_false(mk_ack_queue_parse_h(" 1", &h));
    g_assert_false(mk_ack_queue_parse_h("1x", &h));
    g_assert_false(mk_ack_queue_parse_h("", &h));
    g_assert_false(mk_ack_queue_parse_h(NULL, &h));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ackqueue/is-stanza", test_is_stanza);
    g_test_add_func("/ackqueue/trim", test_trim);
    g_test_add_func("/ackqueue/wrap", test_wrap);
    g_test_add_func("/ackqueue/parse-h", test_parse_h);
    return g_test_run();
}
