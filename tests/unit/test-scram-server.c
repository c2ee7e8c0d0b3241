/* The SCRAM server (core/scram-server.c): the example exchanges of RFC
 * 5802 and RFC 7677 byte for byte (with their server nonces), channel
 * binding for -PLUS, the 'y' flag, and messages off the grammar. The
 * client side is computed here from the RFC's formulas. */
#include "scram-server.h"
#include <gnutls/crypto.h>
#include <string.h>

#define CB_DATA "0123456789abcdef0123456789abcdef"

static gsize hlen(MkScramHash h)
{
    return h == MK_SCRAM_SHA1 ? 20 : 32;
}

static MkScramStatus first(MkScramServer *s, const char *msg)
{
    return mk_scram_server_client_first(s, msg, strlen(msg));
}

/* The server's keys for @password with @salt_b64 and 4096 iterations. */
static void keys_for(MkScramHash h, const char *password, const char *salt_b64, guint8 *stored,
                     guint8 *server)
{
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode(salt_b64, &salt_len);
    mk_scram_derive(h, password, salt, salt_len, 4096, stored, server);
}

/* ClientProof of @password for @auth_message, as a client computes it. */
static char *client_proof(MkScramHash h, const char *password, const char *salt_b64,
                          const char *auth_message)
{
    gnutls_mac_algorithm_t mac = h == MK_SCRAM_SHA1 ? GNUTLS_MAC_SHA1 : GNUTLS_MAC_SHA256;
    gnutls_digest_algorithm_t dig = h == MK_SCRAM_SHA1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256;
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode(salt_b64, &salt_len);
    guint8 salted[32], client_key[32], stored[32], sig[32], proof[32];
    gnutls_datum_t key = {(unsigned char *)password, (unsigned)strlen(password)};
    gnutls_datum_t s = {salt, (unsigned)salt_len};
    g_assert_cmpint(gnutls_pbkdf2(mac, &key, &s, 4096, salted, hlen(h)), ==, 0);
    gnutls_hmac_fast(mac, salted, hlen(h), "Client Key", 10, client_key);
    gnutls_hash_fast(dig, client_key, hlen(h), stored);
    gnutls_hmac_fast(mac, stored, hlen(h), auth_message, strlen(auth_message), sig);
    for (gsize i = 0; i < hlen(h); i++)
        proof[i] = client_key[i] ^ sig[i];
    return g_base64_encode(proof, hlen(h));
}

/* One RFC example: every message must be the RFC's. */
static void rfc_exchange(MkScramHash h, const char *client_first, const char *server_nonce,
                         const char *salt_b64, const char *server_first, const char *client_final,
                         const char *server_final)
{
    guint8 stored[32], server[32];
    keys_for(h, "pencil", salt_b64, stored, server);
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode(salt_b64, &salt_len);

    g_autoptr(MkScramServer) s = mk_scram_server_new(h, FALSE, NULL, NULL, 0);
    mk_scram_server_set_nonce(s, server_nonce);
    g_assert_cmpint(first(s, client_first), ==, MK_SCRAM_OK);
    g_assert_cmpstr(mk_scram_server_username(s), ==, "user");
    g_assert_null(mk_scram_server_authzid(s));
    g_autofree char *sf = mk_scram_server_first(s, salt, salt_len, 4096, stored, server);
    g_assert_cmpstr(sf, ==, server_first);
    g_autofree char *sl = NULL;
    g_assert_cmpint(mk_scram_server_client_final(s, client_final, strlen(client_final), &sl), ==,
                    MK_SCRAM_OK);
    g_assert_cmpstr(sl, ==, server_final);
}

/* RFC 5802 section 5. */
static void test_rfc5802_sha1(void)
{
    rfc_exchange(
        MK_SCRAM_SHA1, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

/* RFC 7677 section 3. */
static void test_rfc7677_sha256(void)
{
    rfc_exchange(MK_SCRAM_SHA256, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                 "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==",
                 "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                 "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                 "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

#define SALT "W22ZaJ0SNY7soEsUEjb6gQ=="

typedef struct {
    MkScramHash hash;
    gboolean plus;
    const char *cb_type;         /* the server's binding (NULL: none offered) */
    const char *client_first;    /* "GS2HEADER" + "n=user,r=cnonce" */
    const char *gs2_header;      /* the client's c= before its binding data */
    const char *client_cb;       /* binding data the client appends, or NULL */
    const char *password;        /* the client's */
    const char *final_extension; /* e.g. ",x=1" between nonce and proof */
} Exchange;

/* Runs @e against an account with password "pencil"; returns the status
 * of the first step that is not OK, or OK. */
static MkScramStatus run(const Exchange *e, char **server_final)
{
    guint8 stored[32], server[32];
    keys_for(e->hash, "pencil", SALT, stored, server);
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode(SALT, &salt_len);
    g_autoptr(MkScramServer) s = mk_scram_server_new(
        e->hash, e->plus, e->cb_type, (const guint8 *)CB_DATA, e->cb_type ? strlen(CB_DATA) : 0);
    MkScramStatus st = first(s, e->client_first);
    if (st != MK_SCRAM_OK)
        return st;
    g_autofree char *sf = mk_scram_server_first(s, salt, salt_len, 4096, stored, server);
    g_assert_nonnull(sf);
    const char *nonce = sf + 2;
    g_autofree char *nonce_only = g_strndup(nonce, strchr(nonce, ',') - nonce);

    GString *cbind = g_string_new(e->gs2_header);
    if (e->client_cb)
        g_string_append(cbind, e->client_cb);
    g_autofree char *c_b64 = g_base64_encode((const guchar *)cbind->str, cbind->len);
    g_string_free(cbind, TRUE);
    g_autofree char *without_proof = g_strdup_printf("c=%s,r=%s%s", c_b64, nonce_only,
                                                     e->final_extension ? e->final_extension : "");
    const char *bare = strstr(e->client_first, "n=");
    g_autofree char *auth = g_strdup_printf("%s,%s,%s", bare, sf, without_proof);
    g_autofree char *proof = client_proof(e->hash, e->password, SALT, auth);
    g_autofree char *final = g_strdup_printf("%s,p=%s", without_proof, proof);
    char *sl = NULL;
    st = mk_scram_server_client_final(s, final, strlen(final), &sl);
    g_assert_true((st == MK_SCRAM_OK) == (sl != NULL));
    if (server_final)
        *server_final = sl;
    else
        g_free(sl);
    return st;
}

static void test_good_and_wrong_password(void)
{
    Exchange e = {MK_SCRAM_SHA256, FALSE, NULL, "n,,n=user,r=abc", "n,,", NULL, "pencil", NULL};
    g_autofree char *sl = NULL;
    g_assert_cmpint(run(&e, &sl), ==, MK_SCRAM_OK);
    g_assert_true(g_str_has_prefix(sl, "v="));
    e.password = "pencil2";
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
    e.hash = MK_SCRAM_SHA1;
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
    e.password = "pencil";
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
    /* Optional extensions are ignored, in both client messages. */
    e.client_first = "n,,n=user,r=abc,x=ext";
    e.final_extension = ",y=1,z=2";
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
}

/* A proof off by one bit, the RFC's exchange with another nonce, and
 * the same final message twice. */
static void test_wrong_proof(void)
{
    guint8 stored[20], server[20];
    keys_for(MK_SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", stored, server);
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode("QSXCR+Q6sek8bf92", &salt_len);
    const char *finals[] = {
        /* last proof byte changed (4Ts= -> 4Tk=) */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tk=",
        /* nonce not the server's */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7k,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        /* c= claims 'y' where the client said 'n' */
        "c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    };
    for (guint i = 0; i < G_N_ELEMENTS(finals); i++) {
        g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA1, FALSE, NULL, NULL, 0);
        mk_scram_server_set_nonce(s, "3rfcNHYJY1ZVvWVs7j");
        g_assert_cmpint(first(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), ==, MK_SCRAM_OK);
        g_autofree char *sf = mk_scram_server_first(s, salt, salt_len, 4096, stored, server);
        g_autofree char *sl = NULL;
        g_assert_cmpint(mk_scram_server_client_final(s, finals[i], strlen(finals[i]), &sl), ==,
                        MK_SCRAM_REFUSED);
        g_assert_null(sl);
    }
}

static void test_channel_binding(void)
{
    for (int sha = 0; sha < 2; sha++) {
        MkScramHash h = sha ? MK_SCRAM_SHA256 : MK_SCRAM_SHA1;
        Exchange e = {h,
                      TRUE,
                      "tls-exporter",
                      "p=tls-exporter,,n=user,r=abc",
                      "p=tls-exporter,,",
                      CB_DATA,
                      "pencil",
                      NULL};
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
        /* The client saw another TLS channel (a man in the middle). */
        e.client_cb = "0123456789abcdef0123456789abcdeF";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        e.client_cb = "0123456789abcdef";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        e.client_cb = NULL;
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        /* A binding type the stream does not have. */
        e.client_cb = CB_DATA;
        e.client_first = "p=tls-unique,,n=user,r=abc";
        e.gs2_header = "p=tls-unique,,";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        /* -PLUS without binding: 'n' and 'y' are refused. */
        e.client_cb = NULL;
        e.client_first = "n,,n=user,r=abc";
        e.gs2_header = "n,,";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        e.client_first = "y,,n=user,r=abc";
        e.gs2_header = "y,,";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
        /* An authzid is part of the bound header. */
        e.client_cb = CB_DATA;
        e.client_first = "p=tls-exporter,a=user@localhost,n=user,r=abc";
        e.gs2_header = "p=tls-exporter,a=user@localhost,";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
        e.gs2_header = "p=tls-exporter,,";
        g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
    }
}

/* 'y': the client can bind but believes the server cannot. Refused when
 * this stream offered -PLUS (a downgrade), accepted otherwise. 'p' with
 * a mechanism without -PLUS is refused. */
static void test_y_flag(void)
{
    Exchange e = {MK_SCRAM_SHA256, FALSE, "tls-exporter", "y,,n=user,r=abc",
                  "y,,",           NULL,  "pencil",       NULL};
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
    e.cb_type = NULL;
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
    e.cb_type = "tls-exporter";
    e.client_first = "n,,n=user,r=abc";
    e.gs2_header = "n,,";
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_OK);
    e.client_first = "p=tls-exporter,,n=user,r=abc";
    e.gs2_header = "p=tls-exporter,,";
    e.client_cb = CB_DATA;
    g_assert_cmpint(run(&e, NULL), ==, MK_SCRAM_REFUSED);
}

/* The listener's scram_y_flag policy lets 'y' through although -PLUS was
 * offered; the reasons name what failed. */
static void test_y_policy(void)
{
    g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, "tls-exporter",
                                                     (const guint8 *)CB_DATA, strlen(CB_DATA));
    mk_scram_server_set_policy(s, TRUE, NULL);
    g_assert_cmpint(first(s, "y,,n=user,r=abc"), ==, MK_SCRAM_OK);
    g_autoptr(MkScramServer) r = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, "tls-exporter",
                                                     (const guint8 *)CB_DATA, strlen(CB_DATA));
    mk_scram_server_set_policy(r, FALSE, NULL);
    g_assert_cmpint(first(r, "y,,n=user,r=abc"), ==, MK_SCRAM_REFUSED);
    g_assert_nonnull(strstr(mk_scram_server_failure(r), "flag 'y'"));
    g_autoptr(MkScramServer) u = mk_scram_server_new(MK_SCRAM_SHA256, TRUE, "tls-exporter",
                                                     (const guint8 *)CB_DATA, strlen(CB_DATA));
    g_assert_cmpint(first(u, "p=tls-unique,,n=user,r=abc"), ==, MK_SCRAM_REFUSED);
    g_assert_cmpstr(mk_scram_server_failure(u), ==,
                    "unsupported channel binding type tls-unique (this stream has tls-exporter)");
}

/* XEP-0474: h= in the server-first message is the hash of what was
 * advertised; the XEP's example list and SHA-1 value. */
static void test_ssdp(void)
{
    static const char adv[] =
        "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point";
    g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA1, FALSE, NULL, NULL, 0);
    g_autofree char *h = mk_scram_ssdp_hash(MK_SCRAM_SHA1, adv, strlen(adv));
    mk_scram_server_set_policy(s, FALSE, h);
    mk_scram_server_set_nonce(s, "srv");
    g_assert_cmpint(first(s, "n,,n=user,r=abc"), ==, MK_SCRAM_OK);
    guint8 keys[64] = {0};
    g_autofree char *sf =
        mk_scram_server_first(s, (const guint8 *)"salt", 4, 4096, keys, keys + 32);
    g_assert_cmpstr(sf, ==, "r=abcsrv,s=c2FsdA==,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=");
}

/* Names: =2C and =3D decoded, other '=' refused; the authzid likewise. */
static void test_names(void)
{
    g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
    g_assert_cmpint(first(s, "n,a=j=2Cx=3Dy@localhost,n=a=2Cb=3Dc=3D,r=abc"), ==, MK_SCRAM_OK);
    g_assert_cmpstr(mk_scram_server_username(s), ==, "a,b=c=");
    g_assert_cmpstr(mk_scram_server_authzid(s), ==, "j,x=y@localhost");
    g_autoptr(MkScramServer) u = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
    g_assert_cmpint(first(u, "n,,n=J\xc3\xbcliet,r=abc"), ==, MK_SCRAM_OK);
    g_assert_cmpstr(mk_scram_server_username(u), ==, "J\xc3\xbcliet");
    /* SASLprep refuses a control character, or maps the name to nothing. */
    const char *refused[] = {"n,,n=us\x07r,r=abc", "n,,n=\xc2\xad,r=abc"};
    for (guint i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autoptr(MkScramServer) r = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
        g_assert_cmpint(first(r, refused[i]), ==, MK_SCRAM_REFUSED);
    }
}

static void test_malformed_first(void)
{
    const char *bad[] = {
        "",
        "n",
        "n,,",
        "x,,n=user,r=abc",
        "n,n=user,r=abc",             /* no authzid field */
        "n,,r=abc",                   /* no username */
        "n,,n=,r=abc",                /* empty username */
        "n,,n=us=er,r=abc",           /* '=' not =2C or =3D */
        "n,,n=user=2,r=abc",          /* truncated escape */
        "n,,n=user,r=",               /* empty nonce */
        "n,,n=user,r=a b",            /* nonce not printable */
        "n,,n=user",                  /* no nonce */
        "n,,n=user,r=abc,",           /* empty extension */
        "n,,n=user,r=abc,x",          /* extension without value */
        "n,,n=user,r=abc,x=",         /* extension with empty value */
        "n,,n=user,r=abc,1=x",        /* extension name not a letter */
        "n,,m=ext,n=user,r=abc",      /* mandatory extension */
        "n,,n=user,r=abc,m=ext",      /* "m" anywhere */
        "p=,,n=user,r=abc",           /* empty binding name */
        "p=tls_unique,,n=user,r=abc", /* '_' not allowed in a binding name */
        "p,,n=user,r=abc",            /* p without name */
        "ny,,n=user,r=abc",
        "n,a=,n=user,r=abc",    /* empty authzid */
        "n,b=x,n=user,r=abc",   /* not an authzid */
        "n,a=x=y,n=user,r=abc", /* bad escape in authzid */
        "n,,n=\xff\xfe,r=abc",  /* not UTF-8 */
        "n,,n=user,r=abc,x=y,",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("client-first %s", bad[i]);
        g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
        g_assert_cmpint(first(s, bad[i]), ==, MK_SCRAM_MALFORMED);
    }
    /* A NUL inside. */
    g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
    g_assert_cmpint(mk_scram_server_client_first(s, "n,,n=us\0r,r=abc", 15), ==,
                    MK_SCRAM_MALFORMED);
}

static void test_malformed_final(void)
{
    guint8 stored[32], server[32];
    keys_for(MK_SCRAM_SHA256, "pencil", SALT, stored, server);
    gsize salt_len = 0;
    g_autofree guint8 *salt = g_base64_decode(SALT, &salt_len);
    /* The nonce is "abcSN"; the proof's value does not matter. */
    const char *bad[] = {
        "",
        "c=biws,r=abcSN",                                                    /* no proof */
        "r=abcSN,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",     /* order */
        "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",             /* no nonce */
        "c=bi!s,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",     /* c= not base64 */
        "c=biw,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",      /* c= length */
        "c=biws,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",      /* proof unpadded */
        "c=biws,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjf",                     /* proof too short */
        "c=biws,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1", /* after proof */
        "c=biws,r=abcSN,m=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* mandatory ext */
        "c=biws,r=abcSN,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgs\nqmmiz7AndVQ=",   /* whitespace */
        "c=biws,r=abcSN,p=",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("client-final %s", bad[i]);
        g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
        mk_scram_server_set_nonce(s, "SN");
        g_assert_cmpint(first(s, "n,,n=user,r=abc"), ==, MK_SCRAM_OK);
        g_autofree char *sf = mk_scram_server_first(s, salt, salt_len, 4096, stored, server);
        g_autofree char *sl = NULL;
        g_assert_cmpint(mk_scram_server_client_final(s, bad[i], strlen(bad[i]), &sl), ==,
                        MK_SCRAM_MALFORMED);
        g_assert_null(sl);
    }
}

/* A nonce of 18 random bytes, new for each exchange. */
static void test_server_nonce(void)
{
    guint8 key[32] = {0};
    const guint8 salt[16] = {1};
    char *sf[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        g_autoptr(MkScramServer) s = mk_scram_server_new(MK_SCRAM_SHA256, FALSE, NULL, NULL, 0);
        g_assert_cmpint(first(s, "n,,n=user,r=abc"), ==, MK_SCRAM_OK);
        sf[i] = mk_scram_server_first(s, salt, sizeof salt, 4096, key, key);
        g_assert_true(g_str_has_prefix(sf[i], "r=abc"));
        g_assert_cmpuint(strchr(sf[i], ',') - sf[i], ==, 2 + 3 + 24);
    }
    g_assert_cmpstr(sf[0], !=, sf[1]);
    g_free(sf[0]);
    g_free(sf[1]);
}

static void test_base64_strict(void)
{
    gsize n = 0;
    g_autofree guint8 *a = mk_base64_decode_strict("Zm9vYg==", 8, &n);
    g_assert_cmpuint(n, ==, 4);
    g_assert_cmpmem(a, 4, "foob", 4);
    g_autofree guint8 *b = mk_base64_decode_strict("Zm9vYmE=", 8, &n);
    g_assert_cmpmem(b, n, "fooba", 5);
    g_autofree guint8 *e = mk_base64_decode_strict("", 0, &n);
    g_assert_nonnull(e);
    g_assert_cmpuint(n, ==, 0);
    const char *bad[] = {
        "Zm9vYg=", "Zm9v Yg==", "Zm9=vYg=", "Zm9vY===", "=m9v", "Zm9vYg=a", "Zm9\nvYg=="};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
        g_assert_null(mk_base64_decode_strict(bad[i], strlen(bad[i]), &n));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/scram-server/rfc5802-sha1", test_rfc5802_sha1);
    g_test_add_func("/scram-server/rfc7677-sha256", test_rfc7677_sha256);
    g_test_add_func("/scram-server/good-and-wrong-password", test_good_and_wrong_password);
    g_test_add_func("/scram-server/wrong-proof", test_wrong_proof);
    g_test_add_func("/scram-server/channel-binding", test_channel_binding);
    g_test_add_func("/scram-server/y-flag", test_y_flag);
    g_test_add_func("/scram-server/y-policy", test_y_policy);
    g_test_add_func("/scram-server/ssdp", test_ssdp);
    g_test_add_func("/scram-server/names", test_names);
    g_test_add_func("/scram-server/malformed-first", test_malformed_first);
    g_test_add_func("/scram-server/malformed-final", test_malformed_final);
    g_test_add_func("/scram-server/server-nonce", test_server_nonce);
    g_test_add_func("/scram-server/base64-strict", test_base64_strict);
    return g_test_run();
}
