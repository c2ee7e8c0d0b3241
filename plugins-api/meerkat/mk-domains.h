#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The served domains at run time, for administration modules (Since
 * ABI 2.1). A domain added here lasts until the process ends or it is
 * removed; the configuration's `hosts` are what a restart serves. */

/* The host type serving @domain (prepared or not), or NULL. (transfer
 * none): an interned string. Any thread. */
MK_API const char *mk_domain_host_type(const char *domain);
/* Serves @domain with @host_type from now on (the hook domain_added runs
 * for its host type). FALSE with MK_MODULE_ERROR_DUPLICATE when it is
 * served already (any host type), MK_MODULE_ERROR_START when the host
 * type is unknown or the name invalid. Main thread. */
MK_API gboolean mk_domain_add(const char *host_type, const char *domain, GError **error);
/* Stops serving @domain (its sessions are left alone). FALSE with
 * MK_MODULE_ERROR_START when it is not served. Main thread. */
MK_API gboolean mk_domain_remove(const char *domain, GError **error);

G_END_DECLS
