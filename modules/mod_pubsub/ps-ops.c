/* Node and item operations as one storage transaction each (XEP-0060
 * sections 7 and 8: create, configure, delete, purge, publish, retract,
 * items; disco of nodes) and the dispatcher. Storage thread; the caller
 * (ps-req.c) answers and sends on the worker. Error conditions follow
 * the XEP's sections, named beside each check. */
#include "pubsub.h"

#include <string.h>

/* ---- operations ------------------------------------------------------- */

static gboolean insert_node(MkDbConn *conn, PsReq *r, const PsConfig *cfg, GError **error)
{
    g_autofree char *text = ps_config_serialize(cfg);
    g_autoptr(MkDbResult) a = mk_db_conn_query(
        conn, error,
        "INSERT INTO pubsub_nodes (service, node, username, domain, config, purge_offline)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
        r->pep ? MK_DB_STR(mk_jid_node(r->service)) : MK_DB_NULL,
        r->pep ? MK_DB_STR(mk_jid_domain(r->service)) : MK_DB_NULL, MK_DB_STR(text),
        MK_DB_INT(cfg->purge_offline ? 1 : 0));
    if (!a)
        return FALSE;
    g_autoptr(MkDbResult) b =
        mk_db_conn_query(conn, error,
                         "INSERT INTO pubsub_affiliations (service, node, jid, affiliation) VALUES "
                         "(?, ?, ?, 'owner')",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                         MK_DB_STR(mk_jid_string(r->from_bare)));
    return b != NULL;
}

static gboolean count_nodes(MkDbConn *conn, PsReq *r, gint64 *n, GError **error)
{
    g_autoptr(MkDbResult) res =
        r->pep
            ? mk_db_conn_query(conn, error, "SELECT COUNT(*) FROM pubsub_nodes WHERE service = ?",
                               MK_DB_STR(mk_jid_string(r->service)))
            : mk_db_conn_query(conn, error,
                               "SELECT COUNT(*) FROM pubsub_affiliations WHERE service = ?"
                               " AND jid = ? AND affiliation = 'owner'",
                               MK_DB_STR(mk_jid_string(r->service)),
                               MK_DB_STR(mk_jid_string(r->from_bare)));
    if (!res)
        return FALSE;
    *n = mk_db_result_get_int(res, 0, 0);
    return TRUE;
}

/* Whether @from is a user of a domain the service at @service serves
 * (pubsub.DOMAIN serves DOMAIN's users). */
static gboolean local_user(MkJid *from, MkJid *service)
{
    const char *d = mk_jid_domain(from), *s = mk_jid_domain(service);
    gsize dl = strlen(d), sl = strlen(s);
    return mk_jid_node(from) && sl > dl + 1 && s[sl - dl - 1] == '.' && g_str_equal(s + sl - dl, d);
}

/* Section 8.1: may the requester create nodes here, and one more? */
static gboolean may_create(MkDbConn *conn, PsReq *r, gboolean *ok, GError **error)
{
    *ok = FALSE;
    gboolean allowed;
    if (r->pep)
        allowed = mk_jid_bare_equal(r->from, r->service);
    else
        allowed = local_user(r->from, r->service) &&
                  (!r->ps->admins_only_create || g_strv_contains((const char *const *)r->ps->admins,
                                                                 mk_jid_string(r->from_bare)));
    if (!allowed) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    gint64 n = 0;
    if (!count_nodes(conn, r, &n, error))
        return FALSE;
    if (n >= r->ps->max_nodes) {
        ps_req_fail(r, MK_ERR_NOT_ALLOWED, "max-nodes-exceeded");
        mk_counter_add(r->ps->limit_refusals, 1);
        return TRUE;
    }
    *ok = TRUE;
    return TRUE;
}

/* Applies @r's form to @cfg; on a refusal fails @r with @err, or with
 * XEP-0248's error when the form asks for collections. */
static gboolean apply_form(PsReq *r, PsConfig *cfg, MkStanzaError err, const char *app)
{
    g_autofree char *why = NULL;
    gboolean collections = FALSE;
    if (ps_config_apply_form(cfg, r->form, r->ps->max_items, &why, &collections))
        return TRUE;
    r->err_text = g_steal_pointer(&why);
    if (collections) {
        ps_req_fail(r, MK_ERR_FEATURE_NOT_IMPLEMENTED, NULL);
        r->app_feature = "collections";
    } else {
        ps_req_fail(r, err, app);
    }
    return FALSE;
}

static gboolean op_create(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    if (!r->node)
        r->node = g_uuid_string_random(); /* section 8.1.2: an instant node */
    if (!ps_load_node(conn, r, r->node, &n, error))
        return FALSE;
    if (n.cfg) {
        ps_node_clear(&n);
        ps_req_fail(r, MK_ERR_CONFLICT, NULL);
        return TRUE;
    }
    gboolean ok = FALSE;
    if (!may_create(conn, r, &ok, error))
        return FALSE;
    if (!ok)
        return TRUE;
    g_autoptr(PsConfig) cfg = ps_config_new(r->pep);
    if (r->form && !apply_form(r, cfg, MK_ERR_NOT_ACCEPTABLE, NULL))
        return TRUE;
    if (!insert_node(conn, r, cfg, error))
        return FALSE;
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    mk_xml_set_attr(mk_xml_add_child(r->result, "create", NULL), "node", r->node);
    return TRUE;
}

static gboolean op_configure(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    if (r->op == PS_OP_CONFIGURE_GET) {
        r->result = mk_xml_new("pubsub", NS_PUBSUB_OWNER);
        MkXml *c = mk_xml_add_child(r->result, "configure", NULL);
        mk_xml_set_attr(c, "node", r->node);
        mk_xml_append(c, ps_config_form(cfg, NS_PUBSUB_CONFIG, "form"));
        return TRUE;
    }
    if (!r->form) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
        return TRUE;
    }
    if (g_strcmp0(mk_xml_get_attr(r->form, "type"), "cancel") == 0)
        return TRUE;
    if (!apply_form(r, cfg, MK_ERR_NOT_ACCEPTABLE, NULL))
        return TRUE;
    g_autofree char *text = ps_config_serialize(cfg);
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "UPDATE pubsub_nodes SET config = ?, purge_offline = ? WHERE service = ? AND node = ?",
        MK_DB_STR(text), MK_DB_INT(cfg->purge_offline ? 1 : 0),
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res)
        return FALSE;
    /* A lower max_items applies at once. */
    gint64 keep = ps_config_item_limit(cfg, r->ps->max_items);
    g_autoptr(MkDbResult) trim = mk_db_conn_query(
        conn, error,
        "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id NOT IN"
        " (SELECT item_id FROM pubsub_items WHERE service = ? AND node = ?"
        " ORDER BY seq DESC LIMIT ?)",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_INT(keep));
    if (!trim)
        return FALSE;
    if (cfg->notify_config && cfg->deliver_notifications)
        return ps_notify_all(conn, r, cfg, ps_make_config_event, cfg, error);
    return TRUE;
}

static gboolean op_delete(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    /* Section 8.4.2: the subscribers hear of it before their
     * subscriptions go with the node. */
    if (cfg->notify_delete && !ps_notify_all(conn, r, cfg, ps_make_simple_event, "delete", error))
        return FALSE;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "DELETE FROM pubsub_nodes WHERE service = ? AND node = ?",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    return res != NULL;
}

static gboolean op_purge(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    if (!cfg->persist_items) {
        /* Section 8.5.3.3: nothing is kept, so nothing to purge. */
        ps_req_fail(r, MK_ERR_FEATURE_NOT_IMPLEMENTED, NULL);
        r->app_feature = "persistent-items";
        return TRUE;
    }
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "DELETE FROM pubsub_items WHERE service = ? AND node = ?",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res)
        return FALSE;
    if (cfg->notify_retract && cfg->deliver_notifications)
        return ps_notify_all(conn, r, cfg, ps_make_simple_event, "purge", error);
    return TRUE;
}

/* Section 7.1.3: may the requester publish under @cfg's publish model? */
static gboolean may_publish(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsAffiliation aff,
                            gboolean *ok, GError **error)
{
    *ok = aff == PS_AFF_OWNER || aff == PS_AFF_PUBLISHER || aff == PS_AFF_PUBLISH_ONLY;
    if (!*ok && aff != PS_AFF_OUTCAST) {
        if (cfg->publish == PS_PUBLISH_OPEN) {
            *ok = TRUE;
        } else if (cfg->publish == PS_PUBLISH_SUBSCRIBERS) {
            if (!ps_is_subscribed(conn, r, mk_jid_string(r->from_bare), ok, error))
                return FALSE;
            *ok = *ok || aff == PS_AFF_MEMBER;
        }
    }
    if (!*ok)
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
    return TRUE;
}

static gboolean op_publish(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_load_node(conn, r, r->node, &n, error) ||
        !ps_load_aff(conn, r, mk_jid_string(r->from_bare), &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (!cfg) {
        /* Section 7.1.4 auto-create: with the publish-options as its
         * configuration (XEP-0163 section 4.5 for PEP). */
        gboolean ok = FALSE;
        if (!may_create(conn, r, &ok, error))
            return FALSE;
        if (!ok) {
            /* Not ours to create: to the publisher it does not exist. */
            if (r->err == MK_ERR_FORBIDDEN)
                ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
            return TRUE;
        }
        cfg = ps_config_new(r->pep);
        if (r->form && !apply_form(r, cfg, MK_ERR_CONFLICT, "precondition-not-met"))
            return TRUE;
        if (!insert_node(conn, r, cfg, error))
            return FALSE;
        aff = PS_AFF_OWNER;
    } else if (r->form && !ps_config_matches(cfg, r->form)) {
        /* Section 7.1.5. */
        ps_req_fail(r, MK_ERR_CONFLICT, "precondition-not-met");
        return TRUE;
    }
    gboolean ok = FALSE;
    if (!may_publish(conn, r, cfg, aff, &ok, error))
        return FALSE;
    if (!ok)
        return TRUE;
    /* parse_publish points r->el at the <item/> when there is one. */
    gboolean has_item = r->el && g_str_equal(mk_xml_name(r->el), "item");
    if (!r->payload && (cfg->deliver_payloads || cfg->persist_items)) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, has_item ? "payload-required" : "item-required");
        return TRUE;
    }
    if (has_item && !cfg->deliver_payloads && !cfg->persist_items) {
        /* Section 7.1.3.6: a transient notification-only node takes no
         * item at all. */
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "item-forbidden");
        return TRUE;
    }
    if (!r->item_id)
        r->item_id = g_uuid_string_random();
    gint64 keep = ps_config_item_limit(cfg, r->ps->max_items);
    if (cfg->persist_items && keep > 0 && r->payload) {
        g_autoptr(MkDbResult) seq = mk_db_conn_query(
            conn, error,
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM pubsub_items WHERE service = ? AND node = ?",
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
        if (!seq)
            return FALSE;
        r->seq = mk_db_result_get_int(seq, 0, 0);
        g_autoptr(MkDbResult) ins = mk_db_conn_query(
            conn, error,
            "INSERT INTO pubsub_items (service, node, item_id, seq, publisher, payload)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, node, item_id) DO UPDATE SET"
            " seq = excluded.seq, publisher = excluded.publisher, payload = excluded.payload",
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(r->item_id),
            MK_DB_INT(mk_db_result_get_int(seq, 0, 0)), MK_DB_STR(mk_jid_string(r->from_bare)),
            MK_DB_STR(r->payload));
        if (!ins)
            return FALSE;
        g_autoptr(MkDbResult) trim = mk_db_conn_query(
            conn, error,
            "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id NOT IN"
            " (SELECT item_id FROM pubsub_items WHERE service = ? AND node = ?"
            " ORDER BY seq DESC LIMIT ?)",
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_INT(keep));
        if (!trim)
            return FALSE;
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *p = mk_xml_add_child(r->result, "publish", NULL);
    mk_xml_set_attr(p, "node", r->node);
    mk_xml_set_attr(mk_xml_add_child(p, "item", NULL), "id", r->item_id);
    if (!cfg->deliver_notifications)
        return TRUE;
    const char *publisher = mk_jid_string(r->from_bare);
    r->reply_to = ps_reply_to(conn, r, cfg, publisher, error);
    if (!r->reply_to)
        return FALSE;
    PsItemEvent ie = {r->item_id, cfg->deliver_payloads ? r->payload : NULL,
                      g_str_equal(cfg->itemreply, "publisher") ? publisher : NULL};
    return ps_notify_all(conn, r, cfg, ps_make_items_event, &ie, error);
}

static gboolean op_retract(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    if (!cfg->persist_items) {
        /* Section 7.2.3.5: nothing kept, nothing to retract. */
        ps_req_fail(r, MK_ERR_FEATURE_NOT_IMPLEMENTED, NULL);
        r->app_feature = "persistent-items";
        return TRUE;
    }
    g_autoptr(MkDbResult) it = mk_db_conn_query(
        conn, error,
        "SELECT publisher FROM pubsub_items WHERE service = ? AND node = ? AND item_id = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(r->item_id));
    if (!it)
        return FALSE;
    /* Section 7.2.3: owners and publishers retract any item, a
     * publish-only entity its own. */
    gboolean mine = mk_db_result_rows(it) > 0 &&
                    g_strcmp0(mk_db_result_get_string(it, 0, 0), mk_jid_string(r->from_bare)) == 0;
    if (aff != PS_AFF_OWNER && aff != PS_AFF_PUBLISHER && !(aff == PS_AFF_PUBLISH_ONLY && mine)) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    if (mk_db_result_rows(it) == 0) {
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
        return TRUE;
    }
    g_autoptr(MkDbResult) del = mk_db_conn_query(
        conn, error, "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(r->item_id));
    if (!del)
        return FALSE;
    if (r->notify && cfg->notify_retract && cfg->deliver_notifications)
        return ps_notify_all(conn, r, cfg, ps_make_retract_event, r->item_id, error);
    return TRUE;
}

static gboolean op_items(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    PsGrant a;
    if (!ps_check_access(conn, r, cfg, aff, FALSE, &a, error))
        return FALSE;
    if (a != PS_GRANT_OK)
        return TRUE;
    if (!cfg->persist_items) {
        /* Section 6.5.9.4: a transient node keeps no items to return. */
        ps_req_fail(r, MK_ERR_FEATURE_NOT_IMPLEMENTED, NULL);
        r->app_feature = "persistent-items";
        return TRUE;
    }
    if (r->subid) {
        g_autoptr(GPtrArray) subs = ps_load_subs(conn, r, mk_jid_string(r->from), error);
        if (!subs)
            return FALSE;
        gboolean found = FALSE;
        for (guint i = 0; i < subs->len; i++)
            found = found || g_str_equal(((PsSub *)subs->pdata[i])->subid, r->subid);
        if (!found) {
            ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, "invalid-subid");
            return TRUE;
        }
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *items = mk_xml_add_child(r->result, "items", NULL);
    mk_xml_set_attr(items, "node", r->node);
    if (r->item_ids->len > 0) {
        for (guint i = 0; i < r->item_ids->len; i++) {
            g_autoptr(MkDbResult) res = mk_db_conn_query(
                conn, error,
                "SELECT item_id, payload FROM pubsub_items WHERE service = ? AND node = ?"
                " AND item_id = ?",
                MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                MK_DB_STR(r->item_ids->pdata[i]));
            if (!res)
                return FALSE;
            if (mk_db_result_rows(res) > 0)
                mk_xml_append(items, ps_item_el(mk_db_result_get_string(res, 0, 0),
                                                mk_db_result_get_string(res, 0, 1), NULL));
        }
        return TRUE;
    }
    /* Section 6.5.7: the most recent max_items, newest first. */
    gint64 limit = r->max_items > 0 ? r->max_items : r->ps->max_items;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT item_id, payload FROM pubsub_items WHERE service = ? AND node = ?"
        " ORDER BY seq DESC LIMIT ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_INT(limit));
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++)
        mk_xml_append(items, ps_item_el(mk_db_result_get_string(res, i, 0),
                                        mk_db_result_get_string(res, i, 1), NULL));
    return TRUE;
}

/* Section 5.2 (and XEP-0163 for an account): the nodes the requester
 * may see, by the access model each has. */
static gboolean disco_nodes(MkDbConn *conn, PsReq *r, GError **error)
{
    const char *service = mk_jid_string(r->service);
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT node, config FROM pubsub_nodes WHERE service = ? ORDER BY node",
        MK_DB_STR(service));
    if (!res)
        return FALSE;
    r->result = mk_xml_new("query", NS_DISCO_ITEMS);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        const char *node = mk_db_result_get_string(res, i, 0);
        g_autoptr(PsConfig) cfg = ps_config_parse(mk_db_result_get_string(res, i, 1), r->pep);
        gboolean yes = FALSE;
        if (!ps_node_visible(conn, r, node, cfg, mk_jid_string(r->from_bare), &yes, error))
            return FALSE;
        if (!yes)
            continue;
        MkXml *it = mk_xml_add_child(r->result, "item", NULL);
        mk_xml_set_attr(it, "jid", service);
        mk_xml_set_attr(it, "node", node);
        if (*cfg->title)
            mk_xml_set_attr(it, "name", cfg->title);
    }
    return TRUE;
}

static gboolean op_disco(MkDbConn *conn, PsReq *r, GError **error)
{
    const char *service = mk_jid_string(r->service);
    if (r->op == PS_OP_DISCO_ITEMS && !r->node)
        return disco_nodes(conn, r, error);
    PsNode n = {0};
    if (!ps_load_node(conn, r, r->node, &n, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    gboolean visible = FALSE;
    if (cfg &&
        !ps_node_visible(conn, r, r->node, cfg, mk_jid_string(r->from_bare), &visible, error))
        return FALSE;
    if (!visible) {
        /* A node one may not see is one that is not there. */
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
        return TRUE;
    }
    if (r->op == PS_OP_DISCO_ITEMS) {
        /* Section 5.5: the items' ids, for whoever may read them. */
        PsAffiliation aff;
        PsGrant a;
        if (!ps_load_aff(conn, r, mk_jid_string(r->from_bare), &aff, error) ||
            !ps_check_access(conn, r, cfg, aff, FALSE, &a, error))
            return FALSE;
        if (a != PS_GRANT_OK)
            return TRUE;
        g_autoptr(MkDbResult) res = mk_db_conn_query(
            conn, error,
            "SELECT item_id FROM pubsub_items WHERE service = ? AND node = ? ORDER BY seq DESC",
            MK_DB_STR(service), MK_DB_STR(r->node));
        if (!res)
            return FALSE;
        r->result = mk_xml_new("query", NS_DISCO_ITEMS);
        mk_xml_set_attr(r->result, "node", r->node);
        for (guint i = 0; i < mk_db_result_rows(res); i++) {
            MkXml *it = mk_xml_add_child(r->result, "item", NULL);
            mk_xml_set_attr(it, "jid", service);
            mk_xml_set_attr(it, "name", mk_db_result_get_string(res, i, 0));
        }
        return TRUE;
    }
    /* Section 5.4: a leaf node and its meta-data. */
    r->result = mk_xml_new("query", NS_DISCO_INFO);
    mk_xml_set_attr(r->result, "node", r->node);
    MkXml *id = mk_xml_add_child(r->result, "identity", NULL);
    mk_xml_set_attr(id, "category", "pubsub");
    mk_xml_set_attr(id, "type", "leaf");
    mk_xml_set_attr(mk_xml_add_child(r->result, "feature", NULL), "var", NS_PUBSUB);
    mk_xml_set_attr(mk_xml_add_child(r->result, "feature", NULL), "var", NS_DISCO_INFO);
    MkXml *meta = ps_config_form(cfg, NS_PUBSUB_META, "result");
    g_autoptr(MkDbResult) owners =
        mk_db_conn_query(conn, error,
                         "SELECT jid FROM pubsub_affiliations WHERE service = ? AND node = ? AND "
                         "affiliation = 'owner'",
                         MK_DB_STR(service), MK_DB_STR(r->node));
    if (owners) {
        MkXml *f = mk_xml_add_child(meta, "field", NULL);
        mk_xml_set_attr(f, "var", "pubsub#owner");
        mk_xml_set_attr(f, "type", "jid-multi");
        for (guint i = 0; i < mk_db_result_rows(owners); i++)
            mk_xml_add_text(mk_xml_add_child(f, "value", NULL),
                            mk_db_result_get_string(owners, i, 0), -1);
    }
    mk_xml_append(r->result, meta);
    return owners != NULL;
}

/* See pubsub.h. Storage thread, inside the request's transaction. */
gboolean ps_ops_run(MkDbConn *conn, gpointer data, GError **error)
{
    PsReq *r = data;
    switch (r->op) {
    case PS_OP_CREATE:
        return op_create(conn, r, error);
    case PS_OP_CONFIGURE_GET:
    case PS_OP_CONFIGURE_SET:
        return op_configure(conn, r, error);
    case PS_OP_DELETE:
        return op_delete(conn, r, error);
    case PS_OP_PURGE:
        return op_purge(conn, r, error);
    case PS_OP_PUBLISH:
        return op_publish(conn, r, error);
    case PS_OP_RETRACT:
        return op_retract(conn, r, error);
    case PS_OP_ITEMS:
        return op_items(conn, r, error);
    case PS_OP_SUBSCRIBE:
        return ps_op_subscribe(conn, r, error);
    case PS_OP_UNSUBSCRIBE:
        return ps_op_unsubscribe(conn, r, error);
    case PS_OP_OPTIONS_GET:
    case PS_OP_OPTIONS_SET:
        return ps_op_options(conn, r, error);
    case PS_OP_SUBSCRIPTIONS:
    case PS_OP_AFFILIATIONS:
        return ps_op_own(conn, r, error);
    case PS_OP_OWNER_SUBSCRIPTIONS:
    case PS_OP_OWNER_SUBSCRIPTIONS_SET:
    case PS_OP_OWNER_AFFILIATIONS:
    case PS_OP_OWNER_AFFILIATIONS_SET:
        return ps_op_owner_lists(conn, r, error);
    case PS_OP_AUTHORIZE:
        return ps_op_authorize(conn, r, error);
    case PS_OP_DEFAULT_SUB:
        return ps_op_default_sub(conn, r, error);
    case PS_OP_DISCO_INFO:
    case PS_OP_DISCO_ITEMS:
        return op_disco(conn, r, error);
    case PS_OP_DEFAULT:
        break;
    }
    return TRUE;
}
