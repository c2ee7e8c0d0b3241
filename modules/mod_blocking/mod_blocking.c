/* mod_blocking: XEP-0191 Blocking Command.
 *
 * This file holds the module instance and the enforcement, both ways:
 *
 *  - filter_local_packet (any worker, every stanza to a local account):
 *    stanzas from a JID the recipient blocked are dropped, or bounced
 *    with service-unavailable for messages and IQ get/set (XEP-0191 3.3);
 *    stanzas the server sends on behalf of a user (presence broadcast to
 *    subscribers, probes) to a JID that user blocked are dropped;
 *  - user_send_packet (the sender's worker): a stanza a user sends to a
 *    JID it blocked is refused with not-acceptable + <blocked/>.
 *
 * The lists come from the core's per-user cache (blocking-db.c). */
#include "blocking.h"

#define HOOK_PRIORITY 100 /* filters see stanzas before feature handlers */

/* The block list of @user (transfer full), or NULL while it loads: then
 * @hold (nullable) is routed again once it is there. Any thread. */
static GPtrArray *list_of(Blocking *b, MkJid *user, MkStanza *hold)
{
    return mk_user_cache_get(b->cache, mk_jid_bare_string(user), hold);
}

/* filter_local_packet: Stanza, from, to. */
static MkResult on_filter(MkHookCall *call, gpointer user_data)
{
    Blocking *b = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = mk_hook_call_to(call);
    if (!st || !from || !to || mk_jid_bare_equal(from, to))
        return MK_PASS; /* a user's own resources are never blocked */

    /* Inbound: did the recipient block the sender? */
    g_autoptr(GPtrArray) list = list_of(b, to, st);
    if (!list)
        return MK_HANDLED; /* kept, and routed again once the list is loaded */
    if (blocking_list_matches(list, from)) {
        mk_counter_add(b->blocked_in, 1);
        return mk_hook_call_refuse(call, MK_ERR_SERVICE_UNAVAILABLE);
    }

    /* Outbound, sent by the server for a user of ours (presence broadcast,
     * probes, presence answers): did the sender block the recipient? What
     * the user sends itself was refused in user_send_packet already;
     * errors still go out, so that a blocked contact sees the user as
     * offline rather than a silent black hole. */
    if (!mk_jid_node(from) || mk_stanza_is_error(st) ||
        !mk_module_serves_domain(b->mod, mk_jid_domain(from)))
        return MK_PASS;
    g_autoptr(GPtrArray) own = list_of(b, from, st);
    if (!own)
        return MK_HANDLED;
    if (blocking_list_matches(own, to)) {
        mk_counter_add(b->blocked_out, 1);
        return MK_HANDLED;
    }
    return MK_PASS;
}

/* The not-acceptable error of XEP-0191 3.3 with its <blocked/> condition,
 * for @st the user sent to a blocked JID. (transfer full) (nullable) */
static MkStanza *blocked_error(MkStanza *st)
{
    g_autoptr(MkStanza) plain = mk_stanza_new_error_reply(st, MK_ERR_NOT_ACCEPTABLE, NULL);
    if (!plain)
        return NULL;
    g_autoptr(MkXml) xml = mk_xml_copy(mk_stanza_xml(plain));
    MkXml *err = mk_xml_child(xml, "error", NULL);
    if (err)
        mk_xml_add_child(err, "blocked", NS_BLOCKING_ERRORS);
    return mk_stanza_new_addressed(xml, mk_stanza_from(plain), mk_stanza_to(plain));
}

/* user_send_packet: Session, stanza, from, to. */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Blocking *b = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = mk_stanza_to(st);
    if (!s || !st || !from || !to || mk_jid_bare_equal(from, to))
        return MK_PASS;
    /* Loaded at session start; if a client is faster than that, the
     * filter still drops what reaches a local account. */
    g_autoptr(GPtrArray) list = list_of(b, from, NULL);
    if (!list || !blocking_list_matches(list, to))
        return MK_PASS;
    mk_counter_add(b->blocked_out, 1);
    /* Answered to the session directly: routed, the error would come from
     * the blocked JID and be dropped by the filter above. */
    g_autoptr(MkStanza) reply = mk_stanza_is_error(st) ? NULL : blocked_error(st);
    if (reply)
        mk_session_send(s, reply);
    return MK_HANDLED;
}

static gboolean blocking_start(MkModule *mod, GError **error)
{
    Blocking *b = g_new0(Blocking, 1);
    b->mod = mod;
    b->queue = mk_user_queue_new(mod);
    b->max_items = mk_config_get_int(mod, "max_items");
    b->blocked_in = mk_counter_new(mod, "blocked_in");
    b->blocked_out = mk_counter_new(mod, "blocked_out");
    b->pushes = mk_counter_new(mod, "pushes");
    b->loads = mk_counter_new(mod, "loads");
    b->cache = mk_user_cache_new(mod, b->queue, &blocking_cache_class,
                                 (guint)mk_config_get_int(mod, "cache_idle"), b->loads);
    mk_module_set_data(mod, b, g_free); /* freed with the last reference */

    if (!blocking_iq_start(b, error))
        return FALSE;
    mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, HOOK_PRIORITY, on_filter, b);
    mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, HOOK_PRIORITY, on_send, b);
    mk_disco_feature_add(mod, NS_BLOCKING);
    return TRUE;
}

static const MkConfigKey blocking_keys[] = {
    {"max_items", MK_CONFIG_INT, "1000", 0, 1000000,
     "longest block list a user may have (0 = no limit)"},
    {"cache_idle", MK_CONFIG_INT, "300", 1, 86400,
     "seconds after which the list of a user without sessions leaves memory"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_blocking",
    .version = "1.0",
    .config_keys = blocking_keys,
    .migrations = blocking_migrations,
    .start = blocking_start,
};
