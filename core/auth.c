/* The internal auth backend: accounts in the users table as salted SCRAM
 * keys (and the plain password only with password_format = plain), and
 * the PLAIN password check. See auth.h. */
#include "auth.h"
#include <gnutls/crypto.h>
#include <string.h>

#define MK_SALT_LEN 16

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-auth-error-quark, mk_auth_error)
/* clang-format on */

/* Whether @given equals @stored after SASLprep, in time that depends on
 * the length of @given only (the client's own input): every byte of it
 * is compared, against @stored repeated, and a length difference counts
 * as a difference. (Hashing both first, as before, cost two SHA-256
 * computations per login: ~3% of a PLAIN login's instructions.) */
static gboolean plain_equal(const char *given, const char *stored)
{
    g_autofree char *g_prep = mk_scram_saslprep(given);
    g_autofree char *w_prep = mk_scram_saslprep(stored);
    const guint8 *g = (const guint8 *)(g_prep ? g_prep : given);
    const guint8 *w = (const guint8 *)(w_prep ? w_prep : stored);
    gsize lg = strlen((const char *)g), lw = strlen((const char *)w);
    volatile guint8 diff = lg != lw;
    for (gsize i = 0; i < lg; i++)
        diff |= g[i] ^ w[lw ? i % lw : 0];
    return diff == 0;
}

/* NULL is allowed. Any thread. */
void mk_credentials_free(MkCredentials *c)
{
    if (!c)
        return;
    g_free(c->username);
    g_free(c->domain);
    g_free(c->salt);
    if (c->plain) {
        gnutls_memset(c->plain, 0, strlen(c->plain));
        g_free(c->plain);
    }
    g_free(c);
}

/* Checks @password against @creds; see auth.h. Any thread (blocks for
 * the key derivation of SCRAM-only accounts: never on a worker). */
gboolean mk_auth_check_password(const MkCredentials *creds, const char *password,
                                guint dummy_iterations)
{
    if (!password)
        password = "";
    if (creds && creds->plain) {
        /* Plain-format account: the stored password decides (an operator
         * may have set it by hand), and no key derivation is needed: that
         * is the point of the format. Compare digests of the SASLprep'd
         * forms, so the time does not depend on lengths or contents. */
        return plain_equal(password, creds->plain);
    }
    if (!creds && dummy_iterations == MK_AUTH_DUMMY_PLAIN) {
        /* Unknown account on a plain-format server: the same comparison
         * as for a plain account, against a dummy. */
        (void)plain_equal(password, "\x01");
        return FALSE;
    }
    guint8 stored[32], server[32];
    if (!creds) {
        /* Unknown account: the same derivation against a dummy, so that
         * the answer takes as long as for a wrong password. */
        static const guint8 dummy_salt[MK_SALT_LEN] = {0};
        static const guint8 dummy_key[32] = {0};
        mk_scram_derive(MK_SCRAM_SHA256, password, dummy_salt, sizeof dummy_salt, dummy_iterations,
                        stored, server);
        (void)mk_const_time_equal(stored, dummy_key, sizeof stored);
        return FALSE;
    }
    mk_scram_derive(MK_SCRAM_SHA256, password, (const guint8 *)creds->salt, creds->salt_len,
                    creds->iterations, stored, server);
    return mk_const_time_equal(stored, creds->stored_key_sha256, sizeof stored);
}

/* Prepares @username (nodeprep) and @domain (nameprep) through the JID
 * code. @username may be NULL for a domain only. */
static gboolean prep_account(const char *username, const char *domain, char **out_user,
                             char **out_domain, GError **error)
{
    if ((out_user && (!username || !*username)) || !domain || !*domain) {
        g_set_error_literal(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID,
                            out_user ? "username and domain must not be empty"
                                     : "domain must not be empty");
        return FALSE;
    }
    g_autoptr(GError) jerr = NULL;
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(out_user ? username : NULL, domain, NULL, &jerr);
    if (!jid) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID, "invalid %s: %s",
                    out_user ? "username or domain" : "domain",
                    jerr ? jerr->message : "not a valid JID");
        return FALSE;
    }
    if (out_user) {
        const char *node = mk_jid_node(jid);
        if (!node || !*node) {
            g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID, "invalid username \"%s\"",
                        username);
            return FALSE;
        }
        *out_user = g_strdup(node);
    }
    *out_domain = g_strdup(mk_jid_domain(jid));
    return TRUE;
}

/* Decodes @b64 into @out, which must come to exactly @len bytes. As
 * g_base64_decode, but through a stack buffer: four keys per login. */
static gboolean decode_key(const char *b64, guint8 *out, gsize len)
{
    if (!b64)
        return FALSE;
    /* 56 characters decode to at most 42 bytes, plus 3 left from the
     * previous ones; a key (20 or 32 bytes) takes one round. */
    guint8 buf[48];
    gint state = 0;
    guint save = 0;
    gsize total = 0;
    for (gsize left = strlen(b64); left > 0;) {
        gsize chunk = MIN(left, 56);
        gsize n = g_base64_decode_step(b64, chunk, buf, &state, &save);
        if (total + n <= len)
            memcpy(out + total, buf, n);
        total += n;
        b64 += chunk;
        left -= chunk;
    }
    return total == len;
}

/* Returns: (transfer full) the account's credentials; NULL with
 * MK_AUTH_ERROR_NO_USER when absent, MK_AUTH_ERROR_INVALID for a bad
 * name, or MK_DB_ERROR. Storage or auth thread. */
MkCredentials *mk_auth_get(MkDbConn *conn, const char *username, const char *domain, GError **error)
{
    g_autofree char *user = NULL, *dom = NULL;
    if (!prep_account(username, domain, &user, &dom, error))
        return NULL;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        "SELECT salt, iterations, stored_key_sha1, server_key_sha1, stored_key_sha256,"
        " server_key_sha256, plain_password FROM users WHERE username = ? AND domain = ?",
        MK_DB_STR(user), MK_DB_STR(dom));
    if (!r)
        return NULL;
    if (mk_db_result_rows(r) == 0) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER, "no account %s@%s", user, dom);
        return NULL;
    }
    g_autoptr(MkCredentials) c = g_new0(MkCredentials, 1);
    c->username = g_steal_pointer(&user);
    c->domain = g_steal_pointer(&dom);
    const char *salt = mk_db_result_get_string(r, 0, 0);
    c->salt = salt ? (char *)g_base64_decode(salt, &c->salt_len) : NULL;
    gint64 it = mk_db_result_get_int(r, 0, 1);
    c->iterations = it > 0 && it <= G_MAXUINT ? (guint)it : 0;
    if (!c->salt || c->salt_len == 0 || c->iterations == 0 ||
        !decode_key(mk_db_result_get_string(r, 0, 2), c->stored_key_sha1, 20) ||
        !decode_key(mk_db_result_get_string(r, 0, 3), c->server_key_sha1, 20) ||
        !decode_key(mk_db_result_get_string(r, 0, 4), c->stored_key_sha256, 32) ||
        !decode_key(mk_db_result_get_string(r, 0, 5), c->server_key_sha256, 32)) {
        g_set_error(error, MK_DB_ERROR, MK_DB_ERROR_QUERY,
                    "the stored credentials of %s@%s are malformed", c->username, c->domain);
        return NULL;
    }
    c->plain = g_strdup(mk_db_result_get_string(r, 0, 6));
    return g_steal_pointer(&c);
}

/* Everything a row stores for a password, base64 where binary. */
typedef struct {
    char *salt;
    char *stored1, *server1, *stored256, *server256;
} KeyRow;

static void key_row_clear(KeyRow *k)
{
    g_free(k->salt);
    g_free(k->stored1);
    g_free(k->server1);
    g_free(k->stored256);
    g_free(k->server256);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KeyRow, key_row_clear)

static gboolean make_keys(const char *password, guint iterations, KeyRow *k, GError **error)
{
    g_autofree char *prepped = password ? mk_scram_saslprep(password) : NULL;
    if (!prepped || !*prepped) {
        g_set_error_literal(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID,
                            !prepped ? "the password holds characters SASLprep forbids"
                                     : "the password must not be empty");
        return FALSE;
    }
    guint8 salt[MK_SALT_LEN], st1[20], sv1[20], st256[32], sv256[32];
    mk_scram_new_salt(salt, sizeof salt);
    mk_scram_derive(MK_SCRAM_SHA1, password, salt, sizeof salt, iterations, st1, sv1);
    mk_scram_derive(MK_SCRAM_SHA256, password, salt, sizeof salt, iterations, st256, sv256);
    k->salt = g_base64_encode(salt, sizeof salt);
    k->stored1 = g_base64_encode(st1, sizeof st1);
    k->server1 = g_base64_encode(sv1, sizeof sv1);
    k->stored256 = g_base64_encode(st256, sizeof st256);
    k->server256 = g_base64_encode(sv256, sizeof sv256);
    return TRUE;
}

static int account_exists(MkDbConn *conn, const char *user, const char *dom, GError **error)
{
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                         MK_DB_STR(user), MK_DB_STR(dom));
    if (!r)
        return -1;
    return mk_db_result_rows(r) > 0;
}

/* Creates an account with a fresh salt and @iterations (0: 4096). With
 * @plain the password is stored too, besides the SCRAM keys. Errors:
 * MK_AUTH_ERROR_EXISTS, MK_AUTH_ERROR_INVALID, MK_DB_ERROR. Storage or
 * auth thread, or meerkatctl. */
gboolean mk_auth_register(MkDbConn *conn, const char *username, const char *domain,
                          const char *password, gboolean plain, guint iterations, GError **error)
{
    g_autofree char *user = NULL, *dom = NULL;
    if (!prep_account(username, domain, &user, &dom, error))
        return FALSE;
    int exists = account_exists(conn, user, dom, error);
    if (exists < 0)
        return FALSE;
    if (exists) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_EXISTS, "account %s@%s already exists",
                    user, dom);
        return FALSE;
    }
    if (iterations == 0)
        iterations = 4096;
    g_auto(KeyRow) k = {0};
    if (!make_keys(password, iterations, &k, error))
        return FALSE;
    GError *ierr = NULL;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, &ierr,
        "INSERT INTO users (username, domain, salt, iterations, stored_key_sha1,"
        " server_key_sha1, stored_key_sha256, server_key_sha256, plain_password, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        MK_DB_STR(user), MK_DB_STR(dom), MK_DB_STR(k.salt), MK_DB_INT(iterations),
        MK_DB_STR(k.stored1), MK_DB_STR(k.server1), MK_DB_STR(k.stored256), MK_DB_STR(k.server256),
        plain ? MK_DB_STR(password) : MK_DB_NULL, MK_DB_INT(g_get_real_time() / G_USEC_PER_SEC));
    if (!r) {
        /* Another process may have created it since the check: say so
         * rather than passing on the driver's constraint message. */
        if (account_exists(conn, user, dom, NULL) == 1) {
            g_clear_error(&ierr);
            g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_EXISTS, "account %s@%s already exists",
                        user, dom);
        } else {
            g_propagate_error(error, ierr);
        }
        return FALSE;
    }
    return TRUE;
}

/* Replaces the password (new salt and keys) of an existing account.
 * Errors: MK_AUTH_ERROR_NO_USER, MK_AUTH_ERROR_INVALID, MK_DB_ERROR. */
gboolean mk_auth_set_password(MkDbConn *conn, const char *username, const char *domain,
                              const char *password, gboolean plain, guint iterations,
                              GError **error)
{
    g_autofree char *user = NULL, *dom = NULL;
    if (!prep_account(username, domain, &user, &dom, error))
        return FALSE;
    if (iterations == 0)
        iterations = 4096;
    g_auto(KeyRow) k = {0};
    if (!make_keys(password, iterations, &k, error))
        return FALSE;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        "UPDATE users SET salt = ?, iterations = ?, stored_key_sha1 = ?, server_key_sha1 = ?,"
        " stored_key_sha256 = ?, server_key_sha256 = ?, plain_password = ?"
        " WHERE username = ? AND domain = ?",
        MK_DB_STR(k.salt), MK_DB_INT(iterations), MK_DB_STR(k.stored1), MK_DB_STR(k.server1),
        MK_DB_STR(k.stored256), MK_DB_STR(k.server256), plain ? MK_DB_STR(password) : MK_DB_NULL,
        MK_DB_STR(user), MK_DB_STR(dom));
    if (!r)
        return FALSE;
    if (mk_db_result_affected(r) == 0) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER, "no account %s@%s", user, dom);
        return FALSE;
    }
    return TRUE;
}

/* Deletes the account; module tables that reference users(username,
 * domain) ON DELETE CASCADE lose its rows too. Errors:
 * MK_AUTH_ERROR_NO_USER, MK_AUTH_ERROR_INVALID, MK_DB_ERROR. */
gboolean mk_auth_unregister(MkDbConn *conn, const char *username, const char *domain,
                            GError **error)
{
    g_autofree char *user = NULL, *dom = NULL;
    if (!prep_account(username, domain, &user, &dom, error))
        return FALSE;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "DELETE FROM users WHERE username = ? AND domain = ?",
                         MK_DB_STR(user), MK_DB_STR(dom));
    if (!r)
        return FALSE;
    if (mk_db_result_affected(r) == 0) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER, "no account %s@%s", user, dom);
        return FALSE;
    }
    return TRUE;
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Usernames of @domain, sorted bytewise (the same on every driver,
 * whatever the database's collation). Returns: (transfer full) a
 * NULL-terminated array, empty when none; NULL with @error. */
char **mk_auth_users(MkDbConn *conn, const char *domain, GError **error)
{
    g_autofree char *dom = NULL;
    if (!prep_account(NULL, domain, NULL, &dom, error))
        return NULL;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error, "SELECT username FROM users WHERE domain = ?", MK_DB_STR(dom));
    if (!r)
        return NULL;
    GPtrArray *names = g_ptr_array_new();
    for (guint i = 0; i < mk_db_result_rows(r); i++)
        g_ptr_array_add(names, g_strdup(mk_db_result_get_string(r, i, 0)));
    g_ptr_array_sort(names, cmp_str);
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}
