/* Links between regions. Each node dials one TCP connection to a node
 * of every region it sends to (an endpoint that region advertises in
 * Redis) and writes only on it; what it receives comes on the
 * connections others dialled. So everything one node sends to a region
 * is one ordered byte stream.
 *
 * Frames: 4 bytes big-endian length, then a type byte and NUL-separated
 * fields. The acceptor opens with C (its region, a nonce); the dialer
 * answers A (its region, HMAC-SHA256(secret, "d" nonce region), its own
 * nonce); the acceptor proves the secret with B (HMAC(secret, "a"
 * nonce' its region)). Then the dialer sends S frames: hops, origin
 * region, the stanza as XML. */
#define _GNU_SOURCE /* accept4 */
#include "gd.h"
#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME      (1024 * 1024)      /* a stanza is bounded well below this */
#define MAX_OUT        (32 * 1024 * 1024) /* bytes the kernel did not take yet */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SWEEP_MS       250

typedef struct GdConn GdConn;
typedef void (*GdFrameFunc)(GdConn *c, const char *frame, gsize len);
typedef void (*GdLostFunc)(GdConn *c, const char *why);

/* One socket with its buffers. */
struct GdConn {
    Gd *gd;
    int fd;
    GSource *src;
    gpointer tag;
    GByteArray *in, *out;
    GdFrameFunc on_frame;
    GdLostFunc on_lost;
    gpointer owner;
    gboolean connecting, dead;
};

typedef struct {
    GSource src;
    GdConn *conn;
} ConnSource;

typedef enum { R_IDLE, R_RESOLVING, R_CONNECTING, R_HANDSHAKE, R_UP } RemoteState;

struct GdRemote {
    Gd *gd;
    char *host;
    RemoteState state;
    GdConn *conn;
    GQueue queue; /* GdItem, waiting for the link */
    char nonce[33];
    guint backoff_ms, attempt;
    GSource *retry, *sweep;
    gboolean down_logged;
};

typedef struct {
    Gd *gd;
    GdConn *conn;
    char nonce[33];
    char *peer; /* region, once authenticated */
} GdInbound;

/* ---- sockets ---------------------------------------------------------- */

static void conn_update(GdConn *c)
{
    GIOCondition want = G_IO_IN | G_IO_HUP | G_IO_ERR;
    if (c->connecting || c->out->len)
        want |= G_IO_OUT;
    g_source_modify_unix_fd(c->src, c->tag, want);
}

static void conn_fail(GdConn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = TRUE;
    c->on_lost(c, why);
}

static void conn_flush(GdConn *c)
{
    while (c->out->len && !c->dead) {
        ssize_t n = send(c->fd, c->out->data, c->out->len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_fail(c, g_strerror(errno));
            return;
        }
        g_byte_array_remove_range(c->out, 0, (guint)n);
    }
    if (!c->dead)
        conn_update(c);
}

static void conn_read(GdConn *c)
{
    guint8 buf[16384];
    for (int rounds = 0; rounds < 8 && !c->dead; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_fail(c, n == 0 ? "closed by peer" : g_strerror(errno));
            return;
        }
        g_byte_array_append(c->in, buf, (guint)n);
        while (!c->dead && c->in->len >= 4) {
            guint32 len = ((guint32)c->in->data[0] << 24) | ((guint32)c->in->data[1] << 16) |
                          ((guint32)c->in->data[2] << 8) | c->in->data[3];
            if (len == 0 || len > MAX_FRAME) {
                conn_fail(c, "bad frame length");
                return;
            }
            if (c->in->len < 4 + len)
                break;
            /* NUL-terminated copy: the fields are C strings. */
            g_autofree char *frame = g_malloc(len + 1);
            memcpy(frame, c->in->data + 4, len);
            frame[len] = '\0';
            g_byte_array_remove_range(c->in, 0, 4 + len);
            c->on_frame(c, frame, len);
        }
        if ((gsize)n < sizeof buf)
            break;
    }
}

static gboolean conn_dispatch(GSource *s, GSourceFunc cb, gpointer ud)
{
    ConnSource *cs = (ConnSource *)s;
    GdConn *c = cs->conn;
    (void)cb;
    (void)ud;
    GIOCondition rev = g_source_query_unix_fd(s, c->tag);
    if (c->connecting && (rev & (G_IO_OUT | G_IO_ERR | G_IO_HUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            conn_fail(c, g_strerror(err));
            return G_SOURCE_CONTINUE;
        }
        c->connecting = FALSE;
        conn_update(c);
        return G_SOURCE_CONTINUE;
    }
    if (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        conn_read(c);
    if (!c->dead && (rev & G_IO_OUT))
        conn_flush(c);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs conn_funcs = {.dispatch = conn_dispatch};

static GdConn *conn_new(Gd *gd, int fd, gboolean connecting, GdFrameFunc on_frame,
                        GdLostFunc on_lost, gpointer owner)
{
    GdConn *c = g_new0(GdConn, 1);
    c->gd = gd;
    c->fd = fd;
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    c->on_frame = on_frame;
    c->on_lost = on_lost;
    c->owner = owner;
    c->connecting = connecting;
    c->src = g_source_new(&conn_funcs, sizeof(ConnSource));
    ((ConnSource *)c->src)->conn = c;
    c->tag = g_source_add_unix_fd(c->src, fd, G_IO_IN);
    g_source_attach(c->src, gd->ctx);
    conn_update(c);
    return c;
}

static void conn_free(GdConn *c)
{
    if (!c)
        return;
    g_source_destroy(c->src);
    g_source_unref(c->src);
    close(c->fd);
    g_byte_array_unref(c->in);
    g_byte_array_unref(c->out);
    g_free(c);
}

/* Frees @c from the next iteration: it may be inside its own dispatch. */
static gboolean conn_free_cb(gpointer data)
{
    conn_free(data);
    return G_SOURCE_REMOVE;
}

static void conn_free_later(Gd *gd, GdConn *c)
{
    if (!c)
        return;
    c->dead = TRUE;
    g_source_destroy(c->src); /* no more dispatches */
    GSource *idle = g_idle_source_new();
    g_source_set_callback(idle, conn_free_cb, c, NULL);
    g_source_attach(idle, gd->ctx);
    g_source_unref(idle);
}

/* Appends one frame: @type and the fields, NUL-separated. */
static void conn_frame(GdConn *c, char type, const char *const *fields, const char *tail,
                       gsize tail_len)
{
    GString *f = g_string_new(NULL);
    g_string_append_c(f, type);
    for (guint i = 0; fields && fields[i]; i++) {
        g_string_append(f, fields[i]);
        g_string_append_c(f, '\0');
    }
    if (tail)
        g_string_append_len(f, tail, (gssize)tail_len);
    guint8 hdr[4] = {(guint8)(f->len >> 24), (guint8)(f->len >> 16), (guint8)(f->len >> 8),
                     (guint8)f->len};
    g_byte_array_append(c->out, hdr, 4);
    g_byte_array_append(c->out, (guint8 *)f->str, (guint)f->len);
    g_string_free(f, TRUE);
    conn_flush(c);
}

/* Splits a frame after its type byte into @n NUL-terminated fields; the
 * last one takes the rest. FALSE when there are fewer. */
static gboolean frame_fields(const char *frame, gsize len, const char **out, guint n)
{
    const char *p = frame + 1, *end = frame + len;
    for (guint i = 0; i < n; i++) {
        if (p > end)
            return FALSE;
        out[i] = p;
        if (i + 1 < n) {
            const char *z = memchr(p, '\0', (gsize)(end - p));
            if (!z)
                return FALSE;
            p = z + 1;
        }
    }
    return TRUE;
}

/* ---- authentication ----------------------------------------------------- */

static void make_nonce(char out[33])
{
    guint8 raw[16];
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        for (guint i = 0; i < sizeof raw; i++)
            raw[i] = (guint8)g_random_int();
    for (guint i = 0; i < sizeof raw; i++)
        g_snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static char *proof(Gd *gd, const char *role, const char *nonce, const char *name)
{
    g_autofree char *msg = g_strconcat(role, nonce, name, NULL);
    return g_compute_hmac_for_string(G_CHECKSUM_SHA256, (const guchar *)gd->secret,
                                     strlen(gd->secret), msg, -1);
}

static gboolean same_secret(const char *a, const char *b)
{
    gsize la = strlen(a), lb = strlen(b);
    guint diff = la != lb;
    for (gsize i = 0; i < MIN(la, lb); i++)
        diff |= (guint)(a[i] ^ b[i]);
    return diff == 0;
}

/* ---- outgoing links ------------------------------------------------------- */

static void remote_connect(GdRemote *r);

static void sweep_stop(GdRemote *r)
{
    if (r->sweep) {
        g_source_destroy(r->sweep);
        g_source_unref(r->sweep);
        r->sweep = NULL;
    }
}

static void queued_add(Gd *gd, gint64 n)
{
    mk_gauge_add(gd->g_queued, n);
}

/* Writes @item on @r's open link. */
static void remote_write(GdRemote *r, GdItem *item)
{
    Gd *gd = r->gd;
    g_autofree char *xml = mk_xml_to_string(mk_stanza_xml(item->stanza), NULL);
    g_autofree char *hops = g_strdup_printf("%d", item->hops + 1);
    const char *fields[] = {hops, item->origin ? item->origin : gd->local_host, NULL};
    conn_frame(r->conn, 'S', fields, xml, strlen(xml));
    GdRegionMetrics *m = gd_region_metrics(gd, r->host);
    mk_counter_add(m->out, 1);
    if (item->queued_at)
        mk_histogram_observe(m->queue_time,
                             (double)(g_get_monotonic_time() - item->queued_at) / 1e6);
}

static void remote_drain(GdRemote *r)
{
    GdItem *item;
    while (r->state == R_UP && r->conn && !r->conn->dead && (item = g_queue_pop_head(&r->queue))) {
        queued_add(r->gd, -1);
        remote_write(r, item);
        gd_item_free(item);
    }
    if (g_queue_is_empty(&r->queue))
        sweep_stop(r);
}

/* Everything queued for @r goes where a region that cannot be reached
 * sends it: here (docs/mod_global_distrib.md, "Losing a region"). */
static void remote_give_up(GdRemote *r, gboolean all)
{
    gint64 now = g_get_monotonic_time();
    GdItem *item;
    while ((item = g_queue_peek_head(&r->queue))) {
        if (!all && now - item->queued_at < r->gd->queue_timeout_us)
            break;
        g_queue_pop_head(&r->queue);
        queued_add(r->gd, -1);
        mk_counter_add(r->gd->c_unreachable, 1);
        gd_deliver_here(r->gd, item);
    }
    if (g_queue_is_empty(&r->queue))
        sweep_stop(r);
}

static gboolean on_sweep(gpointer data)
{
    remote_give_up(data, FALSE);
    return G_SOURCE_CONTINUE;
}

static gboolean on_retry(gpointer data)
{
    GdRemote *r = data;
    g_source_unref(r->retry);
    r->retry = NULL;
    if (!g_queue_is_empty(&r->queue)) {
        mk_counter_add(gd_region_metrics(r->gd, r->host)->reconnects, 1);
        remote_connect(r);
    }
    return G_SOURCE_REMOVE;
}

static void remote_schedule_retry(GdRemote *r)
{
    if (r->retry || r->gd->stopping)
        return;
    r->backoff_ms = r->backoff_ms ? MIN(r->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    r->retry = g_timeout_source_new(r->backoff_ms);
    g_source_set_callback(r->retry, on_retry, r, NULL);
    g_source_attach(r->retry, r->gd->ctx);
}

static void remote_lost(GdConn *c, const char *why)
{
    GdRemote *r = c->owner;
    Gd *gd = r->gd;
    if (r->state == R_UP) {
        mk_gauge_add(gd->g_links_up, -1);
        g_warning("mod_global_distrib: link to region %s lost: %s", r->host, why);
    } else if (!r->down_logged) {
        g_warning("mod_global_distrib: cannot link to region %s: %s (retrying)", r->host, why);
    }
    r->down_logged = TRUE;
    mk_counter_add(gd_region_metrics(gd, r->host)->link_errors, 1);
    conn_free_later(gd, r->conn);
    r->conn = NULL;
    r->state = R_IDLE;
    remote_schedule_retry(r);
}

static void remote_frame(GdConn *c, const char *frame, gsize len)
{
    GdRemote *r = c->owner;
    Gd *gd = r->gd;
    const char *f[2];
    if (r->state == R_HANDSHAKE && frame[0] == 'C' && frame_fields(frame, len, f, 2)) {
        if (g_strcmp0(f[0], r->host) != 0) {
            conn_fail(c, "the endpoint belongs to another region");
            return;
        }
        g_autofree char *mac = proof(gd, "d", f[1], gd->local_host);
        make_nonce(r->nonce);
        const char *fields[] = {gd->local_host, mac, r->nonce, NULL};
        conn_frame(c, 'A', fields, NULL, 0);
        return;
    }
    if (r->state == R_HANDSHAKE && frame[0] == 'B' && frame_fields(frame, len, f, 1)) {
        g_autofree char *want = proof(gd, "a", r->nonce, r->host);
        if (!same_secret(want, f[0])) {
            conn_fail(c, "the peer does not know the shared secret");
            return;
        }
        r->state = R_UP;
        r->backoff_ms = 0;
        r->down_logged = FALSE;
        mk_gauge_add(gd->g_links_up, 1);
        g_message("mod_global_distrib: link to region %s up", r->host);
        remote_drain(r);
        return;
    }
    conn_fail(c, "unexpected frame");
}

static int dial(const char *endpoint, GError **error)
{
    const char *colon = strrchr(endpoint, ':');
    if (!colon) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "bad endpoint %s", endpoint);
        return -1;
    }
    g_autofree char *host = g_strndup(endpoint, (gsize)(colon - endpoint));
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    /* Endpoints are numeric addresses (advertise): no DNS on this thread. */
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "bad endpoint %s", endpoint);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "%s: %s", endpoint,
                        g_strerror(errno));
            close(fd);
            fd = -1;
        }
    } else {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "socket: %s", g_strerror(errno));
    }
    freeaddrinfo(ai);
    return fd;
}

static void on_endpoints(Gd *gd, char **values, gpointer data)
{
    /* Stopping: the remotes may be gone already (gd_links_close). */
    if (g_atomic_int_get(&gd->stopping))
        return;
    GdRemote *r = data;
    if (r->state != R_RESOLVING)
        return;
    r->state = R_IDLE;
    guint n = values ? g_strv_length(values) : 0;
    if (n == 0) {
        /* No live node advertises that region: it is gone (or Redis is). */
        if (!r->down_logged)
            g_warning("mod_global_distrib: region %s advertises no endpoint%s", r->host,
                      values ? "" : " (global Redis unreachable)");
        r->down_logged = TRUE;
        mk_counter_add(gd_region_metrics(gd, r->host)->link_errors, 1);
        remote_give_up(r, TRUE);
        remote_schedule_retry(r);
        return;
    }
    const char *ep = values[r->attempt++ % n];
    g_autoptr(GError) error = NULL;
    int fd = dial(ep, &error);
    if (fd < 0) {
        GdConn tmp = {.owner = r};
        remote_lost(&tmp, error->message);
        return;
    }
    r->state = R_HANDSHAKE;
    r->conn = conn_new(gd, fd, TRUE, remote_frame, remote_lost, r);
}

static void remote_connect(GdRemote *r)
{
    if (r->state != R_IDLE || r->gd->stopping)
        return;
    r->state = R_RESOLVING;
    gd_redis_endpoints(r->gd, r->host, on_endpoints, r, NULL);
}

static void remote_free(gpointer data)
{
    GdRemote *r = data;
    if (r->retry) {
        g_source_destroy(r->retry);
        g_source_unref(r->retry);
    }
    sweep_stop(r);
    remote_give_up(r, TRUE);
    conn_free(r->conn);
    g_free(r->host);
    g_free(r);
}

void gd_link_send(Gd *gd, const char *host, GdItem *item)
{
    GdRemote *r = g_hash_table_lookup(gd->remotes, host);
    if (!r) {
        r = g_new0(GdRemote, 1);
        r->gd = gd;
        r->host = g_strdup(host);
        g_queue_init(&r->queue);
        g_hash_table_insert(gd->remotes, r->host, r);
    }
    if (r->state == R_UP && g_queue_is_empty(&r->queue) && r->conn->out->len < MAX_OUT) {
        remote_write(r, item);
        gd_item_free(item);
        return;
    }
    /* A full queue, or a link whose peer stopped reading. */
    if (g_queue_get_length(&r->queue) >= gd->queue_max || r->state == R_UP) {
        mk_counter_add(gd->c_queue_full, 1);
        g_autoptr(MkStanza) err = mk_stanza_new_error_reply(
            item->stanza, MK_ERR_RESOURCE_CONSTRAINT, "the queue to the user's region is full");
        if (err)
            gd_handoff(gd, err, 0, NULL, FALSE);
        gd_item_free(item);
        return;
    }
    item->queued_at = g_get_monotonic_time();
    g_queue_push_tail(&r->queue, item);
    queued_add(gd, 1);
    if (!r->sweep) {
        r->sweep = g_timeout_source_new(SWEEP_MS);
        g_source_set_callback(r->sweep, on_sweep, r, NULL);
        g_source_attach(r->sweep, gd->ctx);
    }
    if (r->state == R_UP)
        remote_drain(r);
    else if (!r->retry)
        remote_connect(r);
}

/* ---- accepted links ---------------------------------------------------- */

static void inbound_lost(GdConn *c, const char *why)
{
    GdInbound *in = c->owner;
    Gd *gd = in->gd;
    if (in->peer)
        g_message("mod_global_distrib: link from region %s closed: %s", in->peer, why);
    else
        g_message("mod_global_distrib: unauthenticated link closed: %s", why);
    g_ptr_array_remove_fast(gd->inbound, in);
    conn_free_later(gd, in->conn);
    g_free(in->peer);
    g_free(in);
}

static void inbound_frame(GdConn *c, const char *frame, gsize len)
{
    GdInbound *in = c->owner;
    Gd *gd = in->gd;
    const char *f[3];
    if (!in->peer && frame[0] == 'A' && frame_fields(frame, len, f, 3)) {
        g_autofree char *want = proof(gd, "d", in->nonce, f[0]);
        if (!same_secret(want, f[1])) {
            g_warning("mod_global_distrib: a link claiming region %s failed authentication", f[0]);
            conn_fail(c, "bad proof");
            return;
        }
        in->peer = g_strdup(f[0]);
        g_autofree char *mac = proof(gd, "a", f[2], gd->local_host);
        const char *fields[] = {mac, NULL};
        conn_frame(c, 'B', fields, NULL, 0);
        g_message("mod_global_distrib: link from region %s up", in->peer);
        return;
    }
    if (in->peer && frame[0] == 'S' && frame_fields(frame, len, f, 3)) {
        int hops = atoi(f[0]);
        gsize xml_len = len - (gsize)(f[2] - frame);
        g_autoptr(GError) error = NULL;
        g_autoptr(MkXml) xml = mk_xml_parse(f[2], (gssize)xml_len, &error);
        g_autoptr(MkStanza) st = xml ? mk_stanza_new(xml, &error) : NULL;
        if (!st) {
            g_warning("mod_global_distrib: dropping a stanza from region %s: %s", in->peer,
                      error ? error->message : "not a stanza");
            return;
        }
        mk_counter_add(gd_region_metrics(gd, in->peer)->in, 1);
        gd_received(gd, st, f[1], hops, in->peer);
        return;
    }
    conn_fail(c, "unexpected frame");
}

static gboolean on_accept(gint fd_, GIOCondition cond, gpointer data)
{
    Gd *gd = data;
    (void)fd_;
    (void)cond;
    for (;;) {
        int fd = accept4(gd->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        GdInbound *in = g_new0(GdInbound, 1);
        in->gd = gd;
        make_nonce(in->nonce);
        in->conn = conn_new(gd, fd, FALSE, inbound_frame, inbound_lost, in);
        g_ptr_array_add(gd->inbound, in);
        const char *fields[] = {gd->local_host, in->nonce, NULL};
        conn_frame(in->conn, 'C', fields, NULL, 0);
    }
    return G_SOURCE_CONTINUE;
}

gboolean gd_links_listen(Gd *gd, GError **error)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    g_autofree char *port = g_strdup_printf("%d", gd->listen_port);
    if (getaddrinfo(gd->listen_address, port, &hints, &ai) != 0 || !ai) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: listen_address %s is not a numeric address",
                    gd->listen_address);
        return FALSE;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: cannot listen on %s:%d: %s", gd->listen_address,
                    gd->listen_port, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return FALSE;
    }
    freeaddrinfo(ai);
    gd->listen_fd = fd;
    gd->listen_src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(gd->listen_src, (GSourceFunc)(void (*)(void))on_accept, gd, NULL);
    g_source_attach(gd->listen_src, gd->ctx);
    gd->remotes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, remote_free);
    gd->inbound = g_ptr_array_new();
    return TRUE;
}

void gd_links_close(Gd *gd)
{
    if (gd->listen_src) {
        g_source_destroy(gd->listen_src);
        g_source_unref(gd->listen_src);
        gd->listen_src = NULL;
    }
    if (gd->listen_fd >= 0)
        close(gd->listen_fd);
    gd->listen_fd = -1;
    if (gd->remotes)
        g_hash_table_destroy(gd->remotes);
    gd->remotes = NULL;
    for (guint i = 0; gd->inbound && i < gd->inbound->len; i++) {
        GdInbound *in = g_ptr_array_index(gd->inbound, i);
        conn_free(in->conn);
        g_free(in->peer);
        g_free(in);
    }
    if (gd->inbound)
        g_ptr_array_free(gd->inbound, TRUE);
    gd->inbound = NULL;
}

/* For the REST listing (gd-rest.c): "down" is a link waiting to redial. */
const char *gd_link_state(Gd *gd, const char *host, guint *queued)
{
    GdRemote *r = gd->remotes ? g_hash_table_lookup(gd->remotes, host) : NULL;
    *queued = r ? g_queue_get_length(&r->queue) : 0;
    if (!r)
        return "none";
    if (r->state == R_UP)
        return "up";
    return r->state == R_IDLE ? (r->retry ? "down" : "idle") : "connecting";
}
