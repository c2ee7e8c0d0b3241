/* mod_muc_light over HTTP: MongooseIM's admin (/api/muc-lights/...) and
 * client (/api/rooms/...) REST endpoints for rooms (docs/api.md).
 *
 * REST is another front door, not a second implementation: each request
 * becomes the stanza an XMPP client of the acting user would send (an
 * IQ of urn:xmpp:muclight:0#..., a groupchat message), sent with
 * mk_router_send_as, so the same checks, limits, notifications and
 * archive apply. Its id is "rest-" and a random UUID; the answer the
 * room gives (ml_reply, ml_reply_error, or a message fanned out) is
 * caught by ml_rest_take before it is routed, and turned into the HTTP
 * answer. Archive reads are a XEP-0313 query whose results go to a JID
 * of the service itself (service/rest-UUID), which on_stanza hands here. */
#include "muclight.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define NS_MAM     "urn:xmpp:mam:2"
#define NS_RSM     "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY   "urn:xmpp:delay"
#define NS_XDATA   "jabber:x:data"
#define REST_ID    "rest-"
/* A request the room never answered (a user_send_packet handler took the
 * stanza, or the server stops) gets 504 after this long. */
#define PENDING_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define ROOM_ID_CHARS      16

typedef enum {
    RK_CREATED,    /* 201 and the room: {"id"} or its JID (admin) */
    RK_NO_CONTENT, /* 204 */
    RK_SENT,       /* a message went out: 200 {"id"} (admin: 204) */
    RK_DETAILS,    /* #info result: {"name","subject","participants"} */
    RK_ARCHIVE_OK, /* #info result: the requester may read; query now */
    RK_ARCHIVE,    /* MAM results to the sink, then the IQ result */
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
    JsonArray *items; /* RK_ARCHIVE: collected results */
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

/* Files @p (transfer full) under @key, answering 504 to those that
 * waited too long. Any thread. */
static void pending_add(const char *key, Pending *p)
{
    g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(pending_free);
    g_mutex_lock(&pending_lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, pending);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Pending *old = v;
        if (p->since_us - old->since_us > PENDING_TIMEOUT_US) {
            g_hash_table_iter_steal(&it);
            g_free(k);
            g_ptr_array_add(stale, old);
        }
    }
    g_hash_table_insert(pending, g_strdup(key), p);
    g_mutex_unlock(&pending_lock);
    mk_counter_add(p->ml->rest_requests, 1);
    for (guint i = 0; i < stale->len; i++) {
        Pending *old = g_ptr_array_index(stale, i);
        mk_counter_add(old->ml->rest_timeouts, 1);
        mk_http_reply_error(old->req, 504, NULL, "the room did not answer");
    }
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
    if (p)
        g_hash_table_steal(pending, key);
    g_mutex_unlock(&pending_lock);
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
    case RK_ARCHIVE: {
        JsonNode *n = json_node_new(JSON_NODE_ARRAY);
        json_node_take_array(n, g_steal_pointer(&p->items));
        mk_http_reply_json(p->req, 200, n);
        break;
    }
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

/* ---- archive reads: a XEP-0313 query answered to the sink ---------------- */

/* One <result> of the query: kept when it is a member's message. */
static void archive_item(Pending *p, MkXml *result)
{
    MkXml *fwd = mk_xml_child(result, "forwarded", NS_FORWARD);
    MkXml *msg = fwd ? mk_xml_child(fwd, "message", NULL) : NULL;
    MkXml *delay = fwd ? mk_xml_child(fwd, "delay", NS_DELAY) : NULL;
    if (!msg)
        return;
    g_autoptr(MkJid) from = mk_jid_new(mk_xml_get_attr(msg, "from"), NULL);
    g_autofree char *body = mk_xml_child_text(msg, "body", NULL);
    if (!from || !mk_jid_resource(from) || !body || !*body)
        return; /* the room's own events (affiliations) */
    g_autoptr(GDateTime) when = delay ? mk_xep82_parse(mk_xml_get_attr(delay, "stamp")) : NULL;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "sender", mk_jid_resource(from));
    json_object_set_int_member(o, "timestamp", when ? g_date_time_to_unix(when) : 0);
    json_object_set_string_member(o, "message_id", mk_xml_get_attr(result, "id"));
    json_object_set_string_member(o, "body", body);
    json_array_add_object_element(p->items, o);
}

gboolean ml_rest_sink(MkStanza *st)
{
    MkJid *to = mk_stanza_to(st);
    if (!to || mk_jid_node(to) || !mk_jid_resource(to) ||
        !g_str_has_prefix(mk_jid_resource(to), REST_ID))
        return FALSE;
    const char *key = mk_jid_resource(to);
    if (mk_stanza_kind(st) == MK_STANZA_MESSAGE) {
        MkXml *result = mk_xml_child(mk_stanza_xml(st), "result", NS_MAM);
        /* Results come before the IQ result, from one thread, in order. */
        g_mutex_lock(&pending_lock);
        Pending *p = g_hash_table_lookup(pending, key);
        if (p && p->kind == RK_ARCHIVE && result)
            archive_item(p, result);
        g_mutex_unlock(&pending_lock);
        return TRUE;
    }
    if (mk_stanza_kind(st) != MK_STANZA_IQ || g_strcmp0(mk_stanza_id(st), key) != 0)
        return TRUE;
    /* The sink's actor is its own full JID: the query went out from it. */
    Pending *p = pending_take(key, to, TRUE);
    if (!p)
        return TRUE;
    if (mk_stanza_is_error(st)) {
        mk_http_reply_error(p->req, 500, NULL, "the archive refused the query");
        pending_free(p);
    } else {
        answer_ok(p, NULL);
    }
    return TRUE;
}

/* Sends the query for @p (transfer full): the last p->limit messages
 * before p->before_us, its results to the sink service/KEY. Worker. */
static void archive_start(Pending *p)
{
    MucLight *ml = p->ml;
    g_autoptr(MkJid) service = mk_jid_new(mk_jid_domain(p->room), NULL);
    g_autofree char *key = pending_key();
    g_autoptr(MkJid) sink = mk_jid_with_resource(service, key, NULL);
    g_autoptr(MkJid) room = mk_jid_ref(p->room);
    gint64 before_us = p->before_us, limit = p->limit;
    p->kind = RK_ARCHIVE;
    p->items = json_array_new();
    g_free(p->actor);
    p->actor = g_strdup(mk_jid_string(sink));
    pending_add(key, p);

    g_autoptr(MkXml) iq = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(iq, "type", "set");
    mk_xml_set_attr(iq, "id", key);
    MkXml *q = mk_xml_add_child(iq, "query", NS_MAM);
    MkXml *x = mk_xml_add_child(q, "x", NS_XDATA);
    mk_xml_set_attr(x, "type", "submit");
    MkXml *f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", "FORM_TYPE");
    mk_xml_set_attr(f, "type", "hidden");
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), NS_MAM, -1);
    g_autoptr(GDateTime) epoch = g_date_time_new_from_unix_utc(0);
    g_autoptr(GDateTime) end = g_date_time_add(epoch, before_us - 1);
    g_autofree char *stamp = mk_xep82_format(end);
    f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", "end");
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), stamp, -1);
    MkXml *set = mk_xml_add_child(q, "set", NS_RSM);
    g_autofree char *max = g_strdup_printf("%" G_GINT64_FORMAT, limit);
    mk_xml_add_text(mk_xml_add_child(set, "max", NULL), max, -1);
    mk_xml_add_child(set, "before", NULL);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(iq, sink, room);
    if (!mk_archive_query(ml->mod, room, st)) {
        Pending *gone = pending_take(key, sink, TRUE);
        if (gone) {
            mk_http_reply_error(gone->req, 503, NULL, "no archive runs for this room");
            pending_free(gone);
        }
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
    pending_add(key, p);
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

static void do_create(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *owner, MkJid *room,
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

static void do_affiliation(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *actor,
                           MkJid *room, MkJid *user, MlAff aff)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_AFFS, &q);
    MkXml *u = mk_xml_add_child(q, "user", NULL);
    mk_xml_set_attr(u, "affiliation", ml_aff_name(aff));
    mk_xml_add_text(u, mk_jid_bare_string(user), -1);
    send_for(pending_new(ml, req, RK_NO_CONTENT, admin, room), iq, actor, room);
}

static void do_message(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *from, MkJid *room,
                       const char *body)
{
    g_autoptr(MkXml) msg = mk_xml_new("message", NS_CLIENT);
    mk_xml_set_attr(msg, "type", "groupchat");
    mk_xml_add_text(mk_xml_add_child(msg, "body", NULL), body, -1);
    send_for(pending_new(ml, req, RK_SENT, admin, room), msg, from, room);
}

static void do_destroy(MucLight *ml, MkHttpRequest *req, MkJid *owner, MkJid *room)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_DESTROY, &q);
    send_for(pending_new(ml, req, RK_NO_CONTENT, TRUE, room), iq, owner, room);
}

static void do_info(MucLight *ml, MkHttpRequest *req, ReplyKind kind, MkJid *user, MkJid *room,
                    gint64 before_us, gint64 limit)
{
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("get", NS_ML_INFO, &q);
    Pending *p = pending_new(ml, req, kind, FALSE, room);
    p->before_us = before_us;
    p->limit = limit;
    send_for(p, iq, user, room);
}

/* ---- request helpers ------------------------------------------------------ */

/* The service of @domain (a served domain or a service itself), or NULL
 * after answering 404. (transfer none) */
static const char *service_of(MucLight *ml, MkHttpRequest *req, const char *domain)
{
    for (guint i = 0; domain && ml->services[i]; i++)
        if (g_ascii_strcasecmp(domain, ml->services[i]) == 0)
            return ml->services[i];
    g_auto(GStrv) domains = mk_module_domains(ml->mod);
    for (guint i = 0; domain && domains[i]; i++)
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

static gboolean query_int(MkHttpRequest *req, const char *name, gint64 max, gint64 *out)
{
    const char *v = mk_http_request_query(req, name);
    if (!v)
        return TRUE;
    gint64 n;
    if (!g_ascii_string_to_signed(v, 10, 0, max, &n, NULL)) {
        mk_http_reply_error(req, 400, name, "\"%s\" must be an integer from 0 to %" G_GINT64_FORMAT,
                            name, max);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

/* before (seconds, default now) and limit (default 100, at most 1000). */
static gboolean paging(MkHttpRequest *req, gint64 *before_us, gint64 *limit)
{
    gint64 before = g_get_real_time() / G_USEC_PER_SEC + 1;
    *limit = 100;
    if (!query_int(req, "before", G_MAXINT64 / G_USEC_PER_SEC, &before) ||
        !query_int(req, "limit", 1000, limit))
        return FALSE;
    *before_us = before * G_USEC_PER_SEC;
    return TRUE;
}

/* ---- admin API: PREFIX/muc-lights/{domain}... ---------------------------- */

static gboolean admin_authorized(MucLight *ml, MkHttpRequest *req)
{
    if (!ml->rest_admin_password) {
        mk_http_reply_error(req, 403, NULL, "no rest_admin_password_file configured");
        return FALSE;
    }
    const char *user = "", *password = "";
    gboolean ok = mk_http_request_basic_auth(req, &user, &password);
    /* Non-short-circuit: both comparisons always run. */
    ok = ok & mk_http_secret_equal(user, ml->rest_admin_user) &
         mk_http_secret_equal(password, ml->rest_admin_password);
    if (!ok)
        mk_http_reply_unauthorized(req, "meerkat admin");
    return ok;
}

/* The instance, the service of {domain} and (when @with_id) the room
 * {id}; FALSE after answering. */
static gboolean admin_begin(MkHttpRequest *req, MucLight **ml, const char **service, MkJid **room)
{
    *ml = mk_module_get_data(mk_http_request_module(req));
    if (!admin_authorized(*ml, req))
        return FALSE;
    *service = service_of(*ml, req, mk_http_request_param(req, "domain"));
    if (!*service)
        return FALSE;
    if (room && !(*room = room_jid(req, *service, mk_http_request_param(req, "id"), "id")))
        return FALSE;
    return TRUE;
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
    if (room)
        do_create(ml, req, TRUE, owner, room, name, subject);
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
    if (sender)
        do_affiliation(ml, req, TRUE, sender, room, recipient, ML_MEMBER);
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
    if (from)
        do_message(ml, req, TRUE, from, room, body);
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
            do_destroy(l->ml, l->req, jid, l->room);
    } else {
        Pending *p = pending_new(l->ml, l->req, RK_ARCHIVE, TRUE, l->room);
        p->before_us = l->before_us;
        p->limit = l->limit;
        archive_start(p);
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
        do_destroy(ml, req, owner, room);
}

/* ---- client API: PREFIX/rooms... ------------------------------------------ */

typedef void (*ClientFunc)(MucLight *ml, MkHttpRequest *req, MkJid *user);

typedef struct {
    MucLight *ml;
    MkHttpRequest *req; /* ref */
    MkJid *user;
    ClientFunc func;
} AuthOp;

static void auth_op_free(gpointer data)
{
    AuthOp *op = data;
    mk_http_request_unref(op->req);
    if (op->user)
        mk_jid_unref(op->user);
    g_free(op);
}

static void on_checked(const GError *error, gpointer data)
{
    AuthOp *op = data;
    if (!error)
        op->func(op->ml, op->req, op->user);
    else if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_THROTTLED))
        mk_http_reply_error(op->req, 429, NULL, "%s", error->message);
    else if (error->domain == MK_ACCOUNT_ERROR && (error->code == MK_ACCOUNT_ERROR_NOT_AUTHORIZED ||
                                                   error->code == MK_ACCOUNT_ERROR_INVALID))
        mk_http_reply_unauthorized(op->req, "meerkat");
    else
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
}

/* Every client route: the user's credentials (as a PLAIN login would
 * check them), then the handler. */
static void client_auth(MkHttpRequest *req, gpointer user_data)
{
    MucLight *ml = mk_module_get_data(mk_http_request_module(req));
    const char *user = "", *password = "";
    g_autoptr(MkJid) jid = NULL;
    if (!mk_http_request_basic_auth(req, &user, &password) || !(jid = mk_jid_new(user, NULL)) ||
        !mk_jid_node(jid) || mk_jid_resource(jid)) {
        mk_http_reply_unauthorized(req, "meerkat");
        return;
    }
    AuthOp *op = g_new0(AuthOp, 1);
    op->ml = ml;
    op->req = mk_http_request_ref(req);
    op->user = g_steal_pointer(&jid);
    op->func = (ClientFunc)user_data;
    mk_account_check_password(ml->mod, mk_jid_node(op->user), mk_jid_domain(op->user), password,
                              mk_http_request_peer(req), on_checked, op, auth_op_free);
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
        do_create(ml, req, FALSE, user, room, name, subject);
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
        do_info(ml, req, RK_DETAILS, user, room, 0, 0);
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
    MkXml *q;
    g_autoptr(MkXml) iq = iq_new("set", NS_ML_CONFIG, &q);
    if (name)
        add_text(q, "roomname", name);
    if (subject)
        add_text(q, "subject", subject);
    send_for(pending_new(ml, req, RK_NO_CONTENT, FALSE, room), iq, user, room);
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
        do_affiliation(ml, req, FALSE, user, room, who, ML_MEMBER);
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
    do_affiliation(ml, req, FALSE, user, room, who, ML_NONE);
}

static void client_send(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    const char *body;
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (!room)
        return;
    JsonObject *o = mk_http_request_json(req);
    if (o && mk_http_json_string(req, o, "body", TRUE, &body))
        do_message(ml, req, FALSE, user, room, body);
}

static void client_messages(MucLight *ml, MkHttpRequest *req, MkJid *user)
{
    gint64 before_us, limit;
    g_autoptr(MkJid) room = client_room(ml, req, user);
    if (room && paging(req, &before_us, &limit))
        do_info(ml, req, RK_ARCHIVE_OK, user, room, before_us, limit);
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
    g_mutex_lock(&pending_lock);
    if (instances++ == 0)
        pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, pending_free);
    g_mutex_unlock(&pending_lock);
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
