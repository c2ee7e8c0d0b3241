/* Routing between local sessions (RFC 6120 §8, RFC 6121 §8.5): full and
 * bare JIDs, priorities, unknown resources, IQ errors, from stamping,
 * directed presence, malformed addresses. No modules loaded. */
#include "harness.h"
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static gboolean got(MktClient *c, const char *spec, guint ms)
{
    xmpp_stanza_t *st = mkt_client_wait(c, spec, ms);
    if (st)
        xmpp_stanza_release(st);
    return st != NULL;
}

static void set_priority(MktClient *c, int prio)
{
    mkt_client_send(c, "<presence><priority>%d</priority></presence>", prio);
}

int main(void)
{
    mkt_init("test-routing", 180);
    MktServer *srv = mkt_server_start(NULL, NULL);
    if (!mkt_ok(srv != NULL, "server starts"))
        return mkt_done();
    mkt_server_register(srv, "alice", "pa");
    mkt_server_register(srv, "bob", "pb");

    MktClient *a = mkt_client_connect(srv, "alice@localhost/a1", "pa", 0, NULL);
    MktClient *b1 = mkt_client_connect(srv, "bob@localhost/b1", "pb", 0, NULL);
    MktClient *b2 = mkt_client_connect(srv, "bob@localhost/b2", "pb", 0, NULL);
    MktClient *b3 = mkt_client_connect(srv, "bob@localhost/b3", "pb", 0, NULL);
    if (!mkt_ok(a && b1 && b2 && b3, "alice/a1, bob/b1, bob/b2, bob/b3 log in")) {
        mkt_server_stop(srv);
        return mkt_done();
    }
    set_priority(a, 0);
    set_priority(b1, 5);
    /* The streams may sit on different workers: b1 must be available
     * before the others speak, or their presence has no one to reach. */
    mkt_ok(got(b1, "presence from=bob@localhost/b1", 5000),
           "b1's own presence comes back to it (b1 is available)");
    set_priority(b2, 1);
    set_priority(b3, -1);
    /* Own-resource presence broadcast (RFC 6121 §4.2.2), without mod_roster. */
    /* b1 was available when b2 and b3 sent theirs. */
    mkt_ok(got(b1, "presence from=bob@localhost/b2 >priority", 5000),
           "b2's available presence reaches bob's other resource b1");
    mkt_ok(got(b1, "presence from=bob@localhost/b3", 5000),
           "b3's presence (priority -1) reaches b1 too");
    mkt_pump(200);
    mkt_client_flush(a);
    mkt_client_flush(b1);
    mkt_client_flush(b2);
    mkt_client_flush(b3);

    /* Full JID: exactly that resource. */
    mkt_client_send(a, "<message to='bob@localhost/b2' type='chat' id='m1'>"
                       "<body>to b2</body></message>");
    xmpp_stanza_t *st = mkt_client_wait(b2, "message id=m1", 5000);
    mkt_ok(st != NULL, "message to a full JID arrives at that resource");
    mkt_ok(st && g_strcmp0(mkt_stanza_attr(st, "from"), "alice@localhost/a1") == 0,
           "it carries from=alice@localhost/a1");
    g_autofree char *body = st ? mkt_stanza_child_text(st, "body") : NULL;
    mkt_ok(g_strcmp0(body, "to b2") == 0, "body intact");
    if (st)
        xmpp_stanza_release(st);
    mkt_ok(mkt_client_expect_nothing(b1, "message id=m1", 300) &&
               mkt_client_expect_nothing(b3, "message id=m1", 0),
           "other resources do not get a full-JID message");

    /* Bare JID: the highest non-negative priority only (b1, 5). */
    mkt_client_send(a,
                    "<message to='bob@localhost' type='chat' id='m2'><body>bare</body></message>");
    mkt_ok(got(b1, "message id=m2", 5000), "bare-JID message goes to the highest priority (b1)");
    mkt_ok(mkt_client_expect_nothing(b2, "message id=m2", 300),
           "lower priority resource b2 does not get it");
    mkt_ok(mkt_client_expect_nothing(b3, "message id=m2", 0),
           "negative priority resource b3 does not get it");

    /* A message to an unknown resource is handled as to the bare JID. */
    mkt_client_send(a, "<message to='bob@localhost/gone' type='chat' id='m3'>"
                       "<body>unknown resource</body></message>");
    mkt_ok(got(b1, "message id=m3", 5000), "message to an unknown full JID falls back to b1");
    mkt_ok(mkt_client_expect_nothing(b2, "message id=m3", 300) &&
               mkt_client_expect_nothing(b3, "message id=m3", 0),
           "fallback follows the bare-JID rules (b2, b3 get nothing)");

    /* Equal top priorities. */
    set_priority(b2, 5);
    mkt_pump(300);
    mkt_client_send(a,
                    "<message to='bob@localhost' type='chat' id='m4'><body>tie</body></message>");
    mkt_pump(500);
    gboolean at1 = got(b1, "message id=m4", 0), at2 = got(b2, "message id=m4", 0);
    mkt_ok(at1 || at2, "with two resources at priority 5 the message is delivered (b1 %d, b2 %d)",
           at1, at2);
    mkt_ok(mkt_client_expect_nothing(b3, "message id=m4", 0), "still not to the negative b3");

    /* Only a negative-priority resource left: it never gets bare-JID messages. */
    mkt_client_disconnect(b1);
    mkt_client_disconnect(b2);
    b1 = b2 = NULL;
    mkt_pump(300);
    mkt_client_flush(b3);
    mkt_client_send(a,
                    "<message to='bob@localhost' type='chat' id='m5'><body>neg</body></message>");
    mkt_ok(mkt_client_expect_nothing(b3, "message id=m5", 800),
           "a negative-priority resource alone does not get bare-JID messages");
    /* ... but full-JID messages, yes. */
    mkt_client_send(a,
                    "<message to='bob@localhost/b3' type='chat' id='m6'><body>f</body></message>");
    mkt_ok(got(b3, "message id=m6", 5000), "negative-priority resource gets full-JID messages");

    /* IQ to an unavailable full JID: service-unavailable (RFC 6121 §8.5.3.2.1). */
    mkt_client_send(a, "<iq type='get' to='bob@localhost/gone' id='q1'>"
                       "<query xmlns='jabber:iq:version'/></iq>");
    st = mkt_client_wait(a, "iq id=q1", 5000);
    mkt_ok(st && mkt_stanza_matches(st, "iq type=error from=bob@localhost/gone "
                                        ">{" NS_STANZAS "}service-unavailable"),
           "IQ to an unavailable full JID gets service-unavailable");
    if (st) {
        g_autofree char *x = mkt_stanza_xml(st);
        mkt_diag("reply: %s", x);
        xmpp_stanza_release(st);
    }
    mkt_ok(mkt_client_expect_nothing(b3, "iq id=q1", 200), "the IQ reaches no other resource");

    /* IQ to a full JID that is online reaches it, and its answer comes back. */
    mkt_client_send(a, "<iq type='get' to='bob@localhost/b3' id='q2'>"
                       "<query xmlns='jabber:iq:version'/></iq>");
    st = mkt_client_wait(b3, "iq id=q2 type=get", 5000);
    mkt_ok(st && g_strcmp0(mkt_stanza_attr(st, "from"), "alice@localhost/a1") == 0,
           "IQ to an online full JID arrives from alice@localhost/a1");
    if (st)
        xmpp_stanza_release(st);
    mkt_client_send(b3, "<iq type='result' to='alice@localhost/a1' id='q2'>"
                        "<query xmlns='jabber:iq:version'><name>b3</name></query></iq>");
    mkt_ok(got(a, "iq id=q2 type=result from=bob@localhost/b3 >query", 5000),
           "the IQ result comes back to alice");

    /* Spoofed from: the server stamps the real full JID. */
    mkt_client_send(a, "<message from='mallory@evil.example/x' to='bob@localhost/b3' "
                       "type='chat' id='sp1'><body>spoof</body></message>");
    st = mkt_client_wait(b3, "message id=sp1", 5000);
    if (st) {
        mkt_ok(g_strcmp0(mkt_stanza_attr(st, "from"), "alice@localhost/a1") == 0,
               "a spoofed 'from' is replaced by the sender's full JID (%s)",
               mkt_stanza_attr(st, "from"));
        xmpp_stanza_release(st);
    } else {
        /* RFC 6120 §8.1.2.1 also allows refusing it with <invalid-from/>. */
        mkt_ok(g_strcmp0(mkt_client_stream_error(a), "invalid-from") == 0,
               "a spoofed 'from' is stamped or refused with invalid-from (got %s)",
               mkt_client_stream_error(a));
    }
    if (!mkt_client_connected(a)) {
        mkt_client_disconnect(a);
        a = mkt_client_connect(srv, "alice@localhost/a1", "pa", 0, NULL);
        set_priority(a, 0);
    }

    /* Malformed 'to': jid-malformed, bounced to the sender. */
    mkt_client_send(a, "<message to='@localhost' type='chat' id='bad1'><body>x</body></message>");
    mkt_ok(got(a, "message id=bad1 type=error >{" NS_STANZAS "}jid-malformed", 5000),
           "message to '@localhost' gets a jid-malformed error");
    mkt_client_send(a,
                    "<iq type='get' to='bob@' id='bad2'><query xmlns='jabber:iq:version'/></iq>");
    mkt_ok(got(a, "iq id=bad2 type=error >{" NS_STANZAS "}jid-malformed", 5000),
           "IQ to 'bob@' gets a jid-malformed error");
    {
        /* RFC 7622 §3.4: a resourcepart is at most 1023 octets. */
        g_autofree char *longres = g_strnfill(1100, 'r');
        mkt_client_send(
            a, "<message to='bob@localhost/%s' type='chat' id='bad3'><body>x</body></message>",
            longres);
        mkt_ok(got(a, "message id=bad3 type=error >{" NS_STANZAS "}jid-malformed", 5000),
               "message to a JID with a 1100-octet resource gets jid-malformed");
    }
    mkt_ok(mkt_client_connected(a), "stream survives a malformed address");

    /* IQ to a bare JID is answered by the server on the user's behalf. */
    mkt_client_send(a, "<iq type='get' to='bob@localhost' id='q3'>"
                       "<query xmlns='urn:example:nobody-handles-this'/></iq>");
    mkt_ok(got(a, "iq id=q3 type=error >{" NS_STANZAS "}service-unavailable", 5000),
           "unhandled IQ to a bare JID gets service-unavailable");
    mkt_ok(mkt_client_expect_nothing(b3, "iq id=q3", 200), "and is not forwarded to a resource");

    /* Directed presence, then unavailable when the sender goes away. */
    MktClient *c = mkt_client_connect(srv, "alice@localhost/c1", "pa", 0, NULL);
    if (mkt_ok(c != NULL, "alice/c1 logs in")) {
        mkt_client_send(c, "<presence/>");
        mkt_client_send(c, "<presence to='bob@localhost/b3'><status>hi bob</status></presence>");
        st = mkt_client_wait(b3, "presence from=alice@localhost/c1", 5000);
        mkt_ok(st && !mkt_stanza_attr(st, "type"), "directed presence reaches bob/b3");
        if (st)
            xmpp_stanza_release(st);
        mkt_ok(got(a, "presence from=alice@localhost/c1", 5000),
               "c1's initial presence reaches alice's other resource a1");
        mkt_client_disconnect(c);
        mkt_ok(got(b3, "presence from=alice@localhost/c1 type=unavailable", 5000),
               "bob/b3 gets unavailable presence when alice/c1 disconnects");
        mkt_ok(got(a, "presence from=alice@localhost/c1 type=unavailable", 5000),
               "alice/a1 gets unavailable presence of c1");
    }

    mkt_client_disconnect(a);
    mkt_client_disconnect(b3);
    mkt_ok(mkt_server_stop(srv), "server exits cleanly on SIGTERM");
    return mkt_done();
}
