/* mod_csi's policy and queue, without a server: which stanzas wait for an
 * inactive client, one held presence per sender, order kept. */
#include "csi.h"

static MkStanza *stanza(const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el = mk_xml_parse(xml, -1, &error);
    g_assert_no_error(error);
    MkStanza *st = mk_stanza_new(el, &error);
    g_assert_no_error(error);
    return st;
}

static CsiAction classify(const char *xml)
{
    g_autoptr(MkStanza) st = stanza(xml);
    return csi_classify(mk_stanza_xml(st));
}

static void test_classify(void)
{
    g_assert_cmpint(classify("<presence xmlns='jabber:client' from='b@x/r'/>"), ==, CSI_LATEST);
    g_assert_cmpint(classify("<presence xmlns='jabber:client' type='unavailable'/>"), ==,
                    CSI_LATEST);
    g_assert_cmpint(classify("<presence xmlns='jabber:client' type='subscribe'/>"), ==, CSI_PASS);
    g_assert_cmpint(classify("<message xmlns='jabber:client'><body>hi</body>"
                             "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
                    ==, CSI_PASS);
    g_assert_cmpint(
        classify("<message xmlns='jabber:client'>"
                 "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"),
        ==, CSI_QUEUE);
    g_assert_cmpint(classify("<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts'"
                             " id='1'/></message>"),
                    ==, CSI_PASS);
    g_assert_cmpint(classify("<iq xmlns='jabber:client' type='get' id='1'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>"),
                    ==, CSI_PASS);
}

static const char *show_of(MkStanza *st)
{
    MkXml *show = mk_xml_child(mk_stanza_xml(st), "show", NULL);
    static char buf[32];
    g_autofree char *t = show ? mk_xml_text(show) : g_strdup("");
    g_strlcpy(buf, t, sizeof buf);
    return buf;
}

static void test_queue(void)
{
    CsiQueue *q = csi_queue_new();
    g_autoptr(MkStanza) p1 = stanza("<presence xmlns='jabber:client'><show>away</show></presence>");
    g_autoptr(MkStanza) p2 = stanza("<presence xmlns='jabber:client'><show>xa</show></presence>");
    g_autoptr(MkStanza) p3 = stanza("<presence xmlns='jabber:client'><show>dnd</show></presence>");
    g_autoptr(MkStanza) c1 = stanza("<message xmlns='jabber:client'>"
                                    "<paused xmlns='http://jabber.org/protocol/chatstates'/>"
                                    "</message>");

    g_assert_false(csi_queue_push(q, p1, "b@x/r", CSI_LATEST));
    g_assert_false(csi_queue_push(q, c1, "c@x/r", CSI_QUEUE));
    g_assert_false(csi_queue_push(q, p2, "d@x/r", CSI_LATEST));
    /* A newer presence of b replaces the held one and goes last. */
    g_assert_true(csi_queue_push(q, p3, "b@x/r", CSI_LATEST));
    g_assert_cmpuint(csi_queue_length(q), ==, 3);

    /* Only one sender's stanzas. */
    g_autoptr(GPtrArray) of_b = csi_queue_take(q, "b@x/r");
    g_assert_cmpuint(of_b->len, ==, 1);
    g_assert_cmpstr(show_of(of_b->pdata[0]), ==, "dnd");
    g_assert_cmpuint(csi_queue_length(q), ==, 2);

    /* b's next presence is held afresh (its index entry went). */
    g_assert_false(csi_queue_push(q, p1, "b@x/r", CSI_LATEST));
    g_autoptr(GPtrArray) all = csi_queue_take(q, NULL);
    g_assert_cmpuint(all->len, ==, 3);
    g_assert_true(all->pdata[0] == c1);
    g_assert_true(all->pdata[1] == p2);
    g_assert_true(all->pdata[2] == p1);
    g_assert_cmpuint(csi_queue_length(q), ==, 0);

    /* Freed with stanzas still held. */
    csi_queue_push(q, p2, "d@x/r", CSI_LATEST);
    csi_queue_free(q);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mod_csi/classify", test_classify);
    g_test_add_func("/mod_csi/queue", test_queue);
    return g_test_run();
}
