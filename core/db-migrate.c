/* Schema migrations: each component's steps (MkMigration) applied once,
 * in version order, each in its own transaction, and recorded in table
 * meerkat_schema. */
#include "db-priv.h"

/* Whether @stmt (so far) is a sqlite CREATE TRIGGER whose BEGIN ... END
 * body is still open: its inner ';' do not end it. */
static gboolean in_trigger_body(const GString *stmt)
{
    const char *s = stmt->str;
    while (g_ascii_isspace(*s))
        s++;
    if (g_ascii_strncasecmp(s, "CREATE TRIGGER", 14) != 0)
        return FALSE;
    gsize n = stmt->len;
    while (n > 0 && g_ascii_isspace(stmt->str[n - 1]))
        n--;
    return !(n >= 3 && g_ascii_strncasecmp(stmt->str + n - 3, "END", 3) == 0 &&
             (n == 3 || !g_ascii_isalnum(stmt->str[n - 4])));
}

/* Splits @sql into statements at ';' outside quotes ('...', "...",
 * $$...$$), -- comments and a sqlite trigger's BEGIN ... END body.
 * Returns: (transfer full) non-empty statements, trimmed. */
char **mk_db_split_statements(const char *sql)
{
    GPtrArray *out = g_ptr_array_new();
    GString *cur = g_string_new(NULL);
    char quote = 0; /* ', ", or '$' for $$ */
    for (const char *p = sql; *p; p++) {
        if (quote == '$') {
            if (p[0] == '$' && p[1] == '$') {
                g_string_append(cur, "$$");
                p++;
                quote = 0;
            } else {
                g_string_append_c(cur, *p);
            }
            continue;
        }
        if (quote) {
            if (*p == quote)
                quote = 0;
            g_string_append_c(cur, *p);
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            /* A comment may hold quotes or ';': skip to the line's end. */
            while (p[1] && p[1] != '\n')
                p++;
            continue;
        }
        if (p[0] == '$' && p[1] == '$') {
            quote = '$';
            g_string_append(cur, "$$");
            p++;
            continue;
        }
        if (*p == '\'' || *p == '"')
            quote = *p;
        if (*p == ';' && !in_trigger_body(cur)) {
            g_strstrip(cur->str);
            if (*cur->str)
                g_ptr_array_add(out, g_strdup(cur->str));
            g_string_truncate(cur, 0);
            continue;
        }
        g_string_append_c(cur, *p);
    }
    g_strstrip(cur->str);
    if (*cur->str)
        g_ptr_array_add(out, g_strdup(cur->str));
    g_string_free(cur, TRUE);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

typedef struct {
    const char *component;
    const MkMigration *step;
    gboolean applied;
} MigrateStep;

static gint64 recorded_version(MkDbConn *conn, const char *component, GError **error)
{
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "SELECT version FROM meerkat_schema WHERE component = ?",
                         MK_DB_STR(component));
    if (!r)
        return -1;
    return mk_db_result_rows(r) ? mk_db_result_get_int(r, 0, 0) : 0;
}

/* One step in its own transaction: re-reads the recorded version under
 * the lock, so two processes migrating at once apply each step once. */
static gboolean migrate_step(MkDbConn *conn, gpointer user_data, GError **error)
{
    MigrateStep *ms = user_data;
    const char *lock = conn->db->be_ops->migration_lock;
    if (lock && !conn->db->be_ops->exec(conn, lock, error))
        return FALSE;
    gint64 have = recorded_version(conn, ms->component, error);
    if (have < 0)
        return FALSE;
    if (ms->step->version <= have)
        return TRUE;
    g_auto(GStrv) stmts = mk_db_split_statements(ms->step->sql);
    for (guint i = 0; stmts[i]; i++) {
        g_autoptr(MkDbResult) r = mk_db_conn_queryv(conn, stmts[i], NULL, error);
        if (!r)
            return FALSE;
    }
    g_autoptr(MkDbResult) r =
        have == 0
            ? mk_db_conn_query(conn, error,
                               "INSERT INTO meerkat_schema (component, version) VALUES (?, ?)",
                               MK_DB_STR(ms->component), MK_DB_INT(ms->step->version))
            : mk_db_conn_query(conn, error,
                               "UPDATE meerkat_schema SET version = ? WHERE component = ?",
                               MK_DB_INT(ms->step->version), MK_DB_STR(ms->component));
    if (!r)
        return FALSE;
    ms->applied = TRUE;
    return TRUE;
}

/* Applies @migrations of @component ("core", "mod_roster") that are newer
 * than the version recorded in table meerkat_schema; each step in its own
 * transaction. Steps for another driver are skipped: the steps for one
 * driver (its own plus the driver-NULL ones) must have strictly increasing
 * versions. Synchronous: main thread at start, or meerkatctl. */
gboolean mk_db_migrate(MkDb *db, const char *component, const MkMigration *migrations,
                       GError **error)
{
    g_return_val_if_fail(db != NULL && component != NULL, FALSE);
    if (!migrations)
        return TRUE;
    /* Check the list before touching the database. */
    int last = 0;
    for (const MkMigration *m = migrations; m->sql; m++) {
        if (m->driver && !g_str_equal(m->driver, mk_db_driver(db)))
            continue;
        if (m->version <= last) {
            g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_MIGRATION,
                        "%s: migration versions for %s must increase (%d after %d)", component,
                        mk_db_driver(db), m->version, last);
            return FALSE;
        }
        last = m->version;
    }

    MkDbConn *conn = mk_db_acquire(db, error);
    if (!conn)
        return FALSE;
    gboolean ok = TRUE;
    g_autoptr(MkDbResult) t =
        mk_db_conn_queryv(conn,
                          "CREATE TABLE IF NOT EXISTS meerkat_schema ("
                          "component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
                          NULL, error);
    if (!t)
        ok = FALSE;
    gint64 have = ok ? recorded_version(conn, component, error) : -1;
    if (ok && have < 0)
        ok = FALSE;
    if (ok && have > last)
        g_warning("storage: %s schema is at version %" G_GINT64_FORMAT
                  ", newer than this program knows (%d)",
                  component, have, last);
    for (const MkMigration *m = migrations; ok && m->sql; m++) {
        if (m->driver && !g_str_equal(m->driver, mk_db_driver(db)))
            continue;
        if (m->version <= have)
            continue;
        MigrateStep ms = {component, m, FALSE};
        if (!mk_db_conn_transaction(conn, migrate_step, &ms, error)) {
            g_prefix_error(error, "%s migration %d (%s): ", component, m->version,
                           mk_db_driver(db));
            if (error && *error) {
                (*error)->domain = MK_DB_ERROR;
                (*error)->code = MK_DB_ERROR_MIGRATION;
            }
            ok = FALSE;
            break;
        }
        if (ms.applied)
            g_info("storage: %s schema migrated to version %d", component, m->version);
    }
    mk_db_release(db, conn);
    return ok;
}
