/* mod_muc: Multi-User Chat (XEP-0045). Start-up, configuration, the
 * route that takes every stanza for the service, and small helpers.
 * Stanzas for a room go to the room's owner worker (mk_owner_post). */
#include "muc.h"

#include <string.h>

static const MkConfigKey muc_keys[] = {
    {"host", MK_CONFIG_STRING, "conference.@HOST@", 0, 0,
     "the service's domain; @HOST@ is each domain of the host type"},
    {"max_rooms", MK_CONFIG_INT, "100000", 1, G_MAXINT32, "rooms a service holds at most"},
    {"max_rooms_per_user", MK_CONFIG_INT, "100", 1, G_MAXINT32,
     "rooms one user may have created that still exist"},
    {"max_joined_rooms", MK_CONFIG_INT, "100", 1, G_MAXINT32,
     "rooms one user may be in at once; a join past it gets resource-constraint"},
    {"enforce_reserved_nick", MK_CONFIG_BOOL, "false", 0, 0,
     "a user with a reserved nick joins under it whatever nick they ask for (status 210)"},
    {"max_room_name_length", MK_CONFIG_INT, "100", 1, 1023, "longest room name (characters)"},
    {"max_nick_length", MK_CONFIG_INT, "64", 1, 1023, "longest nickname (characters)"},
    {"max_users", MK_CONFIG_INT, "200", 1, 100000, "default and largest occupants per room"},
    {"history_length", MK_CONFIG_INT, "20", 0, 1000, "messages of history a new room keeps"},
    {"max_history_length", MK_CONFIG_INT, "100", 0, 1000,
     "largest history length an owner may set"},
    {"max_affiliations", MK_CONFIG_INT, "1000", 1, 1000000,
     "affiliations (members, admins, owners, outcasts) a room keeps"},
    {"hibernate_after", MK_CONFIG_INT, "600", 0, 86400 * 30,
     "seconds an empty persistent room stays in memory"},
    {"rest_prefix", MK_CONFIG_STRING, "/api", 0, 0,
     "path under which the admin REST endpoints (/mucs) are served"},
    {"rest_admin_username", MK_CONFIG_STRING, "admin", 0, 0,
     "Basic auth user of the admin endpoints (/api/mucs)"},
    {"rest_admin_password_file", MK_CONFIG_STRING, "", 0, 0,
     "file whose first line is the admin password; unset: admin endpoints refused"},
    MK_CONFIG_KEYS_END,
};

/* Helpers shared by the room files. */

static const char *const aff_names[] = {"outcast", "none", "member", "admin", "owner"};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};

const char *muc_aff_name(MucAff aff)
{
    return aff_names[aff + 1];
}

const char *muc_role_name(MucRole role)
{
    return role_names[role];
}

gboolean muc_aff_parse(const char *s, MucAff *out)
{
    for (int i = 0; s && i < 5; i++)
        if (g_str_equal(s, aff_names[i])) {
            *out = (MucAff)(i - 1);
            return TRUE;
        }
    return FALSE;
}

gboolean muc_role_parse(const char *s, MucRole *out)
{
    for (int i = 0; s && i < 4; i++)
        if (g_str_equal(s, role_names[i])) {
            *out = (MucRole)i;
            return TRUE;
        }
    return FALSE;
}

/* Answers @st with @cond (nothing for an error stanza). Any thread. */
void muc_error(MkStanza *st, MkStanzaError cond, const char *text)
{
    g_autoptr(MkStanza) err = mk_stanza_new_error_reply(st, cond, text);
    if (err)
        mk_router_send(err);
}

void muc_add_status(MkXml *x, int code)
{
    char buf[8];
    g_snprintf(buf, sizeof buf, "%d", code);
    mk_xml_set_attr(mk_xml_add_child(x, "status", NULL), "code", buf);
}

/* The route. */

typedef struct {
    Muc *muc;
    MkStanza *st;
} Routed;

static void routed_free(gpointer data)
{
    Routed *r = data;
    mk_stanza_unref(r->st);
    g_free(r);
}

static gboolean routed_run(gpointer data)
{
    Routed *r = data;
    muc_dispatch(r->muc, r->st);
    return G_SOURCE_REMOVE;
}

/* Any worker: the service's own stanzas are answered here (they touch no
 * room); a room's go to its owner. */
static void on_stanza(MkStanza *st, gpointer user_data)
{
    Muc *muc = user_data;
    MkJid *to = mk_stanza_to(st);
    MkJid *from = mk_stanza_from(st);
    if (!to || !from)
        return;
    if (!mk_jid_node(to)) {
        if (mk_stanza_kind(st) == MK_STANZA_IQ)
            muc_service_iq(muc, st);
        else if (mk_stanza_kind(st) != MK_STANZA_PRESENCE ||
                 g_strcmp0(mk_stanza_type(st), "unavailable"))
            muc_error(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    if ((gint64)g_utf8_strlen(mk_jid_node(to), -1) > muc->max_room_name) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "room name too long");
        return;
    }
    /* In a cluster, the room lives on one node (docs/clustering.md). */
    if (!muc_home_take(muc, mk_jid_bare_string(to), st))
        return;
    Routed *r = g_new0(Routed, 1);
    r->muc = muc;
    r->st = mk_stanza_ref(st);
    mk_owner_post(muc->mod, mk_jid_bare_string(to), routed_run, r, routed_free);
}

static void muc_service_free(gpointer data)
{
    MucService *s = data;
    g_free(s->service);
    g_free(s->host);
    g_free(s);
}

static void muc_free(gpointer data)
{
    Muc *muc = data;
    muc_rest_stop(muc);
    g_hash_table_destroy(muc->rooms); /* before @joined: occupants count out */
    g_hash_table_destroy(muc->joined);
    g_mutex_clear(&muc->joined_lock);
    g_hash_table_destroy(muc->listed);
    g_hash_table_destroy(muc->created);
    g_ptr_array_unref(muc->services);
    muc_home_clear(muc);
    g_free(muc->rest_prefix);
    g_free(muc->rest_admin_user);
    mk_http_secret_free(muc->rest_admin_password);
    g_mutex_clear(&muc->lock);
    g_free(muc);
}

static gboolean muc_start(MkModule *mod, GError **error)
{
    const char *prefix = mk_config_get_string(mod, "rest_prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_muc: rest_prefix must start with '/' and not end with one");
        return FALSE;
    }
    char *password;
    if (!mk_http_secret_read(mod, "rest_admin_password_file", &password, error))
        return FALSE;
    Muc *muc = g_new0(Muc, 1);
    muc->rest_prefix = g_strdup(prefix);
    muc->rest_admin_user = g_strdup(mk_config_get_string(mod, "rest_admin_username"));
    muc->rest_admin_password = password;
    muc->mod = mod;
    g_mutex_init(&muc->lock);
    muc_home_init(muc);
    muc->rooms =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)muc_room_free);
    muc->listed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    muc->services = g_ptr_array_new_with_free_func(muc_service_free);
    muc->max_rooms = mk_config_get_int(mod, "max_rooms");
    muc->max_rooms_per_user = mk_config_get_int(mod, "max_rooms_per_user");
    muc->created = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_mutex_init(&muc->joined_lock);
    muc->joined = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    muc->max_joined = mk_config_get_int(mod, "max_joined_rooms");
    muc->enforce_nick = mk_config_get_bool(mod, "enforce_reserved_nick");
    muc->max_room_name = mk_config_get_int(mod, "max_room_name_length");
    muc->max_nick = mk_config_get_int(mod, "max_nick_length");
    muc->max_users = mk_config_get_int(mod, "max_users");
    muc->default_history = mk_config_get_int(mod, "history_length");
    muc->max_history = mk_config_get_int(mod, "max_history_length");
    muc->hibernate_after = mk_config_get_int(mod, "hibernate_after");
    muc->max_affs = mk_config_get_int(mod, "max_affiliations");
    muc->max_pending = 1000;
    muc->max_loading = 10000;
    mk_module_set_data(mod, muc, muc_free);
    muc->queue = mk_user_queue_new(mod);
    muc->c_created = mk_counter_new(mod, "rooms_created");
    muc->c_destroyed = mk_counter_new(mod, "rooms_destroyed");
    muc->c_refused = mk_counter_new(mod, "rooms_refused");
    muc->c_hibernated = mk_counter_new(mod, "rooms_hibernated");
    muc->c_woken = mk_counter_new(mod, "rooms_woken");
    muc->c_messages = mk_counter_new(mod, "messages");
    muc->c_joins = mk_counter_new(mod, "joins");
    muc->c_limited = mk_counter_new(mod, "limited");
    muc->c_join_limited = mk_counter_new(mod, "joins_refused");

    const char *pattern = mk_config_get_string(mod, "host");
    g_auto(GStrv) domains = mk_module_domains(mod);
    for (guint i = 0; domains[i]; i++) {
        g_auto(GStrv) parts = g_strsplit(pattern, "@HOST@", -1);
        MucService *s = g_new0(MucService, 1);
        s->service = g_strjoinv(domains[i], parts);
        s->host = g_strdup(domains[i]);
        g_ptr_array_add(muc->services, s);
        if (!mk_route_register(mod, s->service, on_stanza, muc, error))
            return FALSE;
        mk_disco_item_add(mod, s->service, "Chatrooms");
    }
    mk_hook_add(mod, MK_HOOK_REMOVE_USER, 50, muc_on_remove_user, muc);
    mk_hook_add(mod, MK_HOOK_CLUSTER_NODE_GONE, 50, muc_on_node_gone, muc);
    mk_module_on_stopping(mod, muc_on_stopping, muc);
    muc_db_count(muc);
    /* Rooms are let go within a sweep interval after hibernate_after. */
    guint every = (guint)CLAMP(muc->hibernate_after / 2, 1, 10);
    mk_timer_add(mod, every * 1000, muc_hibernate_sweep, muc);
    return muc_rest_start(muc, error);
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,        .name = "mod_muc",  .version = "1.0", .config_keys = muc_keys,
    .migrations = muc_migrations, .start = muc_start,
};
