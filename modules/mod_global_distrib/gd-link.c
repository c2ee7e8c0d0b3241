/* Links between regions. Each node keeps a small pool of connections
 * (connections_per_endpoint) to every region it sends to, dialled to the
 * endpoints that region advertises in Redis, and writes only on them;
 * what it receives comes on the connections others dialled. A stanza
 * goes on the connection its sender->recipient pair hashes to, so the
 * order of one pair is the order of one byte stream.
 *
 * The socket, the optional TLS, the shared-secret handshake and the
 * framing are the core's (mk_link_io_*, mk-cluster.h): the dialer
 * expects the acceptor to announce the region it dialled. After the
 * handshake the dialer sends S frames: hops, origin region, the stanza
 * as XML.
 *
 * Thread: the module's ("mk-gdistrib"), all of it. */
#define _GNU_SOURCE /* accept4 */
#include "gd.h"
#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME      (1024 * 1024)      /* a stanza is bounded well below this */
#define MAX_OUT        (32 * 1024 * 1024) /* bytes the kernel did not take yet */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SWEEP_MS       250
#define FRAME_STANZA   'S'

typedef struct GdConn GdConn;
typedef void (*GdFrameFunc)(GdConn *c, guint8 type, const char *data, gsize len);
typedef void (*GdConnFunc)(GdConn *c);
typedef void (*GdLostFunc)(GdConn *c, const char *why);

/* One socket with its buffers. */
struct GdConn {
    Gd *gd;
    MkLinkIo *io; /* owns the socket */
    int fd;
    GSource *src;
    gpointer tag;
    GByteArray *in, *out;
    GdFrameFunc on_frame;
    GdConnFunc on_up;
    GdLostFunc on_lost;
    gpointer owner;
    gboolean connecting, up, dead;
};

typedef struct {
    GSource src;
    GdConn *conn;
} ConnSource;

typedef enum { R_IDLE, R_RESOLVING, R_HANDSHAKE, R_UP } SlotState;

/* One connection of a remote's pool, with the stanzas waiting for it. */
typedef struct {
    GdRemote *r;
    guint index;
    SlotState state;
    GdConn *conn;
    GQueue queue; /* GdItem, waiting for the link */
    guint backoff_ms, attempt;
    GSource *retry;
    gboolean down_logged;
} GdSlot;

struct GdRemote {
    Gd *gd;
    char *host;
    guint n;
    GdSlot *slots;
    guint queued; /* over all slots: bounded by queue_max */
    GSource *sweep;
};

typedef struct {
    Gd *gd;
    GdConn *conn;
    char *peer;          /* region, once authenticated */
    MkXmlParser *parser; /* of its stanzas, made on the first */
} GdInbound;

/* ---- sockets ---------------------------------------------------------- */

static void conn_update(GdConn *c)
{
    GIOCondition want = G_IO_IN | G_IO_HUP | G_IO_ERR;
    if (c->connecting || c->out->len)
        want |= G_IO_OUT;
    else if (!c->up)
        want |= mk_link_io_wants(c->io);
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
    while (c->up && c->out->len && !c->dead) {
        gssize n = mk_link_io_send(c->io, c->out->data, c->out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
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

/* Hands every complete frame in @c->in over. */
static void conn_parse(GdConn *c)
{
    guint off = 0;
    guint8 type;
    const char *data;
    gsize len;
    int got;
    while (!c->dead && (got = mk_link_frame_next(c->in, &off, MAX_FRAME, &type, &data, &len))) {
        if (got < 0) {
            conn_fail(c, "bad frame length");
            return;
        }
        c->on_frame(c, type, data, len);
    }
    if (!c->dead && off)
        g_byte_array_remove_range(c->in, 0, off);
}

/* Reads until the socket (and TLS) has nothing more. */
static void conn_read(GdConn *c)
{
    guint8 buf[16384];
    while (!c->dead) {
        gssize n = mk_link_io_recv(c->io, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_fail(c, n == 0 ? "closed by peer" : g_strerror(errno));
            return;
        }
        g_byte_array_append(c->in, buf, (guint)n);
        conn_parse(c);
    }
}

static const char *const refusal_reasons[] = {NULL,          "protocol", "tls",
                                              "certificate", "secret",   "peer"};

/* Moves the handshake on; a refused peer is logged and counted. */
static void conn_handshake(GdConn *c)
{
    g_autoptr(GError) error = NULL;
    int r = mk_link_io_handshake(c->io, c->in, &error);
    if (r == 0) {
        conn_update(c);
        return;
    }
    if (r < 0) {
        if (error->code > 0 && error->code < (int)G_N_ELEMENTS(refusal_reasons)) {
            g_warning("mod_global_distrib: link refused: %s", error->message);
            mk_counter_add(c->gd->c_refused[error->code], 1);
        }
        conn_fail(c, error->message);
        return;
    }
    c->up = TRUE;
    c->on_up(c);
    if (!c->dead)
        conn_parse(c);
    if (!c->dead)
        conn_flush(c);
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
        conn_handshake(c);
        return G_SOURCE_CONTINUE;
    }
    if (!c->up) {
        conn_handshake(c);
        if (!c->up || c->dead)
            return G_SOURCE_CONTINUE;
        rev |= G_IO_IN; /* TLS may hold records that came with the end */
    }
    if (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        conn_read(c);
    if (!c->dead && (rev & G_IO_OUT))
        conn_flush(c);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs conn_funcs = {.dispatch = conn_dispatch};

static GdConn *conn_new(Gd *gd, int fd, gboolean dialer, const char *expect, GdFrameFunc on_frame,
                        GdConnFunc on_up, GdLostFunc on_lost, gpointer owner)
{
    GdConn *c = g_new0(GdConn, 1);
    c->gd = gd;
    c->fd = fd;
    c->io = mk_link_io_new(gd->link_auth, fd, dialer, expect);
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    c->on_frame = on_frame;
    c->on_up = on_up;
    c->on_lost = on_lost;
    c->owner = owner;
    c->connecting = dialer;
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
    mk_link_io_free(c->io);
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

/* ---- outgoing links ------------------------------------------------------- */

static void slot_connect(GdSlot *s);

static void sweep_stop(GdRemote *r)
{
    if (r->sweep) {
        g_source_destroy(r->sweep);
        g_source_unref(r->sweep);
        r->sweep = NULL;
    }
}

static void queued_add(GdRemote *r, gint64 n)
{
    r->queued = (guint)((gint64)r->queued + n);
    mk_gauge_add(r->gd->g_queued, n);
    if (!r->queued)
        sweep_stop(r);
}

/* Writes @item on @s's open link. */
static void slot_write(GdSlot *s, GdItem *item)
{
    Gd *gd = s->r->gd;
    g_autofree char *xml = mk_xml_to_string(mk_stanza_xml(item->stanza), NULL);
    g_autofree char *hops = g_strdup_printf("%d", item->hops + 1);
    mk_link_frame_append(s->conn->out, FRAME_STANZA, hops,
                         item->origin ? item->origin : gd->local_host, xml);
    conn_flush(s->conn);
    GdRegionMetrics *m = gd_region_metrics(gd, s->r->host);
    mk_counter_add(m->out, 1);
    if (item->queued_at)
        mk_histogram_observe(m->queue_time,
                             (double)(g_get_monotonic_time() - item->queued_at) / 1e6);
}

static void slot_drain(GdSlot *s)
{
    GdItem *item;
    while (s->state == R_UP && s->conn && !s->conn->dead && (item = g_queue_pop_head(&s->queue))) {
        queued_add(s->r, -1);
        slot_write(s, item);
        gd_item_free(item);
    }
}

/* What waited too long for @r (everything when @all) goes where a region
 * that cannot be reached sends it: here (docs/mod_global_distrib.md,
 * "Losing a region"). */
static void remote_give_up(GdRemote *r, gboolean all)
{
    gint64 now = g_get_monotonic_time();
    for (guint i = 0; i < r->n; i++) {
        GdSlot *s = &r->slots[i];
        GdItem *item;
        while ((item = g_queue_peek_head(&s->queue))) {
            if (!all && now - item->queued_at < r->gd->queue_timeout_us)
                break;
            g_queue_pop_head(&s->queue);
            queued_add(r, -1);
            mk_counter_add(r->gd->c_unreachable, 1);
            gd_deliver_here(r->gd, item);
        }
    }
}

static gboolean on_sweep(gpointer data)
{
    remote_give_up(data, FALSE);
    return G_SOURCE_CONTINUE;
}

static gboolean on_retry(gpointer data)
{
    GdSlot *s = data;
    g_source_unref(s->retry);
    s->retry = NULL;
    if (!g_queue_is_empty(&s->queue)) {
        mk_counter_add(gd_region_metrics(s->r->gd, s->r->host)->reconnects, 1);
        slot_connect(s);
    }
    return G_SOURCE_REMOVE;
}

/* Dials again after a backoff doubling from 100 ms to 5 s. */
static void slot_schedule_retry(GdSlot *s)
{
    Gd *gd = s->r->gd;
    if (s->retry || gd->stopping)
        return;
    s->backoff_ms = s->backoff_ms ? MIN(s->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    s->retry = g_timeout_source_new(s->backoff_ms);
    g_source_set_callback(s->retry, on_retry, s, NULL);
    g_source_attach(s->retry, gd->ctx);
}

static void slot_lost(GdConn *c, const char *why)
{
    GdSlot *s = c->owner;
    Gd *gd = s->r->gd;
    if (s->state == R_UP) {
        mk_gauge_add(gd->g_links_up, -1);
        g_warning("mod_global_distrib: link %u to region %s lost: %s", s->index, s->r->host, why);
    } else if (!s->down_logged) {
        g_warning("mod_global_distrib: cannot link to region %s: %s (retrying)", s->r->host, why);
    }
    s->down_logged = TRUE;
    mk_counter_add(gd_region_metrics(gd, s->r->host)->link_errors, 1);
    conn_free_later(gd, s->conn);
    s->conn = NULL;
    s->state = R_IDLE;
    slot_schedule_retry(s);
}

static void slot_up(GdConn *c)
{
    GdSlot *s = c->owner;
    Gd *gd = s->r->gd;
    s->state = R_UP;
    s->backoff_ms = 0;
    s->down_logged = FALSE;
    mk_gauge_add(gd->g_links_up, 1);
    g_message("mod_global_distrib: link %u to region %s up%s", s->index, s->r->host,
              mk_link_auth_tls(gd->link_auth) ? " (TLS)" : "");
    slot_drain(s);
}

static void slot_frame(GdConn *c, guint8 type, const char *data, gsize len)
{
    (void)type;
    (void)data;
    (void)len;
    conn_fail(c, "unexpected frame"); /* the acceptor only reads */
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
    GdSlot *s = data;
    GdRemote *r = s->r;
    if (s->state != R_RESOLVING)
        return;
    s->state = R_IDLE;
    guint n = values ? g_strv_length(values) : 0;
    if (n == 0) {
        /* No live node advertises that region: it is gone (or Redis is). */
        if (!s->down_logged)
            g_warning("mod_global_distrib: region %s advertises no endpoint%s", r->host,
                      values ? "" : " (global Redis unreachable)");
        s->down_logged = TRUE;
        mk_counter_add(gd_region_metrics(gd, r->host)->link_errors, 1);
        remote_give_up(r, TRUE);
        slot_schedule_retry(s);
        return;
    }
    /* The pool's connections spread over the region's endpoints. */
    const char *ep = values[(s->attempt++ + s->index) % n];
    g_autoptr(GError) error = NULL;
    int fd = dial(ep, &error);
    if (fd < 0) {
        GdConn tmp = {.owner = s};
        slot_lost(&tmp, error->message);
        return;
    }
    s->state = R_HANDSHAKE;
    s->conn = conn_new(gd, fd, TRUE, r->host, slot_frame, slot_up, slot_lost, s);
}

static void slot_connect(GdSlot *s)
{
    if (s->state != R_IDLE || s->r->gd->stopping)
        return;
    s->state = R_RESOLVING;
    gd_redis_endpoints(s->r->gd, s->r->host, on_endpoints, s, NULL);
}

static void remote_free(gpointer data)
{
    GdRemote *r = data;
    for (guint i = 0; i < r->n; i++) {
        if (r->slots[i].retry) {
            g_source_destroy(r->slots[i].retry);
            g_source_unref(r->slots[i].retry);
        }
    }
    remote_give_up(r, TRUE);
    sweep_stop(r);
    for (guint i = 0; i < r->n; i++)
        conn_free(r->slots[i].conn);
    g_free(r->slots);
    g_free(r->host);
    g_free(r);
}

/* The pool's connection for @st: its sender's and recipient's bare JIDs
 * hashed, so that one pair's stanzas keep their order. */
static guint slot_of(GdRemote *r, MkStanza *st)
{
    if (r->n == 1)
        return 0;
    MkJid *from = mk_stanza_from(st), *to = mk_stanza_to(st);
    guint h = from ? g_str_hash(mk_jid_bare_string(from)) : 0;
    h = h * 31 + (to ? g_str_hash(mk_jid_bare_string(to)) : 0);
    return h % r->n;
}

void gd_link_send(Gd *gd, const char *host, GdItem *item)
{
    GdRemote *r = g_hash_table_lookup(gd->remotes, host);
    if (!r) {
        r = g_new0(GdRemote, 1);
        r->gd = gd;
        r->host = g_strdup(host);
        r->n = gd->pool;
        r->slots = g_new0(GdSlot, r->n);
        for (guint i = 0; i < r->n; i++) {
            r->slots[i].r = r;
            r->slots[i].index = i;
            g_queue_init(&r->slots[i].queue);
        }
        g_hash_table_insert(gd->remotes, r->host, r);
    }
    GdSlot *s = &r->slots[slot_of(r, item->stanza)];
    if (s->state == R_UP && g_queue_is_empty(&s->queue) && s->conn->out->len < MAX_OUT) {
        slot_write(s, item);
        gd_item_free(item);
        return;
    }
    /* A full queue, or a link whose peer stopped reading. */
    if (r->queued >= gd->queue_max || s->state == R_UP) {
        mk_counter_add(gd->c_queue_full, 1);
        g_autoptr(MkStanza) err = mk_stanza_new_error_reply(
            item->stanza, MK_ERR_RESOURCE_CONSTRAINT, "the queue to the user's region is full");
        if (err)
            gd_handoff(gd, err, 0, NULL, FALSE);
        gd_item_free(item);
        return;
    }
    item->queued_at = g_get_monotonic_time();
    g_queue_push_tail(&s->queue, item);
    queued_add(r, 1);
    if (!r->sweep) {
        r->sweep = g_timeout_source_new(SWEEP_MS);
        g_source_set_callback(r->sweep, on_sweep, r, NULL);
        g_source_attach(r->sweep, gd->ctx);
    }
    if (!s->retry)
        slot_connect(s);
}

/* ---- accepted links ---------------------------------------------------- */

/* What an accepted link owns besides its connection. */
static void inbound_free(GdInbound *in)
{
    g_free(in->peer);
    mk_xml_parser_free(in->parser);
    g_free(in);
}

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
    inbound_free(in);
}

static void inbound_up(GdConn *c)
{
    GdInbound *in = c->owner;
    in->peer = g_strdup(mk_link_io_peer(c->io));
    g_message("mod_global_distrib: link from region %s up%s", in->peer,
              mk_link_auth_tls(in->gd->link_auth) ? " (TLS)" : "");
}

static void inbound_frame(GdConn *c, guint8 type, const char *data, gsize len)
{
    GdInbound *in = c->owner;
    Gd *gd = in->gd;
    const char *f[3];
    gsize fl[3];
    if (type != FRAME_STANZA || mk_link_frame_fields(data, len, f, fl, 3) != 3) {
        conn_fail(c, "unexpected frame");
        return;
    }
    g_autofree char *hops = g_strndup(f[0], fl[0]);
    g_autofree char *origin = g_strndup(f[1], fl[1]);
    g_autoptr(GError) error = NULL;
    /* One parser per link: a context per stanza cost more than the rest
     * of its way through this node (callgrind). */
    if (!in->parser)
        in->parser = mk_xml_parser_new();
    g_autoptr(MkXml) xml = mk_xml_parser_parse(in->parser, f[2], fl[2], &error);
    g_autoptr(MkStanza) st = xml ? mk_stanza_new(xml, &error) : NULL;
    if (!st) {
        g_warning("mod_global_distrib: dropping a stanza from region %s: %s", in->peer,
                  error ? error->message : "not a stanza");
        return;
    }
    mk_counter_add(gd_region_metrics(gd, in->peer)->in, 1);
    gd_received(gd, st, origin, atoi(hops), in->peer);
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
        g_ptr_array_add(gd->inbound, in);
        in->conn = conn_new(gd, fd, FALSE, NULL, inbound_frame, inbound_up, inbound_lost, in);
        conn_handshake(in->conn);
    }
    return G_SOURCE_CONTINUE;
}

gboolean gd_links_listen(Gd *gd, GError **error)
{
    MkModule *mod = gd->mod;
    gboolean tls = mk_config_get_bool(mod, "link_tls");
    gd->link_auth = mk_link_auth_new("mod_global_distrib", gd->local_host, gd->secret,
                                     tls ? mk_config_get_string(mod, "link_certfile") : NULL,
                                     mk_config_get_string(mod, "link_keyfile"),
                                     mk_config_get_string(mod, "link_cafile"), error);
    if (!gd->link_auth)
        return FALSE;
    if (tls && !mk_link_auth_tls(gd->link_auth)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: link_tls = true needs link_certfile, link_keyfile and "
                    "link_cafile");
        return FALSE;
    }
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
        inbound_free(in);
    }
    if (gd->inbound)
        g_ptr_array_free(gd->inbound, TRUE);
    gd->inbound = NULL;
    g_clear_pointer(&gd->link_auth, mk_link_auth_free);
}

/* For the REST listing (gd-rest.c): the best state of the remote's pool,
 * "down" when none is up and one waits to redial. */
const char *gd_link_state(Gd *gd, const char *host, guint *queued)
{
    GdRemote *r = gd->remotes ? g_hash_table_lookup(gd->remotes, host) : NULL;
    *queued = r ? r->queued : 0;
    if (!r)
        return "none";
    gboolean connecting = FALSE, waiting = FALSE;
    for (guint i = 0; i < r->n; i++) {
        GdSlot *slot = &r->slots[i];
        if (slot->state == R_UP)
            return "up";
        connecting |= slot->state != R_IDLE;
        waiting |= slot->retry != NULL;
    }
    return connecting ? "connecting" : waiting ? "down" : "idle";
}
