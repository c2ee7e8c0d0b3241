/* GET PREFIX/sse: server-sent events of the messages addressed to the
 * user, seen by a filter_local_packet observer (so also while no XMPP
 * session is online), as
 *
 *   event: message
 *   data: {"from": ..., "to": ..., "id": ..., "body": ...}
 *
 * A comment line every 15 s keeps proxies from closing an idle stream
 * and finds the streams whose client left. At most max_sse_streams per
 * user (429 beyond). */
#include "rest-client.h"

#define KEEPALIVE_MS 15000

struct RestSse {
    GMutex lock;
    GHashTable *streams; /* bare JID -> GPtrArray of MkHttpRequest* (refs) */
    guint max_per_user;
    MkCounter *opened, *refused, *events;
};

void rest_sse_free(RestSse *sse)
{
    if (!sse)
        return;
    g_hash_table_unref(sse->streams);
    g_mutex_clear(&sse->lock);
    g_free(sse);
}

static RestSse *sse_of(MkModule *mod)
{
    return ((RestClient *)mk_module_get_data(mod))->sse;
}

void rest_sse_open(MkHttpRequest *req, MkJid *user)
{
    RestSse *sse = sse_of(mk_http_request_module(req));
    g_mutex_lock(&sse->lock);
    GPtrArray *list = g_hash_table_lookup(sse->streams, mk_jid_bare_string(user));
    if (list && list->len >= sse->max_per_user) {
        g_mutex_unlock(&sse->lock);
        mk_counter_add(sse->refused, 1);
        mk_http_reply_error(req, 429, NULL, "at most %u event streams per user", sse->max_per_user);
        return;
    }
    if (!list) {
        list = g_ptr_array_new_with_free_func((GDestroyNotify)mk_http_request_unref);
        g_hash_table_insert(sse->streams, g_strdup(mk_jid_bare_string(user)), list);
    }
    mk_http_reply_stream(req, 200, "text/event-stream");
    mk_http_stream_write(req, ": connected\n\n", -1);
    g_ptr_array_add(list, mk_http_request_ref(req));
    g_mutex_unlock(&sse->lock);
    mk_counter_add(sse->opened, 1);
}

/* Writes @text to every stream of @bare (NULL: of everyone), dropping
 * those whose client left. Under no lock. */
static void broadcast(RestSse *sse, const char *bare, const char *text)
{
    g_mutex_lock(&sse->lock);
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, sse->streams);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        if (bare && !g_str_equal(key, bare))
            continue;
        GPtrArray *list = value;
        for (guint i = list->len; i-- > 0;)
            if (!mk_http_stream_write(g_ptr_array_index(list, i), text, -1))
                g_ptr_array_remove_index_fast(list, i);
        if (!list->len)
            g_hash_table_iter_remove(&it);
    }
    g_mutex_unlock(&sse->lock);
}

/* filter_local_packet, any worker: an observer, never a filter. */
static MkResult on_local(MkHookCall *call, gpointer user_data)
{
    RestSse *sse = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = mk_hook_call_to(call);
    if (!st || !to || mk_stanza_kind(st) != MK_STANZA_MESSAGE || mk_stanza_is_error(st))
        return MK_PASS;
    g_mutex_lock(&sse->lock);
    gboolean listening = g_hash_table_contains(sse->streams, mk_jid_bare_string(to));
    g_mutex_unlock(&sse->lock);
    if (!listening)
        return MK_PASS;
    g_autofree char *body = mk_xml_child_text(mk_stanza_xml(st), "body", NULL);
    if (!body)
        return MK_PASS;
    MkJid *from = mk_stanza_from(st);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "from");
    json_builder_add_string_value(b, from ? mk_jid_string(from) : "");
    json_builder_set_member_name(b, "to");
    json_builder_add_string_value(b, mk_jid_string(to));
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, mk_stanza_id(st) ? mk_stanza_id(st) : "");
    json_builder_set_member_name(b, "body");
    json_builder_add_string_value(b, body);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *json = json_to_string(root, FALSE);
    g_autofree char *event = g_strdup_printf("event: message\ndata: %s\n\n", json);
    broadcast(sse, mk_jid_bare_string(to), event);
    mk_counter_add(sse->events, 1);
    return MK_PASS;
}

static gboolean keepalive(gpointer data)
{
    broadcast(data, NULL, ": keepalive\n\n");
    return G_SOURCE_CONTINUE;
}

/* The module's stop: ends every stream (their requests hold the module). */
void rest_sse_stop(RestSse *sse)
{
    g_mutex_lock(&sse->lock);
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, sse->streams);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        GPtrArray *list = value;
        for (guint i = 0; i < list->len; i++)
            mk_http_stream_close(g_ptr_array_index(list, i));
    }
    g_hash_table_remove_all(sse->streams);
    g_mutex_unlock(&sse->lock);
}

gboolean rest_sse_start(MkModule *mod, RestClient *rc, GError **error)
{
    RestSse *sse = g_new0(RestSse, 1);
    g_mutex_init(&sse->lock);
    sse->streams =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
    sse->max_per_user = (guint)mk_config_get_int(mod, "max_sse_streams");
    sse->opened = mk_counter_new(mod, "sse_opened");
    sse->refused = mk_counter_new(mod, "sse_refused");
    sse->events = mk_counter_new(mod, "sse_events");
    rc->sse = sse;
    mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, 10, on_local, sse);
    mk_timer_add(mod, KEEPALIVE_MS, keepalive, sse);
    return TRUE;
}
