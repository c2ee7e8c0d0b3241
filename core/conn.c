/* Client connections: buffered non-blocking I/O and TLS on one worker.
 *
 * Memory matters more than anything here (idle sessions decide how many
 * users a node holds): reads go through the worker's scratch buffer and
 * straight to on_data, the write queue exists only while non-empty, and
 * EPOLLOUT is watched only while something waits to be written.
 *
 * Re-entrancy rule: callbacks run only from the loop (on_ready, posted
 * jobs), never from inside an mk_conn_* call; on_closed always goes
 * through the worker's mailbox. A reference count keeps the struct alive
 * while a callback or a posted job may still look at it. */
#include "conn.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read per wake-up before other sockets get their turn. */
#define READ_BUDGET (64 * 1024)
/* Plaintext per TLS record. */
#define TLS_CHUNK 16384
/* A write queue's first size: a stream start (header and features,
 * ~530 bytes before authentication) fits without a realloc. */
#define WQ_MIN 1024

typedef enum {
    ST_OPEN,
    ST_FLUSHING, /* mk_conn_close: sending what is queued */
    ST_LINGER,   /* shut down for writing, waiting for the peer's EOF */
    ST_CLOSED,   /* socket closed */
} ConnState;

typedef enum {
    TLS_OFF,
    TLS_PENDING, /* start_tls called, plaintext still queued */
    TLS_HANDSHAKE,
    TLS_ON,
} TlsState;

typedef struct {
    gsize off; /* first unsent byte */
    gsize len; /* end of data */
    gsize cap;
    char data[];
} WriteQueue;

/* Emptied queues of WQ_MIN bytes kept by each thread for its next
 * batch. A fan-out's batch fills one queue on each of many connections
 * and empties them all at its end; at 1 KiB each they are past malloc's
 * per-thread cache, and malloc and free of each cost ~600 instructions
 * per delivered copy (callgrind, docs/benchmarks.md "MUC fan-out: ..."). */
#define WQ_CACHE 256
typedef struct {
    guint n;
    WriteQueue *q[WQ_CACHE];
} WqCache;

static void wq_cache_free(gpointer p)
{
    WqCache *k = p;
    for (guint i = 0; i < k->n; i++)
        g_free(k->q[i]);
    g_free(k);
}

static GPrivate wq_cache = G_PRIVATE_INIT(wq_cache_free);

/* Returns: (transfer full) an empty queue of @cap bytes. Any thread. */
static WriteQueue *wq_new(gsize cap)
{
    WqCache *k = cap == WQ_MIN ? g_private_get(&wq_cache) : NULL;
    WriteQueue *q = k && k->n ? k->q[--k->n] : g_malloc(sizeof(WriteQueue) + cap);
    q->off = q->len = 0;
    q->cap = cap;
    return q;
}

/* Takes @q (nullable). Any thread: kept by the calling thread. */
static void wq_free(WriteQueue *q)
{
    if (!q)
        return;
    if (q->cap == WQ_MIN) {
        WqCache *k = g_private_get(&wq_cache);
        if (!k) {
            k = g_new0(WqCache, 1);
            g_private_set(&wq_cache, k);
        }
        if (k->n < WQ_CACHE) {
            k->q[k->n++] = q;
            return;
        }
    }
    g_free(q);
}

struct MkConn {
    MkWorker *w;
    MkPollWatch *watch;
    const MkConnCallbacks *cb;
    gpointer user_data;
    WriteQueue *wq;   /* NULL while empty */
    MkDeferred flush; /* queued: wq holds writes of this batch, sent at its end */
    gnutls_session_t tls;
    gnutls_certificate_credentials_t creds; /* until the handshake starts */
    char *peer;
    GSource *close_timer;
    gint64 last_read_us;
    gsize plain_left;   /* TLS_PENDING: queued bytes still to go in clear */
    gsize tls_send_len; /* size of a gnutls_record_send that returned AGAIN */
    int fd;
    guint32 events; /* registered with epoll */
    guint ref;
    guint8 state;
    guint8 tls_state;
    guint paused : 1;
    guint paused_in_epoll : 1; /* EPOLLIN dropped: data came while paused */
    guint freed : 1;
    guint loopback : 1;
    guint hs_want_write : 1;
    guint tls_send_pending : 1;
    guint bye_done : 1;
    guint read_job_posted : 1;
    guint tls_ready : 1; /* handshake completed */
};

static void conn_flush(MkConn *c);
static void flush_gathered(MkConn *c);
static void conn_abort(MkConn *c);

static MkConn *conn_ref(MkConn *c)
{
    c->ref++;
    return c;
}

static void conn_unref(MkConn *c)
{
    if (--c->ref > 0)
        return;
    if (c->tls)
        gnutls_deinit(c->tls);
    wq_free(c->wq);
    g_free(c->peer);
    g_free(c);
}

static void conn_unref_cb(gpointer data)
{
    conn_unref(data);
}

static gboolean has_output(MkConn *c)
{
    return c->wq != NULL || c->tls_send_pending;
}

static void update_events(MkConn *c)
{
    guint32 ev = 0;
    if (!c->watch)
        return;
    switch (c->state) {
    case ST_OPEN:
        if (c->tls_state == TLS_HANDSHAKE) {
            ev = c->hs_want_write ? EPOLLOUT : EPOLLIN;
            break;
        }
        /* A pause (a login step on the auth pool, a module's query) is
         * short and the peer usually waits for its answer, so EPOLLIN
         * stays registered until data actually comes meanwhile: that
         * saves two epoll_ctl calls per pause. */
        if ((!c->paused || !c->paused_in_epoll) && c->tls_state != TLS_PENDING)
            ev |= EPOLLIN;
        /* Writes of this batch go out at its end; only what the socket
         * refuses then needs EPOLLOUT. */
        if (has_output(c) && !c->flush.queued)
            ev |= EPOLLOUT;
        break;
    case ST_FLUSHING:
        if (has_output(c) || (c->tls_state == TLS_ON && c->tls && !c->bye_done))
            ev |= EPOLLOUT;
        break;
    case ST_LINGER:
        ev = EPOLLIN;
        break;
    default:
        break;
    }
    if (ev != c->events) {
        c->events = ev;
        mk_poll_watch_modify(c->watch, ev);
    }
}

static void closed_job(gpointer data)
{
    MkConn *c = data;
    if (!c->freed && c->cb->on_closed)
        c->cb->on_closed(c->user_data);
    conn_unref(c);
}

/* Closes the socket now. @notify: on_closed follows from the mailbox. */
static void conn_shut(MkConn *c, gboolean notify)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    if (c->flush.queued)
        mk_worker_undefer(c->w, &c->flush);
    g_clear_pointer(&c->watch, mk_poll_watch_remove);
    if (c->close_timer) {
        g_source_destroy(c->close_timer);
        g_clear_pointer(&c->close_timer, g_source_unref);
    }
    close(c->fd);
    c->fd = -1;
    g_clear_pointer(&c->wq, wq_free);
    c->tls_send_pending = FALSE;
    c->creds = NULL;
    /* The TLS session stays until the conn is freed, for
     * mk_conn_channel_binding(); its buffers are small by now. */
    if (notify && !c->freed)
        mk_worker_post(c->w, closed_job, conn_ref(c), conn_unref_cb);
}

/* Drops the connection (error, EOF, timeout); on_closed follows. */
static void conn_abort(MkConn *c)
{
    conn_shut(c, TRUE);
}

static void read_job(gpointer data);

static void post_read_job(MkConn *c)
{
    if (c->read_job_posted)
        return;
    c->read_job_posted = TRUE;
    mk_worker_post(c->w, read_job, conn_ref(c), conn_unref_cb);
}

static gboolean can_deliver(MkConn *c)
{
    return !c->freed && c->state == ST_OPEN && !c->paused &&
           (c->tls_state == TLS_OFF || c->tls_state == TLS_ON);
}

/* Reads and delivers until EAGAIN, a state change by on_data, or the
 * budget is spent. Loop context only. */
static void conn_read(MkConn *c)
{
    char *buf = mk_worker_scratch(c->w);
    gsize budget = READ_BUDGET;
    guint spins = 0;

    while (budget > 0 && can_deliver(c)) {
        gssize n;
        if (c->tls_state == TLS_ON) {
            n = gnutls_record_recv(c->tls, buf, MK_WORKER_SCRATCH_SIZE);
            if (n == GNUTLS_E_AGAIN)
                return;
            if (n == GNUTLS_E_PREMATURE_TERMINATION)
                n = 0; /* EOF without close_notify: common, harmless for us */
            if (n < 0) {
                /* Interrupted, warning alerts, a renegotiation request
                 * (ignored: we never renegotiate) are not fatal. */
                if (!gnutls_error_is_fatal((int)n) && ++spins < 64)
                    continue;
                g_debug("%s: TLS receive: %s", c->peer, gnutls_strerror((int)n));
                conn_abort(c);
                return;
            }
        } else {
            n = recv(c->fd, buf, MK_WORKER_SCRATCH_SIZE, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    continue;
                g_debug("%s: receive: %s", c->peer, g_strerror(errno));
                conn_abort(c);
                return;
            }
        }
        if (n == 0) {
            conn_abort(c); /* EOF (or TLS close_notify) */
            return;
        }
        c->last_read_us = g_get_monotonic_time();
        budget -= MIN(budget, (gsize)n);
        c->cb->on_data(c->user_data, buf, (gsize)n);
        /* The replies to what was just read go out now, in one send(),
         * before the next read: a peer that answers quickly is then read
         * in this same wake-up. Writes to other sockets wait for the end
         * of the batch. */
        flush_gathered(c);
    }
    /* Out of budget: the kernel's bytes wake us again (level-triggered),
     * but records GnuTLS holds already would not. */
    if (can_deliver(c) && c->tls_state == TLS_ON && gnutls_record_check_pending(c->tls) > 0)
        post_read_job(c);
}

static void read_job(gpointer data)
{
    MkConn *c = data;
    c->read_job_posted = FALSE;
    conn_read(c);
    conn_unref(c);
}

/* TLS 1.2 and 1.3 only, our cipher order first. */
#define SERVER_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

static gnutls_priority_t server_priorities(void)
{
    /* Immutable once made; shared by every session on every worker. */
    static gsize once;
    static gnutls_priority_t prio;
    if (g_once_init_enter(&once)) {
        int ret = gnutls_priority_init(&prio, SERVER_PRIORITIES, NULL);
        if (ret < 0) {
            g_warning("TLS priorities %s: %s", SERVER_PRIORITIES, gnutls_strerror(ret));
            prio = NULL;
        }
        g_once_init_leave(&once, 1);
    }
    return prio;
}

/* Creates the session; the handshake itself runs from the loop (the
 * ClientHello makes the socket readable), so no callback happens here. */
static void begin_handshake(MkConn *c)
{
    gnutls_priority_t prio = server_priorities();
    int ret = gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (ret >= 0)
        ret = prio ? gnutls_priority_set(c->tls, prio) : gnutls_set_default_priority(c->tls);
    if (ret >= 0)
        ret = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->creds);
    c->creds = NULL;
    c->tls_state = TLS_HANDSHAKE;
    c->hs_want_write = FALSE;
    if (ret < 0) {
        g_warning("%s: TLS session setup: %s", c->peer, gnutls_strerror(ret));
        /* Reported from the loop as a failed handshake. */
        c->hs_want_write = TRUE;
        if (c->tls) {
            gnutls_deinit(c->tls);
            c->tls = NULL;
        }
        return;
    }
    gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(c->tls, c->fd);
}

static void conn_handshake(MkConn *c)
{
    int ret = GNUTLS_E_INTERNAL_ERROR;
    if (c->tls) {
        do {
            ret = gnutls_handshake(c->tls);
        } while (ret < 0 && ret != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(ret));
    }
    if (ret == GNUTLS_E_AGAIN) {
        c->hs_want_write = gnutls_record_get_direction(c->tls) == 1;
        update_events(c);
        return;
    }
    if (ret < 0) {
        g_debug("%s: TLS handshake: %s", c->peer, gnutls_strerror(ret));
        c->tls_state = TLS_ON; /* is_tls stays TRUE; no session to use */
        if (c->cb->on_tls_done)
            c->cb->on_tls_done(c->user_data, FALSE);
        conn_abort(c);
        return;
    }
    c->tls_state = TLS_ON;
    c->tls_ready = TRUE;
    update_events(c);
    if (c->cb->on_tls_done)
        c->cb->on_tls_done(c->user_data, TRUE);
    if (c->freed || c->state == ST_CLOSED)
        return;
    /* Bytes written during the handshake, then bytes that came with the
     * client's Finished (GnuTLS may hold them already). */
    conn_flush(c);
    conn_read(c);
}

static void finish_close(MkConn *c)
{
    if (c->tls_state == TLS_ON && c->tls && !c->bye_done) {
        int ret = gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
            return; /* retried when writable */
        c->bye_done = TRUE;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = ST_LINGER;
}

/* Writes what the socket takes. Never calls back: errors are reported
 * through the mailbox. */
static void conn_flush(MkConn *c)
{
    while (c->wq && c->state != ST_CLOSED) {
        WriteQueue *q = c->wq;
        gsize avail = q->len - q->off;
        if (avail == 0) {
            g_clear_pointer(&c->wq, wq_free);
            break;
        }
        if (c->tls_state == TLS_HANDSHAKE)
            break;
        if (c->tls_state == TLS_ON) {
            if (!c->tls)
                break;
            gsize chunk = c->tls_send_pending ? c->tls_send_len : MIN(avail, TLS_CHUNK);
            gssize n = gnutls_record_send(c->tls, q->data + q->off, chunk);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                /* GnuTLS keeps the encrypted record; the retry must name
                 * the same length. */
                c->tls_send_pending = TRUE;
                c->tls_send_len = chunk;
                break;
            }
            c->tls_send_pending = FALSE;
            if (n < 0) {
                g_debug("%s: TLS send: %s", c->peer, gnutls_strerror((int)n));
                conn_abort(c);
                return;
            }
            q->off += (gsize)n;
        } else {
            gsize want = c->tls_state == TLS_PENDING ? c->plain_left : avail;
            gssize n = send(c->fd, q->data + q->off, want, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                g_debug("%s: send: %s", c->peer, g_strerror(errno));
                conn_abort(c);
                return;
            }
            q->off += (gsize)n;
            if (c->tls_state == TLS_PENDING) {
                c->plain_left -= (gsize)n;
                if (c->plain_left == 0)
                    begin_handshake(c);
            }
        }
        if (q->off == q->len)
            g_clear_pointer(&c->wq, wq_free);
    }
    if (c->state == ST_CLOSED)
        return;
    if (c->tls_state == TLS_PENDING && c->plain_left == 0)
        begin_handshake(c);
    if (c->state == ST_FLUSHING && !has_output(c))
        finish_close(c);
    update_events(c);
}

static void flush_deferred(MkDeferred *d)
{
    conn_flush((MkConn *)((char *)d - G_STRUCT_OFFSET(MkConn, flush)));
}

/* Sends now what this batch gathered for @c instead of at the batch's
 * end. */
static void flush_gathered(MkConn *c)
{
    if (c->flush.queued) {
        mk_worker_undefer(c->w, &c->flush);
        conn_flush(c);
    }
}

static void linger_read(MkConn *c)
{
    char *buf = mk_worker_scratch(c->w);
    for (guint i = 0; i < 16; i++) {
        gssize n = recv(c->fd, buf, MK_WORKER_SCRATCH_SIZE, 0);
        if (n > 0)
            continue; /* discarded: we said goodbye */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_abort(c); /* EOF or error: done */
        return;
    }
}

static void on_ready(gpointer user_data, guint32 events)
{
    MkConn *c = conn_ref(user_data);

    if (events & EPOLLERR) {
        conn_abort(c);
        goto out;
    }
    if (events & EPOLLOUT) {
        if (c->tls_state == TLS_HANDSHAKE)
            conn_handshake(c);
        else
            conn_flush(c);
    }
    if (c->freed || c->state == ST_CLOSED || !(events & (EPOLLIN | EPOLLHUP)))
        goto out;
    if (c->state == ST_LINGER)
        linger_read(c);
    else if (c->tls_state == TLS_HANDSHAKE)
        conn_handshake(c);
    else if (can_deliver(c))
        conn_read(c);
    else if (events & EPOLLHUP)
        conn_abort(c); /* gone while we were not reading */
    else if (c->paused && c->state == ST_OPEN && !c->paused_in_epoll) {
        c->paused_in_epoll = TRUE; /* stop the level-triggered wake-ups */
        update_events(c);
    }
out:
    conn_unref(c);
}

static gboolean on_close_timeout(gpointer user_data)
{
    MkConn *c = user_data;
    g_clear_pointer(&c->close_timer, g_source_unref);
    g_debug("%s: close timed out", c->peer);
    conn_abort(c);
    return G_SOURCE_REMOVE;
}

/* Appends the decimal digits of @v at @p; returns the end. */
static char *put_uint(char *p, guint v)
{
    char digits[10];
    guint n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = digits[--n];
    return p;
}

/* "a.b.c.d:port", as inet_ntop and "%s:%u" would write it; without
 * them, since inet_ntop formats IPv4 with sprintf: ~3k instructions of
 * each accepted connection (callgrind). Returns: (transfer full). */
static char *format_ipv4(const guint8 addr[4], guint port)
{
    char buf[sizeof "255.255.255.255:65535"];
    char *p = buf;
    for (guint i = 0; i < 4; i++) {
        p = put_uint(p, addr[i]);
        *p++ = i < 3 ? '.' : ':';
    }
    p = put_uint(p, port);
    *p = '\0';
    return g_strdup(buf);
}

/* @peer: the address accept() returned, or NULL to ask the socket (a
 * system call per connection that listeners spare us). */
static char *describe_peer(int fd, const struct sockaddr_storage *peer, gboolean *loopback)
{
    struct sockaddr_storage own;
    char host[INET6_ADDRSTRLEN];

    *loopback = FALSE;
    if (!peer) {
        socklen_t len = sizeof own;
        if (getpeername(fd, (struct sockaddr *)&own, &len) < 0)
            return g_strdup("unknown");
        peer = &own;
    }
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        *loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
        return format_ipv4((const guint8 *)&sin->sin_addr, ntohs(sin->sin_port));
    }
    if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            const guint8 *v4 = sin6->sin6_addr.s6_addr + 12;
            *loopback = v4[0] == 127;
            return format_ipv4(v4, ntohs(sin6->sin6_port));
        }
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        *loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
        return g_strdup_printf("[%s]:%u", host, ntohs(sin6->sin6_port));
    }
    if (peer->ss_family == AF_UNIX) {
        *loopback = TRUE;
        return g_strdup("unix");
    }
    return g_strdup("unknown");
}

/* See conn.h. @w's thread. Returns: (transfer full); takes @fd. */
MkConn *mk_conn_new(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                    const MkConnCallbacks *cb, gpointer user_data)
{
    g_return_val_if_fail(w && fd >= 0 && cb && cb->on_data, NULL);
    MkConn *c = g_new0(MkConn, 1);
    gboolean loopback;
    c->ref = 1;
    c->w = w;
    c->fd = fd;
    c->cb = cb;
    c->user_data = user_data;
    c->peer = describe_peer(fd, peer, &loopback);
    c->loopback = loopback;
    c->last_read_us = g_get_monotonic_time();
    c->flush.func = flush_deferred;
    c->state = ST_OPEN;
    c->events = EPOLLIN;
    c->watch = mk_poll_watch_add(w, fd, c->events, on_ready, c);
    if (!c->watch) {
        /* Reported from the loop like any other socket failure. */
        conn_abort(c);
    }
    return c;
}

/* See conn.h. The conn's worker. (nullable) */
void mk_conn_free(MkConn *c)
{
    if (!c)
        return;
    g_return_if_fail(!c->freed);
    /* What this batch wrote would have gone out at once without the
     * batching: send it now, as far as the socket takes it. */
    flush_gathered(c);
    conn_shut(c, FALSE);
    c->freed = TRUE;
    conn_unref(c);
}

static void queue_append(MkConn *c, const char *data, gsize len)
{
    WriteQueue *q = c->wq;
    if (!q) {
        q = wq_new(MAX(WQ_MIN, len));
        c->wq = q;
    } else if (q->cap - q->len < len) {
        gsize used = q->len - q->off;
        if (q->off > 0) {
            memmove(q->data, q->data + q->off, used);
            q->off = 0;
            q->len = used;
        }
        if (q->cap - q->len < len) {
            gsize cap = MAX(q->cap * 2, used + len);
            q = g_realloc(q, sizeof(WriteQueue) + cap);
            q->cap = cap;
            c->wq = q;
        }
    }
    memcpy(q->data + q->len, data, len);
    q->len += len;
}

/* See conn.h. The conn's worker. */
void mk_conn_write(MkConn *c, const char *data, gsize len)
{
    g_return_if_fail(c && !c->freed);
    if (c->state != ST_OPEN || len == 0)
        return;
    /* Inside a batch of events (the stanzas of one read, the jobs of one
     * mailbox drain), replies and deliveries to a socket are gathered and
     * sent once at the batch's end: a login's stream header and features,
     * or several messages to one recipient, cost one send() (and with TLS
     * one record) instead of one each. */
    gboolean defer = c->w && mk_worker_batching(c->w) &&
                     (c->tls_state == TLS_OFF || (c->tls_state == TLS_ON && c->tls_ready));
    /* Outside a batch (timers, idle sources), plain and nothing queued:
     * straight from the caller's buffer, and no queue ever exists. */
    if (!defer && !c->wq && c->tls_state == TLS_OFF) {
        gssize n;
        do {
            n = send(c->fd, data, len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            g_debug("%s: send: %s", c->peer, g_strerror(errno));
            conn_abort(c);
            return;
        }
        if (n > 0) {
            data += n;
            len -= (gsize)n;
        }
        if (len == 0)
            return;
    }
    /* The same with TLS: GnuTLS encrypts from the caller's buffer. */
    if (!defer && !c->wq && c->tls_state == TLS_ON && c->tls && c->tls_ready &&
        !c->tls_send_pending) {
        while (len > 0) {
            gsize chunk = MIN(len, TLS_CHUNK);
            gssize n = gnutls_record_send(c->tls, data, chunk);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                /* GnuTLS holds this record; the retry from the queue
                 * names the same length, as it requires. */
                c->tls_send_pending = TRUE;
                c->tls_send_len = chunk;
                break;
            }
            if (n < 0) {
                g_debug("%s: TLS send: %s", c->peer, gnutls_strerror((int)n));
                conn_abort(c);
                return;
            }
            data += n;
            len -= (gsize)n;
        }
        if (len == 0)
            return;
    }
    gsize queued = c->wq ? c->wq->len - c->wq->off : 0;
    if (queued + len > MK_CONN_MAX_QUEUE) {
        g_message("%s: peer does not read (%" G_GSIZE_FORMAT " bytes queued), dropping it", c->peer,
                  queued);
        conn_abort(c);
        return;
    }
    queue_append(c, data, len);
    if (defer)
        mk_worker_defer(c->w, &c->flush);
    else
        conn_flush(c);
}

/* See conn.h. The conn's worker. */
void mk_conn_start_tls(MkConn *c, gnutls_certificate_credentials_t creds)
{
    g_return_if_fail(c && !c->freed && creds);
    if (c->state != ST_OPEN || c->tls_state != TLS_OFF)
        return;
    if (c->flush.queued)
        mk_worker_undefer(c->w, &c->flush); /* the clear text goes first, below */
    c->creds = creds;
    c->tls_state = TLS_PENDING;
    c->plain_left = c->wq ? c->wq->len - c->wq->off : 0;
    if (c->plain_left == 0)
        begin_handshake(c);
    else
        conn_flush(c);
    update_events(c);
}

/* See conn.h. The conn's worker. */
gboolean mk_conn_is_tls(MkConn *c)
{
    return c->tls_state != TLS_OFF;
}

static gboolean tls_established(MkConn *c)
{
    return c->tls_state == TLS_ON && c->tls != NULL && c->tls_ready;
}

/* See conn.h. The conn's worker. Returns: (transfer full) (nullable) */
GBytes *mk_conn_channel_binding(MkConn *c, const char *type)
{
    g_return_val_if_fail(c && type, NULL);
    gnutls_channel_binding_t cbt;
    if (!tls_established(c))
        return NULL;
    if (g_str_equal(type, "tls-unique")) {
        if (gnutls_protocol_get_version(c->tls) == GNUTLS_TLS1_3)
            return NULL; /* undefined for TLS 1.3 (RFC 8446 C.5) */
        cbt = GNUTLS_CB_TLS_UNIQUE;
    }
#if GNUTLS_VERSION_NUMBER >= 0x030702
    else if (g_str_equal(type, "tls-exporter"))
        cbt = GNUTLS_CB_TLS_EXPORTER;
    else if (g_str_equal(type, "tls-server-end-point"))
        cbt = GNUTLS_CB_TLS_SERVER_END_POINT;
#endif
    else
        return NULL;

    gnutls_datum_t d = {NULL, 0};
    int ret = gnutls_session_channel_binding(c->tls, cbt, &d);
    if (ret < 0) {
        g_debug("%s: channel binding %s: %s", c->peer, type, gnutls_strerror(ret));
        return NULL;
    }
    GBytes *b = g_bytes_new(d.data, d.size);
    gnutls_free(d.data);
    return b;
}

/* See conn.h. The conn's worker. Returns: (transfer none) (nullable) */
const char *mk_conn_channel_binding_type(MkConn *c)
{
    if (!tls_established(c))
        return NULL;
    switch (gnutls_protocol_get_version(c->tls)) {
    case GNUTLS_TLS1_3:
#if GNUTLS_VERSION_NUMBER >= 0x030702
        return "tls-exporter";
#else
        return NULL;
#endif
    case GNUTLS_TLS1_2:
        return "tls-unique";
    default:
        return NULL;
    }
}

/* See conn.h. The conn's worker. */
void mk_conn_close(MkConn *c)
{
    g_return_if_fail(c && !c->freed);
    if (c->state != ST_OPEN)
        return;
    if (c->flush.queued)
        mk_worker_undefer(c->w, &c->flush); /* flushed below */
    if (c->tls_state == TLS_HANDSHAKE) {
        conn_abort(c); /* nothing can be said on a half-made session */
        return;
    }
    if (c->tls_state == TLS_PENDING) {
        /* Never mind TLS: say what was queued before it in clear. */
        c->tls_state = TLS_OFF;
        c->creds = NULL;
        if (c->wq)
            c->wq->len = c->wq->off + c->plain_left;
    }
    c->state = ST_FLUSHING;
    c->close_timer = g_timeout_source_new(MK_CONN_CLOSE_TIMEOUT_MS);
    g_source_set_callback(c->close_timer, on_close_timeout, c, NULL);
    g_source_attach(c->close_timer, mk_worker_context(c->w));
    conn_flush(c);
}

/* See conn.h. The conn's worker. */
void mk_conn_pause(MkConn *c, gboolean paused)
{
    g_return_if_fail(c && !c->freed);
    if (c->paused == !!paused)
        return;
    c->paused = !!paused;
    if (!paused)
        c->paused_in_epoll = FALSE;
    if (c->state != ST_OPEN)
        return;
    update_events(c);
    /* Records GnuTLS already decrypted would not make the socket
     * readable again; deliver them from the loop, not from here. */
    if (!paused && c->tls_state == TLS_ON && c->tls && gnutls_record_check_pending(c->tls) > 0)
        post_read_job(c);
}

/* See conn.h. (transfer none) */
const char *mk_conn_peer(MkConn *c)
{
    return c->peer;
}

gboolean mk_conn_peer_is_loopback(MkConn *c)
{
    return c->loopback;
}

gint64 mk_conn_idle_seconds(MkConn *c)
{
    return (g_get_monotonic_time() - c->last_read_us) / G_USEC_PER_SEC;
}

/* See conn.h. The conn's worker. */
gboolean mk_conn_detach(MkConn *c)
{
    g_return_val_if_fail(c && !c->freed, FALSE);
    /* Send this batch's writes from here: the batch's end belongs to this
     * worker, the conn to another one soon. */
    flush_gathered(c);
    /* A posted read job or close timer would run on this worker while the
     * conn lives on another: the non-atomic refcount forbids that. */
    if (c->state != ST_OPEN || c->read_job_posted || c->close_timer ||
        c->tls_state == TLS_HANDSHAKE || c->tls_state == TLS_PENDING)
        return FALSE;
    g_clear_pointer(&c->watch, mk_poll_watch_remove);
    c->events = 0;
    c->w = NULL;
    return TRUE;
}

/* See conn.h. @w's thread. */
void mk_conn_attach(MkConn *c, MkWorker *w, const MkConnCallbacks *cb, gpointer user_data)
{
    g_return_if_fail(c && !c->freed && !c->watch && w && cb);
    c->w = w;
    c->cb = cb;
    c->user_data = user_data;
    c->paused = FALSE;
    c->paused_in_epoll = FALSE;
    c->events = 0;
    c->watch = mk_poll_watch_add(w, c->fd, 0, on_ready, c);
    if (!c->watch) {
        conn_abort(c); /* on_closed follows from the loop */
        return;
    }
    update_events(c);
    if (c->tls_state == TLS_ON && c->tls && gnutls_record_check_pending(c->tls) > 0)
        post_read_job(c);
}

/* See conn.h. Any thread. (transfer none) */
MkWorker *mk_conn_worker(MkConn *c)
{
    return c->w;
}
