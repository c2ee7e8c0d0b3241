/* mod_pinger: a complete server-pinging module on the module API alone,
 * built out of tree like mod_example. Every `interval` seconds it pings
 * (XEP-0199) each client silent for that long and closes those that do
 * not answer within the interval. The core keeps the module's requests,
 * sessions and timer alive for it: no reference counting here. */
#include <meerkat/module.h>

/* No answer in time from a session that is still there: it is gone. */
static void pinged(MkStanza *response, gpointer data)
{
    MkSession *s = data;
    if (!response && mk_session_is_bound(s) && !mk_session_is_detached(s))
        mk_session_close(s, "connection-timeout");
}

static void ping_one(MkSession *s, gpointer mod)
{
    gint64 interval = mk_config_get_int(mod, "interval");
    if (mk_session_is_detached(s) || mk_session_idle_seconds(s) < interval)
        return;
    g_autoptr(MkJid) server = mk_jid_new(mk_jid_domain(mk_session_jid(s)), NULL);
    g_autoptr(MkXml) iq = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(iq, "type", "get");
    mk_xml_add_child(iq, "ping", "urn:xmpp:ping");
    g_autoptr(MkStanza) request = mk_stanza_new_addressed(iq, server, mk_session_jid(s));
    mk_iq_send(mod, request, (guint)interval * 1000, pinged, mk_session_ref(s),
               (GDestroyNotify)mk_session_unref);
}

static gboolean sweep(gpointer mod)
{
    mk_session_foreach(ping_one, mod);
    return G_SOURCE_CONTINUE;
}

static gboolean pinger_start(MkModule *mod, GError **error)
{
    mk_timer_add(mod, (guint)mk_config_get_int(mod, "interval") * 1000, sweep, mod);
    return TRUE;
}

static const MkConfigKey pinger_keys[] = {
    {"interval", MK_CONFIG_INT, "60", 1, 3600, "seconds of silence before a ping"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,      .name = "mod_pinger",  .version = "1.0",
    .config_keys = pinger_keys, .start = pinger_start,
};
