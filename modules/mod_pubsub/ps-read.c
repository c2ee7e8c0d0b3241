/* What every operation reads and sends (ps-ops.c, ps-subs.c): a node's
 * configuration, an affiliation, subscriptions, the access decision of
 * XEP-0060 section 4.5, the last item, and the notifications gathered
 * for the worker to send. Storage thread, inside a request's
 * transaction. */
#include "pubsub.h"

#include <string.h>

/* ---- reading ------------------------------------------------------------ */

void ps_node_clear(PsNode *n)
{
    ps_config_free(n->cfg);
    n->cfg = NULL;
}

gboolean ps_load_node(MkDbConn *conn, PsReq *r, const char *node, PsNode *out, GError **error)
{
    out->cfg = NULL;
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "SELECT config FROM pubsub_nodes WHERE service = ? AND node = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(node));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0)
        out->cfg = ps_config_parse(mk_db_result_get_string(res, 0, 0), r->pep);
    return TRUE;
}

/* The affiliation of @jid (a bare JID) with @node. The account owns its
 * PEP nodes. */
static gboolean load_aff_at(MkDbConn *conn, PsReq *r, const char *node, const char *jid,
                            PsAffiliation *out, GError **error)
{
    *out = PS_AFF_NONE;
    if (r->pep && g_str_equal(jid, mk_jid_string(r->service))) {
        *out = PS_AFF_OWNER;
        return TRUE;
    }
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT affiliation FROM pubsub_affiliations WHERE service = ? AND node = ? AND jid = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(node), MK_DB_STR(jid));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0)
        ps_aff_parse(mk_db_result_get_string(res, 0, 0), out);
    return TRUE;
}

gboolean ps_load_aff(MkDbConn *conn, PsReq *r, const char *jid, PsAffiliation *out, GError **error)
{
    return load_aff_at(conn, r, r->node, jid, out, error);
}

/* The JID whose roster decides presence and roster access on @node: the
 * account for PEP, else the node's first owner, into *@out (NULL when
 * none). FALSE on storage errors. */
static gboolean roster_owner(MkDbConn *conn, PsReq *r, const char *node, MkJid **out,
                             GError **error)
{
    *out = NULL;
    if (r->pep) {
        *out = mk_jid_ref(r->service);
        return TRUE;
    }
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT jid FROM pubsub_affiliations WHERE service = ? AND node = ?"
                         " AND affiliation = 'owner' ORDER BY jid",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(node));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0)
        *out = mk_jid_new(mk_db_result_get_string(res, 0, 0), NULL);
    return TRUE;
}

/* The subscriptions of @jid (exact) on the node: subid and state. */

void ps_sub_free(gpointer p)
{
    PsSub *s = p;
    g_free(s->jid);
    g_free(s->subid);
    g_free(s->state);
    g_free(s);
}

GPtrArray *ps_load_subs(MkDbConn *conn, PsReq *r, const char *jid, GError **error)
{
    g_autoptr(MkDbResult) res =
        jid ? mk_db_conn_query(conn, error,
                               "SELECT jid, subid, state, options FROM pubsub_subscriptions"
                               " WHERE service = ? AND node = ? AND jid = ? ORDER BY subid",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                               MK_DB_STR(jid))
            : mk_db_conn_query(conn, error,
                               "SELECT jid, subid, state, options FROM pubsub_subscriptions"
                               " WHERE service = ? AND node = ? ORDER BY jid, subid",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(ps_sub_free);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        PsSub *s = g_new0(PsSub, 1);
        s->jid = g_strdup(mk_db_result_get_string(res, i, 0));
        s->subid = g_strdup(mk_db_result_get_string(res, i, 1));
        s->state = g_strdup(mk_db_result_get_string(res, i, 2));
        ps_subopts_parse(mk_db_result_get_string(res, i, 3), &s->opts);
        g_ptr_array_add(out, s);
    }
    return out;
}

/* Whether @bare holds a subscription to @node in state 'subscribed' by
 * its bare or one of its full JIDs. */
static gboolean is_subscribed_at(MkDbConn *conn, PsReq *r, const char *node, const char *bare,
                                 gboolean *yes, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT 1 FROM pubsub_subscriptions WHERE service = ? AND node = ? AND state = 'subscribed'"
        " AND (jid = ? OR substr(jid, 1, length(?) + 1) = ? || '/')",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(node), MK_DB_STR(bare), MK_DB_STR(bare),
        MK_DB_STR(bare));
    if (!res)
        return FALSE;
    *yes = mk_db_result_rows(res) > 0;
    return TRUE;
}

gboolean ps_is_subscribed(MkDbConn *conn, PsReq *r, const char *bare, gboolean *yes, GError **error)
{
    return is_subscribed_at(conn, r, r->node, bare, yes, error);
}

/* ---- access (XEP-0060 section 4.5; errors of 6.1.3 and 6.5.9) ------- */

/* The decision for @who (bare) on @node: *@out, and when denied the
 * error in @err and @app. @subscribing: an authorize node answers
 * pending instead of refusing. */
static gboolean decide(MkDbConn *conn, PsReq *r, const char *node, const PsConfig *cfg,
                       PsAffiliation aff, const char *who, gboolean subscribing, PsGrant *out,
                       MkStanzaError *err, const char **app, GError **error)
{
    *out = PS_GRANT_DENIED;
    *err = MK_ERR_FORBIDDEN;
    *app = NULL;
    if (aff == PS_AFF_OUTCAST)
        return TRUE;
    if (aff == PS_AFF_OWNER || aff == PS_AFF_PUBLISHER || aff == PS_AFF_MEMBER) {
        *out = PS_GRANT_OK;
        return TRUE;
    }
    switch (cfg->access) {
    case PS_ACCESS_OPEN:
        *out = PS_GRANT_OK;
        return TRUE;
    case PS_ACCESS_PRESENCE:
    case PS_ACCESS_ROSTER: {
        g_autoptr(MkJid) owner = NULL;
        g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
        gboolean from = FALSE, available = FALSE;
        if (!roster_owner(conn, r, node, &owner, error))
            return FALSE;
        if (owner &&
            !mk_roster_relation(r->mod, conn, owner, who, &from, groups, &available, error))
            return FALSE;
        *err = MK_ERR_NOT_AUTHORIZED;
        if (cfg->access == PS_ACCESS_PRESENCE) {
            if (from)
                *out = PS_GRANT_OK;
            *app = "presence-subscription-required";
            return TRUE;
        }
        for (guint i = 0; i < groups->len; i++)
            if (g_strv_contains((const char *const *)cfg->roster_groups, groups->pdata[i]))
                *out = PS_GRANT_OK;
        *app = "not-in-roster-group";
        return TRUE;
    }
    case PS_ACCESS_WHITELIST:
        *err = MK_ERR_NOT_ALLOWED;
        *app = "closed-node";
        return TRUE;
    case PS_ACCESS_AUTHORIZE:
        if (subscribing) {
            *out = PS_GRANT_PENDING;
            return TRUE;
        }
        gboolean yes = FALSE;
        if (!is_subscribed_at(conn, r, node, who, &yes, error))
            return FALSE;
        if (yes)
            *out = PS_GRANT_OK;
        *err = MK_ERR_NOT_AUTHORIZED;
        *app = "not-subscribed";
        return TRUE;
    }
    return TRUE;
}

/* Whether the requester may subscribe or read items. On a refusal @r
 * carries the error. */
gboolean ps_check_access(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsAffiliation aff,
                         gboolean subscribing, PsGrant *out, GError **error)
{
    MkStanzaError err;
    const char *app;
    if (aff == PS_AFF_PUBLISH_ONLY) {
        /* Section 4.1: publish-only neither subscribes nor retrieves. */
        *out = PS_GRANT_DENIED;
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    if (!decide(conn, r, r->node, cfg, aff, mk_jid_string(r->from_bare), subscribing, out, &err,
                &app, error))
        return FALSE;
    if (*out == PS_GRANT_DENIED)
        ps_req_fail(r, err, app);
    return TRUE;
}

/* See pubsub.h. A node whose subscriptions need approval is visible:
 * one must find it to ask. */
gboolean ps_node_visible(MkDbConn *conn, PsReq *r, const char *node, const PsConfig *cfg,
                         const char *who, gboolean *yes, GError **error)
{
    PsAffiliation aff;
    PsGrant g;
    MkStanzaError err;
    const char *app;
    *yes = FALSE;
    if (!load_aff_at(conn, r, node, who, &aff, error) ||
        !decide(conn, r, node, cfg, aff, who, TRUE, &g, &err, &app, error))
        return FALSE;
    *yes = g != PS_GRANT_DENIED;
    return TRUE;
}

/* ---- notifications ------------------------------------------------------ */

void ps_add_note(PsReq *r, const char *to, gboolean pep_caps, MkXml *message)
{
    PsNote *n = g_new0(PsNote, 1);
    n->to = g_strdup(to);
    n->pep_caps = pep_caps;
    n->message = message;
    n->seq = r->seq;
    g_ptr_array_add(r->notes, n);
}

void ps_add_sub_note(PsReq *r, const char *to, MkXml *message, GPtrArray *subs)
{
    PsNote *n = g_new0(PsNote, 1);
    n->to = g_strdup(to);
    n->message = message;
    n->subids = g_ptr_array_new_with_free_func(g_free);
    n->shows = g_ptr_array_new();
    for (guint i = 0; i < subs->len; i++) {
        PsSub *s = subs->pdata[i];
        g_ptr_array_add(n->subids, g_strdup(s->subid));
        g_ptr_array_add(n->shows, GUINT_TO_POINTER(s->opts.show));
    }
    g_ptr_array_add(r->notes, n);
}

/* A <message/> carrying @event (transfer full), from the service. The
 * <headers/> naming subids are added on the worker (ps_send_notes), once
 * it knows which of a JID's subscriptions its presence lets through. */
MkXml *ps_event_message(PsReq *r, const PsConfig *cfg, MkXml *event, GPtrArray *subids)
{
    MkXml *m = mk_xml_new("message", NS_CLIENT);
    if (!cfg || g_strcmp0(cfg->notification_type, "normal") != 0)
        mk_xml_set_attr(m, "type", "headline");
    g_autofree char *id = g_uuid_string_random();
    mk_xml_set_attr(m, "id", id);
    mk_xml_append(m, event);
    if (r->reply_to && r->reply_to->len > 0) {
        /* pubsub#itemreply: where replies to the item go (XEP-0033). */
        MkXml *addrs = mk_xml_add_child(m, "addresses", NS_ADDRESS);
        for (guint i = 0; i < r->reply_to->len; i++) {
            MkXml *a = mk_xml_add_child(addrs, "address", NULL);
            mk_xml_set_attr(a, "type", "replyto");
            mk_xml_set_attr(a, "jid", r->reply_to->pdata[i]);
        }
    }
    return m;
}

/* See pubsub.h. A PEP node's owner is the account the notification
 * comes from: replies go there without an address. */
GPtrArray *ps_reply_to(MkDbConn *conn, PsReq *r, const PsConfig *cfg, const char *publisher,
                       GError **error)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    if (g_str_equal(cfg->itemreply, "publisher")) {
        g_ptr_array_add(out, g_strdup(publisher));
        return out;
    }
    if (r->pep)
        return out;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT jid FROM pubsub_affiliations WHERE service = ? AND node = ?"
                         " AND affiliation = 'owner' ORDER BY jid",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res) {
        g_ptr_array_unref(out);
        return NULL;
    }
    for (guint i = 0; i < mk_db_result_rows(res); i++)
        g_ptr_array_add(out, g_strdup(mk_db_result_get_string(res, i, 0)));
    return out;
}

/* Removes the subscriptions to @r's node whose lease ended (section
 * 12.18): found while notifying, so no timer is needed. */
static gboolean drop_expired(MkDbConn *conn, PsReq *r, GPtrArray *subids, GError **error)
{
    for (guint i = 0; i < subids->len; i++) {
        g_autoptr(MkDbResult) res = mk_db_conn_query(
            conn, error,
            "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ? AND subid = ?",
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(subids->pdata[i]));
        if (!res)
            return FALSE;
    }
    return TRUE;
}

/* Sends @event (built anew per recipient by @make) to every subscriber
 * that wants it (pubsub#deliver, a lease still running), and for PEP to
 * the owner and the contacts its access model lets see the node
 * (filtered by caps on the worker). */
gboolean ps_notify_all(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsEventFunc make,
                       gpointer data, GError **error)
{
    g_autoptr(GPtrArray) subs = ps_load_subs(conn, r, NULL, error);
    if (!subs)
        return FALSE;
    gint64 now = g_get_real_time() / 1000;
    g_autoptr(GPtrArray) expired = g_ptr_array_new();
    g_autoptr(GHashTable) explicit = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < subs->len;) {
        PsSub *s = subs->pdata[i];
        g_autoptr(GPtrArray) want = g_ptr_array_new();
        guint j = i, live = 0;
        for (; j < subs->len && g_str_equal(((PsSub *)subs->pdata[j])->jid, s->jid); j++) {
            PsSub *one = subs->pdata[j];
            if (ps_subopts_expired(&one->opts, now)) {
                g_ptr_array_add(expired, one->subid);
                continue;
            }
            live++;
            if (g_str_equal(one->state, "subscribed") && one->opts.deliver)
                g_ptr_array_add(want, one);
        }
        /* A subscriber that switched delivery off still is one: the
         * PEP implicit notification does not go to it instead. */
        if (live > 0)
            g_hash_table_add(explicit, (gpointer)s->jid);
        if (want->len > 0)
            ps_add_sub_note(r, s->jid, ps_event_message(r, cfg, make(r, data), NULL), want);
        i = j;
    }
    if (expired->len > 0 && !drop_expired(conn, r, expired, error))
        return FALSE;
    if (!r->pep)
        return TRUE;
    /* XEP-0163 section 4.3.1: the account itself and, as the access model
     * allows, the contacts with a presence subscription. */
    const char *owner = mk_jid_string(r->service);
    if (!g_hash_table_contains(explicit, owner))
        ps_add_note(r, owner, TRUE, ps_event_message(r, cfg, make(r, data), NULL));
    if (cfg->access != PS_ACCESS_OPEN && cfg->access != PS_ACCESS_PRESENCE &&
        cfg->access != PS_ACCESS_ROSTER)
        return TRUE;
    g_autoptr(GPtrArray) contacts = g_ptr_array_new_with_free_func(g_free);
    gboolean available = FALSE;
    if (!mk_roster_presence_subscribers(r->mod, conn, r->service, contacts, &available, error))
        return FALSE;
    for (guint i = 0; i < contacts->len; i++) {
        const char *c = contacts->pdata[i];
        if (g_hash_table_contains(explicit, c) || g_str_equal(c, owner))
            continue;
        if (cfg->access == PS_ACCESS_ROSTER) {
            g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
            gboolean from = FALSE, av = FALSE;
            if (!mk_roster_relation(r->mod, conn, r->service, c, &from, groups, &av, error))
                return FALSE;
            gboolean in = FALSE;
            for (guint k = 0; k < groups->len; k++)
                in = in ||
                     g_strv_contains((const char *const *)cfg->roster_groups, groups->pdata[k]);
            if (!in)
                continue;
        }
        ps_add_note(r, c, TRUE, ps_event_message(r, cfg, make(r, data), NULL));
    }
    return TRUE;
}

static MkXml *event_el(PsReq *r, const char *child)
{
    MkXml *ev = mk_xml_new("event", NS_PUBSUB_EVENT);
    MkXml *c = mk_xml_add_child(ev, child, NULL);
    mk_xml_set_attr(c, "node", r->node);
    return ev;
}

/* The <item/> of a stored payload, with or without it. (transfer full) */
MkXml *ps_item_el(const char *id, const char *payload, const char *publisher)
{
    MkXml *it = mk_xml_new("item", NULL);
    mk_xml_set_attr(it, "id", id);
    if (publisher)
        mk_xml_set_attr(it, "publisher", publisher);
    if (payload) {
        MkXml *p = mk_xml_parse(payload, -1, NULL);
        if (p)
            mk_xml_append(it, p);
    }
    return it;
}

MkXml *ps_make_items_event(PsReq *r, gpointer data)
{
    PsItemEvent *ie = data;
    MkXml *ev = event_el(r, "items");
    mk_xml_append(mk_xml_child(ev, "items", NULL), ps_item_el(ie->id, ie->payload, ie->publisher));
    return ev;
}

MkXml *ps_make_retract_event(PsReq *r, gpointer data)
{
    MkXml *ev = event_el(r, "items");
    MkXml *rt = mk_xml_add_child(mk_xml_child(ev, "items", NULL), "retract", NULL);
    mk_xml_set_attr(rt, "id", data);
    return ev;
}

MkXml *ps_make_simple_event(PsReq *r, gpointer data)
{
    MkXml *ev = event_el(r, data);
    if (g_str_equal(data, "delete")) {
        MkXml *redirect = r->el ? mk_xml_child(r->el, "redirect", NULL) : NULL;
        const char *uri = redirect ? mk_xml_get_attr(redirect, "uri") : NULL;
        if (uri)
            mk_xml_set_attr(mk_xml_add_child(mk_xml_child(ev, "delete", NULL), "redirect", NULL),
                            "uri", uri);
    }
    return ev;
}

MkXml *ps_make_config_event(PsReq *r, gpointer data)
{
    const PsConfig *cfg = data;
    MkXml *ev = event_el(r, "configuration");
    if (cfg->deliver_payloads)
        mk_xml_append(mk_xml_child(ev, "configuration", NULL),
                      ps_config_form(cfg, NS_PUBSUB_CONFIG, "result"));
    return ev;
}

/* ---- the last item (section 6.1.7) ---------------------------------- */

gboolean ps_last_item(MkDbConn *conn, PsReq *r, const char *node, char **id, char **payload,
                      GError **error)
{
    *id = *payload = NULL;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT item_id, payload FROM pubsub_items WHERE service = ? AND node = ?"
                         " ORDER BY seq DESC LIMIT 1",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(node));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0) {
        *id = g_strdup(mk_db_result_get_string(res, 0, 0));
        *payload = g_strdup(mk_db_result_get_string(res, 0, 1));
    }
    return TRUE;
}

/* The node and the requester's affiliation; fails @r with item-not-found
 * when there is no node, and forbidden when @owner is asked and the
 * requester is not one. FALSE only on storage errors. */
gboolean ps_node_and_aff(MkDbConn *conn, PsReq *r, gboolean owner, PsNode *n, PsAffiliation *aff,
                         GError **error)
{
    if (!ps_load_node(conn, r, r->node, n, error) ||
        !ps_load_aff(conn, r, mk_jid_string(r->from_bare), aff, error))
        return FALSE;
    if (!n->cfg)
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
    else if (owner && *aff != PS_AFF_OWNER)
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
    return TRUE;
}
