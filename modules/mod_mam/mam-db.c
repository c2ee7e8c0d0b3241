/* mod_mam's SQL: every function runs on a storage thread with a
 * connection (inside MkDbWork) and returns FALSE with @error on failure.
 *
 * A user's archive is a number (mam_archive, one row per account that
 * ever archived, removed with the account) and a list of entries
 * (mam_entry, keyed (archive, id): the other party and nothing else);
 * the message itself (its text, sender and origin-id) is stored once in
 * mam_message, keyed by its ID, which both copies of a 1:1 message
 * share. A trigger removes a text once no archive lists it. A room's
 * archive is a number too (mam_room), its messages in mam_room_entry keyed
 * (number, id), text included. A page is one
 * range scan of an entry key (or of the (archive, with_bare, id) index
 * when 'with' is given) and one lookup per message, so its cost grows
 * with the page, not with the archive. docs/mod_mam.md has the rest;
 * docs/benchmarks.md why (schema 2). */
#include "mam.h"

/* Schema 2, on both drivers: the archive numbers, the texts and the
 * entries, copied from schema 1's mam_user_message (two rows per
 * message, keyed by the owner's names), which becomes a view of the
 * same columns for tools and tests. */
#define MAM_V2_COMMON                                                                              \
    "INSERT INTO mam_archive (username, domain)"                                                   \
    " SELECT DISTINCT username, domain FROM mam_user_message;"                                     \
    "INSERT INTO mam_message (id, from_bare, origin_id, xml)"                                      \
    " SELECT id, from_bare, origin_id, xml FROM mam_user_message WHERE TRUE"                       \
    " ON CONFLICT DO NOTHING;"                                                                     \
    "INSERT INTO mam_entry (archive, id, with_bare, with_resource)"                                \
    " SELECT a.number, u.id, u.with_bare, u.with_resource FROM mam_user_message u"                 \
    " JOIN mam_archive a ON a.username = u.username AND a.domain = u.domain;"                      \
    "DROP TABLE mam_user_message;"                                                                 \
    "CREATE INDEX mam_entry_with ON mam_entry (archive, with_bare, id);"                           \
    "CREATE VIEW mam_user_message AS SELECT a.username, a.domain, e.id, e.with_bare,"              \
    " e.with_resource, m.from_bare, m.origin_id, m.xml FROM mam_entry e"                           \
    " JOIN mam_archive a ON a.number = e.archive JOIN mam_message m ON m.id = e.id;"

#define MAM_V2_ENTRY                                                                               \
    "CREATE TABLE mam_entry ("                                                                     \
    " archive BIGINT NOT NULL REFERENCES mam_archive (number) ON DELETE CASCADE,"                  \
    " id BIGINT NOT NULL,"                                                                         \
    " with_bare TEXT NOT NULL,"                                                                    \
    " with_resource TEXT NOT NULL,"                                                                \
    " PRIMARY KEY (archive, id)"                                                                   \
    ")"

/* Schema 3 after mam_room, on both drivers. */
#define MAM_V3_COMMON                                                                              \
    "CREATE TABLE mam_room_entry ("                                                                \
    " archive BIGINT NOT NULL REFERENCES mam_room (number) ON DELETE CASCADE,"                     \
    " id BIGINT NOT NULL,"                                                                         \
    " with_bare TEXT NOT NULL,"                                                                    \
    " with_resource TEXT NOT NULL,"                                                                \
    " from_bare TEXT NOT NULL,"                                                                    \
    " origin_id TEXT,"                                                                             \
    " xml TEXT NOT NULL,"                                                                          \
    " PRIMARY KEY (archive, id)"                                                                   \
    ");"                                                                                           \
    "INSERT INTO mam_room (room) SELECT DISTINCT room FROM mam_room_message;"                      \
    "INSERT INTO mam_room_entry (archive, id, with_bare, with_resource, from_bare, origin_id, "    \
    "xml)"                                                                                         \
    " SELECT r.number, m.id, m.with_bare, m.with_resource, m.from_bare, m.origin_id, m.xml"        \
    " FROM mam_room_message m JOIN mam_room r ON r.room = m.room;"                                 \
    "DROP TABLE mam_room_message;"                                                                 \
    "CREATE INDEX mam_room_entry_with ON mam_room_entry (archive, with_bare, id);"                 \
    "CREATE VIEW mam_room_message AS SELECT r.room, e.id, e.with_bare, e.with_resource,"           \
    " e.from_bare, e.origin_id, e.xml FROM mam_room_entry e JOIN mam_room r ON r.number = "        \
    "e.archive"

/* The other party's archive (by with_bare) lists the same message. */
#define MAM_OTHER_LISTS(USER, DOMAIN)                                                              \
    "SELECT 1 FROM mam_archive a JOIN mam_entry e ON e.archive = a.number AND e.id = OLD.id"       \
    " WHERE a.username = " USER " AND a.domain = " DOMAIN

const MkMigration mam_migrations[] = {
    {NULL, 1,
     "CREATE TABLE mam_user_message ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " id BIGINT NOT NULL,"
     " with_bare TEXT NOT NULL,"
     " with_resource TEXT NOT NULL,"
     " from_bare TEXT NOT NULL,"
     " origin_id TEXT,"
     " xml TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, id),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE INDEX mam_user_message_with ON mam_user_message (username, domain, with_bare, id);"
     "CREATE TABLE mam_room_message ("
     " room TEXT NOT NULL,"
     " id BIGINT NOT NULL,"
     " with_bare TEXT NOT NULL,"
     " with_resource TEXT NOT NULL,"
     " from_bare TEXT NOT NULL,"
     " origin_id TEXT,"
     " xml TEXT NOT NULL,"
     " PRIMARY KEY (room, id)"
     ");"
     "CREATE INDEX mam_room_message_with ON mam_room_message (room, with_bare, id);"
     "CREATE TABLE mam_prefs ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " default_mode TEXT NOT NULL,"
     " always_jids TEXT NOT NULL,"
     " never_jids TEXT NOT NULL,"
     " PRIMARY KEY (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    /* sqlite: the message keyed by its rowid, the entries without one
     * (their cells are small: the key is most of them). */
    {"sqlite3", 2,
     "CREATE TABLE mam_archive ("
     " number INTEGER PRIMARY KEY,"
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " UNIQUE (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE TABLE mam_message ("
     " id INTEGER PRIMARY KEY,"
     " from_bare TEXT NOT NULL,"
     " origin_id TEXT,"
     " xml TEXT NOT NULL"
     ");" MAM_V2_ENTRY " WITHOUT ROWID;" MAM_V2_COMMON
     "CREATE TRIGGER mam_entry_gone AFTER DELETE ON mam_entry BEGIN"
     " DELETE FROM mam_message WHERE id = OLD.id AND NOT EXISTS (" MAM_OTHER_LISTS(
         "substr(OLD.with_bare, 1, instr(OLD.with_bare, '@') - 1)",
         "substr(OLD.with_bare, instr(OLD.with_bare, '@') + 1)") "); END"},
    {"pgsql", 2,
     "CREATE TABLE mam_archive ("
     " number BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " UNIQUE (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE TABLE mam_message ("
     " id BIGINT PRIMARY KEY,"
     " from_bare TEXT NOT NULL,"
     " origin_id TEXT,"
     " xml TEXT NOT NULL"
     ");" MAM_V2_ENTRY ";" MAM_V2_COMMON
     "CREATE FUNCTION mam_entry_gone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
     " DELETE FROM mam_message WHERE id = OLD.id AND NOT EXISTS (" MAM_OTHER_LISTS(
         "split_part(OLD.with_bare, '@', 1)",
         "split_part(OLD.with_bare, '@', 2)") ");"
                                              " RETURN NULL; END $$;"
                                              "CREATE TRIGGER mam_entry_gone AFTER DELETE ON "
                                              "mam_entry FOR EACH ROW"
                                              " EXECUTE FUNCTION mam_entry_gone()"},
    /* Schema 3: a room's archive is a number too (mam_room), its
     * messages keyed (number, id) in mam_room_entry: integer keys in
     * both B-trees instead of the room's JID in every cell, as a user's
     * archive. mam_room_message becomes a view of the same columns. */
    {"sqlite3", 3,
     "CREATE TABLE mam_room ("
     " number INTEGER PRIMARY KEY AUTOINCREMENT,"
     " room TEXT NOT NULL UNIQUE"
     ");" MAM_V3_COMMON},
    {"pgsql", 3,
     "CREATE TABLE mam_room ("
     " number BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " room TEXT NOT NULL UNIQUE"
     ");" MAM_V3_COMMON},
    MK_MIGRATIONS_END,
};

/* The condition that selects @a's rows (of mam_entry e for a user's
 * archive); its values go to @params. */
static const char *owner_cond(const MamArchive *a, GArray *params)
{
    if (a->room) {
        MkDbParam p = MK_DB_STR(a->room);
        g_array_append_val(params, p);
        return "e.archive = (SELECT number FROM mam_room WHERE room = ?)";
    }
    MkDbParam u = MK_DB_STR(a->username), d = MK_DB_STR(a->domain);
    g_array_append_val(params, u);
    g_array_append_val(params, d);
    return "e.archive = (SELECT number FROM mam_archive WHERE username = ? AND domain = ?)";
}

/* "TABLE WHERE CONDITION" of @a, for a SELECT of its IDs. Returns:
 * (transfer full) */
static char *owner_sql(const MamArchive *a, GArray *params)
{
    return g_strconcat(a->room ? "mam_room_entry e" : "mam_entry e", " WHERE ",
                       owner_cond(a, params), NULL);
}

/* The ID column's name in owner_sql's table. */
static const char *id_col(const MamArchive *a)
{
    (void)a;
    return "e.id";
}

static MkDbResult *run(MkDbConn *conn, const char *sql, GArray *params, GError **error)
{
    MkDbParam end = MK_DB_END;
    g_array_append_val(params, end);
    return mk_db_conn_queryv(conn, sql, (const MkDbParam *)params->data, error);
}

/* ---- writing --------------------------------------------------------- */

gboolean mam_db_archive_number(MkDbConn *conn, const char *username, const char *domain,
                               gboolean create, gint64 *number, GError **error)
{
    *number = 0;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT number FROM mam_archive WHERE username = ? AND domain = ?",
        MK_DB_STR(username), MK_DB_STR(domain));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0) {
        *number = mk_db_result_get_int(res, 0, 0);
        return TRUE;
    }
    if (!create)
        return TRUE;
    /* Only for an account that exists: a message to a just-removed one
     * must not make it an archive again. */
    g_autoptr(MkDbResult) ins = mk_db_conn_query(
        conn, error,
        "INSERT INTO mam_archive (username, domain) SELECT ?, ? WHERE EXISTS"
        " (SELECT 1 FROM users WHERE username = ? AND domain = ?)"
        " ON CONFLICT DO NOTHING RETURNING number",
        MK_DB_STR(username), MK_DB_STR(domain), MK_DB_STR(username), MK_DB_STR(domain));
    if (!ins)
        return FALSE;
    if (mk_db_result_rows(ins) > 0) {
        *number = mk_db_result_get_int(ins, 0, 0);
        return TRUE;
    }
    /* Created meanwhile by another process (PostgreSQL), or no account. */
    return mam_db_archive_number(conn, username, domain, FALSE, number, error);
}

gboolean mam_db_room_number(MkDbConn *conn, const char *room, gint64 *number, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT number FROM mam_room WHERE room = ?", MK_DB_STR(room));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) == 0) {
        g_autoptr(MkDbResult) ins = mk_db_conn_query(
            conn, error, "INSERT INTO mam_room (room) VALUES (?) ON CONFLICT DO NOTHING",
            MK_DB_STR(room));
        if (!ins)
            return FALSE;
        /* Read back: created here, or meanwhile by another process. */
        g_clear_pointer(&res, mk_db_result_free);
        res = mk_db_conn_query(conn, error, "SELECT number FROM mam_room WHERE room = ?",
                               MK_DB_STR(room));
        if (!res)
            return FALSE;
    }
    *number = mk_db_result_rows(res) > 0 ? mk_db_result_get_int(res, 0, 0) : 0;
    return TRUE;
}

typedef enum { PART_TEXT, PART_ENTRY, PART_ROOM } PartKind;

/* One multi-row INSERT of @n rows of @kind. ON CONFLICT skips a row
 * already written (a batch retried after a commit whose answer was
 * lost, or a text the other copy of its message wrote), so that no row
 * can make its batch fail again and again. */
static gboolean insert_part(MkDbConn *conn, MamRow **rows, guint n, PartKind kind, GError **error)
{
    static const char *const head[] = {
        [PART_TEXT] = "INSERT INTO mam_message (id, from_bare, origin_id, xml) VALUES ",
        [PART_ENTRY] = "INSERT INTO mam_entry (archive, id, with_bare, with_resource) VALUES ",
        [PART_ROOM] = "INSERT INTO mam_room_entry (archive, id, with_bare, with_resource,"
                      " from_bare, origin_id, xml) VALUES ",
    };
    static const char *const one[] = {
        [PART_TEXT] = "(?,?,?,?)",
        [PART_ENTRY] = "(?,?,?,?)",
        [PART_ROOM] = "(?,?,?,?,?,?,?)",
    };
    g_autoptr(GString) sql = g_string_new(head[kind]);
    g_autoptr(GArray) params = g_array_sized_new(FALSE, FALSE, sizeof(MkDbParam), n * 7 + 1);
    for (guint i = 0; i < n; i++) {
        MamRow *r = rows[i];
        if (i)
            g_string_append_c(sql, ',');
        g_string_append(sql, one[kind]);
        MkDbParam p[7];
        guint k = 0;
        if (kind != PART_TEXT)
            p[k++] = MK_DB_INT(r->number);
        p[k++] = MK_DB_INT((gint64)r->id);
        if (kind != PART_TEXT) {
            p[k++] = MK_DB_STR(r->with_bare);
            p[k++] = MK_DB_STR(r->with_resource ? r->with_resource : "");
        }
        if (kind != PART_ENTRY) {
            p[k++] = MK_DB_STR(r->from_bare);
            p[k++] = r->origin_id ? MK_DB_STR(r->origin_id) : MK_DB_NULL;
            p[k++] = MK_DB_STR(r->xml);
        }
        g_array_append_vals(params, p, k);
    }
    g_string_append(sql, " ON CONFLICT DO NOTHING");
    g_autoptr(MkDbResult) res = run(conn, sql->str, params, error);
    return res != NULL;
}

/* Rows per INSERT on sqlite, largest first: every INSERT has one of
 * these shapes, so each kind is at most four texts in the connection's
 * statement cache and is compiled once. With a statement per group size
 * (1 .. batch_size rows) the cache filled up and every flush compiled
 * its INSERTs again, about 140k instructions for one of 30 rows. */
static const guint sqlite_shapes[] = {64, 16, 4, 1};

/* @rows in INSERTs: on sqlite of the fixed shapes; elsewhere (values
 * sent as text, one round trip each) of at most @chunk rows. */
static gboolean insert_all(MkDbConn *conn, GPtrArray *rows, guint chunk, PartKind kind,
                           GError **error)
{
    gboolean sqlite = g_strcmp0(mk_db_conn_driver(conn), "sqlite3") == 0;
    guint i = 0, shape = 0;
    while (i < rows->len) {
        guint left = rows->len - i, n = MIN(chunk, left);
        if (sqlite) {
            while (sqlite_shapes[shape] > left)
                shape++;
            n = sqlite_shapes[shape];
        }
        if (!insert_part(conn, (MamRow **)rows->pdata + i, n, kind, error))
            return FALSE;
        i += n;
    }
    return TRUE;
}

static gint by_id(gconstpointer a, gconstpointer b)
{
    const MamRow *x = *(MamRow *const *)a, *y = *(MamRow *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

gboolean mam_db_insert(MkDbConn *conn, GPtrArray *rows, guint chunk, GError **error)
{
    g_autoptr(GPtrArray) users = g_ptr_array_new();
    g_autoptr(GPtrArray) rooms = g_ptr_array_new();
    for (guint i = 0; i < rows->len; i++) {
        MamRow *r = rows->pdata[i];
        g_ptr_array_add(r->archive.room ? rooms : users, r);
    }
    chunk = MAX(chunk, 1);
    /* The texts once per message ID, in ID order: each goes to the end of
     * mam_message's key, where the last pages are already dirty. */
    g_autoptr(GPtrArray) texts = g_ptr_array_copy(users, NULL, NULL);
    g_ptr_array_sort(texts, by_id);
    guint n = 0;
    for (guint i = 0; i < texts->len; i++) {
        MamRow *r = texts->pdata[i];
        if (n == 0 || ((MamRow *)texts->pdata[n - 1])->id != r->id)
            texts->pdata[n++] = r;
    }
    g_ptr_array_set_size(texts, n);
    return insert_all(conn, texts, chunk, PART_TEXT, error) &&
           insert_all(conn, users, chunk, PART_ENTRY, error) &&
           insert_all(conn, rooms, chunk, PART_ROOM, error);
}

/* XEP-0424: the archived message becomes a tombstone. A user's copies
 * share their text: retracting it in one archive retracts it in both. */
gboolean mam_db_retract(MkDbConn *conn, const MamArchive *a, const char *from_bare,
                        const char *origin_id, const char *tombstone, guint64 *retracted,
                        GError **error)
{
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    MkDbParam t = MK_DB_STR(tombstone);
    g_array_append_val(params, t);
    /* A room's rows in the one table, without owner_sql's alias. */
    g_autofree char *owner = owner_sql(a, params);
    MkDbParam f = MK_DB_STR(from_bare), o = MK_DB_STR(origin_id);
    g_array_append_val(params, f);
    g_array_append_val(params, o);
    g_autofree char *sql =
        a->room ? g_strconcat("UPDATE mam_room_entry SET xml = ? WHERE (archive, id) IN"
                              " (SELECT e.archive, e.id FROM ",
                              owner, ") AND from_bare = ? AND origin_id = ?", NULL)
                : g_strconcat("UPDATE mam_message SET xml = ? WHERE id IN (SELECT e.id FROM ",
                              owner, ") AND from_bare = ? AND origin_id = ?", NULL);
    g_autoptr(MkDbResult) res = run(conn, sql, params, error);
    if (!res)
        return FALSE;
    *retracted = mk_db_result_affected(res);
    return TRUE;
}

/* Deletes up to @limit rows older than @before_id from every archive
 * (a user's text goes with its last entry, by the trigger); the number
 * deleted in @deleted. */
gboolean mam_db_purge(MkDbConn *conn, guint64 before_id, guint limit, guint64 *deleted,
                      GError **error)
{
    static const char *const sql[] = {
        "DELETE FROM mam_entry WHERE (archive, id) IN (SELECT archive, id"
        " FROM mam_entry WHERE id < ? LIMIT ?)",
        "DELETE FROM mam_room_entry WHERE (archive, id) IN (SELECT archive, id"
        " FROM mam_room_entry WHERE id < ? LIMIT ?)",
    };
    *deleted = 0;
    for (guint i = 0; i < G_N_ELEMENTS(sql); i++) {
        g_autoptr(MkDbResult) res =
            mk_db_conn_query(conn, error, sql[i], MK_DB_INT((gint64)before_id), MK_DB_INT(limit));
        if (!res)
            return FALSE;
        *deleted += mk_db_result_affected(res);
    }
    return TRUE;
}

/* ---- reading --------------------------------------------------------- */

gboolean mam_db_has_id(MkDbConn *conn, const MamArchive *a, guint64 id, gboolean *found,
                       GError **error)
{
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    g_autofree char *owner = owner_sql(a, params);
    MkDbParam p = MK_DB_INT((gint64)id);
    g_array_append_val(params, p);
    g_autofree char *sql = g_strconcat("SELECT 1 FROM ", owner, " AND ", id_col(a), " = ?", NULL);
    g_autoptr(MkDbResult) res = run(conn, sql, params, error);
    if (!res)
        return FALSE;
    *found = mk_db_result_rows(res) > 0;
    return TRUE;
}

/* The query's filters (not the RSM bounds) as SQL after the owner. */
static void add_filters(const MamArchive *a, const MamQuery *q, GString *sql, GArray *params)
{
    const char *id = id_col(a);
    if (q->with) {
        MkDbParam p = MK_DB_STR(mk_jid_bare_string(q->with));
        g_string_append(sql, " AND e.with_bare = ?");
        g_array_append_val(params, p);
        if (mk_jid_resource(q->with)) {
            MkDbParam r = MK_DB_STR(mk_jid_resource(q->with));
            g_string_append(sql, " AND e.with_resource = ?");
            g_array_append_val(params, r);
        }
    }
    /* Time and ID bounds become one ID range. */
    guint64 lo = 0, hi = G_MAXINT64;
    if (q->start_us != G_MININT64)
        lo = MAX(lo, mam_id_for_time(q->start_us));
    if (q->end_us != G_MAXINT64)
        hi = MIN(hi, mam_id_for_time(q->end_us) | 0xff);
    if (q->has_after_id)
        lo = MAX(lo, q->after_id + 1);
    if (q->has_before_id)
        hi = MIN(hi, q->before_id ? q->before_id - 1 : 0);
    if (lo > 0) {
        MkDbParam p = MK_DB_INT((gint64)lo);
        g_string_append_printf(sql, " AND %s >= ?", id);
        g_array_append_val(params, p);
    }
    if (hi < G_MAXINT64) {
        MkDbParam p = MK_DB_INT((gint64)hi);
        g_string_append_printf(sql, " AND %s <= ?", id);
        g_array_append_val(params, p);
    }
    if (q->ids) {
        g_string_append_printf(sql, " AND %s IN (", id);
        for (guint i = 0; i < q->ids->len; i++) {
            MkDbParam p = MK_DB_INT((gint64)g_array_index(q->ids, guint64, i));
            g_string_append(sql, i ? ",?" : "?");
            g_array_append_val(params, p);
        }
        g_string_append_c(sql, ')');
    }
}

static gboolean count_rows(MkDbConn *conn, const MamArchive *a, const MamQuery *q, guint64 *count,
                           GError **error)
{
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    g_autofree char *owner = owner_sql(a, params);
    g_autoptr(GString) sql = g_string_new("SELECT COUNT(*) FROM ");
    g_string_append(sql, owner);
    add_filters(a, q, sql, params);
    g_autoptr(MkDbResult) res = run(conn, sql->str, params, error);
    if (!res)
        return FALSE;
    *count = (guint64)mk_db_result_get_int(res, 0, 0);
    return TRUE;
}

void mam_page_free(MamPage *page)
{
    if (!page)
        return;
    g_array_unref(page->ids);
    g_ptr_array_unref(page->xml);
    g_free(page);
}

MamPage *mam_db_page(MkDbConn *conn, const MamArchive *a, const MamQuery *q, GError **error)
{
    g_autoptr(MamPage) page = g_new0(MamPage, 1);
    page->ids = g_array_new(FALSE, FALSE, sizeof(guint64));
    page->xml = g_ptr_array_new_with_free_func(g_free);
    page->count = -1;

    /* max = 0 asks for the count only (XEP-0059 2.6): the one case where
     * a full count is worth its scan. */
    if (q->max == 0) {
        guint64 count;
        if (!count_rows(conn, a, q, &count, error))
            return NULL;
        page->count = (gint64)count;
        page->complete = count == 0;
        return g_steal_pointer(&page);
    }
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    /* A user's page: the entries in key order, each one's text by its ID
     * (CROSS JOIN keeps sqlite's planner on that order). */
    g_autoptr(GString) sql =
        g_string_new(a->room ? "SELECT e.id, e.xml FROM mam_room_entry e WHERE "
                             : "SELECT e.id, m.xml FROM mam_entry e CROSS JOIN mam_message m"
                               " WHERE m.id = e.id AND ");
    g_string_append(sql, owner_cond(a, params));
    add_filters(a, q, sql, params);
    if (q->has_rsm_after) {
        MkDbParam p = MK_DB_INT((gint64)q->rsm_after);
        g_string_append_printf(sql, " AND %s > ?", id_col(a));
        g_array_append_val(params, p);
    }
    if (q->has_rsm_before) {
        MkDbParam p = MK_DB_INT((gint64)q->rsm_before);
        g_string_append_printf(sql, " AND %s < ?", id_col(a));
        g_array_append_val(params, p);
    }
    /* One row more than the page tells whether the page is the last one
     * in its direction. */
    g_string_append_printf(sql, " ORDER BY %s %s LIMIT %u", id_col(a), q->from_end ? "DESC" : "ASC",
                           q->max + 1);
    if (q->has_index && !q->from_end)
        g_string_append_printf(sql, " OFFSET %u", q->index);
    g_autoptr(MkDbResult) res = run(conn, sql->str, params, error);
    if (!res)
        return NULL;
    guint rows = mk_db_result_rows(res);
    page->complete = rows <= q->max;
    guint n = MIN(rows, q->max);
    for (guint i = 0; i < n; i++) {
        /* Chronological in the page whichever end it was taken from. */
        guint row = q->from_end ? n - 1 - i : i;
        guint64 id = (guint64)mk_db_result_get_int(res, row, 0);
        g_array_append_val(page->ids, id);
        g_ptr_array_add(page->xml, g_strdup(mk_db_result_get_string(res, row, 1)));
    }
    /* The whole result set in one page starting at its first item: its
     * size is the count, at no cost. */
    if (page->complete && !q->has_rsm_after && !q->has_rsm_before && !q->has_index)
        page->count = n;
    if (q->has_index && !q->from_end)
        page->first_index = (gint64)q->index;
    else if (!q->has_rsm_after && !q->has_rsm_before && !q->from_end)
        page->first_index = 0;
    else
        page->first_index = -1;
    return g_steal_pointer(&page);
}

gboolean mam_db_bounds(MkDbConn *conn, const MamArchive *a, guint64 *first, guint64 *last,
                       GError **error)
{
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    g_autofree char *owner = owner_sql(a, params);
    /* Two ends of the primary key: two index probes, whatever the size. */
    g_autofree char *sql = g_strconcat("SELECT (SELECT ", id_col(a), " FROM ", owner, " ORDER BY ",
                                       id_col(a), " ASC LIMIT 1), (SELECT ", id_col(a), " FROM ",
                                       owner, " ORDER BY ", id_col(a), " DESC LIMIT 1)", NULL);
    MkDbParam again[2]; /* the owner's values once more, for the second probe */
    guint n = params->len;
    memcpy(again, params->data, n * sizeof *again);
    g_array_append_vals(params, again, n);
    g_autoptr(MkDbResult) res = run(conn, sql, params, error);
    if (!res)
        return FALSE;
    *first = mk_db_result_is_null(res, 0, 0) ? 0 : (guint64)mk_db_result_get_int(res, 0, 0);
    *last = mk_db_result_is_null(res, 0, 1) ? 0 : (guint64)mk_db_result_get_int(res, 0, 1);
    return TRUE;
}

/* ---- preferences ------------------------------------------------------ */

gboolean mam_db_prefs_get(MkDbConn *conn, const char *username, const char *domain, MamPrefs **out,
                          GError **error)
{
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT default_mode, always_jids, never_jids FROM mam_prefs"
                         " WHERE username = ? AND domain = ?",
                         MK_DB_STR(username), MK_DB_STR(domain));
    if (!res)
        return FALSE;
    *out = NULL;
    if (mk_db_result_rows(res) > 0)
        *out = mam_prefs_new(mk_db_result_get_string(res, 0, 0), mk_db_result_get_string(res, 0, 1),
                             mk_db_result_get_string(res, 0, 2));
    return TRUE;
}

gboolean mam_db_prefs_set(MkDbConn *conn, const char *username, const char *domain,
                          const MamPrefs *prefs, GError **error)
{
    g_autofree char *always = mam_prefs_join(prefs->always);
    g_autofree char *never = mam_prefs_join(prefs->never);
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "INSERT INTO mam_prefs (username, domain, default_mode, always_jids, never_jids)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (username, domain) DO UPDATE SET"
        " default_mode = excluded.default_mode, always_jids = excluded.always_jids,"
        " never_jids = excluded.never_jids",
        MK_DB_STR(username), MK_DB_STR(domain), MK_DB_STR(mam_prefs_mode_name(prefs->mode)),
        MK_DB_STR(always), MK_DB_STR(never));
    return res != NULL;
}
