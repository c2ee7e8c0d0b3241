/* pubsub#purge_offline (XEP-0060 section 16.4.4): a node so configured
 * loses the items of a publisher when that publisher goes offline, that
 * is when the last available resource of its account sends unavailable
 * presence (or its session ends). Subscribers hear of each item as of a
 * retraction, as the node's notify_retract says.
 *
 * The lookup is one indexed query per user going offline (nodes with the
 * flag that hold an item of the user: pubsub_nodes.purge_offline), in
 * its own transaction rather than on the nodes' queues: a publish racing
 * with it is either purged or kept whole. Only local users go offline
 * here; a remote publisher's items stay. */
#include "pubsub.h"

typedef struct {
    PubSub *ps;
    char *publisher;  /* bare JID */
    GPtrArray *nodes; /* PsReq* per node touched, with their notes */
} Purge;

static void purge_free(gpointer p)
{
    Purge *pg = p;
    g_free(pg->publisher);
    g_ptr_array_unref(pg->nodes);
    g_free(pg);
}

/* A request standing for the purge at @service's @node, to gather the
 * notifications with the code every operation uses. */
static PsReq *node_req(Purge *pg, const char *service, const char *node)
{
    PsReq *r = g_new0(PsReq, 1);
    r->ps = pg->ps;
    r->mod = pg->ps->mod;
    r->service = mk_jid_new(service, NULL);
    r->pep = r->service && mk_jid_node(r->service) != NULL;
    r->from_bare = mk_jid_new(pg->publisher, NULL);
    r->node = g_strdup(node);
    r->item_ids = g_ptr_array_new_with_free_func(g_free);
    r->notes = g_ptr_array_new_with_free_func(ps_note_free);
    return r;
}

static gboolean purge_node(MkDbConn *conn, Purge *pg, PsReq *r, const PsConfig *cfg, GError **error)
{
    const char *service = mk_jid_string(r->service);
    g_autoptr(MkDbResult) ids = mk_db_conn_query(
        conn, error,
        "SELECT item_id FROM pubsub_items WHERE service = ? AND node = ? AND publisher = ?",
        MK_DB_STR(service), MK_DB_STR(r->node), MK_DB_STR(pg->publisher));
    if (!ids)
        return FALSE;
    g_autoptr(MkDbResult) del = mk_db_conn_query(
        conn, error, "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND publisher = ?",
        MK_DB_STR(service), MK_DB_STR(r->node), MK_DB_STR(pg->publisher));
    if (!del)
        return FALSE;
    mk_counter_add(pg->ps->purged, mk_db_result_rows(ids));
    if (!cfg->notify_retract || !cfg->deliver_notifications)
        return TRUE;
    for (guint i = 0; i < mk_db_result_rows(ids); i++)
        if (!ps_notify_all(conn, r, cfg, ps_make_retract_event,
                           (gpointer)mk_db_result_get_string(ids, i, 0), error))
            return FALSE;
    return TRUE;
}

static gboolean purge_work(MkDbConn *conn, gpointer data, GError **error)
{
    Purge *pg = data;
    g_autoptr(MkDbResult) nodes = mk_db_conn_query(
        conn, error,
        "SELECT service, node, config FROM pubsub_nodes WHERE purge_offline = 1 AND EXISTS"
        " (SELECT 1 FROM pubsub_items i WHERE i.service = pubsub_nodes.service AND"
        " i.node = pubsub_nodes.node AND i.publisher = ?)",
        MK_DB_STR(pg->publisher));
    if (!nodes)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(nodes); i++) {
        PsReq *r = node_req(pg, mk_db_result_get_string(nodes, i, 0),
                            mk_db_result_get_string(nodes, i, 1));
        g_ptr_array_add(pg->nodes, r);
        if (!r->service)
            continue;
        g_autoptr(PsConfig) cfg = ps_config_parse(mk_db_result_get_string(nodes, i, 2), r->pep);
        if (!purge_node(conn, pg, r, cfg, error))
            return FALSE;
    }
    return TRUE;
}

static void purge_done(const GError *error, gpointer data)
{
    Purge *pg = data;
    if (error) {
        g_warning("mod_pubsub: purging the items of %s: %s", pg->publisher, error->message);
        return;
    }
    for (guint i = 0; i < pg->nodes->len; i++) {
        PsReq *r = pg->nodes->pdata[i];
        ps_send_notes(pg->ps, r->service, r->node, r->notes);
    }
}

/* Unavailable broadcast presence: when no resource of the account stays
 * available, its items go from the purge_offline nodes. Worker. */
static MkResult on_broadcast(MkHookCall *call, gpointer user_data)
{
    PubSub *ps = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    if (!st || !from || g_strcmp0(mk_stanza_type(st), "unavailable") != 0)
        return MK_PASS;
    g_autoptr(MkJid) bare = mk_jid_bare(from);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++)
        if (mk_session_is_available(sessions->pdata[i]))
            return MK_PASS;
    Purge *pg = g_new0(Purge, 1);
    pg->ps = ps;
    pg->publisher = g_strdup(mk_jid_string(bare));
    pg->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)ps_req_free);
    mk_db_transaction_run(ps->mod, purge_work, purge_done, pg, purge_free);
    return MK_PASS;
}

/* See pubsub.h. */
void ps_offline_start(PubSub *ps)
{
    mk_hook_add(ps->mod, MK_HOOK_PRESENCE_BROADCAST, 5, on_broadcast, ps);
}
