/* Listening sockets: one SO_REUSEPORT socket per worker per listener, so
 * the kernel spreads accepts; each accepted fd stays on that worker. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
#include "worker.h"

typedef struct MkListener MkListener;
/* Called on @w's thread with a new non-blocking, CLOEXEC socket. */
typedef void (*MkAcceptFunc)(MkWorker *w, int fd, const MkListenConfig *lc, gpointer user_data);

/* Binds @lc on every worker (fails at once if the address is taken).
 * Main thread. Returns: (transfer full). */
MkListener *mk_listener_start(MkWorkers *workers, const MkListenConfig *lc, MkAcceptFunc func,
                              gpointer user_data, GError **error);
void mk_listener_stop(MkListener *l);
/* The port actually bound (useful when the config says 0). */
guint16 mk_listener_port(MkListener *l);
