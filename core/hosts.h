/* Host types and the domains they serve. Read on every stanza by every
 * worker, so lookups take no lock: the table is an immutable snapshot
 * replaced as a whole (RCU-like) when a domain is added or removed. */
#pragma once

#include "mk-core.h"

MkHosts *mk_hosts_new(const MkConfigData *cfg);
void mk_hosts_free(MkHosts *hosts);

/* The host type serving @domain (prepared), or NULL. (transfer none): an
 * interned string, valid for the process's life. Any thread. */
const char *mk_hosts_lookup(MkHosts *hosts, const char *domain);
/* Domains of @host_type now. (transfer full) NULL-terminated. Any thread. */
char **mk_hosts_domains(MkHosts *hosts, const char *host_type);
/* Every host type name. (transfer full) NULL-terminated. */
char **mk_hosts_types(MkHosts *hosts);
/* Adds/removes a domain at run time; modules are not restarted. The
 * domain_added hook runs for the host type. Main thread. */
gboolean mk_hosts_add_domain(MkHosts *hosts, const char *host_type, const char *domain,
                             GError **error);
gboolean mk_hosts_remove_domain(MkHosts *hosts, const char *domain, GError **error);

/* Serves the domains stored by mk_domain_add_stored (core/domains.c).
 * Main thread, at start, after the migrations and before the modules. */
gboolean mk_domains_restore(MkServer *srv, GError **error);
