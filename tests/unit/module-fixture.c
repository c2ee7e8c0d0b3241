/* See module-fixture.h. */
#include "module-fixture.h"
#include "conffile.h"
#include "db.h"
#include "modules.h"
#include <glib/gstdio.h>
#include <string.h>

void mk_server_set_for_tests(MkServer *srv);

void module_fixture_start(ModuleFixture *fx, const MkModuleDesc *desc)
{
    g_autoptr(GError) error = NULL;
    memset(fx, 0, sizeof *fx);
    fx->dir = g_dir_make_tmp("mk-module-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *conf = g_build_filename(fx->dir, "meerkat.conf", NULL);
    g_autofree char *text = g_strdup_printf("[general]\nhosts = localhost\nstate_dir = %s\n"
                                            "[storage]\ndriver = sqlite3\npool_size = 2\n",
                                            fx->dir);
    g_assert_true(g_file_set_contents(conf, text, -1, NULL));
    fx->srv.config = mk_config_load(conf, &error);
    g_assert_no_error(error);
    fx->srv.db = mk_db_open(fx->srv.config, &error);
    g_assert_no_error(error);
    fx->srv.modules = mk_modules_new(&fx->srv);
    mk_server_set_for_tests(&fx->srv);
    fx->mod = mk_module_start_adhoc(fx->srv.modules, desc, "default", &error);
    g_assert_no_error(error);
    g_assert_nonnull(fx->mod);
}

void module_fixture_stop(ModuleFixture *fx)
{
    if (fx->mod)
        mk_module_stop_adhoc(fx->mod);
    if (fx->srv.db)
        mk_db_close(fx->srv.db);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    mk_modules_free(fx->srv.modules);
    mk_config_free(fx->srv.config);
    mk_server_set_for_tests(NULL);
    g_autoptr(GDir) dir = g_dir_open(fx->dir, 0, NULL);
    const char *name;
    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(fx->dir, name, NULL);
        g_unlink(path);
    }
    g_rmdir(fx->dir);
    g_free(fx->dir);
    memset(fx, 0, sizeof *fx);
}
