/* mod_muc_light storage: rooms as rows (storage thread only). */
#include "muclight.h"

/* clang-format off */
const MkMigration ml_migrations[] = {
    {NULL, 1,
     "CREATE TABLE muclight_rooms ("
     " room TEXT NOT NULL PRIMARY KEY,"
     " version TEXT NOT NULL,"
     " roomname TEXT NOT NULL,"
     " subject TEXT NOT NULL,"
     " created_at BIGINT NOT NULL);"
     "CREATE TABLE muclight_occupants ("
     " room TEXT NOT NULL REFERENCES muclight_rooms (room) ON DELETE CASCADE,"
     " jid TEXT NOT NULL,"
     " aff INTEGER NOT NULL,"
     " PRIMARY KEY (room, jid));"
     "CREATE INDEX muclight_occupants_jid ON muclight_occupants (jid);"
     "CREATE TABLE muclight_blocking ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " kind INTEGER NOT NULL,"
     " who TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, kind, who),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain)"
     "  ON DELETE CASCADE)"},
    MK_MIGRATIONS_END,
};
/* clang-format on */

MlRoom *ml_db_read_room(MkDbConn *conn, const char *room, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT version, roomname, subject FROM muclight_rooms WHERE room = ?",
        MK_DB_STR(room));
    if (!res)
        return NULL;
    g_autoptr(MlRoom) r = ml_room_new();
    if (mk_db_result_rows(res) == 0)
        return g_steal_pointer(&r);
    r->exists = TRUE;
    r->version = g_strdup(mk_db_result_get_string(res, 0, 0));
    r->roomname = g_strdup(mk_db_result_get_string(res, 0, 1));
    r->subject = g_strdup(mk_db_result_get_string(res, 0, 2));
    g_autoptr(MkDbResult) users = mk_db_conn_query(
        conn, error, "SELECT jid, aff FROM muclight_occupants WHERE room = ? ORDER BY jid",
        MK_DB_STR(room));
    if (!users)
        return NULL;
    for (guint i = 0; i < mk_db_result_rows(users); i++)
        ml_room_set_aff(r, mk_db_result_get_string(users, i, 0),
                        (MlAff)mk_db_result_get_int(users, i, 1));
    return g_steal_pointer(&r);
}

gboolean ml_db_room_exists(MkDbConn *conn, const char *room, gboolean *exists, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT 1 FROM muclight_rooms WHERE room = ?", MK_DB_STR(room));
    if (!res)
        return FALSE;
    *exists = mk_db_result_rows(res) > 0;
    return TRUE;
}

gboolean ml_db_write_room(MkDbConn *conn, const char *room, const MlRoom *before,
                          const MlRoom *after, GError **error)
{
    if (!after->exists) {
        g_autoptr(MkDbResult) a = mk_db_conn_query(
            conn, error, "DELETE FROM muclight_occupants WHERE room = ?", MK_DB_STR(room));
        if (!a)
            return FALSE;
        g_autoptr(MkDbResult) b = mk_db_conn_query(
            conn, error, "DELETE FROM muclight_rooms WHERE room = ?", MK_DB_STR(room));
        return b != NULL;
    }
    g_autoptr(MkDbResult) row = NULL;
    if (before->exists)
        row = mk_db_conn_query(
            conn, error,
            "UPDATE muclight_rooms SET version = ?, roomname = ?, subject = ? WHERE room = ?",
            MK_DB_STR(after->version), MK_DB_STR(after->roomname), MK_DB_STR(after->subject),
            MK_DB_STR(room));
    else
        row = mk_db_conn_query(conn, error,
                               "INSERT INTO muclight_rooms (room, version, roomname, subject,"
                               " created_at) VALUES (?, ?, ?, ?, ?)",
                               MK_DB_STR(room), MK_DB_STR(after->version),
                               MK_DB_STR(after->roomname), MK_DB_STR(after->subject),
                               MK_DB_INT(g_get_real_time() / G_USEC_PER_SEC));
    if (!row)
        return FALSE;
    /* Users gone, then users new or changed. */
    for (guint i = 0; i < before->users->len; i++) {
        const MlUser *u = g_ptr_array_index(before->users, i);
        if (ml_room_aff(after, u->jid) != ML_NONE)
            continue;
        g_autoptr(MkDbResult) d = mk_db_conn_query(
            conn, error, "DELETE FROM muclight_occupants WHERE room = ? AND jid = ?",
            MK_DB_STR(room), MK_DB_STR(u->jid));
        if (!d)
            return FALSE;
    }
    for (guint i = 0; i < after->users->len; i++) {
        const MlUser *u = g_ptr_array_index(after->users, i);
        if (ml_room_aff(before, u->jid) == u->aff)
            continue;
        g_autoptr(MkDbResult) w =
            mk_db_conn_query(conn, error,
                             "INSERT INTO muclight_occupants (room, jid, aff) VALUES (?, ?, ?)"
                             " ON CONFLICT (room, jid) DO UPDATE SET aff = excluded.aff",
                             MK_DB_STR(room), MK_DB_STR(u->jid), MK_DB_INT(u->aff));
        if (!w)
            return FALSE;
    }
    return TRUE;
}

gint64 ml_db_count_rooms(MkDbConn *conn, const char *jid, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT COUNT(*) FROM muclight_occupants WHERE jid = ?", MK_DB_STR(jid));
    return res ? mk_db_result_get_int(res, 0, 0) : -1;
}

gboolean ml_db_blocks(MkDbConn *conn, MkJid *user, const char *room, const char *actor,
                      gboolean *blocks, GError **error)
{
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT 1 FROM muclight_blocking WHERE username = ? AND domain = ?"
                         " AND ((kind = 0 AND who = ?) OR (kind = 1 AND who = ?))",
                         MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)),
                         MK_DB_STR(room), MK_DB_STR(actor));
    if (!res)
        return FALSE;
    *blocks = mk_db_result_rows(res) > 0;
    return TRUE;
}
