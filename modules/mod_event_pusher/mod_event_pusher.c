/* mod_event_pusher: events of the users (messages, presence, login,
 * logout) to backends: an HTTP webhook, RabbitMQ, and XEP-0357 push.
 *
 * Hooks make an event only when a backend's filter wants it and append
 * it to each such backend's bounded queue; each backend's own thread
 * sends it. Nothing on the stanza path waits for a backend. See
 * docs/mod_event_pusher.md. */
#include "pusher.h"
#include "push.h"
#include <string.h>

#define NS_CLIENT "jabber:client"

typedef struct {
    MkModule *mod;
    GPtrArray *backends; /* PusherBackend */
    guint kinds;         /* the union of the backends' filters */
    PushEngine *push;
} Pusher;

static void pusher_free(gpointer data)
{
    Pusher *p = data;
    for (guint i = 0; i < p->backends->len; i++) {
        PusherBackend *b = g_ptr_array_index(p->backends, i);
        b->free(b);
    }
    g_ptr_array_unref(p->backends);
    push_engine_free(p->push);
    g_free(p);
}

/* The backends that want an event of @kind about a user of @domain, as
 * bits; a backend whose queue is full counts the drop here, before the
 * event is made: a stuck backend costs the stanza path next to nothing. */
static guint targets(Pusher *p, PusherKind kind, const char *domain, gboolean offline,
                     gboolean count)
{
    guint bits = 0;
    for (guint i = 0; i < p->backends->len; i++) {
        PusherBackend *b = g_ptr_array_index(p->backends, i);
        if (!pusher_filter_match(&b->filter, kind, domain, offline))
            continue;
        if (!count)
            bits |= 1u << i;
        else if (pusher_queue_full(b->queue))
            pusher_queue_count_drop(b->queue);
        else
            bits |= 1u << i;
    }
    return bits;
}

/* TRUE when every backend that may want the event (as if offline) has a
 * full queue: each counts the drop, and nothing more needs looking up. */
static gboolean all_full(Pusher *p, PusherKind kind, const char *domain)
{
    guint bits = 0;
    for (guint i = 0; i < p->backends->len; i++) {
        PusherBackend *b = g_ptr_array_index(p->backends, i);
        if (!pusher_filter_match(&b->filter, kind, domain, TRUE))
            continue;
        if (!pusher_queue_full(b->queue))
            return FALSE;
        bits |= 1u << i;
    }
    for (guint i = 0; i < p->backends->len; i++)
        if (bits & (1u << i))
            pusher_queue_count_drop(((PusherBackend *)g_ptr_array_index(p->backends, i))->queue);
    return TRUE;
}

/* Copies the event in @j into each backend's queue of @bits, and clears @j. */
static void emit(Pusher *p, guint bits, PusherKind kind, const char *user, PusherJson *j)
{
    for (guint i = 0; i < p->backends->len; i++)
        if (bits & (1u << i))
            pusher_queue_push(((PusherBackend *)g_ptr_array_index(p->backends, i))->queue, kind,
                              user, j->str, j->len);
    pusher_json_clear(j);
}

static gboolean wants(Pusher *p, PusherKind k)
{
    return (p->kinds & (1u << k)) != 0;
}

/* A message with a body: its kind when sent (@sent) or received, or -1;
 * @body (transfer none) its body element. */
static int message_kind(MkStanza *st, gboolean sent, MkXml **body)
{
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE ||
        !(*body = mk_xml_child(mk_stanza_xml(st), "body", NS_CLIENT)))
        return -1;
    const char *type = mk_stanza_type(st);
    if (!type || g_str_equal(type, "chat") || g_str_equal(type, "normal"))
        return sent ? PUSHER_CHAT_SENT : PUSHER_CHAT_RECEIVED;
    if (g_str_equal(type, "groupchat"))
        return sent ? PUSHER_GROUPCHAT_SENT : PUSHER_GROUPCHAT_RECEIVED;
    return -1;
}

static const char *jid_str(MkJid *j)
{
    return j ? mk_jid_string(j) : NULL;
}

/* user_send_packet: a local user sent a message. The session's worker. */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Pusher *p = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkSession *s = mk_hook_call_session(call);
    MkXml *body = NULL;
    int k = st && s ? message_kind(st, TRUE, &body) : -1;
    if (k < 0 || !wants(p, k))
        return MK_PASS;
    MkJid *me = mk_session_jid(s);
    guint bits = targets(p, k, mk_jid_domain(me), FALSE, TRUE);
    if (!bits)
        return MK_PASS;
    g_autofree char *text = mk_xml_text(body);
    PusherJson j;
    pusher_json_message(&j, k, mk_jid_bare_string(me), mk_jid_string(me), jid_str(mk_stanza_to(st)),
                        text, -1);
    emit(p, bits, k, mk_jid_bare_string(me), &j);
    return MK_PASS;
}

/* No session of @bare that is available and attached. */
static gboolean is_offline(MkJid *bare)
{
    g_autoptr(GPtrArray) list = mk_session_list(bare);
    for (guint i = 0; i < list->len; i++) {
        MkSession *s = g_ptr_array_index(list, i);
        if (mk_session_is_available(s) && !mk_session_is_detached(s))
            return FALSE;
    }
    return TRUE;
}

/* filter_local_packet, after the filters that may drop it: a message
 * reaches a local account, once per account whatever its sessions. */
static MkResult on_local(MkHookCall *call, gpointer user_data)
{
    Pusher *p = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = st ? mk_stanza_to(st) : NULL;
    MkXml *body = NULL;
    int k = to ? message_kind(st, FALSE, &body) : -1;
    if (k < 0 || !wants(p, k) || !mk_jid_node(to))
        return MK_PASS;
    /* Offline or not only matters to a backend that filters on it, or
     * that gets the event: first ask as if offline (every backend that
     * may want it), then look. */
    if (!targets(p, k, mk_jid_domain(to), TRUE, FALSE))
        return MK_PASS;
    if (all_full(p, k, mk_jid_domain(to)))
        return MK_PASS; /* counted as dropped */
    g_autoptr(MkJid) bare = mk_jid_bare(to);
    gboolean offline = is_offline(bare);
    guint bits = targets(p, k, mk_jid_domain(to), offline, TRUE);
    if (!bits)
        return MK_PASS;
    g_autofree char *text = mk_xml_text(body);
    PusherJson j;
    pusher_json_message(&j, k, mk_jid_string(bare), jid_str(mk_stanza_from(st)), mk_jid_string(to),
                        text, offline);
    emit(p, bits, k, mk_jid_string(bare), &j);
    return MK_PASS;
}

/* presence_broadcast: available or unavailable, show, status. */
static MkResult on_presence(MkHookCall *call, gpointer user_data)
{
    Pusher *p = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st || !wants(p, PUSHER_PRESENCE))
        return MK_PASS;
    const char *type = mk_stanza_type(st);
    if (type && !g_str_equal(type, "unavailable"))
        return MK_PASS;
    MkJid *me = mk_session_jid(s);
    guint bits = targets(p, PUSHER_PRESENCE, mk_jid_domain(me), FALSE, TRUE);
    if (!bits)
        return MK_PASS;
    g_autofree char *show = mk_xml_child_text(mk_stanza_xml(st), "show", NULL);
    g_autofree char *status = mk_xml_child_text(mk_stanza_xml(st), "status", NULL);
    PusherJson j;
    pusher_json_presence(&j, mk_jid_bare_string(me), mk_jid_string(me), type == NULL, show, status);
    emit(p, bits, PUSHER_PRESENCE, mk_jid_bare_string(me), &j);
    return MK_PASS;
}

static void session_event(Pusher *p, MkHookCall *call, PusherKind k)
{
    MkSession *s = mk_hook_call_session(call);
    if (!s || !wants(p, k))
        return;
    MkJid *me = mk_session_jid(s);
    guint bits = targets(p, k, mk_jid_domain(me), FALSE, TRUE);
    if (!bits)
        return;
    PusherJson j;
    pusher_json_session(&j, k, mk_jid_bare_string(me), mk_jid_string(me));
    emit(p, bits, k, mk_jid_bare_string(me), &j);
}

static MkResult on_opened(MkHookCall *call, gpointer user_data)
{
    session_event(user_data, call, PUSHER_LOGIN);
    return MK_PASS;
}

static MkResult on_closed(MkHookCall *call, gpointer user_data)
{
    session_event(user_data, call, PUSHER_LOGOUT);
    return MK_PASS;
}

/* The push engine's notification to a virtual pubsub host: a "push"
 * event for the backends that want one. The worker that read the
 * enablements. */
static void on_virtual(const char *account, const char *service, const char *node,
                       const PushSummary *sum, const char *form, gpointer data)
{
    Pusher *p = data;
    const char *at = strchr(account, '@');
    guint bits = targets(p, PUSHER_PUSH, at ? at + 1 : account, TRUE, TRUE);
    if (!bits)
        return;
    PusherJson j;
    pusher_json_push(&j, account, service, node, sum->count, sum->sender, sum->body, form);
    emit(p, bits, PUSHER_PUSH, account, &j);
}

/* push_virtual_pubsub_hosts: the push backend hands notifications to
 * these hosts to the other backends. FALSE when none takes them. */
static gboolean virtual_hosts_init(Pusher *p, MkModule *mod, GError **error)
{
    const char *const *hosts = mk_config_get_strv(mod, "push_virtual_pubsub_hosts");
    if (!hosts || !hosts[0])
        return TRUE;
    if (!p->push || !wants(p, PUSHER_PUSH)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "push_virtual_pubsub_hosts: needs the push backend and an http or rabbit"
                    " backend whose events include push");
        return FALSE;
    }
    g_auto(GStrv) clean = g_new0(char *, g_strv_length((char **)hosts) + 1);
    guint n = 0;
    for (guint i = 0; hosts[i]; i++) {
        g_autofree char *h = g_strstrip(g_strdup(hosts[i]));
        if (*h)
            clean[n++] = g_steal_pointer(&h);
    }
    push_engine_set_virtual(p->push, (const char *const *)clean, on_virtual, p);
    return TRUE;
}

static gboolean pusher_start(MkModule *mod, GError **error)
{
    Pusher *p = g_new0(Pusher, 1);
    p->mod = mod;
    p->backends = g_ptr_array_new();
    const char *const *names = mk_config_get_strv(mod, "backends");
    for (guint i = 0; names && names[i]; i++) {
        g_autofree char *name = g_strstrip(g_strdup(names[i]));
        PusherBackend *b = NULL;
        if (!*name)
            continue;
        if (g_str_equal(name, "http")) {
            b = pusher_http_new(mod, error);
        } else if (g_str_equal(name, "rabbit")) {
            b = pusher_rabbit_new(mod, error);
        } else if (g_str_equal(name, "push")) {
            if (!p->push && !(p->push = push_engine_start(mod, "push_", error)))
                goto fail;
            continue;
        } else {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "backends: unknown backend \"%s\" (http, rabbit, push)", name);
            goto fail;
        }
        if (!b)
            goto fail;
        g_ptr_array_add(p->backends, b);
        p->kinds |= b->filter.kinds;
    }
    if (p->backends->len > 32) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "backends: at most 32");
        goto fail;
    }
    if (!virtual_hosts_init(p, mod, error))
        goto fail;
    mk_module_set_data(mod, p, pusher_free);
    if (p->backends->len) {
        mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, -100, on_send, p);
        mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, -1000, on_local, p);
        mk_hook_add(mod, MK_HOOK_PRESENCE_BROADCAST, -100, on_presence, p);
        mk_hook_add(mod, MK_HOOK_SESSION_OPENED, -100, on_opened, p);
        mk_hook_add(mod, MK_HOOK_SESSION_CLOSED, -100, on_closed, p);
    }
    return TRUE;
fail:
    for (guint i = 0; i < p->backends->len; i++) {
        PusherBackend *b = g_ptr_array_index(p->backends, i);
        b->stop(b);
    }
    pusher_free(p);
    return FALSE;
}

/* Main thread: the core removed the hooks; the backends' threads end
 * here (what is still queued is dropped). */
static void pusher_stop(MkModule *mod)
{
    Pusher *p = mk_module_get_data(mod);
    for (guint i = 0; p && i < p->backends->len; i++) {
        PusherBackend *b = g_ptr_array_index(p->backends, i);
        b->stop(b);
    }
}

#define ALL_EVENTS                                                                                 \
    "chat_sent;chat_received;groupchat_sent;groupchat_received;presence;login;logout;push"

/* clang-format off */
#define FILTER_KEYS(P)                                                                             \
    {P "events", MK_CONFIG_STRV, ALL_EVENTS, 0, 0, "the events this backend gets"},                \
    {P "only_offline", MK_CONFIG_BOOL, "false", 0, 0,                                              \
     "*_received events only when the user had no active session"},                                \
    {P "domains", MK_CONFIG_STRV, NULL, 0, 0, "only events of users of these domains (unset: all)"}, \
    {P "queue_max", MK_CONFIG_INT, "10000", 1, 10000000,                                           \
     "events waiting for this backend; more are dropped (counted, logged)"}

static const MkConfigKey pusher_keys[] = {
    {"backends", MK_CONFIG_STRV, NULL, 0, 0, "backends to run: http, rabbit, push"},
    FILTER_KEYS("http_"),
    {"http_url", MK_CONFIG_STRING, NULL, 0, 0, "the webhook: events are POSTed there as JSON"},
    {"http_timeout", MK_CONFIG_INT, "5", 1, 600, "seconds without an answer before a POST fails"},
    {"http_retries", MK_CONFIG_INT, "3", 0, 20, "retries of a failed POST (no answer, 5xx, 429)"},
    {"http_retry_ms", MK_CONFIG_INT, "500", 10, 60000,
     "wait before the first retry, doubled for each next one (at most 30 s)"},
    {"http_concurrency", MK_CONFIG_INT, "4", 1, 256, "POSTs in flight at once"},
    {"http_tls_verify", MK_CONFIG_BOOL, "true", 0, 0, "verify the webhook's TLS certificate"},
    {"http_batch", MK_CONFIG_INT, "1", 1, 1000,
     "events per POST: 1 posts one JSON object, more post a JSON array of up to this many"},
    FILTER_KEYS("rabbit_"),
    {"rabbit_host", MK_CONFIG_STRING, "127.0.0.1", 0, 0, "the RabbitMQ broker's address"},
    {"rabbit_port", MK_CONFIG_INT, "5672", 1, 65535, "the broker's AMQP port"},
    {"rabbit_vhost", MK_CONFIG_STRING, "/", 0, 0, "the broker's virtual host"},
    {"rabbit_user", MK_CONFIG_STRING, "guest", 0, 0, "the broker's user"},
    {"rabbit_password", MK_CONFIG_STRING, "guest", 0, 0, "that user's password"},
    {"rabbit_presence_exchange", MK_CONFIG_STRING, "presence", 0, 0,
     "topic exchange of presence, login and logout events"},
    {"rabbit_chat_exchange", MK_CONFIG_STRING, "chat_msg", 0, 0, "topic exchange of 1:1 messages"},
    {"rabbit_groupchat_exchange", MK_CONFIG_STRING, "groupchat_msg", 0, 0,
     "topic exchange of group chat messages"},
    {"rabbit_push_exchange", MK_CONFIG_STRING, "push", 0, 0,
     "topic exchange of push events (notifications to virtual pubsub hosts)"},
    PUSH_CONFIG_KEYS("push_"),
    {"push_virtual_pubsub_hosts", MK_CONFIG_STRV, NULL, 0, 0,
     "app server domains served without pubsub: their notifications become push events"
     " for the http and rabbit backends"},
    MK_CONFIG_KEYS_END,
};
/* clang-format on */

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,      .name = "mod_event_pusher",    .version = "1.0",
    .config_keys = pusher_keys, .migrations = push_migrations, .start = pusher_start,
    .stop = pusher_stop,
};
