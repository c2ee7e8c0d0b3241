#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The served domains at run time, for administration modules (Since
 * ABI 2.1). A domain added with mk_domain_add lasts until the process
 * ends or it is removed; one added with mk_domain_add_stored is kept in
 * storage and served again after a restart, with the configuration's
 * `hosts`. */

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

/* Whether @domain is one of the configuration's `hosts` (of any host
 * type): such a domain is served at every start, whatever is stored.
 * Any thread. */
MK_API gboolean mk_domain_is_configured(const char *domain);

/* @error is NULL when the change is stored and in effect; else nothing
 * changed. Main thread. */
typedef void (*MkDomainDone)(const GError *error, gpointer user_data);
/* As mk_domain_add, and the domain is stored (the core's table
 * `domains`) so that every later start serves it with @host_type: the
 * row is written first, then the domain served, then @done runs; with
 * mk_domain_add's errors, or MK_DB_ERROR when storage failed. Adding a
 * domain served with @host_type already (stored or not) stores it and
 * succeeds. Main thread. */
MK_API void mk_domain_add_stored(const char *host_type, const char *domain, MkDomainDone done,
                                 gpointer user_data);
/* As mk_domain_remove, and its stored row goes, so that no later start
 * serves it: MK_MODULE_ERROR_START when it is one of the configuration's
 * hosts or not served. Main thread. */
MK_API void mk_domain_remove_stored(const char *domain, MkDomainDone done, gpointer user_data);

G_END_DECLS
