/* mod_muc over HTTP: MongooseIM's admin PREFIX/mucs/{domain}/{name}/...
 * (the admin's Basic credentials), registered through mk-http.h.
 *
 * REST is another front door, not a second implementation: each request
 * becomes the stanza the acting user's XMPP client would send (a
 * mediated invitation, a groupchat message), sent with mk_router_send_as,
 * so every check, limit and notification of the room applies. The HTTP
 * answer (204) says the stanza was handed to the room; a refusal of the
 * room reaches the acting user's sessions as an XMPP error, as it would
 * for their client (docs/mod_muc.md). A kick has no acting user: it is
 * carried out on the room's worker, as a moderator's would be. */
#include "muc.h"

#include <json-glib/json-glib.h>

/* Everything here runs on a worker, as mk-http.h runs its handlers. */

static gboolean admin_authorized(Muc *muc, MkHttpRequest *req)
{
    if (!muc->rest_admin_password) {
        mk_http_reply_error(req, 403, NULL, "no rest_admin_password_file configured");
        return FALSE;
    }
    const char *user = "", *password = "";
    gboolean ok = mk_http_request_basic_auth(req, &user, &password);
    /* Non-short-circuit: both comparisons always run. */
    ok = ok & mk_http_secret_equal(user, muc->rest_admin_user) &
         mk_http_secret_equal(password, muc->rest_admin_password);
    if (!ok)
        mk_http_reply_unauthorized(req, "meerkat admin");
    return ok;
}

/* The room {name} at the service {domain} (a served domain or its MUC
 * service), or NULL after answering 401/403/404/400. (transfer full) */
static MkJid *admin_room(MkHttpRequest *req, Muc **out)
{
    Muc *muc = mk_module_get_data(mk_http_request_module(req));
    *out = muc;
    if (!admin_authorized(muc, req))
        return NULL;
    const char *domain = mk_http_request_param(req, "domain");
    const char *service = NULL;
    for (guint i = 0; domain && i < muc->services->len; i++) {
        MucService *s = g_ptr_array_index(muc->services, i);
        if (g_ascii_strcasecmp(domain, s->service) == 0 || g_ascii_strcasecmp(domain, s->host) == 0)
            service = s->service;
    }
    if (!service) {
        mk_http_reply_error(req, 404, NULL, "unknown domain %s", domain ? domain : "");
        return NULL;
    }
    const char *name = mk_http_request_param(req, "name");
    MkJid *room = name && *name ? mk_jid_new_from_parts(name, service, NULL, NULL) : NULL;
    if (!room || (gint64)g_utf8_strlen(name, -1) > muc->max_room_name) {
        if (room)
            mk_jid_unref(room);
        mk_http_reply_error(req, 400, "name", "\"%s\" is not a valid room name", name ? name : "");
        return NULL;
    }
    return room;
}

/* A JID of a local user from the body's @field (a full JID is kept: an
 * occupant is one of the user's sessions), or NULL after answering 400. */
static MkJid *local_user(Muc *muc, MkHttpRequest *req, JsonObject *o, const char *field)
{
    const char *v;
    if (!mk_http_json_string(req, o, field, TRUE, &v))
        return NULL;
    g_autoptr(MkJid) jid = mk_jid_new(v, NULL);
    if (!jid || !mk_jid_node(jid) || !mk_module_serves_domain(muc->mod, mk_jid_domain(jid))) {
        mk_http_reply_error(req, 400, field,
                            "field \"%s\": \"%s\" is not a user of a served domain", field, v);
        return NULL;
    }
    return g_steal_pointer(&jid);
}

/* A request for a room, carried out on the room's owner worker (the only
 * thread that may look at a live room). */
typedef struct {
    Muc *muc;
    MkHttpRequest *req; /* ref */
    MkJid *room;
    MkStanza *st; /* nullable: a stanza to hand to the room */
    char *nick;   /* nullable: the occupant to kick */
} RoomOp;

static void room_op_free(gpointer data)
{
    RoomOp *op = data;
    mk_http_request_unref(op->req);
    mk_jid_unref(op->room);
    if (op->st)
        mk_stanza_unref(op->st);
    g_free(op->nick);
    g_free(op);
}

static void hand_over(RoomOp *op)
{
    mk_router_send_as(op->st);
    mk_http_reply_json(op->req, 204, NULL);
}

static void stored_room(MkDbResult *res, const GError *error, gpointer data)
{
    RoomOp *op = data;
    if (error)
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    else if (!mk_db_result_rows(res))
        mk_http_reply_error(op->req, 404, NULL, "no room %s", mk_jid_string(op->room));
    else
        hand_over(op);
    room_op_free(op);
}

/* The room's worker: a kick happens here; a stanza goes to a room that
 * is live or stored, else 404 (an unknown name would create a room). */
static gboolean room_op_run(gpointer data)
{
    RoomOp *op = data;
    Muc *muc = op->muc;
    g_mutex_lock(&muc->lock);
    MucRoom *room = g_hash_table_lookup(muc->rooms, mk_jid_bare_string(op->room));
    g_mutex_unlock(&muc->lock);
    if (room && room->loading)
        room = NULL; /* a loading room has no occupants yet */
    if (op->nick) {
        MucOccupant *o = room ? g_hash_table_lookup(room->occupants, op->nick) : NULL;
        if (!o) {
            mk_http_reply_error(op->req, 404, NULL, "no occupant %s in %s", op->nick,
                                mk_jid_string(op->room));
        } else {
            static const int kicked[] = {307, 0};
            muc_occupant_remove(room, o, kicked, "kicked by the administrator", NULL);
            muc_room_maybe_idle(room);
            mk_http_reply_json(op->req, 204, NULL);
        }
    } else if (room) {
        hand_over(op);
    } else {
        /* The post frees @op: the query gets a copy. */
        RoomOp *q = g_new0(RoomOp, 1);
        q->muc = muc;
        q->req = mk_http_request_ref(op->req);
        q->room = mk_jid_ref(op->room);
        q->st = mk_stanza_ref(op->st);
        mk_db_query(muc->mod, "SELECT 1 FROM muc_rooms WHERE service = ? AND name = ?", stored_room,
                    q, MK_DB_STR(mk_jid_domain(q->room)), MK_DB_STR(mk_jid_node(q->room)));
    }
    return G_SOURCE_REMOVE;
}

static void room_op_post(Muc *muc, MkHttpRequest *req, MkJid *room, MkStanza *st, const char *nick)
{
    RoomOp *op = g_new0(RoomOp, 1);
    op->muc = muc;
    op->req = mk_http_request_ref(req);
    op->room = mk_jid_ref(room);
    op->st = st ? mk_stanza_ref(st) : NULL;
    op->nick = g_strdup(nick);
    mk_owner_post(muc->mod, mk_jid_bare_string(room), room_op_run, op, room_op_free);
}

/* Hands @xml (transfer none) from @from to @room as the user's client
 * would, once the room is known to exist. */
static void send_as(Muc *muc, MkHttpRequest *req, MkXml *xml, MkJid *from, MkJid *room)
{
    g_autofree char *uuid = g_uuid_string_random();
    g_autofree char *id = g_strconcat("rest-", uuid, NULL);
    mk_xml_set_attr(xml, "id", id);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, from, room);
    room_op_post(muc, req, room, st, NULL);
}

/* DELETE /mucs/{domain}/{name}/{nick}: the occupant leaves with 307, as
 * a moderator's kick (XEP-0045 8.2) would make it. */
static void admin_kick(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    Muc *muc;
    g_autoptr(MkJid) room = admin_room(req, &muc);
    if (room)
        room_op_post(muc, req, room, NULL, mk_http_request_param(req, "nick"));
}

/* POST /mucs/{domain}/{name}/participants {sender, recipient, reason}:
 * a mediated invitation (XEP-0045 7.8.2) from the sender. */
static void admin_invite(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    Muc *muc;
    g_autoptr(MkJid) room = admin_room(req, &muc);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o)
        return;
    g_autoptr(MkJid) sender = local_user(muc, req, o, "sender");
    if (!sender)
        return;
    const char *recipient_text, *reason;
    if (!mk_http_json_string(req, o, "recipient", TRUE, &recipient_text) ||
        !mk_http_json_string(req, o, "reason", FALSE, &reason))
        return;
    g_autoptr(MkJid) recipient = mk_jid_new(recipient_text, NULL);
    if (!recipient || !mk_jid_node(recipient)) {
        mk_http_reply_error(req, 400, "recipient", "\"%s\" is not a user's JID", recipient_text);
        return;
    }
    g_autoptr(MkXml) msg = mk_xml_new("message", NS_CLIENT);
    MkXml *invite = mk_xml_add_child(mk_xml_add_child(msg, "x", NS_MUC_USER), "invite", NULL);
    mk_xml_set_attr(invite, "to", mk_jid_bare_string(recipient));
    if (reason && *reason)
        mk_xml_add_text(mk_xml_add_child(invite, "reason", NULL), reason, -1);
    send_as(muc, req, msg, sender, room);
}

/* POST /mucs/{domain}/{name}/messages {from, body}: a groupchat message
 * from one of the user's sessions (an occupant's full JID). */
static void admin_send(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    Muc *muc;
    g_autoptr(MkJid) room = admin_room(req, &muc);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (!o)
        return;
    g_autoptr(MkJid) from = local_user(muc, req, o, "from");
    const char *body;
    if (!from || !mk_http_json_string(req, o, "body", TRUE, &body))
        return;
    g_autoptr(MkXml) msg = mk_xml_new("message", NS_CLIENT);
    mk_xml_set_attr(msg, "type", "groupchat");
    mk_xml_add_text(mk_xml_add_child(msg, "body", NULL), body, -1);
    send_as(muc, req, msg, from, room);
}

gboolean muc_rest_start(Muc *muc, GError **error)
{
    static const struct {
        const char *method, *path;
        MkHttpFunc func;
    } admin[] = {
        {"POST", "/mucs/{domain}/{name}/participants", admin_invite},
        {"POST", "/mucs/{domain}/{name}/messages", admin_send},
        {"DELETE", "/mucs/{domain}/{name}/{nick}", admin_kick},
    };
    for (guint i = 0; i < G_N_ELEMENTS(admin); i++) {
        g_autofree char *pattern = g_strconcat(muc->rest_prefix, admin[i].path, NULL);
        if (!mk_http_route_add(muc->mod, admin[i].method, pattern, admin[i].func, NULL, error))
            return FALSE;
    }
    return TRUE;
}
