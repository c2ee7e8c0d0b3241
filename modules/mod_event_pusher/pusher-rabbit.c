/* Backend "rabbit": events as JSON to RabbitMQ topic exchanges through
 * librabbitmq, on a thread of its own (the library blocks).
 *
 * Presence, login and logout go to rabbit_presence_exchange, 1:1 chat to
 * rabbit_chat_exchange, group chat to rabbit_groupchat_exchange; the
 * routing key is "USER.EVENT" (alice@example.com.chat_sent). Publisher
 * confirms, up to RABBIT_BATCH events in flight: an event is done when
 * the broker acknowledged it; a broken connection puts what was not
 * acknowledged back at the head and the thread reconnects with back-off
 * (at least once: an event whose ack was lost in a broker failure is
 * sent again). */
#include "pusher.h"
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef struct {
    PusherBackend base;
    MkModule *mod;
    char *host, *vhost, *user, *password;
    int port;
    char *exchanges[3]; /* presence, chat, groupchat */
    GThread *thread;
    gint stopping;
    amqp_connection_state_t conn; /* the thread's */
    guint64 next_tag;             /* the next publish's delivery tag */
    MkCounter *sent, *connects, *failures;
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
    for (int i = 0; i < 3; i++) {
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
#define RABBIT_LINGER_US 5000

/* The thread: publishes @batch and waits for the broker's acks; *@acked
 * is how many of it, from the first, the broker confirmed. */
static gboolean publish(Rabbit *r, GPtrArray *batch, guint *acked, char **why)
{
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .delivery_mode = 2, /* persistent: kept by a durable queue across a restart */
    };
    guint64 first = r->next_tag;
    *acked = 0;
    /* librabbitmq writes each frame with its own send(), three per event:
     * corked, the kernel sends the batch in full segments. */
    int fd = amqp_get_sockfd(r->conn), on = 1, off = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    for (guint i = 0; i < batch->len; i++) {
        PusherEvent *ev = g_ptr_array_index(batch, i);
        g_autofree char *key = g_strconcat(ev->user, ".", pusher_kind_name(ev->kind), NULL);
        int st = amqp_basic_publish(r->conn, 1, amqp_cstring_bytes(exchange_for(r, ev->kind)),
                                    amqp_cstring_bytes(key), 0, 0, &props,
                                    (amqp_bytes_t){ev->json_len, ev->json});
        if (st != AMQP_STATUS_OK) {
            *why = g_strdup_printf("publish: %s", amqp_error_string2(st));
            return FALSE;
        }
        r->next_tag++;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    guint64 last = r->next_tag - 1;
    struct timeval tv = {.tv_sec = 5};
    while (first + *acked <= last) {
        amqp_frame_t frame;
        int st = amqp_simple_wait_frame_noblock(r->conn, &frame, &tv);
        if (st != AMQP_STATUS_OK) {
            *why = g_strdup_printf("waiting for acks: %s", amqp_error_string2(st));
            return FALSE;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            /* Acks come in order on a channel: the tag acks up to it. */
            const amqp_basic_ack_t *ack = frame.payload.method.decoded;
            if (ack->delivery_tag >= first)
                *acked = (guint)MIN(ack->delivery_tag - first + 1, batch->len);
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            *why = g_strdup("the broker refused an event (nack)");
            return FALSE;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            *why = g_strdup("the broker closed the channel");
            return FALSE;
        default:
            break;
        }
    }
    return TRUE;
}

static gpointer rabbit_thread(gpointer data)
{
    Rabbit *r = data;
    guint backoff_ms = 100;
    gboolean logged_down = FALSE;
    g_autoptr(GPtrArray) batch = g_ptr_array_new();
    while (!g_atomic_int_get(&r->stopping)) {
        if (!r->conn) {
            g_autofree char *why = NULL;
            if (!connect_broker(r, &why)) {
                if (!logged_down)
                    g_warning("mod_event_pusher: rabbit: %s; retrying", why);
                logged_down = TRUE;
                /* Waits on the queue so that a stop ends the wait; the
                 * event taken, if any, goes back. */
                PusherEvent *ev = pusher_queue_pop(r->base.queue, (gint64)backoff_ms * 1000);
                if (ev)
                    pusher_queue_push_head(r->base.queue, ev);
                if (ev && !pusher_queue_closed(r->base.queue))
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
        PusherEvent *ev = pusher_queue_pop(r->base.queue, G_USEC_PER_SEC / 2);
        if (!ev)
            continue;
        /* A small batch waits a little for more: each batch costs a
         * round trip for the acks. */
        gint64 until = g_get_monotonic_time() + RABBIT_LINGER_US;
        do {
            g_ptr_array_add(batch, ev);
            if (batch->len >= RABBIT_BATCH)
                break;
            gint64 left = until - g_get_monotonic_time();
            ev = pusher_queue_pop(r->base.queue, batch->len < RABBIT_BATCH / 4 ? MAX(left, 0) : 0);
        } while (ev);
        g_autofree char *why = NULL;
        guint acked = 0;
        gboolean ok = publish(r, batch, &acked, &why);
        mk_counter_add(r->sent, acked);
        for (guint i = 0; i < acked; i++)
            pusher_event_unref(g_ptr_array_index(batch, i));
        if (!ok) {
            mk_counter_add(r->failures, 1);
            g_warning("mod_event_pusher: rabbit: %s; reconnecting", why);
            /* What the broker did not confirm goes back, in order. */
            for (guint i = batch->len; i > acked; i--)
                pusher_queue_push_head(r->base.queue, g_ptr_array_index(batch, i - 1));
            disconnect(r);
        }
        g_ptr_array_set_size(batch, 0);
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
    for (int i = 0; i < 3; i++)
        g_free(r->exchanges[i]);
    g_free(r);
}

/* Main thread, in start(). (transfer full) (nullable) */
PusherBackend *pusher_rabbit_new(MkModule *mod, GError **error)
{
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
    r->exchanges[0] = g_strdup(mk_config_get_string(mod, "rabbit_presence_exchange"));
    r->exchanges[1] = g_strdup(mk_config_get_string(mod, "rabbit_chat_exchange"));
    r->exchanges[2] = g_strdup(mk_config_get_string(mod, "rabbit_groupchat_exchange"));
    r->sent = mk_counter_new(mod, "rabbit_sent");
    r->connects = mk_counter_new(mod, "rabbit_connects");
    r->failures = mk_counter_new(mod, "rabbit_failures");
    r->base.queue = pusher_queue_new(mod, "rabbit",
                                     (guint)mk_config_get_int(mod, "rabbit_queue_max"), NULL, NULL);
    r->base.stop = rabbit_stop;
    r->base.free = rabbit_free;
    r->thread = g_thread_new("mk-push-rabbit", rabbit_thread, r);
    return &r->base;
}
