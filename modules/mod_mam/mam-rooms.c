/* Room archives: mod_mam provides the core's archive service
 * (mk-archive.h), so that group chat modules archive their rooms' messages
 * here and hand over queries sent to a room's JID. A room's rows live in
 * mam_room_entry under the room's number (mam_room); the writer, the queries and the IDs are those
 * of user archives. */
#include "mam.h"

#define NS_SID "urn:xmpp:sid:0"

static gboolean keeps(MkStanza *msg)
{
    if (mk_stanza_kind(msg) != MK_STANZA_MESSAGE || g_strcmp0(mk_stanza_type(msg), "groupchat"))
        return FALSE;
    MkXml *xml = mk_stanza_xml(msg);
    if (mk_xml_child(xml, "no-store", "urn:xmpp:hints") ||
        mk_xml_child(xml, "no-permanent-store", "urn:xmpp:hints"))
        return FALSE;
    /* A subject change is kept too: XEP-0313 5.1.2 lets a room keep it. */
    return mk_xml_child(xml, "body", NULL) || mk_xml_child(xml, "subject", NULL) ||
           mk_xml_child(xml, "store", "urn:xmpp:hints");
}

static char *room_store(gpointer data, MkJid *room, MkStanza *msg, const char *nick,
                        MkJid *real_jid)
{
    Mam *m = data;
    if (!keeps(msg))
        return NULL;
    MkXml *origin = mk_xml_child(mk_stanza_xml(msg), "origin-id", NS_SID);
    guint64 id = mam_id_next(&m->ids, g_get_real_time());
    MamRow *row = mam_row_new(mk_jid_bare_string(room), NULL, NULL, id, mk_jid_bare_string(room),
                              nick, real_jid ? mk_jid_bare_string(real_jid) : "",
                              origin ? mk_xml_get_attr(origin, "id") : mk_stanza_id(msg),
                              mam_xml_text(mk_stanza_xml(msg)));
    if (!mam_writer_add(m->writer, row))
        return NULL;
    mk_counter_add(m->archived, 1);
    char text[MAM_ID_TEXT_LEN + 1];
    mam_id_format(id, text);
    return g_strdup(text);
}

static void room_query(gpointer data, MkJid *room, MkStanza *iq)
{
    mam_query_room(data, room, iq);
}

typedef struct {
    Mam *m;
    char *room;
} RemoveOp;

static void remove_op_free(gpointer data)
{
    RemoveOp *op = data;
    g_free(op->room);
    g_free(op);
}

static gboolean remove_work(MkDbConn *conn, gpointer data, GError **error)
{
    RemoveOp *op = data;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "DELETE FROM mam_room WHERE room = ?", MK_DB_STR(op->room));
    return res != NULL;
}

static void remove_done(const GError *error, gpointer data)
{
    RemoveOp *op = data;
    if (error)
        g_warning("mod_mam: removing the archive of room %s: %s", op->room, error->message);
}

static void remove_synced(gpointer data)
{
    RemoveOp *op = data;
    mk_user_queue_push(op->m->queue, op->room, remove_work, remove_done, op, remove_op_free);
}

/* After the writer wrote what is queued for the room, or its rows would
 * come back after the delete. */
static void room_remove(gpointer data, MkJid *room)
{
    Mam *m = data;
    RemoveOp *op = g_new0(RemoveOp, 1);
    op->m = m;
    op->room = g_strdup(mk_jid_bare_string(room));
    MamArchive a = {op->room, NULL, NULL};
    mam_writer_sync(m->writer, &a, remove_synced, op);
}

static const MkArchiveFuncs room_funcs = {
    .store = room_store,
    .query = room_query,
    .remove = room_remove,
};

gboolean mam_rooms_start(Mam *m, GError **error)
{
    return mk_archive_register(m->mod, &room_funcs, m, error);
}
