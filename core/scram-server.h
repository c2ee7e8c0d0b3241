/* The server side of one SCRAM exchange (RFC 5802; SCRAM-SHA-256 per
 * RFC 7677) and of its -PLUS variants with channel binding (tls-exporter,
 * RFC 9266 / XEP-0440; tls-unique, RFC 5929). Computation only: no I/O
 * and no database. The caller parses the client-first message, looks the
 * account up, hands in its salt, iteration count and stored keys, and
 * checks the client-final message, which needs nothing blocking. One
 * exchange is used by one thread at a time; any thread. */
#pragma once

#include "auth.h"

typedef struct MkScramServer MkScramServer;

typedef enum {
    MK_SCRAM_OK,
    MK_SCRAM_MALFORMED, /* not the RFC's grammar (or an m= extension) */
    MK_SCRAM_REFUSED,   /* authentication fails (proof, binding, flag, nonce) */
} MkScramStatus;

/* A new exchange. @plus: a -PLUS mechanism. @cb_type/@cb_data/@cb_len:
 * the channel binding of this TLS stream, given only when a -PLUS
 * mechanism was offered on it (a client then may not claim 'y', RFC 5802
 * section 6, unless mk_scram_server_set_policy allows it); NULL otherwise. Returns: (transfer
 * full). */
MkScramServer *mk_scram_server_new(MkScramHash hash, gboolean plus, const char *cb_type,
                                   const guint8 *cb_data, gsize cb_len);
/* @s may be NULL. Clears the keys. */
void mk_scram_server_free(MkScramServer *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkScramServer, mk_scram_server_free)

/* Before the client-first message. @accept_y: a client's 'y' flag is
 * accepted although a -PLUS mechanism was offered (the binding type of
 * this stream is one that clients may lack: see the listener's
 * scram_y_flag in docs/configuration.md). @ssdp_b64 (nullable): the
 * server-first message's h= attribute (XEP-0474), from
 * mk_scram_ssdp_hash. */
void mk_scram_server_set_policy(MkScramServer *s, gboolean accept_y, const char *ssdp_b64);
/* XEP-0474's h= value for @advertised (@len bytes: the sorted
 * mechanisms offered joined by 0x1E, then 0x1F and the sorted binding
 * types likewise), hashed with @hash. Returns: (transfer full). */
char *mk_scram_ssdp_hash(MkScramHash hash, const char *advertised, gsize len);
/* Why the last step failed, for the log: never a secret. (transfer none) */
const char *mk_scram_server_failure(MkScramServer *s);
/* TRUE when the final step failed on the proof (a wrong password, or
 * an unknown user's keys), not on the grammar, nonce or binding. */
gboolean mk_scram_server_bad_proof(MkScramServer *s);

/* Tests: the server's part of the nonce, instead of 18 random bytes in
 * base64 (lets the RFCs' example exchanges be replayed). Before
 * mk_scram_server_first. */
void mk_scram_server_set_nonce(MkScramServer *s, const char *server_nonce);

/* Parses the client-first message (@len bytes, decoded from base64).
 * On MK_SCRAM_OK the username and authzid below are set. */
MkScramStatus mk_scram_server_client_first(MkScramServer *s, const char *msg, gsize len);
/* The username of the client-first message with =2C and =3D decoded,
 * checked to pass SASLprep (not yet nodeprep'd). (transfer none) */
const char *mk_scram_server_username(MkScramServer *s);
/* The authzid (a=), decoded, or NULL when absent. (transfer none) */
const char *mk_scram_server_authzid(MkScramServer *s);

/* The server-first message, for an account with @salt, @iterations and
 * the stored and server keys of the exchange's hash (20 or 32 bytes),
 * which are kept for the final step. After mk_scram_server_client_first
 * succeeded. Returns: (transfer full) the message, not base64-encoded. */
char *mk_scram_server_first(MkScramServer *s, const guint8 *salt, gsize salt_len, guint iterations,
                            const guint8 *stored_key, const guint8 *server_key);

/* Checks the client-final message (@len bytes, decoded from base64): the
 * nonce, the channel binding and the ClientProof (in constant time). On
 * MK_SCRAM_OK, @server_final is the server-final message "v=..." (transfer
 * full, not base64-encoded). Needs no database: fine on a worker. */
MkScramStatus mk_scram_server_client_final(MkScramServer *s, const char *msg, gsize len,
                                           char **server_final);

/* Strict base64 (RFC 4648 alphabet, padded, no whitespace), unlike
 * g_base64_decode which skips what it does not know. @len bytes of @in.
 * Returns: (transfer full) (nullable) the bytes, NUL-terminated for
 * convenience, or NULL when @in is not base64. */
guint8 *mk_base64_decode_strict(const char *in, gsize len, gsize *out_len);
