/* meerkatctl over the admin REST API of a running server. */
#pragma once

#include "conffile.h"

typedef struct CtlRest CtlRest;

/* The admin API of @cfg (its http listener and mod_rest_admin's
 * credentials), or NULL with an error when it has none. */
CtlRest *ctl_rest_new(const MkConfigData *cfg, GError **error);
void ctl_rest_free(CtlRest *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlRest, ctl_rest_free)
/* Whether something answers on the API's address. */
gboolean ctl_rest_running(CtlRest *r);
/* "HOST:PORT". (transfer none) */
const char *ctl_rest_address(CtlRest *r);
/* PREFIX/seg1/seg2..., each segment percent-encoded; NULL-terminated.
 * (transfer full) */
char *ctl_rest_path(CtlRest *r, const char *first, ...) G_GNUC_NULL_TERMINATED;
/* One request (@json: the body, nullable): the status and the body
 * (transfer full). FALSE with an error when no HTTP answer came. */
gboolean ctl_rest_call(CtlRest *r, const char *method, const char *path, const char *json,
                       guint *status, char **body, GError **error);
