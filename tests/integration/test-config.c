/* Configuration errors stop meerkatd with a message naming the file and
 * the key; a module that fails to start makes it exit non-zero naming
 * the module. */
#include "harness.h"
#include <string.h>

static int check_config(MktServer *srv, char **out)
{
    g_autofree char *bin = mkt_meerkatd_path();
    const char *argv[] = {bin, "-c", mkt_server_conf_path(srv), "--check-config", NULL};
    return mkt_run(argv, out);
}

static void bad_key(const char *label, const char *extra, const char *key)
{
    MktServer *srv = mkt_server_prepare(extra, NULL);
    g_autofree char *out = NULL;
    int rc = check_config(srv, &out);
    mkt_ok(rc > 0, "%s: --check-config exits non-zero (%d)", label, rc);
    if (!mkt_ok(out && strstr(out, "meerkat.conf") && strstr(out, key),
                "%s: the message names meerkat.conf and '%s'", label, key))
        mkt_diag("output: %s", out);
    /* And meerkatd itself refuses to start. */
    mkt_ok(!mkt_server_launch(srv) && mkt_server_exit_code(srv) > 0,
           "%s: meerkatd refuses to start", label);
    mkt_server_stop(srv);
}

int main(void)
{
    mkt_init("test-config", 120);

    const char *all[] = {"mod_roster", "mod_disco", "mod_ping", NULL};
    MktServer *srv = mkt_server_prepare(NULL, all);
    g_autofree char *out = NULL;
    int rc = check_config(srv, &out);
    if (!mkt_ok(rc == 0, "--check-config accepts the test configuration with three modules"))
        mkt_diag("output: %s", out);
    mkt_server_stop(srv);

    bad_key("unknown key", "[general]\nbogus_key = 1\n", "bogus_key");
    bad_key("bad tls value", "[listen.c2s]\ntls = sometimes\n", "tls");
    bad_key("bad port", "[listen.c2s]\nport = 99999\n", "port");
    bad_key("bad storage driver", "[storage]\ndriver = oracle\n", "driver");

    /* A module's own key, in its conf.d file. */
    const char *ping_only[] = {"mod_ping", NULL};
    srv = mkt_server_prepare(NULL, ping_only);
    g_autofree char *pingconf = g_build_filename(mkt_server_confd(srv), "mod_ping.conf", NULL);
    g_file_set_contents(pingconf, "[mod_ping]\nping_interval = banana\n", -1, NULL);
    g_clear_pointer(&out, g_free);
    rc = check_config(srv, &out);
    mkt_ok(rc > 0, "bad module value: --check-config exits non-zero");
    if (!mkt_ok(out && strstr(out, "mod_ping.conf") && strstr(out, "ping_interval"),
                "bad module value: the message names conf.d/mod_ping.conf and ping_interval"))
        mkt_diag("output: %s", out);
    g_file_set_contents(pingconf, "[mod_ping]\nno_such_option = 1\n", -1, NULL);
    g_clear_pointer(&out, g_free);
    rc = check_config(srv, &out);
    mkt_ok(rc > 0 && out && strstr(out, "no_such_option"),
           "unknown module key: rejected, naming the key");
    mkt_server_stop(srv);

    /* A module that does not exist. */
    srv = mkt_server_prepare(NULL, NULL);
    g_autofree char *ghost = g_build_filename(mkt_server_confd(srv), "mod_ghost.conf", NULL);
    g_file_set_contents(ghost, "[mod_ghost]\n", -1, NULL);
    mkt_ok(!mkt_server_launch(srv) && mkt_server_exit_code(srv) > 0,
           "a missing module: meerkatd exits non-zero");
    g_autofree char *log = mkt_server_log(srv);
    mkt_ok(strstr(log, "mod_ghost") != NULL, "a missing module: the error names mod_ghost");
    mkt_server_stop(srv);

    /* A module whose start() fails (tests/integration/mod_failstart.c). */
    g_autofree char *libs = mkt_builddir_path("tests/integration/.libs");
    g_autofree char *extra = g_strdup_printf("[general]\nmodule_dir = %s\n", libs);
    srv = mkt_server_prepare(extra, NULL);
    g_autofree char *fail = g_build_filename(mkt_server_confd(srv), "mod_failstart.conf", NULL);
    g_file_set_contents(fail, "[mod_failstart]\n", -1, NULL);
    mkt_ok(!mkt_server_launch(srv), "a module that fails to start: meerkatd does not run");
    rc = mkt_server_exit_code(srv);
    mkt_ok(rc > 0 && rc < 128, "a module that fails to start: meerkatd exits non-zero (%d)", rc);
    g_clear_pointer(&log, g_free);
    log = mkt_server_log(srv);
    if (!mkt_ok(strstr(log, "mod_failstart") != NULL,
                "a module that fails to start: the error names mod_failstart"))
        mkt_diag("log: %s", log);
    mkt_ok(strstr(log, "always fails to start") != NULL,
           "a module that fails to start: the module's own error message is shown");
    mkt_server_stop(srv);
    return mkt_done();
}
