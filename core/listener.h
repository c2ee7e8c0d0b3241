/* Listening sockets: one SO_REUSEPORT socket per worker per address of a
 * listener, so the kernel spreads accepts; each accepted fd stays on the
 * worker whose socket accepted it. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
#include "worker.h"
#include <sys/socket.h>

typedef struct MkListener MkListener;
/* Called on @w's thread with a new connected non-blocking, CLOEXEC socket
 * (TCP_NODELAY set) that the callee now owns, and its peer's address as
 * accept() gave it (transfer none; only for the call). @lc (transfer none)
 * is the listener's own copy of its configuration, valid until
 * mk_listener_stop. */
typedef void (*MkAcceptFunc)(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                             const MkListenConfig *lc, gpointer user_data);

/* Binds @lc (copied) on every worker: every address @lc->address resolves
 * to ("localhost" may give ::1 and 127.0.0.1; "*" or empty: all
 * interfaces); fails at once, naming address and port, if one cannot be
 * bound. Port 0 picks a free port, the same for every socket. Main
 * thread; @workers must be running. Returns: (transfer full) */
MkListener *mk_listener_start(MkWorkers *workers, const MkListenConfig *lc, MkAcceptFunc func,
                              gpointer user_data, GError **error);
/* Stops accepting and closes the sockets; waits until every worker has
 * dropped its socket, so @func is not called after this returns and the
 * port is free. Main thread, before mk_workers_stop. (nullable) */
void mk_listener_stop(MkListener *l);
/* Descriptors kept from new connections (0: 5% of RLIMIT_NOFILE, at
 * least 32), and a spare one for closing connections at the limit (see
 * listener.c). Main thread, before listeners start. */
void mk_listener_set_fd_reserve(guint reserve);
/* Connections refused within the reserve, and dropped at the limit. Any
 * thread. */
void mk_listener_fd_stats(gint64 *refused, gint64 *dropped);
/* The port actually bound (useful when the config says 0). Any thread. */
guint16 mk_listener_port(MkListener *l);
