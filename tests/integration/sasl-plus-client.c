/* A minimal XMPP client for SCRAM-*-PLUS: libstrophe has no channel
 * binding, so this one speaks just enough XMPP itself (stream header,
 * STARTTLS, SASL) on GnuTLS and GNU SASL. It reads the server's XML by
 * looking for the closing tags it waits for, which is enough for the
 * short, predictable exchanges before authentication. */
#include "harness.h"
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    gnutls_session_t tls; /* NULL before STARTTLS */
    GString *in;
} PlusConn;

static gboolean pc_write(PlusConn *pc, const char *s)
{
    gsize n = strlen(s);
    while (n > 0) {
        ssize_t w = pc->tls ? gnutls_record_send(pc->tls, s, n) : send(pc->fd, s, n, MSG_NOSIGNAL);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED || (w < 0 && errno == EINTR))
            continue;
        if (w <= 0)
            return FALSE;
        s += w;
        n -= (gsize)w;
    }
    return TRUE;
}

/* Reads what arrives before @deadline (monotonic µs) into pc->in.
 * FALSE on close, error or timeout. */
static gboolean pc_read_some(PlusConn *pc, gint64 deadline)
{
    for (;;) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0)
            return FALSE;
        if (!pc->tls || gnutls_record_check_pending(pc->tls) == 0) {
            struct pollfd p = {.fd = pc->fd, .events = POLLIN};
            if (poll(&p, 1, (int)left) <= 0)
                continue;
        }
        char buf[4096];
        ssize_t n = pc->tls ? gnutls_record_recv(pc->tls, buf, sizeof buf)
                            : recv(pc->fd, buf, sizeof buf, 0);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED || (n < 0 && errno == EINTR))
            continue;
        if (n <= 0)
            return FALSE;
        g_string_append_len(pc->in, buf, n);
        return TRUE;
    }
}

/* Reads until @needle appears in the buffer (5 s at most). */
static gboolean pc_read_one(PlusConn *pc, const char *needle)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!strstr(pc->in->str, needle))
        if (!pc_read_some(pc, deadline))
            return FALSE;
    return TRUE;
}

/* TRUE when @buf holds a complete element <@name ...>...</@name> or
 * <@name .../>. */
static gboolean has_element(const char *buf, const char *name)
{
    g_autofree char *open = g_strdup_printf("<%s", name);
    const char *s = strstr(buf, open);
    if (!s)
        return FALSE;
    const char *gt = strchr(s, '>');
    if (!gt)
        return FALSE;
    if (gt[-1] == '/')
        return TRUE;
    g_autofree char *close = g_strdup_printf("</%s>", name);
    return strstr(gt, close) != NULL;
}

/* Reads until a complete element named one of @names arrived; returns
 * its index, or -1 on close, error or timeout. */
static int pc_read_element(PlusConn *pc, const char *const *names)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    for (;;) {
        for (int i = 0; names[i]; i++)
            if (has_element(pc->in->str, names[i]))
                return i;
        if (!pc_read_some(pc, deadline))
            return -1;
    }
}

/* The text between the first '>' after @start_tag and the next '<'. */
static char *element_text(const char *buf, const char *start_tag)
{
    const char *s = strstr(buf, start_tag);
    if (!s)
        return NULL;
    const char *gt = strchr(s, '>');
    if (!gt)
        return NULL;
    if (gt > s && gt[-1] == '/')
        return g_strdup("");
    const char *lt = strchr(gt + 1, '<');
    return lt ? g_strndup(gt + 1, lt - gt - 1) : NULL;
}

typedef struct {
    const char *user;
    const char *password;
    char *cb_unique;   /* base64 or NULL */
    char *cb_exporter; /* base64 or NULL */
} PlusCreds;

static int plus_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
    PlusCreds *cr = gsasl_session_hook_get(sctx);
    switch (prop) {
    case GSASL_AUTHID:
        return gsasl_property_set(sctx, prop, cr->user);
    case GSASL_PASSWORD:
        return gsasl_property_set(sctx, prop, cr->password);
    case GSASL_CB_TLS_UNIQUE:
        return cr->cb_unique ? gsasl_property_set(sctx, prop, cr->cb_unique) : GSASL_NO_CALLBACK;
    case GSASL_CB_TLS_EXPORTER:
        return cr->cb_exporter ? gsasl_property_set(sctx, prop, cr->cb_exporter)
                               : GSASL_NO_CALLBACK;
    default:
        return GSASL_NO_CALLBACK;
    }
}

static char *channel_binding_b64(gnutls_session_t tls, gnutls_channel_binding_t type,
                                 MktCbMode mode)
{
    gnutls_datum_t cb = {0};
    if (gnutls_session_channel_binding(tls, type, &cb) < 0)
        return NULL;
    if (mode == MKT_CB_WRONG) {
        /* Same length, different bytes: only the value is wrong. */
        for (unsigned i = 0; i < cb.size; i++)
            cb.data[i] ^= 0x5a;
    }
    char *b64 = g_base64_encode(cb.data, cb.size);
    gnutls_free(cb.data);
    return b64;
}

/* "failure: CONDITION" for the <failure/> in pc->in. (transfer full) */
static char *failure_detail(PlusConn *pc)
{
    const char *f = strstr(pc->in->str, "<failure");
    /* The first child element of <failure> is the condition. */
    const char *lt = f ? strchr(f + 1, '<') : NULL;
    g_autofree char *name = lt ? g_strndup(lt + 1, strcspn(lt + 1, " />")) : g_strdup("?");
    return g_strdup_printf("failure: %s", name);
}

/* Sends @msg and reads the answer: 0 challenge, 1 success, 2 failure, -1
 * nothing; *@data gets the element's text. */
static int scram_round(PlusConn *pc, const char *msg, char **data)
{
    static const char *const names[] = {"challenge", "success", "failure", NULL};
    g_string_truncate(pc->in, 0);
    if (!pc_write(pc, msg))
        return -1;
    int which = pc_read_element(pc, names);
    if (which == 0 || which == 1)
        *data = element_text(pc->in->str, which == 0 ? "<challenge" : "<success");
    return which;
}

/* SCRAM-SHA-256 (RFC 5802, RFC 7677) computed here, with the gs2 flag
 * 'y'. TRUE when the server answered <success/> with the right
 * ServerSignature. */
static gboolean scram_y_exchange(PlusConn *pc, const char *user, const char *password,
                                 char **detail)
{
    g_autofree char *bare = g_strdup_printf("n=%s,r=yflagnonce0123456789", user);
    g_autofree char *first = g_strconcat("y,,", bare, NULL);
    g_autofree char *first_b64 = g_base64_encode((const guchar *)first, strlen(first));
    g_autofree char *data = NULL;
    g_autofree char *auth_el = g_strdup_printf(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>",
        first_b64);
    int which = scram_round(pc, auth_el, &data);
    if (which != 0) {
        *detail = which == 2 ? failure_detail(pc)
                             : g_strdup_printf("no challenge; read: %s", pc->in->str);
        return FALSE;
    }
    gsize len = 0;
    g_autofree guchar *sf_raw = g_base64_decode(data, &len);
    g_autofree char *sf = g_strndup((const char *)sf_raw, len);
    g_auto(GStrv) parts = g_strsplit(sf, ",", -1);
    /* Extensions may follow (RFC 5802 7; XEP-0474's h=). */
    if (g_strv_length(parts) < 3 || !g_str_has_prefix(parts[0], "r=") ||
        !g_str_has_prefix(parts[1], "s=") || !g_str_has_prefix(parts[2], "i=")) {
        *detail = g_strdup_printf("bad server-first message: %s", sf);
        return FALSE;
    }
    gsize salt_len = 0;
    g_autofree guchar *salt = g_base64_decode(parts[1] + 2, &salt_len);
    guint8 salted[32], client_key[32], stored[32], sig[32], proof[32], server_key[32];
    gnutls_datum_t key = {(unsigned char *)password, (unsigned)strlen(password)};
    gnutls_datum_t s = {salt, (unsigned)salt_len};
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, (unsigned)atoi(parts[2] + 2), salted, 32) < 0) {
        *detail = g_strdup("pbkdf2 failed");
        return FALSE;
    }
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Client Key", 10, client_key);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, client_key, 32, stored);
    /* c= is base64("y,,"). */
    g_autofree char *without_proof = g_strdup_printf("c=eSws,%s", parts[0]);
    g_autofree char *auth = g_strdup_printf("%s,%s,%s", bare, sf, without_proof);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, stored, 32, auth, strlen(auth), sig);
    for (int i = 0; i < 32; i++)
        proof[i] = client_key[i] ^ sig[i];
    g_autofree char *proof_b64 = g_base64_encode(proof, 32);
    g_autofree char *final = g_strdup_printf("%s,p=%s", without_proof, proof_b64);
    g_autofree char *final_b64 = g_base64_encode((const guchar *) final, strlen(final));
    g_clear_pointer(&data, g_free);
    g_autofree char *resp_el = g_strdup_printf(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", final_b64);
    which = scram_round(pc, resp_el, &data);
    if (which != 1) {
        *detail =
            which == 2 ? failure_detail(pc) : g_strdup_printf("no success; read: %s", pc->in->str);
        return FALSE;
    }
    /* Mutual authentication: v= must be HMAC(ServerKey, AuthMessage). */
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Server Key", 10, server_key);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, server_key, 32, auth, strlen(auth), sig);
    g_autofree char *v_b64 = g_base64_encode(sig, 32);
    g_autofree char *want = g_strdup_printf("v=%s", v_b64);
    g_autofree guchar *sl_raw = data ? g_base64_decode(data, &len) : NULL;
    g_autofree char *sl = sl_raw ? g_strndup((const char *)sl_raw, len) : g_strdup("");
    gboolean ok = g_str_equal(sl, want);
    *detail =
        ok ? g_strdup("success") : g_strdup_printf("server final message did not verify: %s", sl);
    return ok;
}

static gboolean sasl_exchange(PlusConn *pc, Gsasl *sasl, const char *mechanism, PlusCreds *cr,
                              char **detail)
{
    Gsasl_session *sctx = NULL;
    int rc = gsasl_client_start(sasl, mechanism, &sctx);
    if (rc != GSASL_OK) {
        *detail = g_strdup_printf("gsasl_client_start: %s", gsasl_strerror(rc));
        return FALSE;
    }
    gsasl_session_hook_set(sctx, cr);
    char *out = NULL;
    rc = gsasl_step64(sctx, "", &out);
    if (rc != GSASL_NEEDS_MORE && rc != GSASL_OK) {
        *detail = g_strdup_printf("gsasl first step: %s", gsasl_strerror(rc));
        gsasl_finish(sctx);
        return FALSE;
    }
    g_autofree char *auth =
        g_strdup_printf("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
                        mechanism, out && *out ? out : "=");
    gsasl_free(out);
    g_string_truncate(pc->in, 0);
    if (!pc_write(pc, auth)) {
        *detail = g_strdup("write failed");
        gsasl_finish(sctx);
        return FALSE;
    }
    gboolean ok = FALSE;
    for (int round = 0; round < 5; round++) {
        static const char *const names[] = {"challenge", "success", "failure", NULL};
        int which = pc_read_element(pc, names);
        if (which < 0) {
            *detail = g_strdup_printf("no answer from the server; read: %s", pc->in->str);
            break;
        }
        if (which == 2) {
            *detail = failure_detail(pc);
            break;
        }
        const char *tag = which == 0 ? "<challenge" : "<success";
        g_autofree char *data = element_text(pc->in->str, tag);
        g_string_truncate(pc->in, 0);
        out = NULL;
        rc = gsasl_step64(sctx, data ? data : "", &out);
        if (which != 0) {
            /* <success/>: its additional data is the server's final
             * message, which must verify (mutual authentication). */
            ok = rc == GSASL_OK;
            *detail =
                ok ? g_strdup("success")
                   : g_strdup_printf("server final message did not verify: %s", gsasl_strerror(rc));
            gsasl_free(out);
            break;
        }
        if (rc != GSASL_NEEDS_MORE && rc != GSASL_OK) {
            *detail = g_strdup_printf("gsasl step: %s", gsasl_strerror(rc));
            gsasl_free(out);
            break;
        }
        g_autofree char *resp = g_strdup_printf(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", out ? out : "");
        gsasl_free(out);
        if (!pc_write(pc, resp)) {
            *detail = g_strdup("write failed");
            break;
        }
    }
    gsasl_finish(sctx);
    return ok;
}

gboolean mkt_sasl_plus_login(guint16 port, const char *user, const char *password,
                             const char *mechanism, gboolean tls12, MktCbMode cb, char **detail)
{
    PlusConn pc = {.fd = -1, .in = g_string_new(NULL)};
    gnutls_certificate_credentials_t creds = NULL;
    Gsasl *sasl = NULL;
    PlusCreds cr = {.user = user, .password = password};
    gboolean ok = FALSE;
    char *why = NULL;
    g_autofree char *want = NULL;

    pc.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (pc.fd < 0 || connect(pc.fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        why = g_strdup_printf("connect: %s", g_strerror(errno));
        goto out;
    }
    if (!pc_write(&pc, MKT_STREAM_HEADER) || !pc_read_one(&pc, "features>")) {
        why = g_strdup_printf("no stream features; read: %s", pc.in->str);
        goto out;
    }
    if (!strstr(pc.in->str, "<starttls")) {
        why = g_strdup_printf("STARTTLS not offered; read: %s", pc.in->str);
        goto out;
    }
    g_string_truncate(pc.in, 0);
    if (!pc_write(&pc, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") ||
        !pc_read_one(&pc, "<proceed")) {
        why = g_strdup_printf("no <proceed/>; read: %s", pc.in->str);
        goto out;
    }
    g_string_truncate(pc.in, 0);

    gnutls_certificate_allocate_credentials(&creds);
    gnutls_init(&pc.tls, GNUTLS_CLIENT);
    gnutls_credentials_set(pc.tls, GNUTLS_CRD_CERTIFICATE, creds);
    const char *err_pos = NULL;
    if (gnutls_priority_set_direct(pc.tls, tls12 ? "NORMAL:-VERS-TLS1.3" : "NORMAL", &err_pos) <
        0) {
        why = g_strdup_printf("gnutls priority: %s", err_pos);
        goto out;
    }
    gnutls_server_name_set(pc.tls, GNUTLS_NAME_DNS, "localhost", strlen("localhost"));
    gnutls_transport_set_int(pc.tls, pc.fd);
    gnutls_handshake_set_timeout(pc.tls, 5000);
    int hrc;
    do
        hrc = gnutls_handshake(pc.tls);
    while (hrc < 0 && !gnutls_error_is_fatal(hrc));
    if (hrc < 0) {
        why = g_strdup_printf("TLS handshake: %s", gnutls_strerror(hrc));
        goto out;
    }
    /* The certificate is self-signed: not verified on purpose. */

    if (!pc_write(&pc, MKT_STREAM_HEADER) || !pc_read_one(&pc, "features>")) {
        why = g_strdup_printf("no stream features after TLS; read: %s", pc.in->str);
        goto out;
    }
    want = g_strdup_printf("<mechanism>%s</mechanism>", mechanism);
    if (!strstr(pc.in->str, want)) {
        why = g_strdup_printf("mechanism not offered; features: %s", pc.in->str);
        goto out;
    }
    if (cb == MKT_CB_CLAIM_Y) {
        ok = scram_y_exchange(&pc, user, password, &why);
        goto out;
    }
    if (gnutls_protocol_get_version(pc.tls) == GNUTLS_TLS1_3)
        cr.cb_exporter = channel_binding_b64(pc.tls, GNUTLS_CB_TLS_EXPORTER, cb);
    else
        cr.cb_unique = channel_binding_b64(pc.tls, GNUTLS_CB_TLS_UNIQUE, cb);
    if (!cr.cb_exporter && !cr.cb_unique) {
        why = g_strdup("no channel binding data from GnuTLS");
        goto out;
    }

    int rc = gsasl_init(&sasl);
    if (rc != GSASL_OK) {
        why = g_strdup_printf("gsasl_init: %s", gsasl_strerror(rc));
        goto out;
    }
    gsasl_callback_set(sasl, plus_callback);
    ok = sasl_exchange(&pc, sasl, mechanism, &cr, &why);

out:
    if (pc.tls) {
        gnutls_bye(pc.tls, GNUTLS_SHUT_WR);
        gnutls_deinit(pc.tls);
    }
    if (creds)
        gnutls_certificate_free_credentials(creds);
    if (sasl)
        gsasl_done(sasl);
    if (pc.fd >= 0)
        close(pc.fd);
    g_string_free(pc.in, TRUE);
    g_free(cr.cb_unique);
    g_free(cr.cb_exporter);
    if (detail)
        *detail = why;
    else
        g_free(why);
    return ok;
}
