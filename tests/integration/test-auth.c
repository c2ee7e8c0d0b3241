/* Authentication: every SASL mechanism libstrophe speaks, over STARTTLS,
 * one server per mechanism; wrong password and unknown user get
 * <not-authorized/>; ANONYMOUS only where enabled; tls = required hides
 * SASL until STARTTLS; tls = direct. */
#include "harness.h"
#include <string.h>

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

/* The <mechanisms/> the server offered last, as "A B C" (from the
 * client's log of received elements). */
static char *offered_mechanisms(const char *log)
{
    const char *last = NULL;
    for (const char *p = log; (p = strstr(p, "<mechanisms")); p++)
        last = p;
    GString *out = g_string_new(NULL);
    if (!last)
        return g_string_free(out, FALSE);
    const char *end = strstr(last, "</mechanisms>");
    for (const char *p = last; (p = strstr(p, "<mechanism>")) && (!end || p < end);) {
        p += strlen("<mechanism>");
        const char *e = strchr(p, '<');
        if (!e)
            break;
        if (out->len)
            g_string_append_c(out, ' ');
        g_string_append_len(out, p, e - p);
        p = e;
    }
    return g_string_free(out, FALSE);
}

static gboolean saw_sasl_failure(const char *log, const char *condition)
{
    const char *f = strstr(log, "<failure");
    if (!f)
        return FALSE;
    g_autofree char *want = g_strdup_printf("<%s", condition);
    return strstr(f, want) != NULL;
}

static void mechanism_login(const char *mech)
{
    g_autofree char *conf = g_strdup_printf("[auth]\nmechanisms = %s\n", mech);
    MktServer *srv = mkt_server_start(conf, NULL);
    if (!mkt_ok(srv != NULL, "%s: server starts", mech))
        return;
    mkt_ok(mkt_server_register(srv, "alice", "s3cret pass"), "%s: register alice", mech);

    g_autofree char *why = NULL;
    MktClient *c =
        mkt_client_connect(srv, "alice@localhost/r1", "s3cret pass", MKT_MANDATORY_TLS, &why);
    if (mkt_ok(c != NULL, "%s: login over STARTTLS succeeds", mech)) {
        mkt_ok(mkt_client_secured(c), "%s: stream is under TLS", mech);
        g_autofree char *offered = offered_mechanisms(mkt_client_received_log(c));
        if (!mkt_ok(g_strcmp0(offered, mech) == 0, "%s: only %s offered", mech, mech))
            mkt_diag("offered: '%s'", offered);
        mkt_ok(g_strcmp0(mkt_client_jid(c), "alice@localhost/r1") == 0,
               "%s: bound JID is alice@localhost/r1", mech);
        /* The session works: the server answers an IQ to the account. */
        mkt_client_send(c, "<iq type='get' id='v1' to='localhost'>"
                           "<query xmlns='jabber:iq:version-unknown-ns'/></iq>");
        xmpp_stanza_t *st = mkt_client_wait(c, "iq id=v1 type=error", 5000);
        mkt_ok(st != NULL, "%s: session answers an IQ (error for unknown namespace)", mech);
        if (st)
            xmpp_stanza_release(st);
        mkt_client_disconnect(c);
    } else {
        mkt_diag("why: %s", why);
    }

    /* Wrong password. */
    g_clear_pointer(&why, g_free);
    c = mkt_client_connect(srv, "alice@localhost/r2", "wrong", MKT_MANDATORY_TLS, &why);
    mkt_ok(c == NULL, "%s: wrong password is refused", mech);
    mkt_client_disconnect(c);

    /* The same with a fresh client whose log we can read. */
    c = mkt_client_connect(srv, "alice@localhost/r2", "wrong", MKT_MANDATORY_TLS | MKT_NO_WAIT,
                           NULL);
    if (c) {
        mkt_client_wait_closed(c, 10000);
        mkt_ok(saw_sasl_failure(mkt_client_received_log(c), "not-authorized"),
               "%s: wrong password gets <failure><not-authorized/>", mech);
        mkt_ok(!mkt_client_connected(c), "%s: no session with a wrong password", mech);
        mkt_client_disconnect(c);
    }

    /* Unknown user: the same answer, so accounts cannot be probed. */
    c = mkt_client_connect(srv, "nobody@localhost/r1", "s3cret pass",
                           MKT_MANDATORY_TLS | MKT_NO_WAIT, NULL);
    if (c) {
        mkt_client_wait_closed(c, 10000);
        mkt_ok(saw_sasl_failure(mkt_client_received_log(c), "not-authorized"),
               "%s: unknown user gets <failure><not-authorized/>", mech);
        mkt_ok(!mkt_client_connected(c), "%s: no session for an unknown user", mech);
        mkt_client_disconnect(c);
    }
    mkt_ok(mkt_server_stop(srv), "%s: server exits cleanly on SIGTERM", mech);
}

static void anonymous(void)
{
    MktServer *srv = mkt_server_start(
        "[auth]\nmechanisms = PLAIN;SCRAM-SHA-256;ANONYMOUS\nanonymous_hosts = localhost\n", NULL);
    if (!mkt_ok(srv != NULL, "ANONYMOUS: server with anonymous_hosts starts"))
        return;
    MktRaw *raw = mkt_raw_connect(mkt_server_port(srv));
    if (raw) {
        mkt_raw_write(raw, MKT_STREAM_HEADER, -1);
        mkt_raw_read_until(raw, "features>", 5000);
        g_autofree char *offered = offered_mechanisms(mkt_raw_data(raw));
        const char *first = strstr(offered, "ANONYMOUS");
        mkt_ok(first != NULL, "ANONYMOUS: offered (%s)", offered);
        mkt_ok(first && !strstr(first + 1, "ANONYMOUS"), "ANONYMOUS: offered once (%s)", offered);
        /* An empty trace sent as "=" (RFC 6120 §6.4.2, RFC 4505). */
        mkt_raw_clear(raw);
        mkt_raw_write(raw, "<auth xmlns='" NS_SASL "' mechanism='ANONYMOUS'>=</auth>", -1);
        gboolean ok = mkt_raw_read_until(raw, "<success", 5000);
        if (!mkt_ok(ok, "ANONYMOUS: empty initial response '=' gets <success/>"))
            mkt_diag("read: %s", mkt_raw_data(raw));
        mkt_raw_free(raw);
    }
    g_autofree char *why = NULL;
    MktClient *c = mkt_client_connect(srv, "localhost", NULL, MKT_MANDATORY_TLS, &why);
    if (mkt_ok(c != NULL, "ANONYMOUS: anonymous login succeeds")) {
        const char *jid = mkt_client_jid(c);
        const char *at = jid ? strstr(jid, "@localhost/") : NULL;
        mkt_ok(at && at != jid && at[strlen("@localhost/")] != '\0',
               "ANONYMOUS: bound to a generated JID node@localhost/resource (%s)", jid);
        MktClient *c2 = mkt_client_connect(srv, "localhost", NULL, MKT_MANDATORY_TLS, NULL);
        if (mkt_ok(c2 != NULL, "ANONYMOUS: second anonymous login succeeds")) {
            mkt_ok(g_strcmp0(mkt_client_jid(c), mkt_client_jid(c2)) != 0,
                   "ANONYMOUS: two anonymous sessions get different JIDs");
            /* They can talk to each other. */
            mkt_client_send(c, "<message to='%s' type='chat' id='an1'><body>anon</body></message>",
                            mkt_client_jid(c2));
            xmpp_stanza_t *st = mkt_client_wait(c2, "message id=an1", 5000);
            mkt_ok(st && g_strcmp0(mkt_stanza_attr(st, "from"), mkt_client_jid(c)) == 0,
                   "ANONYMOUS: message between anonymous users arrives from the sender's JID");
            if (st)
                xmpp_stanza_release(st);
        }
        mkt_client_disconnect(c2);
    } else {
        mkt_diag("why: %s", why);
    }
    mkt_client_disconnect(c);
    mkt_server_stop(srv);

    /* Not enabled: not offered, and refused when tried anyway. */
    srv = mkt_server_start(NULL, NULL);
    if (!mkt_ok(srv != NULL, "ANONYMOUS off: server starts"))
        return;
    c = mkt_client_connect(srv, "localhost", NULL, MKT_MANDATORY_TLS, NULL);
    mkt_ok(c == NULL, "ANONYMOUS off: anonymous login fails");
    mkt_client_disconnect(c);

    MktRaw *r = mkt_raw_connect(mkt_server_port(srv));
    if (r) {
        mkt_raw_write(r, MKT_STREAM_HEADER, -1);
        mkt_raw_read_until(r, "features>", 5000);
        mkt_ok(strstr(mkt_raw_data(r), ">ANONYMOUS<") == NULL, "ANONYMOUS off: not offered");
        mkt_raw_clear(r);
        mkt_raw_write(r, "<auth xmlns='" NS_SASL "' mechanism='ANONYMOUS'/>", -1);
        gboolean got = mkt_raw_read_until(r, "failure", 5000);
        mkt_raw_read_until(r, "</failure>", 1000);
        if (!mkt_ok(got && strstr(mkt_raw_data(r), "invalid-mechanism"),
                    "ANONYMOUS off: <auth mechanism='ANONYMOUS'/> gets <invalid-mechanism/>"))
            mkt_diag("read: %s", mkt_raw_data(r));
        mkt_raw_free(r);
    }
    mkt_server_stop(srv);
}

static void tls_required(void)
{
    MktServer *srv = mkt_server_start("[listen.c2s]\ntls = required\n", NULL);
    if (!mkt_ok(srv != NULL, "tls=required: server starts"))
        return;
    mkt_server_register(srv, "alice", "pw");
    MktRaw *r = mkt_raw_connect(mkt_server_port(srv));
    if (r) {
        mkt_raw_write(r, MKT_STREAM_HEADER, -1);
        mkt_raw_read_until(r, "features>", 5000);
        const char *d = mkt_raw_data(r);
        const char *tls = strstr(d, "<starttls");
        if (!mkt_ok(tls != NULL, "tls=required: STARTTLS offered"))
            mkt_diag("read: %s", d);
        mkt_ok(tls && strstr(tls, "<required"), "tls=required: STARTTLS marked <required/>");
        mkt_ok(strstr(d, "<mechanisms") == NULL, "tls=required: no SASL before STARTTLS");
        mkt_ok(strstr(d, "urn:ietf:params:xml:ns:xmpp-bind") == NULL,
               "tls=required: no bind before STARTTLS");
        mkt_raw_free(r);
    }
    MktClient *c = mkt_client_connect(srv, "alice@localhost/x", "pw", MKT_DISABLE_TLS, NULL);
    mkt_ok(c == NULL, "tls=required: a client that refuses TLS gets no session");
    mkt_client_disconnect(c);
    g_autofree char *why = NULL;
    c = mkt_client_connect(srv, "alice@localhost/x", "pw", MKT_MANDATORY_TLS, &why);
    if (!mkt_ok(c && mkt_client_secured(c), "tls=required: login after STARTTLS succeeds"))
        mkt_diag("why: %s", why);
    mkt_client_disconnect(c);
    mkt_server_stop(srv);
}

static void tls_direct(void)
{
    MktServer *srv = mkt_server_start("[listen.c2s]\ntls = direct\n", NULL);
    if (!mkt_ok(srv != NULL, "tls=direct: server starts"))
        return;
    mkt_server_register(srv, "alice", "pw");
    g_autofree char *why = NULL;
    MktClient *c = mkt_client_connect(srv, "alice@localhost/d", "pw", MKT_DIRECT_TLS, &why);
    if (!mkt_ok(c && mkt_client_secured(c), "tls=direct: login over direct TLS succeeds"))
        mkt_diag("why: %s", why);
    mkt_client_disconnect(c);
    mkt_server_stop(srv);
}

int main(void)
{
    mkt_init("test-auth", 240);
    mechanism_login("PLAIN");
    mechanism_login("SCRAM-SHA-1");
    mechanism_login("SCRAM-SHA-256");
    anonymous();
    tls_required();
    tls_direct();
    return mkt_done();
}
