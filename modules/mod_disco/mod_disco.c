/* mod_disco: Service Discovery (XEP-0030).
 *
 * The server's disco#info lists the identity server/im plus what every
 * running module registered with mk_disco_feature_add/_identity, and its
 * disco#items the registered items (module subdomains). A local account's
 * bare JID answers with the identity account/registered; its items and
 * its nodes are those of the module that has entities there (PEP, through
 * mk_disco_account_query), else none.
 *
 * Entity capabilities (XEP-0115) of the server live here rather than in a
 * module of their own: the 'ver' must hash exactly what this module
 * answers (its own server/im identity included), and the one node the
 * server has, NODE#VER, is a disco#info request this module owns. The
 * <c/> stream feature is computed by the core each time the registries
 * change (mk_stream_feature_add_func), so modules that start or stop on
 * SIGHUP change the ver at once. Any other node gets item-not-found. */
#include "caps.h"
#include "disco.h"

#define NS_INFO           "http://jabber.org/protocol/disco#info"
#define NS_ITEMS          "http://jabber.org/protocol/disco#items"
#define NS_CAPS           "http://jabber.org/protocol/caps"
#define NS_PUBSUB_PUBLISH "http://jabber.org/protocol/pubsub#publish"

typedef struct {
    char *caps_node;    /* mod_disco.caps_node; "" = no caps */
    DiscoCaps *clients; /* clients' caps (caps-learn.c) */
} Disco;

static void disco_free(gpointer data)
{
    Disco *d = data;
    g_free(d->caps_node);
    disco_caps_free(d->clients);
    g_free(d);
}

static void add_identity(MkXml *query, const char *category, const char *type, const char *name)
{
    MkXml *id = mk_xml_add_child(query, "identity", NULL);
    mk_xml_set_attr(id, "category", category);
    mk_xml_set_attr(id, "type", type);
    if (name && *name)
        mk_xml_set_attr(id, "name", name);
}

/* A request for a node: none exist, so item-not-found. TRUE when it
 * answered. */
static gboolean reject_node(MkIq *iq)
{
    const char *node = mk_xml_get_attr(mk_iq_payload(iq), "node");
    if (!node)
        return FALSE;
    mk_iq_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
    return TRUE;
}

/* The server's identities as disco#info shows them: server/im "Meerkat"
 * first, then the registered ones (groups of 3). Returns: (transfer
 * container) NULL-terminated, borrowing @registered's strings. */
static GPtrArray *server_identities(const char *const *registered)
{
    GPtrArray *out = g_ptr_array_new();
    g_ptr_array_add(out, (gpointer) "server");
    g_ptr_array_add(out, (gpointer) "im");
    g_ptr_array_add(out, (gpointer) "Meerkat");
    for (guint i = 0; registered && registered[i] && registered[i + 1] && registered[i + 2];
         i += 3) {
        /* Ours is first already: skip a module that registered it again. */
        if (g_str_equal(registered[i], "server") && g_str_equal(registered[i + 1], "im"))
            continue;
        for (guint j = 0; j < 3; j++)
            g_ptr_array_add(out, (gpointer)registered[i + j]);
    }
    g_ptr_array_add(out, NULL);
    return out;
}

/* "NODE#VER" for the host type's current registries. (transfer full) */
static char *caps_node_ver(const char *node, const char *const *features,
                           const char *const *identities)
{
    g_autoptr(GPtrArray) ids = server_identities(identities);
    g_autofree char *ver = disco_caps_ver((const char *const *)ids->pdata, features);
    return g_strdup_printf("%s#%s", node, ver);
}

/* Computed stream feature: the XEP-0115 <c/> of the server. Main thread,
 * each time the registries change. (transfer full) */
static char *caps_feature(MkModule *mod, const char *const *features, const char *const *identities,
                          gpointer user_data)
{
    Disco *d = user_data;
    g_autoptr(GPtrArray) ids = server_identities(identities);
    g_autofree char *ver = disco_caps_ver((const char *const *)ids->pdata, features);
    g_autoptr(MkXml) c = mk_xml_new("c", NS_CAPS);
    mk_xml_set_attr(c, "hash", "sha-1");
    mk_xml_set_attr(c, "node", d->caps_node);
    mk_xml_set_attr(c, "ver", ver);
    return mk_xml_to_string(c, NULL);
}

static MkResult server_info(MkIq *iq, gpointer user_data)
{
    Disco *d = user_data;
    const char *domain = mk_jid_domain(mk_iq_to(iq));
    g_auto(GStrv) ids = mk_disco_identities(domain);
    g_auto(GStrv) features = mk_disco_features(domain);
    const char *node = mk_xml_get_attr(mk_iq_payload(iq), "node");
    if (node) {
        /* The only node: NODE#VER of the caps, answered as the server. */
        g_autofree char *current = *d->caps_node
                                       ? caps_node_ver(d->caps_node, (const char *const *)features,
                                                       (const char *const *)ids)
                                       : NULL;
        if (g_strcmp0(node, current) != 0) {
            mk_iq_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
            return MK_HANDLED;
        }
    }
    g_autoptr(MkXml) query = mk_xml_new("query", NS_INFO);
    if (node)
        mk_xml_set_attr(query, "node", node);
    g_autoptr(GPtrArray) all = server_identities((const char *const *)ids);
    for (guint i = 0; i + 3 < all->len; i += 3)
        add_identity(query, all->pdata[i], all->pdata[i + 1], all->pdata[i + 2]);
    for (guint i = 0; features && features[i]; i++) {
        MkXml *f = mk_xml_add_child(query, "feature", NULL);
        mk_xml_set_attr(f, "var", features[i]);
    }
    mk_iq_reply(iq, g_steal_pointer(&query));
    return MK_HANDLED;
}

static MkResult server_items(MkIq *iq, gpointer user_data)
{
    if (reject_node(iq))
        return MK_HANDLED;
    const char *domain = mk_jid_domain(mk_iq_to(iq));
    g_autoptr(MkXml) query = mk_xml_new("query", NS_ITEMS);
    g_auto(GStrv) items = mk_disco_items(domain);
    for (guint i = 0; items && items[i] && items[i + 1]; i += 2) {
        MkXml *item = mk_xml_add_child(query, "item", NULL);
        mk_xml_set_attr(item, "jid", items[i]);
        if (*items[i + 1])
            mk_xml_set_attr(item, "name", items[i + 1]);
    }
    mk_iq_reply(iq, g_steal_pointer(&query));
    return MK_HANDLED;
}

/* The account's answer waits for the storage check that it exists: a
 * JID that is no account gets service-unavailable, as if nobody were
 * there (RFC 6121 8.5.1). */
typedef struct {
    MkIq *iq;
    MkJid *account;
    gboolean info;
    gboolean node; /* the query names a node */
} AccountQuery;

static void account_checked(MkDbResult *result, const GError *error, gpointer user_data)
{
    AccountQuery *q = user_data;
    if (error) {
        g_warning("mod_disco: looking up %s: %s", mk_jid_bare_string(mk_iq_to(q->iq)),
                  error->message);
        mk_iq_reply_error(q->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    } else if (mk_db_result_rows(result) == 0) {
        mk_iq_reply_error(q->iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    } else if ((q->node || !q->info) &&
               mk_disco_account_query(mk_iq_module(q->iq), q->iq, q->account)) {
        /* The module with entities at accounts answers. */
    } else if (q->node) {
        mk_iq_reply_error(q->iq, MK_ERR_ITEM_NOT_FOUND, NULL);
    } else if (q->info) {
        g_autoptr(MkXml) query = mk_xml_new("query", NS_INFO);
        MkJid *to = mk_iq_to(q->iq);
        MkJid *account = to && mk_jid_node(to) ? to : mk_iq_from(q->iq);
        g_auto(GStrv) more = mk_disco_account_features(mk_jid_domain(account));
        add_identity(query, "account", "registered", NULL);
        /* XEP-0163 section 4: an account with a PEP service (a module
         * advertises PubSub on accounts) is also a pubsub/pep entity. */
        if (g_strv_contains((const char *const *)more, NS_PUBSUB_PUBLISH))
            add_identity(query, "pubsub", "pep", NULL);
        MkXml *f = mk_xml_add_child(query, "feature", NULL);
        mk_xml_set_attr(f, "var", NS_INFO);
        f = mk_xml_add_child(query, "feature", NULL);
        mk_xml_set_attr(f, "var", NS_ITEMS);
        for (char **v = more; *v; v++)
            mk_xml_set_attr(mk_xml_add_child(query, "feature", NULL), "var", *v);
        mk_iq_reply(q->iq, g_steal_pointer(&query));
    } else {
        mk_iq_reply(q->iq, mk_xml_new("query", NS_ITEMS));
    }
    mk_iq_unref(q->iq);
    mk_jid_unref(q->account);
    g_free(q);
}

static MkResult account_query(MkIq *iq, gboolean info)
{
    /* A user asking about itself sends no 'to'; the core then gives the
     * sender as the account. */
    MkJid *account = mk_iq_to(iq) && mk_jid_node(mk_iq_to(iq)) ? mk_iq_to(iq) : mk_iq_from(iq);
    AccountQuery *q = g_new0(AccountQuery, 1);
    q->iq = mk_iq_ref(iq);
    q->account = mk_jid_bare(account);
    q->info = info;
    q->node = mk_xml_get_attr(mk_iq_payload(iq), "node") != NULL;
    mk_db_query(mk_iq_module(iq), "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                account_checked, q, MK_DB_STR(mk_jid_node(account)),
                MK_DB_STR(mk_jid_domain(account)));
    return MK_HANDLED;
}

static MkResult account_info(MkIq *iq, gpointer user_data)
{
    return account_query(iq, TRUE);
}

static MkResult account_items(MkIq *iq, gpointer user_data)
{
    return account_query(iq, FALSE);
}

static gboolean disco_start(MkModule *mod, GError **error)
{
    Disco *d = g_new0(Disco, 1);
    d->caps_node = g_strdup(mk_config_get_string(mod, "caps_node"));
    if (!d->caps_node)
        d->caps_node = g_strdup("");
    d->clients = disco_caps_new(mod);
    mk_module_set_data(mod, d, disco_free);
    disco_caps_start(d->clients);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_INFO, server_info, d, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_ITEMS, server_items, NULL, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_INFO, account_info, NULL, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_ITEMS, account_items, NULL, error))
        return FALSE;
    mk_disco_feature_add(mod, NS_INFO);
    mk_disco_feature_add(mod, NS_ITEMS);
    if (*d->caps_node)
        mk_stream_feature_add_func(mod, MK_STREAM_PRE_AUTH | MK_STREAM_POST_AUTH, caps_feature, d);
    return TRUE;
}

static const MkConfigKey disco_keys[] = {
    {"caps_node", MK_CONFIG_STRING, "https://meerkat.example/caps", 0, 0,
     "XEP-0115 node of the server's <c/> stream feature (empty: no caps)"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,     .name = "mod_disco",  .version = "1.1",
    .config_keys = disco_keys, .start = disco_start,
};
