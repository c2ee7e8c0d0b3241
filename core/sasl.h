/* SASL through GNU SASL: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS
 * variants (channel binding tls-exporter / tls-unique) and ANONYMOUS.
 * Credentials come from the users table as stored SCRAM keys. A step
 * blocks (database read, key derivation for PLAIN) and so runs on the
 * auth thread pool, never on a worker. */
#pragma once

#include "mk-core.h"
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
} MkSaslResult;
void mk_sasl_result_clear(MkSaslResult *r);

/* @plain_format: [auth] password_format = plain (unknown users then cost
 * what a plain account costs). Returns: (transfer full) or NULL with an
 * error. Main thread. */
MkSasl *mk_sasl_new(MkDb *db, guint scram_iterations, gboolean plain_format, GError **error);
void mk_sasl_free(MkSasl *sasl);
/* TRUE when GNU SASL implements @mech as a server. */
gboolean mk_sasl_supports(MkSasl *sasl, const char *mech);

/* A new exchange for @mech on @domain. @cb_type/@cb_data: the TLS channel
 * binding ("tls-exporter"/"tls-unique" and its bytes) or NULL. Any thread.
 * Returns: (transfer full) or NULL when the mechanism cannot start. */
MkSaslSession *mk_sasl_session_new(MkSasl *sasl, const char *mech, const char *domain,
                                   const char *cb_type, GBytes *cb_data);
/* One step with the client's base64 data (NULL or "" or "=" for none).
 * Blocks: auth pool only. */
void mk_sasl_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result);
void mk_sasl_session_free(MkSaslSession *ss);
