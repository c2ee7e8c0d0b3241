/* SCRAM key derivation against the RFC test vectors, SASLprep, the
 * constant-time comparison and the PLAIN password check (core/scram.c,
 * core/auth.c). */
#include "auth.h"
#include <string.h>

static void assert_hex(const guint8 *bytes, gsize len, const char *want)
{
    GString *s = g_string_new(NULL);
    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", bytes[i]);
    g_assert_cmpstr(s->str, ==, want);
    g_string_free(s, TRUE);
}

/* RFC 7677 section 3: user "user", password "pencil". The expected keys
 * were computed once with Python's hashlib.pbkdf2_hmac/hmac and checked
 * to reproduce the RFC's ClientProof and ServerSignature. */
static void test_rfc7677_sha256(void)
{
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", &salt_len);
    guint8 stored[32], server[32];
    mk_scram_derive(MK_SCRAM_SHA256, "pencil", salt, salt_len, 4096, stored, server);
    assert_hex(stored, 32, "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6");
    assert_hex(server, 32, "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5");
}

/* RFC 5802 section 5, SCRAM-SHA-1, same way. */
static void test_rfc5802_sha1(void)
{
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode("QSXCR+Q6sek8bf92", &salt_len);
    guint8 stored[20], server[20];
    mk_scram_derive(MK_SCRAM_SHA1, "pencil", salt, salt_len, 4096, stored, server);
    assert_hex(stored, 20, "e9d94660c39d65c38fbad91c358f14da0eef2bd6");
    assert_hex(server, 20, "0fe09258b3ac852ba502cc62ba903eaacdbf7d31");
}

/* The key depends on every input. */
static void test_derive_inputs(void)
{
    const guint8 salt[4] = {1, 2, 3, 4}, salt2[4] = {1, 2, 3, 5};
    guint8 a[32], b[32], s[32];
    mk_scram_derive(MK_SCRAM_SHA256, "pw", salt, 4, 100, a, s);
    mk_scram_derive(MK_SCRAM_SHA256, "pw", salt, 4, 100, b, s);
    g_assert_true(memcmp(a, b, 32) == 0);
    mk_scram_derive(MK_SCRAM_SHA256, "pw", salt, 4, 101, b, s);
    g_assert_false(memcmp(a, b, 32) == 0);
    mk_scram_derive(MK_SCRAM_SHA256, "pw", salt2, 4, 100, b, s);
    g_assert_false(memcmp(a, b, 32) == 0);
    mk_scram_derive(MK_SCRAM_SHA256, "pW", salt, 4, 100, b, s);
    g_assert_false(memcmp(a, b, 32) == 0);
}

/* RFC 4013 section 3 examples. */
static void test_saslprep(void)
{
    g_autofree char *a = mk_scram_saslprep("I\xc2\xad"
                                           "X"); /* soft hyphen is mapped out */
    g_assert_cmpstr(a, ==, "IX");
    g_autofree char *b = mk_scram_saslprep("user");
    g_assert_cmpstr(b, ==, "user");
    g_autofree char *c = mk_scram_saslprep("\xc2\xaa"); /* FEMININE ORDINAL -> "a" (NFKC) */
    g_assert_cmpstr(c, ==, "a");
    g_autofree char *d = mk_scram_saslprep("\x07"); /* prohibited control character */
    g_assert_null(d);
    g_autofree char *e = mk_scram_saslprep("\xff\xfe"); /* not UTF-8 */
    /* Printable ASCII takes a fast path: unchanged, and the controls at
     * either end of it (0x1F, DEL) are still refused. */
    g_autofree char *f = mk_scram_saslprep(" !~Az09 p@ss:w0rd~");
    g_assert_cmpstr(f, ==, " !~Az09 p@ss:w0rd~");
    g_autofree char *g = mk_scram_saslprep("");
    g_assert_cmpstr(g, ==, "");
    g_autofree char *h = mk_scram_saslprep("abc\x1f");
    g_assert_null(h);
    g_autofree char *i = mk_scram_saslprep("abc\x7f");
    g_assert_null(i);
    g_autofree char *j = mk_scram_saslprep("abc\xc2\xaa"); /* ASCII then NFKC */
    g_assert_cmpstr(j, ==, "abca");
    g_assert_null(e);
    /* Derivation prepares the password itself: equivalent forms give the
     * same keys. */
    const guint8 salt[4] = {9, 9, 9, 9};
    guint8 k1[32], k2[32], s[32];
    mk_scram_derive(MK_SCRAM_SHA256,
                    "I\xc2\xad"
                    "X",
                    salt, 4, 10, k1, s);
    mk_scram_derive(MK_SCRAM_SHA256, "IX", salt, 4, 10, k2, s);
    g_assert_true(memcmp(k1, k2, 32) == 0);
}

static void test_const_time_equal(void)
{
    const guint8 a[5] = {1, 2, 3, 4, 5};
    guint8 b[5] = {1, 2, 3, 4, 5};
    g_assert_true(mk_const_time_equal(a, b, 5));
    b[0] = 0;
    g_assert_false(mk_const_time_equal(a, b, 5));
    b[0] = 1;
    b[4] = 6;
    g_assert_false(mk_const_time_equal(a, b, 5));
    g_assert_true(mk_const_time_equal(a, b, 4));
    g_assert_true(mk_const_time_equal(a, b, 0));
}

static void test_new_salt(void)
{
    guint8 a[16] = {0}, b[16] = {0}, zero[16] = {0};
    mk_scram_new_salt(a, 16);
    mk_scram_new_salt(b, 16);
    g_assert_false(memcmp(a, b, 16) == 0);
    g_assert_false(memcmp(a, zero, 16) == 0);
}

static MkCredentials *make_creds(const char *password, const char *plain, guint iterations)
{
    MkCredentials *c = g_new0(MkCredentials, 1);
    c->username = g_strdup("juliet");
    c->domain = g_strdup("localhost");
    c->salt_len = 16;
    c->salt = g_malloc(16);
    mk_scram_new_salt((guint8 *)c->salt, 16);
    c->iterations = iterations;
    mk_scram_derive(MK_SCRAM_SHA1, password, (guint8 *)c->salt, 16, iterations, c->stored_key_sha1,
                    c->server_key_sha1);
    mk_scram_derive(MK_SCRAM_SHA256, password, (guint8 *)c->salt, 16, iterations,
                    c->stored_key_sha256, c->server_key_sha256);
    c->plain = g_strdup(plain);
    return c;
}

static void test_check_password_scram(void)
{
    g_autoptr(MkCredentials) c = make_creds("r0m3o!", NULL, 4096);
    g_assert_true(mk_auth_check_password(c, "r0m3o!", 4096));
    g_assert_false(mk_auth_check_password(c, "r0m3o", 4096));
    g_assert_false(mk_auth_check_password(c, "R0m3o!", 4096));
    g_assert_false(mk_auth_check_password(c, "", 4096));
    g_assert_false(mk_auth_check_password(c, NULL, 4096));
}

static void test_check_password_plain(void)
{
    g_autoptr(MkCredentials) c = make_creds("secret", "secret", 4096);
    g_assert_true(mk_auth_check_password(c, "secret", 4096));
    g_assert_false(mk_auth_check_password(c, "secret2", 4096));
    g_assert_false(mk_auth_check_password(c, "", 4096));
    /* The stored plain password decides for plain-format accounts. */
    g_free(c->plain);
    c->plain = g_strdup("changed");
    g_assert_true(mk_auth_check_password(c, "changed", 4096));
    g_assert_false(mk_auth_check_password(c, "secret", 4096));
}

static gdouble time_check(const MkCredentials *c, const char *pw, guint dummy_it)
{
    gint64 t0 = g_get_monotonic_time();
    for (int i = 0; i < 3; i++)
        mk_auth_check_password(c, pw, dummy_it);
    return (gdouble)(g_get_monotonic_time() - t0);
}

/* An unknown user is refused, after as much work as a wrong password. */
static void test_check_password_unknown(void)
{
    g_assert_false(mk_auth_check_password(NULL, "anything", 4096));
    g_assert_false(mk_auth_check_password(NULL, "", 4096));
    /* On a plain-format server the dummy is a plain comparison. */
    g_assert_false(mk_auth_check_password(NULL, "anything", MK_AUTH_DUMMY_PLAIN));
    g_assert_false(mk_auth_check_password(NULL, "", MK_AUTH_DUMMY_PLAIN));

    g_autoptr(MkCredentials) c = make_creds("r0m3o!", NULL, 40000);
    gdouble known = time_check(c, "wrong", 40000);
    gdouble unknown = time_check(NULL, "wrong", 40000);
    /* Loose bounds: the derivation dominates both; a shortcut for unknown
     * users would be orders of magnitude faster. */
    g_assert_cmpfloat(unknown, >, known * 0.3);
    g_assert_cmpfloat(known, >, unknown * 0.3);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/scram/rfc7677-sha256", test_rfc7677_sha256);
    g_test_add_func("/scram/rfc5802-sha1", test_rfc5802_sha1);
    g_test_add_func("/scram/derive-inputs", test_derive_inputs);
    g_test_add_func("/scram/saslprep", test_saslprep);
    g_test_add_func("/scram/const-time-equal", test_const_time_equal);
    g_test_add_func("/scram/new-salt", test_new_salt);
    g_test_add_func("/auth/check-password/scram", test_check_password_scram);
    g_test_add_func("/auth/check-password/plain", test_check_password_plain);
    g_test_add_func("/auth/check-password/unknown-user", test_check_password_unknown);
    return g_test_run();
}
