/* PEP (XEP-0163): every account is a PubSub service at its bare JID.
 *
 * Contacts with a presence subscription get an account's notifications
 * without subscribing ("auto-subscribe"), but only for the nodes their
 * client's caps name with "+notify" (section 4.3.3, "filtered
 * notifications"): the core keeps each session's caps (mk-caps.h), which
 * mod_disco learns. When a session's caps become known (its available
 * presence), it gets the last item of each node it asked for of its
 * contacts and of its own account (section 4.3.2). Disco at an account
 * with a node, and the account's disco#items (its nodes), come here from
 * mod_disco through mk_disco_account_query. */
#include "pubsub.h"

#include <string.h>

/* A session whose last items are being read, or were a moment ago
 * (PubSub.caps_waits): a live notification and the last-item read can
 * race for the same item (the read may see an item whose live
 * notification is still on its way), so each side notes the item
 * versions it sent, as "SERVICE\tNODE\tSEQ" (pubsub_items.seq, new on
 * each publish, even of the same item ID), and skips what the other
 * sent. Kept CAPS_WAIT_KEEP after the last read ends, for a live
 * notification still in flight. */
#define CAPS_WAIT_KEEP (2 * G_USEC_PER_SEC)

typedef struct {
    guint jobs;       /* last-item reads in flight for the session */
    gint64 done_at;   /* monotonic: when jobs fell to 0; 0 while > 0 */
    GHashTable *live; /* sent live while a read was in flight */
    GHashTable *last; /* sent by a read */
} PsCapsWait;

static void caps_wait_free(gpointer p)
{
    PsCapsWait *w = p;
    g_hash_table_destroy(w->live);
    g_hash_table_destroy(w->last);
    g_free(w);
}

GHashTable *ps_caps_waits_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, caps_wait_free);
}

static char *item_key(MkJid *service, const char *node, gint64 seq)
{
    return g_strdup_printf("%s\t%s\t%" G_GINT64_FORMAT, mk_jid_string(service), node, seq);
}

/* Drops the waits that ended more than CAPS_WAIT_KEEP ago. Under
 * caps_lock. */
static void caps_waits_expire(PubSub *ps, gint64 now)
{
    if (now - ps->caps_swept < CAPS_WAIT_KEEP / 4)
        return;
    ps->caps_swept = now;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, ps->caps_waits);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        PsCapsWait *w = v;
        if (w->jobs == 0 && now - w->done_at > CAPS_WAIT_KEEP) {
            g_hash_table_iter_remove(&it);
            g_atomic_int_add(&ps->caps_waiting, -1);
        }
    }
}

/* Whether @full may get the live notification of version @seq of an
 * item of @node (FALSE: a last-item read sent it that version already);
 * notes it for the read otherwise. Any thread. */
static gboolean caps_wait_live(PubSub *ps, MkJid *full, MkJid *service, const char *node,
                               gint64 seq)
{
    if (g_atomic_int_get(&ps->caps_waiting) == 0 || seq == 0)
        return TRUE; /* the usual case: no read in flight, no lock */
    g_autofree char *key = item_key(service, node, seq);
    gboolean send = TRUE;
    g_mutex_lock(&ps->caps_lock);
    caps_waits_expire(ps, g_get_monotonic_time());
    PsCapsWait *w = g_hash_table_lookup(ps->caps_waits, mk_jid_string(full));
    if (w && g_hash_table_remove(w->last, key))
        send = FALSE;
    else if (w)
        g_hash_table_add(w->live, g_steal_pointer(&key));
    g_mutex_unlock(&ps->caps_lock);
    return send;
}

/* See pubsub.h. Worker. */
void ps_pep_deliver(PubSub *ps, MkJid *service, const char *node, PsNote *note)
{
    g_autoptr(MkJid) bare = mk_jid_new(note->to, NULL);
    if (!bare || !node)
        return;
    g_autofree char *want = g_strconcat(node, "+notify", NULL);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = sessions->pdata[i];
        if (!mk_session_is_available(s) || !mk_session_has_feature(s, want))
            continue;
        /* Routed rather than written to the session: privacy and
         * blocking filters see it like any stanza from the account. */
        if (!caps_wait_live(ps, mk_session_jid(s), service, node, note->seq))
            continue;
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(note->message, service, mk_session_jid(s));
        mk_router_send(st);
        mk_counter_add(ps->notifications, 1);
    }
}

/* ---- last items when a session's caps are known ------------------------ */

typedef struct {
    PubSub *ps;
    MkModule *mod;
    MkJid *full;
    GHashTable *wanted; /* node names the caps ask +notify for */
    GPtrArray *out;     /* MkStanza* to send */
    GPtrArray *keys;    /* item_key() of each of out */
    gboolean waiting;   /* counted in its session's PsCapsWait */
} LastJob;

static void last_job_free(gpointer p)
{
    LastJob *j = p;
    PubSub *ps = j->ps;
    if (j->waiting) {
        g_mutex_lock(&ps->caps_lock);
        PsCapsWait *w = g_hash_table_lookup(ps->caps_waits, mk_jid_string(j->full));
        if (w && --w->jobs == 0)
            w->done_at = g_get_monotonic_time();
        g_mutex_unlock(&ps->caps_lock);
    }
    g_ptr_array_unref(j->keys);
    mk_jid_unref(j->full);
    g_hash_table_destroy(j->wanted);
    g_ptr_array_unref(j->out);
    g_free(j);
}

/* Whether @contact may see @owner's node of @cfg. Storage thread. */
static gboolean may_see(LastJob *j, MkDbConn *conn, MkJid *owner, const char *contact,
                        const PsConfig *cfg, gboolean *ok, GError **error)
{
    *ok = FALSE;
    if (g_str_equal(mk_jid_string(owner), contact)) {
        *ok = TRUE;
        return TRUE;
    }
    if (cfg->access == PS_ACCESS_WHITELIST || cfg->access == PS_ACCESS_AUTHORIZE)
        return TRUE;
    g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
    gboolean from = FALSE, available = FALSE;
    if (!mk_roster_relation(j->mod, conn, owner, contact, &from, groups, &available, error))
        return FALSE;
    if (!from)
        return TRUE; /* no presence subscription: no implicit notifications */
    if (cfg->access != PS_ACCESS_ROSTER) {
        *ok = TRUE;
        return TRUE;
    }
    for (guint i = 0; i < groups->len; i++)
        *ok = *ok || g_strv_contains((const char *const *)cfg->roster_groups, groups->pdata[i]);
    return TRUE;
}

static gboolean last_work(MkDbConn *conn, gpointer data, GError **error)
{
    LastJob *j = data;
    g_autoptr(MkJid) me = mk_jid_bare(j->full);
    g_autoptr(GPtrArray) owners = g_ptr_array_new_with_free_func(g_free);
    gboolean available = FALSE;
    if (!mk_roster_contacts(j->mod, conn, me, owners, &available, error))
        return FALSE;
    g_ptr_array_add(owners, g_strdup(mk_jid_string(me)));
    for (guint i = 0; i < owners->len; i++) {
        g_autoptr(MkJid) owner = mk_jid_new(owners->pdata[i], NULL);
        if (!owner || !mk_jid_node(owner))
            continue;
        g_autoptr(MkDbResult) nodes =
            mk_db_conn_query(conn, error, "SELECT node, config FROM pubsub_nodes WHERE service = ?",
                             MK_DB_STR(mk_jid_string(owner)));
        if (!nodes)
            return FALSE;
        for (guint k = 0; k < mk_db_result_rows(nodes); k++) {
            const char *node = mk_db_result_get_string(nodes, k, 0);
            if (!g_hash_table_contains(j->wanted, node))
                continue;
            g_autoptr(PsConfig) cfg = ps_config_parse(mk_db_result_get_string(nodes, k, 1), TRUE);
            gboolean ok = FALSE;
            if (cfg->send_last != PS_SEND_ON_SUB_AND_PRESENCE || !cfg->deliver_notifications ||
                !may_see(j, conn, owner, mk_jid_string(me), cfg, &ok, error))
                continue;
            if (!ok)
                continue;
            g_autoptr(MkDbResult) it = mk_db_conn_query(
                conn, error,
                "SELECT item_id, payload, seq FROM pubsub_items WHERE service = ? AND node = ?"
                " ORDER BY seq DESC LIMIT 1",
                MK_DB_STR(mk_jid_string(owner)), MK_DB_STR(node));
            if (!it)
                return FALSE;
            if (mk_db_result_rows(it) == 0)
                continue;
            g_autoptr(MkXml) m = mk_xml_new("message", NS_CLIENT);
            mk_xml_set_attr(m, "type", "headline");
            MkXml *items =
                mk_xml_add_child(mk_xml_add_child(m, "event", NS_PUBSUB_EVENT), "items", NULL);
            mk_xml_set_attr(items, "node", node);
            MkXml *item = mk_xml_add_child(items, "item", NULL);
            mk_xml_set_attr(item, "id", mk_db_result_get_string(it, 0, 0));
            MkXml *payload = cfg->deliver_payloads
                                 ? mk_xml_parse(mk_db_result_get_string(it, 0, 1), -1, NULL)
                                 : NULL;
            if (payload)
                mk_xml_append(item, payload);
            g_ptr_array_add(j->out, mk_stanza_new_addressed(m, owner, j->full));
            g_ptr_array_add(j->keys, item_key(owner, node, mk_db_result_get_int(it, 0, 2)));
        }
    }
    return TRUE;
}

static void last_done(const GError *error, gpointer data)
{
    LastJob *j = data;
    if (error) {
        g_warning("mod_pubsub: last items for %s: %s", mk_jid_string(j->full), error->message);
        return;
    }
    /* An item that went live to the session while it was read (its
     * caps were known by then) is not sent again. */
    PubSub *ps = j->ps;
    g_autoptr(GPtrArray) send = g_ptr_array_new();
    g_mutex_lock(&ps->caps_lock);
    PsCapsWait *w = g_hash_table_lookup(ps->caps_waits, mk_jid_string(j->full));
    for (guint i = 0; i < j->keys->len; i++) {
        if (w && g_hash_table_remove(w->live, j->keys->pdata[i]))
            continue;
        if (w)
            g_hash_table_add(w->last, g_strdup(j->keys->pdata[i]));
        g_ptr_array_add(send, j->out->pdata[i]);
    }
    g_mutex_unlock(&ps->caps_lock);
    for (guint i = 0; i < send->len; i++) {
        mk_router_send(send->pdata[i]);
        mk_counter_add(j->ps->notifications, 1);
    }
}

static MkResult on_caps(MkHookCall *call, gpointer user_data)
{
    PubSub *ps = user_data;
    MkJid *full = mk_hook_call_from(call);
    if (!full)
        return MK_PASS;
    g_autoptr(MkJid) bare = mk_jid_bare(full);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    g_auto(GStrv) features = NULL;
    for (guint i = 0; i < sessions->len && !features; i++)
        if (mk_jid_equal(mk_session_jid(sessions->pdata[i]), full))
            features = mk_session_features(sessions->pdata[i]);
    if (!features)
        return MK_PASS;
    LastJob *j = g_new0(LastJob, 1);
    j->ps = ps;
    j->mod = ps->mod;
    j->full = mk_jid_ref(full);
    j->wanted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    j->out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_stanza_unref);
    j->keys = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; features[i]; i++)
        if (g_str_has_suffix(features[i], "+notify"))
            g_hash_table_add(j->wanted,
                             g_strndup(features[i], strlen(features[i]) - strlen("+notify")));
    if (g_hash_table_size(j->wanted) == 0) {
        last_job_free(j);
        return MK_PASS;
    }
    /* From here until the read is done, live notifications to the
     * session are noted (caps_wait_note): its caps are set already. */
    g_mutex_lock(&ps->caps_lock);
    caps_waits_expire(ps, g_get_monotonic_time());
    PsCapsWait *w = g_hash_table_lookup(ps->caps_waits, mk_jid_string(full));
    if (!w) {
        w = g_new0(PsCapsWait, 1);
        w->live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        w->last = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_insert(ps->caps_waits, g_strdup(mk_jid_string(full)), w);
        g_atomic_int_add(&ps->caps_waiting, 1);
    }
    if (w->jobs == 0) {
        /* A new read (a new session of that JID, or new caps): what the
         * last one and the live path sent is no reason to skip now. */
        g_hash_table_remove_all(w->live);
        g_hash_table_remove_all(w->last);
    }
    w->jobs++;
    w->done_at = 0;
    j->waiting = TRUE;
    g_mutex_unlock(&ps->caps_lock);
    mk_db_transaction_run(ps->mod, last_work, last_done, j, last_job_free);
    return MK_PASS;
}

/* ---- accounts ------------------------------------------------------------ */

static void removed(MkDbResult *res, const GError *error, gpointer data)
{
    if (error)
        g_warning("mod_pubsub: removing an account's subscriptions: %s", error->message);
}

/* The account's own nodes go with its row (ON DELETE CASCADE); its
 * subscriptions and affiliations at other services are removed here. */
static MkResult on_remove_user(MkHookCall *call, gpointer user_data)
{
    PubSub *ps = user_data;
    MkJid *user = mk_hook_call_from(call);
    if (!user)
        return MK_PASS;
    const char *bare = mk_jid_bare_string(user);
    mk_db_query(ps->mod,
                "DELETE FROM pubsub_subscriptions WHERE jid = ? OR substr(jid, 1, length(?) + 1)"
                " = ? || '/'",
                removed, NULL, MK_DB_STR(bare), MK_DB_STR(bare), MK_DB_STR(bare));
    mk_db_query(ps->mod, "DELETE FROM pubsub_affiliations WHERE jid = ?", removed, NULL,
                MK_DB_STR(bare));
    mk_db_query(ps->mod, "DELETE FROM pubsub_nodes WHERE service = ?", removed, NULL,
                MK_DB_STR(bare));
    return MK_PASS;
}

/* Disco at an account with a node, and its disco#items: handed over by
 * the module that answers the account's disco (mk-disco.h). Worker. */
static void disco_query(gpointer data, MkIq *iq, MkJid *account)
{
    PubSub *ps = data;
    ps_handle(ps, ps->mod, iq, mk_iq_stanza(iq), account, TRUE);
}

static const MkDiscoAccountFuncs disco_funcs = {disco_query};

/* IQs to an account's bare JID (or with no 'to'). */
static MkResult on_iq(MkIq *iq, gpointer user_data)
{
    PubSub *ps = user_data;
    MkJid *to = mk_iq_to(iq);
    MkJid *service = to && mk_jid_node(to) ? to : mk_iq_from(iq);
    ps_handle(ps, mk_iq_module(iq), iq, mk_iq_stanza(iq), service, TRUE);
    return MK_HANDLED;
}

static const char *const pep_features[] = {
    NS_PUBSUB "#auto-create",
    NS_PUBSUB "#auto-subscribe",
    NS_PUBSUB "#access-presence",
    NS_PUBSUB "#access-open",
    NS_PUBSUB "#access-roster",
    NS_PUBSUB "#access-whitelist",
    NS_PUBSUB "#config-node",
    NS_PUBSUB "#create-and-configure",
    NS_PUBSUB "#create-nodes",
    NS_PUBSUB "#delete-items",
    NS_PUBSUB "#delete-nodes",
    NS_PUBSUB "#filtered-notifications",
    NS_PUBSUB "#item-ids",
    NS_PUBSUB "#last-published",
    NS_PUBSUB "#leased-subscription",
    NS_PUBSUB "#persistent-items",
    NS_PUBSUB "#presence-notifications",
    NS_PUBSUB "#publish",
    NS_PUBSUB "#publish-options",
    NS_PUBSUB "#purge-nodes",
    NS_PUBSUB "#retract-items",
    NS_PUBSUB "#retrieve-affiliations",
    NS_PUBSUB "#retrieve-default-sub",
    NS_PUBSUB "#retrieve-items",
    NS_PUBSUB "#retrieve-subscriptions",
    NS_PUBSUB "#subscribe",
    NS_PUBSUB "#subscription-options",
    NULL,
};

/* See pubsub.h. Main thread, in start(). */
gboolean ps_pep_start(PubSub *ps, GError **error)
{
    MkModule *mod = ps->mod;
    if (!mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_PUBSUB, on_iq, ps, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_PUBSUB, on_iq, ps, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_PUBSUB_OWNER, on_iq, ps, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_PUBSUB_OWNER, on_iq, ps, error) ||
        !mk_disco_account_register(mod, &disco_funcs, ps, error))
        return FALSE;
    mk_disco_account_feature_add(mod, NS_PUBSUB);
    for (guint i = 0; pep_features[i]; i++)
        mk_disco_account_feature_add(mod, pep_features[i]);
    mk_hook_add(mod, MK_HOOK_CAPS_CHANGED, 50, on_caps, ps);
    return TRUE;
}

/* See pubsub.h. Main thread, in start(): also without PEP. */
void ps_accounts_start(PubSub *ps)
{
    mk_hook_add(ps->mod, MK_HOOK_REMOVE_USER, 50, on_remove_user, ps);
}
