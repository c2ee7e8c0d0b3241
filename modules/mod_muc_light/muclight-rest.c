/* mod_muc_light over HTTP: carrying out the REST requests (the endpoints
 * are in muclight-rest-routes.c) as stanzas, and their answers.
 *
 * REST is another front door, not a second implementation: each request
 * becomes the stanza an XMPP client of the acting user would send (an
 * IQ of urn:xmpp:muclight:0#..., a groupchat message), sent with
 * mk_router_send_as, so the same checks, limits, notifications and
 * archive apply. Its id is "rest-" and a random UUID; the answer the
 * room gives (ml_reply, ml_reply_error, or a message fanned out) is
 * caught by ml_rest_take before it is routed, and turned into the HTTP
 * answer. Archive reads go through the room archive read service
 * (mk_room_archive_messages), as mod_muc's do. */
#include "muclight.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define REST_ID "rest-"
/* A request the room never answered (a user_send_packet handler took the
 * stanza, or the server stops) gets 504 after this long. */
#define PENDING_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define SWEEP_INTERVAL_MS  5000

typedef enum {
    RK_CREATED,    /* 201 and the room: {"id"} or its JID (admin) */
    RK_NO_CONTENT, /* 204 */
    RK_SENT,       /* a message went out: 200 {"id"} (admin: 204) */
    RK_DETAILS,    /* #info result: {"name","subject","participants"} */
    RK_ARCHIVE_OK, /* #info result: the requester may read; query now */
    RK_ARCHIVE,    /* reading the archive (archive_read answers) */
} ReplyKind;

typedef struct {
    MucLight *ml;
    MkHttpRequest *req; /* ref */
    ReplyKind kind;
    gboolean admin;
    char *actor; /* the bare JID the stanza is from (or the sink JID) */
    MkJid *room;
    gint64 since_us;
    gint64 before_us; /* archive reads */
    gint64 limit;
    JsonArray *items; /* RK_ARCHIVE: the records */
} Pending;

/* Requests waiting for the room's answer, of every instance: a client's
 * request may be answered on any host type's worker. */
static GMutex pending_lock;
static GHashTable *pending; /* "rest-UUID" -> Pending* */
static guint instances;

static void pending_free(gpointer data)
{
    Pending *p = data;
    if (p->req)
        mk_http_request_unref(p->req);
    g_free(p->actor);
    if (p->room)
        mk_jid_unref(p->room);
    if (p->items)
        json_array_unref(p->items);
    g_free(p);
}

static Pending *pending_new(MucLight *ml, MkHttpRequest *req, ReplyKind kind, gboolean admin,
                            MkJid *room)
{
    Pending *p = g_new0(Pending, 1);
    p->ml = ml;
    p->req = mk_http_request_ref(req);
    p->kind = kind;
    p->admin = admin;
    p->room = mk_jid_bare(room);
    p->since_us = g_get_monotonic_time();
    return p;
}

/* A new key for a pending request. (transfer full) */
static char *pending_key(void)
{
    g_autofree char *uuid = g_uuid_string_random();
    return g_strconcat(REST_ID, uuid, NULL);
}

/* Files @p (transfer full) under @key. FALSE (and @p answered 503 and
 * freed) once the last instance stopped: a late storage callback. Any
 * thread. */
static gboolean pending_add(const char *key, Pending *p)
{
    g_mutex_lock(&pending_lock);
    if (!pending) {
        g_mutex_unlock(&pending_lock);
        mk_http_reply_error(p->req, 503, NULL, "the server is stopping");
        pending_free(p);
        return FALSE;
    }
    mk_counter_add(p->ml->rest_requests, 1);
    g_hash_table_insert(pending, g_strdup(key), p);
    g_mutex_unlock(&pending_lock);
    return TRUE;
}

/* Answers 504 to the requests of @ml that waited too long. Main thread
 * (a timer of the instance). */
static gboolean sweep(gpointer data)
{
    MucLight *ml = data;
    gint64 now = g_get_monotonic_time();
    g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(pending_free);
    g_mutex_lock(&pending_lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, pending);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Pending *old = v;
        if (old->ml == ml && now - old->since_us > PENDING_TIMEOUT_US) {
            g_hash_table_iter_steal(&it);
            g_free(k);
            g_ptr_array_add(stale, old);
        }
    }
    g_mutex_unlock(&pending_lock);
    for (guint i = 0; i < stale->len; i++) {
        Pending *old = g_ptr_array_index(stale, i);
        mk_counter_add(ml->rest_timeouts, 1);
        mk_http_reply_error(old->req, 504, NULL, "the room did not answer");
    }
    return G_SOURCE_CONTINUE;
}

/* The pending request @key, removed from the table, when @who is its
 * actor (compared as a bare JID, or in full when @full): nobody else
 * can answer it. (transfer full) (nullable) Any thread. */
static Pending *pending_take(const char *key, MkJid *who, gboolean full)
{
    if (!key || !g_str_has_prefix(key, REST_ID) || !who)
        return NULL;
    g_mutex_lock(&pending_lock);
    Pending *p = pending ? g_hash_table_lookup(pending, key) : NULL;
    if (p && g_strcmp0(p->actor, full ? mk_jid_string(who) : mk_jid_bare_string(who)) != 0)
        p = NULL;
    gpointer stored = NULL;
    if (p)
        g_hash_table_steal_extended(pending, key, &stored, NULL);
    g_mutex_unlock(&pending_lock);
    g_free(stored);
    return p;
}

/* ---- answers ------------------------------------------------------------ */

static guint status_of(MkStanzaError cond)
{
    switch (cond) {
    case MK_ERR_BAD_REQUEST:
    case MK_ERR_JID_MALFORMED:
    case MK_ERR_NOT_ACCEPTABLE:
        return 400;
    case MK_ERR_FORBIDDEN:
    case MK_ERR_NOT_ALLOWED:
    case MK_ERR_NOT_AUTHORIZED:
    case MK_ERR_POLICY_VIOLATION:
        return 403;
    case MK_ERR_ITEM_NOT_FOUND:
        return 404;
    case MK_ERR_CONFLICT:
        return 409;
    case MK_ERR_SERVICE_UNAVAILABLE:
    case MK_ERR_FEATURE_NOT_IMPLEMENTED:
        return 503;
    default:
        return 500;
    }
}

static void reply_id(MkHttpRequest *req, guint status, const char *id)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, id);
    json_builder_end_object(b);
    mk_http_reply_json(req, status, json_builder_get_root(b));
}

static void reply_details(MkHttpRequest *req, MkXml *q)
{
    MkXml *config = q ? mk_xml_child(q, "configuration", NULL) : NULL;
    MkXml *occupants = q ? mk_xml_child(q, "occupants", NULL) : NULL;
    g_autofree char *name = config ? mk_xml_child_text(config, "roomname", NULL) : NULL;
    g_autofree char *subject = config ? mk_xml_child_text(config, "subject", NULL) : NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, name ? name : "");
    json_builder_set_member_name(b, "subject");
    json_builder_add_string_value(b, subject ? subject : "");
    json_builder_set_member_name(b, "participants");
    json_builder_begin_array(b);
    for (guint i = 0; occupants && i < mk_xml_child_count(occupants); i++) {
        MkXml *u = mk_xml_child_at(occupants, i);
        if (mk_xml_is_text(u))
            continue;
        g_autofree char *jid = mk_xml_text(u);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "user");
        json_builder_add_string_value(b, jid);
        json_builder_set_member_name(b, "role");
        json_builder_add_string_value(b, mk_xml_get_attr(u, "affiliation"));
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    mk_http_reply_json(req, 200, json_builder_get_root(b));
}

static void archive_start(Pending *p);

/* Answers @p (transfer full) for the room's result with @payload. */
static void answer_ok(Pending *p, MkXml *payload)
{
    switch (p->kind) {
    case RK_CREATED:
        if (p->admin) {
            mk_http_reply_json(p->req, 201,
                               json_node_init_string(json_node_alloc(), mk_jid_string(p->room)));
        } else {
            reply_id(p->req, 201, mk_jid_node(p->room));
        }
        break;
    case RK_NO_CONTENT:
    case RK_SENT:
        mk_http_reply_json(p->req, 204, NULL);
        break;
    case RK_DETAILS:
        reply_details(p->req, payload);
        break;
    case RK_ARCHIVE_OK:
        archive_start(g_steal_pointer(&p));
        return;
    case RK_ARCHIVE: /* answered by archive_read, never from the table */
        break;
    }
    pending_free(p);
}

gboolean ml_rest_take(MkStanza *st, MkXml *payload, gboolean failed, MkStanzaError cond,
                      const char *text)
{
    Pending *p = pending_take(mk_stanza_id(st), mk_stanza_from(st), FALSE);
    if (!p)
        return FALSE;
    if (failed) {
        mk_http_reply_error(p->req, status_of(cond), NULL, "%s",
                            text ? text : mk_stanza_error_name(cond));
        pending_free(p);
    } else {
        answer_ok(p, payload);
    }
    return TRUE;
}

gboolean ml_rest_sent(MkStanza *st, const char *archive_id)
{
    Pending *p = pending_take(mk_stanza_id(st), mk_stanza_from(st), FALSE);
    if (!p)
        return FALSE;
    if (p->admin)
        mk_http_reply_json(p->req, 204, NULL);
    else
        reply_id(p->req, 200, archive_id ? archive_id : mk_stanza_id(st));
    pending_free(p);
    return TRUE;
}

/* ---- archive reads: the room archive read service ------------------------ */

/* The records of the room archive read service (mk_room_archive_messages,
 * mod_mam), as mod_muc's REST API reads its rooms: one service for both
 * room modules, no query of our own. The sender of a MUC Light message
 * is the occupant's bare JID, which the archive keeps as the real JID.
 * The caller's worker. */
static void archive_read(GPtrArray *messages, const GError *error, gpointer data)
{
    Pending *p = data;
    if (error) {
        mk_http_reply_error(p->req, 500, NULL, "%s", error->message);
        return;
    }
    for (guint i = 0; i < messages->len; i++) {
        MkArchivedMessage *m = g_ptr_array_index(messages, i);
        if (!m->sender || !*m->sender || !*m->body)
            continue; /* the room's own events (affiliations) */
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "sender", m->sender);
        json_object_set_int_member(o, "timestamp", m->when_us / G_USEC_PER_SEC);
        json_object_set_string_member(o, "message_id", m->id);
        json_object_set_string_member(o, "body", m->body);
        json_array_add_object_element(p->items, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, g_steal_pointer(&p->items));
    mk_http_reply_json(p->req, 200, n);
}

/* Reads the last p->limit messages before p->before_us for @p (transfer
 * full). Worker. */
static void archive_start(Pending *p)
{
    p->kind = RK_ARCHIVE;
    p->items = json_array_new();
    if (!mk_room_archive_messages(p->ml->mod, p->room, p->before_us, (guint)p->limit, archive_read,
                                  p, pending_free)) {
        mk_http_reply_error(p->req, 503, NULL, "no archive runs for this room");
        pending_free(p);
    }
}

/* ---- sending as a user --------------------------------------------------- */

/* Sends @xml (transfer none; its id is set here) from @actor to @room as
 * the user's client would, the answer going to @p (transfer full).
 * Worker. */
static void send_for(Pending *p, MkXml *xml, MkJid *actor, MkJid *to)
{
    g_autoptr(MkJid) from = mk_jid_bare(actor);
    g_autofree char *key = pending_key();
    p->actor = g_strdup(mk_jid_bare_string(from));
    if (!pending_add(key, p))
        return;
    mk_xml_set_attr(xml, "id", key);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, from, to);
    mk_router_send_as(st);
}

static MkXml *iq_new(const char *type, const char *ns, MkXml **query)
{
    MkXml *iq = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(iq, "type", type);
    *query = mk_xml_add_child(iq, "query", ns);
    return iq;
}

static void add_text(MkXml *parent, const char *name, const char *text)
{
    MkXml *c = mk_xml_add_child(parent, name, NULL);
    if (text && *text)
        mk_xml_add_text(c, text, -1);
}

void ml_rest_create(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *owner, MkJid *room,
                    const char *name, const char *subject)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_CREATE, &q);
    MkXml *config = mk_xml_add_child(q, "configuration", NULL);
    if (name)
        add_text(config, "roomname", name);
    if (subject)
        add_text(config, "subject", subject);
    mk_xml_add_child(q, "occupants", NULL);
    send_for(pending_new(ml, req, RK_CREATED, admin, room), iq, owner, room);
}

void ml_rest_affiliation(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *actor,
                         MkJid *room, MkJid *user, MlAff aff)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_AFFS, &q);
    MkXml *u = mk_xml_add_child(q, "user", NULL);
    mk_xml_set_attr(u, "affiliation", ml_aff_name(aff));
    mk_xml_add_text(u, mk_jid_bare_string(user), -1);
    send_for(pending_new(ml, req, RK_NO_CONTENT, admin, room), iq, actor, room);
}

void ml_rest_message(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *from, MkJid *room,
                     const char *body)
{
    g_autoptr(MkXml) msg = mk_xml_new("message", NS_CLIENT);
    mk_xml_set_attr(msg, "type", "groupchat");
    mk_xml_add_text(mk_xml_add_child(msg, "body", NULL), body, -1);
    send_for(pending_new(ml, req, RK_SENT, admin, room), msg, from, room);
}

void ml_rest_destroy(MucLight *ml, MkHttpRequest *req, MkJid *owner, MkJid *room)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_DESTROY, &q);
    send_for(pending_new(ml, req, RK_NO_CONTENT, TRUE, room), iq, owner, room);
}

static void info_for(MucLight *ml, MkHttpRequest *req, ReplyKind kind, MkJid *user, MkJid *room,
                     gint64 before_us, gint64 limit)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("get", NS_ML_INFO, &q);
    Pending *p = pending_new(ml, req, kind, FALSE, room);
    p->before_us = before_us;
    p->limit = limit;
    send_for(p, iq, user, room);
}

void ml_rest_config(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room, const char *name,
                    const char *subject)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_CONFIG, &q);
    if (name)
        add_text(q, "roomname", name);
    if (subject)
        add_text(q, "subject", subject);
    send_for(pending_new(ml, req, RK_NO_CONTENT, FALSE, room), iq, user, room);
}

void ml_rest_details(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room)
{
    info_for(ml, req, RK_DETAILS, user, room, 0, 0);
}

void ml_rest_archive(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room, gint64 before_us,
                     gint64 limit)
{
    if (user) {
        /* The room's own check first, as for a query sent to it. */
        info_for(ml, req, RK_ARCHIVE_OK, user, room, before_us, limit);
        return;
    }
    Pending *p = pending_new(ml, req, RK_ARCHIVE, TRUE, room);
    mk_counter_add(ml->rest_requests, 1);
    p->before_us = before_us;
    p->limit = limit;
    archive_start(p);
}

/* ---- the instances ---------------------------------------------------------- */

void ml_rest_open(MucLight *ml)
{
    g_mutex_lock(&pending_lock);
    if (instances++ == 0)
        pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, pending_free);
    g_mutex_unlock(&pending_lock);
    mk_timer_add(ml->mod, SWEEP_INTERVAL_MS, sweep, ml);
}

void ml_rest_stop(MucLight *ml)
{
    g_autoptr(GPtrArray) mine = g_ptr_array_new_with_free_func(pending_free);
    g_mutex_lock(&pending_lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, pending);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (((Pending *)v)->ml != ml)
            continue;
        g_hash_table_iter_steal(&it);
        g_free(k);
        g_ptr_array_add(mine, v);
    }
    GHashTable *last = --instances == 0 ? g_steal_pointer(&pending) : NULL;
    g_mutex_unlock(&pending_lock);
    for (guint i = 0; i < mine->len; i++)
        mk_http_reply_error(((Pending *)g_ptr_array_index(mine, i))->req, 503, NULL,
                            "the server is stopping");
    if (last)
        g_hash_table_unref(last);
}
