/* SASL mechanisms: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS
 * variants and ANONYMOUS. See sasl.h.
 *
 * This was GNU SASL with a property callback; every mechanism is now
 * ours (PLAIN here, SCRAM in scram-server.c), because GNU SASL's servers
 * SASLprepped names and passwords through libidn before asking us and
 * kept SCRAM's keys as base64 strings: 40% of a SCRAM login's
 * instructions (docs/benchmarks.md). The outcomes are GNU SASL's, except
 * where noted. */
#include "sasl.h"
#include "auth.h"
#include "scram-server.h"
#include <gnutls/crypto.h>
#include <string.h>

typedef enum {
    MECH_PLAIN,
    MECH_ANONYMOUS,
    MECH_SCRAM,
} MechKind;

static const struct {
    const char *name;
    MechKind kind;
    MkScramHash hash;
    gboolean plus;
} mechanisms[] = {
    {"PLAIN", MECH_PLAIN, 0, FALSE},
    {"ANONYMOUS", MECH_ANONYMOUS, 0, FALSE},
    {"SCRAM-SHA-1", MECH_SCRAM, MK_SCRAM_SHA1, FALSE},
    {"SCRAM-SHA-1-PLUS", MECH_SCRAM, MK_SCRAM_SHA1, TRUE},
    {"SCRAM-SHA-256", MECH_SCRAM, MK_SCRAM_SHA256, FALSE},
    {"SCRAM-SHA-256-PLUS", MECH_SCRAM, MK_SCRAM_SHA256, TRUE},
};

struct MkSasl {
    MkDb *db;
    MkAuthGuard *guard; /* nullable, borrowed */
    guint iterations;
    gboolean plain_format; /* [auth] password_format = plain */
    guint8 secret[32];     /* for deterministic fake salts of unknown users */
};

struct MkSaslSession {
    MkSasl *sasl;
    const char *mech; /* static */
    MechKind kind;
    MkScramHash hash;
    MkScramServer *scram;   /* SCRAM only */
    gboolean scram_started; /* the server-first message went out */
    char *domain;
    char *authzid;        /* nullable */
    MkCredentials *creds; /* loaded on first need */
    gboolean creds_loaded;
    gboolean db_failed;
    gboolean bad_user; /* authid is not a valid username */
    MkDbConn *conn;    /* borrowed for a step (mk_sasl_session_set_conn) */
    MkAddrKey peer;
    gboolean throttled; /* the address was in backoff at the start */
    char *authcid;      /* the name tried, as given (for the guard and the log) */
};

void mk_sasl_result_clear(MkSaslResult *r)
{
    g_clear_pointer(&r->out_b64, g_free);
    g_clear_pointer(&r->username, g_free);
    g_clear_pointer(&r->reason, g_free);
    r->condition = NULL;
}

static char *hex_of(const guint8 *data, gsize len)
{
    GString *s = g_string_sized_new(len * 2);
    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", data[i]);
    return g_string_free(s, FALSE);
}

/* Loads the account @authid once per exchange. Blocks (database). */
static void load_creds(MkSaslSession *ss, const char *authid)
{
    if (ss->creds_loaded)
        return;
    ss->creds_loaded = TRUE;
    if (!authid || !*authid) {
        ss->bad_user = TRUE;
        return;
    }
    g_autoptr(GError) error = NULL;
    MkDbConn *conn = ss->conn ? ss->conn : mk_db_acquire(ss->sasl->db, &error);
    if (!conn) {
        g_warning("SASL: cannot reach the database: %s", error->message);
        ss->db_failed = TRUE;
        return;
    }
    ss->creds = mk_auth_get(conn, authid, ss->domain, &error);
    if (conn != ss->conn)
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
 * accounts does: part of the first step, on the auth pool. */
static void keys_from_plain(MkSaslSession *ss)
{
    MkCredentials *c = ss->creds;
    gboolean sha256 = ss->hash == MK_SCRAM_SHA256;
    if (!c && ss->sasl->plain_format) {
        /* Unknown user on a plain-format server: the same derivation, so
         * that timing does not tell missing accounts from existing ones. */
        static const guint8 dummy_salt[16] = {0};
        guint8 st[32], sv[32];
        mk_scram_derive(ss->hash, "", dummy_salt, sizeof dummy_salt, ss->sasl->iterations, st, sv);
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
static void fake_salt(MkSaslSession *ss, const char *authid, guint8 out[16])
{
    guint8 mac[32];
    g_autofree char *msg = g_strdup_printf("%s@%s", authid ? authid : "", ss->domain);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, ss->sasl->secret, sizeof ss->sasl->secret, msg, strlen(msg),
                     mac);
    memcpy(out, mac, 16);
}

MkSasl *mk_sasl_new(MkDb *db, guint scram_iterations, gboolean plain_format, GError **error)
{
    MkSasl *sasl = g_new0(MkSasl, 1);
    sasl->db = db;
    sasl->iterations = scram_iterations ? scram_iterations : 4096;
    sasl->plain_format = plain_format;
    gnutls_rnd(GNUTLS_RND_KEY, sasl->secret, sizeof sasl->secret);
    return sasl;
}

void mk_sasl_set_guard(MkSasl *sasl, MkAuthGuard *guard)
{
    sasl->guard = guard;
}

void mk_sasl_free(MkSasl *sasl)
{
    if (!sasl)
        return;
    gnutls_memset(sasl->secret, 0, sizeof sasl->secret);
    g_free(sasl);
}

static int mech_index(const char *mech)
{
    for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++)
        if (g_str_equal(mech, mechanisms[i].name))
            return (int)i;
    return -1;
}

gboolean mk_sasl_supports(MkSasl *sasl, const char *mech)
{
    return mech_index(mech) >= 0;
}

MkSaslSession *mk_sasl_session_new(MkSasl *sasl, const char *mech, const char *domain,
                                   const char *cb_type, GBytes *cb_data)
{
    int i = mech_index(mech);
    if (i < 0)
        return NULL;
    MkSaslSession *ss = g_new0(MkSaslSession, 1);
    ss->sasl = sasl;
    ss->mech = mechanisms[i].name;
    ss->kind = mechanisms[i].kind;
    ss->hash = mechanisms[i].hash;
    ss->domain = g_strdup(domain);
    if (ss->kind == MECH_SCRAM) {
        gsize len = 0;
        const guint8 *data = cb_data ? g_bytes_get_data(cb_data, &len) : NULL;
        ss->scram = mk_scram_server_new(ss->hash, mechanisms[i].plus, cb_type, data, len);
    }
    return ss;
}

void mk_sasl_session_free(MkSaslSession *ss)
{
    if (!ss)
        return;
    mk_scram_server_free(ss->scram);
    if (ss->creds)
        mk_credentials_free(ss->creds);
    g_free(ss->domain);
    g_free(ss->authzid);
    g_free(ss->authcid);
    g_free(ss);
}

gboolean mk_sasl_session_set_peer(MkSaslSession *ss, const MkAddrKey *addr)
{
    ss->peer = *addr;
    ss->throttled = ss->kind != MECH_ANONYMOUS && !mk_auth_guard_address_ok(ss->sasl->guard, addr);
    return !ss->throttled;
}

void mk_sasl_session_set_scram_policy(MkSaslSession *ss, gboolean accept_y, const char *ssdp_b64)
{
    if (ss->scram)
        mk_scram_server_set_policy(ss->scram, accept_y, ssdp_b64);
}

void mk_sasl_session_set_conn(MkSaslSession *ss, MkDbConn *conn)
{
    ss->conn = conn;
}

const char *mk_sasl_session_account(MkSaslSession *ss)
{
    return ss->creds ? ss->creds->username : NULL;
}

gboolean mk_sasl_step_blocks(MkSaslSession *ss)
{
    if (ss->throttled)
        return FALSE; /* fails at once */
    switch (ss->kind) {
    case MECH_PLAIN:
        return TRUE; /* the account and, for SCRAM-only accounts, a derivation */
    case MECH_SCRAM:
        return !ss->scram_started; /* the account; later steps use what it gave */
    case MECH_ANONYMOUS:
    default:
        return FALSE;
    }
}

/* The authorization identity must be the account itself (or absent).
 * An authzid that is a bare localpart equal to the account is accepted
 * (as GNU SASL's PLAIN reported an empty one) as well as its bare JID. */
static gboolean authzid_ok(MkSaslSession *ss, const char *username)
{
    const char *authzid = ss->authzid;
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

static void fail(MkSaslResult *result, const char *condition)
{
    result->status = MK_SASL_FAILURE;
    result->condition = condition;
}

/* A failure with its reason for the log (@reason: transfer full). */
static void fail_why(MkSaslResult *result, const char *condition, char *reason)
{
    fail(result, condition);
    g_free(result->reason);
    result->reason = reason;
}

/* A wrong password or an unknown user: the guard records it. */
static void fail_credentials(MkSaslSession *ss, MkSaslResult *result, char *reason)
{
    fail_why(result, "not-authorized", reason);
    result->counted = TRUE;
    mk_auth_guard_failed(ss->sasl->guard, &ss->peer, ss->creds ? ss->creds->username : ss->authcid,
                         ss->domain);
}

/* The account is in backoff for this address: refused before any hash
 * (and, for SCRAM, before the challenge). */
static gboolean account_throttled(MkSaslSession *ss, MkSaslResult *result)
{
    const char *account = ss->creds ? ss->creds->username : ss->authcid;
    if (mk_auth_guard_account_ok(ss->sasl->guard, &ss->peer, account, ss->domain))
        return FALSE;
    fail_why(result, "temporary-auth-failure",
             g_strdup_printf("account %s in backoff after failed logins", account));
    return TRUE;
}

static void succeeded(MkSaslSession *ss, MkSaslResult *result)
{
    result->status = MK_SASL_SUCCESS;
    result->mechanism = ss->mech;
    result->username = g_strdup(ss->creds->username);
    mk_auth_guard_succeeded(ss->sasl->guard, &ss->peer, ss->creds->username, ss->domain);
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
        fail_why(result, "malformed-request", g_strdup("malformed PLAIN message"));
        return;
    }
    g_autofree char *c = g_strndup(authcid, clen);
    ss->authcid = g_strdup(c);
    g_autofree char *pw = g_strndup(passwd, plen);
    ss->authzid = zlen ? g_strndup(authzid, zlen) : NULL;
    load_creds(ss, c);
    if (ss->db_failed) {
        fail_why(result, "temporary-auth-failure", g_strdup("database unavailable"));
        return;
    }
    if (account_throttled(ss, result)) {
        gnutls_memset(pw, 0, plen);
        return;
    }
    /* Unknown and malformed users cost the same work as a wrong password
     * (mk_auth_check_password with NULL). */
    gboolean ok =
        mk_auth_check_password(ss->bad_user ? NULL : ss->creds, pw,
                               ss->sasl->plain_format ? MK_AUTH_DUMMY_PLAIN : ss->sasl->iterations);
    gnutls_memset(pw, 0, plen);
    if (!ss->creds) {
        fail_credentials(
            ss, result,
            g_strdup_printf(ss->bad_user ? "invalid username %s" : "unknown user %s", c));
    } else if (!ok) {
        fail_credentials(ss, result, g_strdup_printf("wrong password for %s", c));
    } else if (!authzid_ok(ss, ss->creds->username)) {
        fail_why(result, "invalid-authzid",
                 g_strdup_printf("%s may not act as %s", ss->creds->username, ss->authzid));
    } else {
        succeeded(ss, result);
    }
}

static const char *scram_condition(MkScramStatus st)
{
    return st == MK_SCRAM_MALFORMED ? "malformed-request" : "not-authorized";
}

/* The client-first message: parse, read the account, answer with its salt
 * and iteration count. Blocks (database; a derivation for plain-format
 * accounts). An unknown or invalid user gets a challenge like any other
 * (a salt stable per name, the configured iterations) and keys nobody
 * can match, so the proof fails at the same step and cost as a wrong
 * password. */
static void scram_first(MkSaslSession *ss, const guint8 *msg, gsize len, MkSaslResult *result)
{
    MkScramStatus st = mk_scram_server_client_first(ss->scram, (const char *)msg, len);
    if (st != MK_SCRAM_OK) {
        fail_why(result, scram_condition(st), g_strdup(mk_scram_server_failure(ss->scram)));
        return;
    }
    const char *authid = mk_scram_server_username(ss->scram);
    ss->authzid = g_strdup(mk_scram_server_authzid(ss->scram));
    ss->authcid = g_strdup(authid);
    load_creds(ss, authid);
    if (ss->db_failed) {
        fail_why(result, "temporary-auth-failure", g_strdup("database unavailable"));
        return;
    }
    if (account_throttled(ss, result))
        return;
    keys_from_plain(ss);
    const MkCredentials *c = ss->creds;
    gboolean sha256 = ss->hash == MK_SCRAM_SHA256;
    g_autofree char *first = NULL;
    if (c) {
        first =
            mk_scram_server_first(ss->scram, (const guint8 *)c->salt, c->salt_len, c->iterations,
                                  sha256 ? c->stored_key_sha256 : c->stored_key_sha1,
                                  sha256 ? c->server_key_sha256 : c->server_key_sha1);
    } else {
        guint8 salt[16], keys[64];
        fake_salt(ss, authid, salt);
        gnutls_rnd(GNUTLS_RND_NONCE, keys, sizeof keys);
        first = mk_scram_server_first(ss->scram, salt, sizeof salt, ss->sasl->iterations, keys,
                                      keys + 32);
    }
    ss->scram_started = TRUE;
    result->status = MK_SASL_CONTINUE;
    result->out_b64 = g_base64_encode((const guchar *)first, strlen(first));
}

/* The client-final message: no database, fine on a worker. */
static void scram_final(MkSaslSession *ss, const guint8 *msg, gsize len, MkSaslResult *result)
{
    g_autofree char *server_final = NULL;
    MkScramStatus st =
        mk_scram_server_client_final(ss->scram, (const char *)msg, len, &server_final);
    const char *why = st != MK_SCRAM_OK ? mk_scram_server_failure(ss->scram) : NULL;
    gboolean bad_proof = why && mk_scram_server_bad_proof(ss->scram);
    if (bad_proof && !ss->creds) {
        /* An unknown user's random keys fail the proof. */
        fail_credentials(
            ss, result,
            g_strdup_printf(ss->bad_user ? "invalid username %s" : "unknown user %s", ss->authcid));
    } else if (bad_proof) {
        fail_credentials(ss, result, g_strdup_printf("%s for %s", why, ss->creds->username));
    } else if (why) {
        fail_why(result, scram_condition(st), g_strdup(why));
    } else if (!ss->creds) {
        fail(result, "not-authorized"); /* cannot happen: random keys */
    } else if (!authzid_ok(ss, ss->creds->username)) {
        fail_why(result, "invalid-authzid",
                 g_strdup_printf("%s may not act as %s", ss->creds->username, ss->authzid));
    } else {
        result->out_b64 = g_base64_encode((const guchar *)server_final, strlen(server_final));
        succeeded(ss, result);
    }
}

static void scram_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result)
{
    if (!*in_b64 && !ss->scram_started) {
        result->status = MK_SASL_CONTINUE; /* no initial response: ask for it */
        return;
    }
    gsize len = 0;
    g_autofree guint8 *msg = mk_base64_decode_strict(in_b64, strlen(in_b64), &len);
    if (!msg || len == 0) {
        fail_why(result, "malformed-request", g_strdup("SCRAM message is not base64"));
        return;
    }
    if (!ss->scram_started)
        scram_first(ss, msg, len, result);
    else
        scram_final(ss, msg, len, result);
}

void mk_sasl_step(MkSaslSession *ss, const char *in_b64, MkSaslResult *result)
{
    memset(result, 0, sizeof *result);
    /* "=" is an empty initial response (RFC 6120 6.4.2). */
    if (!in_b64 || g_str_equal(in_b64, "="))
        in_b64 = "";
    if (ss->throttled) {
        fail_why(result, "temporary-auth-failure",
                 g_strdup("address in backoff after failed logins"));
        return;
    }
    switch (ss->kind) {
    case MECH_ANONYMOUS: {
        /* RFC 4505: an optional trace, which may be empty (GNU SASL asked
         * for another round on an empty message, which clients sending
         * <auth mechanism='ANONYMOUS'/> never answer). */
        gsize len = 0;
        g_autofree guchar *trace = *in_b64 ? g_base64_decode(in_b64, &len) : NULL;
        if (*in_b64 && (!trace || len > 1020)) {
            fail_why(result, "malformed-request", g_strdup("malformed ANONYMOUS trace"));
            return;
        }
        guint8 rnd[8];
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
        result->status = MK_SASL_SUCCESS;
        result->mechanism = ss->mech;
        result->username = hex_of(rnd, sizeof rnd);
        return;
    }
    case MECH_PLAIN:
        plain_step(ss, in_b64, result);
        return;
    case MECH_SCRAM:
        scram_step(ss, in_b64, result);
        return;
    }
}

/* See sasl.h. */
const char *mk_sasl_session_mechanism(MkSaslSession *ss)
{
    return ss->mech;
}
