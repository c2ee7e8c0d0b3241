/* Sessions: resource binding (client-chosen, server-generated, conflict
 * kicks the older session), whitespace keep-alives, closing the stream. */
#include "harness.h"
#include <string.h>

/* The session answers: a message to one's own full JID comes back. */
static gboolean echo_self(MktClient *c, const char *id)
{
    mkt_client_send(c, "<message to='%s' id='%s' type='chat'><body>self</body></message>",
                    mkt_client_jid(c), id);
    g_autofree char *spec = g_strdup_printf("message id=%s", id);
    xmpp_stanza_t *st = mkt_client_wait(c, spec, 5000);
    if (st)
        xmpp_stanza_release(st);
    return st != NULL;
}

int main(void)
{
    mkt_init("test-session", 120);
    MktServer *srv = mkt_server_start(NULL, NULL);
    if (!mkt_ok(srv != NULL, "server starts"))
        return mkt_done();
    mkt_ok(mkt_server_register(srv, "alice", "pw"), "register alice");

    /* Client-chosen resource. */
    g_autofree char *why = NULL;
    MktClient *a1 = mkt_client_connect(srv, "alice@localhost/desk", "pw", 0, &why);
    if (!mkt_ok(a1 != NULL, "login with resource 'desk'"))
        mkt_diag("why: %s", why);
    mkt_ok(a1 && g_strcmp0(mkt_client_jid(a1), "alice@localhost/desk") == 0,
           "bound JID is alice@localhost/desk");

    /* Server-generated resources: non-empty and distinct. */
    MktClient *g1 = mkt_client_connect(srv, "alice@localhost", "pw", 0, NULL);
    MktClient *g2 = mkt_client_connect(srv, "alice@localhost", "pw", 0, NULL);
    const char *j1 = g1 ? mkt_client_jid(g1) : NULL;
    const char *j2 = g2 ? mkt_client_jid(g2) : NULL;
    mkt_ok(j1 && g_str_has_prefix(j1, "alice@localhost/") &&
               strlen(j1) > strlen("alice@localhost/"),
           "bind without a resource gets a server-generated one (%s)", j1);
    mkt_ok(j1 && j2 && g_strcmp0(j1, j2) != 0, "two generated resources differ (%s, %s)", j1, j2);
    mkt_ok(g1 && echo_self(g1, "gen1"), "session with a generated resource works");

    /* Whitespace keep-alives between stanzas are accepted. */
    if (a1) {
        mkt_client_send(a1, " ");
        mkt_client_send(a1, "\n \n");
        mkt_pump(300);
        mkt_client_send(a1, "\t ");
        mkt_ok(mkt_client_connected(a1), "whitespace keep-alive keeps the stream up");
        mkt_ok(echo_self(a1, "ws1"), "stanzas after whitespace keep-alives are processed");
    }

    /* Resource conflict: the new session wins, the old one gets
     * <conflict/> and its stream is closed. */
    MktClient *a2 = mkt_client_connect(srv, "alice@localhost/desk", "pw", 0, &why);
    mkt_ok(a2 != NULL && g_strcmp0(mkt_client_jid(a2), "alice@localhost/desk") == 0,
           "second login with the same resource binds it");
    if (a1) {
        mkt_ok(mkt_client_wait_closed(a1, 5000), "first session is closed by the conflict");
        if (!mkt_ok(g_strcmp0(mkt_client_stream_error(a1), "conflict") == 0,
                    "first session gets a <conflict/> stream error"))
            mkt_diag("stream error: %s; received: %s", mkt_client_stream_error(a1),
                     mkt_client_received_log(a1));
    }
    mkt_ok(a2 && echo_self(a2, "cf1"), "the new session works");
    mkt_ok(g1 && mkt_client_connected(g1), "other resources of the account are untouched");

    /* Closing the stream: the server answers </stream:stream> and closes. */
    MktRaw *r = mkt_raw_login(mkt_server_port(srv), "alice", "pw", "raw");
    if (mkt_ok(r != NULL, "raw PLAIN login without TLS (tls = optional)")) {
        mkt_raw_write(r, "</stream:stream>", -1);
        mkt_ok(mkt_raw_read_until(r, "</stream:stream>", 5000),
               "server answers a closing </stream:stream>");
        mkt_ok(mkt_raw_read_until(r, NULL, 5000), "server closes the TCP connection");
        mkt_raw_free(r);
    }

    mkt_client_disconnect(a1);
    mkt_client_disconnect(a2);
    mkt_client_disconnect(g1);
    mkt_client_disconnect(g2);
    mkt_ok(mkt_server_alive(srv), "server is still running");
    mkt_ok(mkt_server_stop(srv), "server exits cleanly on SIGTERM");
    return mkt_done();
}
