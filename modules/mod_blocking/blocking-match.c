/* JID matching of block list items (XEP-0191 section 4, which takes the
 * rules of XEP-0016 section 2.1). Pure: compiled into the unit test. */
#include <glib.h>
#include <string.h>

gboolean blocking_jid_match(const char *inode, const char *idomain, const char *ires,
                            const char *node, const char *domain, const char *res);

/* @domain is @parent or one of its subdomains. */
static gboolean domain_within(const char *domain, const char *parent)
{
    if (g_strcmp0(domain, parent) == 0)
        return TRUE;
    size_t dl = strlen(domain), pl = strlen(parent);
    return dl > pl + 1 && domain[dl - pl - 1] == '.' && strcmp(domain + dl - pl, parent) == 0;
}

gboolean blocking_jid_match(const char *inode, const char *idomain, const char *ires,
                            const char *node, const char *domain, const char *res)
{
    if (!idomain || !domain)
        return FALSE;
    if (inode) {
        /* user@domain/resource: only that resource; user@domain: any. */
        if (g_strcmp0(inode, node) != 0 || g_strcmp0(idomain, domain) != 0)
            return FALSE;
        return !ires || g_strcmp0(ires, res) == 0;
    }
    if (ires) /* domain/resource: only that JID */
        return !node && g_strcmp0(idomain, domain) == 0 && g_strcmp0(ires, res) == 0;
    /* A domain covers itself, every JID at it and its subdomains. */
    return domain_within(domain, idomain);
}
