/* mod_ping: XMPP Ping (XEP-0199).
 *
 * Answers urn:xmpp:ping requests addressed to the server and, when
 * ping_interval is set, pings clients that have been silent that long and
 * closes with connection-timeout those that do not answer within
 * ping_timeout. All the sweeping state lives on the main thread: the
 * timer, mk_sm_foreach and the mk_iq_send completions all run there.
 *
 * Sessions detached by stream management (XEP-0198) are left alone: their
 * client cannot answer until it resumes, and closing them would end them
 * before the resumption timeout the operator granted; the core ends them
 * when that expires. */
#include <meerkat/module.h>

#define NS_PING "urn:xmpp:ping"

typedef struct {
    gint ref;
    MkModule *mod;
    gboolean stopped;    /* set by stop(); late completions then do nothing */
    gint64 interval;     /* seconds; 0 = no idle pings */
    gint64 timeout;      /* seconds */
    GHashTable *pending; /* MkSession* (ref) -> itself: a ping is in flight */
    MkCounter *sent;
    MkCounter *timeouts;
    MkCounter *answered;
    guint64 next_id;
} Ping;

typedef struct {
    Ping *ping;
    MkSession *session; /* ref */
} PingCall;

static Ping *ping_ref(Ping *p)
{
    g_atomic_int_inc(&p->ref);
    return p;
}

static void ping_unref(gpointer data)
{
    Ping *p = data;
    if (!g_atomic_int_dec_and_test(&p->ref))
        return;
    g_hash_table_destroy(p->pending);
    g_free(p);
}

/* The server answers a ping with an empty result. */
static MkResult ping_iq(MkIq *iq, gpointer user_data)
{
    mk_iq_reply(iq, NULL);
    return MK_HANDLED;
}

/* TRUE while @s is still bound: a session that ended meanwhile must not
 * count as a timeout. */
static gboolean session_alive(MkSession *s)
{
    g_autoptr(MkJid) bare = mk_jid_bare(mk_session_jid(s));
    g_autoptr(GPtrArray) sessions = mk_sm_sessions_of(bare);
    for (guint i = 0; i < sessions->len; i++)
        if (g_ptr_array_index(sessions, i) == s)
            return TRUE;
    return FALSE;
}

/* Main thread: the answer (any result or error proves the client is
 * there) or NULL after ping_timeout. */
static void ping_done(MkStanza *response, gpointer user_data)
{
    PingCall *call = user_data;
    Ping *p = call->ping;

    if (!p->stopped) {
        if (response) {
            mk_counter_add(p->answered, 1);
        } else if (session_alive(call->session) && !mk_session_is_detached(call->session)) {
            /* (Detached: the connection dropped after the ping was sent;
             * the ping waits in the stream's queue for the resumed one.) */
            mk_counter_add(p->timeouts, 1);
            g_info("mod_ping: %s did not answer a ping within %" G_GINT64_FORMAT
                   " s, closing its stream",
                   mk_jid_string(mk_session_jid(call->session)), p->timeout);
            mk_session_close(call->session, "connection-timeout");
        }
        g_hash_table_remove(p->pending, call->session);
    }
    mk_session_unref(call->session);
    ping_unref(p);
    g_free(call);
}

static void sweep_one(MkSession *s, gpointer user_data)
{
    Ping *p = user_data;
    if (g_hash_table_contains(p->pending, s))
        return;
    if (mk_session_is_detached(s))
        return;
    if (mk_session_idle_seconds(s) < p->interval)
        return;

    MkJid *to = mk_session_jid(s);
    g_autoptr(MkJid) from = mk_jid_new(mk_jid_domain(to), NULL);
    if (!from)
        return;
    g_autofree char *id = g_strdup_printf("mk-ping-%" G_GUINT64_FORMAT, ++p->next_id);
    g_autoptr(MkXml) xml = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(xml, "type", "get");
    mk_xml_set_attr(xml, "id", id);
    mk_xml_add_child(xml, "ping", NS_PING);
    g_autoptr(MkStanza) request = mk_stanza_new_addressed(xml, from, to);

    PingCall *call = g_new0(PingCall, 1);
    call->ping = ping_ref(p);
    call->session = mk_session_ref(s);
    g_hash_table_add(p->pending, mk_session_ref(s));
    mk_counter_add(p->sent, 1);
    mk_iq_send(p->mod, request, (guint)(p->timeout * 1000), ping_done, call, NULL);
}

static gboolean sweep(gpointer user_data)
{
    Ping *p = user_data;
    mk_sm_foreach(sweep_one, p);
    return G_SOURCE_CONTINUE;
}

static gboolean ping_start(MkModule *mod, GError **error)
{
    Ping *p = g_new0(Ping, 1);
    p->ref = 1;
    p->mod = mod;
    p->interval = mk_config_get_int(mod, "ping_interval");
    p->timeout = mk_config_get_int(mod, "ping_timeout");
    p->pending = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                       (GDestroyNotify)mk_session_unref, NULL);
    p->sent = mk_metrics_counter(mod, "pings_sent");
    p->answered = mk_metrics_counter(mod, "pings_answered");
    p->timeouts = mk_metrics_counter(mod, "ping_timeouts");
    mk_module_set_data(mod, p, ping_unref);

    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_PING, ping_iq, p, error))
        return FALSE;
    mk_disco_add_feature(mod, NS_PING);

    if (p->interval > 0) {
        /* Sweeping at half the interval finds a client at most 1.5
         * intervals after it fell silent; never more often than once a
         * second, never less often than once a minute. */
        gint64 period_ms = CLAMP(p->interval * 1000 / 2, 1000, 60000);
        mk_timer_add(mod, (guint)period_ms, sweep, p);
    }
    return TRUE;
}

static void ping_stop(MkModule *mod)
{
    Ping *p = mk_module_get_data(mod);
    /* Pings still in flight hold their own references; they only tidy up
     * from now on. */
    if (p)
        p->stopped = TRUE;
}

static const MkConfigKey ping_keys[] = {
    {"ping_interval", MK_CONFIG_INT, "0", 0, 86400,
     "ping clients silent for this many seconds (0 = never)"},
    {"ping_timeout", MK_CONFIG_INT, "32", 1, 3600,
     "seconds a pinged client has to answer before its stream is closed"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,    .name = "mod_ping",  .version = "1.0",
    .config_keys = ping_keys, .start = ping_start, .stop = ping_stop,
};
