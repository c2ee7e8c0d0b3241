/* Presence that depends on the roster (RFC 6121 sections 3 and 4):
 *
 *  - subscription stanzas a user sends (user_send_packet): update the
 *    user's item, push it, stamp the bare JID and route;
 *  - subscription stanzas and probes arriving for a local account
 *    (presence_in): update the account's item, then deliver, answer or
 *    drop as Appendix A prescribes; answer probes of subscribers;
 *  - broadcast presence (presence_broadcast): to every subscriber, and on
 *    initial presence probes to every contact the user is subscribed to
 *    and the redelivery of requests that waited for the user.
 *
 * Every change runs through the user's queue (mk_user_queue_push) so
 * that one user's presence and roster changes keep their order; what
 * only reads (probes, broadcasts) without the write lock
 * (mk_user_queue_push_reads). */
#include "roster.h"

#define HOOK_PRIORITY 50

/* ---- subscription stanzas, both directions -------------------------------- */

typedef struct {
    Roster *r;
    gboolean inbound;
    RosterPresType type;
    MkJid *user;       /* bare: the local account whose row changes */
    MkJid *contact;    /* bare */
    MkStanza *stanza;  /* stamped bare -> bare */
    char *pending_xml; /* inbound subscribe: the stanza to keep */
    /* Results. */
    gboolean no_user;
    guint actions;
    gboolean changed;
    RosterItem *item;
    gint64 ver;
    const char *refusal; /* a cap refused the row (roster-limits.c) */
} SubOp;

static void sub_op_free(gpointer data)
{
    SubOp *op = data;
    roster_write_end(op->r, op->user); /* its transaction is over */
    mk_jid_unref(op->user);
    mk_jid_unref(op->contact);
    mk_stanza_unref(op->stanza);
    g_free(op->pending_xml);
    roster_item_free(op->item);
    g_free(op);
}

static gboolean sub_work(MkDbConn *conn, gpointer data, GError **error)
{
    SubOp *op = data;
    if (op->inbound) {
        gboolean exists = FALSE;
        if (!roster_db_user_exists(conn, op->user, &exists, error))
            return FALSE;
        if (!exists) {
            op->no_user = TRUE;
            return TRUE;
        }
    }
    if (!roster_db_load_item(conn, op->user, mk_jid_string(op->contact), &op->item, error))
        return FALSE;
    gint64 before_cost = op->item ? roster_item_cost(op->item) : -1;
    if (!op->item)
        op->item = roster_item_new(mk_jid_string(op->contact));

    RosterState before = op->item->st;
    gboolean had_pending = before.pending_in;
    op->actions = op->inbound ? roster_sm_inbound(op->type, &op->item->st)
                              : roster_sm_outbound(op->type, &op->item->st);
    if (op->actions & ROSTER_ACT_STORE_PENDING) {
        g_free(op->item->pending_xml);
        op->item->pending_xml = g_strdup(op->pending_xml);
    }
    if (!op->item->st.pending_in)
        g_clear_pointer(&op->item->pending_xml, g_free);

    /* A new row, or a request kept with the row: within the caps? */
    if ((before_cost < 0 || (op->actions & ROSTER_ACT_STORE_PENDING)) &&
        (op->item->st.in_roster || op->item->st.pending_in)) {
        if (!roster_limits_allow(op->r, conn, op->user, before_cost, op->item, &op->refusal, error))
            return FALSE;
        if (op->refusal) {
            op->actions = 0;
            return TRUE;
        }
    }
    op->changed = !roster_state_visible_equal(&before, &op->item->st);
    if (!op->changed && had_pending == op->item->st.pending_in &&
        !(op->actions & ROSTER_ACT_STORE_PENDING))
        return TRUE; /* nothing to write */
    if (!roster_db_save_item(conn, op->user, op->item, FALSE, error))
        return FALSE;
    return !op->changed || roster_db_bump_version(conn, op->user, &op->ver, error);
}

/* The available presence an approval owes the new subscriber goes out
 * after the subscribed stanza, which RFC 6121 3.1.5/3.1.6 has the
 * subscriber's server deliver, with a roster push, first. When the
 * subscriber is an account of this instance, the stanza just routed
 * queued its op under the subscriber's key (presence_in), so the
 * presence waits behind that op in the same queue. */
typedef struct {
    Roster *r;
    MkJid *user;    /* bare: whose presence */
    MkJid *contact; /* bare: the new subscriber */
} FollowOp;

static void follow_op_free(gpointer data)
{
    FollowOp *op = data;
    mk_jid_unref(op->user);
    mk_jid_unref(op->contact);
    g_free(op);
}

static gboolean follow_work(MkDbConn *conn, gpointer data, GError **error)
{
    return TRUE; /* only the place in the contact's queue matters */
}

static void follow_done(const GError *error, gpointer data)
{
    FollowOp *op = data;
    roster_send_presence_to(op->user, op->contact);
}

static void send_presence_after(SubOp *op)
{
    if (!mk_module_serves_domain(op->r->mod, mk_jid_domain(op->contact))) {
        roster_send_presence_to(op->user, op->contact);
        return;
    }
    FollowOp *f = g_new0(FollowOp, 1);
    f->r = op->r;
    f->user = mk_jid_ref(op->user);
    f->contact = mk_jid_ref(op->contact);
    mk_user_queue_push_reads(op->r->queue, mk_jid_string(op->contact), follow_work, follow_done, f,
                             follow_op_free);
}

/* A cap kept the row from being stored: the sender of the stanza learns
 * why (policy-violation). The user's own request is answered to each of
 * its resources, since a presence error to a bare JID is not delivered. */
static void refuse_subscription(SubOp *op)
{
    g_autoptr(MkStanza) err =
        mk_stanza_new_error_reply(op->stanza, MK_ERR_POLICY_VIOLATION, op->refusal);
    if (!err)
        return;
    if (op->inbound) {
        mk_router_send(err);
        return;
    }
    g_autoptr(GPtrArray) sessions = mk_session_list(op->user);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        g_autoptr(MkStanza) st =
            mk_stanza_new_addressed(mk_stanza_xml(err), op->contact, mk_session_jid(s));
        mk_session_send(s, st);
    }
}

static void sub_done(const GError *error, gpointer data)
{
    SubOp *op = data;
    if (error) {
        g_warning("mod_roster: subscription %s between %s and %s: %s", mk_stanza_type(op->stanza),
                  mk_jid_string(op->user), mk_jid_string(op->contact), error->message);
        return;
    }
    if (op->no_user) {
        /* RFC 6121 3.1.3: a request to an account that does not exist is
         * declined. */
        if (op->type == ROSTER_SUBSCRIBE)
            roster_route_presence("unsubscribed", op->user, op->contact);
        return;
    }
    if (op->refusal) {
        refuse_subscription(op);
        return;
    }
    /* RFC 6121 3.2.2: unavailable while the contact is still subscribed,
     * before the unsubscribed that its op delivers later. */
    if (op->actions & ROSTER_ACT_SEND_UNAVAILABLE)
        roster_send_unavailable_to(op->user, op->contact);
    if (op->actions & ROSTER_ACT_FORWARD) {
        if (op->inbound)
            mk_router_send_to_account(op->stanza);
        else
            mk_router_send(op->stanza);
    }
    if (op->actions & ROSTER_ACT_REPLY_SUBSCRIBED)
        roster_route_presence("subscribed", op->user, op->contact);
    if (op->changed)
        roster_push(op->r, op->user, op->item, FALSE, op->ver);
    if (op->actions & ROSTER_ACT_SEND_PRESENCE)
        send_presence_after(op);
}

static void queue_subscription(Roster *r, gboolean inbound, RosterPresType type, MkJid *user,
                               MkJid *contact, MkStanza *st)
{
    SubOp *op = g_new0(SubOp, 1);
    op->r = r;
    op->inbound = inbound;
    op->type = type;
    op->user = mk_jid_bare(user);
    op->contact = mk_jid_bare(contact);
    /* Subscription stanzas travel between bare JIDs (RFC 6121 3.1.2). */
    MkJid *from = inbound ? op->contact : op->user;
    MkJid *to = inbound ? op->user : op->contact;
    op->stanza = mk_stanza_new_addressed(mk_stanza_xml(st), from, to);
    if (inbound && type == ROSTER_SUBSCRIBE)
        op->pending_xml = mk_xml_to_string(mk_stanza_xml(op->stanza), NULL);
    mk_counter_add(r->subscriptions, 1);
    roster_write_begin(r, op->user);
    mk_user_queue_push(r->queue, mk_jid_string(op->user), sub_work, sub_done, op, sub_op_free);
}

void roster_user_subscription(Roster *r, MkJid *user, MkJid *contact, RosterPresType type)
{
    static const char *const names[] = {"subscribe", "subscribed", "unsubscribe", "unsubscribed"};
    g_autoptr(MkXml) xml = mk_xml_new("presence", NS_CLIENT);
    mk_xml_set_attr(xml, "type", names[type]);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, user, contact);
    if (mk_jid_bare_equal(user, contact))
        return;
    queue_subscription(r, FALSE, type, user, contact, st);
}

/* user_send_packet: a subscription stanza from a local user. */
static MkResult on_user_send(MkHookCall *call, gpointer user_data)
{
    Roster *r = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    RosterPresType type;
    if (!st || mk_stanza_kind(st) != MK_STANZA_PRESENCE ||
        !roster_pres_type_parse(mk_stanza_type(st), &type))
        return MK_PASS;
    MkJid *from = mk_hook_call_from(call) ? mk_hook_call_from(call) : mk_stanza_from(st);
    MkJid *to = mk_stanza_to(st);
    if (!from || !to)
        return MK_PASS;
    if (mk_jid_bare_equal(from, to))
        return MK_HANDLED; /* the user is implicitly subscribed to itself */
    queue_subscription(r, FALSE, type, from, to, st);
    return MK_HANDLED;
}

/* ---- probes --------------------------------------------------------------- */

typedef struct {
    Roster *r;
    MkJid *user;   /* bare */
    MkJid *prober; /* as it came */
    RosterItem *item;
} ProbeOp;

static void probe_op_free(gpointer data)
{
    ProbeOp *op = data;
    mk_jid_unref(op->user);
    mk_jid_unref(op->prober);
    roster_item_free(op->item);
    g_free(op);
}

static gboolean probe_work(MkDbConn *conn, gpointer data, GError **error)
{
    ProbeOp *op = data;
    g_autoptr(MkJid) bare = mk_jid_bare(op->prober);
    return roster_db_load_item(conn, op->user, mk_jid_string(bare), &op->item, error);
}

/* RFC 6121 4.3.2: only a subscriber learns anything; it gets the last
 * presence of every available resource, or unavailable when none is. */
static void probe_done(const GError *error, gpointer data)
{
    ProbeOp *op = data;
    if (error) {
        g_warning("mod_roster: probe of %s: %s", mk_jid_string(op->user), error->message);
        return;
    }
    if (!op->item || !(op->item->st.sub & ROSTER_SUB_FROM))
        return;
    g_autoptr(GPtrArray) sessions = mk_session_list(op->user);
    guint sent = 0;
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        g_autoptr(MkStanza) last = mk_session_is_available(s) ? mk_session_last_presence(s) : NULL;
        if (!last)
            continue;
        g_autoptr(MkStanza) st =
            mk_stanza_new_addressed(mk_stanza_xml(last), mk_session_jid(s), op->prober);
        mk_router_send(st);
        sent++;
    }
    if (!sent)
        roster_route_presence("unavailable", op->user, op->prober);
}

/* presence_in: subscription stanzas and probes for a local account. */
static MkResult on_presence_in(MkHookCall *call, gpointer user_data)
{
    Roster *r = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    if (!st || mk_stanza_kind(st) != MK_STANZA_PRESENCE)
        return MK_PASS;
    MkJid *from = mk_hook_call_from(call) ? mk_hook_call_from(call) : mk_stanza_from(st);
    MkJid *to = mk_hook_call_to(call) ? mk_hook_call_to(call) : mk_stanza_to(st);
    if (!from || !to || !mk_jid_node(to))
        return MK_PASS;
    const char *type = mk_stanza_type(st);

    if (g_strcmp0(type, "probe") == 0) {
        if (mk_jid_bare_equal(from, to))
            return MK_HANDLED; /* the core shows a user's resources to each other */
        ProbeOp *op = g_new0(ProbeOp, 1);
        op->r = r;
        op->user = mk_jid_bare(to);
        op->prober = mk_jid_ref(from);
        mk_user_queue_push_reads(r->queue, mk_jid_string(op->user), probe_work, probe_done, op,
                                 probe_op_free);
        return MK_HANDLED;
    }
    RosterPresType ptype;
    if (!roster_pres_type_parse(type, &ptype))
        return MK_PASS;
    if (mk_jid_bare_equal(from, to))
        return MK_HANDLED;
    queue_subscription(r, TRUE, ptype, to, from, st);
    return MK_HANDLED;
}

/* ---- broadcast presence --------------------------------------------------- */

typedef struct {
    Roster *r;
    MkSession *session; /* ref */
    MkJid *user;        /* bare */
    MkStanza *stanza;   /* as broadcast, from the full JID */
    gboolean initial;
    gint queued;      /* the stripe's writes_queued when pushed */
    gboolean settled; /* storage thread: no write of the stripe was running at the read */
    GPtrArray *items;
} BroadcastOp;

static void broadcast_op_free(gpointer data)
{
    BroadcastOp *op = data;
    mk_session_unref(op->session);
    mk_jid_unref(op->user);
    mk_stanza_unref(op->stanza);
    if (op->items)
        g_ptr_array_unref(op->items);
    g_free(op);
}

static gboolean broadcast_work(MkDbConn *conn, gpointer data, GError **error)
{
    BroadcastOp *op = data;
    /* Whether this read may stand for op->queued (see on_broadcast):
     * checked before the read, so a write that ended here committed
     * before it. */
    op->settled = !roster_writes_running(op->r, op->user);
    return roster_db_load_all(conn, op->user, &op->items, error);
}

static void redeliver(MkSession *s, const char *xml_text)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) xml = mk_xml_parse(xml_text, -1, &error);
    g_autoptr(MkStanza) st = xml ? mk_stanza_new(xml, &error) : NULL;
    if (!st) {
        g_warning("mod_roster: a stored subscription request is unreadable: %s",
                  error ? error->message : "?");
        return;
    }
    mk_session_send(s, st);
}

/* Sends @stanza (broadcast presence of @session, from its full JID) to
 * every subscriber among @items; on initial presence also the probes and
 * the requests that waited (RFC 6121 4.2.2, 3.1.3). */
static void broadcast_to(MkSession *session, MkJid *user, MkStanza *stanza, gboolean initial,
                         GPtrArray *items)
{
    MkJid *full = mk_session_jid(session);
    for (guint i = 0; i < items->len; i++) {
        RosterItem *item = g_ptr_array_index(items, i);
        g_autoptr(MkJid) contact = mk_jid_new(item->contact, NULL);
        if (!contact)
            continue;
        if (item->st.sub & ROSTER_SUB_FROM) {
            g_autoptr(MkStanza) st = mk_stanza_new_addressed(mk_stanza_xml(stanza), full, contact);
            mk_router_send(st);
        }
        if (!initial)
            continue;
        if (item->st.sub & ROSTER_SUB_TO)
            roster_route_presence("probe", user, contact);
        if (item->st.pending_in && item->pending_xml)
            redeliver(session, item->pending_xml);
    }
}

static void broadcast_done(const GError *error, gpointer data)
{
    BroadcastOp *op = data;
    /* NULL once the session ended (the unavailable at logout). */
    RosterSlot *slot = mk_session_get_slot(op->session, op->r->mod);
    if (slot)
        slot->broadcasts--;
    if (error) {
        g_warning("mod_roster: presence of %s not sent to contacts: %s",
                  mk_jid_string(mk_stanza_from(op->stanza)), error->message);
        return;
    }
    if (slot && op->settled)
        roster_subs_store(slot, op->items, op->queued);
    broadcast_to(op->session, op->user, op->stanza, op->initial, op->items);
}

/* presence_broadcast: the session's state is updated already. Directed
 * presence does not come here (the core routes it to its addressee). */
static MkResult on_broadcast(MkHookCall *call, gpointer user_data)
{
    Roster *r = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st)
        return MK_PASS;
    const char *type = mk_stanza_type(st);
    if (type && !g_str_equal(type, "unavailable"))
        return MK_PASS;

    /* Initial presence is the first available one of a session, or the
     * first after it went unavailable (RFC 6121 4.2). */
    RosterSlot *slot = roster_slot(r, s);
    gboolean initial = FALSE;
    if (!type) {
        initial = !slot->announced;
        slot->announced = TRUE;
    } else {
        slot->announced = FALSE;
    }
    /* A broadcast of this session still in the user queue must be sent
     * before this one: then this one waits its turn there too. */
    gboolean behind = slot->broadcasts > 0;
    if (initial) {
        /* Usually the roster read at authentication is still current: no
         * storage round trip then. Only its subscribers are kept. */
        const RosterPreload *p = behind ? NULL : roster_preload_get(r, s, "initial presence");
        if (p) {
            g_autoptr(MkJid) user = mk_jid_bare(mk_session_jid(s));
            g_autoptr(MkStanza) out =
                mk_stanza_new_addressed(mk_stanza_xml(st), mk_session_jid(s), NULL);
            broadcast_to(s, user, out, TRUE, roster_preload_items(p));
            roster_subs_store(slot, roster_preload_items(p), roster_preload_queued(p));
        }
        roster_preload_drop(r, s);
        if (p)
            return MK_PASS;
    } else if (!behind && roster_subs_current(r, slot, s)) {
        /* A later change: only the subscribers matter (probes and waiting
         * requests are for initial presence), and no write came since
         * the list was read. */
        g_autoptr(MkStanza) out =
            mk_stanza_new_addressed(mk_stanza_xml(st), mk_session_jid(s), NULL);
        roster_subs_send(slot->subs, mk_session_jid(s), out);
        return MK_PASS;
    }

    BroadcastOp *op = g_new0(BroadcastOp, 1);
    op->r = r;
    op->session = mk_session_ref(s);
    op->user = mk_jid_bare(mk_session_jid(s));
    op->stanza = mk_stanza_new_addressed(mk_stanza_xml(st), mk_session_jid(s), NULL);
    op->initial = initial;
    /* The read of this op refreshes the session's list, valid for the
     * count of writes pushed so far. The user queue runs the user's ops
     * one at a time in the order they were pushed, so every write of
     * the user pushed before this op has committed when its read runs,
     * and one pushed later changes the count: the list is then stale.
     * One window remains: a write pushed from another thread (a
     * contact's subscription stanza, another resource's roster set)
     * counts itself just before its push, so it may be counted here and
     * still land behind this op in the queue. It is running then (its
     * op ends after its transaction, and begin counts running first),
     * which broadcast_work notices: such a read is used for this
     * broadcast, as before, but not kept. */
    op->queued = roster_writes_queued(r, op->user);
    slot->broadcasts++;
    mk_user_queue_push_reads(r->queue, mk_jid_string(op->user), broadcast_work, broadcast_done, op,
                             broadcast_op_free);
    return MK_PASS;
}

void roster_presence_start(Roster *r)
{
    mk_hook_add(r->mod, MK_HOOK_USER_SEND_PACKET, HOOK_PRIORITY, on_user_send, r);
    mk_hook_add(r->mod, MK_HOOK_PRESENCE_IN, HOOK_PRIORITY, on_presence_in, r);
    mk_hook_add(r->mod, MK_HOOK_PRESENCE_BROADCAST, HOOK_PRIORITY, on_broadcast, r);
}
