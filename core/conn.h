/* A client TCP connection on one worker: non-blocking reads into a small
 * buffer, a write queue flushed when the socket is writable, optional TLS
 * (GnuTLS over the same socket). Buffers start small and are released
 * while empty, because idle sessions must cost little memory.
 * Everything here runs on the connection's worker thread only. */
#pragma once

#include "mk-core.h"
#include "worker.h"
#include <gnutls/gnutls.h>

typedef struct {
    /* Plaintext bytes arrived (decrypted when TLS is on). */
    void (*on_data)(gpointer user_data, const char *data, gsize len);
    /* The TLS handshake finished (@ok FALSE: it failed; the conn closes). */
    void (*on_tls_done)(gpointer user_data, gboolean ok);
    /* The connection is gone (peer closed, error, or after mk_conn_close
     * has flushed). Called once; free the conn after or inside it. */
    void (*on_closed)(gpointer user_data);
} MkConnCallbacks;

/* Takes ownership of the connected non-blocking socket @fd. */
MkConn *mk_conn_new(MkWorker *w, int fd, const MkConnCallbacks *cb, gpointer user_data);
void mk_conn_free(MkConn *conn);

/* Queues bytes (copied). Flushes as much as possible at once. */
void mk_conn_write(MkConn *conn, const char *data, gsize len);
/* Starts TLS as server once queued plaintext is flushed (for STARTTLS,
 * after <proceed/>). Direct TLS listeners call it right after creation. */
void mk_conn_start_tls(MkConn *conn, gnutls_certificate_credentials_t creds);
gboolean mk_conn_is_tls(MkConn *conn);
/* Channel binding data of the TLS session: "tls-exporter" (RFC 9266,
 * TLS 1.3) or "tls-unique" (TLS 1.2). (transfer full) or NULL. */
GBytes *mk_conn_channel_binding(MkConn *conn, const char *type);
/* "tls-exporter" or "tls-unique" depending on the negotiated version. */
const char *mk_conn_channel_binding_type(MkConn *conn);
/* Stops reading, flushes what is queued, then closes; on_closed follows. */
void mk_conn_close(MkConn *conn);
/* Pauses/resumes reading (back-pressure while an async step runs). */
void mk_conn_pause(MkConn *conn, gboolean paused);
/* "127.0.0.1:51234". (transfer none) */
const char *mk_conn_peer(MkConn *conn);
gboolean mk_conn_peer_is_loopback(MkConn *conn);
/* Seconds since bytes last arrived. */
gint64 mk_conn_idle_seconds(MkConn *conn);
/* The worker owning the conn. */
MkWorker *mk_conn_worker(MkConn *conn);
