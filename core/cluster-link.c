/* Node links (docs/clustering.md, Node links): one TCP connection from
 * each node to each peer, carrying that node's stanzas for the peer's
 * sessions in length-prefixed frames. A node sends only on the link it
 * dialled and reads only on the links it accepted, so the order of what
 * one node sends to another is the order of one byte stream.
 *
 * Frames, the handshake (HMAC-SHA256 over nonces with the cluster
 * secret) and the optional TLS are core/link.c's (mk-cluster.h, MkLinkIo);
 * this file keeps the peers, the worker-side batching and the stanza
 * parser of each accepted link.
 *
 * Threads: sockets and watches belong to the cluster thread. Workers
 * write frames on a dialled link directly (mk_links_send) under the
 * link's lock; what the socket does not take waits in the link's buffer
 * for the cluster thread. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "cluster.h"
#include "worker.h"
#include "xmlstream.h"
#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_MAX    (16 * 1024 * 1024) /* one frame; a stanza is far smaller */
#define OUT_MAX      (32 * 1024 * 1024) /* unsent bytes per link before it refuses */
#define RETRY_US     (500 * 1000)
#define AUTH_TIMEOUT (5 * G_USEC_PER_SEC)
#define REFUSED_LOG  (60 * G_USEC_PER_SEC) /* a persisting refusal is logged this often */

enum { LINK_DOWN, LINK_CONNECTING, LINK_HANDSHAKE, LINK_UP };

typedef struct {
    GSource source;
    gpointer tag;
    struct Link *link;
} LinkSource;

/* A worker's pending flush of a link (flush at the end of its batch). */
typedef struct {
    MkDeferred d; /* first: the callback gets this */
    struct Link *link;
} LinkFlush;

typedef struct Link {
    MkLinks *links;
    LinkFlush flush[64]; /* by worker index: workers defer their writes */
    char *node;          /* the peer; NULL on an accepted link until AUTH */
    gboolean outbound;
    char *host; /* outbound: where the peer listens */
    guint16 port;
    gint64 retry_at; /* monotonic */
    gint64 started;  /* monotonic: connect or accept */
    LinkSource *watch;
    GByteArray *in;     /* cluster thread */
    MkXmlStream *xs;    /* accepted link: parses the stanzas of its frames */
    const char *target; /* the frame being parsed: its target and session id */
    guint64 target_id;
    /* Under lock: any thread on an outbound link. */
    GMutex lock;
    int fd;
    MkLinkIo *io; /* owns fd; NULL while down */
    int state;
    GByteArray *out;
    gboolean want_out; /* the watch has G_IO_OUT */
} Link;

struct MkLinks {
    MkCluster *cl;
    MkXmlShared *xml_shared; /* the cluster thread's parser state */
    GMainContext *ctx;
    MkLinkAuth *auth; /* this node's name, the secret, TLS */
    gboolean tls;
    int lfd;
    GSource *lsrc;
    guint16 port;
    GRWLock lock;      /* peers: readers send, the cluster thread changes */
    GHashTable *peers; /* node -> Link* (outbound) */
    GPtrArray *accepted;
    GHashTable *refusals; /* "to|from PEER \t message" -> Refusal*: cluster thread */
};

/* A peer that keeps being refused: logged once, then once a minute. */
typedef struct {
    gint64 logged; /* monotonic: last log line */
    gint64 last;   /* monotonic: last refusal */
    guint64 since; /* refusals not logged since the last line */
} Refusal;

static void link_close(Link *l, const char *why);
static void link_update_watch(Link *l);
static void link_flush_deferred(MkDeferred *d);

/* ---- frames ------------------------------------------------------------ */

/* Writes what @l->out holds, as far as the socket takes it. Under l->lock. */
static gboolean flush_locked(Link *l)
{
    while (l->out->len) {
        gssize n = mk_link_io_send(l->io, l->out->data, l->out->len);
        if (n > 0) {
            g_byte_array_remove_range(l->out, 0, (guint)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return TRUE;
}

/* The stanzas of an accepted link are parsed by one long-lived stream
 * parser, as if they were the children of one stream: no parser is made
 * per stanza (that was ~10% of a cross-node message's CPU). */
static void xs_start(gpointer data, MkXml *header)
{
    (void)data;
    (void)header;
}

static void xs_stanza(gpointer data, MkXml *stanza)
{
    Link *l = data;
    if (l->target)
        mk_cluster_link_stanza(l->links->cl, l->target, l->target_id, stanza);
    mk_xml_unref(stanza);
}

static void xs_end(gpointer data)
{
    (void)data;
}

static void xs_error(gpointer data, const char *condition, const char *text)
{
    Link *l = data;
    g_warning("cluster: unreadable stanza from %s: %s (%s)", l->node, condition, text);
    l->target = NULL; /* the link is dropped after this frame */
}

static const MkXmlStreamCallbacks xs_callbacks = {xs_start, xs_stanza, xs_end, xs_error};

#define XS_HEADER                                                                                  \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

/* Parses the stanza of a STANZA frame and hands it over. FALSE when it
 * was not one well-formed stanza. Cluster thread. */
static gboolean link_stanza(Link *l, const char *const *f, const gsize *fl)
{
    if (!l->xs) {
        l->xs = mk_xml_stream_new(&xs_callbacks, l, l->links->xml_shared, 0, 0);
        mk_xml_stream_feed(l->xs, XS_HEADER, strlen(XS_HEADER));
    }
    g_autofree char *target = g_strndup(f[0], fl[0]);
    g_autofree char *id = g_strndup(f[1], fl[1]);
    l->target = target;
    l->target_id = g_ascii_strtoull(id, NULL, 10);
    gboolean ok = mk_xml_stream_feed(l->xs, f[2], fl[2]) && l->target;
    l->target = NULL;
    return ok && mk_xml_stream_is_idle(l->xs);
}

/* A frame arrived on @l, which is up. Cluster thread. FALSE: drop the link. */
static gboolean link_frame(Link *l, guint8 type, const char *data, gsize len)
{
    if (l->outbound)
        return FALSE; /* a peer sends on its own link, not ours */
    if (type == MK_LINK_WIRE) {
        /* Target, from, to: each ends at a NUL of the frame, so they are
         * strings in place; the stanza's bytes are the rest. */
        const char *f[4];
        gsize fl[4];
        if (mk_link_frame_fields(data, len, f, fl, 4) != 4 || fl[3] < 2 || f[3][0] != '<')
            return FALSE;
        mk_cluster_link_wire(l->links->cl, f[0], f[1], f[2], f[3], fl[3]);
        return TRUE;
    }
    if (type == MK_LINK_STANZA) {
        const char *f[3];
        gsize fl[3];
        return mk_link_frame_fields(data, len, f, fl, 3) == 3 && link_stanza(l, f, fl);
    }
    mk_cluster_link_frame(l->links->cl, l->node, type, data, len);
    return TRUE;
}

/* Who @l talks to, for the refusal log: the node, or the address an
 * unknown peer connects from. Caller frees. Cluster thread. */
static char *refusal_key(Link *l)
{
    if (l->node)
        return g_strdup_printf("%s %s", l->outbound ? "to" : "from", l->node);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[64] = "?";
    if (l->fd >= 0 && getpeername(l->fd, (struct sockaddr *)&ss, &len) == 0) {
        const void *a = ss.ss_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        inet_ntop(ss.ss_family, a, host, sizeof host);
    }
    return g_strdup_printf("from %s", host);
}

/* Logs a refusal of @peer's link: a peer that keeps failing (wrong
 * secret, TLS mismatch) redials every 0.5 s, so the same refusal is
 * logged once and then at most once a minute with how many came in
 * between; the metric counts each one. Refusals not seen for two
 * minutes are forgotten. Cluster thread. */
static void refusal_log(MkLinks *ls, const char *peer, const char *message)
{
    gint64 now = g_get_monotonic_time();
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, ls->refusals);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (now - ((Refusal *)v)->last > 2 * REFUSED_LOG)
            g_hash_table_iter_remove(&it);
    g_autofree char *key = g_strdup_printf("%s\t%s", peer, message);
    Refusal *r = g_hash_table_lookup(ls->refusals, key);
    if (r && now - r->logged < REFUSED_LOG) {
        r->since++;
        r->last = now;
        return;
    }
    if (r && r->since)
        g_warning("cluster: link %s refused: %s (%" G_GUINT64_FORMAT " more since the last log)",
                  peer, message, r->since);
    else
        g_warning("cluster: link %s refused: %s", peer, message);
    if (!r) {
        r = g_new0(Refusal, 1);
        g_hash_table_insert(ls->refusals, g_steal_pointer(&key), r);
    }
    r->logged = r->last = now;
    r->since = 0;
}

/* A link with @peer ("to NODE", "from NODE") came up: its refusals
 * ended, the next one is news again. Cluster thread. */
static void refusal_forget(MkLinks *ls, const char *peer)
{
    gsize n = strlen(peer);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, ls->refusals);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (strncmp(k, peer, n) == 0 && ((const char *)k)[n] == '\t')
            g_hash_table_iter_remove(&it);
}

/* Moves @l's handshake on (core/link.c); a refused peer is logged
 * (refusal_log) and counted. FALSE when @l was closed. Cluster thread. */
static gboolean link_handshake(Link *l)
{
    g_autoptr(GError) error = NULL;
    int r = mk_link_io_handshake(l->io, l->in, &error);
    if (r == 0) {
        link_update_watch(l);
        return TRUE;
    }
    if (r < 0) {
        if (error->code != MK_LINK_ERROR_CLOSED) {
            g_autofree char *key = refusal_key(l);
            refusal_log(l->links, key, error->message);
            mk_cluster_link_refused(l->links->cl, error->code);
        } else {
            g_debug("cluster: link %s %s: %s", l->outbound ? "to" : "from", l->node ? l->node : "?",
                    error->message);
        }
        link_close(l, NULL);
        return FALSE;
    }
    if (!l->outbound)
        l->node = g_strdup(mk_link_io_peer(l->io));
    g_mutex_lock(&l->lock);
    l->state = LINK_UP;
    g_mutex_unlock(&l->lock);
    g_message("cluster: link %s %s up%s", l->outbound ? "to" : "from", l->node,
              l->links->tls ? " (TLS)" : "");
    /* The refusal ended: the next one is news again. */
    g_autofree char *peer = g_strdup_printf("%s %s", l->outbound ? "to" : "from", l->node);
    refusal_forget(l->links, peer);
    link_update_watch(l);
    return TRUE;
}

/* ---- sockets ------------------------------------------------------------ */

/* Reads what @l's socket holds into @l->in: one recv on plain TCP (as
 * before TLS existed), until EAGAIN with TLS (GnuTLS hands out one record
 * at a time and keeps the rest from the socket's readiness), under the
 * link's lock then, as workers write on the same session. FALSE: closed. */
static gboolean link_read(Link *l)
{
    guint8 buf[65536];
    if (!l->links->tls) {
        gssize n = mk_link_io_recv(l->io, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            link_close(l, n == 0 ? "closed by the peer" : g_strerror(errno));
            return FALSE;
        }
        if (n > 0)
            g_byte_array_append(l->in, buf, (guint)n);
        return TRUE;
    }
    for (;;) {
        g_mutex_lock(&l->lock);
        gssize n = mk_link_io_recv(l->io, buf, sizeof buf);
        int e = errno;
        g_mutex_unlock(&l->lock);
        if (n > 0) {
            g_byte_array_append(l->in, buf, (guint)n);
            continue;
        }
        if (n < 0 && (e == EAGAIN || e == EINTR))
            return TRUE;
        link_close(l, n == 0 ? "closed by the peer" : g_strerror(e));
        return FALSE;
    }
}

static gboolean link_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    (void)cb;
    (void)data;
    LinkSource *ws = (LinkSource *)source;
    Link *l = ws->link;
    GIOCondition cond = g_source_query_unix_fd(source, ws->tag);

    if (l->state == LINK_CONNECTING && (cond & (G_IO_OUT | G_IO_ERR | G_IO_HUP))) {
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            g_debug("cluster: connecting to %s: %s", l->node, g_strerror(err));
            link_close(l, NULL);
            return G_SOURCE_CONTINUE;
        }
        l->state = LINK_HANDSHAKE;
        link_handshake(l);
        return G_SOURCE_CONTINUE;
    }
    if (l->state == LINK_HANDSHAKE) {
        if (!link_handshake(l) || l->state != LINK_UP)
            return G_SOURCE_CONTINUE;
        cond = G_IO_IN; /* what came with or after the handshake's end */
    } else if (cond & G_IO_OUT) {
        g_mutex_lock(&l->lock);
        gboolean ok = flush_locked(l);
        g_mutex_unlock(&l->lock);
        if (!ok) {
            link_close(l, "write failed");
            return G_SOURCE_CONTINUE;
        }
        link_update_watch(l);
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        if (!link_read(l))
            return G_SOURCE_CONTINUE;
        /* Every complete frame, then what was used goes in one move. */
        guint off = 0;
        guint8 type;
        const char *payload;
        gsize len;
        int got;
        while ((got = mk_link_frame_next(l->in, &off, FRAME_MAX, &type, &payload, &len)) != 0) {
            if (got < 0) {
                link_close(l, "bad frame");
                return G_SOURCE_CONTINUE;
            }
            if (!link_frame(l, type, payload, len)) {
                link_close(l, "protocol error");
                return G_SOURCE_CONTINUE;
            }
            if (l->fd < 0)
                return G_SOURCE_CONTINUE;
        }
        if (off)
            g_byte_array_remove_range(l->in, 0, off);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs link_source_funcs = {.dispatch = link_dispatch};

/* Watches @l->fd for input, and output while anything waits. Cluster thread. */
static void link_update_watch(Link *l)
{
    if (l->fd < 0)
        return;
    GIOCondition cond = G_IO_IN;
    if (l->state == LINK_CONNECTING)
        cond = G_IO_OUT;
    else if (l->state == LINK_HANDSHAKE)
        cond = mk_link_io_wants(l->io);
    g_mutex_lock(&l->lock);
    if (l->out->len)
        cond |= G_IO_OUT;
    l->want_out = (cond & G_IO_OUT) != 0;
    g_mutex_unlock(&l->lock);
    if (!l->watch) {
        l->watch = (LinkSource *)g_source_new(&link_source_funcs, sizeof(LinkSource));
        l->watch->link = l;
        l->watch->tag = g_source_add_unix_fd(&l->watch->source, l->fd, cond);
        g_source_attach(&l->watch->source, l->links->ctx);
    } else {
        g_source_modify_unix_fd(&l->watch->source, l->watch->tag, cond);
    }
}

/* Closes @l's socket; an outbound link is dialled again later, an
 * accepted one is forgotten. Cluster thread. */
static void link_close(Link *l, const char *why)
{
    if (why && l->state == LINK_UP)
        g_message("cluster: link %s %s %s: %s", l->outbound ? "to" : "from",
                  l->node ? l->node : "?", "down", why);
    if (l->watch) {
        g_source_destroy(&l->watch->source);
        g_source_unref(&l->watch->source);
        l->watch = NULL;
    }
    g_mutex_lock(&l->lock);
    g_clear_pointer(&l->io, mk_link_io_free);
    l->fd = -1;
    l->state = LINK_DOWN;
    /* What was queued is gone with the connection; mod_mam has it if the
     * sender archives (docs/clustering.md, Node loss). */
    g_byte_array_set_size(l->out, 0);
    g_mutex_unlock(&l->lock);
    g_byte_array_set_size(l->in, 0);
    g_clear_pointer(&l->xs, mk_xml_stream_free);
    l->retry_at = g_get_monotonic_time() + RETRY_US;
    /* A closed accepted link is freed by the next sweep (peer_seen), not
     * here: callers up the stack still hold it. */
}

static Link *link_new(MkLinks *ls, gboolean outbound)
{
    Link *l = g_new0(Link, 1);
    for (guint i = 0; i < G_N_ELEMENTS(l->flush); i++) {
        l->flush[i].d.func = link_flush_deferred;
        l->flush[i].link = l;
    }
    l->links = ls;
    l->outbound = outbound;
    l->fd = -1;
    l->in = g_byte_array_new();
    l->out = g_byte_array_new();
    g_mutex_init(&l->lock);
    return l;
}

static void link_free(gpointer p)
{
    Link *l = p;
    if (l->watch) {
        g_source_destroy(&l->watch->source);
        g_source_unref(&l->watch->source);
    }
    mk_link_io_free(l->io);
    if (l->xs)
        mk_xml_stream_free(l->xs);
    g_byte_array_unref(l->in);
    g_byte_array_unref(l->out);
    g_mutex_clear(&l->lock);
    g_free(l->node);
    g_free(l->host);
    g_free(l);
}

static void link_dial(Link *l)
{
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(l->host);
    if (!ia) {
        g_warning("cluster: %s announces %s, not an IP address", l->node, l->host);
        l->retry_at = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        return;
    }
    g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(ia, l->port);
    struct sockaddr_storage ss;
    gsize sslen = g_socket_address_get_native_size(sa);
    g_socket_address_to_native(sa, &ss, sizeof ss, NULL);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        l->retry_at = g_get_monotonic_time() + RETRY_US;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->started = g_get_monotonic_time();
    if (connect(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 && errno != EINPROGRESS) {
        close(fd);
        l->retry_at = g_get_monotonic_time() + RETRY_US;
        return;
    }
    g_mutex_lock(&l->lock);
    l->fd = fd;
    l->io = mk_link_io_new(l->links->auth, fd, TRUE, l->node);
    l->state = LINK_CONNECTING;
    g_mutex_unlock(&l->lock);
    link_update_watch(l);
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
    (void)cond;
    MkLinks *ls = data;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            break;
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Link *l = link_new(ls, FALSE);
        l->fd = c;
        l->io = mk_link_io_new(ls->auth, c, FALSE, NULL);
        l->state = LINK_HANDSHAKE;
        l->started = g_get_monotonic_time();
        g_ptr_array_add(ls->accepted, l);
        link_update_watch(l);
        link_handshake(l);
    }
    return G_SOURCE_CONTINUE;
}

MkLinks *mk_links_new(MkCluster *cl, GMainContext *ctx, const char *address, guint16 port,
                      const char *name, const char *secret, const char *certfile,
                      const char *keyfile, const char *cafile, GError **error)
{
    MkLinkAuth *auth = mk_link_auth_new("cluster", name, secret, certfile, keyfile, cafile, error);
    if (!auth)
        return NULL;
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(address);
    if (!ia) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE,
                    "[cluster] link_address \"%s\" is not an IP address", address);
        mk_link_auth_free(auth);
        return NULL;
    }
    g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(ia, port);
    struct sockaddr_storage ss;
    gsize sslen = g_socket_address_get_native_size(sa);
    g_socket_address_to_native(sa, &ss, sizeof ss, NULL);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                    "cluster link listener on %s:%u: %s", address, port, g_strerror(e));
        mk_link_auth_free(auth);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    MkLinks *ls = g_new0(MkLinks, 1);
    ls->cl = cl;
    ls->ctx = ctx;
    ls->auth = auth;
    ls->tls = mk_link_auth_tls(auth);
    ls->lfd = fd;
    ls->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    g_rw_lock_init(&ls->lock);
    ls->xml_shared = mk_xml_shared_new();
    ls->peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, link_free);
    ls->accepted = g_ptr_array_new_with_free_func(link_free);
    ls->refusals = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    ls->lsrc = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(ls->lsrc, (GSourceFunc)(void (*)(void))on_accept, ls, NULL);
    g_source_attach(ls->lsrc, ctx);
    return ls;
}

guint16 mk_links_port(MkLinks *ls)
{
    return ls->port;
}

void mk_links_peer_seen(MkLinks *ls, const char *node, const char *host, guint16 port)
{
    Link *l = g_hash_table_lookup(ls->peers, node);
    if (l && (g_strcmp0(l->host, host) != 0 || l->port != port)) {
        link_close(l, "the peer moved");
        g_free(l->host);
        l->host = g_strdup(host);
        l->port = port;
        l->retry_at = 0;
    }
    if (!l) {
        l = link_new(ls, TRUE);
        l->node = g_strdup(node);
        l->host = g_strdup(host);
        l->port = port;
        g_rw_lock_writer_lock(&ls->lock);
        g_hash_table_insert(ls->peers, g_strdup(node), l);
        g_rw_lock_writer_unlock(&ls->lock);
    }
    gint64 now = g_get_monotonic_time();
    if (l->fd >= 0 && l->state != LINK_UP && now - l->started > AUTH_TIMEOUT)
        link_close(l, "handshake timed out");
    if (l->fd < 0 && now >= l->retry_at)
        link_dial(l);
    /* Accepted links that never authenticated go too. */
    for (guint i = ls->accepted->len; i-- > 0;) {
        Link *a = g_ptr_array_index(ls->accepted, i);
        if (a->fd >= 0 && a->state != LINK_UP && now - a->started > AUTH_TIMEOUT)
            link_close(a, "handshake timed out");
        if (a->fd < 0)
            g_ptr_array_remove_index_fast(ls->accepted, i);
    }
}

void mk_links_peer_gone(MkLinks *ls, const char *node)
{
    /* Closed but kept until the node stops: a worker's deferred flush may
     * still point at it; a node that comes back reuses it. */
    Link *l = g_hash_table_lookup(ls->peers, node);
    if (l)
        link_close(l, "the peer left");
}

gboolean mk_links_peer_up(MkLinks *ls, const char *node)
{
    g_rw_lock_reader_lock(&ls->lock);
    Link *l = g_hash_table_lookup(ls->peers, node);
    gboolean up = FALSE;
    if (l) {
        g_mutex_lock(&l->lock);
        up = l->state == LINK_UP;
        g_mutex_unlock(&l->lock);
    }
    g_rw_lock_reader_unlock(&ls->lock);
    return up;
}

guint mk_links_count_up(MkLinks *ls)
{
    guint n = 0;
    GHashTableIter it;
    gpointer v;
    g_rw_lock_reader_lock(&ls->lock);
    g_hash_table_iter_init(&it, ls->peers);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Link *l = v;
        g_mutex_lock(&l->lock);
        n += l->state == LINK_UP;
        g_mutex_unlock(&l->lock);
    }
    g_rw_lock_reader_unlock(&ls->lock);
    return n;
}

typedef struct {
    MkLinks *ls;
    char *node;
} WantOut;

static void want_out_free(gpointer p)
{
    WantOut *w = p;
    g_free(w->node);
    g_free(w);
}

/* Cluster thread: a worker left bytes in a link's buffer. */
static gboolean want_out_run(gpointer p)
{
    WantOut *w = p;
    Link *l = g_hash_table_lookup(w->ls->peers, w->node);
    if (l)
        link_update_watch(l);
    return G_SOURCE_REMOVE;
}

/* Asks the cluster thread to watch @l for output. */
static void wake_writer(MkLinks *ls, const char *node)
{
    WantOut *w = g_new0(WantOut, 1);
    w->ls = ls;
    w->node = g_strdup(node);
    g_main_context_invoke_full(ls->ctx, G_PRIORITY_DEFAULT, want_out_run, w, want_out_free);
}

/* At the end of a worker's batch: what the batch queued on the link goes
 * out in one send (as c2s gathers a batch's writes to one client). */
static void link_flush_deferred(MkDeferred *d)
{
    Link *l = ((LinkFlush *)d)->link;
    gboolean wake = FALSE;
    g_mutex_lock(&l->lock);
    if (l->fd >= 0 && l->out->len && !l->want_out) {
        flush_locked(l);
        wake = l->out->len && !l->want_out;
        if (wake)
            l->want_out = TRUE;
    }
    g_mutex_unlock(&l->lock);
    if (wake)
        wake_writer(l->links, l->node);
}

/* What a frame's caller writes into a link's buffer, under its lock. */
typedef struct {
    guint8 type;
    guint n;
    const char *const *f; /* the fields, NUL-separated in the frame */
    const gsize *len;
} FrameSpec;

static void frame_append(GByteArray *out, const FrameSpec *fs)
{
    guint32 total = 1;
    for (guint i = 0; i < fs->n; i++)
        total += (guint32)fs->len[i] + (i ? 1 : 0);
    guint32 be = htonl(total);
    g_byte_array_append(out, (const guint8 *)&be, 4);
    g_byte_array_append(out, &fs->type, 1);
    for (guint i = 0; i < fs->n; i++) {
        if (i)
            g_byte_array_append(out, (const guint8 *)"", 1);
        g_byte_array_append(out, (const guint8 *)fs->f[i], (guint)fs->len[i]);
    }
}

/* Queues one frame on @node's link: gathered until the end of a worker's
 * batch, or straight to the socket. FALSE when the link is not up.
 * Any thread. */
static gboolean links_queue(MkLinks *ls, const char *node, const FrameSpec *fs, guint8 type,
                            const char *a, const char *b, const char *c)
{
    gboolean sent = FALSE, wake = FALSE;
    MkWorker *w = mk_worker_self();
    g_rw_lock_reader_lock(&ls->lock);
    Link *l = g_hash_table_lookup(ls->peers, node);
    if (l) {
        g_mutex_lock(&l->lock);
        if (l->state == LINK_UP && l->out->len < OUT_MAX) {
            gboolean was_empty = l->out->len == 0;
            if (fs)
                frame_append(l->out, fs);
            else
                mk_link_frame_append(l->out, type, a, b, c);
            sent = TRUE;
            guint wi = w ? mk_worker_index(w) : G_N_ELEMENTS(l->flush);
            if (was_empty && wi < G_N_ELEMENTS(l->flush) && mk_worker_batching(w)) {
                /* Gathered until the end of the worker's batch. */
                mk_worker_defer(w, &l->flush[wi].d);
            } else if (was_empty) {
                /* Straight to the socket when nothing waits: no hop
                 * through the cluster thread. */
                flush_locked(l);
                wake = l->out->len && !l->want_out;
            } else if (wi < G_N_ELEMENTS(l->flush) && mk_worker_batching(w)) {
                mk_worker_defer(w, &l->flush[wi].d);
            }
            if (wake)
                l->want_out = TRUE;
        }
        g_mutex_unlock(&l->lock);
    }
    g_rw_lock_reader_unlock(&ls->lock);
    if (wake)
        wake_writer(ls, node);
    return sent;
}

gboolean mk_links_send(MkLinks *ls, const char *node, guint8 type, const char *a, const char *b,
                       const char *c)
{
    return links_queue(ls, node, NULL, type, a, b, c);
}

/* See cluster.h. */
gboolean mk_links_send_wire(MkLinks *ls, const char *node, const char *target, const char *from,
                            const char *to, const char *xml, gsize xml_len)
{
    const char *f[] = {target, from ? from : "", to ? to : "", xml};
    gsize len[] = {strlen(f[0]), strlen(f[1]), strlen(f[2]), xml_len};
    FrameSpec fs = {MK_LINK_WIRE, 4, f, len};
    return links_queue(ls, node, &fs, 0, NULL, NULL, NULL);
}

void mk_links_free(MkLinks *ls)
{
    if (!ls)
        return;
    g_source_destroy(ls->lsrc);
    g_source_unref(ls->lsrc);
    close(ls->lfd);
    g_ptr_array_unref(ls->accepted);
    g_hash_table_destroy(ls->peers);
    g_hash_table_destroy(ls->refusals);
    mk_xml_shared_free(ls->xml_shared);
    g_rw_lock_clear(&ls->lock);
    mk_link_auth_free(ls->auth);
    g_free(ls);
}
