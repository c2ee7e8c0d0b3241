/* mod_muc_light: MongooseIM's MUC Light (urn:xmpp:muclight:0), group
 * chat without presence, on a subdomain (muclight.DOMAIN by default).
 *
 * Rooms are rows (muclight-db.c); the module keeps no room in memory but
 * the core's cache of recent ones (mk-usercache.h). Every stanza to the
 * service or a room comes to on_stanza on the worker that routed it, the
 * sender's: reads answer from the cache, changes run on the module's user
 * queue under the room's JID (muclight-ops.c), and a groupchat message is
 * checked once, archived once and fanned out from there to every
 * occupant (mk-fanout.h), online or not. docs/mod_muc_light.md. */
#include "muclight.h"

#include <string.h>

#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_SID         "urn:xmpp:sid:0"
#define NS_MAM         "urn:xmpp:mam:2"

/* ---- helpers (muclight.h) --------------------------------------------- */

void ml_reply_error(MkStanza *st, MkStanzaError cond, const char *text)
{
    if (ml_rest_take(st, NULL, TRUE, cond, text))
        return;
    g_autoptr(MkStanza) err = mk_stanza_new_error_reply(st, cond, text);
    if (err)
        mk_router_send(err);
}

void ml_reply(MkStanza *iq, MkXml *payload)
{
    g_autoptr(MkXml) owned = payload;
    if (ml_rest_take(iq, owned, FALSE, 0, NULL))
        return;
    g_autoptr(MkXml) res = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(res, "type", "result");
    if (mk_stanza_id(iq))
        mk_xml_set_attr(res, "id", mk_stanza_id(iq));
    if (owned)
        mk_xml_append(res, g_steal_pointer(&owned));
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(res, mk_stanza_to(iq), mk_stanza_from(iq));
    mk_router_send(st);
}

MkXml *ml_notification(const char *id)
{
    MkXml *msg = mk_xml_new("message", NS_CLIENT);
    mk_xml_set_attr(msg, "type", "groupchat");
    g_autofree char *own = id ? NULL : ml_random_id(16);
    mk_xml_set_attr(msg, "id", id ? id : own);
    return msg;
}

void ml_room_prepare(MlRoom *r)
{
    if (r->recipients)
        return;
    r->recipients = g_ptr_array_new_full(r->users->len, (GDestroyNotify)mk_jid_unref);
    for (guint i = 0; i < r->users->len; i++) {
        MkJid *j = mk_jid_new(((MlUser *)g_ptr_array_index(r->users, i))->jid, NULL);
        if (j)
            g_ptr_array_add(r->recipients, j);
    }
}

MlRoom *ml_room_get(MucLight *ml, MkJid *room, MkStanza *st)
{
    const char *key = mk_jid_bare_string(room);
    MlRoom *r = mk_user_cache_get(ml->cache, key, st);
    /* Only rooms that exist stay in memory: names made up by whoever
     * sends to them cost a read each, not an entry each. */
    if (r && !r->exists && !r->failed)
        mk_user_cache_forget(ml->cache, key);
    return r;
}

/* ---- the room cache ----------------------------------------------------- */

static gboolean room_load(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                          gpointer user_data, GError **error)
{
    MucLight *ml = user_data;
    (void)user;
    MlRoom *r = ml_db_read_room(conn, key, error);
    if (!r)
        return FALSE;
    ml_room_prepare(r);
    mk_counter_add(ml->loads, 1);
    *value = r;
    return TRUE;
}

/* A failed load answers internal-server-error rather than hold forever. */
static gpointer room_fallback(const char *key, gpointer user_data)
{
    (void)key;
    (void)user_data;
    MlRoom *r = ml_room_new();
    r->failed = TRUE;
    return r;
}

static const MkUserCacheClass room_class = {
    .load = room_load,
    .ref = (gpointer(*)(gpointer))ml_room_ref,
    .unref = (GDestroyNotify)ml_room_unref,
    .fallback = room_fallback,
};

/* ---- groupchat messages -------------------------------------------------- */

static void on_message(MucLight *ml, MkStanza *st)
{
    MkJid *from = mk_stanza_from(st);
    MkJid *to = mk_stanza_to(st);
    if (!mk_jid_node(to) || g_strcmp0(mk_stanza_type(st), "groupchat") != 0) {
        ml_reply_error(st, MK_ERR_BAD_REQUEST, "Rooms take messages of type groupchat");
        return;
    }
    g_autoptr(MlRoom) room = ml_room_get(ml, to, st);
    if (!room)
        return; /* held: routed again once the room is loaded */
    if (room->failed) {
        ml_reply_error(st, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    const char *sender = mk_jid_bare_string(from);
    if (!room->exists || ml_room_aff(room, sender) == ML_NONE) {
        ml_reply_error(st, MK_ERR_ITEM_NOT_FOUND, NULL);
        return;
    }
    /* What the room sends: from room/sender's bare JID, no 'to', without
     * any stanza-id the sender made up. */
    g_autoptr(MkJid) room_bare = mk_jid_bare(to);
    g_autoptr(MkJid) occupant = mk_jid_with_resource(room_bare, sender, NULL);
    if (!occupant) {
        ml_reply_error(st, MK_ERR_BAD_REQUEST, NULL);
        return;
    }
    g_autoptr(MkXml) out = mk_xml_copy_shallow(mk_stanza_xml(st));
    mk_xml_set_attr(out, "to", NULL);
    mk_xml_set_attr(out, "from", NULL);
    mk_xml_remove_children(out, "stanza-id", NS_SID);
    g_autoptr(MkStanza) sent = mk_stanza_new_addressed(out, occupant, NULL);
    g_autofree char *id = mk_archive_store(ml->mod, room_bare, sent, sender, from);
    if (id) {
        MkXml *tag = mk_xml_add_child(out, "stanza-id", NS_SID);
        mk_xml_set_attr(tag, "by", mk_jid_string(room_bare));
        mk_xml_set_attr(tag, "id", id);
        g_clear_pointer(&sent, mk_stanza_unref);
        sent = mk_stanza_new_addressed(out, occupant, NULL);
    }
    mk_fanout_send(sent, (MkJid *const *)room->recipients->pdata, room->recipients->len);
    mk_counter_add(ml->messages, 1);
    mk_counter_add(ml->copies, room->recipients->len);
    ml_rest_sent(st, id);
}

/* ---- IQs ------------------------------------------------------------------ */

static void service_info(MucLight *ml, MkStanza *iq)
{
    g_autoptr(MkXml) q = mk_xml_new("query", NS_DISCO_INFO);
    MkXml *id = mk_xml_add_child(q, "identity", NULL);
    mk_xml_set_attr(id, "category", "conference");
    mk_xml_set_attr(id, "type", "text");
    mk_xml_set_attr(id, "name", "MUC Light");
    static const char *const features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, NS_ML, NULL};
    for (guint i = 0; features[i]; i++)
        mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", features[i]);
    if (ml->blocking)
        mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", NS_ML_BLOCKING);
    ml_reply(iq, g_steal_pointer(&q));
}

static void room_info(MucLight *ml, MkStanza *iq, MlRoom *room)
{
    if (!room->exists || ml_room_aff(room, mk_jid_bare_string(mk_stanza_from(iq))) == ML_NONE) {
        ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
        return;
    }
    g_autoptr(MkXml) q = mk_xml_new("query", NS_DISCO_INFO);
    MkXml *id = mk_xml_add_child(q, "identity", NULL);
    mk_xml_set_attr(id, "category", "conference");
    mk_xml_set_attr(id, "type", "text");
    mk_xml_set_attr(id, "name", room->roomname);
    mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", NS_ML);
    if (mk_archive_available(ml->mod))
        mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", NS_MAM);
    ml_reply(iq, g_steal_pointer(&q));
}

static MkXml *payload_of(MkXml *xml)
{
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        if (!mk_xml_is_text(c))
            return c;
    }
    return NULL;
}

static void on_service_iq(MucLight *ml, MkStanza *iq, MkXml *q, gboolean get)
{
    const char *ns = mk_xml_ns(q);
    if (get && mk_xml_is(q, "query", NS_DISCO_INFO))
        service_info(ml, iq);
    else if (get && mk_xml_is(q, "query", NS_DISCO_ITEMS))
        ml_disco_items(ml, iq);
    else if (g_strcmp0(ns, NS_ML_BLOCKING) == 0 && ml->blocking)
        get ? ml_blocking_get(ml, iq) : ml_blocking_set(ml, iq, q);
    else if (g_strcmp0(ns, NS_ML_CREATE) == 0)
        get ? ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL) : ml_create(ml, iq, q);
    else if (ns && g_str_has_prefix(ns, NS_ML))
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
    else
        ml_reply_error(iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
}

/* Hands a XEP-0313 query at the room to the archive service. */
static gboolean archive_query(MucLight *ml, MkJid *to, MkStanza *iq)
{
    g_autoptr(MkJid) room = mk_jid_bare(to);
    return mk_archive_query(ml->mod, room, iq);
}

static void on_room_iq(MucLight *ml, MkStanza *iq, MkXml *q, gboolean get)
{
    const char *ns = mk_xml_ns(q);
    MkJid *to = mk_stanza_to(iq);
    /* Creation and destruction read storage themselves, in the room's
     * queue: no need to load the room into the cache first. */
    if (g_strcmp0(ns, NS_ML_CREATE) == 0) {
        get ? ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL) : ml_create(ml, iq, q);
        return;
    }
    if (g_strcmp0(ns, NS_ML_DESTROY) == 0) {
        get ? ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL) : ml_destroy(ml, iq);
        return;
    }
    gboolean known = g_strcmp0(ns, NS_ML_CONFIG) == 0 || g_strcmp0(ns, NS_ML_AFFS) == 0 ||
                     g_strcmp0(ns, NS_ML_INFO) == 0 || mk_xml_is(q, "query", NS_DISCO_INFO) ||
                     (!get && mk_xml_is(q, "query", NS_MAM));
    if (!known) {
        ml_reply_error(
            iq, ns && g_str_has_prefix(ns, NS_ML) ? MK_ERR_BAD_REQUEST : MK_ERR_SERVICE_UNAVAILABLE,
            NULL);
        return;
    }
    g_autoptr(MlRoom) room = ml_room_get(ml, to, iq);
    if (!room)
        return; /* held: routed again once the room is loaded */
    if (room->failed) {
        ml_reply_error(iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (g_strcmp0(ns, NS_ML_CONFIG) == 0) {
        get ? ml_config_get(ml, iq, q, room) : ml_config_set(ml, iq, q, room);
    } else if (g_strcmp0(ns, NS_ML_AFFS) == 0) {
        get ? ml_affs_get(ml, iq, q, room) : ml_affs_set(ml, iq, q, room);
    } else if (g_strcmp0(ns, NS_ML_INFO) == 0) {
        get ? ml_info_get(ml, iq, q, room) : ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
    } else if (mk_xml_is(q, "query", NS_DISCO_INFO)) {
        room_info(ml, iq, room);
    } else {
        /* XEP-0313 at the room: occupants only. */
        if (!room->exists || ml_room_aff(room, mk_jid_bare_string(mk_stanza_from(iq))) == ML_NONE)
            ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
        else if (!archive_query(ml, to, iq))
            ml_reply_error(iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    }
}

static void on_iq(MucLight *ml, MkStanza *iq)
{
    const char *type = mk_stanza_type(iq);
    gboolean get = g_strcmp0(type, "get") == 0;
    if (!get && g_strcmp0(type, "set") != 0)
        return; /* results and errors: we send no requests */
    MkXml *q = payload_of(mk_stanza_xml(iq));
    if (!q) {
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return;
    }
    if (mk_jid_node(mk_stanza_to(iq)))
        on_room_iq(ml, iq, q, get);
    else
        on_service_iq(ml, iq, q, get);
}

/* The route: every stanza to the service and its rooms, on the worker
 * that routed it. Presence is ignored, as the protocol says. */
static void on_stanza(MkStanza *st, gpointer user_data)
{
    MucLight *ml = user_data;
    if (!mk_stanza_from(st) || !mk_stanza_to(st) || mk_stanza_is_error(st))
        return;
    switch (mk_stanza_kind(st)) {
    case MK_STANZA_MESSAGE:
        on_message(ml, st);
        return;
    case MK_STANZA_IQ:
        on_iq(ml, st);
        return;
    default:
        return;
    }
}

/* ---- accounts that go ------------------------------------------------------ */

typedef struct {
    MucLight *ml;
    char *user;
} Removed;

static void rooms_of_removed(MkDbResult *res, const GError *error, gpointer data)
{
    Removed *r = data;
    for (guint i = 0; !error && i < mk_db_result_rows(res); i++) {
        g_autoptr(MkJid) room = mk_jid_new(mk_db_result_get_string(res, i, 0), NULL);
        if (room)
            ml_leave(r->ml, room, r->user);
    }
    g_free(r->user);
    g_free(r);
}

/* remove_user: the account leaves every room it occupied, and the
 * others are told, as if it had left itself (its blocking list goes
 * with the account's row). */
static MkResult on_remove_user(MkHookCall *call, gpointer user_data)
{
    MucLight *ml = user_data;
    MkJid *user = mk_hook_call_from(call);
    if (!user)
        return MK_PASS;
    Removed *r = g_new0(Removed, 1);
    r->ml = ml;
    r->user = g_strdup(mk_jid_bare_string(user));
    mk_db_query(ml->mod, "SELECT room FROM muclight_occupants WHERE jid = ?", rooms_of_removed, r,
                MK_DB_STR(r->user));
    return MK_PASS;
}

/* ---- the instance ---------------------------------------------------------- */

static void ml_free(gpointer data)
{
    MucLight *ml = data;
    g_strfreev(ml->services);
    g_free(ml->rest_prefix);
    g_free(ml->rest_admin_user);
    mk_http_secret_free(ml->rest_admin_password);
    g_free(ml);
}

static gboolean ml_start(MkModule *mod, GError **error)
{
    const char *prefix = mk_config_get_string(mod, "rest_prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_muc_light: rest_prefix must start with '/' and not end with one");
        return FALSE;
    }
    char *password;
    if (!mk_http_secret_read(mod, "rest_admin_password_file", &password, error))
        return FALSE;
    MucLight *ml = g_new0(MucLight, 1);
    ml->mod = mod;
    ml->rest_prefix = g_strdup(prefix);
    ml->rest_admin_user = g_strdup(mk_config_get_string(mod, "rest_admin_username"));
    ml->rest_admin_password = password;
    ml->rooms_per_user = mk_config_get_int(mod, "rooms_per_user");
    ml->max_occupants = mk_config_get_int(mod, "max_occupants");
    ml->max_roomname = mk_config_get_int(mod, "max_roomname_length");
    ml->max_room_id = mk_config_get_int(mod, "max_room_id_length");
    ml->max_subject = mk_config_get_int(mod, "max_subject_length");
    ml->max_blocking = mk_config_get_int(mod, "max_blocking_items");
    ml->blocking = mk_config_get_bool(mod, "blocking");
    ml->all_can_configure = mk_config_get_bool(mod, "all_can_configure");
    ml->rules.all_can_invite = mk_config_get_bool(mod, "all_can_invite");
    ml->rules.promote_on_owner_leave = mk_config_get_bool(mod, "promote_on_owner_leave");
    ml->created = mk_counter_new(mod, "rooms_created");
    ml->destroyed = mk_counter_new(mod, "rooms_destroyed");
    ml->messages = mk_counter_new(mod, "messages");
    ml->copies = mk_counter_new(mod, "copies_sent");
    ml->refused_rooms_per_user = mk_counter_new(mod, "refused_rooms_per_user");
    ml->refused_occupants = mk_counter_new(mod, "refused_max_occupants");
    ml->loads = mk_counter_new(mod, "room_cache_loads");
    ml->rest_requests = mk_counter_new(mod, "rest_requests");
    ml->rest_timeouts = mk_counter_new(mod, "rest_timeouts");
    mk_module_set_data(mod, ml, ml_free);

    ml->queue = mk_user_queue_new(mod);
    ml->cache = mk_user_cache_new(mod, ml->queue, &room_class,
                                  (guint)mk_config_get_int(mod, "room_cache_idle"), ml);

    mk_hook_add(mod, MK_HOOK_REMOVE_USER, 50, on_remove_user, ml);

    const char *host = mk_config_get_string(mod, "host");
    g_auto(GStrv) domains = mk_module_domains(mod);
    GPtrArray *services = g_ptr_array_new();
    for (guint i = 0; domains[i]; i++) {
        g_autoptr(GString) s = g_string_new(host);
        g_string_replace(s, "@HOST@", domains[i], 0);
        g_ptr_array_add(services, g_string_free(g_steal_pointer(&s), FALSE));
    }
    g_ptr_array_add(services, NULL);
    ml->services = (char **)g_ptr_array_free(services, FALSE);
    for (guint i = 0; ml->services[i]; i++) {
        if (!mk_route_register(mod, ml->services[i], on_stanza, ml, error))
            return FALSE;
        mk_disco_item_add(mod, ml->services[i], "MUC Light");
    }
    return ml_rest_start(ml, error);
}

/* Pending REST requests are answered 503: their rooms will not. */
static void ml_stop(MkModule *mod)
{
    ml_rest_stop(mk_module_get_data(mod));
}

/* clang-format off */
static const MkConfigKey ml_keys[] = {
    {"host", MK_CONFIG_STRING, "muclight.@HOST@", 0, 0,
     "the service's domain; @HOST@ is each served domain"},
    {"rooms_per_user", MK_CONFIG_INT, "100", 1, 1000000,
     "rooms a user may occupy; more is refused with not-allowed"},
    {"max_occupants", MK_CONFIG_INT, "1000", 1, 1000000,
     "occupants of one room; more is refused with not-allowed"},
    {"max_room_id_length", MK_CONFIG_INT, "100", 16, 1023,
     "characters of a room ID a client chooses at creation; more is bad-request"},
    {"max_roomname_length", MK_CONFIG_INT, "200", 1, 100000,
     "characters of a room name; more is bad-request"},
    {"max_subject_length", MK_CONFIG_INT, "1000", 1, 100000,
     "characters of a room subject; more is bad-request"},
    {"max_blocking_items", MK_CONFIG_INT, "1000", 1, 1000000,
     "rooms and users one user may block; more is not-allowed"},
    {"blocking", MK_CONFIG_BOOL, "true", 0, 0, "users may block rooms and users (#blocking)"},
    {"all_can_configure", MK_CONFIG_BOOL, "false", 0, 0,
     "members may change the room name too (the subject they may always)"},
    {"all_can_invite", MK_CONFIG_BOOL, "false", 0, 0, "members may add members"},
    {"promote_on_owner_leave", MK_CONFIG_BOOL, "true", 0, 0,
     "when the owner leaves without a successor, the first member becomes owner"},
    {"room_cache_idle", MK_CONFIG_INT, "300", 1, 86400,
     "seconds an unused room stays in memory"},
    {"rest_prefix", MK_CONFIG_STRING, "/api", 0, 0,
     "path under which the REST endpoints are served"},
    {"rest_admin_username", MK_CONFIG_STRING, "admin", 0, 0,
     "Basic auth user of the admin endpoints (/api/muc-lights)"},
    {"rest_admin_password_file", MK_CONFIG_STRING, "", 0, 0,
     "file whose first line is the admin password; unset: admin endpoints refused"},
    MK_CONFIG_KEYS_END,
};
/* clang-format on */

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,       .name = "mod_muc_light", .version = "1.0", .config_keys = ml_keys,
    .migrations = ml_migrations, .start = ml_start,       .stop = ml_stop,
};
