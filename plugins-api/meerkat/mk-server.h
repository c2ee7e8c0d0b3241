#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The server process as a whole. */

/* Seconds since the server process started (not since this instance
 * started: a module may restart on SIGHUP). Any thread. */
MK_API gint64 mk_server_uptime(void);

G_END_DECLS
