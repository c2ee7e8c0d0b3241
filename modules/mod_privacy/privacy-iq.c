/* jabber:iq:privacy get and set (XEP-0016 2.3-2.8): list names with the
 * active and default ones, one list, the active list of the session, the
 * default list, list edits and removal, with the XEP's errors, and
 * "privacy list pushes" to every resource on change.
 *
 * Changes run through the user's storage queue: the checks that need
 * stored data, the change, then the whole state read back and installed
 * in the cache, in the order the requests came. */
#include "privacy.h"

#include <stdlib.h>
#include <string.h>

/* Child elements of @el, text skipped. */
static guint element_count(MkXml *el, MkXml **first)
{
    guint n = 0;
    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *c = mk_xml_child_at(el, i);
        if (mk_xml_is_text(c))
            continue;
        if (n++ == 0 && first)
            *first = c;
    }
    return n;
}

/* "Privacy list push" of @name to every resource of @user (2.2 rule 10). */
static void push(Privacy *p, MkJid *user, const char *name)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        g_autofree char *id =
            g_strdup_printf("privpush%u", (guint)g_atomic_int_add(&p->push_id, 1));
        g_autoptr(MkXml) iq = mk_xml_new("iq", NS_CLIENT);
        mk_xml_set_attr(iq, "type", "set");
        mk_xml_set_attr(iq, "id", id);
        MkXml *query = mk_xml_add_child(iq, "query", NS_PRIVACY);
        mk_xml_set_attr(mk_xml_add_child(query, "list", NULL), "name", name);
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(iq, user, mk_session_jid(s));
        mk_session_send(s, st);
        mk_counter_add(p->pushes, 1);
    }
}

/* TRUE when list @name applies to a session of @user other than @self:
 * as its active list, or as the default of a session without one.
 * Any thread (storage thread here). */
static gboolean in_use_by_others(Privacy *p, MkJid *user, MkSession *self, const char *name,
                                 const char *default_name)
{
    if (!name)
        return FALSE;
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (s == self)
            continue;
        g_autofree char *active = priv_active_get(p, s);
        const char *applies = active ? active : default_name;
        if (g_strcmp0(applies, name) == 0)
            return TRUE;
    }
    return FALSE;
}

/* ---- operations ------------------------------------------------------------ */

typedef enum {
    OP_GET_NAMES,
    OP_GET_LIST,
    OP_ACTIVE,
    OP_DEFAULT,
    OP_EDIT,
    OP_REMOVE,
} OpKind;

typedef struct {
    Privacy *p;
    MkIq *iq;
    MkJid *user;
    MkSession *session; /* nullable, ref: the sender */
    OpKind kind;
    char *name;        /* nullable: declining active/default */
    GPtrArray *items;  /* OP_EDIT: PrivItem* sorted by order */
    PrivState *cached; /* nullable, ref: the cached state when queued */
    /* Results. */
    PrivState *st; /* after the change */
    MkStanzaError fail;
    gboolean failed;
} Op;

static void op_free(gpointer data)
{
    Op *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->user);
    if (op->session)
        mk_session_unref(op->session);
    g_free(op->name);
    if (op->items)
        g_ptr_array_unref(op->items);
    priv_state_unref(op->st);
    priv_state_unref(op->cached);
    g_free(op);
}

/* Ends the work with a protocol error: nothing is written. */
static gboolean refuse(Op *op, MkStanzaError cond)
{
    op->failed = TRUE;
    op->fail = cond;
    return TRUE;
}

static gboolean op_work(MkDbConn *conn, gpointer data, GError **error)
{
    Op *op = data;
    Privacy *p = op->p;
    /* The roster of the cached state is shared while mod_roster's
     * version of it is unchanged; otherwise it is read here. */
    g_autoptr(PrivState) before = NULL;
    if (!priv_db_load_lists(conn, op->user, op->cached, &before, error))
        return FALSE;

    switch (op->kind) {
    case OP_GET_NAMES:
    case OP_ACTIVE:
        op->st = g_steal_pointer(&before);
        return TRUE;
    case OP_GET_LIST:
        if (!g_hash_table_contains(before->lists, op->name))
            return refuse(op, MK_ERR_ITEM_NOT_FOUND);
        op->st = g_steal_pointer(&before);
        return TRUE;
    case OP_DEFAULT:
        if (op->name && !g_hash_table_contains(before->lists, op->name))
            return refuse(op, MK_ERR_ITEM_NOT_FOUND);
        /* 2.5: the default in use by another resource stays. */
        if (g_strcmp0(op->name, before->default_name) != 0 &&
            in_use_by_others(p, op->user, op->session, before->default_name, before->default_name))
            return refuse(op, MK_ERR_CONFLICT);
        if (!priv_db_set_default(conn, op->user, op->name, error))
            return FALSE;
        break;
    case OP_REMOVE:
        if (!g_hash_table_contains(before->lists, op->name))
            return refuse(op, MK_ERR_ITEM_NOT_FOUND);
        /* 2.8: a list that applies to another resource stays. */
        if (in_use_by_others(p, op->user, op->session, op->name, before->default_name))
            return refuse(op, MK_ERR_CONFLICT);
        if (!priv_db_delete_list(conn, op->user, op->name, error))
            return FALSE;
        break;
    case OP_EDIT:
        for (guint i = 0; i < op->items->len; i++) {
            PrivItem *it = g_ptr_array_index(op->items, i);
            /* 2.1: a group that is not in the roster is item-not-found. */
            if (it->type == PRIV_TYPE_GROUP && !g_hash_table_contains(before->groups, it->value))
                return refuse(op, MK_ERR_ITEM_NOT_FOUND);
        }
        if (p->max_lists > 0 && !g_hash_table_contains(before->lists, op->name) &&
            g_hash_table_size(before->lists) >= (guint)p->max_lists) {
            mk_counter_add(p->limit_refusals, 1);
            return refuse(op, MK_ERR_RESOURCE_CONSTRAINT);
        }
        if (!priv_db_save_list(conn, op->user, op->name, op->items, error))
            return FALSE;
        break;
    }
    /* Only the lists changed: the roster read (or shared) above stands. */
    return priv_db_load_lists(conn, op->user, before, &op->st, error);
}

static MkXml *list_xml(const PrivList *l)
{
    static const struct {
        guint bit;
        const char *name;
    } kinds[] = {{PRIV_IQ, "iq"},
                 {PRIV_MESSAGE, "message"},
                 {PRIV_PRESENCE_IN, "presence-in"},
                 {PRIV_PRESENCE_OUT, "presence-out"}};
    MkXml *el = mk_xml_new("list", NULL);
    mk_xml_set_attr(el, "name", l->name);
    for (guint i = 0; i < l->items->len; i++) {
        const PrivItem *it = g_ptr_array_index(l->items, i);
        MkXml *x = mk_xml_add_child(el, "item", NULL);
        static const char *const types[] = {NULL, "jid", "group", "subscription"};
        if (it->type != PRIV_TYPE_NONE) {
            mk_xml_set_attr(x, "type", types[it->type]);
            mk_xml_set_attr(x, "value", it->value);
        }
        mk_xml_set_attr(x, "action", it->allow ? "allow" : "deny");
        g_autofree char *order = g_strdup_printf("%u", it->order);
        mk_xml_set_attr(x, "order", order);
        for (guint k = 0; k < G_N_ELEMENTS(kinds); k++)
            if (it->kinds & kinds[k].bit)
                mk_xml_add_child(x, kinds[k].name, NULL);
    }
    return el;
}

/* ---- presence when a list starts or stops denying presence-out ------------ */

typedef struct {
    MkSession *s;
    const PrivList *before, *after;
} Applies;

/* The list each available session of @user applies before and after the
 * change @op makes (@old and @new states; active lists as they will be). */
static GArray *lists_around(Privacy *p, Op *op, PrivState *old, PrivState *new, GPtrArray *sessions)
{
    GArray *out = g_array_new(FALSE, TRUE, sizeof(Applies));
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (!mk_session_is_available(s))
            continue;
        g_autofree char *active = priv_active_get(p, s);
        const char *next = active;
        if (s == op->session && op->kind == OP_ACTIVE)
            next = op->name;
        else if (s == op->session && op->kind == OP_REMOVE && g_strcmp0(active, op->name) == 0)
            next = NULL;
        const char *bname = active ? active : old->default_name;
        const char *aname = next ? next : new->default_name;
        Applies a = {s, bname ? g_hash_table_lookup(old->lists, bname) : NULL,
                     aname ? g_hash_table_lookup(new->lists, aname) : NULL};
        g_array_append_val(out, a);
    }
    return out;
}

/* TRUE when an item of @l can deny presence-out: otherwise the list
 * changes nothing a subscriber sees, and its roster need not be walked. */
static gboolean covers_presence_out(const PrivList *l)
{
    for (guint i = 0; l && i < l->items->len; i++) {
        const PrivItem *it = g_ptr_array_index(l->items, i);
        if (it->kinds == 0 || (it->kinds & PRIV_PRESENCE_OUT))
            return TRUE;
    }
    return FALSE;
}

static gboolean presence_out_allowed(const PrivList *l, const char *contact, PrivContact *c)
{
    if (!l)
        return TRUE;
    /* Roster contacts are prepared bare JIDs already: split, do not
     * prepare again (stringprep per contact was most of the worker's
     * time on a large roster). A node is at most 1023 bytes. */
    char node[1024];
    const char *at = strchr(contact, '@');
    if (at && (gsize)(at - contact) >= sizeof node)
        return TRUE;
    if (at) {
        memcpy(node, contact, (gsize)(at - contact));
        node[at - contact] = '\0';
    }
    PrivPeer peer = {at ? node : NULL, at ? at + 1 : contact, NULL, c->sub,
                     (const char *const *)c->groups};
    return priv_items_allow(l->items, PRIV_PRESENCE_OUT, &peer);
}

/* XEP-0016 2.10: a subscriber the list stops showing presence to gets
 * unavailable (sent before the new list is installed, or the filter would
 * drop it); one it starts showing presence to again gets the current
 * presence (after). @hide selects the pass. Any thread. */
static void presence_transitions(GArray *applies, PrivState *new, gboolean hide)
{
    GHashTableIter it;
    gpointer k, v;
    for (guint i = 0; i < applies->len; i++) {
        Applies *a = &g_array_index(applies, Applies, i);
        if (a->before == a->after ||
            (!covers_presence_out(a->before) && !covers_presence_out(a->after)))
            continue;
        g_hash_table_iter_init(&it, new->roster);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            PrivContact *c = v;
            if (!(c->sub & PRIV_SUB_FROM))
                continue;
            gboolean was = presence_out_allowed(a->before, k, c);
            gboolean is = presence_out_allowed(a->after, k, c);
            if (was == is || is == hide)
                continue;
            g_autoptr(MkJid) contact = mk_jid_new(k, NULL);
            g_autoptr(MkStanza) last = hide ? NULL : mk_session_last_presence(a->s);
            g_autoptr(MkXml) xml = NULL;
            if (hide) {
                xml = mk_xml_new("presence", NS_CLIENT);
                mk_xml_set_attr(xml, "type", "unavailable");
            } else if (!last) {
                continue;
            }
            g_autoptr(MkStanza) st = mk_stanza_new_addressed(hide ? xml : mk_stanza_xml(last),
                                                             mk_session_jid(a->s), contact);
            mk_router_send(st);
        }
    }
}

/* TRUE when @s is among @sessions: a session that ended while its request
 * was in the queue must not leave an active list behind (the map does not
 * hold a reference, and session_closed ran already). */
static gboolean still_bound(GPtrArray *sessions, MkSession *s)
{
    for (guint i = 0; s && i < sessions->len; i++)
        if (g_ptr_array_index(sessions, i) == s)
            return TRUE;
    return FALSE;
}

static void op_done(const GError *error, gpointer data)
{
    Op *op = data;
    Privacy *p = op->p;
    if (error) {
        g_warning("mod_privacy: the lists of %s: %s", mk_jid_string(op->user), error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->failed) {
        mk_iq_reply_error(op->iq, op->fail, NULL);
        return;
    }
    PrivState *st = op->st;
    if (op->kind == OP_ACTIVE && op->name && !g_hash_table_contains(st->lists, op->name)) {
        mk_iq_reply_error(op->iq, MK_ERR_ITEM_NOT_FOUND, NULL);
        return;
    }
    /* What each session applies changes now: tell the subscribers that
     * stop or start seeing its presence. */
    g_autoptr(PrivState) old = priv_cache_get(p, op->user, NULL);
    g_autoptr(GPtrArray) sessions = mk_session_list(op->user);
    g_autoptr(GArray) applies = NULL;
    if (old && op->kind != OP_GET_NAMES && op->kind != OP_GET_LIST) {
        applies = lists_around(p, op, old, st, sessions);
        presence_transitions(applies, st, TRUE);
    }
    mk_user_cache_set(p->cache, mk_jid_string(op->user), priv_state_ref(st));
    if (op->kind == OP_ACTIVE && still_bound(sessions, op->session))
        priv_active_set(p, op->session, op->name); /* 2.4: before the result */
    if (op->kind == OP_REMOVE && op->session) {
        g_autofree char *active = priv_active_get(p, op->session);
        if (g_strcmp0(active, op->name) == 0)
            priv_active_set(p, op->session, NULL);
    }
    if (applies)
        presence_transitions(applies, st, FALSE);

    switch (op->kind) {
    case OP_GET_NAMES: {
        g_autoptr(MkXml) query = mk_xml_new("query", NS_PRIVACY);
        g_autofree char *active = op->session ? priv_active_get(p, op->session) : NULL;
        if (active)
            mk_xml_set_attr(mk_xml_add_child(query, "active", NULL), "name", active);
        if (st->default_name)
            mk_xml_set_attr(mk_xml_add_child(query, "default", NULL), "name", st->default_name);
        g_autofree const char **names =
            (const char **)g_hash_table_get_keys_as_array(st->lists, NULL);
        for (guint i = 0; names[i]; i++)
            mk_xml_set_attr(mk_xml_add_child(query, "list", NULL), "name", names[i]);
        mk_iq_reply(op->iq, g_steal_pointer(&query));
        return;
    }
    case OP_GET_LIST: {
        g_autoptr(MkXml) query = mk_xml_new("query", NS_PRIVACY);
        mk_xml_append(query, list_xml(g_hash_table_lookup(st->lists, op->name)));
        mk_iq_reply(op->iq, g_steal_pointer(&query));
        return;
    }
    case OP_ACTIVE:
        mk_iq_reply(op->iq, NULL);
        return;
    case OP_DEFAULT:
        mk_iq_reply(op->iq, NULL);
        return;
    case OP_REMOVE:
        mk_iq_reply(op->iq, NULL);
        push(p, op->user, op->name);
        return;
    case OP_EDIT:
        mk_iq_reply(op->iq, NULL);
        push(p, op->user, op->name);
        return;
    }
}

static MkResult queue_op(Privacy *p, MkIq *iq, MkJid *user, OpKind kind, const char *name,
                         GPtrArray *items)
{
    Op *op = g_new0(Op, 1);
    op->p = p;
    op->iq = mk_iq_ref(iq);
    op->user = mk_jid_ref(user);
    MkSession *s = mk_iq_session(iq);
    op->session = s ? mk_session_ref(s) : NULL;
    op->kind = kind;
    op->name = g_strdup(name);
    op->items = items;
    op->cached = priv_cache_get(p, user, NULL); /* (nullable) its roster may serve */
    if (kind == OP_GET_NAMES || kind == OP_GET_LIST || kind == OP_ACTIVE)
        mk_user_queue_push_reads(p->queue, mk_jid_string(user), op_work, op_done, op, op_free);
    else
        mk_user_queue_push(p->queue, mk_jid_string(user), op_work, op_done, op, op_free);
    return MK_HANDLED;
}

/* ---- parsing an edit -------------------------------------------------------- */

static gint by_order(gconstpointer a, gconstpointer b)
{
    const PrivItem *x = *(PrivItem *const *)a, *y = *(PrivItem *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One <item/>, or NULL when it breaks 2.1 (bad-request). */
static PrivItem *parse_item(MkXml *el)
{
    const char *type = mk_xml_get_attr(el, "type");
    const char *value = mk_xml_get_attr(el, "value");
    const char *action = mk_xml_get_attr(el, "action");
    const char *order = mk_xml_get_attr(el, "order");
    if (!action || !order || !*order)
        return NULL;
    char *end;
    guint64 ord = g_ascii_strtoull(order, &end, 10);
    if (*end || *order == '-' || ord > G_MAXUINT32)
        return NULL;

    g_autoptr(PrivItem) it = g_new0(PrivItem, 1);
    it->order = (guint32)ord;
    if (g_str_equal(action, "allow"))
        it->allow = TRUE;
    else if (!g_str_equal(action, "deny"))
        return NULL;

    if (!type) {
        it->type = PRIV_TYPE_NONE;
    } else if (g_str_equal(type, "jid")) {
        g_autoptr(MkJid) jid = value ? mk_jid_new(value, NULL) : NULL;
        if (!jid)
            return NULL;
        it->type = PRIV_TYPE_JID;
        it->value = g_strdup(mk_jid_string(jid));
        it->node = g_strdup(mk_jid_node(jid));
        it->domain = g_strdup(mk_jid_domain(jid));
        it->res = g_strdup(mk_jid_resource(jid));
    } else if (g_str_equal(type, "group")) {
        if (!value || !*value)
            return NULL;
        it->type = PRIV_TYPE_GROUP;
        it->value = g_strdup(value);
    } else if (g_str_equal(type, "subscription")) {
        int sub = priv_sub_parse(value);
        if (sub < 0)
            return NULL;
        it->type = PRIV_TYPE_SUBSCRIPTION;
        it->value = g_strdup(value);
        it->sub = (guint)sub;
    } else {
        return NULL;
    }

    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *c = mk_xml_child_at(el, i);
        if (mk_xml_is_text(c))
            continue;
        if (mk_xml_is(c, "message", NS_PRIVACY))
            it->kinds |= PRIV_MESSAGE;
        else if (mk_xml_is(c, "iq", NS_PRIVACY))
            it->kinds |= PRIV_IQ;
        else if (mk_xml_is(c, "presence-in", NS_PRIVACY))
            it->kinds |= PRIV_PRESENCE_IN;
        else if (mk_xml_is(c, "presence-out", NS_PRIVACY))
            it->kinds |= PRIV_PRESENCE_OUT;
        else
            return NULL;
    }
    return g_steal_pointer(&it);
}

/* The items of @list sorted by order, or NULL (bad-request) when one is
 * invalid or two share an order. */
static GPtrArray *parse_items(MkXml *list, guint max)
{
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func((GDestroyNotify)priv_item_free);
    for (guint i = 0; i < mk_xml_child_count(list); i++) {
        MkXml *c = mk_xml_child_at(list, i);
        if (mk_xml_is_text(c))
            continue;
        PrivItem *it = mk_xml_is(c, "item", NS_PRIVACY) ? parse_item(c) : NULL;
        if (!it)
            return NULL;
        g_ptr_array_add(items, it);
    }
    if (max && items->len > max)
        return NULL;
    g_ptr_array_sort(items, by_order);
    for (guint i = 1; i < items->len; i++)
        if (((PrivItem *)g_ptr_array_index(items, i))->order ==
            ((PrivItem *)g_ptr_array_index(items, i - 1))->order)
            return NULL;
    return g_steal_pointer(&items);
}

/* ---- handlers ---------------------------------------------------------------- */

static MkResult on_get(MkIq *iq, gpointer user_data)
{
    Privacy *p = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    MkXml *query = mk_iq_payload(iq), *first = NULL;
    if (!mk_xml_is(query, "query", NS_PRIVACY)) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    guint n = element_count(query, &first);
    if (n == 0)
        return queue_op(p, iq, user, OP_GET_NAMES, NULL, NULL);
    /* 2.3: one list at a time. */
    const char *name = first ? mk_xml_get_attr(first, "name") : NULL;
    if (n > 1 || !mk_xml_is(first, "list", NS_PRIVACY) || !name) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    return queue_op(p, iq, user, OP_GET_LIST, name, NULL);
}

static MkResult on_set(MkIq *iq, gpointer user_data)
{
    Privacy *p = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    MkXml *query = mk_iq_payload(iq), *el = NULL;
    /* 2.1: exactly one of <active/>, <default/>, <list/>. */
    if (!mk_xml_is(query, "query", NS_PRIVACY) || element_count(query, &el) != 1) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    const char *name = mk_xml_get_attr(el, "name");
    if (mk_xml_is(el, "active", NS_PRIVACY)) {
        MkSession *s = mk_iq_session(iq);
        if (!s) {
            mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
            return MK_HANDLED;
        }
        /* Without a name: declines any active list. */
        return queue_op(p, iq, user, OP_ACTIVE, name, NULL);
    }
    if (mk_xml_is(el, "default", NS_PRIVACY))
        return queue_op(p, iq, user, OP_DEFAULT, name, NULL);
    if (!mk_xml_is(el, "list", NS_PRIVACY) || !name || !*name) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    if (element_count(el, NULL) == 0)
        return queue_op(p, iq, user, OP_REMOVE, name, NULL);
    if (p->max_items > 0 && element_count(el, NULL) > (guint)p->max_items)
        mk_counter_add(p->limit_refusals, 1); /* parse_items refuses it */
    GPtrArray *items = parse_items(el, (guint)p->max_items);
    if (!items) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    return queue_op(p, iq, user, OP_EDIT, name, items);
}

gboolean priv_iq_start(Privacy *p, GError **error)
{
    return mk_iq_register(p->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_PRIVACY, on_get, p, error) &&
           mk_iq_register(p->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_PRIVACY, on_set, p, error);
}
