/* mod_rest_client: a user's own REST API, as MongooseIM's client API:
 * POST/GET PREFIX/messages, GET PREFIX/messages/{with}, the contacts
 * (GET/POST PREFIX/contacts, PUT/DELETE PREFIX/contacts/{jid}) and GET
 * PREFIX/sse. Basic auth as user@domain with the account's password,
 * checked by the core on the auth pool (mk_account_check_password):
 * every request costs a key derivation, as a PLAIN login does. */
#include "rest-client.h"
#include <string.h>

static void rest_client_free(gpointer data)
{
    RestClient *rc = data;
    g_free(rc->prefix);
    rest_sse_free(rc->sse);
    g_free(rc);
}

/* ---- authentication ---- */

/* Every route: the credentials first (the core answers 401 or 429
 * itself), then the handler. */
static void call_handler(MkHttpRequest *req, MkJid *user, gpointer func)
{
    ((RestClientFunc)func)(req, user);
}

static void authenticate(MkHttpRequest *req, gpointer user_data)
{
    mk_http_request_check_user(req, call_handler, user_data);
}

gboolean rest_client_route(MkModule *mod, const char *method, const char *rest, RestClientFunc func,
                           GError **error)
{
    RestClient *rc = mk_module_get_data(mod);
    g_autofree char *pattern = g_strconcat(rc->prefix, rest, NULL);
    return mk_http_route_add(mod, method, pattern, authenticate, (gpointer)func, error);
}

/* ---- messages ---- */

static void messages_send(MkHttpRequest *req, MkJid *user)
{
    JsonObject *o = mk_http_request_json(req);
    const char *to_s, *body;
    if (!o || !mk_http_json_string(req, o, "to", TRUE, &to_s) ||
        !mk_http_json_string(req, o, "body", TRUE, &body))
        return;
    g_autoptr(MkJid) to = mk_jid_new(to_s, NULL);
    if (!to) {
        mk_http_reply_error(req, 400, "to", "\"%s\" is not a valid JID", to_s);
        return;
    }
    g_autoptr(MkXml) msg = mk_xml_new("message", "jabber:client");
    mk_xml_set_attr(msg, "type", "chat");
    g_autofree char *id = g_uuid_string_random();
    mk_xml_set_attr(msg, "id", id);
    mk_xml_add_text(mk_xml_add_child(msg, "body", NULL), body, -1);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(msg, user, to);
    mk_router_send_as(st);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, id);
    json_builder_end_object(b);
    mk_http_reply_json(req, 200, json_builder_get_root(b));
}

typedef struct {
    MkHttpRequest *req; /* ref */
    MkJid *user;
} ArchiveOp;

static void archive_op_free(gpointer data)
{
    ArchiveOp *op = data;
    mk_http_request_unref(op->req);
    mk_jid_unref(op->user);
    g_free(op);
}

static void on_archive(GPtrArray *messages, const GError *error, gpointer data)
{
    ArchiveOp *op = data;
    if (error) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
        return;
    }
    const char *me = mk_jid_bare_string(op->user);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_array(b);
    for (guint i = 0; i < messages->len; i++) {
        const MkArchivedMessage *m = g_ptr_array_index(messages, i);
        gboolean mine = g_str_equal(m->sender, me);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "from");
        json_builder_add_string_value(b, m->sender);
        json_builder_set_member_name(b, "to");
        json_builder_add_string_value(b, mine ? m->with : me);
        json_builder_set_member_name(b, "id");
        json_builder_add_string_value(b, m->id);
        json_builder_set_member_name(b, "timestamp");
        json_builder_add_int_value(b, m->when_us / G_USEC_PER_SEC);
        json_builder_set_member_name(b, "body");
        json_builder_add_string_value(b, m->body);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    mk_http_reply_json(op->req, 200, json_builder_get_root(b));
}

static void messages_archive(MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) with = NULL;
    const char *w = mk_http_request_param(req, "with");
    if (w && !(with = mk_jid_new(w, NULL))) {
        mk_http_reply_error(req, 400, "with", "\"%s\" is not a valid JID", w);
        return;
    }
    gint64 before = g_get_real_time() / G_USEC_PER_SEC + 1, limit = 100;
    if (!mk_http_request_query_int(req, "before", G_MAXINT64 / G_USEC_PER_SEC, &before) ||
        !mk_http_request_query_int(req, "limit", 1000, &limit))
        return;
    ArchiveOp *op = g_new0(ArchiveOp, 1);
    op->req = mk_http_request_ref(req);
    op->user = mk_jid_ref(user);
    if (!mk_user_archive_messages(mk_http_request_module(req), user, with, before * G_USEC_PER_SEC,
                                  (guint)limit, on_archive, op, archive_op_free)) {
        archive_op_free(op);
        mk_http_reply_error(req, 503, NULL, "no archive (mod_mam) runs for %s",
                            mk_jid_domain(user));
    }
}

/* ---- contacts ---- */

typedef struct {
    MkHttpRequest *req; /* ref */
    MkModule *mod;
    MkJid *user, *contact;
    char *action; /* PUT: "invite" | "accept"; NULL: list */
    gboolean available;
    GPtrArray *items;
} ContactsOp;

static void contacts_op_free(gpointer data)
{
    ContactsOp *op = data;
    mk_http_request_unref(op->req);
    mk_jid_unref(op->user);
    if (op->contact)
        mk_jid_unref(op->contact);
    g_free(op->action);
    g_ptr_array_unref(op->items);
    g_free(op);
}

static gboolean contacts_read(MkDbConn *conn, gpointer data, GError **error)
{
    ContactsOp *op = data;
    return mk_roster_items(op->mod, conn, op->user, op->items, &op->available, error);
}

static void contacts_read_done(const GError *error, gpointer data)
{
    ContactsOp *op = data;
    if (error) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
        return;
    }
    if (!op->available) {
        mk_http_reply_error(op->req, 503, NULL, "no roster module runs");
        return;
    }
    if (op->action) {
        gboolean found = FALSE;
        for (guint i = 0; i < op->items->len && !found; i++)
            found = g_str_equal(((MkRosterContact *)op->items->pdata[i])->jid,
                                mk_jid_bare_string(op->contact));
        if (!found) {
            mk_http_reply_error(op->req, 404, NULL, "%s is not in the roster",
                                mk_jid_bare_string(op->contact));
            return;
        }
        mk_roster_subscription(op->mod, op->user, op->contact,
                               g_str_equal(op->action, "invite") ? "subscribe" : "subscribed");
        mk_http_reply_json(op->req, 204, NULL);
        return;
    }
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_array(b);
    for (guint i = 0; i < op->items->len; i++) {
        const MkRosterContact *c = g_ptr_array_index(op->items, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "jid");
        json_builder_add_string_value(b, c->jid);
        json_builder_set_member_name(b, "subscription");
        json_builder_add_string_value(b, c->subscription);
        json_builder_set_member_name(b, "ask");
        json_builder_add_string_value(b, c->ask);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    mk_http_reply_json(op->req, 200, json_builder_get_root(b));
}

static void contacts_read_start(MkHttpRequest *req, MkJid *user, MkJid *contact, const char *action)
{
    ContactsOp *op = g_new0(ContactsOp, 1);
    op->req = mk_http_request_ref(req);
    op->mod = mk_http_request_module(req);
    op->user = mk_jid_ref(user);
    op->contact = contact ? mk_jid_bare(contact) : NULL;
    op->action = g_strdup(action);
    op->items = g_ptr_array_new_with_free_func((GDestroyNotify)mk_roster_contact_free);
    mk_db_transaction_run(op->mod, contacts_read, contacts_read_done, op, contacts_op_free);
}

static void contacts_list(MkHttpRequest *req, MkJid *user)
{
    contacts_read_start(req, user, NULL, NULL);
}

static void on_changed(const GError *error, gpointer data)
{
    MkHttpRequest *req = data;
    if (!error)
        mk_http_reply_json(req, 204, NULL);
    else if (error->domain == MK_ROSTER_ERROR && error->code == MK_ROSTER_ERROR_NOT_FOUND)
        mk_http_reply_error(req, 404, NULL, "no such contact");
    else if (error->domain == MK_ROSTER_ERROR && error->code == MK_ROSTER_ERROR_REFUSED)
        mk_http_reply_error(req, 403, NULL, "%s", error->message);
    else
        mk_http_reply_error(req, 500, NULL, "%s", error->message);
}

static void change(MkHttpRequest *req, MkJid *user, MkJid *contact, gboolean remove,
                   const char *field)
{
    if (mk_jid_bare_equal(user, contact)) {
        mk_http_reply_error(req, 400, field, "a user is not its own contact");
        return;
    }
    if (!mk_roster_set_item(mk_http_request_module(req), user, contact, NULL, remove, on_changed,
                            mk_http_request_ref(req), (GDestroyNotify)mk_http_request_unref)) {
        mk_http_request_unref(req);
        mk_http_reply_error(req, 503, NULL, "no roster module runs");
    }
}

static void contacts_add(MkHttpRequest *req, MkJid *user)
{
    JsonObject *o = mk_http_request_json(req);
    const char *jid_s;
    if (!o || !mk_http_json_string(req, o, "jid", TRUE, &jid_s))
        return;
    g_autoptr(MkJid) contact = mk_jid_new(jid_s, NULL);
    if (!contact) {
        mk_http_reply_error(req, 400, "jid", "\"%s\" is not a valid JID", jid_s);
        return;
    }
    change(req, user, contact, FALSE, "jid");
}

static MkJid *param_contact(MkHttpRequest *req)
{
    const char *v = mk_http_request_param(req, "jid");
    MkJid *jid = v ? mk_jid_new(v, NULL) : NULL;
    if (!jid)
        mk_http_reply_error(req, 400, "jid", "\"%s\" is not a valid JID", v ? v : "");
    return jid;
}

static void contacts_remove(MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) contact = param_contact(req);
    if (contact)
        change(req, user, contact, TRUE, "jid");
}

static void contacts_subscribe(MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) contact = param_contact(req);
    JsonObject *o = contact ? mk_http_request_json(req) : NULL;
    const char *action;
    if (!o || !mk_http_json_string(req, o, "action", TRUE, &action))
        return;
    if (!g_str_equal(action, "invite") && !g_str_equal(action, "accept")) {
        mk_http_reply_error(req, 400, "action", "action must be \"invite\" or \"accept\"");
        return;
    }
    contacts_read_start(req, user, contact, action);
}

/* ---- the module ---- */

static gboolean rest_client_start(MkModule *mod, GError **error)
{
    const char *prefix = mk_config_get_string(mod, "prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_client: prefix must start with '/' and not end with one");
        return FALSE;
    }
    RestClient *rc = g_new0(RestClient, 1);
    rc->prefix = g_strdup(prefix);
    mk_module_set_data(mod, rc, rest_client_free);
    return rest_client_route(mod, "POST", "/messages", messages_send, error) &&
           rest_client_route(mod, "GET", "/messages", messages_archive, error) &&
           rest_client_route(mod, "GET", "/messages/{with}", messages_archive, error) &&
           rest_client_route(mod, "GET", "/contacts", contacts_list, error) &&
           rest_client_route(mod, "POST", "/contacts", contacts_add, error) &&
           rest_client_route(mod, "PUT", "/contacts/{jid}", contacts_subscribe, error) &&
           rest_client_route(mod, "DELETE", "/contacts/{jid}", contacts_remove, error) &&
           rest_client_route(mod, "GET", "/sse", rest_sse_open, error) &&
           rest_sse_start(mod, rc, error);
}

static void rest_client_stop(MkModule *mod)
{
    RestClient *rc = mk_module_get_data(mod);
    if (rc && rc->sse)
        rest_sse_stop(rc->sse);
}

static const MkConfigKey rest_client_keys[] = {
    {"prefix", MK_CONFIG_STRING, "/api", 0, 0, "path under which the API is served"},
    {"max_sse_streams", MK_CONFIG_INT, "5", 1, 1000, "event streams one user may hold open"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,           .name = "mod_rest_client",  .version = "1.0",
    .config_keys = rest_client_keys, .start = rest_client_start, .stop = rest_client_stop,
};
