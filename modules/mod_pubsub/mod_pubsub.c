/* mod_pubsub: Publish-Subscribe (XEP-0060) at pubsub.DOMAIN and the
 * Personal Eventing Protocol (XEP-0163) at every account's bare JID, one
 * code path for both (pubsub.h). docs/mod_pubsub.md. */
#include "pubsub.h"

#include <string.h>

static void pubsub_free(gpointer data)
{
    PubSub *ps = data;
    g_free(ps->host);
    g_strfreev(ps->admins);
    g_hash_table_destroy(ps->pending);
    g_mutex_clear(&ps->pending_lock);
    g_hash_table_destroy(ps->caps_waits);
    g_mutex_clear(&ps->caps_lock);
    g_free(ps);
}

/* Stanzas to the service's domain and its nodes' JIDs. Worker. */
static void on_route(MkStanza *st, gpointer user_data)
{
    PubSub *ps = user_data;
    MkJid *to = mk_stanza_to(st);
    if (mk_stanza_kind(st) == MK_STANZA_PRESENCE ||
        (mk_stanza_kind(st) == MK_STANZA_IQ &&
         (g_strcmp0(mk_stanza_type(st), "result") == 0 || mk_stanza_is_error(st))))
        return;
    if (mk_jid_node(to) || mk_jid_resource(to)) {
        /* Nothing lives at user@pubsub.DOMAIN. */
        g_autoptr(MkStanza) err = mk_stanza_new_error_reply(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        if (err)
            mk_router_send(err);
        return;
    }
    ps_handle(ps, ps->mod, NULL, st, to, FALSE);
}

/* "pubsub.@HOST@" with @domain for @HOST@. (transfer full) */
static char *service_host(const char *pattern, const char *domain)
{
    g_auto(GStrv) parts = g_strsplit(pattern, "@HOST@", -1);
    return g_strjoinv(domain, parts);
}

static gboolean pubsub_start(MkModule *mod, GError **error)
{
    PubSub *ps = g_new0(PubSub, 1);
    ps->mod = mod;
    ps->queue = mk_user_queue_new(mod);
    ps->host = g_strdup(mk_config_get_string(mod, "host"));
    ps->max_items = mk_config_get_int(mod, "max_items");
    ps->max_payload = mk_config_get_int(mod, "max_payload_size");
    ps->max_nodes = mk_config_get_int(mod, "max_nodes");
    ps->max_subscriptions = mk_config_get_int(mod, "max_subscriptions");
    ps->max_pending = mk_config_get_int(mod, "max_pending");
    ps->max_user_subscriptions = mk_config_get_int(mod, "max_user_subscriptions");
    g_mutex_init(&ps->pending_lock);
    ps->pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_mutex_init(&ps->caps_lock);
    ps->caps_waits = ps_caps_waits_new();
    ps->admins_only_create = g_strcmp0(mk_config_get_string(mod, "node_creation"), "admins") == 0;
    const char *const *admins = mk_config_get_strv(mod, "admins");
    ps->admins = g_strdupv((char **)admins);
    ps->publishes = mk_counter_new(mod, "publishes");
    ps->notifications = mk_counter_new(mod, "notifications");
    ps->refusals = mk_counter_new(mod, "refusals");
    ps->limit_refusals = mk_counter_new(mod, "limit_refusals");
    ps->purged = mk_counter_new(mod, "purged_offline");
    mk_module_set_data(mod, ps, pubsub_free);
    const char *creation = mk_config_get_string(mod, "node_creation");
    if (g_strcmp0(creation, "local") != 0 && g_strcmp0(creation, "admins") != 0) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_pubsub: node_creation is \"local\" or \"admins\", not \"%s\"", creation);
        return FALSE;
    }
    if (ps->host && *ps->host) {
        g_auto(GStrv) domains = mk_module_domains(mod);
        for (guint i = 0; domains && domains[i]; i++) {
            g_autofree char *host = service_host(ps->host, domains[i]);
            if (!mk_route_register(mod, host, on_route, ps, error))
                return FALSE;
            mk_disco_item_add(mod, host, "Publish-Subscribe");
        }
    }
    if (mk_config_get_bool(mod, "pep") && !ps_pep_start(ps, error))
        return FALSE;
    ps_accounts_start(ps);
    ps_offline_start(ps);
    return TRUE;
}

static const MkConfigKey pubsub_keys[] = {
    {"host", MK_CONFIG_STRING, "pubsub.@HOST@", 0, 0,
     "domain of the PubSub service, @HOST@ = each served domain (empty: no service, PEP only)"},
    {"pep", MK_CONFIG_BOOL, "true", 0, 0, "PEP (XEP-0163) at every account's bare JID"},
    {"max_items", MK_CONFIG_INT, "1000", 1, 100000,
     "items a node keeps at most; what pubsub#max_items 'max' means"},
    {"max_payload_size", MK_CONFIG_INT, "65536", 64, 8388608,
     "bytes of one item's payload (not-acceptable + payload-too-big beyond)"},
    {"max_nodes", MK_CONFIG_INT, "1000", 1, 1000000,
     "nodes of one account's PEP service, and nodes one user owns at the service"},
    {"max_subscriptions", MK_CONFIG_INT, "4", 1, 100,
     "subscriptions of one JID to one node (several need subids)"},
    {"max_user_subscriptions", MK_CONFIG_INT, "1000", 1, 1000000,
     "subscriptions of one user (bare JID) to all nodes of every service and PEP account"},
    {"max_pending", MK_CONFIG_INT, "200", 1, 100000,
     "requests of one service (an account's PEP, or the service) waiting for storage;"
     " beyond: resource-constraint"},
    {"node_creation", MK_CONFIG_STRING, "local", 0, 0,
     "who creates nodes at the service: 'local' (users of served domains) or 'admins'"},
    {"admins", MK_CONFIG_STRV, "", 0, 0, "bare JIDs that create nodes with node_creation = admins"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,      .name = "mod_pubsub",        .version = "1.0",
    .config_keys = pubsub_keys, .migrations = ps_migrations, .start = pubsub_start,
};
