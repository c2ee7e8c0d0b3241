/* What a bound stream refuses (raw sockets for the hostile input,
 * libstrophe for what real clients see):
 *
 *  - a second <stream:stream> inside the open stream: a stream error at
 *    once (it used to swallow every later stanza up to the size limit);
 *  - a bind with two <resource/> elements: bad-request (RFC 6120 7.7.2.1);
 *  - an IQ without 'id': bad-request, and it is not processed (8.1.3);
 *  - a message type nobody defined: routed as normal, without the
 *    'type' (RFC 6121 5.2.2);
 *  - a presence priority that is not an integer from -128 to 127, or two
 *    of them: bad-request, and nobody sees that presence (4.7.2.3). */
#include "harness.h"
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static const char AUTH_ALICE[] = /* PLAIN \0alice\0pa */
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHBh</auth>";

static void nested_header(MktServer *srv)
{
    MktRaw *r = mkt_raw_login(mkt_server_port(srv), "alice", "pa", "raw1");
    if (!mkt_ok(r != NULL, "raw login"))
        return;
    /* Without the XML declaration, which libxml2 refuses mid-document. */
    mkt_raw_write(r, MKT_STREAM_HEADER + strlen("<?xml version='1.0'?>"), -1);
    mkt_raw_write(r, "<iq type='get' id='after'><query xmlns='jabber:iq:roster'/></iq>", -1);
    gboolean err = mkt_raw_read_until(r, "unsupported-stanza-type", 5000);
    mkt_ok(err, "a stream header inside a bound stream: stream error unsupported-stanza-type");
    mkt_ok(!strstr(mkt_raw_data(r), "id='after'") && !strstr(mkt_raw_data(r), "id=\"after\""),
           "the IQ after it is not answered");
    mkt_ok(mkt_raw_read_until(r, NULL, 5000), "and the connection is closed");
    mkt_raw_free(r);
}

/* Up to the bind: header, PLAIN, restart. (transfer full) (nullable) */
static MktRaw *authenticated(MktServer *srv)
{
    MktRaw *r = mkt_raw_connect(mkt_server_port(srv));
    if (!r)
        return NULL;
    if (!mkt_raw_write(r, MKT_STREAM_HEADER, -1) || !mkt_raw_read_until(r, "features>", 5000) ||
        !mkt_raw_write(r, AUTH_ALICE, -1) || !mkt_raw_read_until(r, "<success", 5000)) {
        mkt_raw_free(r);
        return NULL;
    }
    mkt_raw_clear(r);
    if (!mkt_raw_write(r, MKT_STREAM_HEADER, -1) || !mkt_raw_read_until(r, "features>", 5000)) {
        mkt_raw_free(r);
        return NULL;
    }
    mkt_raw_clear(r);
    return r;
}

static void two_resources(MktServer *srv)
{
    MktRaw *r = authenticated(srv);
    if (!mkt_ok(r != NULL, "raw authentication"))
        return;
    mkt_raw_write(r,
                  "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>one</resource><resource>two</resource></bind></iq>",
                  -1);
    mkt_ok(mkt_raw_read_until(r, "bad-request", 5000) && !strstr(mkt_raw_data(r), "<jid"),
           "a bind with two resources: bad-request, nothing bound");
    mkt_raw_clear(r);
    mkt_raw_write(r,
                  "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>one</resource></bind></iq>",
                  -1);
    mkt_ok(mkt_raw_read_until(r, "alice@localhost/one</jid>", 5000),
           "then a bind with one resource succeeds");
    mkt_raw_free(r);
}

static void iq_without_id(MktServer *srv)
{
    MktRaw *r = mkt_raw_login(mkt_server_port(srv), "alice", "pa", "raw2");
    if (!mkt_ok(r != NULL, "raw login"))
        return;
    mkt_raw_write(r,
                  "<iq type='set'><query xmlns='jabber:iq:roster'>"
                  "<item jid='noid@localhost'/></query></iq>",
                  -1);
    mkt_ok(mkt_raw_read_until(r, "bad-request", 5000),
           "a roster set without 'id' is answered bad-request");
    mkt_raw_clear(r);
    mkt_raw_write(r, "<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>", -1);
    gboolean got = mkt_raw_read_until(r, "</iq>", 5000) || mkt_raw_read_until(r, "/>", 1000);
    mkt_ok(got && !strstr(mkt_raw_data(r), "noid@localhost"),
           "and it was not processed: the roster has no such item");
    mkt_raw_clear(r);
    mkt_raw_write(r, "<iq type='error'><ping xmlns='urn:xmpp:ping'/></iq>", -1);
    mkt_raw_write(r, "<iq type='get' id='g2'><query xmlns='jabber:iq:roster'/></iq>", -1);
    mkt_ok(mkt_raw_read_until(r, "g2", 5000) && !strstr(mkt_raw_data(r), "bad-request"),
           "an error IQ without 'id' is dropped, not answered");
    mkt_raw_free(r);
}

static void message_type(MktClient *a, MktClient *b)
{
    mkt_client_send(a, "<message to='bob@localhost/b' type='xyz' id='mt1'><body>odd</body>"
                       "</message>");
    xmpp_stanza_t *st = mkt_client_wait(b, "message id=mt1", 5000);
    g_autofree char *xml = st ? mkt_stanza_xml(st) : NULL;
    if (!mkt_ok(st && !mkt_stanza_attr(st, "type"),
                "a message of unknown type arrives as normal, without the type"))
        mkt_diag("got: %s", xml ? xml : "(nothing)");
    if (st)
        xmpp_stanza_release(st);
    mkt_ok(mkt_client_expect_nothing(b, "message id=mt1", 300), "exactly once");
}

static void priorities(MktClient *a1, MktClient *a2)
{
    static const char *const bad[] = {
        "<priority>abc</priority>", "<priority>999999999999</priority>", "<priority>128</priority>",
        "<priority>-129</priority>", "<priority>1</priority><priority>2</priority>"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        mkt_client_send(a1, "<presence id='bp%u'>%s<status>bad%u</status></presence>", i, bad[i],
                        i);
        g_autofree char *spec =
            g_strdup_printf("presence id=bp%u type=error >{" NS_STANZAS "}bad-request", i);
        xmpp_stanza_t *err = mkt_client_wait(a1, spec, 5000);
        mkt_ok(err != NULL, "presence with %s: bad-request", bad[i]);
        if (err)
            xmpp_stanza_release(err);
        g_autofree char *seen = g_strdup_printf("presence id=bp%u", i);
        mkt_ok(mkt_client_expect_nothing(a2, seen, 300), "and the other resource does not see it");
    }
    /* The control: a good priority is broadcast. */
    mkt_client_send(a1, "<presence id='gp'><priority> -128 </priority></presence>");
    xmpp_stanza_t *ok = mkt_client_wait(a2, "presence id=gp", 5000);
    mkt_ok(ok != NULL, "a priority of -128 is accepted and broadcast");
    if (ok)
        xmpp_stanza_release(ok);
}

int main(void)
{
    mkt_init("test-stanza-checks", 120);
    const char *mods[] = {"mod_roster", NULL};
    MktServer *srv = mkt_server_start(NULL, mods);
    if (!mkt_ok(srv != NULL, "server starts"))
        return mkt_done();
    mkt_server_register(srv, "alice", "pa");
    mkt_server_register(srv, "bob", "pb");

    nested_header(srv);
    two_resources(srv);
    iq_without_id(srv);

    MktClient *a1 = mkt_client_connect(srv, "alice@localhost/a1", "pa", 0, NULL);
    MktClient *a2 = mkt_client_connect(srv, "alice@localhost/a2", "pa", 0, NULL);
    MktClient *b = mkt_client_connect(srv, "bob@localhost/b", "pb", 0, NULL);
    if (mkt_ok(a1 && a2 && b, "alice/a1, alice/a2 and bob/b log in (libstrophe)")) {
        message_type(a1, b);
        mkt_client_send(a2, "<presence/>");
        xmpp_stanza_t *own = mkt_client_wait(a2, "presence from=alice@localhost/a2", 5000);
        mkt_ok(own != NULL, "a2 is available");
        if (own)
            xmpp_stanza_release(own);
        priorities(a1, a2);
    }
    mkt_client_disconnect(a1);
    mkt_client_disconnect(a2);
    mkt_client_disconnect(b);
    mkt_ok(mkt_server_stop(srv), "meerkatd exits cleanly");
    return mkt_done();
}
