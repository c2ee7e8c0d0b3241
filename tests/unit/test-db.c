/* The storage layer (core/db.c, core/db-async.c) and the account table
 * (core/auth.c) against real databases: sqlite3 in a temporary directory
 * always, and a throwaway PostgreSQL (tests/pg-tmp.sh) when its binaries
 * are installed, or the one on port $MK_PG_PORT (user and database
 * "meerkat", trust auth on 127.0.0.1). */
#include "auth.h"
#include "conffile.h"
#include "db.h"
#include <gio/gio.h>
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

/* Test-wide state: where the databases live. */
static char *tmp_dir;
static char *pg_dir;    /* non-NULL when this program started PostgreSQL */
static guint16 pg_port; /* 0: no PostgreSQL */
static guint db_counter;

static MkConfigData *make_cfg(const char *driver, guint16 port)
{
    MkConfigData *cfg = g_new0(MkConfigData, 1);
    cfg->db_driver = g_strdup(driver);
    cfg->db_pool_size = 2;
    cfg->scram_iterations = 4096;
    if (g_str_equal(driver, "sqlite3")) {
        g_autofree char *file = g_strdup_printf("test-%u.db", ++db_counter);
        cfg->db_name = g_build_filename(tmp_dir, file, NULL);
    } else {
        cfg->db_name = g_strdup("meerkat");
        cfg->db_host = g_strdup("127.0.0.1");
        cfg->db_port = port;
        cfg->db_user = g_strdup("meerkat");
        cfg->db_password = g_strdup("");
    }
    return cfg;
}

static void free_cfg(MkConfigData *cfg)
{
    g_free(cfg->db_driver);
    g_free(cfg->db_name);
    g_free(cfg->db_host);
    g_free(cfg->db_user);
    g_free(cfg->db_password);
    g_free(cfg);
}

typedef struct {
    MkConfigData *cfg;
    MkDb *db;
    MkDbConn *conn;
    const char *driver;
} Fixture;

/* Runs @sql (no rows wanted) and asserts success. */
static void exec_ok(MkDbConn *conn, const char *sql)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkDbResult) r = mk_db_conn_queryv(conn, sql, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(r);
}

static gint64 count_rows(MkDbConn *conn, const char *table)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *sql = g_strdup_printf("SELECT COUNT(*) FROM %s", table);
    g_autoptr(MkDbResult) r = mk_db_conn_queryv(conn, sql, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(r), ==, 1);
    return mk_db_result_get_int(r, 0, 0);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->driver = data;
    if (g_str_equal(f->driver, "pgsql") && !pg_port) {
        g_test_skip("no PostgreSQL installed (/usr/lib/postgresql is absent)");
        return;
    }
    g_autoptr(GError) error = NULL;
    f->cfg = make_cfg(f->driver, pg_port);
    f->db = mk_db_open(f->cfg, &error);
    g_assert_no_error(error);
    g_assert_nonnull(f->db);
    g_assert_cmpstr(mk_db_driver(f->db), ==, f->driver);
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_db_conn_driver(f->conn), ==, f->driver);
    /* PostgreSQL is shared by the tests: start each from an empty schema. */
    if (g_str_equal(f->driver, "pgsql")) {
        exec_ok(f->conn, "DROP SCHEMA public CASCADE");
        exec_ok(f->conn, "CREATE SCHEMA public");
    }
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    if (f->conn)
        mk_db_release(f->db, f->conn);
    mk_db_close(f->db);
    free_cfg(f->cfg);
}

/* ------------------------------------------------------------------ */

static gboolean insert_one_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "INSERT INTO r (id, s) VALUES (?, ?)",
                         MK_DB_INT(GPOINTER_TO_INT(user_data)), MK_DB_STR("tx"));
    return r != NULL;
}

/* Values with quotes, `?` and ';' go in and come out unchanged; a `?`
 * inside a literal of the SQL is not a placeholder. */
static void test_params(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE t (id BIGINT, s TEXT, u TEXT)");
    const char *nasty = "it's a 'quoted' ? value; -- DROP TABLE t; \"x\" \\ \\' ''";
    g_autoptr(MkDbResult) ins =
        mk_db_conn_query(f->conn, &error, "INSERT INTO t (id, s, u) VALUES (?, ?, '?')",
                         MK_DB_INT(G_GINT64_CONSTANT(9000000000)), MK_DB_STR(nasty));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_affected(ins), ==, 1);

    g_autoptr(MkDbResult) r = mk_db_conn_query(
        f->conn, &error, "SELECT id, s, u, 'a?b' FROM t WHERE s = ?", MK_DB_STR(nasty));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(r), ==, 1);
    g_assert_cmpint(mk_db_result_get_int(r, 0, 0), ==, G_GINT64_CONSTANT(9000000000));
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 0), ==, "9000000000");
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 1), ==, nasty);
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 2), ==, "?");
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 3), ==, "a?b");
    g_assert_cmpint(count_rows(f->conn, "t"), ==, 1);

    /* UTF-8 survives. */
    const char *utf = "J\xc3\xbcrgen \xe2\x98\x83";
    g_autoptr(MkDbResult) ins2 = mk_db_conn_query(
        f->conn, &error, "INSERT INTO t (id, s) VALUES (?, ?)", MK_DB_INT(-5), MK_DB_STR(utf));
    g_assert_no_error(error);
    g_autoptr(MkDbResult) r2 =
        mk_db_conn_query(f->conn, &error, "SELECT s FROM t WHERE id = ?", MK_DB_INT(-5));
    g_assert_no_error(error);
    g_assert_cmpstr(mk_db_result_get_string(r2, 0, 0), ==, utf);

    /* Placeholder and parameter counts must agree. */
    g_autoptr(MkDbResult) bad1 =
        mk_db_conn_query(f->conn, &error, "SELECT s FROM t WHERE id = ? AND s = ?", MK_DB_INT(1));
    g_assert_null(bad1);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY);
    g_clear_error(&error);
    g_autoptr(MkDbResult) bad2 = mk_db_conn_query(f->conn, &error, "SELECT s FROM t WHERE id = ?",
                                                  MK_DB_INT(1), MK_DB_INT(2));
    g_assert_null(bad2);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY);
    g_clear_error(&error);

    /* A syntax error is an error, not a crash, and the connection stays
     * usable. */
    g_autoptr(MkDbResult) bad3 = mk_db_conn_queryv(f->conn, "SELEC nonsense", NULL, &error);
    g_assert_null(bad3);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY);
    g_clear_error(&error);
    g_assert_cmpint(count_rows(f->conn, "t"), ==, 2);
}

/* The same SQL again and again (sqlite3 keeps it prepared per
 * connection): fresh bindings every time, no value left over from the
 * previous use, a failed run does not spoil the next, and a schema change
 * shows. */
static void test_reused_statements(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE r (id BIGINT PRIMARY KEY, s TEXT)");
    for (int i = 0; i < 20; i++) {
        g_autofree char *s = g_strdup_printf("v%d", i);
        g_autoptr(MkDbResult) ins =
            mk_db_conn_query(f->conn, &error, "INSERT INTO r (id, s) VALUES (?, ?)", MK_DB_INT(i),
                             i % 2 ? MK_DB_STR(s) : MK_DB_NULL);
        g_assert_no_error(error);
        g_assert_cmpuint(mk_db_result_affected(ins), ==, 1);
    }
    for (int i = 19; i >= 0; i--) {
        g_autoptr(MkDbResult) r =
            mk_db_conn_query(f->conn, &error, "SELECT s FROM r WHERE id = ?", MK_DB_INT(i));
        g_assert_no_error(error);
        g_assert_cmpuint(mk_db_result_rows(r), ==, 1);
        g_autofree char *want = i % 2 ? g_strdup_printf("v%d", i) : NULL;
        g_assert_cmpstr(mk_db_result_get_string(r, 0, 0), ==, want);
    }
    /* A duplicate key fails; the same statement then works again. */
    g_autoptr(MkDbResult) dup = mk_db_conn_query(
        f->conn, &error, "INSERT INTO r (id, s) VALUES (?, ?)", MK_DB_INT(3), MK_DB_STR("x"));
    g_assert_null(dup);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY);
    g_clear_error(&error);
    g_autoptr(MkDbResult) ok = mk_db_conn_query(
        f->conn, &error, "INSERT INTO r (id, s) VALUES (?, ?)", MK_DB_INT(100), MK_DB_STR("y"));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_affected(ok), ==, 1);
    /* A row-less run reports the columns too; then the schema changes. */
    g_autoptr(MkDbResult) none =
        mk_db_conn_query(f->conn, &error, "SELECT * FROM r WHERE id = ?", MK_DB_INT(-1));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(none), ==, 0);
    exec_ok(f->conn, "ALTER TABLE r ADD COLUMN extra TEXT");
    g_autoptr(MkDbResult) wide =
        mk_db_conn_query(f->conn, &error, "SELECT * FROM r WHERE id = ?", MK_DB_INT(100));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(wide), ==, 1);
    g_assert_cmpstr(mk_db_result_get_string(wide, 0, 1), ==, "y");
    g_assert_null(mk_db_result_get_string(wide, 0, 2));
    /* Transactions (BEGIN/COMMIT kept prepared too) still commit. */
    for (int i = 0; i < 3; i++)
        g_assert_true(
            mk_db_conn_transaction(f->conn, insert_one_work, GINT_TO_POINTER(200 + i), &error));
    g_assert_no_error(error);
    g_assert_cmpint(count_rows(f->conn, "r"), ==, 24);
    /* The statement cache finds recent SQL by its address: the same
     * buffer holding other text must not find the old statement, and
     * more statements in turn than it remembers still run right. */
    char buf[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++) {
            g_snprintf(buf, sizeof buf, "SELECT %d + ?", i);
            g_autoptr(MkDbResult) r = mk_db_conn_query(f->conn, &error, buf, MK_DB_INT(round));
            g_assert_no_error(error);
            g_assert_cmpint(mk_db_result_get_int(r, 0, 0), ==, i + round);
        }
    }
    exec_ok(f->conn, "DROP TABLE r");
}

/* Statements that libdbi's own sqlite3 driver mis-parses (an endless loop
 * on "from" inside a word, a NULL dereference on unbalanced parentheses,
 * a 128-byte buffer for column names): they must simply work. */
static void test_hostile_sql(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE h (from_jid TEXT, body TEXT)");
    const char *body = "please select (this from-x";
    g_autoptr(MkDbResult) ins = mk_db_conn_query(f->conn, &error, "INSERT INTO h VALUES (?, ?)",
                                                 MK_DB_STR("a@b"), MK_DB_STR(body));
    g_assert_no_error(error);
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        f->conn, &error, "SELECT from_jid, body FROM h WHERE body = ?", MK_DB_STR(body));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(r), ==, 1);
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 0), ==, "a@b");
    g_assert_cmpstr(mk_db_result_get_string(r, 0, 1), ==, body);

    g_autofree char *alias = g_strnfill(150, 'x');
    g_autofree char *sql = g_strdup_printf("SELECT body AS %s FROM h", alias);
    g_autoptr(MkDbResult) r2 = mk_db_conn_queryv(f->conn, sql, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_db_result_get_string(r2, 0, 0), ==, body);
}

static void test_nulls(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE n (id INTEGER, s TEXT, i BIGINT)");
    g_autoptr(MkDbResult) a = mk_db_conn_query(f->conn, &error, "INSERT INTO n VALUES (?, ?, ?)",
                                               MK_DB_INT(1), MK_DB_NULL, MK_DB_NULL);
    g_assert_no_error(error);
    g_autoptr(MkDbResult) b = mk_db_conn_query(f->conn, &error, "INSERT INTO n VALUES (?, ?, ?)",
                                               MK_DB_INT(2), MK_DB_STR(NULL), MK_DB_INT(0));
    g_assert_no_error(error);
    g_autoptr(MkDbResult) c = mk_db_conn_query(f->conn, &error, "INSERT INTO n VALUES (?, ?, ?)",
                                               MK_DB_INT(3), MK_DB_STR(""), MK_DB_INT(7));
    g_assert_no_error(error);

    g_autoptr(MkDbResult) r =
        mk_db_conn_queryv(f->conn, "SELECT s, i FROM n ORDER BY id", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(r), ==, 3);
    g_assert_true(mk_db_result_is_null(r, 0, 0));
    g_assert_null(mk_db_result_get_string(r, 0, 0));
    g_assert_true(mk_db_result_is_null(r, 0, 1));
    g_assert_cmpint(mk_db_result_get_int(r, 0, 1), ==, 0);
    g_assert_true(mk_db_result_is_null(r, 1, 0));
    g_assert_false(mk_db_result_is_null(r, 1, 1));
    g_assert_cmpstr(mk_db_result_get_string(r, 1, 1), ==, "0");
    /* The empty string is not NULL. */
    g_assert_false(mk_db_result_is_null(r, 2, 0));
    g_assert_cmpstr(mk_db_result_get_string(r, 2, 0), ==, "");
    g_assert_cmpint(mk_db_result_get_int(r, 2, 1), ==, 7);

    g_autoptr(MkDbResult) z =
        mk_db_conn_query(f->conn, &error, "SELECT s FROM n WHERE id = ?", MK_DB_INT(99));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(z), ==, 0);

    g_autoptr(MkDbResult) u = mk_db_conn_query(f->conn, &error, "UPDATE n SET i = ? WHERE id >= ?",
                                               MK_DB_INT(5), MK_DB_INT(2));
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_affected(u), ==, 2);
}

static void test_split(void)
{
    g_auto(GStrv) a = mk_db_split_statements(
        "CREATE TABLE a (x TEXT DEFAULT 'a;b');\n  -- a comment; with 'quote\n"
        "INSERT INTO a VALUES ('it''s;'); ;\n"
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;"
        "SELECT \"odd;name\" FROM a");
    g_assert_cmpuint(g_strv_length(a), ==, 4);
    g_assert_cmpstr(a[0], ==, "CREATE TABLE a (x TEXT DEFAULT 'a;b')");
    g_assert_cmpstr(a[1], ==, "INSERT INTO a VALUES ('it''s;')");
    g_assert_cmpstr(a[2], ==, "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql");
    g_assert_cmpstr(a[3], ==, "SELECT \"odd;name\" FROM a");
    g_auto(GStrv) b = mk_db_split_statements("  ;; \n");
    g_assert_cmpuint(g_strv_length(b), ==, 0);
    /* A sqlite trigger's body keeps its ';' up to its END. */
    g_auto(GStrv) c = mk_db_split_statements(
        "CREATE TRIGGER t AFTER DELETE ON a BEGIN DELETE FROM b; DELETE FROM c; END;"
        "CREATE TABLE bend (x INT);SELECT 1");
    g_assert_cmpuint(g_strv_length(c), ==, 3);
    g_assert_cmpstr(c[0], ==,
                    "CREATE TRIGGER t AFTER DELETE ON a BEGIN DELETE FROM b; DELETE FROM c; END");
    g_assert_cmpstr(c[1], ==, "CREATE TABLE bend (x INT)");
}

static gint64 schema_version(MkDbConn *conn, const char *component)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, &error, "SELECT version FROM meerkat_schema WHERE component = ?",
                         MK_DB_STR(component));
    g_assert_no_error(error);
    return mk_db_result_rows(r) ? mk_db_result_get_int(r, 0, 0) : 0;
}

static void test_migrations(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    const char *other = g_str_equal(f->driver, "sqlite3") ? "pgsql" : "sqlite3";
    const MkMigration steps[] = {
        {NULL, 1, "CREATE TABLE m (v TEXT); INSERT INTO m VALUES ('one;1')"},
        {other, 2, "THIS IS NOT SQL FOR THIS DRIVER"},
        {f->driver, 2, "INSERT INTO m VALUES ('two')"},
        {NULL, 3, "INSERT INTO m VALUES ('three'); INSERT INTO m VALUES ('three''s')"},
        MK_MIGRATIONS_END,
    };
    /* The connection of the fixture would hold the pool's second slot
     * forever on a size-1 pool; give it back while migrating. */
    mk_db_release(f->db, f->conn);
    f->conn = NULL;
    g_assert_true(mk_db_migrate(f->db, "test", steps, &error));
    g_assert_no_error(error);
    /* Running again changes nothing. */
    g_assert_true(mk_db_migrate(f->db, "test", steps, &error));
    g_assert_no_error(error);
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_cmpint(count_rows(f->conn, "m"), ==, 4);
    g_assert_cmpint(schema_version(f->conn, "test"), ==, 3);
    g_autoptr(MkDbResult) r =
        mk_db_conn_queryv(f->conn, "SELECT v FROM m WHERE v = 'one;1'", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(mk_db_result_rows(r), ==, 1);
    mk_db_release(f->db, f->conn);
    f->conn = NULL;

    /* A new step applies alone; a failing step rolls back whole and leaves
     * the version where it was. */
    const MkMigration more[] = {
        steps[0],
        steps[1],
        steps[2],
        steps[3],
        {NULL, 4, "INSERT INTO m VALUES ('four')"},
        {NULL, 5, "INSERT INTO m VALUES ('five'); INSERT INTO nosuchtable VALUES (1)"},
        MK_MIGRATIONS_END,
    };
    g_assert_false(mk_db_migrate(f->db, "test", more, &error));
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_MIGRATION);
    g_clear_error(&error);
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_cmpint(count_rows(f->conn, "m"), ==, 5);
    g_assert_cmpint(schema_version(f->conn, "test"), ==, 4);
    mk_db_release(f->db, f->conn);
    f->conn = NULL;

    /* Components are independent. */
    const MkMigration another[] = {{NULL, 1, "CREATE TABLE m2 (v INTEGER)"}, MK_MIGRATIONS_END};
    g_assert_true(mk_db_migrate(f->db, "another", another, &error));
    g_assert_no_error(error);

    /* Versions out of order are refused before anything runs. */
    const MkMigration disorder[] = {
        {NULL, 2, "CREATE TABLE never1 (v INTEGER)"},
        {NULL, 1, "CREATE TABLE never2 (v INTEGER)"},
        MK_MIGRATIONS_END,
    };
    g_assert_false(mk_db_migrate(f->db, "disorder", disorder, &error));
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_MIGRATION);
    g_clear_error(&error);

    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_cmpint(schema_version(f->conn, "another"), ==, 1);
    g_assert_cmpint(schema_version(f->conn, "test"), ==, 4);
    g_assert_cmpint(schema_version(f->conn, "disorder"), ==, 0);
}

typedef struct {
    const char *value;
    gboolean fail;
} InsertWork;

static gboolean insert_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    InsertWork *w = user_data;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "INSERT INTO tx VALUES (?)", MK_DB_STR(w->value));
    if (!r)
        return FALSE;
    if (w->fail) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "deliberate failure");
        return FALSE;
    }
    return TRUE;
}

static gboolean nested_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    InsertWork outer = {"outer", FALSE}, inner = {"inner", TRUE};
    if (!insert_work(conn, &outer, error))
        return FALSE;
    g_autoptr(GError) ierr = NULL;
    /* The inner failure undoes the inner insert only. */
    g_assert_false(mk_db_conn_transaction(conn, insert_work, &inner, &ierr));
    g_assert_error(ierr, G_IO_ERROR, G_IO_ERROR_FAILED);
    return TRUE;
}

static gboolean has_value(MkDbConn *conn, const char *v)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, &error, "SELECT v FROM tx WHERE v = ?", MK_DB_STR(v));
    g_assert_no_error(error);
    return mk_db_result_rows(r) > 0;
}

static void test_transaction(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE tx (v TEXT)");
    InsertWork ok = {"kept", FALSE}, bad = {"dropped", TRUE};
    g_assert_true(mk_db_conn_transaction(f->conn, insert_work, &ok, &error));
    g_assert_no_error(error);
    g_assert_false(mk_db_conn_transaction(f->conn, insert_work, &bad, &error));
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_FAILED);
    g_clear_error(&error);
    g_assert_true(has_value(f->conn, "kept"));
    g_assert_false(has_value(f->conn, "dropped"));

    g_assert_true(mk_db_conn_transaction(f->conn, nested_work, NULL, &error));
    g_assert_no_error(error);
    g_assert_true(has_value(f->conn, "outer"));
    g_assert_false(has_value(f->conn, "inner"));
    g_assert_cmpint(count_rows(f->conn, "tx"), ==, 2);
}

static gboolean count_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    *(gint64 *)user_data = count_rows(conn, "rd");
    return TRUE;
}

/* mk_db_conn_reads: on sqlite the reads share one transaction (a write
 * committed by another connection in between is not seen), elsewhere
 * each read stands alone; a failing work leaves no transaction open. */
typedef struct {
    MkDb *db;
    gint64 before, after;
    gboolean fail;
} ReadsWork;

static gboolean reads_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    ReadsWork *w = user_data;
    w->before = count_rows(conn, "rd");
    g_autoptr(GError) aerr = NULL;
    MkDbConn *other = mk_db_acquire(w->db, &aerr);
    g_assert_no_error(aerr);
    exec_ok(other, "INSERT INTO rd VALUES ('meanwhile')");
    mk_db_release(w->db, other);
    w->after = count_rows(conn, "rd");
    if (w->fail) {
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "reads failed");
        return FALSE;
    }
    return TRUE;
}

static gboolean reads_in_transaction(MkDbConn *conn, gpointer user_data, GError **error)
{
    exec_ok(conn, "INSERT INTO rd VALUES ('in-tx')");
    return mk_db_conn_reads(conn, count_work, user_data, error);
}

static void test_reads(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE rd (v TEXT)");
    exec_ok(f->conn, "INSERT INTO rd VALUES ('first')");
    ReadsWork w = {f->db, 0, 0, FALSE};
    g_assert_true(mk_db_conn_reads(f->conn, reads_work, &w, &error));
    g_assert_no_error(error);
    g_assert_cmpint(w.before, ==, 1);
    /* sqlite: one snapshot; PostgreSQL (autocommit): each read its own. */
    g_assert_cmpint(w.after, ==, g_str_equal(f->driver, "sqlite3") ? 1 : 2);
    g_assert_cmpint(count_rows(f->conn, "rd"), ==, 2);

    ReadsWork bad = {f->db, 0, 0, TRUE};
    g_assert_false(mk_db_conn_reads(f->conn, reads_work, &bad, &error));
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_FAILED);
    g_clear_error(&error);
    /* Nothing left open: a transaction starts, and sees everything. */
    gint64 n = 0;
    g_assert_true(mk_db_conn_transaction(f->conn, reads_in_transaction, &n, &error));
    g_assert_no_error(error);
    g_assert_cmpint(n, ==, 4);
}

/* ------------------------------------------------------------------ */
/* Asynchronous use: the completion runs on the thread that asked. */

typedef struct {
    MkDb *db;
    GMainContext *ctx;
    GThread *caller;
    GThread *work_thread;
    GThread *done_thread;
    GThread *query_thread;
    gboolean done, destroyed, destroyed_after_done, query_done, fail;
    char *error_message;
    char *value;
} AsyncState;

static gboolean async_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    AsyncState *s = user_data;
    s->work_thread = g_thread_self();
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "INSERT INTO a VALUES (?)", MK_DB_STR("from-async"));
    if (!r)
        return FALSE;
    if (s->fail) {
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "async failure");
        return FALSE;
    }
    return TRUE;
}

static void async_done(const GError *error, gpointer user_data)
{
    AsyncState *s = user_data;
    s->done_thread = g_thread_self();
    s->done = TRUE;
    g_free(s->error_message);
    s->error_message = error ? g_strdup(error->message) : NULL;
}

static void async_destroy(gpointer user_data)
{
    AsyncState *s = user_data;
    s->destroyed = TRUE;
    s->destroyed_after_done = s->done;
}

static void query_done(MkDbResult *result, const GError *error, gpointer user_data)
{
    AsyncState *s = user_data;
    s->query_thread = g_thread_self();
    s->query_done = TRUE;
    g_free(s->error_message);
    s->error_message = error ? g_strdup(error->message) : NULL;
    g_free(s->value);
    s->value = result && mk_db_result_rows(result) ? g_strdup(mk_db_result_get_string(result, 0, 0))
                                                   : NULL;
}

static void iterate_until(GMainContext *ctx, gboolean *flag)
{
    gint64 deadline = g_get_monotonic_time() + 20 * G_TIME_SPAN_SECOND;
    while (!*flag && g_get_monotonic_time() < deadline)
        g_main_context_iteration(ctx, TRUE);
    g_assert_true(*flag);
}

/* Another thread with its own context asks; its context gets the answer. */
static gpointer async_thread(gpointer data)
{
    AsyncState *s = data;
    s->caller = g_thread_self();
    s->ctx = g_main_context_new();
    g_main_context_push_thread_default(s->ctx);

    mk_db_run(s->db, async_work, async_done, s, async_destroy);
    iterate_until(s->ctx, &s->done);
    /* The destroy notify follows the completion in the same dispatch. */
    g_assert_true(s->destroyed);

    char magic[] = "it's ?";
    mk_db_query_async(s->db, "SELECT v || ? FROM a WHERE v = ?",
                      (const MkDbParam[]){MK_DB_STR(magic), MK_DB_STR("from-async"), MK_DB_END},
                      query_done, s);
    magic[0] = 'X'; /* the parameters were copied */
    iterate_until(s->ctx, &s->query_done);

    g_main_context_pop_thread_default(s->ctx);
    g_main_context_unref(s->ctx);
    return NULL;
}

static void test_async(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    exec_ok(f->conn, "CREATE TABLE a (v TEXT)");
    mk_db_release(f->db, f->conn);
    f->conn = NULL;

    AsyncState s = {.db = f->db};
    GThread *t = g_thread_new("async-caller", async_thread, &s);
    g_thread_join(t);
    g_assert_null(s.error_message);
    g_assert_true(s.done_thread == s.caller);
    g_assert_true(s.query_thread == s.caller);
    g_assert_true(s.work_thread != s.caller);
    g_assert_true(s.work_thread != g_thread_self());
    g_assert_true(s.destroyed_after_done);
    g_assert_cmpstr(s.value, ==, "from-asyncit's ?");
    g_free(s.value);

    /* A failing work: rolled back, the error reaches the caller (here the
     * main thread and its global default context). */
    AsyncState s2 = {.db = f->db, .fail = TRUE};
    mk_db_run(f->db, async_work, async_done, &s2, async_destroy);
    /* The completion must not run before this thread iterates. */
    g_usleep(200 * 1000);
    g_assert_false(s2.done);
    iterate_until(NULL, &s2.done);
    g_assert_true(s2.done_thread == g_thread_self());
    g_assert_cmpstr(s2.error_message, ==, "async failure");
    g_assert_true(s2.destroyed);
    g_free(s2.error_message);

    g_autoptr(GError) error = NULL;
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_cmpint(count_rows(f->conn, "a"), ==, 1);

    /* Without storage the caller still hears back, with an error. */
    AsyncState s3 = {0};
    mk_db_query_async(NULL, "SELECT 1", NULL, query_done, &s3);
    iterate_until(NULL, &s3.query_done);
    g_assert_nonnull(s3.error_message);
    g_assert_null(s3.value);
    g_free(s3.error_message);
}

/* ------------------------------------------------------------------ */
/* Accounts */

static void test_users(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    mk_db_release(f->db, f->conn);
    f->conn = NULL;
    g_assert_true(mk_db_migrate(f->db, "core", mk_core_migrations, &error));
    g_assert_no_error(error);
    g_assert_true(mk_db_migrate(f->db, "core", mk_core_migrations, &error));
    g_assert_no_error(error);
    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);

    g_assert_true(mk_auth_register(f->conn, "juliet", "localhost", "r0m3o!", FALSE, 4096, &error));
    g_assert_no_error(error);
    g_assert_true(mk_auth_register(f->conn, "Romeo", "localhost", "juli3t", TRUE, 4096, &error));
    g_assert_no_error(error);
    g_assert_true(mk_auth_register(f->conn, "adam", "example.net", "pw", FALSE, 4096, &error));
    g_assert_no_error(error);

    /* Duplicates, also after preparation ("JULIET" is "juliet"). */
    g_assert_false(mk_auth_register(f->conn, "juliet", "localhost", "x", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_EXISTS);
    g_clear_error(&error);
    g_assert_false(mk_auth_register(f->conn, "JULIET", "LocalHost", "x", FALSE, 4096, &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_EXISTS);
    g_clear_error(&error);

    g_autoptr(MkCredentials) c = mk_auth_get(f->conn, "juliet", "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(c->username, ==, "juliet");
    g_assert_cmpuint(c->salt_len, ==, 16);
    g_assert_cmpuint(c->iterations, ==, 4096);
    g_assert_null(c->plain);
    g_assert_true(mk_auth_check_password(c, "r0m3o!", 4096));
    g_assert_false(mk_auth_check_password(c, "r0m3o", 4096));

    g_autoptr(MkCredentials) r = mk_auth_get(f->conn, "ROMEO", "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(r->username, ==, "romeo");
    g_assert_cmpstr(r->plain, ==, "juli3t");
    g_assert_true(mk_auth_check_password(r, "juli3t", 4096));

    g_autoptr(MkCredentials) none = mk_auth_get(f->conn, "nobody", "localhost", &error);
    g_assert_null(none);
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER);
    g_clear_error(&error);

    g_auto(GStrv) users = mk_auth_users(f->conn, "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g_strv_length(users), ==, 2);
    g_assert_cmpstr(users[0], ==, "juliet");
    g_assert_cmpstr(users[1], ==, "romeo");

    g_assert_true(mk_auth_unregister(f->conn, "juliet", "localhost", &error));
    g_assert_no_error(error);
    g_assert_false(mk_auth_unregister(f->conn, "juliet", "localhost", &error));
    g_assert_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER);
    g_clear_error(&error);
    g_auto(GStrv) after = mk_auth_users(f->conn, "localhost", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g_strv_length(after), ==, 1);
    g_assert_cmpstr(after[0], ==, "romeo");
    g_auto(GStrv) other = mk_auth_users(f->conn, "example.net", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g_strv_length(other), ==, 1);
}

/* Two pools on one sqlite file, as meerkatd and meerkatctl: a writer that
 * finds the file locked waits for the other's transaction instead of
 * failing. */
typedef struct {
    MkDb *db;
    gboolean started;
} SlowWriter;

static gboolean slow_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    SlowWriter *w = user_data;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "INSERT INTO c VALUES (?)", MK_DB_STR("slow"));
    g_atomic_int_set(&w->started, TRUE);
    g_usleep(G_USEC_PER_SEC);
    return r != NULL;
}

static gpointer slow_writer(gpointer data)
{
    SlowWriter *w = data;
    g_autoptr(GError) error = NULL;
    MkDbConn *conn = mk_db_acquire(w->db, &error);
    g_assert_no_error(error);
    g_assert_true(mk_db_conn_transaction(conn, slow_work, w, &error));
    g_assert_no_error(error);
    mk_db_release(w->db, conn);
    return NULL;
}

static void test_sqlite_two_processes(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    exec_ok(f->conn, "CREATE TABLE c (v TEXT)");
    exec_ok(f->conn, "CREATE TABLE tx (v TEXT)");
    g_autoptr(MkDbResult) mode = mk_db_conn_queryv(f->conn, "PRAGMA journal_mode", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_db_result_get_string(mode, 0, 0), ==, "wal");
    g_autoptr(MkDbResult) fk = mk_db_conn_queryv(f->conn, "PRAGMA foreign_keys", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpint(mk_db_result_get_int(fk, 0, 0), ==, 1);

    MkDb *other = mk_db_open(f->cfg, &error);
    g_assert_no_error(error);
    SlowWriter w = {other, FALSE};
    GThread *t = g_thread_new("slow-writer", slow_writer, &w);
    while (!g_atomic_int_get(&w.started))
        g_usleep(10 * 1000);
    /* The other pool holds the write lock for a second now. */
    InsertWork ins = {"fast", FALSE};
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(mk_db_conn_transaction(f->conn, insert_work, &ins, &error));
    g_assert_no_error(error);
    g_assert_cmpint(g_get_monotonic_time() - t0, >, G_USEC_PER_SEC / 4);
    g_thread_join(t);
    mk_db_close(other);
    g_assert_cmpint(count_rows(f->conn, "c"), ==, 1);
    g_assert_true(has_value(f->conn, "fast"));
}

/* ------------------------------------------------------------------ */
/* Failures of the database itself */

static void test_connect_fail_sqlite(void)
{
    g_autoptr(GError) error = NULL;
    MkConfigData *cfg = make_cfg("sqlite3", 0);
    g_free(cfg->db_name);
    cfg->db_name = g_strdup("/proc/no-such-dir/meerkat.db");
    MkDb *db = mk_db_open(cfg, &error);
    g_assert_null(db);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT);
    g_clear_error(&error);
    g_free(cfg->db_driver);
    cfg->db_driver = g_strdup("oracle");
    g_assert_null(mk_db_open(cfg, &error));
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT);
    free_cfg(cfg);
}

/* A port nobody listens on: bound and closed again right away. */
static guint16 closed_port(void)
{
    g_autoptr(GSocket) s =
        g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
    g_assert_true(g_socket_bind(s, any, FALSE, NULL));
    g_autoptr(GSocketAddress) bound = g_socket_get_local_address(s, NULL);
    guint16 port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
    g_socket_close(s, NULL);
    return port;
}

static void test_connect_fail_pgsql(void)
{
    g_autoptr(GError) error = NULL;
    MkConfigData *cfg = make_cfg("pgsql", closed_port());
    gint64 t0 = g_get_monotonic_time();
    MkDb *db = mk_db_open(cfg, &error);
    g_assert_null(db);
    g_assert_error(error, MK_DB_ERROR, MK_DB_ERROR_CONNECT);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_TIME_SPAN_SECOND);
    free_cfg(cfg);
}

/* A connection the server killed is noticed and replaced on next use. */
static void test_reconnect_pgsql(Fixture *f, gconstpointer data)
{
    if (!f->db)
        return;
    g_autoptr(GError) error = NULL;
    g_autoptr(MkDbResult) p = mk_db_conn_queryv(f->conn, "SELECT pg_backend_pid()", NULL, &error);
    g_assert_no_error(error);
    gint64 pid = mk_db_result_get_int(p, 0, 0);
    g_assert_cmpint(pid, >, 0);
    mk_db_release(f->db, f->conn);
    f->conn = NULL;

    /* Kill it from another pool. */
    MkConfigData *cfg2 = make_cfg("pgsql", pg_port);
    MkDb *db2 = mk_db_open(cfg2, &error);
    g_assert_no_error(error);
    MkDbConn *c2 = mk_db_acquire(db2, &error);
    g_assert_no_error(error);
    g_autoptr(MkDbResult) k =
        mk_db_conn_query(c2, &error, "SELECT pg_terminate_backend(?)", MK_DB_INT(pid));
    g_assert_no_error(error);
    g_assert_cmpint(mk_db_result_get_int(k, 0, 0), ==, 1); /* "t" */
    mk_db_release(db2, c2);
    mk_db_close(db2);
    free_cfg(cfg2);

    f->conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_autoptr(MkDbResult) q = mk_db_conn_queryv(f->conn, "SELECT pg_backend_pid()", NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpint(mk_db_result_get_int(q, 0, 0), !=, pid);
}

/* ------------------------------------------------------------------ */

static void start_postgres(void)
{
    const char *env = g_getenv("MK_PG_PORT");
    if (env && *env) {
        pg_port = (guint16)g_ascii_strtoull(env, NULL, 10);
        return;
    }
    if (!g_file_test("/usr/lib/postgresql", G_FILE_TEST_IS_DIR))
        return;
    g_autoptr(GError) error = NULL;
    /* A directory of its own: pg-tmp.sh hands it to the postgres user. */
    pg_dir = g_dir_make_tmp("mk-pg-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *pid = g_strdup_printf("%d", (int)getpid());
    const char *argv[] = {"/bin/sh", MK_SRCDIR "/tests/pg-tmp.sh", "start", pg_dir, pid, NULL};
    g_autofree char *out = NULL, *err = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                      &error) ||
        !g_spawn_check_wait_status(status, &error)) {
        /* Installed but not startable is a failure, not a skip. */
        g_printerr("tests/pg-tmp.sh start failed: %s\n%s", error->message, err ? err : "");
        pg_port = 0;
        return;
    }
    pg_port = (guint16)g_ascii_strtoull(g_strstrip(out), NULL, 10);
}

static void stop_postgres(void)
{
    if (!pg_dir)
        return;
    const char *argv[] = {"/bin/sh", MK_SRCDIR "/tests/pg-tmp.sh", "stop", pg_dir, NULL};
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, NULL, NULL);
}

static void test_pg_available(void)
{
    if (!g_file_test("/usr/lib/postgresql", G_FILE_TEST_IS_DIR) && !g_getenv("MK_PG_PORT")) {
        g_test_skip("no PostgreSQL installed");
        return;
    }
    g_assert_cmpuint(pg_port, >, 0);
}

#define ADD(name, fn)                                                                              \
    do {                                                                                           \
        g_test_add("/db/sqlite3/" name, Fixture, "sqlite3", fixture_setup, fn, fixture_teardown);  \
        g_test_add("/db/pgsql/" name, Fixture, "pgsql", fixture_setup, fn, fixture_teardown);      \
    } while (0)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#ifdef __SANITIZE_ADDRESS__
    /* libdbi unloads its drivers at dbi_shutdown_r(); what the PostgreSQL
     * driver keeps in its statics then looks leaked to LeakSanitizer
     * (from an "<unknown module>"). Kept mapped, it stays reachable, so
     * leak checking stays on for our own code. */
    (void)dlopen(MK_DBD_DIR "/libdbdpgsql.so", RTLD_NOW | RTLD_NODELETE);
#endif
    g_autoptr(GError) error = NULL;
    tmp_dir = g_dir_make_tmp("mk-db-XXXXXX", &error);
    g_assert_no_error(error);
    start_postgres();

    g_test_add_func("/db/split-statements", test_split);
    g_test_add_func("/db/pgsql/server-started", test_pg_available);
    ADD("params", test_params);
    ADD("hostile-sql", test_hostile_sql);
    ADD("reused-statements", test_reused_statements);
    ADD("nulls", test_nulls);
    ADD("migrations", test_migrations);
    ADD("transaction", test_transaction);
    ADD("reads", test_reads);
    ADD("async", test_async);
    ADD("users", test_users);
    g_test_add_func("/db/sqlite3/connect-fail", test_connect_fail_sqlite);
    g_test_add("/db/sqlite3/two-processes", Fixture, "sqlite3", fixture_setup,
               test_sqlite_two_processes, fixture_teardown);
    g_test_add_func("/db/pgsql/connect-fail", test_connect_fail_pgsql);
    g_test_add("/db/pgsql/reconnect", Fixture, "pgsql", fixture_setup, test_reconnect_pgsql,
               fixture_teardown);

    int rc = g_test_run();
    stop_postgres();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s' '%s'", tmp_dir, pg_dir ? pg_dir : "");
    if (system(cmd) != 0)
        g_printerr("could not remove %s\n", tmp_dir);
    g_free(tmp_dir);
    g_free(pg_dir);
    return rc;
}
