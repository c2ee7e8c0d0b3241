/* mod_muc_light over HTTP, the endpoints: MongooseIM's admin
 * PREFIX/muc-lights/{domain}/... (the admin's Basic credentials) and
 * client PREFIX/rooms/... (user@domain and the account's password).
 * Each handler checks the credentials and the request, then hands the
 * action to muclight-rest.c, which carries it out as the acting user's
 * stanza (docs/api.md, docs/mod_muc_light.md). */
#include "muclight.h"

#include <json-glib/json-glib.h>

#define ROOM_ID_CHARS 16

/* ---- request helpers ------------------------------------------------------ */
/* Everything here runs on a worker: the handlers as mk-http.h runs them,
 * the completions where their requests started. */

/* The service of @domain (a served domain or a service itself), or NULL
 * after answering 404. (transfer none) */
static const char *service_of(MucLight *ml, MkHttpRequest *req, const char *domain)
{
    for (guint i = 0; domain && ml->services[i]; i++)
        if (g_ascii_strcasecmp(domain, ml->services[i]) == 0)
            return ml->services[i];
    /* services[i] is the service of the i-th domain at start; domains
     * added since have none (docs/mod_muc_light.md). */
    g_auto(GStrv) domains = mk_module_domains(ml->mod);
    for (guint i = 0; domain && domains[i] && ml->services[i]; i++)
        if (g_ascii_strcasecmp(domain, domains[i]) == 0)
            return ml->services[i];
    mk_http_reply_error(req, 404, NULL, "unknown domain %s", domain ? domain : "");
    return NULL;
}

/* The room @id at @service, or NULL after answering 400 naming @field. */
static MkJid *room_jid(MkHttpRequest *req, const char *service, const char *id, const char *field)
{
    MkJid *room = id && *id ? mk_jid_new_from_parts(id, service, NULL, NULL) : NULL;
    if (!room)
        mk_http_reply_error(req, 400, field, "\"%s\" is not a valid room ID", id ? id : "");
    return room;
}

/* A local user's bare JID from @text, or NULL after answering 400
 * naming @field. */
static MkJid *local_user(MucLight *ml, MkHttpRequest *req, const char *text, const char *field)
{
    g_autoptr(MkJid) jid = text ? mk_jid_new(text, NULL) : NULL;
    if (!jid || !mk_jid_node(jid) || !mk_module_serves_domain(ml->mod, mk_jid_domain(jid))) {
        mk_http_reply_error(req, 400, field, "\"%s\" is not a user of a served domain",
                            text ? text : "");
        return NULL;
    }
    return mk_jid_bare(jid);
}

/* A JID field of the body, bare, or NULL after answering 400. */
static MkJid *field_jid(MkHttpRequest *req, JsonObject *o, const char *field)
{
    const char *v;
    if (!mk_http_json_string(req, o, field, TRUE, &v))
        return NULL;
    g_autoptr(MkJid) jid = mk_jid_new(v, NULL);
    if (!jid || !mk_jid_node(jid)) {
        mk_http_reply_error(req, 400, field, "field \"%s\": \"%s\" is not a user's JID", field, v);
        return NULL;
    }
    return mk_jid_bare(jid);
}

/* before (seconds, default now) and limit (default 100, at most 1000). */
static gboolean paging(MkHttpRequest *req, gint64 *before_us, gint64 *limit)
{
    gint64 before = g_get_real_time() / G_USEC_PER_SEC + 1;
    *limit = 100;
    if (!mk_http_request_query_int(req, "before", G_MAXINT64 / G_USEC_PER_SEC, &before) ||
        !mk_http_request_query_int(req, "limit", 1000, limit))
        return FALSE;
    *before_us = before * G_USEC_PER_SEC;
    return TRUE;
}

/* ---- admin API: PREFIX/muc-lights/{domain}... ---------------------------- */

/* The instance, the service of {domain} and (when @room is not NULL)
 * the room {id} (transfer full); FALSE after answering. */
static gboolean admin_begin(MkHttpRequest *req, MucLight **ml, const char **service, MkJid **room)
{
    *ml = mk_module_get_data(mk_http_request_module(req));
    if (!mk_http_request_check_admin(req, (*ml)->rest_admin_user, (*ml)->rest_admin_password))
        return FALSE;
    *service = service_of(*ml, req, mk_http_request_param(req, "domain"));
    if (!*service)
        return FALSE;
    if (room && !(*room = room_jid(req, *service, mk_http_request_param(req, "id"), "id")))
        return FALSE;
    return TRUE;
}

/* An admin action as a user whose account must exist first (as for
 * mod_rest_admin's POST /api/messages): a room of a user who cannot log
 * in would be no use to anyone. */
typedef enum {
    AA_CREATE,
    AA_INVITE,
    AA_SEND,
} AdminAction;

typedef struct {
    MucLight *ml;
    MkHttpRequest *req; /* ref */
    AdminAction action;
    const char *field; /* static: the field naming the actor */
    MkJid *actor, *room, *other;
    char *name, *subject, *body;
} AdminOp;

static void admin_op_free(AdminOp *op)
{
    mk_http_request_unref(op->req);
    mk_jid_unref(op->actor);
    mk_jid_unref(op->room);
    if (op->other)
        mk_jid_unref(op->other);
    g_free(op->name);
    g_free(op->subject);
    g_free(op->body);
    g_free(op);
}

static void on_actor(MkDbResult *res, const GError *error, gpointer data)
{
    AdminOp *op = data;
    if (error) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    } else if (!mk_db_result_rows(res)) {
        mk_http_reply_error(op->req, 400, op->field, "unknown user %s",
                            mk_jid_bare_string(op->actor));
    } else {
        switch (op->action) {
        case AA_CREATE:
            ml_rest_create(op->ml, op->req, TRUE, op->actor, op->room, op->name, op->subject);
            break;
        case AA_INVITE:
            ml_rest_affiliation(op->ml, op->req, TRUE, op->actor, op->room, op->other, ML_MEMBER);
            break;
        case AA_SEND:
            ml_rest_message(op->ml, op->req, TRUE, op->actor, op->room, op->body);
            break;
        }
    }
    admin_op_free(op);
}

/* Runs @op (transfer full) once its actor's account is found. */
static void admin_as_user(AdminOp *op)
{
    mk_db_query(op->ml->mod, "SELECT 1 FROM users WHERE username = ? AND domain = ?", on_actor, op,
                MK_DB_STR(mk_jid_node(op->actor)), MK_DB_STR(mk_jid_domain(op->actor)));
}

static AdminOp *admin_op_new(MucLight *ml, MkHttpRequest *req, AdminAction action,
                             const char *field, MkJid *actor, MkJid *room)
{
    AdminOp *op = g_new0(AdminOp, 1);
    op->ml = ml;
    op->req = mk_http_request_ref(req);
    op->action = action;
    op->field = field;
    op->actor = mk_jid_ref(actor);
    op->room = mk_jid_ref(room);
    return op;
}

static void admin_create(MkHttpRequest *req, gboolean with_id)
{
    MucLight *ml;
    const char *service, *name, *subject, *id = NULL;
    if (!admin_begin(req, &ml, &service, NULL))
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o || (with_id && !mk_http_json_string(req, o, "id", TRUE, &id)))
        return;
    g_autoptr(MkJid) owner_field = field_jid(req, o, "owner");
    if (!owner_field || !mk_http_json_string(req, o, "name", TRUE, &name) ||
        !mk_http_json_string(req, o, "subject", TRUE, &subject))
        return;
    g_autoptr(MkJid) owner = local_user(ml, req, mk_jid_string(owner_field), "owner");
    if (!owner)
        return;
    g_autofree char *random = with_id ? NULL : ml_random_id(ROOM_ID_CHARS);
    g_autoptr(MkJid) room = room_jid(req, service, with_id ? id : random, "id");
    if (!room)
        return;
    AdminOp *op = admin_op_new(ml, req, AA_CREATE, "owner", owner, room);
    op->name = g_strdup(name);
    op->subject = g_strdup(subject);
    admin_as_user(op);
}

static void admin_create_random(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    admin_create(req, FALSE);
}

static void admin_create_named(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    admin_create(req, TRUE);
}

static void admin_invite(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    MucLight *ml;
    const char *service;
    g_autoptr(MkJid) room = NULL;
    if (!admin_begin(req, &ml, &service, &room))
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o)
        return;
    g_autoptr(MkJid) sender_field = field_jid(req, o, "sender");
    if (!sender_field)
        return;
    g_autoptr(MkJid) recipient = field_jid(req, o, "recipient");
    if (!recipient)
        return;
    g_autoptr(MkJid) sender = local_user(ml, req, mk_jid_string(sender_field), "sender");
    if (!sender)
        return;
    AdminOp *op = admin_op_new(ml, req, AA_INVITE, "sender", sender, room);
    op->other = mk_jid_ref(recipient);
    admin_as_user(op);
}

static void admin_send(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    MucLight *ml;
    const char *service, *body;
    g_autoptr(MkJid) room = NULL;
    if (!admin_begin(req, &ml, &service, &room))
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o)
        return;
    g_autoptr(MkJid) from_field = field_jid(req, o, "from");
    if (!from_field || !mk_http_json_string(req, o, "body", TRUE, &body))
        return;
    g_autoptr(MkJid) from = local_user(ml, req, mk_jid_string(from_field), "from");
    if (!from)
        return;
    AdminOp *op = admin_op_new(ml, req, AA_SEND, "from", from, room);
    op->body = g_strdup(body);
    admin_as_user(op);
}

/* The owner-less admin reads and deletes: the room's row and its owner
 * first, from storage. */
typedef struct {
    MucLight *ml;
    MkHttpRequest *req; /* ref */
    MkJid *room;
    gboolean destroy; /* else: read the archive */
    gint64 before_us, limit;
} Lookup;

static void lookup_done(MkDbResult *res, const GError *error, gpointer data)
{
    Lookup *l = data;
    if (error) {
        mk_http_reply_error(l->req, 500, NULL, "%s", error->message);
    } else if (!mk_db_result_rows(res)) {
        mk_http_reply_error(l->req, 404, NULL, "no room %s", mk_jid_string(l->room));
    } else if (l->destroy) {
        const char *owner = mk_db_result_get_string(res, 0, 1);
        g_autoptr(MkJid) jid = owner ? mk_jid_new(owner, NULL) : NULL;
        if (!jid)
            mk_http_reply_error(l->req, 409, NULL, "room %s has no owner to destroy it",
                                mk_jid_string(l->room));
        else
            ml_rest_destroy(l->ml, l->req, jid, l->room);
    } else {
        ml_rest_archive(l->ml, l->req, NULL, l->room, l->before_us, l->limit);
    }
    mk_http_request_unref(l->req);
    mk_jid_unref(l->room);
    g_free(l);
}

static void lookup(MucLight *ml, MkHttpRequest *req, MkJid *room, gboolean destroy,
                   gint64 before_us, gint64 limit)
{
    Lookup *l = g_new0(Lookup, 1);
    l->ml = ml;
    l->req = mk_http_request_ref(req);
    l->room = mk_jid_ref(room);
    l->destroy = destroy;
    l->before_us = before_us;
    l->limit = limit;
    mk_db_query(ml->mod,
                "SELECT r.room, o.jid FROM muclight_rooms r LEFT JOIN muclight_occupants o"
                " ON o.room = r.room AND o.aff = 2 WHERE r.room = ?",
                lookup_done, l, MK_DB_STR(mk_jid_string(room)));
}

static void admin_messages(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    MucLight *ml;
    const char *service;
    g_autoptr(MkJid) room = NULL;
    gint64 before_us, limit;
    if (!admin_begin(req, &ml, &service, &room) || !paging(req, &before_us, &limit))
        return;
    lookup(ml, req, room, FALSE, before_us, limit);
}

static void admin_delete(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    MucLight *ml;
    const char *service;
    g_autoptr(MkJid) room = NULL;
    if (!admin_begin(req, &ml, &service, &room))
        return;
    const char *owner_text = mk_http_request_param(req, "owner");
    if (!owner_text) {
        lookup(ml, req, room, TRUE, 0, 0);
        return;
    }
    g_autoptr(MkJid) owner = local_user(ml, req, owner_text, "owner");
    if (owner)
        ml_rest_destroy(ml, req, owner, room);
}

/* ---- client API: PREFIX/rooms... ------------------------------------------ */

typedef void (*ClientFunc)(MucLight *ml, MkHttpRequest *req, MkJid *user);

static void call_client(MkHttpRequest *req, MkJid *user, gpointer func)
{
    ((ClientFunc)func)(mk_module_get_data(mk_http_request_module(req)), req, user);
}

/* Every client route: the user's credentials (as a PLAIN login would
 * check them; the core answers 401 or 429 itself), then the handler. */
static void client_auth(MkHttpRequest *req, gpointer user_data)
{
    mk_http_request_check_user(req, call_client, user_data);
}

/* The user's service and the room {id} there, or NULL after answering. */
static MkJid *client_room(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    const char *service = service_of(ml, req, mk_jid_domain(user));
    return service ? room_jid(req, service, mk_http_request_param(req, "id"), "id") : NULL;
}

static void rooms_listed(MkDbResult *res, const GError *error, gpointer data)
{
    g_autoptr(MkHttpRequest) req = data;
    if (error) {
        mk_http_reply_error(req, 500, NULL, "%s", error->message);
        return;
    }
    JsonArray *a = json_array_new();
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        g_autoptr(MkJid) room = mk_jid_new(mk_db_result_get_string(res, i, 0), NULL);
        if (!room)
            continue;
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "id", mk_jid_node(room));
        json_object_set_string_member(o, "name", mk_db_result_get_string(res, i, 1));
        json_object_set_string_member(o, "subject", mk_db_result_get_string(res, i, 2));
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    mk_http_reply_json(req, 200, n);
}

static void client_list(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    mk_db_query(ml->mod,
                "SELECT r.room, r.roomname, r.subject FROM muclight_occupants o"
                " JOIN muclight_rooms r ON r.room = o.room WHERE o.jid = ? ORDER BY r.room",
                rooms_listed, mk_http_request_ref(req), MK_DB_STR(mk_jid_bare_string(user)));
}

/* name and subject of a body: @required for a creation, at least one
 * for a configuration change. FALSE after answering 400. */
static gboolean name_subject(MkHttpRequest *req, JsonObject *o, gboolean required,
                             const char **name, const char **subject)
{
    if (!mk_http_json_string(req, o, "name", required, name) ||
        !mk_http_json_string(req, o, "subject", required, subject))
        return FALSE;
    if (!*name && !*subject) {
        mk_http_reply_error(req, 400, "name", "give \"name\" or \"subject\"");
        return FALSE;
    }
    return TRUE;
}

static void client_create(MucLight *ml, MkHttpRequest *req, MkJid *user, const char *id)
{
    const char *name, *subject;
    JsonObject *o = mk_http_request_json(req);
    if (!o || !name_subject(req, o, TRUE, &name, &subject))
        return;
    const char *service = service_of(ml, req, mk_jid_domain(user));
    g_autofree char *random = id ? NULL : ml_random_id(ROOM_ID_CHARS);
    g_autoptr(MkJid) room = service ? room_jid(req, service, id ? id : random, "id") : NULL;
    if (room)
        ml_rest_create(ml, req, FALSE, user, room, name, subject);
}

static void client_create_random(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    client_create(ml, req, user, NULL);
}

static void client_create_named(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    client_create(ml, req, user, mk_http_request_param(req, "id"));
}

static void client_details(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (room)
        ml_rest_details(ml, req, user, room);
}

static void client_config(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    const char *name, *subject;
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o || !name_subject(req, o, FALSE, &name, &subject))
        return;
    ml_rest_config(ml, req, user, room, name, subject);
}

static void client_add_user(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o)
        return;
    g_autoptr(MkJid) who = field_jid(req, o, "user");
    if (who)
        ml_rest_affiliation(ml, req, FALSE, user, room, who, ML_MEMBER);
}

static void client_remove_user(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (!room)
        return;
    const char *text = mk_http_request_param(req, "user");
    g_autoptr(MkJid) who = text ? mk_jid_new(text, NULL) : NULL;
    if (!who || !mk_jid_node(who)) {
        mk_http_reply_error(req, 400, "user", "\"%s\" is not a user's JID", text ? text : "");
        return;
    }
    ml_rest_affiliation(ml, req, FALSE, user, room, who, ML_NONE);
}

static void client_send(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    const char *body;
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (o && mk_http_json_string(req, o, "body", TRUE, &body))
        ml_rest_message(ml, req, FALSE, user, room, body);
}

static void client_messages(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    gint64 before_us, limit;
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (room && paging(req, &before_us, &limit))
        ml_rest_archive(ml, req, user, room, before_us, limit);
}

/* ---- registration ----------------------------------------------------------- */

static gboolean route(MkModule *mod, const char *method, const char *prefix, const char *rest,
                      MkHttpFunc func, gpointer data, GError **error)
{
    g_autofree char *pattern = g_strconcat(prefix, rest, NULL);
    return mk_http_route_add(mod, method, pattern, func, data, error);
}

gboolean ml_rest_start(MucLight *ml, GError **error)
{
    ml_rest_open(ml);
    MkModule *mod = ml->mod;
    const char *p = ml->rest_prefix;
    static const struct {
        const char *method, *path;
        MkHttpFunc func;
    } admin[] = {
        {"POST", "/muc-lights/{domain}", admin_create_random},
        {"PUT", "/muc-lights/{domain}", admin_create_named},
        {"POST", "/muc-lights/{domain}/{id}/participants", admin_invite},
        {"POST", "/muc-lights/{domain}/{id}/messages", admin_send},
        {"GET", "/muc-lights/{domain}/{id}/messages", admin_messages},
        {"DELETE", "/muc-lights/{domain}/{id}/management", admin_delete},
        {"DELETE", "/muc-lights/{domain}/{id}/{owner}/management", admin_delete},
    };
    static const struct {
        const char *method, *path;
        ClientFunc func;
    } client[] = {
        {"GET", "/rooms", client_list},
        {"POST", "/rooms", client_create_random},
        {"PUT", "/rooms/{id}", client_create_named},
        {"GET", "/rooms/{id}", client_details},
        {"PUT", "/rooms/{id}/config", client_config},
        {"POST", "/rooms/{id}/users", client_add_user},
        {"DELETE", "/rooms/{id}/users/{user}", client_remove_user},
        {"POST", "/rooms/{id}/messages", client_send},
        {"GET", "/rooms/{id}/messages", client_messages},
    };
    for (guint i = 0; i < G_N_ELEMENTS(admin); i++)
        if (!route(mod, admin[i].method, p, admin[i].path, admin[i].func, NULL, error))
            return FALSE;
    for (guint i = 0; i < G_N_ELEMENTS(client); i++)
        if (!route(mod, client[i].method, p, client[i].path, client_auth, (gpointer)client[i].func,
                   error))
            return FALSE;
    return TRUE;
}
