/* mod_muc over HTTP: MongooseIM's admin PREFIX/mucs/{domain}/{name}/...
 * (the admin's Basic credentials), registered through mk-http.h.
 *
 * REST is another front door, not a second implementation: a message or
 * an invitation becomes the stanza the acting user's XMPP client would
 * send, handed to the room on the room's owner worker (muc_dispatch), so
 * every check, limit and notification of the room applies. A live room
 * answers such a stanza at once, within that call: an error it sends
 * back to the sender (id "rest-UUID") is caught by a filter_local_packet
 * handler before it reaches the user, and becomes the HTTP answer; no
 * error means the room took it (204). A kick has no acting user: it is
 * carried out on the room's worker, as a moderator's would be. The
 * archive is read through the room archive service (mod_mam). */
#include "muc.h"

#include <json-glib/json-glib.h>

/* Everything here runs on a worker, as mk-http.h runs its handlers. */

/* The MUC service that {domain} names (a served domain or its service),
 * or NULL after answering 404. (transfer none) */
static const char *admin_service(MkHttpRequest *req, Muc *muc)
{
    const char *domain = mk_http_request_param(req, "domain");
    for (guint i = 0; domain && i < muc->services->len; i++) {
        MucService *s = g_ptr_array_index(muc->services, i);
        if (g_ascii_strcasecmp(domain, s->service) == 0 || g_ascii_strcasecmp(domain, s->host) == 0)
            return s->service;
    }
    mk_http_reply_error(req, 404, NULL, "unknown domain %s", domain ? domain : "");
    return NULL;
}

/* The room {name} at the service {domain} (a served domain or its MUC
 * service), or NULL after answering 401/403/404/400. (transfer full) */
static MkJid *admin_room(MkHttpRequest *req, Muc **out)
{
    Muc *muc = mk_module_get_data(mk_http_request_module(req));
    *out = muc;
    if (!mk_http_request_check_admin(req, muc->rest_admin_user, muc->rest_admin_password))
        return NULL;
    const char *service = admin_service(req, muc);
    if (!service)
        return NULL;
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

#define REST_ID "rest-"

/* Errors the room answers to a stanza from REST, caught on their way to
 * the sender: stanza id -> Capture. Filled and emptied on the room's
 * owner worker within one muc_dispatch call; the lock is for the other
 * workers' lookups of their own ids. */
typedef struct {
    char *actor;     /* the full JID the stanza is from */
    char *condition; /* nullable: the room's error, once caught */
    char *text;
} Capture;

static GMutex capture_lock;
static GHashTable *captures; /* id -> Capture* (not owned) */

/* The first stanza-error condition of @st. (transfer none) */
static const char *error_condition(MkStanza *st, char **text)
{
    MkXml *error = mk_xml_child(mk_stanza_xml(st), "error", NULL);
    const char *cond = "undefined-condition";
    *text = NULL;
    for (guint i = 0; error && i < mk_xml_child_count(error); i++) {
        MkXml *el = mk_xml_child_at(error, i);
        if (mk_xml_is_text(el) || g_strcmp0(mk_xml_ns(el), NS_STANZAS) != 0)
            continue;
        if (g_str_equal(mk_xml_name(el), "text"))
            *text = mk_xml_text(el);
        else if (g_str_equal(cond, "undefined-condition"))
            cond = mk_xml_name(el);
    }
    return cond;
}

static gboolean has_status(MkXml *x, const char *code)
{
    for (guint i = 0; x && i < mk_xml_child_count(x); i++) {
        MkXml *el = mk_xml_child_at(x, i);
        if (!mk_xml_is_text(el) && g_str_equal(mk_xml_name(el), "status") &&
            g_strcmp0(mk_xml_get_attr(el, "code"), code) == 0)
            return TRUE;
    }
    return FALSE;
}

/* filter_local_packet, any worker: the room's error to a REST stanza. */
static MkResult on_room_error(MkHookCall *call, gpointer data)
{
    (void)data;
    MkStanza *st = mk_hook_call_stanza(call);
    const char *id = st ? mk_stanza_id(st) : NULL;
    if (!id || !g_str_has_prefix(id, REST_ID) || !mk_stanza_is_error(st) || !mk_stanza_to(st))
        return MK_PASS;
    g_mutex_lock(&capture_lock);
    Capture *c = captures ? g_hash_table_lookup(captures, id) : NULL;
    if (c && g_str_equal(c->actor, mk_jid_string(mk_stanza_to(st))) && !c->condition)
        c->condition = g_strdup(error_condition(st, &c->text));
    g_mutex_unlock(&capture_lock);
    return c ? MK_HANDLED : MK_PASS;
}

/* The HTTP status of the room's stanza error @condition. */
static guint status_of(const char *condition)
{
    static const struct {
        const char *condition;
        guint status;
    } map[] = {
        {"bad-request", 400},           {"jid-malformed", 400},       {"forbidden", 403},
        {"not-acceptable", 403},        {"not-allowed", 403},         {"not-authorized", 403},
        {"registration-required", 403}, {"item-not-found", 404},      {"conflict", 409},
        {"service-unavailable", 503},   {"resource-constraint", 503},
    };
    for (guint i = 0; i < G_N_ELEMENTS(map); i++)
        if (g_str_equal(condition, map[i].condition))
            return map[i].status;
    return 500;
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

/* The room's worker: hands @op's stanza to the live room @room and
 * answers with what it said. */
static void hand_over(RoomOp *op)
{
    Capture c = {.actor = (char *)mk_jid_string(mk_stanza_from(op->st))};
    const char *id = mk_stanza_id(op->st);
    g_mutex_lock(&capture_lock);
    if (!captures)
        captures = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(captures, (gpointer)id, &c);
    g_mutex_unlock(&capture_lock);
    muc_dispatch(op->muc, op->st);
    g_mutex_lock(&capture_lock);
    g_hash_table_remove(captures, id);
    g_mutex_unlock(&capture_lock);
    if (c.condition)
        mk_http_reply_error(op->req, status_of(c.condition), NULL, "%s: %s", c.condition,
                            c.text ? c.text : "refused by the room");
    else
        mk_http_reply_json(op->req, 204, NULL);
    g_free(c.condition);
    g_free(c.text);
}

static void stored_room(MkDbResult *res, const GError *error, gpointer data)
{
    RoomOp *op = data;
    if (error)
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    else if (!mk_db_result_rows(res))
        mk_http_reply_error(op->req, 404, NULL, "no room %s", mk_jid_string(op->room));
    else /* stored but not in memory: nobody is in it (XEP-0045 7.4, 7.8.2) */
        mk_http_reply_error(op->req, 403, NULL,
                            "not-acceptable: %s is not an occupant of %s (the room is empty)",
                            mk_jid_string(mk_stanza_from(op->st)), mk_jid_string(op->room));
    room_op_free(op);
}

/* The room's worker: a kick happens here; a stanza goes to a room in
 * memory; of a room that is not, storage says whether it exists (an
 * unknown name would create a room). */
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

/* In a cluster a room lives on its home node (docs/clustering.md,
 * Rooms): a stanza for a room homed elsewhere goes there as the user's
 * client's would (one hop, routed again on the home), and the answer is
 * 202 naming the home: the room's verdict stays on that node (an error
 * goes to the user's sessions). A kick has no stanza to carry and acts
 * on the node asked. TRUE when answered. Any worker. */
static gboolean room_op_elsewhere(Muc *muc, MkHttpRequest *req, MkJid *room, MkStanza *st)
{
    const char *key = mk_jid_bare_string(room);
    if (!st || !mk_cluster_active() || muc_home_take(muc, key, st))
        return FALSE;
    g_autofree char *home = mk_cluster_home_node(key);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "home", home ? home : "");
    json_node_take_object(n, o);
    mk_http_reply_json(req, 202, n);
    return TRUE;
}

static void room_op_post(Muc *muc, MkHttpRequest *req, MkJid *room, MkStanza *st, const char *nick)
{
    if (room_op_elsewhere(muc, req, room, st))
        return;
    RoomOp *op = g_new0(RoomOp, 1);
    op->muc = muc;
    op->req = mk_http_request_ref(req);
    op->room = mk_jid_ref(room);
    op->st = st ? mk_stanza_ref(st) : NULL;
    op->nick = g_strdup(nick);
    mk_owner_post(muc->mod, mk_jid_bare_string(room), room_op_run, op, room_op_free);
}

/* Hands @xml (transfer none) from @from to @room as the user's client
 * would. */
static void send_as(Muc *muc, MkHttpRequest *req, MkXml *xml, MkJid *from, MkJid *room)
{
    g_autofree char *uuid = g_uuid_string_random();
    g_autofree char *id = g_strconcat(REST_ID, uuid, NULL);
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

/* GET /mucs/{domain}/{name}/messages: the room's archive, oldest first,
 * as the records of mod_rest_admin's GET /messages/{owner}. */
typedef struct {
    Muc *muc;
    MkHttpRequest *req; /* ref */
    MkJid *room;
    gint64 before_us, limit;
} ArchiveRead;

static void archive_read_free(gpointer data)
{
    ArchiveRead *ar = data;
    mk_http_request_unref(ar->req);
    mk_jid_unref(ar->room);
    g_free(ar);
}

static void archive_read(GPtrArray *messages, const GError *error, gpointer data)
{
    ArchiveRead *ar = data;
    if (error) {
        mk_http_reply_error(ar->req, 500, NULL, "%s", error->message);
        return;
    }
    JsonArray *a = json_array_sized_new(messages->len);
    for (guint i = 0; i < messages->len; i++) {
        MkArchivedMessage *m = g_ptr_array_index(messages, i);
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "sender", m->sender);
        json_object_set_int_member(o, "timestamp", m->when_us / G_USEC_PER_SEC);
        json_object_set_string_member(o, "message_id", m->id);
        json_object_set_string_member(o, "body", m->body);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    mk_http_reply_json(ar->req, 200, n);
}

/* The room exists (in memory or stored): read its archive. */
static void archive_room_known(ArchiveRead *ar)
{
    if (!mk_room_archive_messages(ar->muc->mod, ar->room, ar->before_us, (guint)ar->limit,
                                  archive_read, ar, archive_read_free)) {
        mk_http_reply_error(ar->req, 503, NULL, "no archive runs for %s (mod_mam)",
                            mk_jid_domain(ar->room));
        archive_read_free(ar);
    }
}

static void archive_room_stored(MkDbResult *res, const GError *error, gpointer data)
{
    ArchiveRead *ar = data;
    if (error || !mk_db_result_rows(res)) {
        if (error)
            mk_http_reply_error(ar->req, 500, NULL, "%s", error->message);
        else
            mk_http_reply_error(ar->req, 404, NULL, "no room %s", mk_jid_string(ar->room));
        archive_read_free(ar);
        return;
    }
    archive_room_known(ar);
}

static void admin_messages(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    Muc *muc;
    g_autoptr(MkJid) room = admin_room(req, &muc);
    if (!room)
        return;
    gint64 before = g_get_real_time() / G_USEC_PER_SEC + 1, limit = 100;
    if (!mk_http_request_query_int(req, "before", G_MAXINT64 / G_USEC_PER_SEC, &before) ||
        !mk_http_request_query_int(req, "limit", 1000, &limit))
        return;
    ArchiveRead *ar = g_new0(ArchiveRead, 1);
    ar->muc = muc;
    ar->req = mk_http_request_ref(req);
    ar->room = g_steal_pointer(&room);
    ar->before_us = before * G_USEC_PER_SEC;
    ar->limit = limit;
    g_mutex_lock(&muc->lock);
    gboolean live = g_hash_table_contains(muc->rooms, mk_jid_bare_string(ar->room));
    g_mutex_unlock(&muc->lock);
    if (live)
        archive_room_known(ar);
    else
        mk_db_query(muc->mod, "SELECT 1 FROM muc_rooms WHERE service = ? AND name = ?",
                    archive_room_stored, ar, MK_DB_STR(mk_jid_domain(ar->room)),
                    MK_DB_STR(mk_jid_node(ar->room)));
}

/* ---- POST /mucs/{domain} {name, owner, nick}: room creation ------------
 * As the owner's client creates a room (XEP-0045 10.1): a join from a
 * resource of the owner's that only this request uses (rest-UUID), the
 * configuration form submitted (persistent: a room made by the API
 * outlives its empty state), then the owner leaves. The room's answers
 * to that resource are taken by on_room_error's neighbour on_creation
 * and drive the steps; nothing of it reaches the owner's clients. */

#define CREATE_TIMEOUT_US (30 * G_USEC_PER_SEC)

typedef struct {
    Muc *muc;
    MkHttpRequest *req; /* ref */
    MkJid *room;        /* bare */
    MkJid *occupant;    /* room/nick */
    MkJid *sink;        /* owner/rest-UUID: the stanzas' from */
    gboolean configuring;
    gint64 since_us;
} Creation;

static GHashTable *creations; /* "rest-UUID" -> Creation*; under capture_lock */

static void creation_free(gpointer data)
{
    Creation *c = data;
    mk_http_request_unref(c->req);
    mk_jid_unref(c->room);
    mk_jid_unref(c->occupant);
    mk_jid_unref(c->sink);
    g_free(c);
}

/* Sends @xml (transfer none) from the sink to @to, through the router
 * (the room's worker takes it later: never into the room from within
 * its own handling). */
static void creation_send(Creation *c, MkXml *xml, MkJid *to)
{
    mk_xml_set_attr(xml, "id", mk_jid_resource(c->sink));
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, c->sink, to);
    mk_router_send(st);
}

static void creation_leave(Creation *c)
{
    g_autoptr(MkXml) p = mk_xml_new("presence", NS_CLIENT);
    mk_xml_set_attr(p, "type", "unavailable");
    creation_send(c, p, c->occupant);
}

/* One answer of the room to a creation; FALSE when @c is finished (it
 * answered the request). The room's worker, in its handling. */
static gboolean creation_step(Creation *c, MkStanza *st)
{
    g_autofree char *text = NULL;
    if (mk_stanza_is_error(st)) {
        const char *cond = error_condition(st, &text);
        mk_http_reply_error(c->req, status_of(cond), NULL, "%s: %s", cond,
                            text ? text : "refused by the room");
        if (c->configuring)
            creation_leave(c); /* a locked room its owner leaves goes */
        return FALSE;
    }
    if (mk_stanza_kind(st) == MK_STANZA_PRESENCE && !c->configuring &&
        mk_jid_equal(mk_stanza_from(st), c->occupant)) {
        MkXml *x = mk_xml_child(mk_stanza_xml(st), "x", NS_MUC_USER);
        if (!has_status(x, "110"))
            return TRUE;
        if (!has_status(x, "201")) {
            creation_leave(c);
            mk_http_reply_error(c->req, 409, NULL, "room %s exists already",
                                mk_jid_string(c->room));
            return FALSE;
        }
        g_autoptr(MkXml) iq = mk_xml_new("iq", NS_CLIENT);
        mk_xml_set_attr(iq, "type", "set");
        MkXml *form = mk_xml_add_child(mk_xml_add_child(iq, "query", NS_MUC_OWNER), "x", NS_DATA);
        mk_xml_set_attr(form, "type", "submit");
        muc_form_field(form, "FORM_TYPE", NULL, NULL, "http://jabber.org/protocol/muc#roomconfig");
        muc_form_field(form, "muc#roomconfig_persistentroom", NULL, NULL, "1");
        c->configuring = TRUE;
        creation_send(c, iq, c->room);
        return TRUE;
    }
    if (mk_stanza_kind(st) == MK_STANZA_IQ && c->configuring) {
        creation_leave(c);
        mk_http_reply_json(c->req, 201,
                           json_node_init_string(json_node_alloc(), mk_jid_string(c->room)));
        return FALSE;
    }
    return TRUE; /* the subject, history, others' presence: not for us */
}

/* filter_local_packet, any worker: what the room sends a creation's
 * resource. */
static MkResult on_creation(MkHookCall *call, gpointer data)
{
    (void)data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = st ? mk_stanza_to(st) : NULL;
    const char *key = to ? mk_jid_resource(to) : NULL;
    if (!key || !g_str_has_prefix(key, REST_ID))
        return MK_PASS;
    g_mutex_lock(&capture_lock);
    Creation *c = creations ? g_hash_table_lookup(creations, key) : NULL;
    if (c && !mk_jid_equal(c->sink, to))
        c = NULL;
    if (c)
        g_hash_table_steal(creations, key); /* ours while we step */
    g_mutex_unlock(&capture_lock);
    if (!c)
        return MK_PASS;
    if (!creation_step(c, st)) {
        creation_free(c);
        return MK_HANDLED;
    }
    g_mutex_lock(&capture_lock);
    if (creations) {
        g_hash_table_insert(creations, (gpointer)mk_jid_resource(c->sink), c);
        c = NULL;
    }
    g_mutex_unlock(&capture_lock);
    if (c) { /* the module stopped meanwhile */
        mk_http_reply_error(c->req, 503, NULL, "the server is stopping");
        creation_free(c);
    }
    return MK_HANDLED;
}

/* Main thread, a timer: creations the room never answered get 504. */
static gboolean creation_sweep(gpointer data)
{
    Muc *muc = data;
    gint64 now = g_get_monotonic_time();
    g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(creation_free);
    g_mutex_lock(&capture_lock);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, creations);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Creation *c = v;
        if (c->muc == muc && now - c->since_us > CREATE_TIMEOUT_US) {
            g_hash_table_iter_steal(&it);
            g_ptr_array_add(stale, c);
        }
    }
    g_mutex_unlock(&capture_lock);
    for (guint i = 0; i < stale->len; i++)
        mk_http_reply_error(((Creation *)g_ptr_array_index(stale, i))->req, 504, NULL,
                            "the room did not answer");
    return G_SOURCE_CONTINUE;
}

static void owner_checked(MkDbResult *res, const GError *error, gpointer data)
{
    Creation *c = data;
    if (error || !mk_db_result_rows(res)) {
        if (error)
            mk_http_reply_error(c->req, 500, NULL, "%s", error->message);
        else
            mk_http_reply_error(c->req, 400, "owner", "unknown user %s",
                                mk_jid_bare_string(c->sink));
        creation_free(c);
        return;
    }
    c->since_us = g_get_monotonic_time();
    g_mutex_lock(&capture_lock);
    gboolean open = creations != NULL;
    if (open)
        g_hash_table_insert(creations, (gpointer)mk_jid_resource(c->sink), c);
    g_mutex_unlock(&capture_lock);
    if (!open) {
        mk_http_reply_error(c->req, 503, NULL, "the server is stopping");
        creation_free(c);
        return;
    }
    g_autoptr(MkXml) p = mk_xml_new("presence", NS_CLIENT);
    mk_xml_add_child(p, "x", NS_MUC);
    creation_send(c, p, c->occupant);
}

static void admin_create(MkHttpRequest *req, gpointer user_data)
{
    (void)user_data;
    Muc *muc = mk_module_get_data(mk_http_request_module(req));
    if (!mk_http_request_check_admin(req, muc->rest_admin_user, muc->rest_admin_password))
        return;
    const char *service = admin_service(req, muc);
    if (!service)
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *name, *nick;
    if (!o || !mk_http_json_string(req, o, "name", TRUE, &name))
        return;
    g_autoptr(MkJid) owner = local_user(muc, req, o, "owner");
    if (!owner || !mk_http_json_string(req, o, "nick", TRUE, &nick))
        return;
    g_autoptr(MkJid) room = *name ? mk_jid_new_from_parts(name, service, NULL, NULL) : NULL;
    if (!room || (gint64)g_utf8_strlen(name, -1) > muc->max_room_name) {
        mk_http_reply_error(req, 400, "name", "\"%s\" is not a valid room name", name);
        return;
    }
    g_autoptr(MkJid) occupant = *nick && (gint64)g_utf8_strlen(nick, -1) <= muc->max_nick
                                    ? mk_jid_with_resource(room, nick, NULL)
                                    : NULL;
    if (!occupant) {
        mk_http_reply_error(req, 400, "nick", "\"%s\" is not a valid nick", nick);
        return;
    }
    g_autofree char *uuid = g_uuid_string_random();
    g_autofree char *key = g_strconcat(REST_ID, uuid, NULL);
    g_autoptr(MkJid) bare = mk_jid_bare(owner);
    Creation *c = g_new0(Creation, 1);
    c->muc = muc;
    c->req = mk_http_request_ref(req);
    c->room = g_steal_pointer(&room);
    c->occupant = g_steal_pointer(&occupant);
    c->sink = mk_jid_with_resource(bare, key, NULL);
    mk_db_query(muc->mod, "SELECT 1 FROM users WHERE username = ? AND domain = ?", owner_checked, c,
                MK_DB_STR(mk_jid_node(bare)), MK_DB_STR(mk_jid_domain(bare)));
}

void muc_rest_stop(Muc *muc)
{
    g_autoptr(GPtrArray) mine = g_ptr_array_new_with_free_func(creation_free);
    g_mutex_lock(&capture_lock);
    GHashTableIter it;
    gpointer v;
    if (creations) {
        g_hash_table_iter_init(&it, creations);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            if (((Creation *)v)->muc != muc)
                continue;
            g_hash_table_iter_steal(&it);
            g_ptr_array_add(mine, v);
        }
    }
    g_mutex_unlock(&capture_lock);
    for (guint i = 0; i < mine->len; i++)
        mk_http_reply_error(((Creation *)g_ptr_array_index(mine, i))->req, 503, NULL,
                            "the server is stopping");
}

gboolean muc_rest_start(Muc *muc, GError **error)
{
    static const struct {
        const char *method, *path;
        MkHttpFunc func;
    } admin[] = {
        {"POST", "/mucs/{domain}", admin_create},
        {"POST", "/mucs/{domain}/{name}/participants", admin_invite},
        {"POST", "/mucs/{domain}/{name}/messages", admin_send},
        {"GET", "/mucs/{domain}/{name}/messages", admin_messages},
        {"DELETE", "/mucs/{domain}/{name}/{nick}", admin_kick},
    };
    for (guint i = 0; i < G_N_ELEMENTS(admin); i++) {
        g_autofree char *pattern = g_strconcat(muc->rest_prefix, admin[i].path, NULL);
        if (!mk_http_route_add(muc->mod, admin[i].method, pattern, admin[i].func, NULL, error))
            return FALSE;
    }
    /* Before every other filter: the room's answer is the request's. */
    mk_hook_add(muc->mod, MK_HOOK_FILTER_LOCAL_PACKET, 1000, on_room_error, muc);
    mk_hook_add(muc->mod, MK_HOOK_FILTER_LOCAL_PACKET, 1000, on_creation, muc);
    g_mutex_lock(&capture_lock);
    if (!creations)
        creations = g_hash_table_new(g_str_hash, g_str_equal);
    g_mutex_unlock(&capture_lock);
    mk_timer_add(muc->mod, 5000, creation_sweep, muc);
    return TRUE;
}
