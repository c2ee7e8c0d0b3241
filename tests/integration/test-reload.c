/* SIGHUP: enabling and disabling a module at run time (conf.d), with
 * connected clients staying connected; a broken configuration on reload
 * keeps the running one. */
#include "harness.h"
#include <glib/gstdio.h>
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* Pings the server; returns "result", "service-unavailable", "error" or NULL. */
static const char *ping(MktClient *c, const char *id)
{
    mkt_client_send(c, "<iq type='get' to='localhost' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                    id);
    g_autofree char *spec = g_strdup_printf("iq id=%s", id);
    xmpp_stanza_t *st = mkt_client_wait(c, spec, 5000);
    if (!st)
        return NULL;
    const char *res = "error";
    if (mkt_stanza_matches(st, "iq type=result from=localhost"))
        res = "result";
    else if (mkt_stanza_matches(st, "iq type=error >{" NS_STANZAS "}service-unavailable"))
        res = "service-unavailable";
    xmpp_stanza_release(st);
    return res;
}

/* Pings until the answer is @want (a reload is asynchronous). */
static gboolean ping_until(MktClient *c, const char *want, const char *prefix)
{
    for (int i = 0; i < 25; i++) {
        g_autofree char *id = g_strdup_printf("%s%d", prefix, i);
        if (g_strcmp0(ping(c, id), want) == 0)
            return TRUE;
        mkt_pump(200);
    }
    return FALSE;
}

int main(void)
{
    mkt_init("test-reload", 120);
    MktServer *srv = mkt_server_start(NULL, NULL);
    if (!mkt_ok(srv != NULL, "server starts without mod_ping"))
        return mkt_done();
    mkt_server_register(srv, "alice", "pa");
    mkt_server_register(srv, "bob", "pb");
    MktClient *a = mkt_client_connect(srv, "alice@localhost/a", "pa", 0, NULL);
    MktClient *b = mkt_client_connect(srv, "bob@localhost/b", "pb", MKT_MANDATORY_TLS, NULL);
    if (!mkt_ok(a && b, "alice (plain) and bob (TLS) log in")) {
        mkt_server_stop(srv);
        return mkt_done();
    }
    const char *r = ping(a, "p0");
    mkt_ok(g_strcmp0(r, "service-unavailable") == 0,
           "without mod_ping, a server ping gets service-unavailable (%s)", r);

    mkt_ok(mkt_server_enable_module(srv, "mod_ping"), "add conf.d/mod_ping.conf");
    mkt_server_reload(srv, 300);
    mkt_ok(ping_until(a, "result", "p1-"), "after SIGHUP the same connection's ping gets a result");
    mkt_ok(mkt_client_connected(a) && mkt_client_connected(b), "both clients stayed connected");
    mkt_ok(g_strcmp0(ping(b, "pb1"), "result") == 0, "the TLS client's ping gets a result too");
    mkt_client_send(a,
                    "<message to='bob@localhost/b' id='after'><body>still here</body></message>");
    xmpp_stanza_t *st = mkt_client_wait(b, "message id=after from=alice@localhost/a", 5000);
    mkt_ok(st != NULL, "sessions still route messages after the reload");
    if (st)
        xmpp_stanza_release(st);

    /* A broken configuration: the reload fails, the old one stays. */
    g_autofree char *conf = NULL;
    g_file_get_contents(mkt_server_conf_path(srv), &conf, NULL, NULL);
    g_autofree char *broken = g_strconcat(conf, "\n[general]\nno_such_key = 1\n", NULL);
    g_file_set_contents(mkt_server_conf_path(srv), broken, -1, NULL);
    mkt_server_reload(srv, 500);
    mkt_ok(mkt_server_alive(srv), "a broken configuration on SIGHUP does not stop the server");
    mkt_ok(g_strcmp0(ping(a, "p2"), "result") == 0, "the running configuration is kept");
    g_autofree char *log = mkt_server_log(srv);
    mkt_ok(strstr(log, "no_such_key") != NULL, "the log names the bad key");
    g_file_set_contents(mkt_server_conf_path(srv), conf, -1, NULL);

    /* Disabling: remove the file, SIGHUP, the IQ is unhandled again. */
    g_autofree char *pingconf = g_build_filename(mkt_server_confd(srv), "mod_ping.conf", NULL);
    mkt_ok(g_unlink(pingconf) == 0, "remove conf.d/mod_ping.conf");
    mkt_server_reload(srv, 300);
    mkt_ok(ping_until(a, "service-unavailable", "p3-"),
           "after SIGHUP without the file, ping gets service-unavailable again");
    mkt_ok(mkt_client_connected(a) && mkt_client_connected(b), "clients still connected");

    mkt_client_disconnect(a);
    mkt_client_disconnect(b);
    mkt_ok(mkt_server_stop(srv), "server exits cleanly on SIGTERM");
    return mkt_done();
}
