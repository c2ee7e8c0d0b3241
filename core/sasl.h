/* SASL: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS variants (channel
 * binding tls-exporter / tls-unique) and ANONYMOUS, all implemented here
 * (SCRAM in scram-server.c). Credentials come from the users table as
 * stored SCRAM keys. A step that reads the account (PLAIN, SCRAM's first
 * message) blocks and runs on the auth thread pool; mk_sasl_step_blocks
 * tells which steps may run on the worker instead. */
#pragma once

#include "mk-core.h"
#include "authguard.h"
#include "db.h"

typedef struct MkSasl MkSasl;
typedef struct MkSaslSession MkSaslSession;

typedef enum {
    MK_SASL_CONTINUE, /* send <challenge> with out_b64 */
    MK_SASL_SUCCESS,  /* send <success> with out_b64 (may be NULL) */
    MK_SASL_FAILURE,  /* send <failure> with the condition */
} MkSaslStatus;

typedef struct {
    MkSaslStatus status;
    char *out_b64;         /* (nullable) */
    const char *condition; /* on failure: "not-authorized", "malformed-request",
                              "invalid-authzid", "temporary-auth-failure" */
    char *username;        /* on success: the prepared node of the account */
    const char *mechanism; /* on success: its name (static) */
    char *reason;          /* on failure: why, for the log (never a secret) */
    gboolean counted;      /* on failure: a wrong password or unknown user,
                              recorded by the guard */
} MkSaslResult;
void mk_sasl_result_clear(MkSaslResult *r);

/* @plain_format: [auth] password_format = plain (unknown users then cost
 * what a plain account costs). Returns: (transfer full); cannot fail at
 * present (@error is kept for backends that can). Main thread. */
MkSasl *mk_sasl_new(MkDb *db, guint scram_iterations, gboolean plain_format, GError **error);
void mk_sasl_free(MkSasl *sasl);
/* The limits on guessing (borrowed; NULL: none) that exchanges consult
 * and feed. Main thread, before any exchange. */
void mk_sasl_set_guard(MkSasl *sasl, MkAuthGuard *guard);
/* TRUE when @mech is one of the mechanisms above. */
gboolean mk_sasl_supports(MkSasl *sasl, const char *mech);

/* A new exchange for @mech on @domain. @cb_type/@cb_data: the TLS channel
 * binding ("tls-exporter"/"tls-unique" and its bytes), given when a -PLUS
 * mechanism was offered on this stream (SCRAM then refuses a client's 'y'
 * flag as a downgrade), else NULL. Any thread. Returns: (transfer full)
 * or NULL when the mechanism is unknown. */
MkSaslSession *mk_sasl_session_new(MkSasl *sasl, const char *mech, const char *domain,
                                   const char *cb_type, GBytes *cb_data);
/* One step with the client's base64 data (NULL or "" or "=" for none).
 * Blocks when mk_sasl_step_blocks says so: then on the auth pool only. */
void mk_sasl_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result);
/* TRUE when the next mk_sasl_step may block (database, key derivation):
 * PLAIN, and SCRAM until its first challenge went out. FALSE for SCRAM's
 * client-final message and ANONYMOUS, which a worker may run itself and
 * so save a thread hand-off. The thread that owns @ss. */
gboolean mk_sasl_step_blocks(MkSaslSession *ss);
void mk_sasl_session_free(MkSaslSession *ss);
/* The client's address (copied), for the guard: FALSE when the address
 * is in backoff, and the first step then fails at once, without blocking
 * (temporary-auth-failure). Before the first step. */
gboolean mk_sasl_session_set_peer(MkSaslSession *ss, const MkAddrKey *addr);
/* SCRAM, before the first step: see mk_scram_server_set_policy (the 'y'
 * flag, XEP-0474's h=). No-op for other mechanisms. */
void mk_sasl_session_set_scram_policy(MkSaslSession *ss, gboolean accept_y, const char *ssdp_b64);
/* A connection the next blocking steps use instead of taking one of
 * their own (NULL: take one); borrowed, so the caller can read more on
 * it in the same job (auth_preload). The thread that owns @ss. */
void mk_sasl_session_set_conn(MkSaslSession *ss, MkDbConn *conn);
/* The prepared username of the account the exchange found, once a step
 * read it (PLAIN, SCRAM's first message), else NULL; for SCRAM the proof
 * may still fail. (transfer none) The thread that owns @ss. */
const char *mk_sasl_session_account(MkSaslSession *ss);
/* The mechanism's name. (transfer none): static. Any thread. */
const char *mk_sasl_session_mechanism(MkSaslSession *ss);
