/* PubSub requests on the worker: parse an IQ (or an owner's authorization
 * message) into a PsReq, run it on the node's user queue (ps-ops.c),
 * then answer and send the notifications. The service's own disco#info
 * and the default configuration need no storage and are answered here. */
#include "pubsub.h"

#include <string.h>

/* Takes one of @r's service's pending slots; FALSE when all are taken. */
static gboolean pending_take(PsReq *r)
{
    PubSub *ps = r->ps;
    const char *key = mk_jid_string(r->service);
    g_mutex_lock(&ps->pending_lock);
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(ps->pending, key));
    gboolean ok = n < (guint)ps->max_pending;
    if (ok)
        g_hash_table_insert(ps->pending, g_strdup(key), GUINT_TO_POINTER(n + 1));
    g_mutex_unlock(&ps->pending_lock);
    r->counted = ok;
    return ok;
}

static void pending_release(PsReq *r)
{
    PubSub *ps = r->ps;
    const char *key = mk_jid_string(r->service);
    g_mutex_lock(&ps->pending_lock);
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(ps->pending, key));
    if (n <= 1)
        g_hash_table_remove(ps->pending, key);
    else
        g_hash_table_insert(ps->pending, g_strdup(key), GUINT_TO_POINTER(n - 1));
    g_mutex_unlock(&ps->pending_lock);
}

void ps_req_free(PsReq *r)
{
    if (!r)
        return;
    if (r->counted)
        pending_release(r);
    if (r->iq)
        mk_iq_unref(r->iq);
    mk_stanza_unref(r->st);
    mk_jid_unref(r->service);
    mk_jid_unref(r->from);
    mk_jid_unref(r->from_bare);
    g_free(r->node);
    g_free(r->jid);
    g_free(r->subid);
    g_free(r->item_id);
    g_ptr_array_unref(r->item_ids);
    g_free(r->payload);
    g_free(r->err_text);
    if (r->result)
        mk_xml_unref(r->result);
    g_ptr_array_unref(r->notes);
    if (r->reply_to)
        g_ptr_array_unref(r->reply_to);
    g_free(r);
}

void ps_req_fail(PsReq *r, MkStanzaError err, const char *app)
{
    r->failed = TRUE;
    r->err = err;
    r->app = app;
}

void ps_note_free(gpointer p)
{
    PsNote *n = p;
    g_free(n->to);
    if (n->message)
        mk_xml_unref(n->message);
    if (n->subids)
        g_ptr_array_unref(n->subids);
    if (n->shows)
        g_ptr_array_unref(n->shows);
    g_free(n);
}

/* ---- answering ---------------------------------------------------------- */

static MkXml *app_error(PsReq *r)
{
    if (r->app_feature) {
        MkXml *u = mk_xml_new("unsupported", NS_PUBSUB_ERRORS);
        mk_xml_set_attr(u, "feature", r->app_feature);
        return u;
    }
    return r->app ? mk_xml_new(r->app, NS_PUBSUB_ERRORS) : NULL;
}

static void reply(PsReq *r)
{
    if (r->iq) {
        if (r->failed)
            mk_iq_reply_error_app(r->iq, r->err, r->err_text, app_error(r));
        else
            mk_iq_reply(r->iq, r->result ? mk_xml_ref(r->result) : NULL);
        return;
    }
    if (mk_stanza_kind(r->st) != MK_STANZA_IQ) {
        /* A message (an authorization form) gets an answer only on error. */
        if (!r->failed)
            return;
    }
    g_autoptr(MkXml) xml = NULL;
    if (r->failed) {
        g_autoptr(MkStanza) plain = mk_stanza_new_error_reply(r->st, r->err, r->err_text);
        if (!plain)
            return;
        xml = mk_xml_copy(mk_stanza_xml(plain));
        MkXml *err = mk_xml_child(xml, "error", NULL);
        MkXml *app = app_error(r);
        if (err && app)
            mk_xml_append(err, app);
        else if (app)
            mk_xml_unref(app);
    } else {
        xml = mk_xml_new("iq", NS_CLIENT);
        mk_xml_set_attr(xml, "type", "result");
        if (mk_stanza_id(r->st))
            mk_xml_set_attr(xml, "id", mk_stanza_id(r->st));
        if (r->result)
            mk_xml_append(xml, mk_xml_ref(r->result));
    }
    g_autoptr(MkStanza) out = mk_stanza_new_addressed(xml, mk_stanza_to(r->st), r->from);
    mk_router_send(out);
}

/* Sends @message to @to; with <headers/> naming @subids when a JID holds
 * several subscriptions (section 12.3). */
static void send_one(PubSub *ps, MkJid *service, MkXml *message, MkJid *to, GPtrArray *subids)
{
    g_autoptr(MkXml) copy = NULL;
    if (subids && subids->len > 1) {
        copy = mk_xml_copy(message);
        MkXml *h = mk_xml_add_child(copy, "headers", NS_SHIM);
        for (guint i = 0; i < subids->len; i++) {
            MkXml *one = mk_xml_add_child(h, "header", NULL);
            mk_xml_set_attr(one, "name", "SubID");
            mk_xml_add_text(one, subids->pdata[i], -1);
        }
    }
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(copy ? copy : message, service, to);
    mk_router_send(st);
    mk_counter_add(ps->notifications, 1);
}

/* The PS_SHOW_* bit of @s's presence. */
static guint session_show(MkSession *s)
{
    g_autoptr(MkStanza) p = mk_session_last_presence(s);
    g_autofree char *show = p ? mk_xml_child_text(mk_stanza_xml(p), "show", NULL) : NULL;
    return ps_show_bit(show);
}

/* The subids of @n whose show-values let @show through (0: those
 * without any). (transfer container) */
static GPtrArray *passing(PsNote *n, guint show)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < n->subids->len; i++) {
        guint mask = GPOINTER_TO_UINT(n->shows->pdata[i]);
        if (mask == 0 || (mask & show))
            g_ptr_array_add(out, n->subids->pdata[i]);
    }
    return out;
}

/* A subscriber's notification. pubsub#show-values: only while the
 * subscriber's presence has a listed show, so by the presence of each
 * local resource; a remote subscriber's presence is unknown here, so a
 * subscription with show-values gets nothing there. */
static void deliver_sub(PubSub *ps, MkJid *service, PsNote *n)
{
    g_autoptr(MkJid) to = mk_jid_new(n->to, NULL);
    if (!to)
        return;
    g_autoptr(GPtrArray) open = passing(n, 0);
    if (open->len == n->subids->len) {
        send_one(ps, service, n->message, to, n->subids);
        return;
    }
    g_autoptr(MkJid) bare = mk_jid_bare(to);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    if (mk_jid_resource(to)) {
        for (guint i = 0; i < sessions->len; i++) {
            MkSession *s = sessions->pdata[i];
            if (mk_jid_equal(mk_session_jid(s), to) && mk_session_is_available(s)) {
                g_autoptr(GPtrArray) ids = passing(n, session_show(s));
                if (ids->len > 0)
                    send_one(ps, service, n->message, to, ids);
                return;
            }
        }
    } else if (open->len == 0) {
        /* Every subscription filters: each available resource whose
         * show one of them lists. */
        for (guint i = 0; i < sessions->len; i++) {
            MkSession *s = sessions->pdata[i];
            if (!mk_session_is_available(s))
                continue;
            g_autoptr(GPtrArray) ids = passing(n, session_show(s));
            if (ids->len > 0)
                send_one(ps, service, n->message, mk_session_jid(s), ids);
        }
        return;
    }
    /* The bare JID's unfiltered subscriptions reach its resources as
     * any message to it does; offline, a filtered one gets nothing. */
    if (open->len > 0)
        send_one(ps, service, n->message, to, open);
}

/* See pubsub.h. */
void ps_send_notes(PubSub *ps, MkJid *service, const char *node, GPtrArray *notes)
{
    for (guint i = 0; notes && i < notes->len; i++) {
        PsNote *n = notes->pdata[i];
        if (n->pep_caps) {
            ps_pep_deliver(ps, service, node, n);
            continue;
        }
        if (n->subids) {
            deliver_sub(ps, service, n);
            continue;
        }
        g_autoptr(MkJid) to = mk_jid_new(n->to, NULL);
        if (to)
            send_one(ps, service, n->message, to, NULL);
    }
}

static void done(const GError *error, gpointer data)
{
    PsReq *r = data;
    if (error) {
        if (!g_error_matches(error, MK_USER_QUEUE_ERROR, MK_USER_QUEUE_ERROR_STOPPED))
            g_warning("mod_pubsub: %s at %s: %s", r->node ? r->node : "(service)",
                      mk_jid_string(r->service), error->message);
        ps_req_fail(r, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        g_ptr_array_set_size(r->notes, 0);
    }
    if (r->failed)
        mk_counter_add(r->ps->refusals, 1);
    reply(r);
    ps_send_notes(r->ps, r->service, r->node, r->notes);
}

static void answer_now(PsReq *r);

static void run(PsReq *r)
{
    /* A bound on what one service (an account, or the service's domain)
     * may have waiting: each waiting request is held parsed in memory. */
    if (!pending_take(r)) {
        mk_counter_add(r->ps->refusals, 1);
        mk_counter_add(r->ps->limit_refusals, 1);
        if (mk_stanza_kind(r->st) == MK_STANZA_IQ) {
            ps_req_fail(r, MK_ERR_RESOURCE_CONSTRAINT, NULL);
            answer_now(r);
        } else {
            ps_req_free(r);
        }
        return;
    }
    g_autofree char *key =
        g_strconcat(mk_jid_string(r->service), "\n", r->node ? r->node : "", NULL);
    mk_user_queue_push(r->ps->queue, key, ps_ops_run, done, r, (GDestroyNotify)ps_req_free);
}

/* Answers @r at once (parse errors, requests without storage). */
static void answer_now(PsReq *r)
{
    reply(r);
    ps_req_free(r);
}

/* ---- the service's own disco#info (no node) ------------------------- */

static const char *const service_features[] = {
    NS_PUBSUB,
    NS_PUBSUB "#access-authorize",
    NS_PUBSUB "#access-open",
    NS_PUBSUB "#access-presence",
    NS_PUBSUB "#access-roster",
    NS_PUBSUB "#access-whitelist",
    NS_PUBSUB "#auto-create",
    NS_PUBSUB "#config-node",
    NS_PUBSUB "#create-and-configure",
    NS_PUBSUB "#create-nodes",
    NS_PUBSUB "#delete-items",
    NS_PUBSUB "#delete-nodes",
    NS_PUBSUB "#instant-nodes",
    NS_PUBSUB "#item-ids",
    NS_PUBSUB "#last-published",
    NS_PUBSUB "#leased-subscription",
    NS_PUBSUB "#manage-subscriptions",
    NS_PUBSUB "#member-affiliation",
    NS_PUBSUB "#meta-data",
    NS_PUBSUB "#modify-affiliations",
    NS_PUBSUB "#multi-subscribe",
    NS_PUBSUB "#outcast-affiliation",
    NS_PUBSUB "#persistent-items",
    NS_PUBSUB "#publish",
    NS_PUBSUB "#publish-only-affiliation",
    NS_PUBSUB "#publish-options",
    NS_PUBSUB "#publisher-affiliation",
    NS_PUBSUB "#purge-nodes",
    NS_PUBSUB "#retract-items",
    NS_PUBSUB "#retrieve-affiliations",
    NS_PUBSUB "#retrieve-default",
    NS_PUBSUB "#retrieve-default-sub",
    NS_PUBSUB "#retrieve-items",
    NS_PUBSUB "#retrieve-subscriptions",
    NS_PUBSUB "#subscribe",
    NS_PUBSUB "#subscription-notifications",
    NS_PUBSUB "#subscription-options",
    NULL,
};

/* See pubsub.h: PEP adds what only it does. */
const char *const *ps_features(void)
{
    return service_features;
}

static MkXml *service_info(void)
{
    MkXml *q = mk_xml_new("query", NS_DISCO_INFO);
    MkXml *id = mk_xml_add_child(q, "identity", NULL);
    mk_xml_set_attr(id, "category", "pubsub");
    mk_xml_set_attr(id, "type", "service");
    mk_xml_set_attr(id, "name", "Publish-Subscribe");
    mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", NS_DISCO_INFO);
    mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", NS_DISCO_ITEMS);
    for (guint i = 0; service_features[i]; i++)
        mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", service_features[i]);
    return q;
}

/* ---- parsing ------------------------------------------------------------ */

/* The one element child of @el in @xmlns, or NULL. */
static MkXml *first_child(MkXml *el, const char *xmlns)
{
    for (guint i = 0; el && i < mk_xml_child_count(el); i++) {
        MkXml *c = mk_xml_child_at(el, i);
        if (!mk_xml_is_text(c) && (!xmlns || g_strcmp0(mk_xml_ns(c), xmlns) == 0))
            return c;
    }
    return NULL;
}

static guint element_count(MkXml *el)
{
    guint n = 0;
    for (guint i = 0; el && i < mk_xml_child_count(el); i++)
        n += !mk_xml_is_text(mk_xml_child_at(el, i));
    return n;
}

/* Parses the publish's item and payload; FALSE when @r failed. */
static gboolean parse_publish(PsReq *r, MkXml *publish)
{
    MkXml *item = NULL;
    for (guint i = 0; i < mk_xml_child_count(publish); i++) {
        MkXml *c = mk_xml_child_at(publish, i);
        if (mk_xml_is_text(c))
            continue;
        if (!g_str_equal(mk_xml_name(c), "item") || item) {
            /* Section 7.1.3.6: one item per publish. */
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-payload");
            return FALSE;
        }
        item = c;
    }
    if (!item)
        return TRUE;
    const char *id = mk_xml_get_attr(item, "id");
    if (id && *id)
        r->item_id = g_strdup(id);
    r->el = item;
    guint n = element_count(item);
    if (n > 1) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-payload");
        return FALSE;
    }
    if (n == 1) {
        r->payload = mk_xml_to_string(first_child(item, NULL), NULL);
        r->payload_len = strlen(r->payload);
        if ((gint64)r->payload_len > r->ps->max_payload) {
            ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, "payload-too-big");
            mk_counter_add(r->ps->limit_refusals, 1);
            return FALSE;
        }
    }
    return TRUE;
}

/* The data form inside @el (a <configure/>, <publish-options/>,
 * <options/>). */
static MkXml *form_in(MkXml *el)
{
    return el ? mk_xml_child(el, "x", NS_XDATA) : NULL;
}

/* Fills @r from the <pubsub/> of an IQ; FALSE when @r failed. */
static gboolean parse_pubsub(PsReq *r, MkXml *pubsub, gboolean set)
{
    gboolean owner = g_str_equal(mk_xml_ns(pubsub), NS_PUBSUB_OWNER);
    MkXml *action = NULL, *extra = NULL;
    for (guint i = 0; i < mk_xml_child_count(pubsub); i++) {
        MkXml *c = mk_xml_child_at(pubsub, i);
        if (mk_xml_is_text(c))
            continue;
        const char *name = mk_xml_name(c);
        if (!owner && (g_str_equal(name, "configure") || g_str_equal(name, "publish-options") ||
                       (g_str_equal(name, "options") && action)))
            extra = c;
        else if (!action)
            action = c;
        else {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
            return FALSE;
        }
    }
    if (!action && extra && g_str_equal(mk_xml_name(extra), "options"))
        action = extra, extra = NULL;
    if (!action) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
        return FALSE;
    }
    const char *name = mk_xml_name(action);
    const char *node = mk_xml_get_attr(action, "node");
    r->node = node && *node ? g_strdup(node) : NULL;
    r->el = action;
    struct {
        gboolean owner, set;
        const char *name;
        PsOp op;
        gboolean needs_node;
    } table[] = {
        {FALSE, TRUE, "create", PS_OP_CREATE, FALSE},
        {FALSE, TRUE, "publish", PS_OP_PUBLISH, TRUE},
        {FALSE, TRUE, "retract", PS_OP_RETRACT, TRUE},
        {FALSE, TRUE, "subscribe", PS_OP_SUBSCRIBE, TRUE},
        {FALSE, TRUE, "unsubscribe", PS_OP_UNSUBSCRIBE, TRUE},
        {FALSE, TRUE, "options", PS_OP_OPTIONS_SET, TRUE},
        {FALSE, FALSE, "options", PS_OP_OPTIONS_GET, TRUE},
        {FALSE, FALSE, "items", PS_OP_ITEMS, TRUE},
        {FALSE, FALSE, "subscriptions", PS_OP_SUBSCRIPTIONS, FALSE},
        {FALSE, FALSE, "affiliations", PS_OP_AFFILIATIONS, FALSE},
        {FALSE, FALSE, "default", PS_OP_DEFAULT_SUB, FALSE},
        {TRUE, FALSE, "configure", PS_OP_CONFIGURE_GET, TRUE},
        {TRUE, TRUE, "configure", PS_OP_CONFIGURE_SET, TRUE},
        {TRUE, FALSE, "default", PS_OP_DEFAULT, FALSE},
        {TRUE, TRUE, "delete", PS_OP_DELETE, TRUE},
        {TRUE, TRUE, "purge", PS_OP_PURGE, TRUE},
        {TRUE, FALSE, "subscriptions", PS_OP_OWNER_SUBSCRIPTIONS, TRUE},
        {TRUE, TRUE, "subscriptions", PS_OP_OWNER_SUBSCRIPTIONS_SET, TRUE},
        {TRUE, FALSE, "affiliations", PS_OP_OWNER_AFFILIATIONS, TRUE},
        {TRUE, TRUE, "affiliations", PS_OP_OWNER_AFFILIATIONS_SET, TRUE},
    };
    guint i = 0;
    while (i < G_N_ELEMENTS(table) &&
           (table[i].owner != owner || table[i].set != set || !g_str_equal(table[i].name, name)))
        i++;
    if (i == G_N_ELEMENTS(table)) {
        ps_req_fail(r, MK_ERR_FEATURE_NOT_IMPLEMENTED, NULL);
        r->app_feature = "unknown";
        return FALSE;
    }
    r->op = table[i].op;
    if (table[i].needs_node && !r->node) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "nodeid-required");
        return FALSE;
    }
    switch (r->op) {
    case PS_OP_CREATE:
        r->form = form_in(extra);
        if (!r->node && r->pep) {
            ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, "nodeid-required");
            return FALSE;
        }
        break;
    case PS_OP_CONFIGURE_SET:
        r->form = form_in(action);
        break;
    case PS_OP_PUBLISH:
        r->form = form_in(extra);
        if (r->form) {
            g_autofree char *ft = ps_form_value(r->form, "FORM_TYPE");
            if (g_strcmp0(ft, NS_PUBSUB_PUBOPT) != 0) {
                ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-options");
                return FALSE;
            }
        }
        return parse_publish(r, action);
    case PS_OP_RETRACT: {
        MkXml *item = mk_xml_child(action, "item", NULL);
        const char *id = item ? mk_xml_get_attr(item, "id") : NULL;
        if (!id || !*id) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "item-required");
            return FALSE;
        }
        r->item_id = g_strdup(id);
        const char *notify = mk_xml_get_attr(action, "notify");
        r->notify = g_strcmp0(notify, "1") == 0 || g_strcmp0(notify, "true") == 0;
        break;
    }
    case PS_OP_ITEMS: {
        const char *max = mk_xml_get_attr(action, "max_items");
        if (max) {
            char *end = NULL;
            r->max_items = g_ascii_strtoll(max, &end, 10);
            if (*end || r->max_items <= 0) {
                ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
                return FALSE;
            }
        }
        r->subid = g_strdup(mk_xml_get_attr(action, "subid"));
        for (guint k = 0; k < mk_xml_child_count(action); k++) {
            MkXml *c = mk_xml_child_at(action, k);
            if (!mk_xml_is_text(c) && g_str_equal(mk_xml_name(c), "item") &&
                mk_xml_get_attr(c, "id"))
                g_ptr_array_add(r->item_ids, g_strdup(mk_xml_get_attr(c, "id")));
        }
        break;
    }
    case PS_OP_SUBSCRIBE:
    case PS_OP_UNSUBSCRIBE:
    case PS_OP_OPTIONS_GET:
    case PS_OP_OPTIONS_SET:
        r->jid = g_strdup(mk_xml_get_attr(action, "jid"));
        r->subid = g_strdup(mk_xml_get_attr(action, "subid"));
        r->form = r->op == PS_OP_SUBSCRIBE ? form_in(extra) : form_in(action);
        if (!r->jid && r->op != PS_OP_OPTIONS_GET && r->op != PS_OP_OPTIONS_SET) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "jid-required");
            return FALSE;
        }
        break;
    default:
        break;
    }
    return TRUE;
}

static PsReq *req_new(PubSub *ps, MkModule *mod, MkIq *iq, MkStanza *st, MkJid *service,
                      gboolean pep)
{
    PsReq *r = g_new0(PsReq, 1);
    r->ps = ps;
    r->mod = mod;
    r->iq = iq ? mk_iq_ref(iq) : NULL;
    r->st = mk_stanza_ref(st);
    r->service = mk_jid_bare(service);
    r->pep = pep;
    r->from = mk_jid_ref(mk_stanza_from(st));
    r->from_bare = mk_jid_bare(r->from);
    r->item_ids = g_ptr_array_new_with_free_func(g_free);
    r->notes = g_ptr_array_new_with_free_func(ps_note_free);
    return r;
}

/* An owner's answer to a subscription authorization (section 8.6). */
static gboolean parse_authorization(PsReq *r, MkXml *x)
{
    g_autofree char *ft = ps_form_value(x, "FORM_TYPE");
    if (g_strcmp0(ft, NS_PUBSUB "#subscribe_authorization") != 0 ||
        g_strcmp0(mk_xml_get_attr(x, "type"), "submit") != 0)
        return FALSE;
    r->node = ps_form_value(x, "pubsub#node");
    r->jid = ps_form_value(x, "pubsub#subscriber_jid");
    r->form = x;
    r->op = PS_OP_AUTHORIZE;
    return r->node && r->jid;
}

/* See pubsub.h. Worker. */
void ps_handle(PubSub *ps, MkModule *mod, MkIq *iq, MkStanza *st, MkJid *service, gboolean pep)
{
    MkXml *xml = mk_stanza_xml(st);
    if (!mk_stanza_from(st))
        return;
    PsReq *r = req_new(ps, mod, iq, st, service, pep);
    if (mk_stanza_kind(st) == MK_STANZA_MESSAGE) {
        MkXml *x = mk_xml_child(xml, "x", NS_XDATA);
        if (mk_stanza_is_error(st) || !x || !parse_authorization(r, x)) {
            ps_req_free(r);
            return;
        }
        run(r);
        return;
    }
    const char *type = mk_stanza_type(st);
    gboolean set = g_strcmp0(type, "set") == 0;
    MkXml *payload = iq ? mk_iq_payload(iq) : first_child(xml, NULL);
    const char *ns = payload ? mk_xml_ns(payload) : NULL;
    if (!payload || (!set && g_strcmp0(type, "get") != 0)) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
        answer_now(r);
        return;
    }
    if (g_strcmp0(ns, NS_DISCO_INFO) == 0 || g_strcmp0(ns, NS_DISCO_ITEMS) == 0) {
        gboolean info = g_str_equal(ns, NS_DISCO_INFO);
        const char *node = mk_xml_get_attr(payload, "node");
        if (set) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, NULL);
            answer_now(r);
        } else if (info && !node) {
            r->result = service_info();
            answer_now(r);
        } else {
            r->op = info ? PS_OP_DISCO_INFO : PS_OP_DISCO_ITEMS;
            r->node = g_strdup(node);
            run(r);
        }
        return;
    }
    if (g_strcmp0(ns, NS_PUBSUB) != 0 && g_strcmp0(ns, NS_PUBSUB_OWNER) != 0) {
        ps_req_fail(r, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        answer_now(r);
        return;
    }
    if (!parse_pubsub(r, payload, set)) {
        answer_now(r);
        return;
    }
    if (r->op == PS_OP_DEFAULT) {
        /* Section 8.3: the default configuration of a new node. */
        g_autoptr(PsConfig) c = ps_config_new(pep);
        r->result = mk_xml_new("pubsub", NS_PUBSUB_OWNER);
        mk_xml_append(mk_xml_add_child(r->result, "default", NULL),
                      ps_config_form(c, NS_PUBSUB_CONFIG, "form"));
        answer_now(r);
        return;
    }
    if (r->op == PS_OP_DEFAULT_SUB && !r->node) {
        r->result = ps_default_sub_result(r);
        answer_now(r);
        return;
    }
    if (r->op == PS_OP_PUBLISH)
        mk_counter_add(ps->publishes, 1);
    run(r);
}
