/* urn:xmpp:blocking (XEP-0191 section 3): the block list get, block,
 * unblock and unblock-all; pushes to the resources that asked for the
 * list; presence on change.
 *
 * Every request runs through the user's storage queue: the change, then
 * the whole list read back and installed in the cache, so the cache and
 * the table never disagree and changes apply in the order they came. */
#include "blocking.h"

/* ---- who gets pushes --------------------------------------------------- */

/* Session flag: the session asked for the list, so it gets pushes from
 * whatever thread completes a change (XEP-0191 3.3). */
#define BLOCKING_INTERESTED (1u << 0)

/* <block/> or <unblock/> with @jids (MkJid*; none = unblock all) to every
 * resource of @user that asked for the list. Any thread. */
static void push(Blocking *b, MkJid *user, const char *what, GPtrArray *jids)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (!(mk_session_get_flags(s, b->mod) & BLOCKING_INTERESTED))
            continue;
        g_autofree char *id =
            g_strdup_printf("blockpush%u", (guint)g_atomic_int_add(&b->push_id, 1));
        g_autoptr(MkXml) iq = mk_xml_new("iq", NS_CLIENT);
        mk_xml_set_attr(iq, "type", "set");
        mk_xml_set_attr(iq, "id", id);
        MkXml *el = mk_xml_add_child(iq, what, NS_BLOCKING);
        for (guint j = 0; jids && j < jids->len; j++)
            mk_xml_set_attr(mk_xml_add_child(el, "item", NULL), "jid",
                            mk_jid_string(g_ptr_array_index(jids, j)));
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(iq, user, mk_session_jid(s));
        mk_session_send(s, st);
        mk_counter_add(b->pushes, 1);
    }
}

/* From each available resource of @user to @contact: its last presence,
 * or unavailable. Any thread. */
static void send_presence(MkJid *user, MkJid *contact, gboolean available)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (!mk_session_is_available(s))
            continue;
        g_autoptr(MkStanza) last = available ? mk_session_last_presence(s) : NULL;
        g_autoptr(MkXml) unavailable = NULL;
        if (!available) {
            unavailable = mk_xml_new("presence", NS_CLIENT);
            mk_xml_set_attr(unavailable, "type", "unavailable");
        } else if (!last) {
            continue;
        }
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(
            available ? mk_stanza_xml(last) : unavailable, mk_session_jid(s), contact);
        mk_router_send(st);
    }
}

/* ---- operations ------------------------------------------------------------ */

typedef enum {
    OP_GET,
    OP_BLOCK,
    OP_UNBLOCK,
    OP_UNBLOCK_ALL,
} OpKind;

typedef struct {
    Blocking *b;
    MkIq *iq;
    MkJid *user;
    OpKind kind;
    GPtrArray *jids; /* MkJid*: the request's items */
    /* Results. */
    GPtrArray *before;      /* MkJid*: the list before the change */
    GPtrArray *after;       /* MkJid*: the list after it */
    GPtrArray *subscribers; /* MkJid*: roster contacts allowed to see the user's presence */
    gboolean too_many;
} ListOp;

static void list_op_free(gpointer data)
{
    ListOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->user);
    g_clear_pointer(&op->jids, g_ptr_array_unref);
    g_clear_pointer(&op->before, g_ptr_array_unref);
    g_clear_pointer(&op->after, g_ptr_array_unref);
    g_clear_pointer(&op->subscribers, g_ptr_array_unref);
    g_free(op);
}

/* The contacts with a 'from' or 'both' subscription, read from
 * mod_roster's table when mod_roster's schema is there (without it
 * nobody is subscribed). Storage thread. */
static gboolean load_subscribers(MkDbConn *conn, MkJid *user, GPtrArray **out, GError **error)
{
    *out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
    g_autoptr(MkDbResult) have = mk_db_conn_query(
        conn, error, "SELECT 1 FROM meerkat_schema WHERE component = ?", MK_DB_STR("mod_roster"));
    if (!have)
        return FALSE;
    if (mk_db_result_rows(have) == 0)
        return TRUE;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error,
                         "SELECT contact FROM roster_items WHERE username = ? AND domain = ?"
                         " AND subscription IN ('from', 'both')",
                         MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        MkJid *jid = mk_jid_new(mk_db_result_get_string(res, i, 0), NULL);
        if (jid)
            g_ptr_array_add(*out, jid);
    }
    return TRUE;
}

static gboolean list_work(MkDbConn *conn, gpointer data, GError **error)
{
    ListOp *op = data;
    const char *node = mk_jid_node(op->user), *domain = mk_jid_domain(op->user);

    if (op->kind == OP_GET)
        return blocking_db_load(conn, op->user, &op->after, error);
    if (!blocking_db_load(conn, op->user, &op->before, error))
        return FALSE;
    for (guint i = 0; op->kind != OP_UNBLOCK_ALL && i < op->jids->len; i++) {
        const char *jid = mk_jid_string(g_ptr_array_index(op->jids, i));
        g_autoptr(MkDbResult) r =
            op->kind == OP_BLOCK
                ? mk_db_conn_query(conn, error,
                                   "INSERT INTO blocking_items (username, domain, jid)"
                                   " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(jid))
                : mk_db_conn_query(
                      conn, error,
                      "DELETE FROM blocking_items WHERE username = ? AND domain = ? AND jid = ?",
                      MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(jid));
        if (!r)
            return FALSE;
    }
    if (op->kind == OP_UNBLOCK_ALL) {
        g_autoptr(MkDbResult) r = mk_db_conn_query(
            conn, error, "DELETE FROM blocking_items WHERE username = ? AND domain = ?",
            MK_DB_STR(node), MK_DB_STR(domain));
        if (!r)
            return FALSE;
    }
    if (!blocking_db_load(conn, op->user, &op->after, error))
        return FALSE;
    gint64 max = op->b->max_items;
    if (max > 0 && op->after->len > op->before->len && op->after->len > (guint)max) {
        op->too_many = TRUE;
        g_set_error_literal(error, g_quark_from_static_string("mod-blocking"), 0, "too many items");
        return FALSE; /* rolled back */
    }
    return load_subscribers(conn, op->user, &op->subscribers, error);
}

static void list_done(const GError *error, gpointer data)
{
    ListOp *op = data;
    Blocking *b = op->b;
    if (op->too_many) {
        mk_iq_reply_error(op->iq, MK_ERR_RESOURCE_CONSTRAINT, "the block list is full");
        return;
    }
    if (error) {
        g_warning("mod_blocking: the block list of %s: %s", mk_jid_string(op->user),
                  error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->kind == OP_GET) {
        g_autoptr(MkXml) list = mk_xml_new("blocklist", NS_BLOCKING);
        for (guint i = 0; i < op->after->len; i++)
            mk_xml_set_attr(mk_xml_add_child(list, "item", NULL), "jid",
                            mk_jid_string(g_ptr_array_index(op->after, i)));
        mk_user_cache_set(b->cache, mk_jid_string(op->user), g_steal_pointer(&op->after));
        mk_iq_reply(op->iq, g_steal_pointer(&list));
        return;
    }

    GPtrArray *before = op->before, *after = op->after, *subs = op->subscribers;
    if (op->kind == OP_BLOCK) {
        /* XEP-0191 3.3: a subscriber that becomes blocked sees the user go
         * offline; sent while the cache still lets it through. */
        for (guint i = 0; i < subs->len; i++) {
            MkJid *c = g_ptr_array_index(subs, i);
            if (blocking_list_matches(after, c) && !blocking_list_matches(before, c))
                send_presence(op->user, c, FALSE);
        }
        mk_user_cache_set(b->cache, mk_jid_string(op->user), g_ptr_array_ref(after));
    } else {
        /* XEP-0191 3.4: and its current presence when unblocked. */
        mk_user_cache_set(b->cache, mk_jid_string(op->user), g_ptr_array_ref(after));
        for (guint i = 0; i < subs->len; i++) {
            MkJid *c = g_ptr_array_index(subs, i);
            if (blocking_list_matches(before, c) && !blocking_list_matches(after, c))
                send_presence(op->user, c, TRUE);
        }
    }
    mk_iq_reply(op->iq, NULL);
    push(b, op->user, op->kind == OP_BLOCK ? "block" : "unblock",
         op->kind == OP_UNBLOCK_ALL ? NULL : op->jids);
}

static void queue_op(Blocking *b, MkIq *iq, MkJid *user, OpKind kind, GPtrArray *jids)
{
    ListOp *op = g_new0(ListOp, 1);
    op->b = b;
    op->iq = mk_iq_ref(iq);
    op->user = mk_jid_ref(user);
    op->kind = kind;
    op->jids = jids;
    mk_user_queue_push(b->queue, mk_jid_string(user), list_work, list_done, op, list_op_free);
}

/* ---- handlers -------------------------------------------------------------- */

static MkResult on_get(MkIq *iq, gpointer user_data)
{
    Blocking *b = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    if (!mk_xml_is(mk_iq_payload(iq), "blocklist", NS_BLOCKING)) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    /* XEP-0191 3.3: pushes go to the resources that asked for the list. */
    MkSession *s = mk_iq_session(iq);
    if (s)
        mk_session_set_flags(s, b->mod, BLOCKING_INTERESTED, BLOCKING_INTERESTED);
    queue_op(b, iq, user, OP_GET, NULL);
    return MK_HANDLED;
}

/* The <item jid=''/> of @el, prepared and without duplicates: (transfer
 * full), or NULL with the error to answer in @cond. */
static GPtrArray *parse_items(MkXml *el, MkStanzaError *cond)
{
    g_autoptr(GPtrArray) jids = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *item = mk_xml_child_at(el, i);
        if (mk_xml_is_text(item) || !mk_xml_is(item, "item", NS_BLOCKING))
            continue;
        const char *text = mk_xml_get_attr(item, "jid");
        if (!text) {
            *cond = MK_ERR_BAD_REQUEST;
            return NULL;
        }
        MkJid *jid = mk_jid_new(text, NULL);
        if (!jid) {
            *cond = MK_ERR_JID_MALFORMED;
            return NULL;
        }
        gboolean dup = FALSE;
        for (guint j = 0; j < jids->len && !dup; j++)
            dup = mk_jid_equal(g_ptr_array_index(jids, j), jid);
        if (dup)
            mk_jid_unref(jid);
        else
            g_ptr_array_add(jids, jid);
    }
    return g_steal_pointer(&jids);
}

static MkResult on_set(MkIq *iq, gpointer user_data)
{
    Blocking *b = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    MkXml *el = mk_iq_payload(iq);
    gboolean block = mk_xml_is(el, "block", NS_BLOCKING);
    if (!block && !mk_xml_is(el, "unblock", NS_BLOCKING)) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    MkStanzaError cond = MK_ERR_BAD_REQUEST;
    GPtrArray *jids = parse_items(el, &cond);
    if (!jids) {
        mk_iq_reply_error(iq, cond, NULL);
        return MK_HANDLED;
    }
    if (block && jids->len == 0) {
        /* XEP-0191 3.3: a block needs at least one item. */
        g_ptr_array_unref(jids);
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    OpKind kind = block ? OP_BLOCK : jids->len ? OP_UNBLOCK : OP_UNBLOCK_ALL;
    queue_op(b, iq, user, kind, jids);
    return MK_HANDLED;
}

gboolean blocking_iq_start(Blocking *b, GError **error)
{
    return mk_iq_register(b->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_BLOCKING, on_get, b, error) &&
           mk_iq_register(b->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_BLOCKING, on_set, b, error);
}
