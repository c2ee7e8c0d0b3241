/* mod_privacy: XEP-0016 Privacy Lists.
 *
 * This file holds the module instance and the enforcement:
 *
 *  - filter_local_packet (any worker, every stanza to a local account):
 *    inbound, the recipient's list that applies (the active list of the
 *    addressed session, else the default list) decides; denied messages
 *    and IQ get/set bounce with service-unavailable, the rest is dropped
 *    (XEP-0016 2.13). Outbound stanzas the server sends for a user
 *    (presence broadcast to subscribers, probes, answers) are checked
 *    against the sender's list (presence-out and all-stanza items);
 *  - user_receive_packet: a stanza to the bare JID reaches each session
 *    only if that session's list lets it (needed when some sessions of
 *    the user have their own active list);
 *  - user_send_packet: what a user sends to a denied JID is refused with
 *    not-acceptable.
 *
 * Group and subscription items are evaluated against mod_roster's
 * tables, cached with the lists; a roster push seen on its way to a
 * client marks that cache stale. */
#include "privacy.h"

#define HOOK_PRIORITY 100

static gboolean is_notification(MkStanza *st)
{
    const char *type = mk_stanza_type(st);
    return !type || g_str_equal(type, "unavailable");
}

/* The stanza kind as an item sees it (see priv_items_allow). */
static guint kind_of(MkStanza *st, gboolean inbound)
{
    switch (mk_stanza_kind(st)) {
    case MK_STANZA_MESSAGE:
        return inbound ? PRIV_MESSAGE : 0;
    case MK_STANZA_IQ:
        return inbound ? PRIV_IQ : 0;
    case MK_STANZA_PRESENCE:
        if (!is_notification(st))
            return 0;
        return inbound ? PRIV_PRESENCE_IN : PRIV_PRESENCE_OUT;
    default:
        return 0;
    }
}

/* The session of @user bound to exactly @jid, or NULL. (transfer full) */
static MkSession *session_of(MkJid *jid)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(jid);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (mk_jid_equal(mk_session_jid(s), jid))
            return mk_session_ref(s);
    }
    return NULL;
}

/* Does @list let a stanza of @kind between the user and @peer through? */
static gboolean allows(const PrivList *list, PrivState *st, guint kind, MkJid *peer)
{
    if (!list || list->items->len == 0)
        return TRUE;
    PrivContact *c = g_hash_table_lookup(st->roster, mk_jid_bare_string(peer));
    PrivPeer pp = {mk_jid_node(peer), mk_jid_domain(peer), mk_jid_resource(peer),
                   c ? c->sub : PRIV_SUB_NONE, c ? (const char *const *)c->groups : NULL};
    return priv_items_allow(list->items, kind, &pp);
}

/* The server itself talking to its users is not "communication with
 * another entity": lists never stop it (a deny-all list would otherwise
 * cut the client off its own server's answers). */
static gboolean is_server(Privacy *p, MkJid *jid)
{
    return !mk_jid_node(jid) && mk_module_serves_domain(p->mod, mk_jid_domain(jid));
}

/* filter_local_packet: Stanza, from, to. */
static MkResult on_filter(MkHookCall *call, gpointer user_data)
{
    Privacy *p = user_data;
    MkStanza *stanza = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = mk_hook_call_to(call);
    if (!stanza || !from || !to || mk_jid_bare_equal(from, to) || is_server(p, from))
        return MK_PASS; /* a user's own resources are never blocked (2.1) */

    /* Inbound: the recipient's list. */
    g_autoptr(PrivState) st = priv_cache_get(p, to, stanza);
    if (!st)
        return MK_HANDLED; /* kept, and routed again once loaded */
    const PrivList *list = NULL;
    gboolean decide = TRUE;
    if (!mk_jid_is_bare(to)) {
        g_autoptr(MkSession) s = session_of(to);
        list = priv_effective_list(p, st, s);
    } else if (mk_stanza_kind(stanza) != MK_STANZA_IQ && priv_user_has_active(p, to)) {
        /* Each session decides with its own list (user_receive_packet);
         * the default one would be "layering" (2.2 rule 1). */
        decide = FALSE;
    } else {
        list = priv_effective_list(p, st, NULL);
    }
    if (decide && !allows(list, st, kind_of(stanza, TRUE), from)) {
        mk_counter_add(p->denied_in, 1);
        return mk_hook_call_refuse(call, MK_ERR_SERVICE_UNAVAILABLE);
    }

    /* Outbound, sent by the server for a user of ours: the sender's list. */
    if (!mk_jid_node(from) || mk_stanza_is_error(stanza) ||
        !mk_module_serves_domain(p->mod, mk_jid_domain(from)))
        return MK_PASS;
    g_autoptr(PrivState) own = priv_cache_get(p, from, stanza);
    if (!own)
        return MK_HANDLED;
    g_autoptr(MkSession) sender = mk_jid_is_bare(from) ? NULL : session_of(from);
    if (!allows(priv_effective_list(p, own, sender), own, kind_of(stanza, FALSE), to)) {
        mk_counter_add(p->denied_out, 1);
        return MK_HANDLED;
    }
    return MK_PASS;
}

/* user_receive_packet: Session, stanza. */
static MkResult on_receive(MkHookCall *call, gpointer user_data)
{
    Privacy *p = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *stanza = mk_hook_call_stanza(call);
    if (!s || !stanza)
        return MK_PASS;
    MkJid *from = mk_stanza_from(stanza);
    MkJid *to = mk_stanza_to(stanza);
    MkJid *me = mk_session_jid(s);

    /* A roster push: mod_roster changed the roster the lists read. */
    if (mk_stanza_kind(stanza) == MK_STANZA_IQ && g_strcmp0(mk_stanza_type(stanza), "set") == 0 &&
        mk_xml_child(mk_stanza_xml(stanza), "query", "jabber:iq:roster") &&
        (!from || mk_jid_bare_equal(from, me))) {
        mk_user_cache_invalidate(p->cache, mk_jid_bare_string(me));
        return MK_PASS;
    }
    /* Only stanzas to the bare JID: the rest was decided in the filter. */
    if (!from || !to || !mk_jid_is_bare(to) || mk_jid_bare_equal(from, me) || is_server(p, from))
        return MK_PASS;
    g_autoptr(PrivState) st = priv_cache_get(p, me, NULL);
    if (!st)
        return MK_PASS;
    if (allows(priv_effective_list(p, st, s), st, kind_of(stanza, TRUE), from))
        return MK_PASS;
    mk_counter_add(p->denied_in, 1);
    return MK_HANDLED;
}

/* user_send_packet: Session, stanza, from, to. */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Privacy *p = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *stanza = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = stanza ? mk_stanza_to(stanza) : NULL;
    if (!s || !stanza || !from || !to || mk_jid_bare_equal(from, to) || is_server(p, to))
        return MK_PASS;
    /* Loaded at session start; before that the filter still checks what
     * reaches a local account. */
    g_autoptr(PrivState) st = priv_cache_get(p, from, NULL);
    if (!st || allows(priv_effective_list(p, st, s), st, kind_of(stanza, FALSE), to))
        return MK_PASS;
    mk_counter_add(p->denied_out, 1);
    if (!mk_stanza_is_error(stanza)) {
        /* Straight to the session: routed, the error would be filtered as
         * coming from the denied JID. */
        g_autoptr(MkStanza) reply = mk_stanza_new_error_reply(stanza, MK_ERR_NOT_ACCEPTABLE, NULL);
        if (reply)
            mk_session_send(s, reply);
    }
    return MK_HANDLED;
}

static gboolean privacy_start(MkModule *mod, GError **error)
{
    Privacy *p = g_new0(Privacy, 1);
    p->mod = mod;
    p->queue = mk_user_queue_new(mod);
    p->cache = mk_user_cache_new(mod, p->queue, &priv_cache_class,
                                 (guint)mk_config_get_int(mod, "cache_idle"), NULL);
    p->max_items = mk_config_get_int(mod, "max_items");
    p->max_lists = mk_config_get_int(mod, "max_lists");
    p->denied_in = mk_counter_new(mod, "denied_in");
    p->denied_out = mk_counter_new(mod, "denied_out");
    p->pushes = mk_counter_new(mod, "pushes");
    p->limit_refusals = mk_counter_new(mod, "limit_refusals");
    mk_module_set_data(mod, p, g_free); /* freed with the last reference */

    if (!priv_iq_start(p, error))
        return FALSE;
    mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, HOOK_PRIORITY, on_filter, p);
    mk_hook_add(mod, MK_HOOK_USER_RECEIVE_PACKET, HOOK_PRIORITY, on_receive, p);
    mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, HOOK_PRIORITY, on_send, p);
    mk_disco_feature_add(mod, NS_PRIVACY);
    return TRUE;
}

static const MkConfigKey privacy_keys[] = {
    {"max_lists", MK_CONFIG_INT, "20", 0, 10000, "privacy lists a user may have (0 = no limit)"},
    {"max_items", MK_CONFIG_INT, "250", 0, 100000, "items in one list (0 = no limit)"},
    {"cache_idle", MK_CONFIG_INT, "300", 1, 86400,
     "seconds after which the lists of a user without sessions leave memory"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_privacy",
    .version = "1.0",
    .config_keys = privacy_keys,
    .migrations = privacy_migrations,
    .start = privacy_start,
};
