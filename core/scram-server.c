/* The server side of a SCRAM exchange (RFC 5802, RFC 7677) with channel
 * binding for -PLUS. See scram-server.h.
 *
 * Written for Meerkat rather than taken from GNU SASL, whose server
 * SASLprepped the username through libidn on every login, went through
 * string properties and base64 for keys we already hold in binary, and
 * needed the whole exchange on the auth pool. The outcomes are the ones
 * GNU SASL gave, except where the RFC is stricter (see the comments). */
#include "scram-server.h"
#include <gnutls/crypto.h>
#include <string.h>

/* As GNU SASL: 18 random bytes, 24 characters of base64. */
#define SERVER_NONCE_BYTES 18

typedef enum {
    WAIT_CLIENT_FIRST,
    WAIT_KEYS,
    WAIT_CLIENT_FINAL,
    DONE,
} Step;

struct MkScramServer {
    MkScramHash hash;
    gboolean plus;
    char *cb_type;   /* nullable */
    guint8 *cb_data; /* nullable */
    gsize cb_len;
    Step step;
    char cbflag;             /* 'n', 'y' or 'p' */
    char *gs2_header;        /* as received, with its final ',' */
    char *client_first_bare; /* for AuthMessage */
    char *client_nonce;
    char *username;
    char *authzid; /* nullable */
    char *server_nonce;
    char *nonce; /* client's + server's */
    char *server_first;
    guint8 stored_key[32], server_key[32];
    gboolean accept_y;  /* 'y' is no downgrade here (mk_scram_server_set_policy) */
    char *ssdp;         /* nullable: XEP-0474's h= value */
    char *why;          /* nullable: why the last step failed, for the log */
    gboolean bad_proof; /* the final step failed on the proof itself */
};

static gsize hash_len(MkScramHash hash)
{
    return hash == MK_SCRAM_SHA1 ? 20 : 32;
}

/* (transfer full) Any thread. */
MkScramServer *mk_scram_server_new(MkScramHash hash, gboolean plus, const char *cb_type,
                                   const guint8 *cb_data, gsize cb_len)
{
    MkScramServer *s = g_new0(MkScramServer, 1);
    s->hash = hash;
    s->plus = plus;
    if (cb_type && cb_data) {
        s->cb_type = g_strdup(cb_type);
        s->cb_data = g_memdup2(cb_data, cb_len);
        s->cb_len = cb_len;
    }
    return s;
}

void mk_scram_server_free(MkScramServer *s)
{
    if (!s)
        return;
    gnutls_memset(s->stored_key, 0, sizeof s->stored_key);
    gnutls_memset(s->server_key, 0, sizeof s->server_key);
    g_free(s->cb_type);
    g_free(s->cb_data);
    g_free(s->gs2_header);
    g_free(s->client_first_bare);
    g_free(s->client_nonce);
    g_free(s->username);
    g_free(s->authzid);
    g_free(s->server_nonce);
    g_free(s->nonce);
    g_free(s->server_first);
    g_free(s->ssdp);
    g_free(s->why);
    g_free(s);
}

char *mk_scram_ssdp_hash(MkScramHash hash, const char *advertised, gsize len)
{
    guint8 digest[32];
    gnutls_digest_algorithm_t dig = hash == MK_SCRAM_SHA1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256;
    if (gnutls_hash_fast(dig, advertised, len, digest) != 0)
        return NULL;
    return g_base64_encode(digest, hash_len(hash));
}

void mk_scram_server_set_policy(MkScramServer *s, gboolean accept_y, const char *ssdp_b64)
{
    g_return_if_fail(s->step == WAIT_CLIENT_FIRST);
    s->accept_y = accept_y;
    g_free(s->ssdp);
    s->ssdp = g_strdup(ssdp_b64);
}

gboolean mk_scram_server_bad_proof(MkScramServer *s)
{
    return s->bad_proof;
}

const char *mk_scram_server_failure(MkScramServer *s)
{
    return s->why ? s->why : "authentication failed";
}

/* Records why the exchange fails (for the log; never secrets) and
 * returns @st. */
static MkScramStatus refuse(MkScramServer *s, MkScramStatus st, char *why)
{
    g_free(s->why);
    s->why = why;
    return st;
}

void mk_scram_server_set_nonce(MkScramServer *s, const char *server_nonce)
{
    g_return_if_fail(s->step <= WAIT_KEYS);
    g_free(s->server_nonce);
    s->server_nonce = g_strdup(server_nonce);
}

const char *mk_scram_server_username(MkScramServer *s)
{
    return s->username;
}

const char *mk_scram_server_authzid(MkScramServer *s)
{
    return s->authzid;
}

guint8 *mk_base64_decode_strict(const char *in, gsize len, gsize *out_len)
{
    *out_len = 0;
    if (len % 4 != 0)
        return NULL;
    for (gsize i = 0; i < len; i++) {
        char ch = in[i];
        if (g_ascii_isalnum(ch) || ch == '+' || ch == '/')
            continue;
        /* Padding: only the last one or two characters. */
        if (ch == '=' && i + 2 >= len && in[len - 1] == '=')
            continue;
        return NULL;
    }
    guint8 *out = g_malloc(len / 4 * 3 + 1);
    gint state = 0;
    guint save = 0;
    gsize n = g_base64_decode_step(in, len, out, &state, &save);
    out[n] = 0;
    *out_len = n;
    return out;
}

/* ---- the grammar of RFC 5802 section 7 ---------------------------------- */

static const char *field_end(const char *p, const char *end)
{
    const char *comma = memchr(p, ',', (gsize)(end - p));
    return comma ? comma : end;
}

static gboolean take_comma(const char **p, const char *end)
{
    if (*p >= end || **p != ',')
        return FALSE;
    (*p)++;
    return TRUE;
}

/* "@name=" value up to the next ',' or the end; *@p moves past the value. */
static gboolean take_attr(const char **p, const char *end, char name, const char **val,
                          gsize *val_len)
{
    if (end - *p < 2 || (*p)[0] != name || (*p)[1] != '=')
        return FALSE;
    *val = *p + 2;
    *p = field_end(*val, end);
    *val_len = (gsize)(*p - *val);
    return TRUE;
}

/* saslname = 1*(value-safe-char / "=2C" / "=3D"): any UTF-8 but NUL, ','
 * and '='. A '=' not followed by 2C or 3D must fail (RFC 5802 5.1; GNU
 * SASL kept it). Returns: (transfer full) (nullable) the decoded name. */
static char *decode_saslname(const char *s, gsize len)
{
    if (len == 0)
        return NULL;
    GString *out = g_string_sized_new(len);
    for (gsize i = 0; i < len; i++) {
        if (s[i] != '=') {
            g_string_append_c(out, s[i]);
        } else if (len - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C') {
            g_string_append_c(out, ',');
            i += 2;
        } else if (len - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D') {
            g_string_append_c(out, '=');
            i += 2;
        } else {
            g_string_free(out, TRUE);
            return NULL;
        }
    }
    if (!g_utf8_validate(out->str, (gssize)out->len, NULL)) {
        g_string_free(out, TRUE);
        return NULL;
    }
    return g_string_free(out, FALSE);
}

/* c-nonce = 1*printable, printable = %x21-2B / %x2D-7E. */
static gboolean valid_nonce(const char *s, gsize len)
{
    if (len == 0)
        return FALSE;
    for (gsize i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return FALSE;
    return TRUE;
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-"). */
static gboolean valid_cb_name(const char *s, gsize len)
{
    if (len == 0)
        return FALSE;
    for (gsize i = 0; i < len; i++)
        if (!g_ascii_isalnum(s[i]) && s[i] != '.' && s[i] != '-')
            return FALSE;
    return TRUE;
}

/* One optional extension, attr-val = ALPHA "=" value, which we ignore;
 * "m" is reserved for mandatory extensions, and none is supported: its
 * presence must fail the exchange (RFC 5802 5.1). */
static gboolean skip_extension(const char **p, const char *end)
{
    if (end - *p < 3 || !g_ascii_isalpha(**p) || **p == 'm' || (*p)[1] != '=')
        return FALSE;
    const char *v = *p + 2;
    *p = field_end(v, end);
    return *p > v;
}

/* ---- the exchange --------------------------------------------------------- */

MkScramStatus mk_scram_server_client_first(MkScramServer *s, const char *msg, gsize len)
{
    g_return_val_if_fail(s->step == WAIT_CLIENT_FIRST, MK_SCRAM_REFUSED);
    const char *p = msg, *end = msg + len, *v;
    gsize vlen;
    g_autofree char *cb_name = NULL, *authzid = NULL, *username = NULL;
    char flag;

    if (memchr(msg, 0, len))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message (NUL)"));
    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    if (p < end && (*p == 'n' || *p == 'y')) {
        flag = *p++;
    } else if (take_attr(&p, end, 'p', &v, &vlen) && valid_cb_name(v, vlen)) {
        flag = 'p';
        cb_name = g_strndup(v, vlen);
    } else {
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    }
    if (!take_comma(&p, end))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    if (p < end && *p != ',') {
        if (!take_attr(&p, end, 'a', &v, &vlen) || !(authzid = decode_saslname(v, vlen)))
            return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    }
    if (!take_comma(&p, end))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    const char *bare = p;
    /* client-first-message-bare = [reserved-mext ","] username "," nonce
     * ["," extensions]: an m= in front fails here too. */
    if (!take_attr(&p, end, 'n', &v, &vlen) || !(username = decode_saslname(v, vlen)))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    if (!take_comma(&p, end) || !take_attr(&p, end, 'r', &v, &vlen) || !valid_nonce(v, vlen))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));
    const char *cnonce = v;
    gsize cnonce_len = vlen;
    while (p < end)
        if (!take_comma(&p, end) || !skip_extension(&p, end))
            return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-first message"));

    /* Channel binding (RFC 5802 section 6). A -PLUS mechanism requires
     * 'p' with the binding type this stream has. 'p' without -PLUS is a
     * client contradicting itself (GNU SASL let it through with empty
     * binding data). 'y' says "I could bind but you do not seem to": a
     * downgrade when we did offer -PLUS on this stream. */
    if (s->plus && flag != 'p')
        return refuse(s, MK_SCRAM_REFUSED,
                      g_strdup_printf("-PLUS mechanism without channel binding (flag '%c')", flag));
    if (s->plus && (!s->cb_type || strcmp(cb_name, s->cb_type) != 0))
        return refuse(s, MK_SCRAM_REFUSED,
                      g_strdup_printf("unsupported channel binding type %s (this stream has %s)",
                                      cb_name, s->cb_type ? s->cb_type : "none"));
    if (!s->plus && flag == 'p')
        return refuse(s, MK_SCRAM_REFUSED,
                      g_strdup("channel binding requested on a mechanism without -PLUS"));
    /* 'y' says "I could bind but you do not seem to": a downgrade when
     * -PLUS was offered, unless the policy says that this stream's binding
     * type is one such a client may well lack (docs/configuration.md). */
    if (flag == 'y' && s->cb_type && !s->accept_y)
        return refuse(
            s, MK_SCRAM_REFUSED,
            g_strdup_printf("flag 'y' while -PLUS with %s was offered (downgrade refused)",
                            s->cb_type));
    /* As GNU SASL: a name SASLprep refuses, or that it maps to nothing,
     * fails (printable ASCII takes mk_scram_saslprep's fast path). */
    g_autofree char *prepped = mk_scram_saslprep(username);
    if (!prepped || !*prepped)
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("username fails SASLprep"));

    s->cbflag = flag;
    s->gs2_header = g_strndup(msg, (gsize)(bare - msg));
    s->client_first_bare = g_strndup(bare, (gsize)(end - bare));
    s->client_nonce = g_strndup(cnonce, cnonce_len);
    s->username = g_steal_pointer(&username);
    s->authzid = g_steal_pointer(&authzid);
    s->step = WAIT_KEYS;
    return MK_SCRAM_OK;
}

char *mk_scram_server_first(MkScramServer *s, const guint8 *salt, gsize salt_len, guint iterations,
                            const guint8 *stored_key, const guint8 *server_key)
{
    g_return_val_if_fail(s->step == WAIT_KEYS, NULL);
    gsize hlen = hash_len(s->hash);
    if (!s->server_nonce) {
        guint8 rnd[SERVER_NONCE_BYTES];
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
        s->server_nonce = g_base64_encode(rnd, sizeof rnd);
    }
    s->nonce = g_strconcat(s->client_nonce, s->server_nonce, NULL);
    g_autofree char *salt_b64 = g_base64_encode(salt, salt_len);
    /* XEP-0474: h= signs what we advertised, so that a client checking
     * it sees a stripped mechanism or binding type. */
    s->server_first =
        s->ssdp ? g_strdup_printf("r=%s,s=%s,i=%u,h=%s", s->nonce, salt_b64, iterations, s->ssdp)
                : g_strdup_printf("r=%s,s=%s,i=%u", s->nonce, salt_b64, iterations);
    memcpy(s->stored_key, stored_key, hlen);
    memcpy(s->server_key, server_key, hlen);
    s->step = WAIT_CLIENT_FINAL;
    return g_strdup(s->server_first);
}

MkScramStatus mk_scram_server_client_final(MkScramServer *s, const char *msg, gsize len,
                                           char **server_final)
{
    *server_final = NULL;
    g_return_val_if_fail(s->step == WAIT_CLIENT_FINAL, MK_SCRAM_REFUSED);
    s->step = DONE; /* one attempt per exchange */
    gboolean sha1 = s->hash == MK_SCRAM_SHA1;
    gnutls_mac_algorithm_t mac = sha1 ? GNUTLS_MAC_SHA1 : GNUTLS_MAC_SHA256;
    gnutls_digest_algorithm_t dig = sha1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256;
    gsize hlen = hash_len(s->hash);
    const char *p = msg, *end = msg + len, *v;
    gsize vlen;

    /* client-final-message = channel-binding "," nonce ["," extensions]
     * "," proof */
    if (memchr(msg, 0, len) || !take_attr(&p, end, 'c', &v, &vlen))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));
    gsize cbind_len = 0;
    g_autofree guint8 *cbind = mk_base64_decode_strict(v, vlen, &cbind_len);
    if (!cbind || !take_comma(&p, end) || !take_attr(&p, end, 'r', &v, &vlen) ||
        !valid_nonce(v, vlen))
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));
    const char *nonce = v;
    gsize nonce_len = vlen;
    const char *without_proof_end = NULL, *proof_b64 = NULL;
    gsize proof_b64_len = 0;
    while (p < end && !proof_b64) {
        const char *field = p;
        if (!take_comma(&p, end))
            return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));
        if (take_attr(&p, end, 'p', &v, &vlen)) {
            without_proof_end = field;
            proof_b64 = v;
            proof_b64_len = vlen;
        } else if (!skip_extension(&p, end)) {
            return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));
        }
    }
    if (!proof_b64 || p != end)
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));
    gsize proof_len = 0;
    g_autofree guint8 *proof = mk_base64_decode_strict(proof_b64, proof_b64_len, &proof_len);
    if (!proof || proof_len != hlen)
        return refuse(s, MK_SCRAM_MALFORMED, g_strdup("malformed client-final message"));

    if (nonce_len != strlen(s->nonce) || memcmp(nonce, s->nonce, nonce_len) != 0)
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("nonce mismatch"));
    /* c= is the gs2-header again, followed by the binding data for 'p'. */
    gsize hdr_len = strlen(s->gs2_header);
    gsize want_len = hdr_len + (s->cbflag == 'p' ? s->cb_len : 0);
    if (cbind_len != want_len || memcmp(cbind, s->gs2_header, hdr_len) != 0 ||
        (s->cbflag == 'p' && !mk_const_time_equal(cbind + hdr_len, s->cb_data, s->cb_len)))
        return refuse(s, MK_SCRAM_REFUSED,
                      g_strdup(s->cbflag == 'p' ? "channel binding data mismatch"
                                                : "gs2 header differs from the first message"));

    /* AuthMessage = client-first-message-bare "," server-first-message ","
     * client-final-message-without-proof */
    g_autofree char *auth = g_strdup_printf("%s,%s,%.*s", s->client_first_bare, s->server_first,
                                            (int)(without_proof_end - msg), msg);
    gsize auth_len = strlen(auth);
    guint8 signature[32], client_key[32], stored[32];
    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
     * holds when H(ClientKey) is the StoredKey. */
    if (gnutls_hmac_fast(mac, s->stored_key, hlen, auth, auth_len, signature) < 0)
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("HMAC failed"));
    for (gsize i = 0; i < hlen; i++)
        client_key[i] = proof[i] ^ signature[i];
    if (gnutls_hash_fast(dig, client_key, hlen, stored) < 0)
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("hash failed"));
    gboolean ok = mk_const_time_equal(stored, s->stored_key, hlen);
    gnutls_memset(client_key, 0, sizeof client_key);
    if (!ok) {
        s->bad_proof = TRUE;
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("wrong password (client proof)"));
    }
    /* ServerSignature = HMAC(ServerKey, AuthMessage) */
    if (gnutls_hmac_fast(mac, s->server_key, hlen, auth, auth_len, signature) < 0)
        return refuse(s, MK_SCRAM_REFUSED, g_strdup("HMAC failed"));
    g_autofree char *b64 = g_base64_encode(signature, hlen);
    *server_final = g_strconcat("v=", b64, NULL);
    return MK_SCRAM_OK;
}
