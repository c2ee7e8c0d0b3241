/* A client TCP connection on one worker: non-blocking reads into the
 * worker's scratch buffer (no per-connection read buffer), a write queue
 * that exists only while it holds bytes, optional TLS (GnuTLS over the
 * same socket). Idle connections must cost little memory.
 *
 * Everything here runs on the connection's worker thread only.
 *
 * Callbacks are made only from the worker's loop (socket readiness or a
 * mailbox job), never from inside an mk_conn_* call, so callers need not
 * fear re-entrancy. See docs/threads.md. */
#pragma once

#include "mk-core.h"
#include "worker.h"
#include <gnutls/gnutls.h>
#include <sys/socket.h>

/* A write queue above this many bytes means the peer does not read: the
 * connection is dropped (on_closed follows). */
#define MK_CONN_MAX_QUEUE (8u * 1024 * 1024)
/* mk_conn_close gives the peer this long to take queued bytes and to
 * close its side before the socket is closed regardless. */
#define MK_CONN_CLOSE_TIMEOUT_MS 5000

typedef struct {
    /* Plaintext bytes arrived (decrypted when TLS is on). @data is only
     * valid during the call. The callee may call any mk_conn_* function,
     * including mk_conn_free; no more bytes are delivered after pause,
     * close, start_tls or free. */
    void (*on_data)(gpointer user_data, const char *data, gsize len);
    /* The TLS handshake finished (@ok FALSE: it failed; the conn closes
     * and on_closed follows). (nullable) */
    void (*on_tls_done)(gpointer user_data, gboolean ok);
    /* The connection is gone (peer closed, error, or after mk_conn_close
     * has flushed). Called exactly once, unless the owner called
     * mk_conn_free first; the owner then frees the conn with
     * mk_conn_free (inside on_closed is fine). */
    void (*on_closed)(gpointer user_data);
} MkConnCallbacks;

/* Takes ownership of the connected non-blocking socket @fd and starts
 * reading. @peer (transfer none, nullable) is the peer's address as
 * accept() returned it; NULL: asked of the socket. @cb must outlive the
 * conn. @w's thread only. Returns: (transfer full) */
MkConn *mk_conn_new(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                    const MkConnCallbacks *cb, gpointer user_data);
/* Closes the socket at once if still open (queued bytes are dropped) and
 * frees the conn; no callback follows. Callable at any time, also from
 * inside the conn's own callbacks. (nullable) */
void mk_conn_free(MkConn *conn);

/* Queues bytes (copied) and flushes as much as possible at once. Ignored
 * once mk_conn_close was called or the connection is gone. */
void mk_conn_write(MkConn *conn, const char *data, gsize len);
/* Starts TLS as server once the plaintext queued so far is flushed (for
 * STARTTLS, after <proceed/>); plaintext reading stops at once, and bytes
 * written afterwards go out encrypted after the handshake. Direct TLS
 * listeners call it right after mk_conn_new. @creds (transfer none) must
 * outlive the conn. on_tls_done follows. */
void mk_conn_start_tls(MkConn *conn, gnutls_certificate_credentials_t creds);
/* TRUE once mk_conn_start_tls was called (handshake maybe not done). */
gboolean mk_conn_is_tls(MkConn *conn);
/* Channel binding data of the established TLS session for @type:
 * "tls-exporter" (RFC 9266), "tls-unique" (RFC 5929, TLS 1.2 only) or
 * "tls-server-end-point". Returns: (transfer full) (nullable): NULL
 * before the handshake completed or when @type does not apply. */
GBytes *mk_conn_channel_binding(MkConn *conn, const char *type);
/* "tls-exporter" on TLS 1.3, "tls-unique" on TLS 1.2, NULL without an
 * established TLS session. Returns: (transfer none) (nullable) */
const char *mk_conn_channel_binding_type(MkConn *conn);
/* Stops reading, flushes what is queued (TLS: then close_notify), shuts
 * the socket down for writing and waits (bounded by
 * MK_CONN_CLOSE_TIMEOUT_MS) for the peer to close, then closes;
 * on_closed follows. */
void mk_conn_close(MkConn *conn);
/* Pauses/resumes reading (back-pressure while an async step runs). Bytes
 * that arrived meanwhile, including those GnuTLS buffered, are delivered
 * from the loop after resuming. */
void mk_conn_pause(MkConn *conn, gboolean paused);
/* "127.0.0.1:51234" or "[::1]:51234", computed once at creation.
 * Returns: (transfer none) */
const char *mk_conn_peer(MkConn *conn);
gboolean mk_conn_peer_is_loopback(MkConn *conn);
/* Seconds since bytes last arrived (or since creation). */
gint64 mk_conn_idle_seconds(MkConn *conn);
/* Moving a connection to another worker (XEP-0198 resumption continues a
 * stream on the worker that owns the detached session, see
 * docs/stream-management.md). mk_conn_detach, on the current worker,
 * stops watching the socket; it refuses (FALSE, nothing changed) unless
 * the conn is open, not mid-handshake, not closing, and has no job of its
 * own queued on this worker. Afterwards no callback runs and nothing may
 * touch the conn until mk_conn_attach, on the target worker @w, which
 * watches the socket there, with new callbacks, reading (unpaused). Bytes
 * queued for writing go along. */
gboolean mk_conn_detach(MkConn *conn);
void mk_conn_attach(MkConn *conn, MkWorker *w, const MkConnCallbacks *cb, gpointer user_data);
/* The worker owning the conn. Any thread. Returns: (transfer none) */
MkWorker *mk_conn_worker(MkConn *conn);
