/* Privacy list items and their evaluation (XEP-0016 2.1 and 2.2). Pure:
 * compiled into the unit test without the server. */
#include <string.h>

#include "privacy.h"

void priv_item_free(PrivItem *item)
{
    if (!item)
        return;
    g_free(item->value);
    g_free(item->node);
    g_free(item->domain);
    g_free(item->res);
    g_free(item);
}

int priv_sub_parse(const char *name)
{
    if (g_strcmp0(name, "none") == 0)
        return PRIV_SUB_NONE;
    if (g_strcmp0(name, "to") == 0)
        return PRIV_SUB_TO;
    if (g_strcmp0(name, "from") == 0)
        return PRIV_SUB_FROM;
    if (g_strcmp0(name, "both") == 0)
        return PRIV_SUB_BOTH;
    return -1;
}

const char *priv_sub_name(guint sub)
{
    static const char *const names[] = {"none", "to", "from", "both"};
    return names[sub & PRIV_SUB_BOTH];
}

/* @domain is @parent or one of its subdomains. */
static gboolean domain_within(const char *domain, const char *parent)
{
    if (g_strcmp0(domain, parent) == 0)
        return TRUE;
    size_t dl = strlen(domain), pl = strlen(parent);
    return dl > pl + 1 && domain[dl - pl - 1] == '.' && strcmp(domain + dl - pl, parent) == 0;
}

gboolean priv_jid_match(const char *inode, const char *idomain, const char *ires, const char *node,
                        const char *domain, const char *res)
{
    if (!idomain || !domain)
        return FALSE;
    if (inode) {
        if (g_strcmp0(inode, node) != 0 || g_strcmp0(idomain, domain) != 0)
            return FALSE;
        return !ires || g_strcmp0(ires, res) == 0;
    }
    if (ires)
        return !node && g_strcmp0(idomain, domain) == 0 && g_strcmp0(ires, res) == 0;
    return domain_within(domain, idomain);
}

static gboolean item_matches(const PrivItem *item, const PrivPeer *peer)
{
    switch (item->type) {
    case PRIV_TYPE_NONE:
        return TRUE;
    case PRIV_TYPE_JID:
        return priv_jid_match(item->node, item->domain, item->res, peer->node, peer->domain,
                              peer->res);
    case PRIV_TYPE_GROUP:
        for (guint i = 0; peer->groups && peer->groups[i]; i++)
            if (g_strcmp0(peer->groups[i], item->value) == 0)
                return TRUE;
        return FALSE;
    case PRIV_TYPE_SUBSCRIPTION:
        /* "none" also covers entities not in the roster at all. */
        return peer->sub == item->sub;
    }
    return FALSE;
}

gboolean priv_items_allow(const GPtrArray *items, guint kind, const PrivPeer *peer)
{
    for (guint i = 0; items && i < items->len; i++) {
        const PrivItem *item = g_ptr_array_index(items, i);
        /* An item with stanza kinds covers only those; without, all. */
        if (item->kinds && !(item->kinds & kind))
            continue;
        if (item_matches(item, peer))
            return item->allow;
    }
    return TRUE;
}
