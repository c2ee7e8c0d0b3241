/* mod_mam's SQL: every function runs on a storage thread with a
 * connection (inside MkDbWork) and returns FALSE with @error on failure.
 *
 * A user's archive lives in mam_user_message, keyed (username, domain,
 * id) so that the primary key serves both a page and the cascade that
 * removes the archive with the account; a room's in mam_room_message,
 * keyed (room, id). A page is one range scan of that key (or of the
 * (owner, with_bare, id) index when 'with' is given), so its cost grows
 * with the page, not with the archive. docs/mod_mam.md has the rest. */
#include "mam.h"

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
    MK_MIGRATIONS_END,
};

static const char *table_of(const MamArchive *a)
{
    return a->room ? "mam_room_message" : "mam_user_message";
}

/* The condition that selects @a's rows; its values go to @params. */
static const char *owner_cond(const MamArchive *a, GArray *params)
{
    if (a->room) {
        MkDbParam p = MK_DB_STR(a->room);
        g_array_append_val(params, p);
        return "room = ?";
    }
    MkDbParam u = MK_DB_STR(a->username), d = MK_DB_STR(a->domain);
    g_array_append_val(params, u);
    g_array_append_val(params, d);
    return "username = ? AND domain = ?";
}

/* "TABLE WHERE CONDITION" of @a, for a SELECT. Returns: (transfer full) */
static char *owner_sql(const MamArchive *a, GArray *params)
{
    return g_strconcat(table_of(a), " WHERE ", owner_cond(a, params), NULL);
}

static MkDbResult *run(MkDbConn *conn, const char *sql, GArray *params, GError **error)
{
    MkDbParam end = MK_DB_END;
    g_array_append_val(params, end);
    return mk_db_conn_queryv(conn, sql, (const MkDbParam *)params->data, error);
}

/* ---- writing --------------------------------------------------------- */

/* One multi-row INSERT for the rows of one table. A row whose account
 * was removed meanwhile is skipped (EXISTS), and so is one already
 * written (ON CONFLICT: a batch retried after a commit whose answer was
 * lost), so that no row can make its batch fail again and again. */
static gboolean insert_rows(MkDbConn *conn, MamRow **rows, guint n, gboolean room, GError **error)
{
    /* VALUES columns are column1, column2, ... in both sqlite and PostgreSQL. */
    g_autoptr(GString) sql = g_string_new(
        room ? "INSERT INTO mam_room_message (room, id, with_bare, with_resource, from_bare,"
               " origin_id, xml) SELECT * FROM (VALUES "
             : "INSERT INTO mam_user_message (username, domain, id, with_bare, with_resource,"
               " from_bare, origin_id, xml) SELECT * FROM (VALUES ");
    g_autoptr(GArray) params = g_array_sized_new(FALSE, FALSE, sizeof(MkDbParam), n * 8 + 1);
    for (guint i = 0; i < n; i++) {
        MamRow *r = rows[i];
        g_string_append(sql, i ? ",(?,?,?,?,?,?,?" : "(?,?,?,?,?,?,?");
        g_string_append(sql, room ? ")" : ",?)");
        MkDbParam p[8];
        guint k = 0;
        if (room) {
            p[k++] = MK_DB_STR(r->archive.room);
        } else {
            p[k++] = MK_DB_STR(r->archive.username);
            p[k++] = MK_DB_STR(r->archive.domain);
        }
        p[k++] = MK_DB_INT((gint64)r->id);
        p[k++] = MK_DB_STR(r->with_bare);
        p[k++] = MK_DB_STR(r->with_resource ? r->with_resource : "");
        p[k++] = MK_DB_STR(r->from_bare);
        p[k++] = r->origin_id ? MK_DB_STR(r->origin_id) : MK_DB_NULL;
        p[k++] = MK_DB_STR(r->xml);
        g_array_append_vals(params, p, k);
    }
    g_string_append(sql, room ? ") AS v WHERE TRUE ON CONFLICT DO NOTHING"
                              : ") AS v WHERE EXISTS (SELECT 1 FROM users u WHERE"
                                " u.username = v.column1 AND u.domain = v.column2)"
                                " ON CONFLICT DO NOTHING");
    g_autoptr(MkDbResult) res = run(conn, sql->str, params, error);
    return res != NULL;
}

gboolean mam_db_insert(MkDbConn *conn, GPtrArray *rows, GError **error)
{
    g_autoptr(GPtrArray) users = g_ptr_array_new();
    g_autoptr(GPtrArray) rooms = g_ptr_array_new();
    for (guint i = 0; i < rows->len; i++) {
        MamRow *r = rows->pdata[i];
        g_ptr_array_add(r->archive.room ? rooms : users, r);
    }
    if (users->len && !insert_rows(conn, (MamRow **)users->pdata, users->len, FALSE, error))
        return FALSE;
    if (rooms->len && !insert_rows(conn, (MamRow **)rooms->pdata, rooms->len, TRUE, error))
        return FALSE;
    return TRUE;
}

/* XEP-0424: the archived message becomes a tombstone in this archive. */
gboolean mam_db_retract(MkDbConn *conn, const MamArchive *a, const char *from_bare,
                        const char *origin_id, const char *tombstone, guint64 *retracted,
                        GError **error)
{
    g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(MkDbParam));
    MkDbParam t = MK_DB_STR(tombstone);
    g_array_append_val(params, t);
    const char *cond = owner_cond(a, params);
    MkDbParam f = MK_DB_STR(from_bare), o = MK_DB_STR(origin_id);
    g_array_append_val(params, f);
    g_array_append_val(params, o);
    g_autofree char *sql = g_strconcat("UPDATE ", table_of(a), " SET xml = ? WHERE ", cond,
                                       " AND from_bare = ? AND origin_id = ?", NULL);
    g_autoptr(MkDbResult) res = run(conn, sql, params, error);
    if (!res)
        return FALSE;
    *retracted = mk_db_result_affected(res);
    return TRUE;
}

/* Deletes up to @limit rows older than @before_id from every archive; the
 * number deleted in @deleted. */
gboolean mam_db_purge(MkDbConn *conn, guint64 before_id, guint limit, guint64 *deleted,
                      GError **error)
{
    static const char *const sql[] = {
        "DELETE FROM mam_user_message WHERE (username, domain, id) IN (SELECT username, domain, id"
        " FROM mam_user_message WHERE id < ? LIMIT ?)",
        "DELETE FROM mam_room_message WHERE (room, id) IN (SELECT room, id"
        " FROM mam_room_message WHERE id < ? LIMIT ?)",
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
    g_autofree char *sql = g_strconcat("SELECT 1 FROM ", owner, " AND id = ?", NULL);
    g_autoptr(MkDbResult) res = run(conn, sql, params, error);
    if (!res)
        return FALSE;
    *found = mk_db_result_rows(res) > 0;
    return TRUE;
}

/* The query's filters (not the RSM bounds) as SQL after the owner. */
static void add_filters(const MamQuery *q, GString *sql, GArray *params)
{
    if (q->with) {
        MkDbParam p = MK_DB_STR(mk_jid_bare_string(q->with));
        g_string_append(sql, " AND with_bare = ?");
        g_array_append_val(params, p);
        if (mk_jid_resource(q->with)) {
            MkDbParam r = MK_DB_STR(mk_jid_resource(q->with));
            g_string_append(sql, " AND with_resource = ?");
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
        g_string_append(sql, " AND id >= ?");
        g_array_append_val(params, p);
    }
    if (hi < G_MAXINT64) {
        MkDbParam p = MK_DB_INT((gint64)hi);
        g_string_append(sql, " AND id <= ?");
        g_array_append_val(params, p);
    }
    if (q->ids) {
        g_string_append(sql, " AND id IN (");
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
    add_filters(q, sql, params);
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
    g_autofree char *owner = owner_sql(a, params);
    g_autoptr(GString) sql = g_string_new("SELECT id, xml FROM ");
    g_string_append(sql, owner);
    add_filters(q, sql, params);
    if (q->has_rsm_after) {
        MkDbParam p = MK_DB_INT((gint64)q->rsm_after);
        g_string_append(sql, " AND id > ?");
        g_array_append_val(params, p);
    }
    if (q->has_rsm_before) {
        MkDbParam p = MK_DB_INT((gint64)q->rsm_before);
        g_string_append(sql, " AND id < ?");
        g_array_append_val(params, p);
    }
    /* One row more than the page tells whether the page is the last one
     * in its direction. */
    g_string_append_printf(sql, " ORDER BY id %s LIMIT %u", q->from_end ? "DESC" : "ASC",
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
    g_autofree char *sql =
        g_strconcat("SELECT (SELECT id FROM ", owner, " ORDER BY id ASC LIMIT 1), (SELECT id FROM ",
                    owner, " ORDER BY id DESC LIMIT 1)", NULL);
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
