/* Message retraction (XEP-0424): when the original sender retracts a
 * message, the archived copies in the sender's and the recipient's
 * archive become tombstones, so that a later query shows that a message
 * was there and was retracted, and nothing of its content. Each archive
 * is changed in its user queue after the writer wrote what was queued
 * for it, so a retraction right after the message still finds it. */
#include "mam.h"

#define NS_RETRACT "urn:xmpp:message-retract:1"

typedef struct {
    Mam *m;
    MkJid *owner;
    char *from_bare;
    char *origin_id;
    char *tombstone;
    guint64 retracted;
} RetractOp;

static void retract_op_free(gpointer data)
{
    RetractOp *op = data;
    mk_jid_unref(op->owner);
    g_free(op->from_bare);
    g_free(op->origin_id);
    g_free(op->tombstone);
    g_free(op);
}

static gboolean retract_work(MkDbConn *conn, gpointer data, GError **error)
{
    RetractOp *op = data;
    MamArchive a = {NULL, (char *)mk_jid_node(op->owner), (char *)mk_jid_domain(op->owner)};
    return mam_db_retract(conn, &a, op->from_bare, op->origin_id, op->tombstone, &op->retracted,
                          error);
}

static void retract_done(const GError *error, gpointer data)
{
    RetractOp *op = data;
    if (error)
        g_warning("mod_mam: retraction in the archive of %s: %s", mk_jid_string(op->owner),
                  error->message);
    else
        mk_counter_add(op->m->retractions, (gint64)op->retracted);
}

static void retract_synced(gpointer data)
{
    RetractOp *op = data;
    mk_user_queue_push(op->m->queue, mk_jid_string(op->owner), retract_work, retract_done, op,
                       retract_op_free);
}

/* The tombstone: the original's addresses and a <retracted/> with the
 * time of the retraction. (transfer full) */
static char *tombstone_of(MkJid *from, MkJid *to, const char *origin_id)
{
    g_autoptr(MkXml) msg = mk_xml_new("message", "jabber:client");
    mk_xml_set_attr(msg, "from", mk_jid_string(from));
    mk_xml_set_attr(msg, "to", mk_jid_string(to));
    mk_xml_set_attr(msg, "type", "chat");
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *stamp = mk_xep82_format(now);
    MkXml *r = mk_xml_add_child(msg, "retracted", NS_RETRACT);
    mk_xml_set_attr(r, "id", origin_id);
    mk_xml_set_attr(r, "stamp", stamp);
    return mk_xml_to_string(msg, NULL);
}

static void retract_in(Mam *m, MkJid *owner, MkJid *from, const char *origin_id,
                       const char *tombstone)
{
    RetractOp *op = g_new0(RetractOp, 1);
    op->m = m;
    op->owner = mk_jid_bare(owner);
    op->from_bare = g_strdup(mk_jid_bare_string(from));
    op->origin_id = g_strdup(origin_id);
    op->tombstone = g_strdup(tombstone);
    MamArchive a = {NULL, (char *)mk_jid_node(op->owner), (char *)mk_jid_domain(op->owner)};
    mam_writer_sync(m->writer, &a, retract_synced, op);
}

void mam_retract(Mam *m, MkJid *from, MkJid *to, const char *origin_id)
{
    if (!mk_jid_node(from) || !*origin_id)
        return;
    g_autofree char *tombstone = tombstone_of(from, to, origin_id);
    retract_in(m, from, from, origin_id, tombstone);
    if (mk_jid_node(to) && !mk_jid_bare_equal(from, to) &&
        mk_module_serves_domain(m->mod, mk_jid_domain(to)))
        retract_in(m, to, from, origin_id, tombstone);
}
