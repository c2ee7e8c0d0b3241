/* POST PREFIX/messages {caller, to, body} sends a chat message as a local
 * user; POST PREFIX/stanzas {stanza} routes any stanza whose 'from' is a
 * local user. Both check that the sender's account exists first, so the
 * API cannot speak for nobody; a sender found once is remembered until
 * the remove_user hook runs for it, which spares the storage round trip
 * of each further message (docs/benchmarks.md). */
#include "rest-admin.h"
#include <string.h>

/* Remembered senders at most; past it the set starts over. */
#define MAX_KNOWN_SENDERS 10000

static gboolean sender_known(RestAdmin *ra, const char *bare)
{
    g_mutex_lock(&ra->lock);
    gboolean known = g_hash_table_contains(ra->known_senders, bare);
    g_mutex_unlock(&ra->lock);
    return known;
}

static void sender_found(RestAdmin *ra, const char *bare)
{
    g_mutex_lock(&ra->lock);
    if (g_hash_table_size(ra->known_senders) >= MAX_KNOWN_SENDERS)
        g_hash_table_remove_all(ra->known_senders);
    g_hash_table_add(ra->known_senders, g_strdup(bare));
    g_mutex_unlock(&ra->lock);
}

/* remove_user (from = the account's bare JID), on the remover's thread. */
static MkResult on_remove_user(MkHookCall *call, gpointer user_data)
{
    RestAdmin *ra = user_data;
    MkJid *bare = mk_hook_call_from(call);
    if (bare) {
        g_mutex_lock(&ra->lock);
        g_hash_table_remove(ra->known_senders, mk_jid_bare_string(bare));
        g_mutex_unlock(&ra->lock);
    }
    return MK_PASS;
}

typedef struct {
    MkHttpRequest *req; /* ref */
    MkStanza *stanza;   /* to route once the sender is known */
    char *field;        /* the sender's field, for the 400 */
} SendOp;

static void on_sender(MkDbResult *res, const GError *error, gpointer data)
{
    SendOp *op = data;
    if (error) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    } else if (mk_db_result_rows(res) == 0) {
        mk_http_reply_error(op->req, 400, op->field, "unknown user %s",
                            mk_jid_bare_string(mk_stanza_from(op->stanza)));
    } else {
        sender_found(mk_module_get_data(mk_http_request_module(op->req)),
                     mk_jid_bare_string(mk_stanza_from(op->stanza)));
        mk_router_send_as(op->stanza);
        mk_http_reply_json(op->req, 204, NULL);
    }
    mk_http_request_unref(op->req);
    mk_stanza_unref(op->stanza);
    g_free(op->field);
    g_free(op);
}

/* Routes @stanza (transfer full) once its sender's account is found. */
static void send_as(MkHttpRequest *req, MkStanza *stanza, const char *field)
{
    MkJid *from = mk_stanza_from(stanza);
    if (!mk_jid_node(from) ||
        !mk_module_serves_domain(mk_http_request_module(req), mk_jid_domain(from))) {
        mk_http_reply_error(req, 400, field, "%s is not a local user", mk_jid_string(from));
        mk_stanza_unref(stanza);
        return;
    }
    if (sender_known(mk_module_get_data(mk_http_request_module(req)), mk_jid_bare_string(from))) {
        mk_router_send_as(stanza);
        mk_http_reply_json(req, 204, NULL);
        mk_stanza_unref(stanza);
        return;
    }
    SendOp *op = g_new0(SendOp, 1);
    op->req = mk_http_request_ref(req);
    op->stanza = stanza;
    op->field = g_strdup(field);
    mk_db_query(mk_http_request_module(req),
                "SELECT 1 FROM users WHERE username = ? AND domain = ?", on_sender, op,
                MK_DB_STR(mk_jid_node(from)), MK_DB_STR(mk_jid_domain(from)));
}

static void messages_send(MkHttpRequest *req, gpointer user_data)
{
    if (!rest_admin_authorized(req))
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *body;
    if (!o)
        return;
    g_autoptr(MkJid) caller = rest_admin_field_jid(req, o, "caller");
    if (!caller)
        return;
    g_autoptr(MkJid) to = rest_admin_field_jid(req, o, "to");
    if (!to || !mk_http_json_string(req, o, "body", TRUE, &body))
        return;
    g_autoptr(MkXml) msg = mk_xml_new("message", "jabber:client");
    mk_xml_set_attr(msg, "type", "chat");
    g_autofree char *id = g_uuid_string_random();
    mk_xml_set_attr(msg, "id", id);
    mk_xml_add_text(mk_xml_add_child(msg, "body", NULL), body, -1);
    send_as(req, mk_stanza_new_addressed(msg, caller, to), "caller");
}

static void stanzas_send(MkHttpRequest *req, gpointer user_data)
{
    if (!rest_admin_authorized(req))
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *text;
    if (!o || !mk_http_json_string(req, o, "stanza", TRUE, &text))
        return;
    /* Parsed inside a jabber:client wrapper: a stanza written without
     * xmlns (as the API's users do) gets the client namespace. */
    g_autofree char *wrapped = g_strconcat("<w xmlns='jabber:client'>", text, "</w>", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) w = mk_xml_parse(wrapped, -1, &error);
    MkXml *el = NULL;
    for (guint i = 0; w && i < mk_xml_child_count(w); i++) {
        MkXml *c = mk_xml_child_at(w, i);
        if (mk_xml_is_text(c))
            continue;
        if (el) {
            el = NULL;
            break;
        }
        el = c;
    }
    if (!el ||
        (!mk_xml_is(el, "message", "jabber:client") &&
         !mk_xml_is(el, "presence", "jabber:client") && !mk_xml_is(el, "iq", "jabber:client"))) {
        mk_http_reply_error(req, 400, "stanza", "not one message, presence or iq%s%s",
                            error ? ": " : "", error ? error->message : "");
        return;
    }
    if (!mk_xml_get_attr(el, "from") || !mk_xml_get_attr(el, "to")) {
        mk_http_reply_error(req, 400, "stanza", "the stanza needs 'from' and 'to'");
        return;
    }
    g_autoptr(MkXml) copy = mk_xml_copy(el);
    MkStanza *st = mk_stanza_new(copy, &error);
    if (!st) {
        mk_http_reply_error(req, 400, "stanza", "%s", error->message);
        return;
    }
    send_as(req, st, "stanza");
}

static void on_archive(GPtrArray *messages, const GError *error, gpointer data)
{
    MkHttpRequest *req = data;
    if (error) {
        mk_http_reply_error(req, 500, NULL, "%s", error->message);
        return;
    }
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_array(b);
    for (guint i = 0; i < messages->len; i++) {
        const MkArchivedMessage *m = g_ptr_array_index(messages, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "sender");
        json_builder_add_string_value(b, m->sender);
        json_builder_set_member_name(b, "timestamp");
        json_builder_add_int_value(b, m->when_us / G_USEC_PER_SEC);
        json_builder_set_member_name(b, "message_id");
        json_builder_add_string_value(b, m->id);
        json_builder_set_member_name(b, "body");
        json_builder_add_string_value(b, m->body);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    mk_http_reply_json(req, 200, json_builder_get_root(b));
}

/* GET PREFIX/messages/{owner}[/{with}]?before=SECONDS&limit=N: the last
 * messages of the owner's archive (mod_mam), oldest first. */
static void messages_archive(MkHttpRequest *req, gpointer user_data)
{
    if (!rest_admin_authorized(req))
        return;
    g_autoptr(MkJid) owner = rest_admin_param_jid(req, "owner");
    if (!owner || !rest_admin_domain_known(req, mk_jid_domain(owner)))
        return;
    g_autoptr(MkJid) with = NULL;
    if (mk_http_request_param(req, "with") && !(with = rest_admin_param_jid(req, "with")))
        return;
    gint64 before = g_get_real_time() / G_USEC_PER_SEC + 1, limit = 100;
    if (!mk_http_request_query_int(req, "before", G_MAXINT64 / G_USEC_PER_SEC, &before) ||
        !mk_http_request_query_int(req, "limit", 1000, &limit))
        return;
    g_autoptr(MkJid) bare = mk_jid_bare(owner);
    if (!mk_user_archive_messages(mk_http_request_module(req), bare, with, before * G_USEC_PER_SEC,
                                  (guint)limit, on_archive, mk_http_request_ref(req),
                                  (GDestroyNotify)mk_http_request_unref))
        mk_http_reply_error(req, 503, NULL, "no archive (mod_mam) runs for %s",
                            mk_jid_domain(owner));
}

gboolean rest_messages_start(MkModule *mod, GError **error)
{
    mk_hook_add(mod, MK_HOOK_REMOVE_USER, 50, on_remove_user, mk_module_get_data(mod));
    return rest_admin_route(mod, "POST", "/messages", messages_send, error) &&
           rest_admin_route(mod, "POST", "/stanzas", stanzas_send, error) &&
           rest_admin_route(mod, "GET", "/messages/{owner}", messages_archive, error) &&
           rest_admin_route(mod, "GET", "/messages/{owner}/{with}", messages_archive, error);
}
