/* Each PubSub request as one storage transaction (XEP-0060 sections 6-8):
 * read the node and the requester's standing, decide, write, and gather
 * the notifications to send once it committed. Storage thread; the
 * caller (ps-req.c) answers and sends on the worker. Error conditions
 * follow the XEP's sections, named beside each check. */
#include "pubsub.h"

#include <string.h>

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    PsConfig *cfg; /* NULL: no such node */
} Node;

static void node_clear(Node *n)
{
    ps_config_free(n->cfg);
    n->cfg = NULL;
}

static gboolean load_node(MkDbConn *conn, PsReq *r, const char *node, Node *out, GError **error)
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

/* The affiliation of @jid (a bare JID). The account owns its PEP nodes. */
static gboolean load_aff(MkDbConn *conn, PsReq *r, const char *jid, PsAffiliation *out,
                         GError **error)
{
    *out = PS_AFF_NONE;
    if (r->pep && g_str_equal(jid, mk_jid_string(r->service))) {
        *out = PS_AFF_OWNER;
        return TRUE;
    }
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT affiliation FROM pubsub_affiliations WHERE service = ? AND node = ? AND jid = ?",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(jid));
    if (!res)
        return FALSE;
    if (mk_db_result_rows(res) > 0)
        ps_aff_parse(mk_db_result_get_string(res, 0, 0), out);
    return TRUE;
}

/* The JID whose roster decides presence and roster access: the account
 * for PEP, else the node's first owner. (transfer full) (nullable) */
static MkJid *roster_owner(MkDbConn *conn, PsReq *r, GError **error)
{
    if (r->pep)
        return mk_jid_ref(r->service);
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT jid FROM pubsub_affiliations WHERE service = ? AND node = ?"
                         " AND affiliation = 'owner' ORDER BY jid",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res || mk_db_result_rows(res) == 0)
        return NULL;
    return mk_jid_new(mk_db_result_get_string(res, 0, 0), NULL);
}

/* The subscriptions of @jid (exact) on the node: subid and state. */
typedef struct {
    char *jid, *subid, *state;
} Sub;

static void sub_free(gpointer p)
{
    Sub *s = p;
    g_free(s->jid);
    g_free(s->subid);
    g_free(s->state);
    g_free(s);
}

static GPtrArray *load_subs(MkDbConn *conn, PsReq *r, const char *jid, GError **error)
{
    g_autoptr(MkDbResult) res =
        jid ? mk_db_conn_query(conn, error,
                               "SELECT jid, subid, state FROM pubsub_subscriptions"
                               " WHERE service = ? AND node = ? AND jid = ? ORDER BY subid",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                               MK_DB_STR(jid))
            : mk_db_conn_query(conn, error,
                               "SELECT jid, subid, state FROM pubsub_subscriptions"
                               " WHERE service = ? AND node = ? ORDER BY jid, subid",
                               MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(sub_free);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        Sub *s = g_new0(Sub, 1);
        s->jid = g_strdup(mk_db_result_get_string(res, i, 0));
        s->subid = g_strdup(mk_db_result_get_string(res, i, 1));
        s->state = g_strdup(mk_db_result_get_string(res, i, 2));
        g_ptr_array_add(out, s);
    }
    return out;
}

/* Whether @jid (bare) holds a subscription in state 'subscribed' by its
 * bare or one of its full JIDs. */
static gboolean is_subscribed(MkDbConn *conn, PsReq *r, const char *bare, gboolean *yes,
                              GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT 1 FROM pubsub_subscriptions WHERE service = ? AND node = ? AND state = 'subscribed'"
        " AND (jid = ? OR substr(jid, 1, length(?) + 1) = ? || '/')",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node), MK_DB_STR(bare), MK_DB_STR(bare),
        MK_DB_STR(bare));
    if (!res)
        return FALSE;
    *yes = mk_db_result_rows(res) > 0;
    return TRUE;
}

/* ---- access (XEP-0060 section 4.5; errors of 6.1.3 and 6.5.9) ------- */

typedef enum { ACCESS_OK, ACCESS_PENDING, ACCESS_DENIED } Access;

/* Whether the requester may subscribe or read items. @subscribing: an
 * authorize node answers pending instead of refusing. On a refusal @r
 * carries the error. */
static gboolean check_access(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsAffiliation aff,
                             gboolean subscribing, Access *out, GError **error)
{
    *out = ACCESS_DENIED;
    if (aff == PS_AFF_OUTCAST) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    if (aff == PS_AFF_OWNER || aff == PS_AFF_PUBLISHER || aff == PS_AFF_MEMBER) {
        *out = ACCESS_OK;
        return TRUE;
    }
    const char *me = mk_jid_string(r->from_bare);
    switch (cfg->access) {
    case PS_ACCESS_OPEN:
        *out = ACCESS_OK;
        return TRUE;
    case PS_ACCESS_PRESENCE:
    case PS_ACCESS_ROSTER: {
        g_autoptr(MkJid) owner = roster_owner(conn, r, error);
        g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
        gboolean from = FALSE, available = FALSE;
        if (owner && !mk_roster_relation(r->mod, conn, owner, me, &from, groups, &available, error))
            return FALSE;
        if (cfg->access == PS_ACCESS_PRESENCE) {
            if (from)
                *out = ACCESS_OK;
            else
                ps_req_fail(r, MK_ERR_NOT_AUTHORIZED, "presence-subscription-required");
            return TRUE;
        }
        for (guint i = 0; i < groups->len; i++)
            if (g_strv_contains((const char *const *)cfg->roster_groups, groups->pdata[i]))
                *out = ACCESS_OK;
        if (*out != ACCESS_OK)
            ps_req_fail(r, MK_ERR_NOT_AUTHORIZED, "not-in-roster-group");
        return TRUE;
    }
    case PS_ACCESS_WHITELIST:
        ps_req_fail(r, MK_ERR_NOT_ALLOWED, "closed-node");
        return TRUE;
    case PS_ACCESS_AUTHORIZE:
        if (subscribing) {
            *out = ACCESS_PENDING;
            return TRUE;
        }
        gboolean yes = FALSE;
        if (!is_subscribed(conn, r, me, &yes, error))
            return FALSE;
        if (yes)
            *out = ACCESS_OK;
        else
            ps_req_fail(r, MK_ERR_NOT_AUTHORIZED, "not-subscribed");
        return TRUE;
    }
    return TRUE;
}

/* ---- notifications ------------------------------------------------------ */

static void add_note(PsReq *r, const char *to, gboolean pep_caps, MkXml *message)
{
    PsNote *n = g_new0(PsNote, 1);
    n->to = g_strdup(to);
    n->pep_caps = pep_caps;
    n->message = message;
    g_ptr_array_add(r->notes, n);
}

/* A <message/> carrying @event (transfer full), from the service. */
static MkXml *event_message(PsReq *r, const PsConfig *cfg, MkXml *event, GPtrArray *subids)
{
    MkXml *m = mk_xml_new("message", NS_CLIENT);
    if (!cfg || g_strcmp0(cfg->notification_type, "normal") != 0)
        mk_xml_set_attr(m, "type", "headline");
    g_autofree char *id = g_uuid_string_random();
    mk_xml_set_attr(m, "id", id);
    mk_xml_append(m, event);
    if (subids && subids->len > 1) {
        /* Section 12.3: the subscriptions a notification answers, when a
         * JID holds several. */
        MkXml *h = mk_xml_add_child(m, "headers", NS_SHIM);
        for (guint i = 0; i < subids->len; i++) {
            MkXml *one = mk_xml_add_child(h, "header", NULL);
            mk_xml_set_attr(one, "name", "SubID");
            mk_xml_add_text(one, subids->pdata[i], -1);
        }
    }
    return m;
}

/* Sends @event (built anew per recipient by @make) to every subscriber,
 * and for PEP to the owner and the contacts its access model lets see
 * the node (filtered by caps on the worker). */
typedef MkXml *(*EventFunc)(PsReq *r, gpointer data);

static gboolean notify_all(MkDbConn *conn, PsReq *r, const PsConfig *cfg, EventFunc make,
                           gpointer data, GError **error)
{
    g_autoptr(GPtrArray) subs = load_subs(conn, r, NULL, error);
    if (!subs)
        return FALSE;
    g_autoptr(GHashTable) explicit = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < subs->len;) {
        Sub *s = subs->pdata[i];
        g_autoptr(GPtrArray) ids = g_ptr_array_new();
        guint j = i;
        for (; j < subs->len && g_str_equal(((Sub *)subs->pdata[j])->jid, s->jid); j++)
            if (g_str_equal(((Sub *)subs->pdata[j])->state, "subscribed"))
                g_ptr_array_add(ids, ((Sub *)subs->pdata[j])->subid);
        if (ids->len > 0) {
            add_note(r, s->jid, FALSE, event_message(r, cfg, make(r, data), ids));
            g_autoptr(MkJid) j1 = mk_jid_new(s->jid, NULL);
            if (j1)
                g_hash_table_add(explicit, (gpointer)s->jid);
        }
        i = j;
    }
    if (!r->pep)
        return TRUE;
    /* XEP-0163 section 4.3.1: the account itself and, as the access model
     * allows, the contacts with a presence subscription. */
    const char *owner = mk_jid_string(r->service);
    if (!g_hash_table_contains(explicit, owner))
        add_note(r, owner, TRUE, event_message(r, cfg, make(r, data), NULL));
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
        add_note(r, c, TRUE, event_message(r, cfg, make(r, data), NULL));
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
static MkXml *item_el(const char *id, const char *payload, const char *publisher)
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

typedef struct {
    const char *id;
    const char *payload; /* NULL: without payload */
} ItemEvent;

static MkXml *make_items_event(PsReq *r, gpointer data)
{
    ItemEvent *ie = data;
    MkXml *ev = event_el(r, "items");
    mk_xml_append(mk_xml_child(ev, "items", NULL), item_el(ie->id, ie->payload, NULL));
    return ev;
}

static MkXml *make_retract_event(PsReq *r, gpointer data)
{
    MkXml *ev = event_el(r, "items");
    MkXml *rt = mk_xml_add_child(mk_xml_child(ev, "items", NULL), "retract", NULL);
    mk_xml_set_attr(rt, "id", data);
    return ev;
}

static MkXml *make_simple_event(PsReq *r, gpointer data)
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

static MkXml *make_config_event(PsReq *r, gpointer data)
{
    const PsConfig *cfg = data;
    MkXml *ev = event_el(r, "configuration");
    if (cfg->deliver_payloads)
        mk_xml_append(mk_xml_child(ev, "configuration", NULL),
                      ps_config_form(cfg, NS_PUBSUB_CONFIG, "result"));
    return ev;
}

/* ---- the last item (section 6.1.7) ---------------------------------- */

static gboolean last_item(MkDbConn *conn, PsReq *r, const char *node, char **id, char **payload,
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

/* ---- operations ------------------------------------------------------- */

static gboolean insert_node(MkDbConn *conn, PsReq *r, const PsConfig *cfg, GError **error)
{
    g_autofree char *text = ps_config_serialize(cfg);
    g_autoptr(MkDbResult) a = mk_db_conn_query(
        conn, error,
        "INSERT INTO pubsub_nodes (service, node, username, domain, config) VALUES (?, ?, ?, ?, ?)",
        MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
        r->pep ? MK_DB_STR(mk_jid_node(r->service)) : MK_DB_NULL,
        r->pep ? MK_DB_STR(mk_jid_domain(r->service)) : MK_DB_NULL, MK_DB_STR(text));
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
        return TRUE;
    }
    *ok = TRUE;
    return TRUE;
}

static gboolean op_create(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    if (!r->node)
        r->node = g_uuid_string_random(); /* section 8.1.2: an instant node */
    if (!load_node(conn, r, r->node, &n, error))
        return FALSE;
    if (n.cfg) {
        node_clear(&n);
        ps_req_fail(r, MK_ERR_CONFLICT, NULL);
        return TRUE;
    }
    gboolean ok = FALSE;
    if (!may_create(conn, r, &ok, error))
        return FALSE;
    if (!ok)
        return TRUE;
    g_autoptr(PsConfig) cfg = ps_config_new(r->pep);
    g_autofree char *why = NULL;
    if (r->form && !ps_config_apply_form(cfg, r->form, r->ps->max_items, &why)) {
        r->err_text = g_steal_pointer(&why);
        ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, NULL);
        return TRUE;
    }
    if (!insert_node(conn, r, cfg, error))
        return FALSE;
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    mk_xml_set_attr(mk_xml_add_child(r->result, "create", NULL), "node", r->node);
    return TRUE;
}

/* The node and the requester's affiliation; fails @r with item-not-found
 * when there is no node, and forbidden when @owner is asked and the
 * requester is not one. FALSE only on storage errors. */
static gboolean node_and_aff(MkDbConn *conn, PsReq *r, gboolean owner, Node *n, PsAffiliation *aff,
                             GError **error)
{
    if (!load_node(conn, r, r->node, n, error) ||
        !load_aff(conn, r, mk_jid_string(r->from_bare), aff, error))
        return FALSE;
    if (!n->cfg)
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
    else if (owner && *aff != PS_AFF_OWNER)
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
    return TRUE;
}

static gboolean op_configure(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, TRUE, &n, &aff, error))
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
    g_autofree char *why = NULL;
    if (!ps_config_apply_form(cfg, r->form, r->ps->max_items, &why)) {
        r->err_text = g_steal_pointer(&why);
        ps_req_fail(r, MK_ERR_NOT_ACCEPTABLE, NULL);
        return TRUE;
    }
    g_autofree char *text = ps_config_serialize(cfg);
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error, "UPDATE pubsub_nodes SET config = ? WHERE service = ? AND node = ?",
        MK_DB_STR(text), MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
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
        return notify_all(conn, r, cfg, make_config_event, cfg, error);
    return TRUE;
}

static gboolean op_delete(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    /* Section 8.4.2: the subscribers hear of it before their
     * subscriptions go with the node. */
    if (cfg->notify_delete && !notify_all(conn, r, cfg, make_simple_event, "delete", error))
        return FALSE;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "DELETE FROM pubsub_nodes WHERE service = ? AND node = ?",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    return res != NULL;
}

static gboolean op_purge(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "DELETE FROM pubsub_items WHERE service = ? AND node = ?",
                         MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node));
    if (!res)
        return FALSE;
    if (cfg->notify_retract && cfg->deliver_notifications)
        return notify_all(conn, r, cfg, make_simple_event, "purge", error);
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
            if (!is_subscribed(conn, r, mk_jid_string(r->from_bare), ok, error))
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
    Node n = {0};
    PsAffiliation aff;
    if (!load_node(conn, r, r->node, &n, error) ||
        !load_aff(conn, r, mk_jid_string(r->from_bare), &aff, error))
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
        g_autofree char *why = NULL;
        if (r->form && !ps_config_apply_form(cfg, r->form, r->ps->max_items, &why)) {
            r->err_text = g_steal_pointer(&why);
            ps_req_fail(r, MK_ERR_CONFLICT, "precondition-not-met");
            return TRUE;
        }
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
    if (!r->payload && (cfg->deliver_payloads || cfg->persist_items)) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST,
                    r->item_id || r->el ? "payload-required" : "item-required");
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
    ItemEvent ie = {r->item_id, cfg->deliver_payloads ? r->payload : NULL};
    return notify_all(conn, r, cfg, make_items_event, &ie, error);
}

static gboolean op_retract(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
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
        return notify_all(conn, r, cfg, make_retract_event, r->item_id, error);
    return TRUE;
}

static gboolean op_items(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    Access a;
    if (!check_access(conn, r, cfg, aff, FALSE, &a, error))
        return FALSE;
    if (a != ACCESS_OK)
        return TRUE;
    if (r->subid) {
        g_autoptr(GPtrArray) subs = load_subs(conn, r, mk_jid_string(r->from), error);
        if (!subs)
            return FALSE;
        gboolean found = FALSE;
        for (guint i = 0; i < subs->len; i++)
            found = found || g_str_equal(((Sub *)subs->pdata[i])->subid, r->subid);
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
                mk_xml_append(items, item_el(mk_db_result_get_string(res, 0, 0),
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
        mk_xml_append(items, item_el(mk_db_result_get_string(res, i, 0),
                                     mk_db_result_get_string(res, i, 1), NULL));
    return TRUE;
}

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
        add_note(r, mk_db_result_get_string(res, i, 0), FALSE, m);
    }
}

static gboolean op_subscribe(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    g_autoptr(MkJid) want = r->jid ? mk_jid_new(r->jid, NULL) : NULL;
    /* Section 6.1.3.1: only one's own JID, bare or full. */
    if (!want || !mk_jid_bare_equal(want, r->from)) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid");
        return TRUE;
    }
    if (!node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (r->failed)
        return TRUE;
    Access a;
    if (!check_access(conn, r, cfg, aff, TRUE, &a, error))
        return FALSE;
    if (a == ACCESS_DENIED)
        return TRUE;
    g_autoptr(GPtrArray) subs = load_subs(conn, r, mk_jid_string(want), error);
    if (!subs)
        return FALSE;
    const char *subid = NULL, *state = a == ACCESS_PENDING ? "pending" : "subscribed";
    if (subs->len > 0 && !r->form) {
        /* Subscribing again without options: the subscription there is. */
        Sub *s = subs->pdata[0];
        subid = s->subid;
        state = s->state;
    } else if (subs->len >= (guint)r->ps->max_subscriptions) {
        ps_req_fail(r, MK_ERR_POLICY_VIOLATION, "too-many-subscriptions");
        return TRUE;
    } else {
        g_autofree char *id = g_uuid_string_random();
        g_autoptr(MkDbResult) ins =
            mk_db_conn_query(conn, error,
                             "INSERT INTO pubsub_subscriptions (service, node, jid, subid, state)"
                             " VALUES (?, ?, ?, ?, ?)",
                             MK_DB_STR(mk_jid_string(r->service)), MK_DB_STR(r->node),
                             MK_DB_STR(mk_jid_string(want)), MK_DB_STR(id), MK_DB_STR(state));
        if (!ins)
            return FALSE;
        Sub *s = g_new0(Sub, 1);
        s->subid = g_steal_pointer(&id);
        s->state = g_strdup(state);
        g_ptr_array_add(subs, s);
        subid = s->subid;
        if (a == ACCESS_PENDING)
            ask_owners(conn, r, subid, error);
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    mk_xml_append(r->result, subscription_el(r, r->node, mk_jid_string(want), subid, state));
    if (g_str_equal(state, "subscribed") && cfg->send_last != PS_SEND_NEVER) {
        g_autofree char *id = NULL, *payload = NULL;
        if (!last_item(conn, r, r->node, &id, &payload, error))
            return FALSE;
        if (id) {
            ItemEvent ie = {id, cfg->deliver_payloads ? payload : NULL};
            add_note(r, mk_jid_string(want), FALSE,
                     event_message(r, cfg, make_items_event(r, &ie), NULL));
        }
    }
    return TRUE;
}

static gboolean op_unsubscribe(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    g_autoptr(MkJid) want = r->jid ? mk_jid_new(r->jid, NULL) : NULL;
    if (!want) {
        ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-jid");
        return TRUE;
    }
    if (!node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    node_clear(&n);
    if (r->failed)
        return TRUE;
    /* Section 6.2.3.3: one's own subscriptions, or an owner's. */
    if (!mk_jid_bare_equal(want, r->from) && aff != PS_AFF_OWNER) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    g_autoptr(GPtrArray) subs = load_subs(conn, r, mk_jid_string(want), error);
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
        subid = ((Sub *)subs->pdata[0])->subid;
    }
    gboolean found = FALSE;
    for (guint i = 0; i < subs->len; i++)
        found = found || g_str_equal(((Sub *)subs->pdata[i])->subid, subid);
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

/* Section 6.3: the options of a subscription. The form has one field,
 * pubsub#deliver, always on: delivery is not switched per subscription. */
static gboolean op_options(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, FALSE, &n, &aff, error))
        return FALSE;
    node_clear(&n);
    if (r->failed)
        return TRUE;
    const char *jid = r->jid ? r->jid : mk_jid_string(r->from);
    g_autoptr(MkJid) want = mk_jid_new(jid, NULL);
    if (!want || (!mk_jid_bare_equal(want, r->from) && aff != PS_AFF_OWNER)) {
        ps_req_fail(r, MK_ERR_FORBIDDEN, NULL);
        return TRUE;
    }
    g_autoptr(GPtrArray) subs = load_subs(conn, r, jid, error);
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
    if (r->op == PS_OP_OPTIONS_SET) {
        g_autofree char *deliver = r->form ? ps_form_value(r->form, "pubsub#deliver") : NULL;
        if (deliver && g_strcmp0(deliver, "1") != 0 && g_strcmp0(deliver, "true") != 0) {
            ps_req_fail(r, MK_ERR_BAD_REQUEST, "invalid-options");
        }
        return TRUE;
    }
    r->result = mk_xml_new("pubsub", NS_PUBSUB);
    MkXml *o = mk_xml_add_child(r->result, "options", NULL);
    mk_xml_set_attr(o, "node", r->node);
    mk_xml_set_attr(o, "jid", jid);
    MkXml *x = mk_xml_add_child(o, "x", NS_XDATA);
    mk_xml_set_attr(x, "type", "form");
    MkXml *f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", "FORM_TYPE");
    mk_xml_set_attr(f, "type", "hidden");
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), NS_PUBSUB_SUBOPT, -1);
    f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", "pubsub#deliver");
    mk_xml_set_attr(f, "type", "boolean");
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), "1", -1);
    return TRUE;
}

/* Section 5.6 and 5.7: the requester's own subscriptions/affiliations. */
static gboolean op_own(MkDbConn *conn, PsReq *r, GError **error)
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
static gboolean op_owner_lists(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, TRUE, &n, &aff, error))
        return FALSE;
    node_clear(&n);
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
                    g_autoptr(GPtrArray) had = load_subs(conn, r, mk_jid_string(j), error);
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
static gboolean op_authorize(MkDbConn *conn, PsReq *r, GError **error)
{
    Node n = {0};
    PsAffiliation aff;
    if (!node_and_aff(conn, r, TRUE, &n, &aff, error))
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
    add_note(r, r->jid, FALSE, m);
    return TRUE;
}

static gboolean op_disco(MkDbConn *conn, PsReq *r, GError **error)
{
    const char *service = mk_jid_string(r->service);
    if (r->op == PS_OP_DISCO_ITEMS && !r->node) {
        g_autoptr(MkDbResult) res = mk_db_conn_query(
            conn, error, "SELECT node, config FROM pubsub_nodes WHERE service = ? ORDER BY node",
            MK_DB_STR(service));
        if (!res)
            return FALSE;
        r->result = mk_xml_new("query", NS_DISCO_ITEMS);
        for (guint i = 0; i < mk_db_result_rows(res); i++) {
            g_autoptr(PsConfig) cfg = ps_config_parse(mk_db_result_get_string(res, i, 1), r->pep);
            MkXml *it = mk_xml_add_child(r->result, "item", NULL);
            mk_xml_set_attr(it, "jid", service);
            mk_xml_set_attr(it, "node", mk_db_result_get_string(res, i, 0));
            if (*cfg->title)
                mk_xml_set_attr(it, "name", cfg->title);
        }
        return TRUE;
    }
    Node n = {0};
    if (!load_node(conn, r, r->node, &n, error))
        return FALSE;
    g_autoptr(PsConfig) cfg = g_steal_pointer(&n.cfg);
    if (!cfg) {
        ps_req_fail(r, MK_ERR_ITEM_NOT_FOUND, NULL);
        return TRUE;
    }
    if (r->op == PS_OP_DISCO_ITEMS) {
        /* Section 5.5: the items' ids, for whoever may read them. */
        PsAffiliation aff;
        Access a;
        if (!load_aff(conn, r, mk_jid_string(r->from_bare), &aff, error) ||
            !check_access(conn, r, cfg, aff, FALSE, &a, error))
            return FALSE;
        if (a != ACCESS_OK)
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
        return op_subscribe(conn, r, error);
    case PS_OP_UNSUBSCRIBE:
        return op_unsubscribe(conn, r, error);
    case PS_OP_OPTIONS_GET:
    case PS_OP_OPTIONS_SET:
        return op_options(conn, r, error);
    case PS_OP_SUBSCRIPTIONS:
    case PS_OP_AFFILIATIONS:
        return op_own(conn, r, error);
    case PS_OP_OWNER_SUBSCRIPTIONS:
    case PS_OP_OWNER_SUBSCRIPTIONS_SET:
    case PS_OP_OWNER_AFFILIATIONS:
    case PS_OP_OWNER_AFFILIATIONS_SET:
        return op_owner_lists(conn, r, error);
    case PS_OP_AUTHORIZE:
        return op_authorize(conn, r, error);
    case PS_OP_DISCO_INFO:
    case PS_OP_DISCO_ITEMS:
        return op_disco(conn, r, error);
    case PS_OP_DEFAULT:
        break;
    }
    return TRUE;
}
