/* The module loader against purpose-built and broken modules
 * (tests/fixtures/): descriptor and ABI checks, dependencies and their
 * order, failed starts that leave nothing behind, per-host-type values,
 * and SIGHUP-style re-application of a changed conf.d. */
#include "conffile.h"
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"
#include <glib/gstdio.h>
#include <string.h>

void mk_server_set_for_tests(MkServer *srv);

#define FIXTURE_DIR MK_BUILDDIR "/tests/fixtures/.libs"

/* The fixtures resolve these from the test program: make sure the
 * linker keeps every one of them (-export-dynamic exports them). */
static const void *const api[] = {
    (const void *)mk_hook_add,          (const void *)mk_hook_call_set_error,
    (const void *)mk_iq_register,       (const void *)mk_iq_reply,
    (const void *)mk_disco_feature_add, (const void *)mk_disco_identity_add,
    (const void *)mk_disco_item_add,    (const void *)mk_route_register,
    (const void *)mk_timer_add,         (const void *)mk_counter_new,
    (const void *)mk_counter_add,       (const void *)mk_config_get_string,
    (const void *)mk_config_get_int,    (const void *)mk_config_get_bool,
    (const void *)mk_config_get_strv,   (const void *)mk_module_name,
    (const void *)mk_module_host_type,  (const void *)mk_xml_new,
};

typedef struct {
    char *dir;
    char *main;
    MkServer srv;
} Fx;

static Fx *fx_new(const char *extra)
{
    Fx *fx = g_new0(Fx, 1);
    g_autoptr(GError) error = NULL;
    fx->dir = g_dir_make_tmp("mk-modules-XXXXXX", &error);
    g_assert_no_error(error);
    fx->main = g_build_filename(fx->dir, "meerkat.conf", NULL);
    g_autofree char *text = g_strdup_printf("[general]\nhosts = localhost\nmodule_dir = %s\n%s",
                                            FIXTURE_DIR, extra ? extra : "");
    g_assert_true(g_file_set_contents(fx->main, text, -1, NULL));
    g_autofree char *confd = g_build_filename(fx->dir, "conf.d", NULL);
    g_assert_cmpint(g_mkdir(confd, 0700), ==, 0);
    g_unsetenv("MK_FIXTURE_LOG");
    return fx;
}

static void enable(Fx *fx, const char *name, const char *text)
{
    g_autofree char *file = g_strdup_printf("%s.conf", name);
    g_autofree char *path = g_build_filename(fx->dir, "conf.d", file, NULL);
    g_assert_true(g_file_set_contents(path, text ? text : "", -1, NULL));
}

static void disable(Fx *fx, const char *name)
{
    g_autofree char *file = g_strdup_printf("%s.conf", name);
    g_autofree char *path = g_build_filename(fx->dir, "conf.d", file, NULL);
    g_assert_cmpint(g_unlink(path), ==, 0);
}

static MkConfigData *load(Fx *fx)
{
    g_autoptr(GError) error = NULL;
    MkConfigData *cfg = mk_config_load(fx->main, &error);
    g_assert_no_error(error);
    return cfg;
}

/* Loads the config and builds a server with hosts and modules (no
 * modules applied yet). */
static void start_server(Fx *fx)
{
    fx->srv.config = load(fx);
    fx->srv.hosts = mk_hosts_new(fx->srv.config);
    fx->srv.modules = mk_modules_new(&fx->srv);
    mk_server_set_for_tests(&fx->srv);
}

static void fx_free(Fx *fx)
{
    mk_modules_free(fx->srv.modules);
    mk_hosts_free(fx->srv.hosts);
    mk_config_free(fx->srv.config);
    mk_server_set_for_tests(NULL);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", fx->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(fx->dir);
    g_free(fx->main);
    g_free(fx);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Fx, fx_free)

static char *running(Fx *fx, const char *host_type)
{
    g_auto(GStrv) names = mk_modules_running(fx->srv.modules, host_type);
    return g_strjoinv(",", names);
}

static const char *fixture_log(void)
{
    const char *log = g_getenv("MK_FIXTURE_LOG");
    return log ? log : "";
}

/* Runs the fixture hook on @domain: mod_good answers with its values. */
static char *hook_answer(Fx *fx, const char *domain, MkResult *result)
{
    MkHookCall call = {.domain = domain};
    *result = mk_hooks_run(fx->srv.modules, "fixture_hook", &call);
    char *text = g_strdup(call.error_text);
    mk_hook_call_clear(&call);
    return text;
}

static MkResult rival_iq(MkIq *iq, gpointer user_data)
{
    return MK_PASS;
}

static gboolean rival_start(MkModule *mod, GError **error)
{
    return mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, "urn:test:iq:mod_good", rival_iq,
                          NULL, error);
}

static const MkModuleDesc rival_desc = {MK_MODULE_DESC_HEADER, .name = "mod_rival",
                                        .start = rival_start};

static void test_good(void)
{
    g_autoptr(Fx) fx = fx_new("[host_type.tenants]\ndomains = t.example\n");
    enable(fx, "mod_good",
           "[mod_good]\ncount = 7\nlist = a;b;c\n"
           "[mod_good@tenants]\ngreeting = hi\nflag = true\n");
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    g_assert_no_error(error);
    g_autofree char *r1 = running(fx, "default");
    g_autofree char *r2 = running(fx, "tenants");
    g_assert_cmpstr(r1, ==, "mod_good");
    g_assert_cmpstr(r2, ==, "mod_good");
    g_assert_cmpstr(fixture_log(), ==, " start:mod_good@default start:mod_good@tenants");

    /* Each instance reads its own typed values. */
    MkResult r;
    g_autofree char *a1 = hook_answer(fx, "localhost", &r);
    g_assert_cmpint(r, ==, MK_HANDLED);
    g_assert_cmpstr(a1, ==, "hello|7|false|3");
    g_autofree char *a2 = hook_answer(fx, "t.example", &r);
    g_assert_cmpstr(a2, ==, "hi|7|true|3");

    g_auto(GStrv) features = mk_disco_features("localhost");
    g_assert_true(g_strv_contains((const char *const *)features, "urn:test:mod_good"));
    g_auto(GStrv) items = mk_disco_items("t.example");
    g_assert_cmpstr(items[0], ==, "tenants.fixture.test");
    g_autofree char *dump = mk_metrics_dump(fx->srv.modules);
    g_assert_cmpstr(dump, ==, "default.mod_good.starts 1\ntenants.mod_good.starts 1\n");

    /* Its IQ key is taken on both host types; its routes exist. */
    g_assert_null(mk_module_start_adhoc(fx->srv.modules, &rival_desc, "tenants", &error));
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_assert_nonnull(strstr(error->message, "taken by mod_good"));
    g_clear_error(&error);
    g_assert_true(mk_routes_dispatch(fx->srv.modules, "default.fixture.test", NULL));
    g_assert_true(mk_routes_dispatch(fx->srv.modules, "tenants.fixture.test", NULL));

    mk_modules_stop_all(fx->srv.modules);
    g_assert_cmpstr(fixture_log(), ==,
                    " start:mod_good@default start:mod_good@tenants"
                    " stop:mod_good@tenants stop:mod_good@default");
    g_autofree char *none = running(fx, NULL);
    g_assert_cmpstr(none, ==, "");
    g_autofree char *a3 = hook_answer(fx, "localhost", &r);
    g_assert_cmpint(r, ==, MK_PASS);
    g_assert_null(a3);
    g_auto(GStrv) f2 = mk_disco_features("localhost");
    g_assert_cmpuint(g_strv_length(f2), ==, 0);
    g_assert_false(mk_routes_dispatch(fx->srv.modules, "default.fixture.test", NULL));
    g_autofree char *dump2 = mk_metrics_dump(fx->srv.modules);
    g_assert_cmpstr(dump2, ==, "");
    MkModule *rival = mk_module_start_adhoc(fx->srv.modules, &rival_desc, "tenants", &error);
    g_assert_no_error(error);
    mk_module_stop_adhoc(rival);
}

/* Applies a config where only @name is enabled and expects @code with
 * every @needles in the message, and nothing running. */
static void expect_refused(const char *name, const char *text, int domain_is_config, int code,
                           const char *const *needles)
{
    g_autoptr(Fx) fx = fx_new(NULL);
    enable(fx, name, text);
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_false(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    if (domain_is_config)
        g_assert_error(error, MK_CONFIG_ERROR, code);
    else
        g_assert_error(error, MK_MODULE_ERROR, code);
    for (const char *const *n = needles; *n; n++)
        g_assert_nonnull(strstr(error->message, *n));
    g_autofree char *r = running(fx, NULL);
    g_assert_cmpstr(r, ==, "");
    g_assert_cmpstr(fixture_log(), ==, "");
}

static void test_refused(void)
{
    expect_refused("mod_badabi", NULL, FALSE, MK_MODULE_ERROR_ABI,
                   (const char *[]){"mod_badabi", "ABI 3.", "provides 2.", NULL});
    expect_refused("mod_oldabi", NULL, FALSE, MK_MODULE_ERROR_ABI,
                   (const char *[]){"mod_oldabi", "ABI 1.", "provides 2.", NULL});
    expect_refused("mod_nodesc", NULL, FALSE, MK_MODULE_ERROR_LOAD,
                   (const char *[]){"mod_nodesc", "no mk_module_desc symbol", NULL});
    expect_refused("mod_missing", NULL, FALSE, MK_MODULE_ERROR_LOAD,
                   (const char *[]){"mod_missing", "cannot load", NULL});
    expect_refused("mod_badname", NULL, FALSE, MK_MODULE_ERROR_LOAD,
                   (const char *[]){"mod_badname", "mod_someone_else", NULL});
    expect_refused("mod_needs", NULL, FALSE, MK_MODULE_ERROR_DEPENDENCY,
                   (const char *[]){"mod_needs", "mod_absent", NULL});
    expect_refused("mod_good", "[mod_good]\nnope = 1\n", TRUE, MK_CONFIG_ERROR_KEY,
                   (const char *[]){"mod_good.conf: [mod_good] nope: ", NULL});
    expect_refused("mod_good", "[mod_good]\ncount = 11\n", TRUE, MK_CONFIG_ERROR_VALUE,
                   (const char *[]){"mod_good.conf: [mod_good] count: ", "out of range", NULL});
}

static void test_cycle(void)
{
    g_autoptr(Fx) fx = fx_new(NULL);
    enable(fx, "mod_cycle_x", NULL);
    enable(fx, "mod_cycle_y", NULL);
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_false(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY);
    g_assert_nonnull(strstr(error->message, "cycle"));
    g_assert_nonnull(strstr(error->message, "mod_cycle_x -> mod_cycle_y -> mod_cycle_x"));
    g_assert_cmpstr(fixture_log(), ==, "");
}

static void test_order(void)
{
    g_autoptr(Fx) fx = fx_new(NULL);
    enable(fx, "mod_order_a", NULL); /* sorts first, depends on mod_order_b */
    enable(fx, "mod_order_b", NULL);
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    g_assert_cmpstr(fixture_log(), ==, " start:mod_order_b@default start:mod_order_a@default");
    g_autofree char *r = running(fx, "default");
    g_assert_cmpstr(r, ==, "mod_order_b,mod_order_a");
    mk_modules_stop_all(fx->srv.modules);
    g_assert_cmpstr(fixture_log(), ==,
                    " start:mod_order_b@default start:mod_order_a@default"
                    " stop:mod_order_a@default stop:mod_order_b@default");
}

static void test_failed_start(void)
{
    g_autoptr(Fx) fx = fx_new(NULL);
    enable(fx, "mod_good", NULL);
    enable(fx, "mod_zfail", NULL);
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_false(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_assert_cmpstr(error->message, ==,
                    "module mod_zfail failed to start on host type default: "
                    "fixture refuses to start");
    /* mod_good started first and was stopped again; mod_zfail's start
     * ran but its stop did not (it never started). */
    g_assert_cmpstr(fixture_log(), ==,
                    " start:mod_good@default start:mod_zfail@default stop:mod_good@default");
    g_autofree char *r = running(fx, NULL);
    g_assert_cmpstr(r, ==, "");
    /* Nothing either of them registered is left. */
    MkResult res;
    g_autofree char *a = hook_answer(fx, "localhost", &res);
    g_assert_cmpint(res, ==, MK_PASS);
    g_auto(GStrv) features = mk_disco_features("localhost");
    g_assert_cmpuint(g_strv_length(features), ==, 0);
    g_autofree char *dump = mk_metrics_dump(fx->srv.modules);
    g_assert_cmpstr(dump, ==, "");
}

static void reapply(Fx *fx, gboolean ok, GError **error)
{
    MkConfigData *cfg = load(fx);
    gboolean done = mk_modules_apply(fx->srv.modules, cfg, error);
    g_assert_true(done == ok);
    if (done) {
        mk_config_free(fx->srv.config);
        fx->srv.config = cfg;
    } else {
        mk_config_free(cfg);
    }
}

static void test_reload(void)
{
    g_autoptr(Fx) fx = fx_new(NULL);
    enable(fx, "mod_good", NULL);
    start_server(fx);
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    g_unsetenv("MK_FIXTURE_LOG");

    /* New modules start; the unchanged one is untouched. */
    enable(fx, "mod_order_a", NULL);
    enable(fx, "mod_order_b", NULL);
    reapply(fx, TRUE, &error);
    g_assert_cmpstr(fixture_log(), ==, " start:mod_order_b@default start:mod_order_a@default");
    g_autofree char *r1 = running(fx, NULL);
    g_assert_cmpstr(r1, ==, "mod_good,mod_order_b,mod_order_a");

    /* A changed file restarts its module, and what depends on it. */
    g_unsetenv("MK_FIXTURE_LOG");
    enable(fx, "mod_order_b", "[mod_order_b]\n");
    reapply(fx, TRUE, &error);
    g_assert_cmpstr(fixture_log(), ==,
                    " stop:mod_order_a@default stop:mod_order_b@default"
                    " start:mod_order_b@default start:mod_order_a@default");
    g_unsetenv("MK_FIXTURE_LOG");
    enable(fx, "mod_good", "[mod_good]\ngreeting = changed\n");
    reapply(fx, TRUE, &error);
    g_assert_cmpstr(fixture_log(), ==, " stop:mod_good@default start:mod_good@default");
    MkResult r;
    g_autofree char *answer = hook_answer(fx, "localhost", &r);
    g_assert_cmpstr(answer, ==, "changed|5|false|0");

    /* Removing a dependency of a module that stays is refused, and
     * nothing changes. */
    g_unsetenv("MK_FIXTURE_LOG");
    disable(fx, "mod_order_b");
    reapply(fx, FALSE, &error);
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY);
    g_clear_error(&error);
    g_assert_cmpstr(fixture_log(), ==, "");
    g_autofree char *r2 = running(fx, NULL);
    g_assert_cmpstr(r2, ==, "mod_good,mod_order_b,mod_order_a");

    /* Removing both stops them in reverse dependency order. */
    disable(fx, "mod_order_a");
    reapply(fx, TRUE, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(fixture_log(), ==, " stop:mod_order_a@default stop:mod_order_b@default");
    g_autofree char *r3 = running(fx, NULL);
    g_assert_cmpstr(r3, ==, "mod_good");

    /* A start that fails on reload brings back what it had stopped. */
    g_unsetenv("MK_FIXTURE_LOG");
    enable(fx, "mod_good", "[mod_good]\ncount = 2\n");
    enable(fx, "mod_zfail", NULL);
    reapply(fx, FALSE, &error);
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_clear_error(&error);
    g_autofree char *r4 = running(fx, NULL);
    g_assert_cmpstr(r4, ==, "mod_good");
    g_autofree char *answer2 = hook_answer(fx, "localhost", &r);
    g_assert_cmpstr(answer2, ==, "changed|5|false|0"); /* its previous values */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* The loader logs refused modules as warnings on purpose. */
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    for (gsize i = 0; i < G_N_ELEMENTS(api); i++)
        g_assert_nonnull(api[i]);
    g_test_add_func("/modules/good", test_good);
    g_test_add_func("/modules/refused", test_refused);
    g_test_add_func("/modules/cycle", test_cycle);
    g_test_add_func("/modules/order", test_order);
    g_test_add_func("/modules/failed-start", test_failed_start);
    g_test_add_func("/modules/reload", test_reload);
    return g_test_run();
}
