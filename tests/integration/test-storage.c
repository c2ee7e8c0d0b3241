/* Storage backends end to end: accounts made by meerkatctl, login,
 * a message, and the accounts surviving a restart; on sqlite, and on a
 * throwaway PostgreSQL (tests/pg-tmp.sh). */
#include "harness.h"
#include <string.h>
#include <unistd.h>

static void scenario(const char *label, const char *extra)
{
    MktServer *srv = mkt_server_start(extra, NULL);
    if (!mkt_ok(srv != NULL, "%s: server starts", label))
        return;
    mkt_ok(mkt_server_register(srv, "alice", "alice pw"), "%s: meerkatctl registers alice", label);
    mkt_ok(mkt_server_register(srv, "bob", "bob pw"), "%s: meerkatctl registers bob", label);
    /* A duplicate registration must fail. */
    {
        g_autofree char *ctl = mkt_meerkatctl_path();
        const char *argv[] = {
            ctl, "-c", mkt_server_conf_path(srv), "register", "alice", "localhost", "other", NULL};
        mkt_ok(mkt_run(argv, NULL) != 0, "%s: registering alice twice fails", label);
        const char *users[] = {ctl, "-c", mkt_server_conf_path(srv), "users", "localhost", NULL};
        g_autofree char *out = NULL;
        int rc = mkt_run(users, &out);
        mkt_ok(rc == 0 && out && strstr(out, "alice") && strstr(out, "bob"),
               "%s: meerkatctl users lists alice and bob", label);
    }

    /* register-bulk: numbered accounts with one password; a second run
     * with a larger count keeps the existing ones and adds the rest. */
    {
        g_autofree char *ctl = mkt_meerkatctl_path();
        const char *bulk3[] = {
            ctl,       "-c", mkt_server_conf_path(srv), "register-bulk", "bulk", "3", "localhost",
            "bulk pw", NULL};
        mkt_ok(mkt_run(bulk3, NULL) == 0, "%s: meerkatctl register-bulk bulk 3", label);
        const char *bulk4[] = {
            ctl,       "-c", mkt_server_conf_path(srv), "register-bulk", "bulk", "4", "localhost",
            "bulk pw", NULL};
        mkt_ok(mkt_run(bulk4, NULL) == 0, "%s: register-bulk again with 4 succeeds", label);
        const char *bad[] = {
            ctl,  "-c", mkt_server_conf_path(srv), "register-bulk", "bulk", "0", "localhost",
            "pw", NULL};
        mkt_ok(mkt_run(bad, NULL) == 2, "%s: register-bulk with COUNT 0 is a usage error", label);
        for (int i = 0; i < 4; i++) {
            g_autofree char *jid = g_strdup_printf("bulk%d@localhost/r", i);
            MktClient *c = mkt_client_connect(srv, jid, "bulk pw", 0, NULL);
            mkt_ok(c != NULL, "%s: bulk%d logs in", label, i);
            mkt_client_disconnect(c);
        }
        MktClient *c = mkt_client_connect(srv, "bulk1@localhost/r", "wrong", 0, NULL);
        mkt_ok(c == NULL, "%s: bulk1 with a wrong password is refused", label);
        mkt_client_disconnect(c);
        c = mkt_client_connect(srv, "bulk4@localhost/r", "bulk pw", 0, NULL);
        mkt_ok(c == NULL, "%s: bulk4 was not created", label);
        mkt_client_disconnect(c);
    }

    for (int round = 0; round < 2; round++) {
        const char *when = round ? "after restart" : "first run";
        g_autofree char *why = NULL;
        MktClient *a = mkt_client_connect(srv, "alice@localhost/a", "alice pw", 0, &why);
        if (!mkt_ok(a != NULL, "%s %s: alice logs in", label, when))
            mkt_diag("why: %s", why);
        MktClient *b = mkt_client_connect(srv, "bob@localhost/b", "bob pw", 0, NULL);
        mkt_ok(b != NULL, "%s %s: bob logs in", label, when);
        if (a && b) {
            mkt_client_send(a,
                            "<message to='bob@localhost/b' type='chat' id='s%d'>"
                            "<body>over %s</body></message>",
                            round, label);
            g_autofree char *spec = g_strdup_printf("message id=s%d from=alice@localhost/a", round);
            xmpp_stanza_t *st = mkt_client_wait(b, spec, 5000);
            mkt_ok(st != NULL, "%s %s: alice's message reaches bob", label, when);
            if (st)
                xmpp_stanza_release(st);
        }
        MktClient *bad = mkt_client_connect(srv, "alice@localhost/x", "bob pw", 0, NULL);
        mkt_ok(bad == NULL, "%s %s: alice with bob's password is refused", label, when);
        mkt_client_disconnect(bad);
        mkt_client_disconnect(a);
        mkt_client_disconnect(b);
        if (round == 0)
            mkt_ok(mkt_server_restart(srv), "%s: restart", label);
    }

    /* passwd and unregister take effect for new logins. */
    {
        g_autofree char *ctl = mkt_meerkatctl_path();
        const char *pw[] = {
            ctl, "-c", mkt_server_conf_path(srv), "passwd", "bob", "localhost", "new bob pw", NULL};
        mkt_ok(mkt_run(pw, NULL) == 0, "%s: meerkatctl passwd bob", label);
        MktClient *b = mkt_client_connect(srv, "bob@localhost/b", "new bob pw", 0, NULL);
        mkt_ok(b != NULL, "%s: bob logs in with the new password", label);
        mkt_client_disconnect(b);
        b = mkt_client_connect(srv, "bob@localhost/b", "bob pw", 0, NULL);
        mkt_ok(b == NULL, "%s: the old password no longer works", label);
        mkt_client_disconnect(b);
        const char *un[] = {ctl,         "-c", mkt_server_conf_path(srv), "unregister", "bob",
                            "localhost", NULL};
        mkt_ok(mkt_run(un, NULL) == 0, "%s: meerkatctl unregister bob", label);
        b = mkt_client_connect(srv, "bob@localhost/b", "new bob pw", 0, NULL);
        mkt_ok(b == NULL, "%s: an unregistered user cannot log in", label);
        mkt_client_disconnect(b);
    }
    mkt_ok(mkt_server_stop(srv), "%s: server exits cleanly", label);
}

int main(void)
{
    mkt_init("test-storage", 240);
    scenario("sqlite", "[storage]\ndriver = sqlite3\ndatabase = accounts.db\n");

    g_autofree char *pgtmp = mkt_srcdir_path("tests/pg-tmp.sh");
    g_autoptr(GError) error = NULL;
    g_autofree char *pgdir = g_dir_make_tmp("mkt-pg-XXXXXX", &error);
    g_autofree char *owner = g_strdup_printf("%d", (int)getpid());
    if (!g_file_test(pgtmp, G_FILE_TEST_IS_EXECUTABLE) ||
        !g_file_test("/usr/lib/postgresql", G_FILE_TEST_IS_DIR)) {
        mkt_skip("no PostgreSQL or tests/pg-tmp.sh", "pgsql: scenario");
        return mkt_done();
    }
    const char *start[] = {"/bin/sh", pgtmp, "start", pgdir, owner, NULL};
    g_autofree char *out = NULL;
    int rc = mkt_run(start, &out);
    /* The port is the last line of the output (createdb may talk). */
    guint port = 0;
    if (rc == 0 && out) {
        g_auto(GStrv) lines = g_strsplit(g_strstrip(out), "\n", -1);
        guint n = g_strv_length(lines);
        port = n ? (guint)g_ascii_strtoull(lines[n - 1], NULL, 10) : 0;
    }
    if (mkt_ok(rc == 0 && port > 0, "pgsql: throwaway PostgreSQL starts")) {
        g_autofree char *conf =
            g_strdup_printf("[storage]\ndriver = pgsql\nhost = 127.0.0.1\nport = %u\n"
                            "user = meerkat\ndatabase = meerkat\n",
                            port);
        scenario("pgsql", conf);
    } else {
        mkt_diag("%s", out ? out : "");
    }
    const char *stop[] = {"/bin/sh", pgtmp, "stop", pgdir, NULL};
    mkt_run(stop, NULL);
    const char *rm[] = {"rm", "-rf", pgdir, NULL};
    mkt_run(rm, NULL);
    return mkt_done();
}
