/* Accounts of the internal auth backend, stored in the users table as
 * salted SCRAM keys (RFC 5802/7677), never as plain text unless the
 * operator chose password_format = plain. Every function here is
 * synchronous and blocks: call it from the auth or storage pool, or from
 * meerkatctl, never on a worker. */
#pragma once

#include "mk-core.h"
#include "db.h"

typedef enum {
    MK_SCRAM_SHA1,
    MK_SCRAM_SHA256,
} MkScramHash;

/* One account's stored credentials. */
typedef struct {
    char *username;
    char *domain;
    char *salt; /* raw bytes */
    gsize salt_len;
    guint iterations;
    guint8 stored_key_sha1[20], server_key_sha1[20];
    guint8 stored_key_sha256[32], server_key_sha256[32];
    char *plain; /* nullable: only with password_format = plain */
} MkCredentials;
void mk_credentials_free(MkCredentials *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkCredentials, mk_credentials_free)

/* SaltedPassword = Hi(password, salt, i); ClientKey, StoredKey, ServerKey
 * per RFC 5802. @stored_key/@server_key have the hash's size (20 or 32). */
void mk_scram_derive(MkScramHash hash, const char *password, const guint8 *salt, gsize salt_len,
                     guint iterations, guint8 *stored_key, guint8 *server_key);
/* Constant-time comparison. */
gboolean mk_const_time_equal(const guint8 *a, const guint8 *b, gsize len);
/* SASLprep (RFC 4013). Returns: (transfer full) (nullable) NULL when the
 * password holds prohibited characters or is not UTF-8. mk_scram_derive
 * applies it itself. */
char *mk_scram_saslprep(const char *password);
/* @len random bytes from GnuTLS. Accounts get 16. */
void mk_scram_new_salt(guint8 *salt, gsize len);

/* Checks @password against @creds. A plain-format account (@creds->plain
 * set) is checked against its stored password alone, with no key
 * derivation; any other against its SCRAM-SHA-256 keys (a derivation of
 * @creds->iterations). With @creds NULL (unknown user) it does the work a
 * wrong password would cost and returns FALSE, so a wrong user costs as
 * much as a wrong password: a derivation of @dummy_iterations, or with
 * MK_AUTH_DUMMY_PLAIN (servers with password_format = plain, where
 * accounts are plain) a plain comparison. */
#define MK_AUTH_DUMMY_PLAIN 0u
gboolean mk_auth_check_password(const MkCredentials *creds, const char *password,
                                guint dummy_iterations);

/* Storage. @username must be nodeprep'd, @domain nameprep'd: these
 * functions prepare them and fail with MK_AUTH_ERROR_INVALID otherwise. */
MkCredentials *mk_auth_get(MkDbConn *conn, const char *username, const char *domain,
                           GError **error);
gboolean mk_auth_register(MkDbConn *conn, const char *username, const char *domain,
                          const char *password, gboolean plain, guint iterations, GError **error);
gboolean mk_auth_set_password(MkDbConn *conn, const char *username, const char *domain,
                              const char *password, gboolean plain, guint iterations,
                              GError **error);
gboolean mk_auth_unregister(MkDbConn *conn, const char *username, const char *domain,
                            GError **error);
/* Sorted usernames of @domain. (transfer full) */
char **mk_auth_users(MkDbConn *conn, const char *domain, GError **error);
