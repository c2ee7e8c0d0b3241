/* SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS with channel binding
 * (tls-exporter over TLS 1.3, tls-unique over TLS 1.2), through our own
 * GnuTLS + GNU SASL client; wrong binding data must be refused, and the
 * 'y' flag only when -PLUS was offered. */
#include "harness.h"
#include <string.h>

/* The server logs a failure's reason before the <failure/> goes out. */
static gboolean log_has(MktServer *srv, const char *text)
{
    g_autofree char *log = mkt_server_log(srv);
    return log && strstr(log, text) != NULL;
}

static void plus(MktServer *srv, const char *mech, gboolean tls12)
{
    const char *ver = tls12 ? "TLS 1.2 tls-unique" : "TLS 1.3 tls-exporter";
    g_autofree char *detail = NULL;
    gboolean ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", mech, tls12,
                                      MKT_CB_GOOD, &detail);
    if (!mkt_ok(ok, "%s over %s: authenticates", mech, ver))
        mkt_diag("%s", detail);

    g_clear_pointer(&detail, g_free);
    ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", mech, tls12, MKT_CB_WRONG,
                             &detail);
    mkt_ok(!ok, "%s over %s: wrong channel binding data is refused", mech, ver);
    if (!mkt_ok(detail && g_str_has_prefix(detail, "failure: "),
                "%s over %s: wrong binding gets a SASL <failure/>", mech, ver))
        mkt_diag("%s", detail);

    g_clear_pointer(&detail, g_free);
    ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "wrong pw", mech, tls12, MKT_CB_GOOD,
                             &detail);
    mkt_ok(!ok && detail && strcmp(detail, "failure: not-authorized") == 0,
           "%s over %s: wrong password gets not-authorized (%s)", mech, ver, detail);
}

int main(void)
{
    mkt_init("test-sasl-plus", 120);
    MktServer *srv = mkt_server_start(
        "[auth]\nmechanisms = SCRAM-SHA-1;SCRAM-SHA-256;SCRAM-SHA-1-PLUS;SCRAM-SHA-256-PLUS\n",
        NULL);
    if (mkt_ok(srv != NULL, "server with -PLUS mechanisms starts")) {
        mkt_ok(mkt_server_register(srv, "alice", "plus pw"), "register alice");
        plus(srv, "SCRAM-SHA-256-PLUS", FALSE);
        plus(srv, "SCRAM-SHA-1-PLUS", FALSE);
        plus(srv, "SCRAM-SHA-256-PLUS", TRUE);
        plus(srv, "SCRAM-SHA-1-PLUS", TRUE);
        /* -PLUS offered over TLS 1.2 (tls-unique, which every client
         * that binds knows): 'y' ("you seem unable to bind") is a
         * downgrade. Over TLS 1.3 the default scram_y_flag = tls13 lets
         * it through: a client may well know tls-unique only. */
        g_autofree char *detail = NULL;
        gboolean ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", "SCRAM-SHA-256",
                                          TRUE, MKT_CB_CLAIM_Y, &detail);
        mkt_ok(!ok && detail && strcmp(detail, "failure: not-authorized") == 0,
               "SCRAM-SHA-256 with 'y' refused when -PLUS is offered over TLS 1.2 (%s)", detail);
        mkt_ok(log_has(srv, "flag 'y' while -PLUS with tls-unique was offered"),
               "the log says why");
        g_clear_pointer(&detail, g_free);
        ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", "SCRAM-SHA-256", FALSE,
                                 MKT_CB_CLAIM_Y, &detail);
        mkt_ok(ok, "SCRAM-SHA-256 with 'y' accepted over TLS 1.3 by default (%s)", detail);
        mkt_server_stop(srv);
    }

    /* scram_y_flag = refuse: RFC 5802 to the letter, over TLS 1.3 too. */
    srv = mkt_server_start("[auth]\nmechanisms = SCRAM-SHA-256;SCRAM-SHA-256-PLUS\n"
                           "[listen.c2s]\nscram_y_flag = refuse\n",
                           NULL);
    if (mkt_ok(srv != NULL, "server with scram_y_flag = refuse starts")) {
        mkt_server_register(srv, "alice", "plus pw");
        g_autofree char *detail = NULL;
        gboolean ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", "SCRAM-SHA-256",
                                          FALSE, MKT_CB_CLAIM_Y, &detail);
        mkt_ok(!ok && detail && strcmp(detail, "failure: not-authorized") == 0,
               "scram_y_flag = refuse: 'y' refused over TLS 1.3 (%s)", detail);
        mkt_ok(log_has(srv, "flag 'y' while -PLUS with tls-exporter was offered"),
               "the log says why");
        g_clear_pointer(&detail, g_free);
        ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", "SCRAM-SHA-256-PLUS",
                                 FALSE, MKT_CB_GOOD, &detail);
        mkt_ok(ok, "scram_y_flag = refuse: -PLUS still works (%s)", detail);
        mkt_server_stop(srv);
    }

    /* Without -PLUS in [auth] mechanisms, they are not offered. */
    srv = mkt_server_start("[auth]\nmechanisms = SCRAM-SHA-256\n", NULL);
    if (mkt_ok(srv != NULL, "server without -PLUS starts")) {
        mkt_server_register(srv, "alice", "plus pw");
        g_autofree char *detail = NULL;
        gboolean ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw",
                                          "SCRAM-SHA-256-PLUS", FALSE, MKT_CB_GOOD, &detail);
        mkt_ok(!ok && detail && g_str_has_prefix(detail, "mechanism not offered"),
               "SCRAM-SHA-256-PLUS not offered when not configured");
        /* No -PLUS offered: a client that could bind rightly says 'y'. */
        g_clear_pointer(&detail, g_free);
        ok = mkt_sasl_plus_login(mkt_server_port(srv), "alice", "plus pw", "SCRAM-SHA-256", FALSE,
                                 MKT_CB_CLAIM_Y, &detail);
        mkt_ok(ok, "SCRAM-SHA-256 with the 'y' flag accepted when -PLUS is not offered (%s)",
               detail);
        mkt_server_stop(srv);
    }
    return mkt_done();
}
