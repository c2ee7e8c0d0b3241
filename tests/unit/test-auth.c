/* The internal auth backend on sqlite (core/auth.c): stored keys match an
 * independent derivation, name preparation, plain format, password
 * changes, ON DELETE CASCADE; and tools/meerkatctl end to end, run as a
 * program against a configuration in a temporary directory. */
#include "auth.h"
#include "conffile.h"
#include "db.h"
#include <gio/gio.h>
#include <string.h>

typedef struct {
    char *dir;
    MkConfigData cfg;
    MkDb *db;
    MkDbConn *conn;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("mk-auth-XXXXXX", &error);
    g_assert_no_error(error);
    f->cfg.db_driver = "sqlite3";
    f->cfg.db_name = g_build_filename(f->dir, "meerkat.db", NULL);
    f->cfg.db_pool_size = 2;
    f->db = mk_db_open(&f->cfg, &error);
    g_assert_no_error(error);
    g_assert_true(mk_db_migrate(f->db, "core", mk_core_migrations, &error));
    g_assert_no_error(error);
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    mk_db_release(f->db, f->conn);
    mk_db_close(f->db);
    g_free(f->cfg.db_name);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
}

/* The stored keys are exactly RFC 5802's, for both hashes, with the
 * stored salt and iteration count. */
static void test_stored_keys(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_auth_register(f->conn, "juliet", "localhost", "r0m3o!", FALSE, 5000, &error));
    g_assert_no_error(error);
    g_autoptr(MkCredentials) c = mk_auth_get(f->conn, "juliet", "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(c->iterations, ==, 5000);
    g_assert_cmpuint(c->salt_len, ==, 16);
    g_assert_null(c->plain);
    guint8 st1[20], sv1[20], st256[32], sv256[32];
    mk_scram_derive(MK_SCRAM_SHA1, "r0m3o!", (guint8 *)c->salt, c->salt_len, 5000, st1, sv1);
    mk_scram_derive(MK_SCRAM_SHA256, "r0m3o!", (guint8 *)c->salt, c->salt_len, 5000, st256, sv256);
    g_assert_true(memcmp(st1, c->stored_key_sha1, 20) == 0);
    g_assert_true(memcmp(sv1, c->server_key_sha1, 20) == 0);
    g_assert_true(memcmp(st256, c->stored_key_sha256, 32) == 0);
    g_assert_true(memcmp(sv256, c->server_key_sha256, 32) == 0);

    /* The password itself is nowhere in the row. */
    g_autoptr(MkDbResult) r = mk_db_conn_queryv(
        f->conn,
        "SELECT salt || stored_key_sha1 || server_key_sha1 || stored_key_sha256 ||"
        " server_key_sha256 || COALESCE(plain_password, '') FROM users",
        NULL, &error);
    g_assert_no_error(error);
    g_assert_null(strstr(mk_db_result_get_string(r, 0, 0), "r0m3o"));

    /* Two accounts with one password get different salts and keys. */
    g_assert_true(mk_auth_register(f->conn, "romeo", "localhost", "r0m3o!", FALSE, 5000, &error));
    g_autoptr(MkCredentials) c2 = mk_auth_get(f->conn, "romeo", "localhost", &error);
    g_assert_no_error(error);
    g_assert_false(memcmp(c->salt, c2->salt, 16) == 0);
    g_assert_false(memcmp(c->stored_key_sha256, c2->stored_key_sha256, 32) == 0);
}

static void test_plain_format(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_auth_register(f->conn, "p", "localhost", "pl41n", TRUE, 0, &error));
    g_assert_no_error(error);
    g_autoptr(MkCredentials) c = mk_auth_get(f->conn, "p", "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(c->plain, ==, "pl41n");
    g_assert_cmpuint(c->iterations, ==, 4096); /* 0 means the default */
    /* SCRAM keys are stored as well, so SCRAM logins work. */
    guint8 st[32], sv[32];
    mk_scram_derive(MK_SCRAM_SHA256, "pl41n", (guint8 *)c->salt, c->salt_len, c->iterations, st,
                    sv);
    g_assert_true(memcmp(st, c->stored_key_sha256, 32) == 0);
    g_assert_true(mk_auth_check_password(c, "pl41n", 4096));
    /* Same length, prefix, extension, repetition (the comparison walks
     * the given password against the stored one repeated), empty. */
    const char *wrong[] = {"pl41m", "pl41", "pl41n!", "pl41npl41n", "Pl41n", ""};
    for (guint i = 0; i < G_N_ELEMENTS(wrong); i++)
        g_assert_false(mk_auth_check_password(c, wrong[i], 4096));

    /* Back to SCRAM-only: the plain password is gone. */
    g_assert_true(mk_auth_set_password(f->conn, "p", "localhost", "n3w", FALSE, 4096, &error));
    g_assert_no_error(error);
    g_autoptr(MkCredentials) c2 = mk_auth_get(f->conn, "p", "localhost", &error);
    g_assert_no_error(error);
    g_assert_null(c2->plain);
    g_assert_true(mk_auth_check_password(c2, "n3w", 4096));
    g_assert_false(mk_auth_check_password(c2, "pl41n", 4096));
}

static void test_set_password(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_auth_register(f->conn, "juliet", "localhost", "old", FALSE, 4096, &error));
    g_assert_true(mk_auth_set_password(f->conn, "Juliet", "localhost", "new", FALSE, 4096, &error));
    g_assert_no_error(error);
    g_autoptr(MkCredentials) c = mk_auth_get(f->conn, "juliet", "localhost", &error);
    g_assert_no_error(error);
    g_assert_true(mk_auth_check_password(c, "new", 4096));
    g_assert_false(mk_auth_check_password(c, "old", 4096));

    g_assert_false(mk_auth_set_password(f->conn, "nobody", "localhost", "x", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER);
    g_clear_error(&error);
    g_assert_false(mk_auth_set_password(f->conn, "juliet", "localhost", "", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
    g_clear_error(&error);
}

static void test_invalid(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    const char *bad_users[] = {"", "a@b", "a/b", "a b", "a<b"};
    for (gsize i = 0; i < G_N_ELEMENTS(bad_users); i++) {
        g_assert_false(
            mk_auth_register(f->conn, bad_users[i], "localhost", "pw", FALSE, 4096, &error));
        g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
        g_clear_error(&error);
    }
    g_assert_false(mk_auth_register(f->conn, "ok", "", "pw", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
    g_clear_error(&error);
    /* Empty and prohibited passwords. */
    g_assert_false(mk_auth_register(f->conn, "ok", "localhost", "", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(mk_auth_register(f->conn, "ok", "localhost", "a\x07z", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
    g_clear_error(&error);
    g_autoptr(MkCredentials) c = mk_auth_get(f->conn, "a@b", "localhost", &error);
    g_assert_null(c);
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID);
    g_clear_error(&error);
    g_auto(GStrv) none = mk_auth_users(f->conn, "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g_strv_length(none), ==, 0);
}

/* Removing an account removes what modules stored for it. */
static void test_cascade(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(mk_auth_register(f->conn, "juliet", "localhost", "pw", FALSE, 4096, &error));
    g_assert_true(mk_auth_register(f->conn, "romeo", "localhost", "pw", FALSE, 4096, &error));
    g_autoptr(MkDbResult) t = mk_db_conn_queryv(
        f->conn,
        "CREATE TABLE roster_test (username TEXT NOT NULL, domain TEXT NOT NULL, item TEXT,"
        " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE)",
        NULL, &error);
    g_assert_no_error(error);
    const char *owners[] = {"juliet", "juliet", "romeo"};
    for (gsize i = 0; i < G_N_ELEMENTS(owners); i++) {
        g_autoptr(MkDbResult) r = mk_db_conn_query(
            f->conn, &error, "INSERT INTO roster_test VALUES (?, 'localhost', 'x')",
            MK_DB_STR(owners[i]));
        g_assert_no_error(error);
    }
    g_assert_true(mk_auth_unregister(f->conn, "juliet", "localhost", &error));
    g_assert_no_error(error);
    g_autoptr(MkDbResult) left =
        mk_db_conn_queryv(f->conn, "SELECT username FROM roster_test", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(left), ==, 1);
    g_assert_cmpstr(mk_db_result_get_string(left, 0, 0), ==, "romeo");
}

static void test_users_sorted(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    const char *names[] = {"zed", "adam", "Mike", "bob"};
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
        g_assert_true(
            mk_auth_register(f->conn, names[i], "example.net", "pw", FALSE, 4096, &error));
    g_assert_true(mk_auth_register(f->conn, "other", "localhost", "pw", FALSE, 4096, &error));
    g_auto(GStrv) users = mk_auth_users(f->conn, "EXAMPLE.net", &error);
    g_assert_no_error(error);
    g_autofree char *joined = g_strjoinv(",", users);
    g_assert_cmpstr(joined, ==, "adam,bob,mike,zed");
}

/* ------------------------------------------------------------------ */
/* meerkatctl end to end */

typedef struct {
    char *dir;
    char *conf;
    char *db_file;
} Ctl;

static char *ctl_path(void)
{
    const char *top = g_getenv("MK_TOP_BUILDDIR");
    return g_build_filename(top ? top : MK_BUILDDIR, "tools", "meerkatctl", NULL);
}

/* Runs meerkatctl with @args; returns its exit status. */
static int ctl_run(Ctl *c, const char *stdin_text, char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, ctl_path());
    if (c->conf) {
        g_ptr_array_add(argv, g_strdup("-c"));
        g_ptr_array_add(argv, g_strdup(c->conf));
    }
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, g_strdup(a));
    va_end(ap);
    g_ptr_array_add(argv, NULL);

    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) l =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                  G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_autoptr(GSubprocess) p =
        g_subprocess_launcher_spawnv(l, (const char *const *)argv->pdata, &error);
    g_assert_no_error(error);
    g_autofree char *o = NULL, *e = NULL;
    g_assert_true(
        g_subprocess_communicate_utf8(p, stdin_text ? stdin_text : "", NULL, &o, &e, &error));
    g_assert_no_error(error);
    g_assert_true(g_subprocess_get_if_exited(p));
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    return g_subprocess_get_exit_status(p);
}

static MkCredentials *ctl_get(Ctl *c, const char *user, const char *domain)
{
    g_autoptr(GError) error = NULL;
    MkConfigData cfg = {.db_driver = "sqlite3", .db_name = c->db_file, .db_pool_size = 1};
    MkDb *db = mk_db_open(&cfg, &error);
    g_assert_no_error(error);
    MkDbConn *conn = mk_db_acquire(db, &error);
    g_assert_no_error(error);
    MkCredentials *creds = mk_auth_get(conn, user, domain, &error);
    if (!creds)
        g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER);
    mk_db_release(db, conn);
    mk_db_close(db);
    return creds;
}

static void test_meerkatctl(void)
{
    g_autofree char *bin = ctl_path();
    /* `make check` builds it first. */
    g_assert_true(g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE));
    g_autoptr(GError) error = NULL;
    Ctl c = {0};
    c.dir = g_dir_make_tmp("mk-ctl-XXXXXX", &error);
    g_assert_no_error(error);
    c.conf = g_build_filename(c.dir, "meerkat.conf", NULL);
    c.db_file = g_build_filename(c.dir, "state", "meerkat.db", NULL);
    g_autofree char *state = g_build_filename(c.dir, "state", NULL);
    g_autofree char *text = g_strdup_printf("[general]\nhosts = localhost;example.net\n"
                                            "state_dir = %s\n[storage]\ndriver = sqlite3\n"
                                            "database = meerkat.db\n",
                                            state);
    g_assert_true(g_file_set_contents(c.conf, text, -1, NULL));

    char *out = NULL, *err = NULL;
    g_assert_cmpint(ctl_run(&c, NULL, NULL, &err, "register", "alice", "localhost", "s3cret", NULL),
                    ==, 0);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, &err, "register", "Alice", "localhost", "x", NULL), ==,
                    1);
    g_assert_nonnull(strstr(err, "already exists"));
    g_clear_pointer(&err, g_free);
    /* A password from stdin, starting with '-'. */
    g_assert_cmpint(
        ctl_run(&c, "-dash pw\n", NULL, NULL, "register", "bob", "example.net", "-", NULL), ==, 0);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "register", "carol", "localhost", "-x-", NULL),
                    ==, 0);

    g_assert_cmpint(ctl_run(&c, NULL, &out, NULL, "users", "localhost", NULL), ==, 0);
    g_assert_cmpstr(out, ==, "alice\ncarol\n");
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(ctl_run(&c, NULL, &out, NULL, "registered_users", "example.net", NULL), ==, 0);
    g_assert_cmpstr(out, ==, "bob\n");
    g_clear_pointer(&out, g_free);

    {
        g_autoptr(MkCredentials) a = ctl_get(&c, "alice", "localhost");
        g_assert_nonnull(a);
        g_assert_true(mk_auth_check_password(a, "s3cret", 4096));
        g_autoptr(MkCredentials) b = ctl_get(&c, "bob", "example.net");
        g_assert_true(mk_auth_check_password(b, "-dash pw", 4096));
        g_autoptr(MkCredentials) cc = ctl_get(&c, "carol", "localhost");
        g_assert_true(mk_auth_check_password(cc, "-x-", 4096));
    }

    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "passwd", "alice", "localhost", "n3w", NULL), ==,
                    0);
    {
        g_autoptr(MkCredentials) a = ctl_get(&c, "alice", "localhost");
        g_assert_true(mk_auth_check_password(a, "n3w", 4096));
        g_assert_false(mk_auth_check_password(a, "s3cret", 4096));
    }
    g_assert_cmpint(
        ctl_run(&c, NULL, NULL, NULL, "check_password", "alice", "localhost", "n3w", NULL), ==, 0);
    g_assert_cmpint(
        ctl_run(&c, NULL, NULL, NULL, "check_password", "alice", "localhost", "bad", NULL), ==, 1);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "check_account", "alice", "localhost", NULL), ==,
                    0);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "passwd", "nobody", "localhost", "x", NULL), ==,
                    1);

    /* Domains the configuration does not serve are refused. */
    g_assert_cmpint(ctl_run(&c, NULL, NULL, &err, "register", "eve", "other.org", "pw", NULL), ==,
                    1);
    g_assert_nonnull(strstr(err, "other.org is not served by this server"));
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "users", "other.org", NULL), ==, 1);

    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "unregister", "alice", "localhost", NULL), ==, 0);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, &err, "unregister", "alice", "localhost", NULL), ==, 1);
    g_assert_nonnull(strstr(err, "no account"));
    g_clear_pointer(&err, g_free);
    g_assert_null(ctl_get(&c, "alice", "localhost"));
    g_assert_cmpint(ctl_run(&c, NULL, &out, NULL, "users", "localhost", NULL), ==, 0);
    g_assert_cmpstr(out, ==, "carol\n");
    g_clear_pointer(&out, g_free);

    /* Usage errors. */
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, NULL), ==, 2);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "frobnicate", NULL), ==, 2);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, NULL, "register", "only-user", NULL), ==, 2);
    g_assert_cmpint(ctl_run(&c, NULL, &out, NULL, "--help", NULL), ==, 0);
    g_assert_nonnull(strstr(out, "register USER DOMAIN PASSWORD"));
    g_clear_pointer(&out, g_free);

    /* A missing configuration is a failure with a message. */
    g_free(c.conf);
    c.conf = g_build_filename(c.dir, "missing.conf", NULL);
    g_assert_cmpint(ctl_run(&c, NULL, NULL, &err, "users", "localhost", NULL), ==, 1);
    g_assert_nonnull(strstr(err, "missing.conf"));
    g_clear_pointer(&err, g_free);

    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", c.dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(c.dir);
    g_free(c.conf);
    g_free(c.db_file);
}

#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/auth/stored-keys", test_stored_keys);
    ADD("/auth/plain-format", test_plain_format);
    ADD("/auth/set-password", test_set_password);
    ADD("/auth/invalid", test_invalid);
    ADD("/auth/cascade", test_cascade);
    ADD("/auth/users-sorted", test_users_sorted);
    g_test_add_func("/meerkatctl/end-to-end", test_meerkatctl);
    return g_test_run();
}
