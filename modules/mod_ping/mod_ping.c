/* mod_ping: XMPP Ping (XEP-0199), see docs/mod_ping.md. Answers pings to
 * the server (and a client's ping without 'to', RFC 6120 10.3.3); with
 * ping_interval set, pings clients silent that long and
 * closes with connection-timeout those that do not answer within
 * ping_timeout. The sweep and the completions run on the main thread.
 * Sessions detached by stream management are left alone: their client
 * cannot answer until it resumes, and the core ends them on its own. */
#include <meerkat/module.h>

#define NS_PING "urn:xmpp:ping"

typedef struct {
    MkModule *mod;
    gint64 interval, timeout; /* seconds */
    GHashTable *pending;      /* MkSession* (ref): a ping is in flight */
    MkCounter *sent, *answered, *timeouts;
} Ping;

typedef struct {
    Ping *p;
    MkSession *s; /* the reference in p->pending */
} Call;

/* The server answers a ping with an empty result: to itself, and (RFC
 * 6120 10.3.3) one a client sends without 'to' or to its own bare JID.
 * Another entity's ping of an account is not answered for it. */
static MkResult ping_iq(MkIq *iq, gpointer user_data)
{
    MkJid *to = mk_iq_to(iq);
    if (to && mk_jid_node(to) && !mk_jid_bare_equal(to, mk_iq_from(iq)))
        return MK_PASS;
    mk_iq_reply(iq, NULL);
    return MK_HANDLED;
}

/* Any answer, even an error, proves the client is there. A session that
 * ended or lost its connection meanwhile is no timeout. */
static void ping_done(MkStanza *response, gpointer user_data)
{
    Call *c = user_data;
    if (!mk_module_is_running(c->p->mod)) {
        g_debug("mod_ping: the ping of %s ended after the module stopped",
                mk_jid_string(mk_session_jid(c->s)));
    } else if (response) {
        mk_counter_add(c->p->answered, 1);
    } else if (mk_session_is_bound(c->s) && !mk_session_is_detached(c->s)) {
        mk_counter_add(c->p->timeouts, 1);
        g_info("mod_ping: %s did not answer a ping within %" G_GINT64_FORMAT " s, closing it",
               mk_jid_string(mk_session_jid(c->s)), c->p->timeout);
        mk_session_close(c->s, "connection-timeout");
    }
}

static void call_free(gpointer data)
{
    Call *c = data;
    g_hash_table_remove(c->p->pending, c->s);
    g_free(c);
}

static void sweep_one(MkSession *s, gpointer user_data)
{
    Ping *p = user_data;
    if (g_hash_table_contains(p->pending, s) || mk_session_is_detached(s) ||
        mk_session_idle_seconds(s) < p->interval)
        return;
    g_autoptr(MkJid) server = mk_jid_new(mk_jid_domain(mk_session_jid(s)), NULL);
    g_autoptr(MkXml) xml = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(xml, "type", "get");
    mk_xml_add_child(xml, "ping", NS_PING);
    g_autoptr(MkStanza) request = mk_stanza_new_addressed(xml, server, mk_session_jid(s));
    Call *c = g_new0(Call, 1);
    c->p = p;
    c->s = mk_session_ref(s);
    g_hash_table_add(p->pending, c->s);
    mk_counter_add(p->sent, 1);
    mk_iq_send(p->mod, request, (guint)(p->timeout * 1000), ping_done, c, call_free);
}

static gboolean sweep(gpointer user_data)
{
    mk_session_foreach(sweep_one, user_data);
    return G_SOURCE_CONTINUE;
}

static void ping_free(gpointer data)
{
    Ping *p = data;
    g_hash_table_destroy(p->pending);
    g_free(p);
}

static gboolean ping_start(MkModule *mod, GError **error)
{
    Ping *p = g_new0(Ping, 1);
    p->mod = mod;
    p->interval = mk_config_get_int(mod, "ping_interval");
    p->timeout = mk_config_get_int(mod, "ping_timeout");
    p->pending = g_hash_table_new_full(NULL, NULL, (GDestroyNotify)mk_session_unref, NULL);
    p->sent = mk_counter_new(mod, "pings_sent");
    p->answered = mk_counter_new(mod, "pings_answered");
    p->timeouts = mk_counter_new(mod, "ping_timeouts");
    mk_module_set_data(mod, p, ping_free);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER | MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_PING, ping_iq,
                        p, error))
        return FALSE;
    mk_disco_feature_add(mod, NS_PING);
    /* Half the interval finds a client at most 1.5 intervals after it
     * fell silent; between once a second and once a minute. */
    if (p->interval > 0)
        mk_timer_add(mod, (guint)CLAMP(p->interval * 1000 / 2, 1000, 60000), sweep, p);
    return TRUE;
}

static const MkConfigKey ping_keys[] = {
    {"ping_interval", MK_CONFIG_INT, "0", 0, 86400,
     "ping clients silent for this many seconds (0 = never)"},
    {"ping_timeout", MK_CONFIG_INT, "32", 1, 3600,
     "seconds a pinged client has to answer before its stream is closed"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,    .name = "mod_ping",  .version = "2.0",
    .config_keys = ping_keys, .start = ping_start,
};
