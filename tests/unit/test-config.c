/* meerkat.conf and conf.d parsing: values, defaults, and errors that name
 * the file, the section and the key. Also module key validation and the
 * log writer's line format. */
#include "conffile.h"
#include "log.h"
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *dir;
    char *main;
} Dir;

static void write_file(const char *dir, const char *name, const char *text)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *parent = g_path_get_dirname(path);
    g_assert_cmpint(g_mkdir_with_parents(parent, 0700), ==, 0);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static Dir *dir_new(const char *main_text)
{
    Dir *d = g_new0(Dir, 1);
    g_autoptr(GError) error = NULL;
    d->dir = g_dir_make_tmp("mk-config-XXXXXX", &error);
    g_assert_no_error(error);
    d->main = g_build_filename(d->dir, "meerkat.conf", NULL);
    write_file(d->dir, "meerkat.conf", main_text);
    return d;
}

static void dir_free(Dir *d)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", d->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(d->dir);
    g_free(d->main);
    g_free(d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Dir, dir_free)

/* Loads @text as meerkat.conf and expects an error mentioning the main
 * file, @section and @key (and @reason when not NULL). */
static void expect_error(const char *text, int code, const char *section, const char *key,
                         const char *reason)
{
    g_autoptr(Dir) d = dir_new(text);
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_null(cfg);
    g_assert_error(error, MK_CONFIG_ERROR, code);
    g_autofree char *prefix = g_strdup_printf("%s: [%s]", d->main, section);
    g_assert_true(g_str_has_prefix(error->message, prefix));
    if (key) {
        g_autofree char *k = g_strdup_printf("] %s: ", key);
        g_assert_nonnull(strstr(error->message, k));
    }
    if (reason)
        g_assert_nonnull(strstr(error->message, reason));
}

static void test_full(void)
{
    g_autoptr(Dir) d = dir_new("[general]\n"
                               "hosts = Example.NET; localhost\n"
                               "state_dir = state\n"
                               "module_dir = /opt/mods\n"
                               "workers = 3\n"
                               "log_level = debug\n"
                               "node = n1@host\n"
                               "[host_type.tenants]\n"
                               "domains = a.example;B.example\n"
                               "[auth]\n"
                               "password_format = plain\n"
                               "scram_iterations = 10000\n"
                               "mechanisms = PLAIN;SCRAM-SHA-256\n"
                               "anonymous_hosts = a.example\n"
                               "[storage]\n"
                               "driver = sqlite3\n"
                               "database = data/m.db\n"
                               "pool_size = 8\n"
                               "[listen.c2s]\n"
                               "type = c2s\n"
                               "address = 192.0.2.1\n"
                               "port = 5299\n"
                               "max_stanza_size = 100000\n"
                               "max_depth = 32\n"
                               "idle_timeout = 0\n"
                               "backlog = 50\n"
                               "[listen.local]\n"
                               "address = ::1\n"
                               "certfile = my.crt\n"
                               "keyfile = /etc/k.pem\n");
    write_file(d->dir, "conf.d/mod_b.conf", "[mod_b]\nx = 1\n[mod_b@tenants]\nx = 2\n");
    write_file(d->dir, "conf.d/mod_a.conf", "# enabled, no settings\n");
    write_file(d->dir, "conf.d/README", "not a module");
    write_file(d->dir, "conf.d/available/mod_c.conf", "[mod_c]\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);

    g_autofree char *state = g_build_filename(d->dir, "state", NULL);
    g_autofree char *confd = g_build_filename(d->dir, "conf.d", NULL);
    g_assert_cmpstr(cfg->main_file, ==, d->main);
    g_assert_cmpstr(cfg->state_dir, ==, state);
    g_assert_cmpstr(cfg->conf_dir, ==, confd);
    g_assert_cmpstr(cfg->module_dir, ==, "/opt/mods");
    g_assert_cmpuint(cfg->workers, ==, 3);
    g_assert_cmpint(cfg->log_level, ==, G_LOG_LEVEL_DEBUG);
    g_assert_cmpstr(cfg->node, ==, "n1@host");

    g_assert_cmpuint(cfg->host_types->len, ==, 2);
    MkHostTypeConfig *def = g_ptr_array_index(cfg->host_types, 0);
    MkHostTypeConfig *ten = g_ptr_array_index(cfg->host_types, 1);
    g_assert_cmpstr(def->name, ==, "default");
    g_assert_cmpuint(g_strv_length(def->domains), ==, 2);
    g_assert_cmpstr(def->domains[0], ==, "example.net"); /* prepared */
    g_assert_cmpstr(def->domains[1], ==, "localhost");
    g_assert_cmpstr(ten->name, ==, "tenants");
    g_assert_cmpstr(ten->domains[1], ==, "b.example");

    g_assert_true(cfg->password_plain);
    g_assert_cmpuint(cfg->scram_iterations, ==, 10000);
    g_assert_cmpuint(g_strv_length(cfg->mechanisms), ==, 2);
    g_assert_cmpstr(cfg->anonymous_hosts[0], ==, "a.example");

    g_autofree char *db = g_build_filename(state, "data", "m.db", NULL);
    g_assert_cmpstr(cfg->db_driver, ==, "sqlite3");
    g_assert_cmpstr(cfg->db_name, ==, db);
    g_assert_cmpuint(cfg->db_pool_size, ==, 8);
    g_assert_cmpuint(cfg->db_port, ==, 5432);

    g_assert_cmpuint(cfg->listeners->len, ==, 2);
    MkListenConfig *c2s = g_ptr_array_index(cfg->listeners, 0);
    MkListenConfig *local = g_ptr_array_index(cfg->listeners, 1);
    g_assert_cmpstr(c2s->name, ==, "c2s");
    g_assert_cmpstr(c2s->type, ==, "c2s");
    g_assert_cmpstr(c2s->address, ==, "192.0.2.1");
    g_assert_cmpuint(c2s->port, ==, 5299);
    g_assert_cmpint(c2s->tls, ==, MK_TLS_REQUIRED); /* not loopback */
    g_assert_cmpuint(c2s->max_stanza_size, ==, 100000);
    g_assert_cmpuint(c2s->max_depth, ==, 32);
    g_assert_cmpuint(c2s->idle_timeout, ==, 0);
    g_assert_cmpint(c2s->backlog, ==, 50);
    g_autofree char *crt = g_build_filename(state, "meerkat.crt", NULL);
    g_autofree char *key = g_build_filename(state, "meerkat.key", NULL);
    g_assert_cmpstr(c2s->certfile, ==, crt);
    g_assert_cmpstr(c2s->keyfile, ==, key);
    g_assert_cmpint(local->tls, ==, MK_TLS_OPTIONAL); /* ::1 */
    g_assert_cmpuint(local->port, ==, 5222);
    g_autofree char *mycrt = g_build_filename(state, "my.crt", NULL);
    g_assert_cmpstr(local->certfile, ==, mycrt);
    g_assert_cmpstr(local->keyfile, ==, "/etc/k.pem");

    /* Exactly the files of conf.d, sorted; not README, not available/. */
    g_assert_cmpuint(cfg->modules->len, ==, 2);
    const MkModuleConfig *a = g_ptr_array_index(cfg->modules, 0);
    const MkModuleConfig *b = g_ptr_array_index(cfg->modules, 1);
    g_assert_cmpstr(a->name, ==, "mod_a");
    g_assert_cmpstr(b->name, ==, "mod_b");
    g_assert_true(mk_config_find_module(cfg, "mod_b") == b);
    g_assert_null(mk_config_find_module(cfg, "mod_c"));
    g_assert_nonnull(a->checksum);
    g_assert_cmpstr(a->checksum, !=, b->checksum);
}

static void test_defaults(void)
{
    g_autoptr(Dir) d = dir_new("[listen.c2s]\n"
                               "[listen.pub]\naddress = 0.0.0.0\n"
                               "[listen.lh]\naddress = localhost\nport = 5223\n"
                               "[listen.v4]\naddress = 127.8.9.10\nport = 5224\n"
                               "[listen.direct]\naddress = 0.0.0.0\ntls = direct\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);
    MkHostTypeConfig *def = g_ptr_array_index(cfg->host_types, 0);
    g_assert_cmpuint(cfg->host_types->len, ==, 1);
    g_assert_cmpstr(def->domains[0], ==, "localhost");
    g_assert_null(def->domains[1]);
    g_assert_cmpuint(cfg->workers, ==, g_get_num_processors());
    g_assert_cmpstr(cfg->module_dir, ==, MK_MODULE_DIR);
    g_assert_cmpint(cfg->log_level, ==, G_LOG_LEVEL_INFO);
    g_assert_false(cfg->password_plain);
    g_assert_cmpuint(cfg->scram_iterations, ==, 4096);
    g_assert_true(g_strv_contains((const char *const *)cfg->mechanisms, "SCRAM-SHA-256-PLUS"));
    g_assert_cmpstr(cfg->db_driver, ==, "sqlite3");
    g_assert_true(g_str_has_suffix(cfg->db_name, "/meerkat.db"));
    g_assert_cmpuint(cfg->modules->len, ==, 0); /* no conf.d: no modules */

    g_assert_cmpuint(cfg->listeners->len, ==, 5);
    MkTlsMode want[] = {MK_TLS_OPTIONAL, MK_TLS_REQUIRED, MK_TLS_OPTIONAL, MK_TLS_OPTIONAL,
                        MK_TLS_DIRECT};
    for (guint i = 0; i < 5; i++) {
        MkListenConfig *lc = g_ptr_array_index(cfg->listeners, i);
        g_assert_cmpint(lc->tls, ==, want[i]);
        g_assert_cmpuint(lc->max_stanza_size, ==, 65536);
    }
    MkListenConfig *c2s = g_ptr_array_index(cfg->listeners, 0);
    MkListenConfig *direct = g_ptr_array_index(cfg->listeners, 4);
    g_assert_cmpstr(c2s->address, ==, "127.0.0.1");
    g_assert_cmpuint(c2s->port, ==, 5222);
    g_assert_cmpuint(direct->port, ==, 5223);
    g_assert_cmpuint(c2s->idle_timeout, ==, 600);
}

static void test_errors(void)
{
    expect_error("[general]\nhostz = x\n", MK_CONFIG_ERROR_KEY, "general", "hostz", "unknown key");
    expect_error("[general]\nworkers = many\n", MK_CONFIG_ERROR_VALUE, "general", "workers",
                 "not an integer");
    expect_error("[general]\nworkers = 5000\n", MK_CONFIG_ERROR_VALUE, "general", "workers",
                 "out of range");
    expect_error("[auth]\nscram_iterations = 100\n", MK_CONFIG_ERROR_VALUE, "auth",
                 "scram_iterations", "out of range");
    expect_error("[genral]\n", MK_CONFIG_ERROR_KEY, "genral", NULL, "unknown section");
    expect_error("[general]\nhosts = a.example\n[host_type.t]\ndomains = A.example\n",
                 MK_CONFIG_ERROR_VALUE, "host_type.t", "domains", "already served");
    expect_error("[listen.c2s]\ntls = maybe\n", MK_CONFIG_ERROR_VALUE, "listen.c2s", "tls",
                 "maybe");
    expect_error("[listen.c2s]\ntype = s2s\n", MK_CONFIG_ERROR_VALUE, "listen.c2s", "type", NULL);
    expect_error("[listen.c2s]\nport = 70000\n", MK_CONFIG_ERROR_VALUE, "listen.c2s", "port",
                 "out of range");
    expect_error("[listen.c2s]\naddress = not an address\n", MK_CONFIG_ERROR_VALUE, "listen.c2s",
                 "address", NULL);
    expect_error("[listen.a]\nport = 5222\n[listen.b]\nport = 5222\n", MK_CONFIG_ERROR_VALUE,
                 "listen.b", "port", "listen.a");
    expect_error("[general]\nlog_level = loud\n", MK_CONFIG_ERROR_VALUE, "general", "log_level",
                 NULL);
    expect_error("[auth]\nmechanisms = PLAIN;DIGEST-MD5\n", MK_CONFIG_ERROR_VALUE, "auth",
                 "mechanisms", "DIGEST-MD5");
    expect_error("[auth]\nanonymous_hosts = elsewhere.example\n", MK_CONFIG_ERROR_VALUE, "auth",
                 "anonymous_hosts", "not a served domain");
    expect_error("[storage]\ndriver = oracle\n", MK_CONFIG_ERROR_VALUE, "storage", "driver", NULL);
    expect_error("[host_type.default]\n", MK_CONFIG_ERROR_KEY, "host_type.default", NULL, NULL);

    /* Syntax errors and missing files name the file. */
    g_autoptr(Dir) d = dir_new("this is not a key file\n");
    g_autoptr(GError) error = NULL;
    g_assert_null(mk_config_load(d->main, &error));
    g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_PARSE);
    g_assert_true(g_str_has_prefix(error->message, d->main));
    g_clear_error(&error);
    g_autofree char *missing = g_build_filename(d->dir, "nope.conf", NULL);
    g_assert_null(mk_config_load(missing, &error));
    g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_FILE);
    g_assert_true(g_str_has_prefix(error->message, missing));
}

/* [metrics]: the textfile is resolved against state_dir. */
static void test_metrics(void)
{
    g_autoptr(Dir) none = dir_new("[general]\n");
    g_autoptr(MkConfigData) plain = mk_config_load(none->main, NULL);
    g_assert_nonnull(plain);
    g_assert_null(plain->metrics_textfile);
    g_assert_cmpuint(plain->metrics_textfile_interval, ==, 15);

    g_autoptr(Dir) d = dir_new("[general]\nstate_dir = /var/lib/mk-test\n"
                               "[metrics]\ntextfile = m.prom\ntextfile_interval = 5\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(cfg->metrics_textfile, ==, "/var/lib/mk-test/m.prom");
    g_assert_cmpuint(cfg->metrics_textfile_interval, ==, 5);

    expect_error("[metrics]\ntext_file = x\n", MK_CONFIG_ERROR_KEY, "metrics", "text_file",
                 "unknown key");
    expect_error("[metrics]\ntextfile_interval = 0\n", MK_CONFIG_ERROR_VALUE, "metrics",
                 "textfile_interval", "out of range");
}

/* [cluster]: absent means one node; present, its keys and errors. */
static void test_cluster(void)
{
    g_autoptr(Dir) none = dir_new("[general]\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) single = mk_config_load(none->main, &error);
    g_assert_no_error(error);
    g_assert_null(single->cluster);

    g_autoptr(Dir) d = dir_new("[cluster]\nname = xmpp1\nnode_number = 7\n"
                               "secret = 0123456789abcdef\nredis_host = 10.0.0.5\n"
                               "link_address = 0.0.0.0\nlink_advertise = 10.0.0.11\n");
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);
    g_assert_nonnull(cfg->cluster);
    g_assert_cmpstr(cfg->cluster->name, ==, "xmpp1");
    g_assert_cmpuint(cfg->cluster->node_number, ==, 7);
    g_assert_cmpstr(cfg->cluster->redis_host, ==, "10.0.0.5");
    g_assert_cmpuint(cfg->cluster->redis_port, ==, 6379);
    g_assert_cmpstr(cfg->cluster->redis_password, ==, "");
    g_assert_cmpuint(cfg->cluster->link_port, ==, 5290);
    g_assert_cmpstr(cfg->cluster->link_advertise, ==, "10.0.0.11");

    expect_error("[cluster]\nsecret = 0123456789abcdef\n", MK_CONFIG_ERROR_VALUE, "cluster", "name",
                 NULL);
    expect_error("[cluster]\nname = a\nsecret = short\n", MK_CONFIG_ERROR_VALUE, "cluster",
                 "secret", "16");
    expect_error("[cluster]\nname = a\nsecret = 0123456789abcdef\nnode_number = 256\n",
                 MK_CONFIG_ERROR_VALUE, "cluster", "node_number", "out of range");
    expect_error("[cluster]\nname = a\nsecret = 0123456789abcdef\nredis = x\n", MK_CONFIG_ERROR_KEY,
                 "cluster", "redis", "unknown key");
}

static void test_conf_d_errors(void)
{
    g_autoptr(GError) error = NULL;
    {
        g_autoptr(Dir) d = dir_new("[general]\n");
        write_file(d->dir, "conf.d/mod_x.conf", "[mod_y]\nk = 1\n");
        g_autofree char *file = g_build_filename(d->dir, "conf.d", "mod_x.conf", NULL);
        g_assert_null(mk_config_load(d->main, &error));
        g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_KEY);
        g_autofree char *prefix = g_strdup_printf("%s: [mod_y]", file);
        g_assert_true(g_str_has_prefix(error->message, prefix));
        g_clear_error(&error);
    }
    {
        g_autoptr(Dir) d = dir_new("[general]\n");
        write_file(d->dir, "conf.d/mod_x.conf", "[mod_x@nosuch]\nk = 1\n");
        g_assert_null(mk_config_load(d->main, &error));
        g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_KEY);
        g_assert_nonnull(strstr(error->message, "[mod_x@nosuch]"));
        g_assert_nonnull(strstr(error->message, "unknown host type"));
        g_clear_error(&error);
    }
    {
        /* conf_dir relative to the main file's folder, and a dangling
         * symlink is an error, not a silently disabled module. */
        g_autoptr(Dir) d = dir_new("[general]\nconf_dir = mods\n");
        g_autofree char *confd = g_build_filename(d->dir, "mods", NULL);
        g_assert_cmpint(g_mkdir(confd, 0700), ==, 0);
        g_autofree char *link = g_build_filename(confd, "mod_gone.conf", NULL);
        g_assert_cmpint(symlink("/nonexistent/mod_gone.conf", link), ==, 0);
        g_assert_null(mk_config_load(d->main, &error));
        g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_FILE);
        g_assert_true(g_str_has_prefix(error->message, link));
        g_clear_error(&error);
    }
}

static const MkConfigKey keys[] = {
    {"on", MK_CONFIG_BOOL, "false", 0, 0, NULL}, {"n", MK_CONFIG_INT, "5", 1, 10, NULL},
    {"any", MK_CONFIG_INT, "-7", 0, 0, NULL},    {"s", MK_CONFIG_STRING, NULL, 0, 0, NULL},
    {"l", MK_CONFIG_STRV, "a;b", 0, 0, NULL},    MK_CONFIG_KEYS_END,
};

static void test_module_values(void)
{
    g_autoptr(Dir) d = dir_new("[host_type.t]\ndomains = t.example\n");
    write_file(d->dir, "conf.d/mod_v.conf",
               "[mod_v]\non = true\nn = 7\n[mod_v@t]\nn = 9\ns = hi\n");
    write_file(d->dir, "conf.d/mod_w.conf", "[mod_w]\nn = 11\n");
    write_file(d->dir, "conf.d/mod_x.conf", "[mod_x]\nbogus = 1\n");
    write_file(d->dir, "conf.d/mod_y.conf", "[mod_y]\non = yes\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);

    const MkModuleConfig *v = mk_config_find_module(cfg, "mod_v");
    g_autoptr(GHashTable) def = mk_config_module_values(v, keys, "default", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(g_hash_table_lookup(def, "on"), ==, "true");
    g_assert_cmpstr(g_hash_table_lookup(def, "n"), ==, "7");
    g_assert_cmpstr(g_hash_table_lookup(def, "any"), ==, "-7");
    g_assert_cmpstr(g_hash_table_lookup(def, "l"), ==, "a;b");
    g_assert_false(g_hash_table_contains(def, "s"));
    g_autoptr(GHashTable) t = mk_config_module_values(v, keys, "t", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(g_hash_table_lookup(t, "n"), ==, "9"); /* [mod_v@t] overrides */
    g_assert_cmpstr(g_hash_table_lookup(t, "on"), ==, "true");
    g_assert_cmpstr(g_hash_table_lookup(t, "s"), ==, "hi");

    const struct {
        const char *module, *key, *reason;
    } bad[] = {
        {"mod_w", "n", "out of range"},
        {"mod_x", "bogus", "unknown key"},
        {"mod_y", "on", "not true or false"},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        const MkModuleConfig *mc = mk_config_find_module(cfg, bad[i].module);
        g_assert_null(mk_config_module_values(mc, keys, "default", &error));
        int code = i == 1 ? MK_CONFIG_ERROR_KEY : MK_CONFIG_ERROR_VALUE;
        g_assert_error(error, MK_CONFIG_ERROR, code);
        g_autofree char *want =
            g_strdup_printf("%s: [%s] %s: ", mc->file, bad[i].module, bad[i].key);
        g_assert_true(g_str_has_prefix(error->message, want));
        g_assert_nonnull(strstr(error->message, bad[i].reason));
        g_clear_error(&error);
    }
    /* A module without declared keys accepts an empty section only. */
    g_autoptr(GHashTable) none =
        mk_config_module_values(mk_config_find_module(cfg, "mod_v"), NULL, "default", &error);
    g_assert_null(none);
    g_assert_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_KEY);
}

/* [listen.NAME] of type http: its defaults, its own keys, and the
 * keys and values that belong to c2s refused. */
static void test_http_listener(void)
{
    g_autoptr(Dir) d = dir_new("[general]\nstate_dir = /tmp/s\n"
                               "[listen.api]\ntype = http\n"
                               "[listen.pub]\ntype = http\naddress = 0.0.0.0\nport = 8443\n"
                               "max_body_size = 4096\nmax_headers = 10\nmetrics = true\n"
                               "metrics_user = prom\nmetrics_password_file = prom-pw\n"
                               "modules = mod_rest_admin;mod_rest_client\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(MkConfigData) cfg = mk_config_load(d->main, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(cfg->listeners->len, ==, 2);
    MkListenConfig *api = g_ptr_array_index(cfg->listeners, 0);
    g_assert_cmpstr(api->type, ==, "http");
    g_assert_cmpstr(api->address, ==, "127.0.0.1");
    g_assert_cmpuint(api->port, ==, 8088);
    g_assert_cmpint(api->tls, ==, MK_TLS_NONE); /* loopback: plain HTTP */
    g_assert_cmpuint(api->idle_timeout, ==, 30);
    g_assert_cmpuint(api->max_body_size, ==, 1024 * 1024);
    g_assert_cmpuint(api->max_headers, ==, 64);
    g_assert_cmpuint(api->max_connections_per_address, ==, 64);
    g_assert_false(api->metrics);
    g_assert_true(api->modules && !api->modules[0]);
    MkListenConfig *pub = g_ptr_array_index(cfg->listeners, 1);
    g_assert_cmpint(pub->tls, ==, MK_TLS_DIRECT); /* elsewhere: HTTPS */
    g_assert_cmpuint(pub->max_body_size, ==, 4096);
    g_assert_cmpuint(pub->max_headers, ==, 10);
    g_assert_true(pub->metrics);
    g_assert_cmpstr(pub->metrics_user, ==, "prom");
    g_assert_cmpstr(pub->metrics_password_file, ==, "/tmp/s/prom-pw");
    g_assert_cmpuint(g_strv_length(pub->modules), ==, 2);

    expect_error("[listen.api]\ntype = http\ntls = required\n", MK_CONFIG_ERROR_VALUE, "listen.api",
                 "tls", NULL);
    expect_error("[listen.api]\ntype = http\nmax_stanza_size = 70000\n", MK_CONFIG_ERROR_KEY,
                 "listen.api", "max_stanza_size", "unknown key");
    expect_error("[listen.c2s]\ntype = c2s\nmax_body_size = 4096\n", MK_CONFIG_ERROR_KEY,
                 "listen.c2s", "max_body_size", "unknown key");
    expect_error("[listen.api]\ntype = http\nmetrics_user = prom\n", MK_CONFIG_ERROR_KEY,
                 "listen.api", "metrics_password_file", NULL);
    expect_error("[listen.api]\ntype = http\nmax_body_size = 10\n", MK_CONFIG_ERROR_VALUE,
                 "listen.api", "max_body_size", NULL);
    expect_error("[listen.a]\ntype = http\nport = 9000\n[listen.b]\ntype = c2s\nport = 9000\n",
                 MK_CONFIG_ERROR_VALUE, "listen.b", "port", NULL);
}

static void test_log_line(void)
{
    if (g_test_subprocess()) {
        g_unsetenv("JOURNAL_STREAM");
        mk_log_init(G_LOG_LEVEL_INFO);
        g_info("plain %d", 42);
        g_debug("hidden debug");
        mk_log_conn(G_LOG_LEVEL_WARNING, "192.0.2.7", "juliet@localhost/r", "conn %s", "text");
        mk_log_conn(G_LOG_LEVEL_DEBUG, "192.0.2.7", NULL, "hidden conn");
        mk_log_set_threshold(G_LOG_LEVEL_DEBUG);
        mk_log_conn(G_LOG_LEVEL_DEBUG, "192.0.2.8", NULL, "shown now");
        return;
    }
    g_setenv("G_MESSAGES_DEBUG", "all", TRUE); /* our threshold wins anyway */
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*-*-*T*:*:*.* INFO meerkat: plain 42\n*");
    g_test_trap_assert_stderr("*WARNING meerkat: [192.0.2.7 juliet@localhost/r] conn text\n*");
    g_test_trap_assert_stderr("*DEBUG meerkat: [192.0.2.8] shown now\n*");
    g_test_trap_assert_stderr_unmatched("*hidden*");
}

/* Every error domain's quark is named after it, as GLib's convention has it
 * (clang-format once turned "mk-db-error-quark" into "mk - db - error - quark"). */
static void test_error_quarks(void)
{
    g_assert_cmpstr(g_quark_to_string(MK_ACCOUNT_ERROR), ==, "mk-account-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_AUTH_ERROR), ==, "mk-auth-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_CONFIG_ERROR), ==, "mk-config-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_DB_ERROR), ==, "mk-db-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_JID_ERROR), ==, "mk-jid-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_MODULE_ERROR), ==, "mk-module-error-quark");
    g_assert_cmpstr(g_quark_to_string(MK_USER_QUEUE_ERROR), ==, "mk-user-queue-error-quark");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/config/full", test_full);
    g_test_add_func("/config/defaults", test_defaults);
    g_test_add_func("/config/errors", test_errors);
    g_test_add_func("/config/metrics", test_metrics);
    g_test_add_func("/config/cluster", test_cluster);
    g_test_add_func("/config/conf-d-errors", test_conf_d_errors);
    g_test_add_func("/config/module-values", test_module_values);
    g_test_add_func("/config/http-listener", test_http_listener);
    g_test_add_func("/log/line", test_log_line);
    g_test_add_func("/errors/quark-names", test_error_quarks);
    return g_test_run();
}
