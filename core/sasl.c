/* SASL mechanisms through GNU SASL. See sasl.h.
 *
 * GNU SASL asks for what it needs through one callback: credentials for
 * SCRAM (salt, iterations, StoredKey/ServerKey, hex-encoded), validation
 * of PLAIN and ANONYMOUS, and channel-binding data for -PLUS. The callback
 * reads the account from the database on the calling (auth pool) thread. */
#include "sasl.h"
#include "auth.h"
#include <gnutls/crypto.h>
#include <gsasl.h>

struct MkSasl {
    Gsasl *ctx;
    MkDb *db;
    guint iterations;
    gboolean plain_format; /* [auth] password_format = plain */
    guint8 secret[32];     /* for deterministic fake salts of unknown users */
};

struct MkSaslSession {
    MkSasl *sasl;
    Gsasl_session *gs;
    char *mech;
    char *domain;
    char *cb_type;
    char *cb_b64;
    MkCredentials *creds; /* loaded on first need */
    gboolean creds_loaded;
    gboolean db_failed;
    gboolean bad_user;        /* authid is not a valid username */
    gboolean keys_from_plain; /* creds' keys re-derived from creds->plain */
};

void mk_sasl_result_clear(MkSaslResult *r)
{
    g_clear_pointer(&r->out_b64, g_free);
    g_clear_pointer(&r->username, g_free);
    r->condition = NULL;
}

static char *hex_of(const guint8 *data, gsize len)
{
    GString *s = g_string_sized_new(len * 2);
    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", data[i]);
    return g_string_free(s, FALSE);
}

/* Loads the account named by GSASL_AUTHID once per exchange. */
static void load_creds(MkSaslSession *ss)
{
    if (ss->creds_loaded)
        return;
    ss->creds_loaded = TRUE;
    const char *authid = gsasl_property_fast(ss->gs, GSASL_AUTHID);
    if (!authid || !*authid) {
        ss->bad_user = TRUE;
        return;
    }
    g_autoptr(GError) error = NULL;
    MkDbConn *conn = mk_db_acquire(ss->sasl->db, &error);
    if (!conn) {
        g_warning("SASL: cannot reach the database: %s", error->message);
        ss->db_failed = TRUE;
        return;
    }
    ss->creds = mk_auth_get(conn, authid, ss->domain, &error);
    mk_db_release(ss->sasl->db, conn);
    if (!ss->creds) {
        if (g_error_matches(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER))
            return;
        if (g_error_matches(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID)) {
            ss->bad_user = TRUE;
            return;
        }
        g_warning("SASL: reading account %s@%s failed: %s", authid, ss->domain,
                  error ? error->message : "?");
        ss->db_failed = TRUE;
    }
}

/* A plain-format account: its stored password is the truth (an operator
 * may have set it by hand, leaving the stored keys stale), so SCRAM
 * derives the keys from it at login, once per exchange and only for the
 * mechanism's hash. Costs one key derivation, as PLAIN on SCRAM-only
 * accounts does; on the auth pool. */
static void keys_from_plain(MkSaslSession *ss, gboolean sha256)
{
    MkCredentials *c = ss->creds;
    if (ss->keys_from_plain)
        return;
    ss->keys_from_plain = TRUE;
    if (!c && ss->sasl->plain_format) {
        /* Unknown user on a plain-format server: the same derivation, so
         * that timing does not tell missing accounts from existing ones. */
        static const guint8 dummy_salt[16] = {0};
        guint8 st[32], sv[32];
        mk_scram_derive(sha256 ? MK_SCRAM_SHA256 : MK_SCRAM_SHA1, "", dummy_salt, sizeof dummy_salt,
                        ss->sasl->iterations, st, sv);
        return;
    }
    if (!c || !c->plain)
        return;
    if (sha256)
        mk_scram_derive(MK_SCRAM_SHA256, c->plain, (const guint8 *)c->salt, c->salt_len,
                        c->iterations, c->stored_key_sha256, c->server_key_sha256);
    else
        mk_scram_derive(MK_SCRAM_SHA1, c->plain, (const guint8 *)c->salt, c->salt_len,
                        c->iterations, c->stored_key_sha1, c->server_key_sha1);
}

/* Salt for an account that does not exist: stable per name, so repeated
 * attempts cannot tell missing accounts from existing ones. */
static void fake_salt(MkSaslSession *ss, guint8 out[16])
{
    const char *authid = gsasl_property_fast(ss->gs, GSASL_AUTHID);
    guint8 mac[32];
    g_autofree char *msg = g_strdup_printf("%s@%s", authid ? authid : "", ss->domain);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, ss->sasl->secret, sizeof ss->sasl->secret, msg, strlen(msg),
                     mac);
    memcpy(out, mac, 16);
}

static gboolean mech_is_sha256(const char *mech)
{
    return g_str_has_prefix(mech, "SCRAM-SHA-256");
}

static int scram_property(MkSaslSession *ss, Gsasl_property prop)
{
    load_creds(ss);
    if (ss->db_failed)
        return GSASL_NO_CALLBACK;
    const MkCredentials *c = ss->creds;
    gboolean sha256 = mech_is_sha256(ss->mech);

    switch (prop) {
    case GSASL_SCRAM_ITER: {
        g_autofree char *it = g_strdup_printf("%u", c ? c->iterations : ss->sasl->iterations);
        gsasl_property_set(ss->gs, prop, it);
        return GSASL_OK;
    }
    case GSASL_SCRAM_SALT: {
        guint8 salt[16];
        g_autofree char *b64 = NULL;
        if (c) {
            b64 = g_base64_encode((const guchar *)c->salt, c->salt_len);
        } else {
            fake_salt(ss, salt);
            b64 = g_base64_encode(salt, sizeof salt);
        }
        gsasl_property_set(ss->gs, prop, b64);
        return GSASL_OK;
    }
    case GSASL_SCRAM_STOREDKEY:
    case GSASL_SCRAM_SERVERKEY: {
        guint8 random_key[32];
        const guint8 *key;
        gsize len = sha256 ? 32 : 20;
        keys_from_plain(ss, sha256);
        if (c) {
            if (prop == GSASL_SCRAM_STOREDKEY)
                key = sha256 ? c->stored_key_sha256 : c->stored_key_sha1;
            else
                key = sha256 ? c->server_key_sha256 : c->server_key_sha1;
        } else {
            /* Unknown account: keys nobody can match, so the proof fails
             * at the same step and cost as a wrong password. */
            gnutls_rnd(GNUTLS_RND_NONCE, random_key, sizeof random_key);
            key = random_key;
        }
        /* GNU SASL 2 takes the stored and server keys base64-encoded. */
        g_autofree char *b64 = g_base64_encode(key, len);
        gsasl_property_set(ss->gs, prop, b64);
        return GSASL_OK;
    }
    default:
        return GSASL_NO_CALLBACK;
    }
}

static int sasl_callback(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
    MkSaslSession *ss = gsasl_session_hook_get(gs);
    if (!ss)
        return GSASL_NO_CALLBACK;

    switch (prop) {
    case GSASL_SCRAM_ITER:
    case GSASL_SCRAM_SALT:
    case GSASL_SCRAM_STOREDKEY:
    case GSASL_SCRAM_SERVERKEY:
        return scram_property(ss, prop);
    case GSASL_VALIDATE_SIMPLE: {
        const char *password = gsasl_property_fast(gs, GSASL_PASSWORD);
        load_creds(ss);
        if (ss->db_failed)
            return GSASL_NO_CALLBACK;
        /* Unknown and malformed users cost the same work as a wrong
         * password (mk_auth_check_password with NULL): a key derivation,
         * or a plain comparison on a plain-format server. */
        gboolean ok = mk_auth_check_password(
            ss->bad_user ? NULL : ss->creds, password ? password : "",
            ss->sasl->plain_format ? MK_AUTH_DUMMY_PLAIN : ss->sasl->iterations);
        return ok ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
    }
    case GSASL_VALIDATE_ANONYMOUS:
        return GSASL_OK;
    case GSASL_CB_TLS_EXPORTER:
    case GSASL_CB_TLS_UNIQUE: {
        const char *want = prop == GSASL_CB_TLS_EXPORTER ? "tls-exporter" : "tls-unique";
        if (!ss->cb_b64 || g_strcmp0(ss->cb_type, want) != 0)
            return GSASL_NO_CALLBACK;
        gsasl_property_set(gs, prop, ss->cb_b64);
        return GSASL_OK;
    }
    default:
        return GSASL_NO_CALLBACK;
    }
}

MkSasl *mk_sasl_new(MkDb *db, guint scram_iterations, gboolean plain_format, GError **error)
{
    g_autofree MkSasl *sasl = g_new0(MkSasl, 1);
    int rc = gsasl_init(&sasl->ctx);
    if (rc != GSASL_OK) {
        g_set_error(error, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID, "GNU SASL: %s",
                    gsasl_strerror(rc));
        return NULL;
    }
    gsasl_callback_set(sasl->ctx, sasl_callback);
    sasl->db = db;
    sasl->iterations = scram_iterations ? scram_iterations : 4096;
    sasl->plain_format = plain_format;
    gnutls_rnd(GNUTLS_RND_KEY, sasl->secret, sizeof sasl->secret);
    return g_steal_pointer(&sasl);
}

void mk_sasl_free(MkSasl *sasl)
{
    if (!sasl)
        return;
    gsasl_done(sasl->ctx);
    g_free(sasl);
}

gboolean mk_sasl_supports(MkSasl *sasl, const char *mech)
{
    return gsasl_server_support_p(sasl->ctx, mech) != 0;
}

MkSaslSession *mk_sasl_session_new(MkSasl *sasl, const char *mech, const char *domain,
                                   const char *cb_type, GBytes *cb_data)
{
    Gsasl_session *gs = NULL;
    if (gsasl_server_start(sasl->ctx, mech, &gs) != GSASL_OK)
        return NULL;
    MkSaslSession *ss = g_new0(MkSaslSession, 1);
    ss->sasl = sasl;
    ss->gs = gs;
    ss->mech = g_strdup(mech);
    ss->domain = g_strdup(domain);
    if (cb_type && cb_data) {
        gsize len;
        const guchar *data = g_bytes_get_data(cb_data, &len);
        ss->cb_type = g_strdup(cb_type);
        ss->cb_b64 = g_base64_encode(data, len);
    }
    gsasl_session_hook_set(gs, ss);
    return ss;
}

void mk_sasl_session_free(MkSaslSession *ss)
{
    if (!ss)
        return;
    gsasl_finish(ss->gs);
    if (ss->creds)
        mk_credentials_free(ss->creds);
    g_free(ss->mech);
    g_free(ss->domain);
    g_free(ss->cb_type);
    g_free(ss->cb_b64);
    g_free(ss);
}

/* The authorization identity must be the account itself (or absent).
 * GNU SASL's PLAIN reports an empty authzid as the authcid, so a bare
 * localpart equal to the account is accepted as well as its bare JID. */
static gboolean authzid_ok(MkSaslSession *ss, const char *username)
{
    const char *authzid = gsasl_property_fast(ss->gs, GSASL_AUTHZID);
    if (!authzid || !*authzid)
        return TRUE;
    if (!strchr(authzid, '@') && !strchr(authzid, '/')) {
        g_autoptr(MkJid) mine = mk_jid_new_from_parts(username, ss->domain, NULL, NULL);
        g_autoptr(MkJid) asked = mk_jid_new_from_parts(authzid, ss->domain, NULL, NULL);
        return mine && asked && mk_jid_equal(mine, asked);
    }
    g_autoptr(MkJid) want = mk_jid_new_from_parts(username, ss->domain, NULL, NULL);
    g_autoptr(MkJid) got = mk_jid_new(authzid, NULL);
    return want && got && mk_jid_equal(want, got);
}

/* PLAIN (RFC 4616) without GNU SASL: its server SASLpreps the authcid
 * and the password through libidn before asking us, which was a fifth of
 * a login's instructions (docs/benchmarks.md), and both are prepared
 * again where they are used anyway (nodeprep in mk_auth_get, SASLprep in
 * mk_auth_check_password, with a fast path for ASCII). The outcomes are
 * GNU SASL's: an empty message asks for the credentials, a malformed one
 * is malformed-request, a wrong user or password not-authorized. */
static void plain_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result)
{
    if (!*in_b64) {
        result->status = MK_SASL_CONTINUE; /* an empty challenge */
        return;
    }
    gsize len = 0;
    g_autofree guchar *raw = g_base64_decode(in_b64, &len);
    /* authzid NUL authcid NUL passwd: exactly two NULs, authcid and
     * passwd 1..255 bytes, authzid 0..255, all UTF-8. */
    const char *authzid = (const char *)raw;
    const char *nul1 = raw ? memchr(raw, 0, len) : NULL;
    const char *authcid = nul1 ? nul1 + 1 : NULL;
    const char *nul2 = authcid ? memchr(authcid, 0, len - (gsize)(authcid - authzid)) : NULL;
    const char *passwd = nul2 ? nul2 + 1 : NULL;
    gsize zlen = nul1 ? (gsize)(nul1 - authzid) : 0;
    gsize clen = nul2 ? (gsize)(nul2 - authcid) : 0;
    gsize plen = passwd ? len - (gsize)(passwd - authzid) : 0;
    if (!passwd || memchr(passwd, 0, plen) || clen == 0 || plen == 0 || zlen > 255 || clen > 255 ||
        plen > 255 || !g_utf8_validate(authzid, (gssize)zlen, NULL) ||
        !g_utf8_validate(authcid, (gssize)clen, NULL) ||
        !g_utf8_validate(passwd, (gssize)plen, NULL)) {
        result->status = MK_SASL_FAILURE;
        result->condition = "malformed-request";
        return;
    }
    g_autofree char *z = g_strndup(authzid, zlen);
    g_autofree char *c = g_strndup(authcid, clen);
    g_autofree char *pw = g_strndup(passwd, plen);
    gsasl_property_set(ss->gs, GSASL_AUTHZID, zlen ? z : NULL);
    gsasl_property_set(ss->gs, GSASL_AUTHID, c);
    load_creds(ss);
    if (ss->db_failed) {
        result->status = MK_SASL_FAILURE;
        result->condition = "temporary-auth-failure";
        return;
    }
    /* Unknown and malformed users cost the same work as a wrong password
     * (mk_auth_check_password with NULL). */
    gboolean ok =
        mk_auth_check_password(ss->bad_user ? NULL : ss->creds, pw,
                               ss->sasl->plain_format ? MK_AUTH_DUMMY_PLAIN : ss->sasl->iterations);
    gnutls_memset(pw, 0, plen);
    if (!ok || !ss->creds) {
        result->status = MK_SASL_FAILURE;
        result->condition = "not-authorized";
    } else if (!authzid_ok(ss, ss->creds->username)) {
        result->status = MK_SASL_FAILURE;
        result->condition = "invalid-authzid";
    } else {
        result->status = MK_SASL_SUCCESS;
        result->username = g_strdup(ss->creds->username);
    }
}

void mk_sasl_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result)
{
    char *out = NULL;
    memset(result, 0, sizeof *result);
    /* "=" is an empty initial response (RFC 6120 6.4.2). */
    if (!in_b64 || g_str_equal(in_b64, "="))
        in_b64 = "";
    /* ANONYMOUS (RFC 4505) carries only an optional trace, which may be
     * empty; GNU SASL asks for another round on an empty message, which
     * clients sending <auth mechanism='ANONYMOUS'/> never answer. */
    if (g_str_equal(ss->mech, "ANONYMOUS")) {
        gsize len = 0;
        g_autofree guchar *trace = *in_b64 ? g_base64_decode(in_b64, &len) : NULL;
        if (*in_b64 && (!trace || len > 1020)) {
            result->status = MK_SASL_FAILURE;
            result->condition = "malformed-request";
            return;
        }
        guint8 rnd[8];
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
        result->status = MK_SASL_SUCCESS;
        result->username = hex_of(rnd, sizeof rnd);
        return;
    }
    if (g_str_equal(ss->mech, "PLAIN")) {
        plain_step(ss, in_b64, result);
        return;
    }
    int rc = gsasl_step64(ss->gs, in_b64, &out);

    if (rc == GSASL_NEEDS_MORE) {
        result->status = MK_SASL_CONTINUE;
        result->out_b64 = g_strdup(out);
        gsasl_free(out);
        return;
    }
    if (rc == GSASL_OK) {
        g_autofree char *username = NULL;
        if (ss->creds) {
            username = g_strdup(ss->creds->username);
        }
        if (!username) {
            result->status = MK_SASL_FAILURE;
            result->condition = "not-authorized";
        } else if (!authzid_ok(ss, username)) {
            result->status = MK_SASL_FAILURE;
            result->condition = "invalid-authzid";
        } else {
            result->status = MK_SASL_SUCCESS;
            result->out_b64 = out && *out ? g_strdup(out) : NULL;
            result->username = g_steal_pointer(&username);
        }
        gsasl_free(out);
        return;
    }
    gsasl_free(out);
    result->status = MK_SASL_FAILURE;
    if (ss->db_failed)
        result->condition = "temporary-auth-failure";
    else if (rc == GSASL_MECHANISM_PARSE_ERROR || rc == GSASL_BASE64_ERROR)
        result->condition = "malformed-request";
    else
        result->condition = "not-authorized";
}
