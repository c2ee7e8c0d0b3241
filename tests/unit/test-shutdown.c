/* The auth pool at shutdown (core/server.c, core/account.c): once
 * mk_server_auth_drain ran, at the start of mk_server_free, new jobs are
 * refused instead of being pushed to a freed pool, and a module's account
 * request is answered with an error rather than lost. A whole server
 * (storage, workers, modules; no listener) in a temporary directory. */
#include "conffile.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"
#include <glib/gstdio.h>
#include <string.h>

static MkModule *mod;

static const MkModuleDesc accounts_desc = {MK_MODULE_DESC_HEADER, .name = "mod_accounts"};

typedef struct {
    gboolean done, destroyed;
    GError *error;
} Call;

static void call_done(const GError *error, gpointer data)
{
    Call *call = data;
    call->done = TRUE;
    call->error = error ? g_error_copy(error) : NULL;
}

static void call_destroy(gpointer data)
{
    Call *call = data;
    call->destroyed = TRUE;
}

static void iterate_until(gboolean *flag)
{
    /* The deadline only keeps a lost completion from hanging the suite. */
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    while (!*flag && g_get_monotonic_time() < deadline)
        g_main_context_iteration(NULL, TRUE);
    g_assert_true(*flag);
}

static void never_run(gpointer job)
{
    g_assert_not_reached();
}

static void test_auth_refused_after_drain(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("mk-shutdown-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *conf = g_build_filename(dir, "meerkat.conf", NULL);
    g_autofree char *text = g_strdup_printf("[general]\nhosts = localhost\nstate_dir = %s\n"
                                            "workers = 1\nmodule_dir = %s\n",
                                            dir, dir);
    g_assert_true(g_file_set_contents(conf, text, -1, NULL));
    MkConfigData *cfg = mk_config_load(conf, &error);
    g_assert_no_error(error);
    MkServer *srv = mk_server_new(cfg, &error);
    g_assert_no_error(error);
    g_assert_nonnull(srv);
    mod = mk_module_start_adhoc(srv->modules, &accounts_desc, "default", &error);
    g_assert_no_error(error);

    /* Before shutdown the pool takes account work. */
    Call before = {0};
    mk_account_register(mod, "zoe", "localhost", "secret", call_done, &before, call_destroy);
    iterate_until(&before.destroyed);
    g_assert_no_error(before.error);

    mk_server_auth_drain(srv);

    /* Afterwards: refused, the job stays the caller's ... */
    MkPoolJob job = {.run = never_run};
    g_assert_false(mk_server_auth_push(srv, &job));
    /* ... and a module hears about it on its own thread, later. */
    Call after = {0};
    mk_account_register(mod, "yan", "localhost", "secret", call_done, &after, call_destroy);
    g_assert_false(after.done);
    iterate_until(&after.destroyed);
    g_assert_true(after.done);
    g_assert_error(after.error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_FAILED);
    g_clear_error(&after.error);
    /* A second drain (mk_server_free's) is harmless. */
    mk_module_stop_adhoc(mod);
    mk_server_free(srv);

    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_unlink(path);
    }
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/server/auth-refused-after-drain", test_auth_refused_after_drain);
    return g_test_run();
}
