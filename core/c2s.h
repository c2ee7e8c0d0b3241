/* Client-to-server streams (RFC 6120): stream negotiation, STARTTLS,
 * SASL, resource binding, then stanzas to the router. A stream lives on
 * one worker for its whole life; everything in MkC2s is that worker's. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
#include "worker.h"
#include <gnutls/gnutls.h>
#include <sys/socket.h>

typedef struct MkC2sServer MkC2sServer;

/* Returns: (transfer full). Main thread, after workers started. */
MkC2sServer *mk_c2s_server_new(MkServer *srv, GError **error);
/* Closes every stream (a clean </stream:stream> with system-shutdown)
 * and frees. Main thread, before workers stop. */
void mk_c2s_server_free(MkC2sServer *cs);
/* The login limits of the c2s listeners (authguard.h), which APIs that
 * take a user's password share. (transfer none) Any thread. */
struct MkAuthGuard *mk_c2s_server_guard(MkC2sServer *cs);
/* Prepares a listener's settings (TLS credentials etc.). Main thread. */
gboolean mk_c2s_server_add_listener(MkC2sServer *cs, const MkListenConfig *lc, GError **error);
/* The MkAcceptFunc for c2s listeners; @user_data is the MkC2sServer. */
void mk_c2s_accept(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                   const MkListenConfig *lc, gpointer user_data);
