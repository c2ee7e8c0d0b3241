/* Stream errors (RFC 6120 §4.9): not-well-formed, restricted-xml
 * (comments, processing instructions, DTDs), policy-violation for an
 * oversized stanza, bad namespace, unknown host. Each one ends the
 * offending stream only: other clients stay connected. */
#include "harness.h"
#include <string.h>

#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"

/* Sends @bytes on a fresh raw connection (after @header, nullable) and
 * checks for the stream error @cond, </stream:stream> and the close. */
static void raw_case(MktServer *srv, const char *name, const char *header, const char *bytes,
                     const char *cond)
{
    MktRaw *r = mkt_raw_connect(mkt_server_port(srv));
    if (!mkt_ok(r != NULL, "%s: connect", name))
        return;
    if (header) {
        mkt_raw_write(r, header, -1);
        mkt_raw_read_until(r, "features>", 3000);
    }
    mkt_raw_write(r, bytes, -1);
    g_autofree char *want = g_strdup_printf("<%s", cond);
    mkt_raw_read_until(r, want, 5000);
    mkt_raw_read_until(r, NULL, 5000);
    const char *d = mkt_raw_data(r);
    const char *err = strstr(d, "error");
    gboolean ok = mkt_ok(err && strstr(err, want) && strstr(err, NS_STREAMS),
                         "%s: <stream:error><%s/></stream:error>", name, cond);
    ok &= mkt_ok(strstr(d, "</stream:stream>") != NULL, "%s: stream closed with </stream:stream>",
                 name);
    ok &= mkt_ok(mkt_raw_closed(r), "%s: TCP connection closed", name);
    if (!ok)
        mkt_diag("read: %s", d);
    mkt_raw_free(r);
}

static gboolean echo_self(MktClient *c, const char *id)
{
    mkt_client_send(c, "<message to='%s' id='%s'><body>x</body></message>", mkt_client_jid(c), id);
    g_autofree char *spec = g_strdup_printf("message id=%s", id);
    xmpp_stanza_t *st = mkt_client_wait(c, spec, 5000);
    if (st)
        xmpp_stanza_release(st);
    return st != NULL;
}

/* A logged-in client sends @bytes; it must get @cond and be closed,
 * while @bystander keeps working. */
static void session_case(MktServer *srv, MktClient *bystander, const char *name, const char *bytes,
                         const char *cond)
{
    g_autofree char *why = NULL;
    MktClient *c = mkt_client_connect(srv, "mallory@localhost/m", "pm", 0, &why);
    if (!mkt_ok(c != NULL, "%s after login: mallory logs in", name)) {
        mkt_diag("why: %s", why);
        return;
    }
    mkt_client_send(c, "%s", bytes);
    mkt_ok(mkt_client_wait_closed(c, 5000), "%s after login: stream closed", name);
    if (!mkt_ok(g_strcmp0(mkt_client_stream_error(c), cond) == 0,
                "%s after login: <%s/> stream error", name, cond))
        mkt_diag("got %s; received: %s", mkt_client_stream_error(c), mkt_client_received_log(c));
    mkt_client_disconnect(c);
    g_autofree char *id = g_strdelimit(g_strdup(name), " ", '-');
    mkt_ok(mkt_client_connected(bystander) && echo_self(bystander, id),
           "%s after login: another client is unaffected", name);
}

int main(void)
{
    mkt_init("test-stream-errors", 180);
    MktServer *srv = mkt_server_start("[listen.c2s]\nmax_stanza_size = 8192\n", NULL);
    if (!mkt_ok(srv != NULL, "server starts (max_stanza_size = 8192)"))
        return mkt_done();
    /* Before authentication, on raw connections. */
    raw_case(srv, "mismatched tags", MKT_STREAM_HEADER, "<message><body>x</foo></message>",
             "not-well-formed");
    raw_case(srv, "garbage after header", MKT_STREAM_HEADER, "<<<>>>", "not-well-formed");
    raw_case(srv, "comment", MKT_STREAM_HEADER, "<!-- a comment -->", "restricted-xml");
    raw_case(srv, "processing instruction", MKT_STREAM_HEADER, "<?evil instruction?>",
             "restricted-xml");
    raw_case(srv, "DTD", NULL,
             "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'boom'>]>"
             "<stream:stream to='localhost' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
             "restricted-xml");
    raw_case(srv, "wrong stream namespace", NULL,
             "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
             "xmlns:stream='urn:example:not-streams' version='1.0'>",
             "invalid-namespace");
    raw_case(srv, "unknown host", NULL,
             "<?xml version='1.0'?><stream:stream to='unknown.example' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
             "host-unknown");
    {
        g_autofree char *big = g_strnfill(20000, 'A');
        g_autofree char *msg = g_strdup_printf("<message><body>%s</body></message>", big);
        raw_case(srv, "oversized stanza", MKT_STREAM_HEADER, msg, "policy-violation");
    }
    {
        GString *deep = g_string_new("<message>");
        for (int i = 0; i < 200; i++)
            g_string_append(deep, "<x>");
        raw_case(srv, "nesting too deep", MKT_STREAM_HEADER, deep->str, "policy-violation");
        g_string_free(deep, TRUE);
    }
    mkt_ok(mkt_server_alive(srv), "server survived the raw cases");
    mkt_server_register(srv, "alice", "pa");
    mkt_server_register(srv, "mallory", "pm");
    MktClient *a = mkt_client_connect(srv, "alice@localhost/a", "pa", 0, NULL);
    if (!mkt_ok(a != NULL, "bystander alice logs in")) {
        mkt_server_stop(srv);
        return mkt_done();
    }

    /* After authentication, with libstrophe. */
    session_case(srv, a, "not-well-formed", "<message to='alice@localhost'><body>x</bod></message>",
                 "not-well-formed");
    session_case(srv, a, "comment", "<!-- no comments -->", "restricted-xml");
    session_case(srv, a, "processing instruction", "<?pi data?>", "restricted-xml");
    {
        g_autofree char *big = g_strnfill(20000, 'B');
        g_autofree char *msg =
            g_strdup_printf("<message to='alice@localhost/a'><body>%s</body></message>", big);
        session_case(srv, a, "oversized stanza", msg, "policy-violation");
    }

    /* A stanza under the limit is fine. */
    {
        g_autofree char *body = g_strnfill(6000, 'C');
        mkt_client_send(a, "<message to='alice@localhost/a' id='big-ok'><body>%s</body></message>",
                        body);
        xmpp_stanza_t *st = mkt_client_wait(a, "message id=big-ok", 5000);
        g_autofree char *text = st ? mkt_stanza_child_text(st, "body") : NULL;
        mkt_ok(text && strlen(text) == 6000, "a 6000-byte body under the 8192 limit is delivered");
        if (st)
            xmpp_stanza_release(st);
    }

    mkt_client_disconnect(a);
    mkt_ok(mkt_server_alive(srv), "server survived every bad stream");
    mkt_ok(mkt_server_stop(srv), "server exits cleanly on SIGTERM");
    return mkt_done();
}
