/* SCRAM key derivation (RFC 5802, RFC 7677) with GnuTLS, SASLprep with
 * libidn, and constant-time comparison. See auth.h. */
#include "auth.h"
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

/* (transfer full) (nullable) @password prepared with SASLprep (RFC 4013),
 * or NULL when it holds prohibited characters. Unassigned code points are
 * allowed, as GNU SASL allows them on the client side. Any thread. */
char *mk_scram_saslprep(const char *password)
{
    g_return_val_if_fail(password != NULL, NULL);
    /* Printable ASCII is its own SASLprep: RFC 4013 maps, normalizes or
     * prohibits nothing in 0x20..0x7E (only the controls below and DEL).
     * The fast path matters: libidn's stringprep was ~5% of a PLAIN
     * login's instructions (docs/benchmarks.md). */
    const char *p = password;
    while (*p >= 0x20 && *p <= 0x7e)
        p++;
    if (!*p)
        return g_strdup(password);
    if (!g_utf8_validate(password, -1, NULL))
        return NULL;
    char *out = NULL;
    if (stringprep_profile(password, &out, "SASLprep", 0) != STRINGPREP_OK) {
        free(out);
        return NULL;
    }
    char *ret = g_strdup(out);
    free(out);
    return ret;
}

/* SaltedPassword = Hi(SASLprep(password), salt, i); ClientKey =
 * HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey); ServerKey =
 * HMAC(SaltedPassword, "Server Key"). A password SASLprep refuses is used
 * as given (callers that store keys reject it first). @stored_key and
 * @server_key have the hash's size (20 or 32). Any thread; costs
 * @iterations HMACs, so never on a worker. */
void mk_scram_derive(MkScramHash hash, const char *password, const guint8 *salt, gsize salt_len,
                     guint iterations, guint8 *stored_key, guint8 *server_key)
{
    gnutls_mac_algorithm_t mac = hash == MK_SCRAM_SHA1 ? GNUTLS_MAC_SHA1 : GNUTLS_MAC_SHA256;
    gnutls_digest_algorithm_t dig = hash == MK_SCRAM_SHA1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256;
    gsize len = hash == MK_SCRAM_SHA1 ? 20 : 32;

    g_autofree char *prepped = mk_scram_saslprep(password);
    const char *pw = prepped ? prepped : password;
    guint8 salted[32], client_key[32];
    gnutls_datum_t key = {(unsigned char *)pw, (unsigned int)strlen(pw)};
    gnutls_datum_t s = {(unsigned char *)salt, (unsigned int)salt_len};
    int rc = gnutls_pbkdf2(mac, &key, &s, MAX(iterations, 1), salted, len);
    if (rc != 0) {
        /* Keys nobody can match rather than a crash or a predictable key. */
        g_warning("SCRAM derivation failed: %s", gnutls_strerror(rc));
        gnutls_rnd(GNUTLS_RND_NONCE, stored_key, len);
        gnutls_rnd(GNUTLS_RND_NONCE, server_key, len);
        return;
    }
    gnutls_hmac_fast(mac, salted, len, "Client Key", strlen("Client Key"), client_key);
    gnutls_hash_fast(dig, client_key, len, stored_key);
    gnutls_hmac_fast(mac, salted, len, "Server Key", strlen("Server Key"), server_key);
    gnutls_memset(salted, 0, sizeof salted);
    gnutls_memset(client_key, 0, sizeof client_key);
}

/* TRUE when the @len bytes of @a and @b are equal; the time taken does not
 * depend on where they differ. Any thread. */
gboolean mk_const_time_equal(const guint8 *a, const guint8 *b, gsize len)
{
    volatile guint8 diff = 0;
    for (gsize i = 0; i < len; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* Fills @salt with @len random bytes. Any thread. */
void mk_scram_new_salt(guint8 *salt, gsize len)
{
    int rc = gnutls_rnd(GNUTLS_RND_NONCE, salt, len);
    g_assert(rc == 0);
}
