/* Backend "rabbit": events as JSON to RabbitMQ topic exchanges through
 * librabbitmq, on a thread of its own (the library blocks).
 *
 * Presence, login and logout go to rabbit_presence_exchange, 1:1 chat to
 * rabbit_chat_exchange, group chat to rabbit_groupchat_exchange, push
 * (notifications to a virtual pubsub host) to rabbit_push_exchange; the
 * routing key is "USER.EVENT" (alice@example.com.chat_sent). Publisher
 * confirms, up to RABBIT_BATCH events in flight: an event is done when
 * the broker acknowledged it; a broken connection puts what was not
 * acknowledged back at the head and the thread reconnects with back-off
 * (at least once: an event whose ack was lost in a broker failure is
 * sent again). */
#include "pusher.h"
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef struct {
    PusherBackend base;
    MkModule *mod;
    char *host, *vhost, *user, *password;
    int port;
    char *exchanges[4]; /* presence, chat, groupchat, push */
    GThread *thread;
    gint stopping;
    amqp_connection_state_t conn; /* the thread's */
    guint64 next_tag;             /* the next publish's delivery tag */
    PusherBuf out;                /* the thread's: a batch's frames */
    PusherBuf pending;            /* the thread's: records taken, not yet acked */
    gsize pending_off;            /* the first unacked record in @pending */
    guint pending_n;              /* records from @pending_off */
    MkCounter *sent, *connects, *failures, *unsendable;
} Rabbit;

static const char *exchange_for(Rabbit *r, PusherKind k)
{
    switch (k) {
    case PUSHER_CHAT_SENT:
    case PUSHER_CHAT_RECEIVED:
        return r->exchanges[1];
    case PUSHER_GROUPCHAT_SENT:
    case PUSHER_GROUPCHAT_RECEIVED:
        return r->exchanges[2];
    case PUSHER_PUSH:
        return r->exchanges[3];
    default:
        return r->exchanges[0];
    }
}

static gboolean reply_ok(amqp_rpc_reply_t rep, const char *what, char **why)
{
    if (rep.reply_type == AMQP_RESPONSE_NORMAL)
        return TRUE;
    if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        *why = g_strdup_printf("%s: %s", what, amqp_error_string2(rep.library_error));
    else
        *why = g_strdup_printf("%s: refused by the broker", what);
    return FALSE;
}

static void disconnect(Rabbit *r)
{
    if (!r->conn)
        return;
    amqp_connection_close(r->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(r->conn);
    r->conn = NULL;
}

/* The thread: connect, log in, open a channel in confirm mode, declare
 * the exchanges. */
static gboolean connect_broker(Rabbit *r, char **why)
{
    r->conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(r->conn);
    struct timeval tv = {.tv_sec = 5};
    if (!sock || amqp_socket_open_noblock(sock, r->host, r->port, &tv) != AMQP_STATUS_OK) {
        *why = g_strdup_printf("cannot connect to %s:%d", r->host, r->port);
        goto fail;
    }
    amqp_set_rpc_timeout(r->conn, &tv);
    if (!reply_ok(amqp_login(r->conn, r->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, r->user,
                             r->password),
                  "login", why))
        goto fail;
    amqp_channel_open(r->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(r->conn), "channel", why))
        goto fail;
    amqp_confirm_select(r->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(r->conn), "confirm mode", why))
        goto fail;
    for (int i = 0; i < 4; i++) {
        amqp_exchange_declare(r->conn, 1, amqp_cstring_bytes(r->exchanges[i]),
                              amqp_cstring_bytes("topic"), 0, 1 /* durable */, 0, 0,
                              amqp_empty_table);
        if (!reply_ok(amqp_get_rpc_reply(r->conn), "exchange.declare", why))
            goto fail;
    }
    return TRUE;
fail:
    amqp_destroy_connection(r->conn);
    r->conn = NULL;
    return FALSE;
}

/* Events published before waiting for the broker's acks, and how long a
 * small batch waits for more. */
#define RABBIT_BATCH     256
#define RABBIT_LINGER_US 20000

/* Frame header (type, channel, size) and end octet: AMQP 0-9-1 section 4.2.3. */
#define FRAME_HEAD 7
#define FRAME_END  1

static void put16(guint8 *p, guint v)
{
    p[0] = (guint8)(v >> 8);
    p[1] = (guint8)v;
}

static void put32(guint8 *p, guint32 v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (guint8)(v >> (24 - 8 * i));
}

/* Opens a frame of @type on channel 1 at the end of @buf; returns its
 * offset for close_frame(). */
static gsize open_frame(PusherBuf *buf, guint8 type)
{
    gsize at = buf->len;
    guint8 head[FRAME_HEAD] = {type, 0, 1};
    pusher_buf_append(buf, head, sizeof head);
    return at;
}

static void close_frame(PusherBuf *buf, gsize at)
{
    put32(buf->data + at + 3, (guint32)(buf->len - at - FRAME_HEAD));
    guint8 end = AMQP_FRAME_END;
    pusher_buf_append(buf, &end, 1);
}

/* Appends @len bytes that librabbitmq's encoder @enc writes (it returns
 * their length, or < 0 when @room was too small). */
static gboolean append_encoded(PusherBuf *buf, gsize room,
                               int (*enc)(gpointer what, amqp_bytes_t out, gpointer data),
                               gpointer what, gpointer data)
{
    pusher_buf_reserve(buf, room);
    int n = enc(what, (amqp_bytes_t){room, buf->data + buf->len}, data);
    if (n < 0)
        return FALSE;
    buf->len += (gsize)n;
    return TRUE;
}

static int enc_method(gpointer what, amqp_bytes_t out, gpointer data)
{
    return amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, what, out);
}

static int enc_props(gpointer what, amqp_bytes_t out, gpointer data)
{
    return amqp_encode_properties(AMQP_BASIC_CLASS, what, out);
}

/* Appends the three (or more) frames of one basic.publish of @ev, as
 * amqp_basic_publish() sends them, encoded by librabbitmq. */
static gboolean encode_publish(Rabbit *r, PusherBuf *buf, const PusherRecord *ev,
                               amqp_basic_properties_t *props)
{
    /* "USER.EVENT", at most 255 octets (checked by the caller). */
    char key[256];
    const char *kind = pusher_kind_name(ev->kind);
    gsize klen = strlen(kind);
    memcpy(key, ev->user, ev->user_len);
    key[ev->user_len] = '.';
    memcpy(key + ev->user_len + 1, kind, klen);
    amqp_basic_publish_t m = {
        .exchange = amqp_cstring_bytes(exchange_for(r, ev->kind)),
        .routing_key = {ev->user_len + 1 + klen, key},
    };
    guint8 id[4];
    put32(id, AMQP_BASIC_PUBLISH_METHOD);
    gsize f = open_frame(buf, AMQP_FRAME_METHOD);
    pusher_buf_append(buf, id, sizeof id);
    if (!append_encoded(buf, 16 + m.exchange.len + m.routing_key.len, enc_method, &m, NULL))
        return FALSE;
    close_frame(buf, f);

    guint8 head[12] = {0};
    put16(head, AMQP_BASIC_CLASS);
    put32(head + 4, (guint32)((guint64)ev->json_len >> 32));
    put32(head + 8, (guint32)ev->json_len);
    f = open_frame(buf, AMQP_FRAME_HEADER);
    pusher_buf_append(buf, head, sizeof head);
    if (!append_encoded(buf, 64 + props->content_type.len, enc_props, props, NULL))
        return FALSE;
    close_frame(buf, f);

    /* The body in frames of at most frame_max octets, head and end included. */
    gsize max = (gsize)amqp_get_frame_max(r->conn) - FRAME_HEAD - FRAME_END;
    for (gsize off = 0; off < ev->json_len; off += max) {
        f = open_frame(buf, AMQP_FRAME_BODY);
        pusher_buf_append(buf, ev->json + off, MIN(max, ev->json_len - off));
        close_frame(buf, f);
    }
    return TRUE;
}

/* Writes all of @buf to the broker's socket (librabbitmq's is
 * non-blocking). */
static gboolean write_all(int fd, const guint8 *p, gsize len, char **why)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (gsize)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 5000) > 0)
                continue;
            *why = g_strdup("publish: the broker does not read");
            return FALSE;
        }
        *why = g_strdup_printf("publish: %s", n < 0 ? g_strerror(errno) : "connection closed");
        return FALSE;
    }
    return TRUE;
}

/* The routing key is an AMQP short string: an event whose key is longer
 * than 255 octets (a bare JID near its 3,071-octet limit) cannot be
 * published; it is dropped, counted and logged, not retried forever. */
static gboolean sendable(Rabbit *r, const PusherRecord *ev)
{
    if (ev->user_len + 1 + strlen(pusher_kind_name(ev->kind)) <= 255)
        return TRUE;
    mk_counter_add(r->unsendable, 1);
    g_warning("mod_event_pusher: rabbit: the routing key of a %s event of %.40s... is longer"
              " than 255 octets; dropped",
              pusher_kind_name(ev->kind), ev->user);
    return FALSE;
}

/* The thread: publishes up to RABBIT_BATCH records of @pending and waits
 * for the broker's acks; the acked ones (and the unsendable ones before
 * them) leave @pending. amqp_basic_publish() writes each frame with a
 * send() of its own, three system calls per event; the batch's frames are
 * encoded by librabbitmq's encoders into one buffer and written at once. */
static gboolean publish(Rabbit *r, char **why)
{
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .delivery_mode = 2, /* persistent: kept by a durable queue across a restart */
    };
    /* ends[i]: where the pending records end once the i-th publish is acked. */
    gsize ends[RABBIT_BATCH];
    guint n = 0, seen = 0;
    gsize off = r->pending_off;
    r->out.len = 0;
    while (n < RABBIT_BATCH && seen < r->pending_n) {
        PusherRecord ev;
        off += pusher_record_read(r->pending.data + off, &ev);
        seen++;
        if (!sendable(r, &ev)) {
            if (!n) { /* nothing before it waits for an ack */
                r->pending_off = off;
                r->pending_n--;
                seen--;
            }
            continue;
        }
        if (!encode_publish(r, &r->out, &ev, &props)) {
            *why = g_strdup("publish: cannot encode an event");
            return FALSE;
        }
        ends[n] = off;
        n++;
    }
    if (!n) {
        if (!r->pending_n) {
            r->pending.len = 0;
            r->pending_off = 0;
        }
        return TRUE;
    }
    if (!write_all(amqp_get_sockfd(r->conn), r->out.data, r->out.len, why))
        return FALSE;
    guint64 first = r->next_tag;
    r->next_tag += n;
    guint64 last = r->next_tag - 1;
    guint acked = 0;
    struct timeval tv = {.tv_sec = 5};
    gboolean ok = TRUE;
    while (first + acked <= last) {
        amqp_frame_t frame;
        int st = amqp_simple_wait_frame_noblock(r->conn, &frame, &tv);
        if (st != AMQP_STATUS_OK) {
            *why = g_strdup_printf("waiting for acks: %s", amqp_error_string2(st));
            ok = FALSE;
            break;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            /* Acks come in order on a channel: the tag acks up to it. */
            const amqp_basic_ack_t *ack = frame.payload.method.decoded;
            if (ack->delivery_tag >= first)
                acked = (guint)MIN(ack->delivery_tag - first + 1, n);
        } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            *why = g_strdup("the broker refused an event (nack)");
            ok = FALSE;
            break;
        } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            *why = g_strdup("the broker closed the channel");
            ok = FALSE;
            break;
        }
    }
    mk_counter_add(r->sent, acked);
    if (acked) {
        /* Count the records up to the last acked one (unsendable ones
         * among them are gone too). */
        gsize end = acked == n ? off : ends[acked - 1];
        guint gone = 0;
        for (gsize o = r->pending_off; o < end; gone++) {
            PusherRecord ev;
            o += pusher_record_read(r->pending.data + o, &ev);
        }
        r->pending_off = end;
        r->pending_n -= gone;
    }
    if (!r->pending_n) {
        r->pending.len = 0; /* kept for the next swap */
        r->pending_off = 0;
    }
    return ok;
}

static gpointer rabbit_thread(gpointer data)
{
    Rabbit *r = data;
    guint backoff_ms = 100;
    gboolean logged_down = FALSE;
    while (!g_atomic_int_get(&r->stopping)) {
        if (!r->conn) {
            g_autofree char *why = NULL;
            if (!connect_broker(r, &why)) {
                if (!logged_down)
                    g_warning("mod_event_pusher: rabbit: %s; retrying", why);
                logged_down = TRUE;
                /* Waits on the queue so that a stop ends the wait. */
                gboolean any =
                    r->pending_n || pusher_queue_wait(r->base.queue, (gint64)backoff_ms * 1000);
                if (any && !pusher_queue_closed(r->base.queue))
                    g_usleep((gulong)backoff_ms * 1000);
                backoff_ms = MIN(backoff_ms * 2, 2000);
                continue;
            }
            r->next_tag = 1;
            mk_counter_add(r->connects, 1);
            g_message("mod_event_pusher: rabbit: connected to %s:%d", r->host, r->port);
            logged_down = FALSE;
            backoff_ms = 100;
        }
        /* A small batch waits a little for more (each batch costs a
         * round trip for the acks); the queue wakes this thread once the
         * batch is worth it, not for every event. What a broken
         * connection left unacked goes first. */
        if (!r->pending_n) {
            r->pending_n = pusher_queue_take(r->base.queue, &r->pending, 1, G_USEC_PER_SEC / 2);
            if (!r->pending_n)
                continue;
            if (r->pending_n < RABBIT_BATCH / 4)
                r->pending_n += pusher_queue_take(
                    r->base.queue, &r->pending, RABBIT_BATCH / 4 - r->pending_n, RABBIT_LINGER_US);
        }
        pusher_queue_hold(r->base.queue, r->pending_n);
        g_autofree char *why = NULL;
        gboolean ok = publish(r, &why);
        pusher_queue_hold(r->base.queue, r->pending_n);
        if (r->conn)
            amqp_maybe_release_buffers(r->conn); /* the acks' frames */
        if (!ok) {
            mk_counter_add(r->failures, 1);
            g_warning("mod_event_pusher: rabbit: %s; reconnecting", why);
            disconnect(r);
        }
    }
    disconnect(r);
    return NULL;
}

static void rabbit_stop(PusherBackend *b)
{
    Rabbit *r = (Rabbit *)b;
    g_atomic_int_set(&r->stopping, TRUE);
    pusher_queue_close(b->queue);
    g_thread_join(r->thread);
    r->thread = NULL;
}

static void rabbit_free(PusherBackend *b)
{
    Rabbit *r = (Rabbit *)b;
    pusher_queue_free(b->queue);
    pusher_filter_clear(&b->filter);
    g_free(r->host);
    g_free(r->vhost);
    g_free(r->user);
    g_free(r->password);
    for (int i = 0; i < 4; i++)
        g_free(r->exchanges[i]);
    g_free(r->out.data);
    g_free(r->pending.data);
    g_free(r);
}

/* Main thread, in start(). (transfer full) (nullable) */
PusherBackend *pusher_rabbit_new(MkModule *mod, GError **error)
{
    static const char *const exchange_keys[4] = {"rabbit_presence_exchange", "rabbit_chat_exchange",
                                                 "rabbit_groupchat_exchange",
                                                 "rabbit_push_exchange"};
    for (int i = 0; i < 4; i++) {
        const char *x = mk_config_get_string(mod, exchange_keys[i]);
        if (!x || !*x || strlen(x) > 255) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "%s: an exchange name of 1 to 255 octets is required", exchange_keys[i]);
            return NULL;
        }
    }
    Rabbit *r = g_new0(Rabbit, 1);
    r->base.name = "rabbit";
    if (!pusher_filter_init(&r->base.filter, mod, "rabbit_", error)) {
        g_free(r);
        return NULL;
    }
    r->mod = mod;
    r->host = g_strdup(mk_config_get_string(mod, "rabbit_host"));
    r->port = (int)mk_config_get_int(mod, "rabbit_port");
    r->vhost = g_strdup(mk_config_get_string(mod, "rabbit_vhost"));
    r->user = g_strdup(mk_config_get_string(mod, "rabbit_user"));
    r->password = g_strdup(mk_config_get_string(mod, "rabbit_password"));
    for (int i = 0; i < 4; i++)
        r->exchanges[i] = g_strdup(mk_config_get_string(mod, exchange_keys[i]));
    r->sent = mk_counter_new(mod, "rabbit_sent");
    r->connects = mk_counter_new(mod, "rabbit_connects");
    r->failures = mk_counter_new(mod, "rabbit_failures");
    r->unsendable = mk_counter_new(mod, "rabbit_unsendable");
    r->base.queue = pusher_queue_new(mod, "rabbit",
                                     (guint)mk_config_get_int(mod, "rabbit_queue_max"), NULL, NULL);
    r->base.stop = rabbit_stop;
    r->base.free = rabbit_free;
    r->thread = g_thread_new("mk-push-rabbit", rabbit_thread, r);
    return &r->base;
}
