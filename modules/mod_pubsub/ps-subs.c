/* Subscription operations (XEP-0060 sections 6 and 8.6-8.9): subscribe,
 * unsubscribe, options, one's own subscriptions and affiliations, the
 * owner's lists and changes, and authorization answers. Storage thread,
 * one transaction each. */
#include "pubsub.h"

static MkXml *subscription_el(PsReq *r, const char *node, const char *jid, const char *subid,
                              const char *state)
{
    MkXml *s = mk_xml_new("subscription", NULL);
    if (node)
        mk_xml_set_attr(s, "node", node);
    mk_xml_set_attr(s, "jid", jid);
    if (subid)
        mk_xml_set_attr(s, "subid", subid);
    mk_xml_set_attr(s, "subscription", state);
    return s;
}

/* The authorization request to the owners (section 8.6). */
static void ask_owners(MkDbConn *conn, PsReq *r, const char *subid, GError **error)
{
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT jid FROM pubsub_affiliations WHERE service = ? AND node = ? AND "
                         "affiliation = 'owner'",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    for (guint i = 0; res && i < mk_db_result_rows(res); i++) {
        MkXml *m = mk_xml_new("message", NS_CLIENT);
        MkXml *x = mk_xml_add_child(m, "x", NS_XDATA);
        mk_xml_set_attr(x, "type", "form");
        struct {
            const char *var, *type, *value;
        } fields[] = {
            {"FORM_TYPE", "hidden", "http://jabber.org/protocol/pubsub#subscribe_authorization"},
            {"pubsub#subid", "hidden", subid},
            {"pubsub#node", "text-single", r->node},
            {"pubsub#subscriber_jid", "jid-single", r->jid},
            {"pubsub#allow", "boolean", "0"},
        };
        for (guint f = 0; f < G_N_ELEMENTS(fields); f++) {
            MkXml *fe = mk_xml_add_child(x, "field", NULL);
            mk_xml_set_attr(fe, "var", fields[f].var);
            mk_xml_set_attr(fe, "type", fields[f].type);
            mk_xml_add_text(mk_xml_add_child(fe, "value", NULL), fields[f].value, -1);
        }
        ps_add_note(r, mk_db_result_get_string(res, i, 0), FALSE, m);
    }
}

/* Fails @r for a per-user limit. */
static void limit_fail(PsReq *r, MkStanzaError err, const char *app)
{
    ps_req_fail(r, err, app);
    mk_counter_add(r->ps->limit_refusals, 1);
}

/* The subscriptions @bare holds by its bare or full JIDs, at every
 * service and node: bounded by max_user_subscriptions. The range on
 * "bare/" keeps to the index on jid. */
static gboolean count_user_subs(MkDbConn *conn, const char *bare, gint64 *n, GError **error)
{
    g_autofree char *lo = g_strconcat(bare, "/", NULL);
    g_autofree char *hi = g_strconcat(bare, "0", NULL); /* '0' follows '/' */
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT COUNT(*) FROM pubsub_subscriptions WHERE jid = ? OR (jid >= ? AND jid < ?)",
        MK_DB_STR(bare), MK_DB_STR(lo), MK_DB_STR(hi));
    if (!res)
        return FALSE;
    *n = mk_db_result_get_int(res, 0, 0);
    return TRUE;
}

gboolean ps_op_subscribe(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    g_autoptr(MkJid) want = r->jid ? mk_jid_new(r->jid, NULL) : NULL;
    /* Section 6.1.3.1: only one's own JID, bare or full. */
    if (!want || !mk_jid_bare_equal(want, r->from)) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid");
        return TRUE;
    }
    /* Section 6.3.7: options given with the subscription apply to it. */
    PsSubOpts opts;
    ps_subopts_init(&opts);
    g_autofree char *why = NULL;
    if (r->form && !ps_subopts_apply_form(&opts, r->form, &why)) {
        r->err_text = g_steal_pointer(&why);
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-options");
        return TRUE;
    }
    if (!ps_node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    PsGrant a;
    if (!ps_check_access(conn, r, cfg, aff, TRUE, &a, error))
        return FALSE;
    if (a == PS_GRANT_DENIED)
        return TRUE;
    g_autoptr(GPtrArray) subs = ps_load_subs(conn, r, mk_jid_string(want), error);
    if (!subs)
        return FALSE;
    PsSub *sub = NULL;
    if (subs->len > 0 && !r->form) {
        /* Subscribing again without options: the subscription there is,
         * unless it waits for the owner (section 6.1.3.7). */
        sub = subs->pdata[0];
        if (g_str_equal(sub->state, "pending")) {
            ps_req_fail(r, MK_ERR_NOT_AUTHORIZED, "pending-subscription");
            return TRUE;
        }
    } else {
        gint64 all = 0;
        if (!count_user_subs(conn, mk_jid_string(r->from_bare), &all, error))
            return FALSE;
        if (subs->len >= (guint)r->ps->max_subscriptions || all >= r->ps->max_user_subscriptions) {
            /* Section 6.1.3.9. */
            limit_fail(r, MK_ERR_POLICY_VIOLATION, "too-many-subscriptions");
            return TRUE;
        }
        g_autofree char *id = g_uuid_string_random();
        g_autofree char *text = ps_subopts_serialize(&opts);
        const char *state = a == PS_GRANT_PENDING ? "pending" : "subscribed";
        g_autoptr(MkDbResult) ins = mk_db_conn_query(
            conn, error,
            "INSERT INTO pubsub_subscriptions (service, node, jid, subid, state, options)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
            MK_DB_STR(mk_jid_string(want)), MK_DB_STR(id), MK_DB_STR(state), MK_DB_STR(text));
        if (!ins)
            return FALSE;
        sub = g_new0(PsSub, 1);
        sub->jid = g_strdup(mk_jid_string(want));
        sub->subid = g_steal_pointer(&id);
        sub->state = g_strdup(state);
        sub->opts = opts;
        g_ptr_array_add(subs, sub);
        if (a == PS_GRANT_PENDING)
            ask_owners(conn, r, sub->subid, error);
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    mk_xml_append(r->result,
                  subscription_el(r, r->node, mk_jid_string(want), sub->subid, sub->state));
    if (g_str_equal(sub->state, "subscribed") && cfg->send_last != PS_SEND_NEVER &&
        sub->opts.deliver) {
        g_autofree char *id = NULL, *payload = NULL;
        if (!ps_last_item(conn, r, r->node, &id, &payload, error))
            return FALSE;
        if (id) {
            PsItemEvent ie = {id, cfg->deliver_payloads ? payload : NULL, NULL};
            g_autoptr(GPtrArray) one = g_ptr_array_new();
            g_ptr_array_add(one, sub);
            ps_add_sub_note(r, mk_jid_string(want),
                            ps_event_message(r, cfg, ps_make_items_event(r, &ie), NULL), one);
        }
    }
    return TRUE;
}

gboolean ps_op_unsubscribe(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    g_autoptr(MkJid) want = r->jid ? mk_jid_new(r->jid, NULL) : NULL;
    if (!want) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid");
        return TRUE;
    }
    if (!ps_node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    ps_node_clear(&n);
    if (r->failed)
        return TRUE;
    /* Section 6.2.3.3: one's own subscriptions, or an owner's. */
    if (!mk_jid_bare_equal(want, r->from) && aff != PS_AFF_OWNER) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    g_autoptr(GPtrArray) subs = ps_load_subs(conn, r, mk_jid_string(want), error);
    if (!subs)
        return FALSE;
    if (subs->len == 0) {
        ps_req_fail(r, MK_ERR_UNEXPECTED_REQUEST, "not-subscribed");
        return TRUE;
    }
    const char *subid = r->subid;
    if (!subid) {
        if (subs->len > 1) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "subid-required");
            return TRUE;
        }
        subid = ((PsSub *)subs->pdata[0])->subid;
    }
    gboolean found = FALSE;
    for (guint i = 0; i < subs->len; i++)
        found = found || g_str_equal(((PsSub *)subs->pdata[i])->subid, subid);
    if (!found) {
        ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, "invalid-subid");
        return TRUE;
    }
    g_autoptr(MkDbResult) del = mk_db_conn_query(
        conn, error,
        "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ? AND subid = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(subid));
    return del != NULL;
}

/* Section 6.3: the options of a subscription (ps-subopts.c). */
gboolean ps_op_options(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    ps_node_clear(&n);
    if (r->failed)
        return TRUE;
    const char *jid = r->jid ? r->jid : mk_jid_string(r->from);
    g_autoptr(MkJid) want = mk_jid_new(jid, NULL);
    if (!want) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid"); /* section 6.3.4.3 */
        return TRUE;
    }
    if (!mk_jid_bare_equal(want, r->from) && aff != PS_AFF_OWNER) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    g_autoptr(GPtrArray) subs = ps_load_subs(conn, r, mk_jid_string(want), error);
    if (!subs)
        return FALSE;
    if (subs->len == 0) {
        ps_req_fail(r, MK_ERR_UNEXPECTED_REQUEST, "not-subscribed");
        return TRUE;
    }
    if (subs->len > 1 && !r->subid) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "subid-required");
        return TRUE;
    }
    PsSub *sub = subs->len == 1 && !r->subid ? subs->pdata[0] : NULL;
    for (guint i = 0; !sub && i < subs->len; i++)
        if (g_str_equal(((PsSub *)subs->pdata[i])->subid, r->subid))
            sub = subs->pdata[i];
    if (!sub) {
        ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, "invalid-subid");
        return TRUE;
    }
    if (r->op == PS_OP_OPTIONS_SET) {
        g_autofree char *why = NULL;
        if (!r->form) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-options");
            return TRUE;
        }
        if (!ps_subopts_apply_form(&sub->opts, r->form, &why)) {
            r->err_text = g_steal_pointer(&why);
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-options"); /* section 6.3.6 */
            return TRUE;
        }
        g_autofree char *text = ps_subopts_serialize(&sub->opts);
        g_autoptr(MkDbResult) up = mk_db_conn_query(
            conn, error,
            "UPDATE pubsub_subscriptions SET options = ? WHERE service = ? AND node = ?"
            " AND subid = ?",
            MK_DB_STR(text), MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
            MK_DB_STR(sub->subid));
        return up != NULL;
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *o = mk_xml_add_child(r->result, "options", NULL);
    mk_xml_set_attr(o, "node", r->node);
    mk_xml_set_attr(o, "jid", mk_jid_string(want));
    mk_xml_set_attr(o, "subid", sub->subid);
    mk_xml_append(o, ps_subopts_form(&sub->opts));
    return TRUE;
}

/* See pubsub.h: section 6.4. */
MkXml *ps_default_sub_result(PsReq *r)
{
    PsSubOpts o;
    ps_subopts_init(&o);
    MkXml *res = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *d = mk_xml_add_child(res, "default", NULL);
    if (r->node)
        mk_xml_set_attr(d, "node", r->node);
    mk_xml_append(d, ps_subopts_form(&o));
    return res;
}

/* Section 6.4 at a node: the same defaults, once the node is found. */
gboolean ps_op_default_sub(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    if (!ps_load_node(conn, r, r->node, &n, error))
        return FALSE;
    if (!n.cfg) {
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
        return TRUE;
    }
    ps_node_clear(&n);
    r->result = ps_default_sub_result(r);
    return TRUE;
}

/* Section 5.6 and 5.7: the requester's own subscriptions/affiliations. */
gboolean ps_op_own(MkDbConn *conn, PsReq *r, GError **error)
{
    gboolean subs = r->op == PS_OP_SUBSCRIPTIONS;
    const char *bare = mk_jid_string(r->from_bare);
    g_autoptr(MkDbResult) res =
        subs
            ? mk_db_conn_query(
                  conn, error,
                  "SELECT node, jid, subid, state FROM pubsub_subscriptions WHERE service = ?"
                  " AND (jid = ? OR substr(jid, 1, length(?) + 1) = ? || '/') ORDER BY node, jid",
                  MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(bare), MK_DB_STR(bare),
                  MK_DB_STR(bare))
            : mk_db_conn_query(conn, error,
                               "SELECT node, affiliation FROM pubsub_affiliations WHERE service = ?"
                               " AND jid = ? ORDER BY node",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(bare));
    if (!res)
        return FALSE;
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *list = mk_xml_add_child(r->result, subs ? "subscriptions" : "affiliations", NULL);
    if (r->node)
        mk_xml_set_attr(list, "node", r->node);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        const char *node = mk_db_result_get_string(res, i, 0);
        if (r->node && !g_str_equal(node, r->node))
            continue;
        if (subs) {
            mk_xml_append(list, subscription_el(r, node, mk_db_result_get_string(res, i, 1),
                                                mk_db_result_get_string(res, i, 2),
                                                mk_db_result_get_string(res, i, 3)));
        } else {
            MkXml *a = mk_xml_add_child(list, "affiliation", NULL);
            mk_xml_set_attr(a, "node", node);
            mk_xml_set_attr(a, "affiliation", mk_db_result_get_string(res, i, 1));
        }
    }
    return TRUE;
}

/* Section 8.8 and 8.9: the owner's view and changes. */
gboolean ps_op_owner_lists(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    ps_node_clear(&n);
    if (r->failed)
        return TRUE;
    gboolean subs = r->op == PS_OP_OWNER_SUBSCRIPTIONS || r->op == PS_OP_OWNER_SUBSCRIPTIONS_SET;
    const char *service = mk_jid_string(r->service);
    if (r->op == PS_OP_OWNER_SUBSCRIPTIONS_SET || r->op == PS_OP_OWNER_AFFILIATIONS_SET) {
        for (guint i = 0; i < mk_xml_child_count(r->el); i++) {
            MkXml *c = mk_xml_child_at(r->el, i);
            if (mk_xml_is_text(c))
                continue;
            const char *jid = mk_xml_get_attr(c, "jid");
            g_autoptr(MkJid) j = jid ? mk_jid_new(jid, NULL) : NULL;
            if (!j) {
                ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid");
                return TRUE;
            }
            g_autoptr(MkDbResult) res = NULL;
            if (subs) {
                const char *state = mk_xml_get_attr(c, "subscription");
                const char *subid = mk_xml_get_attr(c, "subid");
                if (g_strcmp0(state, "none") == 0) {
                    res =
                        subid
                            ? mk_db_conn_query(conn, error,
                                               "DELETE FROM pubsub_subscriptions WHERE service = ?"
                                               " AND node = ? AND jid = ? AND subid = ?",
                                               MK_DB_STR(service), MK_DB_STR(r->node),
                                               MK_DB_STR(mk_jid_string(j)), MK_DB_STR(subid))
                            : mk_db_conn_query(conn, error,
                                               "DELETE FROM pubsub_subscriptions WHERE service = ?"
                                               " AND node = ? AND jid = ?",
                                               MK_DB_STR(service), MK_DB_STR(r->node),
                                               MK_DB_STR(mk_jid_string(j)));
                } else if (g_strcmp0(state, "subscribed") == 0 ||
                           g_strcmp0(state, "pending") == 0) {
                    g_autoptr(GPtrArray) had = ps_load_subs(conn, r, mk_jid_string(j), error);
                    if (!had)
                        return FALSE;
                    if (had->len > 0) {
                        res = mk_db_conn_query(conn, error,
                                               "UPDATE pubsub_subscriptions SET state = ? WHERE"
                                               " service = ? AND node = ? AND jid = ?",
                                               MK_DB_STR(state), MK_DB_STR(service),
                                               MK_DB_STR(r->node), MK_DB_STR(mk_jid_string(j)));
                    } else {
                        g_autofree char *id = g_uuid_string_random();
                        res = mk_db_conn_query(
                            conn, error,
                            "INSERT INTO pubsub_subscriptions (service, node, jid, subid, state)"
                            " VALUES (?, ?, ?, ?, ?)",
                            MK_DB_STR(service), MK_DB_STR(r->node), MK_DB_STR(mk_jid_string(j)),
                            MK_DB_STR(id), MK_DB_STR(state));
                    }
                } else {
                    ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
                    return TRUE;
                }
                if (res) {
                    /* Section 8.8.4 (subscription-notifications): the
                     * entity hears of its new state. */
                    MkXml *m = mk_xml_new("message", NS_CLIENT);
                    MkXml *ev = mk_xml_add_child(m, "event", NS_PUBSUB_EVENT);
                    mk_xml_append(ev, subscription_el(r, r->node, mk_jid_string(j), subid, state));
                    ps_add_note(r, mk_jid_string(j), FALSE, m);
                }
            } else {
                PsAffiliation a;
                if (!ps_aff_parse(mk_xml_get_attr(c, "affiliation"), &a)) {
                    ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
                    return TRUE;
                }
                g_autoptr(MkJid) bare = mk_jid_bare(j);
                res = a == PS_AFF_NONE
                          ? mk_db_conn_query(conn, error,
                                             "DELETE FROM pubsub_affiliations WHERE service = ?"
                                             " AND node = ? AND jid = ?",
                                             MK_DB_STR(service), MK_DB_STR(r->node),
                                             MK_DB_STR(mk_jid_string(bare)))
                          : mk_db_conn_query(
                                conn, error,
                                "INSERT INTO pubsub_affiliations (service, node, jid, affiliation)"
                                " VALUES (?, ?, ?, ?) ON CONFLICT (service, node, jid) DO UPDATE"
                                " SET affiliation = excluded.affiliation",
                                MK_DB_STR(service), MK_DB_STR(r->node),
                                MK_DB_STR(mk_jid_string(bare)), MK_DB_STR(ps_aff_name(a)));
                if (res && a == PS_AFF_OUTCAST) {
                    /* An outcast loses its subscriptions (section 4.1). */
                    g_autoptr(MkDbResult) d = mk_db_conn_query(
                        conn, error,
                        "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ? AND"
                        " (jid = ? OR substr(jid, 1, length(?) + 1) = ? || '/')",
                        MK_DB_STR(service), MK_DB_STR(r->node), MK_DB_STR(mk_jid_string(bare)),
                        MK_DB_STR(mk_jid_string(bare)), MK_DB_STR(mk_jid_string(bare)));
                    if (!d)
                        return FALSE;
                }
            }
            if (!res)
                return FALSE;
        }
        return TRUE;
    }
    g_autoptr(MkDbResult) res =
        subs ? mk_db_conn_query(
                   conn, error,
                   "SELECT jid, subid, state FROM pubsub_subscriptions WHERE service = ?"
                   " AND node = ? ORDER BY jid, subid",
                   MK_DB_STR(service), MK_DB_STR(r->node))
             : mk_db_conn_query(conn, error,
                                "SELECT jid, affiliation FROM pubsub_affiliations WHERE service = ?"
                                " AND node = ? ORDER BY jid",
                                MK_DB_STR(service), MK_DB_STR(r->node));
    if (!res)
        return FALSE;
    r->result = mk_xml_new("pubsub", NS_PUBSUB_OWNER);
    MkXml *list = mk_xml_add_child(r->result, subs ? "subscriptions" : "affiliations", NULL);
    mk_xml_set_attr(list, "node", r->node);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        if (subs) {
            mk_xml_append(list, subscription_el(r, NULL, mk_db_result_get_string(res, i, 0),
                                                mk_db_result_get_string(res, i, 1),
                                                mk_db_result_get_string(res, i, 2)));
        } else {
            MkXml *a = mk_xml_add_child(list, "affiliation", NULL);
            mk_xml_set_attr(a, "jid", mk_db_result_get_string(res, i, 0));
            mk_xml_set_attr(a, "affiliation", mk_db_result_get_string(res, i, 1));
        }
    }
    return TRUE;
}

/* Section 8.6: the owner's answer to an authorization request. */
gboolean ps_op_authorize(MkDbConn *conn, PsReq *r, GError **error)
{
    PsNode n = {0};
    PsAffiliation aff;
    if (!ps_node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    g_autofree char *allow = ps_form_value(r->form, "pubsub#allow");
    gboolean yes = g_strcmp0(allow, "1") == 0 || g_strcmp0(allow, "true") == 0;
    g_autoptr(MkDbResult) res =
        yes ? mk_db_conn_query(conn, error,
                               "UPDATE pubsub_subscriptions SET state = 'subscribed' WHERE"
                               " service = ? AND node = ? AND jid = ? AND state = 'pending'",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                               MK_DB_STR(r->jid))
            : mk_db_conn_query(conn, error,
                               "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ?"
                               " AND jid = ? AND state = 'pending'",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                               MK_DB_STR(r->jid));
    if (!res)
        return FALSE;
    if (mk_db_result_affected(res) == 0)
        return TRUE;
    /* The subscriber hears the outcome (section 8.6). */
    MkXml *m = mk_xml_new("message", NS_CLIENT);
    MkXml *ev = mk_xml_add_child(m, "event", NS_PUBSUB_EVENT);
    mk_xml_append(ev, subscription_el(r, r->node, r->jid, NULL, yes ? "subscribed" : "none"));
    ps_add_note(r, r->jid, FALSE, m);
    return TRUE;
}
