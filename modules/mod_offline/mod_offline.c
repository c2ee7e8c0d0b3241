/* mod_offline: offline message storage (XEP-0160) with XEP-0203 delays.
 *
 * A message that finds no resource (the core's offline_message hook) is
 * stored unless XEP-0160 section 3, an XEP-0334 <no-store/> hint or its
 * emptiness says otherwise; it is delivered when the user next sends
 * available presence with a non-negative priority, once per session (the
 * presence_broadcast hook and a session slot). See offline-store.c and
 * offline-deliver.c for the guarantees. */
#include "offline.h"

/* Per-session state: whether this session already got the stored
 * messages. Session worker only. */
typedef struct {
    gboolean delivered;
} OfflineSlot;

/* Anything a user would want later: not only chat states (XEP-0085) or
 * processing hints (XEP-0334) other than <store/>. */
static gboolean has_content(MkXml *msg)
{
    for (guint i = 0; i < mk_xml_child_count(msg); i++) {
        MkXml *c = mk_xml_child_at(msg, i);
        if (mk_xml_is_text(c))
            continue;
        const char *ns = mk_xml_ns(c);
        if (g_strcmp0(ns, NS_CHATSTATES) == 0)
            continue;
        if (g_strcmp0(ns, NS_HINTS) == 0 && !mk_xml_is(c, "store", NS_HINTS))
            continue;
        return TRUE;
    }
    return FALSE;
}

/* offline_message: runs on the worker that routed the message. */
static MkResult on_offline_message(MkHookCall *call, gpointer user_data)
{
    Offline *o = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = mk_stanza_to(st);
    if (!st || mk_stanza_kind(st) != MK_STANZA_MESSAGE || !to || !mk_jid_node(to))
        return MK_PASS;

    MkXml *xml = mk_stanza_xml(st);
    gboolean no_store = mk_xml_child(xml, "no-store", NS_HINTS) != NULL;
    switch (offline_classify(mk_stanza_type(st), no_store, has_content(xml), o->store_groupchat)) {
    case OFFLINE_PASS:
        return MK_PASS;
    case OFFLINE_DROP:
        mk_counter_add(o->dropped, 1);
        return MK_HANDLED;
    case OFFLINE_STORE:
        break;
    }
    offline_store(o, st, to);
    return MK_HANDLED;
}

/* presence_broadcast: runs on the session's worker; the session's
 * availability and priority are updated already. */
static MkResult on_presence_broadcast(MkHookCall *call, gpointer user_data)
{
    Offline *o = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st || mk_stanza_type(st) != NULL)
        return MK_PASS; /* unavailable */
    /* XEP-0160: a negative priority takes no messages; the first
     * non-negative available presence of the session gets them. */
    if (!mk_session_is_available(s) || mk_session_priority(s) < 0)
        return MK_PASS;
    OfflineSlot *slot = mk_session_get_slot(s, o->mod);
    if (!slot) {
        slot = g_new0(OfflineSlot, 1);
        mk_session_set_slot(s, o->mod, slot, g_free);
    }
    if (slot->delivered)
        return MK_PASS;
    slot->delivered = TRUE;
    offline_deliver(o, mk_session_jid(s), s);
    return MK_PASS;
}

static gboolean offline_start(MkModule *mod, GError **error)
{
    Offline *o = g_new0(Offline, 1);
    o->mod = mod;
    o->queue = mk_user_queue_new(mod);
    o->limits.messages = mk_config_get_int(mod, "max_messages");
    o->limits.bytes = mk_config_get_int(mod, "max_bytes");
    o->limits.sender_messages = mk_config_get_int(mod, "max_sender_messages");
    o->limits.sender_bytes = mk_config_get_int(mod, "max_sender_bytes");
    o->retries = (guint)mk_config_get_int(mod, "store_retries");
    o->retry_ms = (guint)mk_config_get_int(mod, "store_retry_ms");
    o->store_groupchat = mk_config_get_bool(mod, "store_groupchat");
    o->stored = mk_counter_new(mod, "stored");
    o->delivered = mk_counter_new(mod, "delivered");
    o->bounced = mk_counter_new(mod, "bounced");
    o->dropped = mk_counter_new(mod, "dropped");
    o->store_failures = mk_counter_new(mod, "storage_failures");
    o->over_bytes = mk_counter_new(mod, "bounced_over_bytes");
    o->over_sender = mk_counter_new(mod, "bounced_over_sender");
    mk_module_set_data(mod, o, g_free); /* freed with the last reference */

    mk_hook_add(mod, MK_HOOK_OFFLINE_MESSAGE, 50, on_offline_message, o);
    mk_hook_add(mod, MK_HOOK_PRESENCE_BROADCAST, 50, on_presence_broadcast, o);
    mk_disco_feature_add(mod, "msgoffline");
    return TRUE;
}

static const MkConfigKey offline_keys[] = {
    {"max_messages", MK_CONFIG_INT, "100", 1, 1000000,
     "messages kept per user; more get service-unavailable"},
    {"max_bytes", MK_CONFIG_INT, "1048576", 1024, G_GINT64_CONSTANT(1) << 40,
     "bytes of stored XML per user; more get service-unavailable"},
    {"max_sender_messages", MK_CONFIG_INT, "50", 1, 1000000,
     "messages one sender (bare JID) may have in one user's store; more get resource-constraint"},
    {"max_sender_bytes", MK_CONFIG_INT, "262144", 1024, G_GINT64_CONSTANT(1) << 40,
     "bytes one sender (bare JID) may have in one user's store; more get resource-constraint"},
    {"store_retries", MK_CONFIG_INT, "4", 0, 20,
     "retries of a failed store before the sender gets resource-constraint"},
    {"store_retry_ms", MK_CONFIG_INT, "250", 10, 60000,
     "wait before the first retry, doubled for each next one (at most 30 s)"},
    {"store_groupchat", MK_CONFIG_BOOL, "true", 0, 0,
     "keep a room's groupchat messages (MUC Light) for members who are offline"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_offline",
    .version = "1.0",
    .config_keys = offline_keys,
    .migrations = offline_migrations,
    .start = offline_start,
};
