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

Offline *offline_ref(Offline *o)
{
    g_atomic_int_inc(&o->ref);
    return o;
}

void offline_unref(Offline *o)
{
    if (!o || !g_atomic_int_dec_and_test(&o->ref))
        return;
    offline_queue_unref(o->queue);
    g_hash_table_destroy(o->timers);
    g_mutex_clear(&o->lock);
    g_free(o);
}

/* A retry timer. Referenced by its source and, while pending, by the
 * module's table; exactly one of func (it fired) and cancel (the module
 * stopped first) runs, decided under the module's lock. */
typedef struct {
    gint ref;
    Offline *o;
    GSource *src;
    GSourceFunc func;
    OfflineCancelFunc cancel;
    gpointer data;
    GDestroyNotify destroy;
} OfflineTimer;

static void timer_unref(gpointer user_data)
{
    OfflineTimer *t = user_data;
    if (!g_atomic_int_dec_and_test(&t->ref))
        return;
    if (t->destroy)
        t->destroy(t->data);
    g_source_unref(t->src);
    offline_unref(t->o);
    g_free(t);
}

static gboolean timer_fire(gpointer user_data)
{
    OfflineTimer *t = user_data;
    g_mutex_lock(&t->o->lock);
    gboolean mine = g_hash_table_steal(t->o->timers, t);
    g_mutex_unlock(&t->o->lock);
    if (mine) {
        t->func(t->data);
        timer_unref(t); /* the table's reference */
    }
    return G_SOURCE_REMOVE;
}

void offline_call_later(Offline *o, GMainContext *ctx, guint delay_ms, GSourceFunc func,
                        OfflineCancelFunc cancel, gpointer data, GDestroyNotify destroy)
{
    OfflineTimer *t = g_new0(OfflineTimer, 1);
    t->ref = 2; /* the table and the source */
    t->o = offline_ref(o);
    t->func = func;
    t->cancel = cancel;
    t->data = data;
    t->destroy = destroy;
    t->src = g_timeout_source_new(delay_ms);
    g_source_set_callback(t->src, timer_fire, t, timer_unref);
    g_source_set_name(t->src, "mod_offline-retry");
    g_mutex_lock(&o->lock);
    g_hash_table_add(o->timers, t);
    g_mutex_unlock(&o->lock);
    g_source_attach(t->src, ctx);
}

/* Main thread; the workers still run. A retry that was waiting is
 * cancelled now (a store bounces its message to the sender; at shutdown
 * the client streams are usually gone already, so mostly this logs)
 * rather than left to a context that will never run it. */
static void offline_stop(MkModule *mod)
{
    Offline *o = mk_module_get_data(mod);
    g_autoptr(GPtrArray) timers = g_ptr_array_new();
    g_mutex_lock(&o->lock);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, o->timers);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        g_ptr_array_add(timers, key); /* takes the table's reference */
        g_hash_table_iter_steal(&it);
    }
    g_mutex_unlock(&o->lock);
    for (guint i = 0; i < timers->len; i++) {
        OfflineTimer *t = g_ptr_array_index(timers, i);
        if (t->cancel)
            t->cancel(t->data);
        g_source_destroy(t->src);
        timer_unref(t);
    }
    /* Waiting stores hold the module instance, which holds the queue:
     * drop them now (each logs its message) to end that cycle. */
    offline_queue_drop_waiting(o->queue);
}

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
    switch (offline_classify(mk_stanza_type(st), no_store, has_content(xml))) {
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
    o->ref = 1;
    o->mod = mod;
    o->queue = offline_queue_new();
    g_mutex_init(&o->lock);
    o->timers = g_hash_table_new(g_direct_hash, g_direct_equal);
    o->limits.messages = mk_config_get_int(mod, "max_messages");
    o->limits.bytes = mk_config_get_int(mod, "max_bytes");
    o->limits.sender_messages = mk_config_get_int(mod, "max_sender_messages");
    o->limits.sender_bytes = mk_config_get_int(mod, "max_sender_bytes");
    o->retries = (guint)mk_config_get_int(mod, "store_retries");
    o->retry_ms = (guint)mk_config_get_int(mod, "store_retry_ms");
    o->stored = mk_metrics_counter(mod, "stored");
    o->delivered = mk_metrics_counter(mod, "delivered");
    o->bounced = mk_metrics_counter(mod, "bounced");
    o->dropped = mk_metrics_counter(mod, "dropped");
    o->store_failures = mk_metrics_counter(mod, "storage_failures");
    o->over_bytes = mk_metrics_counter(mod, "bounced_over_bytes");
    o->over_sender = mk_metrics_counter(mod, "bounced_over_sender");
    mk_module_set_data(mod, o, (GDestroyNotify)offline_unref);

    mk_hook_add(mod, MK_HOOK_OFFLINE_MESSAGE, 50, on_offline_message, o);
    mk_hook_add(mod, MK_HOOK_PRESENCE_BROADCAST, 50, on_presence_broadcast, o);
    mk_disco_add_feature(mod, "msgoffline");
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
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_offline",
    .version = "1.0",
    .config_keys = offline_keys,
    .migrations = offline_migrations,
    .start = offline_start,
    .stop = offline_stop,
};
