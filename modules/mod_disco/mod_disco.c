/* mod_disco: Service Discovery (XEP-0030).
 *
 * The server's disco#info lists the identity server/im plus what every
 * running module registered with mk_disco_add_feature/_identity, and its
 * disco#items the registered items (module subdomains). A local account's
 * bare JID answers with the identity account/registered and no items.
 * Nodes: none are defined, so any 'node' gets item-not-found. */
#include <meerkat/module.h>

#define NS_INFO  "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"

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

static MkResult server_info(MkIq *iq, gpointer user_data)
{
    if (reject_node(iq))
        return MK_HANDLED;
    const char *domain = mk_jid_domain(mk_iq_to(iq));
    g_autoptr(MkXml) query = mk_xml_new("query", NS_INFO);

    add_identity(query, "server", "im", "Meerkat");
    g_auto(GStrv) ids = mk_disco_identities(domain);
    for (guint i = 0; ids && ids[i] && ids[i + 1] && ids[i + 2]; i += 3) {
        /* Ours is first already: skip a module that registered it again. */
        if (g_str_equal(ids[i], "server") && g_str_equal(ids[i + 1], "im"))
            continue;
        add_identity(query, ids[i], ids[i + 1], ids[i + 2]);
    }
    g_auto(GStrv) features = mk_disco_features(domain);
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
    gboolean info;
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
    } else if (q->info) {
        g_autoptr(MkXml) query = mk_xml_new("query", NS_INFO);
        add_identity(query, "account", "registered", NULL);
        MkXml *f = mk_xml_add_child(query, "feature", NULL);
        mk_xml_set_attr(f, "var", NS_INFO);
        f = mk_xml_add_child(query, "feature", NULL);
        mk_xml_set_attr(f, "var", NS_ITEMS);
        mk_iq_reply(q->iq, g_steal_pointer(&query));
    } else {
        mk_iq_reply(q->iq, mk_xml_new("query", NS_ITEMS));
    }
    mk_iq_unref(q->iq);
    g_free(q);
}

static MkResult account_query(MkIq *iq, gboolean info)
{
    if (reject_node(iq))
        return MK_HANDLED;
    /* A user asking about itself sends no 'to'; the core then gives the
     * sender as the account. */
    MkJid *account = mk_iq_to(iq) && mk_jid_node(mk_iq_to(iq)) ? mk_iq_to(iq) : mk_iq_from(iq);
    AccountQuery *q = g_new0(AccountQuery, 1);
    q->iq = mk_iq_ref(iq);
    q->info = info;
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
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_INFO, server_info, NULL, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_ITEMS, server_items, NULL, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_INFO, account_info, NULL, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_ITEMS, account_items, NULL, error))
        return FALSE;
    mk_disco_add_feature(mod, NS_INFO);
    mk_disco_add_feature(mod, NS_ITEMS);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_disco",
    .version = "1.0",
    .start = disco_start,
};
