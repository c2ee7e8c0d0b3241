/* Authenticated framed links (mk-cluster.h, docs/clustering.md "Node
 * links"): the socket of one link, its optional GnuTLS session and the
 * shared-secret handshake, for the cluster's node links and for
 * mod_global_distrib's region links. What runs on top (which frames,
 * which thread writes) stays with the caller.
 *
 * Threads: an MkLinkIo is driven by one thread until it is up; then one
 * thread may send while another receives (plain TCP), or under one lock
 * of the caller's (TLS). An MkLinkAuth is read-only once made. */
#include "mk-core.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NONCE_LEN     32
#define HS_FRAME_MAX  4096 /* a handshake frame is a name and two hex strings */
#define HS_READ_LIMIT 65536

struct MkLinkAuth {
    char *what, *name, *secret;
    gnutls_certificate_credentials_t creds; /* NULL: plain TCP */
};

enum { STEP_TLS, STEP_SEND_HELLO, STEP_WAIT_HELLO, STEP_WAIT_AUTH, STEP_WAIT_OK, STEP_UP };

struct MkLinkIo {
    MkLinkAuth *auth;
    int fd;
    gboolean dialer;
    int step;
    char *expect, *peer;
    gnutls_session_t tls;
    guint8 nonce[NONCE_LEN];
    GByteArray *hin, *hout; /* handshake bytes */
};

GQuark mk_link_error_quark(void)
{
    return g_quark_from_static_string("mk-link-error-quark");
}

/* ---- frames ------------------------------------------------------------ */

void mk_link_frame_append(GByteArray *buf, guint8 type, const char *a, const char *b, const char *c)
{
    gsize la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
    guint32 len = 1 + (guint32)la + (b || c ? 1 + (guint32)lb : 0) + (c ? 1 + (guint32)lc : 0);
    guint32 be = htonl(len);
    g_byte_array_append(buf, (const guint8 *)&be, 4);
    g_byte_array_append(buf, &type, 1);
    if (la)
        g_byte_array_append(buf, (const guint8 *)a, (guint)la);
    if (b || c) {
        g_byte_array_append(buf, (const guint8 *)"", 1);
        if (lb)
            g_byte_array_append(buf, (const guint8 *)b, (guint)lb);
    }
    if (c) {
        g_byte_array_append(buf, (const guint8 *)"", 1);
        g_byte_array_append(buf, (const guint8 *)c, (guint)lc);
    }
}

guint mk_link_frame_fields(const char *data, gsize len, const char **out, gsize *lens, guint max)
{
    guint n = 0;
    const char *p = data, *end = data + len;
    while (n < max) {
        const char *nul = n + 1 < max ? memchr(p, 0, (gsize)(end - p)) : NULL;
        out[n] = p;
        lens[n] = (gsize)((nul ? nul : end) - p);
        n++;
        if (!nul)
            break;
        p = nul + 1;
    }
    return n;
}

int mk_link_frame_next(const GByteArray *buf, guint *off, guint32 max, guint8 *type,
                       const char **data, gsize *len)
{
    if (buf->len - *off < 5)
        return 0;
    guint32 be;
    memcpy(&be, buf->data + *off, 4);
    guint32 n = ntohl(be);
    if (n == 0 || n > max)
        return -1;
    if (buf->len - *off < 4 + n)
        return 0;
    *type = buf->data[*off + 4];
    *data = (const char *)buf->data + *off + 5;
    *len = n - 1;
    *off += 4 + n;
    return 1;
}

/* ---- credentials --------------------------------------------------------- */

MkLinkAuth *mk_link_auth_new(const char *what, const char *name, const char *secret,
                             const char *certfile, const char *keyfile, const char *cafile,
                             GError **error)
{
    g_return_val_if_fail(what && name && secret, NULL);
    gnutls_certificate_credentials_t creds = NULL;
    if (certfile && *certfile) {
        if (!keyfile || !*keyfile || !cafile || !*cafile) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "%s links: TLS needs a certificate, its key and a CA file", what);
            return NULL;
        }
        creds = mk_tls_load(certfile, keyfile, error);
        if (!creds)
            return NULL;
        int n = gnutls_certificate_set_x509_trust_file(creds, cafile, GNUTLS_X509_FMT_PEM);
        if (n <= 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "CA file %s: %s", cafile,
                        n < 0 ? gnutls_strerror(n) : "no certificate in it");
            gnutls_certificate_free_credentials(creds);
            return NULL;
        }
    }
    MkLinkAuth *a = g_new0(MkLinkAuth, 1);
    a->what = g_strdup(what);
    a->name = g_strdup(name);
    a->secret = g_strdup(secret);
    a->creds = creds;
    return a;
}

gboolean mk_link_auth_tls(const MkLinkAuth *auth)
{
    return auth && auth->creds;
}

void mk_link_auth_free(MkLinkAuth *auth)
{
    if (!auth)
        return;
    if (auth->creds)
        gnutls_certificate_free_credentials(auth->creds);
    g_free(auth->what);
    g_free(auth->name);
    g_free(auth->secret);
    g_free(auth);
}

/* ---- one connection ------------------------------------------------------ */

MkLinkIo *mk_link_io_new(MkLinkAuth *auth, int fd, gboolean dialer, const char *expect_peer)
{
    MkLinkIo *io = g_new0(MkLinkIo, 1);
    io->auth = auth;
    io->fd = fd;
    io->dialer = dialer;
    io->expect = g_strdup(expect_peer);
    io->hin = g_byte_array_new();
    io->hout = g_byte_array_new();
    io->step = dialer ? STEP_WAIT_HELLO : STEP_SEND_HELLO;
    if (auth->creds) {
        gnutls_init(&io->tls, (dialer ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NONBLOCK);
        gnutls_set_default_priority(io->tls);
        gnutls_credentials_set(io->tls, GNUTLS_CRD_CERTIFICATE, auth->creds);
        if (!dialer)
            gnutls_certificate_server_set_request(io->tls, GNUTLS_CERT_REQUIRE);
        /* The chain against the CA only: peers are dialled by address,
         * and the secret says which cluster they belong to. */
        gnutls_session_set_verify_cert(io->tls, NULL, 0);
        gnutls_transport_set_int(io->tls, fd);
        io->step = STEP_TLS;
    }
    return io;
}

void mk_link_io_free(MkLinkIo *io)
{
    if (!io)
        return;
    if (io->tls)
        gnutls_deinit(io->tls);
    if (io->fd >= 0)
        close(io->fd);
    g_byte_array_unref(io->hin);
    g_byte_array_unref(io->hout);
    g_free(io->expect);
    g_free(io->peer);
    g_free(io);
}

int mk_link_io_fd(const MkLinkIo *io)
{
    return io->fd;
}

const char *mk_link_io_peer(const MkLinkIo *io)
{
    return io->step == STEP_UP ? io->peer : NULL;
}

gssize mk_link_io_send(MkLinkIo *io, const void *data, gsize len)
{
    if (!io->tls)
        return send(io->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    ssize_t n = gnutls_record_send(io->tls, data, len);
    if (n >= 0)
        return n;
    errno = n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED ? EAGAIN : EPIPE;
    return -1;
}

gssize mk_link_io_recv(MkLinkIo *io, void *buf, gsize len)
{
    if (!io->tls)
        return recv(io->fd, buf, len, MSG_DONTWAIT);
    ssize_t n = gnutls_record_recv(io->tls, buf, len);
    if (n >= 0)
        return n;
    if (n == GNUTLS_E_PREMATURE_TERMINATION)
        return 0;
    errno = n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED ? EAGAIN : ECONNRESET;
    return -1;
}

GIOCondition mk_link_io_wants(const MkLinkIo *io)
{
    if (io->step == STEP_TLS)
        return gnutls_record_get_direction(io->tls) ? G_IO_OUT : G_IO_IN;
    return io->hout->len ? G_IO_IN | G_IO_OUT : G_IO_IN;
}

static char *hex_of(const guint8 *b, gsize n)
{
    GString *hex = g_string_sized_new(n * 2);
    for (gsize i = 0; i < n; i++)
        g_string_append_printf(hex, "%02x", b[i]);
    return g_string_free(hex, FALSE);
}

static gboolean unhex(const char *text, gsize tlen, guint8 *out, gsize n)
{
    if (tlen != n * 2)
        return FALSE;
    for (gsize i = 0; i < n; i++) {
        int hi = g_ascii_xdigit_value(text[2 * i]), lo = g_ascii_xdigit_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return FALSE;
        out[i] = (guint8)(hi << 4 | lo);
    }
    return TRUE;
}

/* HMAC-SHA256(secret, role nonce name) in hex. */
static char *proof(const MkLinkAuth *a, const char *role, const guint8 *nonce, const char *name,
                   gsize name_len)
{
    g_autoptr(GByteArray) msg = g_byte_array_new();
    g_byte_array_append(msg, (const guint8 *)role, 1);
    g_byte_array_append(msg, nonce, NONCE_LEN);
    g_byte_array_append(msg, (const guint8 *)name, (guint)name_len);
    guint8 mac[32];
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->secret, strlen(a->secret), msg->data, msg->len, mac);
    return hex_of(mac, sizeof mac);
}

static gboolean proof_ok(const char *want, const char *got, gsize got_len)
{
    return strlen(want) == got_len && gnutls_memcmp(want, got, got_len) == 0;
}

static int fail(GError **error, MkLinkError code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int fail(GError **error, MkLinkError code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, MK_LINK_ERROR, code, msg);
    return -1;
}

/* A TLS handshake error, sorted into the refusal reasons. */
static int tls_fail(MkLinkIo *io, int ret, GError **error)
{
    if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        unsigned status = gnutls_session_get_verify_cert_status(io->tls);
        gnutls_datum_t out = {NULL, 0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
        int r = fail(error, MK_LINK_ERROR_CERTIFICATE, "the peer's certificate does not verify: %s",
                     out.data ? (const char *)out.data : "?");
        gnutls_free(out.data);
        return r;
    }
    if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND || ret == GNUTLS_E_CERTIFICATE_REQUIRED)
        return fail(error, MK_LINK_ERROR_CERTIFICATE, "the peer sent no certificate");
    if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
        return fail(error, MK_LINK_ERROR_TLS, "the peer refused the TLS handshake: %s",
                    gnutls_alert_get_name(gnutls_alert_get(io->tls)));
    if (ret == GNUTLS_E_PREMATURE_TERMINATION || ret == GNUTLS_E_PUSH_ERROR ||
        ret == GNUTLS_E_PULL_ERROR)
        return fail(error, MK_LINK_ERROR_CLOSED, "the peer closed during the TLS handshake");
    if (ret == GNUTLS_E_UNEXPECTED_PACKET_LENGTH || ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
        ret == GNUTLS_E_UNEXPECTED_PACKET)
        return fail(error, MK_LINK_ERROR_PROTOCOL, "the peer does not speak TLS: %s",
                    gnutls_strerror(ret));
    return fail(error, MK_LINK_ERROR_TLS, "TLS handshake: %s", gnutls_strerror(ret));
}

/* One handshake frame. 0: go on, -1: refused. */
static int hs_frame(MkLinkIo *io, guint8 type, const char *data, gsize len, GError **error)
{
    const MkLinkAuth *a = io->auth;
    const char *f[3];
    gsize fl[3];
    guint n = mk_link_frame_fields(data, len, f, fl, 3);
    switch (io->step) {
    case STEP_WAIT_HELLO: { /* dialer */
        guint8 nonce_a[NONCE_LEN];
        if (type != MK_LINK_FRAME_HELLO || n < 2 || !unhex(f[1], fl[1], nonce_a, NONCE_LEN))
            return fail(error, MK_LINK_ERROR_PROTOCOL, "no HELLO from the peer");
        io->peer = g_strndup(f[0], fl[0]);
        if (io->expect && g_strcmp0(io->peer, io->expect) != 0)
            return fail(error, MK_LINK_ERROR_PEER, "the endpoint is %s's, not %s's", io->peer,
                        io->expect);
        gnutls_rnd(GNUTLS_RND_NONCE, io->nonce, NONCE_LEN);
        g_autofree char *mac = proof(a, "d", nonce_a, a->name, strlen(a->name));
        g_autofree char *mine = hex_of(io->nonce, NONCE_LEN);
        mk_link_frame_append(io->hout, MK_LINK_FRAME_AUTH, a->name, mac, mine);
        io->step = STEP_WAIT_OK;
        return 0;
    }
    case STEP_WAIT_OK: { /* dialer */
        if (type != MK_LINK_FRAME_OK || n < 1)
            return fail(error, MK_LINK_ERROR_SECRET, "%s refused this node (wrong secret?)",
                        io->peer);
        g_autofree char *want = proof(a, "a", io->nonce, io->peer, strlen(io->peer));
        if (!proof_ok(want, f[0], fl[0]))
            return fail(error, MK_LINK_ERROR_SECRET, "%s does not know the secret", io->peer);
        io->step = STEP_UP;
        return 0;
    }
    case STEP_WAIT_AUTH: { /* acceptor */
        guint8 nonce_d[NONCE_LEN];
        if (type != MK_LINK_FRAME_AUTH || n < 3 || !unhex(f[2], fl[2], nonce_d, NONCE_LEN))
            return fail(error, MK_LINK_ERROR_PROTOCOL, "no AUTH from the peer");
        g_autofree char *name = g_strndup(f[0], fl[0]);
        g_autofree char *want = proof(a, "d", io->nonce, f[0], fl[0]);
        if (!proof_ok(want, f[1], fl[1]))
            return fail(error, MK_LINK_ERROR_SECRET, "%s does not know the secret", name);
        g_autofree char *back = proof(a, "a", nonce_d, a->name, strlen(a->name));
        mk_link_frame_append(io->hout, MK_LINK_FRAME_OK, back, NULL, NULL);
        io->peer = g_steal_pointer(&name);
        io->step = STEP_UP;
        return 0;
    }
    default:
        return fail(error, MK_LINK_ERROR_PROTOCOL, "unexpected frame");
    }
}

int mk_link_io_handshake(MkLinkIo *io, GByteArray *in, GError **error)
{
    if (io->step == STEP_TLS) {
        int ret = gnutls_handshake(io->tls);
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
            return 0;
        if (ret < 0)
            return tls_fail(io, ret, error);
        io->step = io->dialer ? STEP_WAIT_HELLO : STEP_SEND_HELLO;
    }
    if (io->step == STEP_SEND_HELLO) {
        gnutls_rnd(GNUTLS_RND_NONCE, io->nonce, NONCE_LEN);
        g_autofree char *hex = hex_of(io->nonce, NONCE_LEN);
        mk_link_frame_append(io->hout, MK_LINK_FRAME_HELLO, io->auth->name, hex, NULL);
        io->step = STEP_WAIT_AUTH;
    }
    for (;;) {
        while (io->hout->len) {
            gssize n = mk_link_io_send(io, io->hout->data, io->hout->len);
            if (n < 0 && errno == EAGAIN)
                return 0;
            if (n <= 0)
                return fail(error, MK_LINK_ERROR_CLOSED, "write failed: %s", g_strerror(errno));
            g_byte_array_remove_range(io->hout, 0, (guint)n);
        }
        if (io->step == STEP_UP) {
            /* What the peer sent after the handshake is the caller's. */
            g_byte_array_append(in, io->hin->data, io->hin->len);
            g_byte_array_set_size(io->hin, 0);
            return 1;
        }
        guint8 buf[4096];
        gssize n = mk_link_io_recv(io, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return fail(error, MK_LINK_ERROR_CLOSED, "closed by the peer during the handshake");
        g_byte_array_append(io->hin, buf, (guint)n);
        if (io->hin->len > HS_READ_LIMIT)
            return fail(error, MK_LINK_ERROR_PROTOCOL, "too much before the handshake ended");
        guint off = 0;
        guint8 type;
        const char *data;
        gsize len;
        int got;
        while (io->step != STEP_UP &&
               (got = mk_link_frame_next(io->hin, &off, HS_FRAME_MAX, &type, &data, &len)) != 0) {
            if (got < 0)
                return fail(error, MK_LINK_ERROR_PROTOCOL, "not a link handshake");
            if (hs_frame(io, type, data, len, error) < 0)
                return -1;
        }
        g_byte_array_remove_range(io->hin, 0, off);
    }
}
