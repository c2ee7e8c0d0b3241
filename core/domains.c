/* Served domains for modules (mk-domains.h) over core/hosts.c. */
#include "hosts.h"
#include "server.h"

static char *prepare(const char *domain)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, domain, NULL, NULL);
    return jid ? g_strdup(mk_jid_domain(jid)) : NULL;
}

/* Public module API (mk-domains.h). Any thread. */
const char *mk_domain_host_type(const char *domain)
{
    MkServer *srv = mk_server_get();
    g_autofree char *p = domain ? prepare(domain) : NULL;
    return srv && p ? mk_hosts_lookup(srv->hosts, p) : NULL;
}

/* Public module API. Main thread. */
gboolean mk_domain_add(const char *host_type, const char *domain, GError **error)
{
    g_return_val_if_fail(host_type && domain, FALSE);
    MkServer *srv = mk_server_get();
    g_autofree char *p = prepare(domain);
    if (!srv || !p) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "invalid domain %s", domain);
        return FALSE;
    }
    const char *other = mk_hosts_lookup(srv->hosts, p);
    if (other) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                    "domain %s is served by host type %s already", p, other);
        return FALSE;
    }
    g_autoptr(GError) local = NULL;
    if (!mk_hosts_add_domain(srv->hosts, host_type, p, &local)) {
        g_set_error_literal(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, local->message);
        return FALSE;
    }
    return TRUE;
}

/* Public module API. Main thread. */
gboolean mk_domain_remove(const char *domain, GError **error)
{
    g_return_val_if_fail(domain != NULL, FALSE);
    MkServer *srv = mk_server_get();
    g_autoptr(GError) local = NULL;
    if (!srv || !mk_hosts_remove_domain(srv->hosts, domain, &local)) {
        g_set_error_literal(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                            local ? local->message : "no server");
        return FALSE;
    }
    return TRUE;
}
