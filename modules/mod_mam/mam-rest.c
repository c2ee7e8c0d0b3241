/* The archive services for APIs (mk-archive.h, "archive-user" and
 * "archive-room-read"): the last messages of a user's archive,
 * optionally with one party, or of a room's, before a time. The writer
 * is synced first, so a message sent before the call is in the answer,
 * as for a MAM query. */
#include "mam.h"
#include <string.h>

typedef struct {
    Mam *m;
    MamArchive archive; /* owned strings */
    char *with;         /* nullable bare JID */
    guint64 before_id;
    guint limit;
    MkArchiveMessagesDone done;
    gpointer user_data;
    GDestroyNotify destroy;
    GPtrArray *out; /* MkArchivedMessage*, newest first until done */
} RestRead;

static void rest_read_free(gpointer data)
{
    RestRead *op = data;
    if (op->destroy)
        op->destroy(op->user_data);
    g_free(op->archive.room);
    g_free(op->archive.username);
    g_free(op->archive.domain);
    g_free(op->with);
    g_ptr_array_unref(op->out);
    g_free(op);
}

/* Storage thread. */
static gboolean rest_read_work(MkDbConn *conn, gpointer data, GError **error)
{
    RestRead *op = data;
    g_autoptr(MkDbResult) res =
        op->archive.room
            ? mk_db_conn_query(conn, error,
                               "SELECT id, from_bare, with_bare, xml FROM mam_room_entry"
                               " WHERE archive = (SELECT number FROM mam_room WHERE room = ?)"
                               " AND id < ? ORDER BY id DESC LIMIT ?",
                               MK_DB_STR(op->archive.room), MK_DB_INT((gint64)op->before_id),
                               MK_DB_INT(op->limit))
        : op->with
            ? mk_db_conn_query(conn, error,
                               "SELECT e.id, m.from_bare, e.with_bare, m.xml FROM mam_entry e"
                               " CROSS JOIN mam_message m WHERE m.id = e.id AND e.archive ="
                               " (SELECT number FROM mam_archive WHERE username = ? AND domain = ?)"
                               " AND e.with_bare = ? AND e.id < ? ORDER BY e.id DESC LIMIT ?",
                               MK_DB_STR(op->archive.username), MK_DB_STR(op->archive.domain),
                               MK_DB_STR(op->with), MK_DB_INT((gint64)op->before_id),
                               MK_DB_INT(op->limit))
            : mk_db_conn_query(conn, error,
                               "SELECT e.id, m.from_bare, e.with_bare, m.xml FROM mam_entry e"
                               " CROSS JOIN mam_message m WHERE m.id = e.id AND e.archive ="
                               " (SELECT number FROM mam_archive WHERE username = ? AND domain = ?)"
                               " AND e.id < ? ORDER BY e.id DESC LIMIT ?",
                               MK_DB_STR(op->archive.username), MK_DB_STR(op->archive.domain),
                               MK_DB_INT((gint64)op->before_id), MK_DB_INT(op->limit));
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        guint64 id = (guint64)mk_db_result_get_int(res, i, 0);
        MkArchivedMessage *msg = g_new0(MkArchivedMessage, 1);
        char text[MAM_ID_TEXT_LEN + 1];
        mam_id_format(id, text);
        msg->id = g_strdup(text);
        msg->sender = g_strdup(mk_db_result_get_string(res, i, 1));
        msg->with = g_strdup(mk_db_result_get_string(res, i, 2));
        msg->when_us = mam_id_time_us(id);
        const char *xml = mk_db_result_get_string(res, i, 3);
        g_autoptr(MkXml) el = xml ? mk_xml_parse(xml, -1, NULL) : NULL;
        msg->body = el ? mk_xml_child_text(el, "body", NULL) : NULL;
        if (!msg->body && op->archive.room) { /* a subject change */
            mk_archived_message_free(msg);
            continue;
        }
        if (!msg->body)
            msg->body = g_strdup("");
        g_ptr_array_add(op->out, msg);
    }
    return TRUE;
}

/* The caller's thread. */
static void rest_read_done(const GError *error, gpointer data)
{
    RestRead *op = data;
    if (error) {
        op->done(NULL, error, op->user_data);
        return;
    }
    for (guint i = 0, j = op->out->len; i + 1 < j; i++, j--) { /* oldest first */
        gpointer tmp = op->out->pdata[i];
        op->out->pdata[i] = op->out->pdata[j - 1];
        op->out->pdata[j - 1] = tmp;
    }
    op->done(op->out, NULL, op->user_data);
}

static void rest_read_synced(gpointer data)
{
    RestRead *op = data;
    mk_db_transaction_run(op->m->mod, rest_read_work, rest_read_done, op, rest_read_free);
}

/* Worker. @room: @owner is a room. */
static void rest_read(gpointer data, gboolean room, MkJid *owner, MkJid *with, gint64 before_us,
                      guint limit, MkArchiveMessagesDone done, gpointer user_data,
                      GDestroyNotify destroy)
{
    RestRead *op = g_new0(RestRead, 1);
    op->m = data;
    if (room) {
        op->archive.room = g_strdup(mk_jid_bare_string(owner));
    } else {
        op->archive.username = g_strdup(mk_jid_node(owner));
        op->archive.domain = g_strdup(mk_jid_domain(owner));
    }
    op->with = with ? g_strdup(mk_jid_bare_string(with)) : NULL;
    op->before_id = mam_id_for_time(before_us);
    op->limit = MIN(limit, op->m->max_result_limit * 20);
    op->done = done;
    op->user_data = user_data;
    op->destroy = destroy;
    op->out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_archived_message_free);
    mam_writer_sync(op->m->writer, &op->archive, rest_read_synced, op);
}

static void rest_user_messages(gpointer data, MkJid *owner, MkJid *with, gint64 before_us,
                               guint limit, MkArchiveMessagesDone done, gpointer user_data,
                               GDestroyNotify destroy)
{
    rest_read(data, FALSE, owner, with, before_us, limit, done, user_data, destroy);
}

static void rest_room_messages(gpointer data, MkJid *room, MkJid *with, gint64 before_us,
                               guint limit, MkArchiveMessagesDone done, gpointer user_data,
                               GDestroyNotify destroy)
{
    (void)with;
    rest_read(data, TRUE, room, NULL, before_us, limit, done, user_data, destroy);
}

gboolean mam_rest_start(Mam *m, GError **error)
{
    static const MkUserArchiveFuncs user_funcs = {.messages = rest_user_messages};
    static const MkUserArchiveFuncs room_funcs = {.messages = rest_room_messages};
    return mk_user_archive_register(m->mod, &user_funcs, m, error) &&
           mk_room_archive_read_register(m->mod, &room_funcs, m, error);
}
