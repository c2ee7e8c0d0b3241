/* mod_rest_admin: the administration REST API that MongooseIM 6.5 serves
 * under /api (users, sessions, messages, stanzas, contacts, domains), on
 * every `type = http` listener, so that tools written for it work
 * unchanged (docs/api.md). Requests carry the admin's Basic credentials;
 * one without them changes nothing. */
#include "rest-admin.h"
#include <string.h>

/* Failed admin logins of one peer address. */
typedef struct {
    guint count;
    gint64 until_us; /* refused until then (monotonic), 0: not */
} AuthFailures;

/* The most addresses remembered: past it the oldest records are not
 * kept, which only lets an attacker with that many addresses guess a
 * little more. */
#define MAX_TRACKED 10000

static void rest_admin_free(gpointer data)
{
    RestAdmin *ra = data;
    g_hash_table_unref(ra->failures);
    g_hash_table_unref(ra->known_senders);
    g_mutex_clear(&ra->lock);
    g_free(ra->prefix);
    g_free(ra->user);
    if (ra->password) {
        memset(ra->password, 0, strlen(ra->password));
        g_free(ra->password);
    }
    g_free(ra);
}

/* TRUE while @peer backs off (then counted). */
static gboolean throttled(RestAdmin *ra, const char *peer)
{
    if (!ra->max_failures)
        return FALSE;
    g_mutex_lock(&ra->lock);
    AuthFailures *f = g_hash_table_lookup(ra->failures, peer);
    gboolean refused = f && f->until_us > g_get_monotonic_time();
    g_mutex_unlock(&ra->lock);
    if (refused)
        mk_counter_add(ra->auth_throttled, 1);
    return refused;
}

/* Records the outcome of a login from @peer. */
static void record(RestAdmin *ra, const char *peer, gboolean ok)
{
    if (!ok)
        mk_counter_add(ra->auth_failed, 1);
    if (!ra->max_failures)
        return;
    g_mutex_lock(&ra->lock);
    if (ok) {
        g_hash_table_remove(ra->failures, peer);
    } else {
        AuthFailures *f = g_hash_table_lookup(ra->failures, peer);
        if (!f && g_hash_table_size(ra->failures) < MAX_TRACKED) {
            f = g_new0(AuthFailures, 1);
            g_hash_table_insert(ra->failures, g_strdup(peer), f);
        }
        if (f && ++f->count >= ra->max_failures) {
            f->count = 0; /* the next max_failures guesses after the backoff */
            f->until_us = g_get_monotonic_time() + (gint64)ra->backoff_s * G_USEC_PER_SEC;
        }
    }
    g_mutex_unlock(&ra->lock);
}

gboolean rest_admin_authorized(MkHttpRequest *req)
{
    RestAdmin *ra = mk_module_get_data(mk_http_request_module(req));
    const char *peer = mk_http_request_peer(req);
    if (!ra->password) {
        mk_http_reply_error(req, 403, NULL, "the admin API has no password configured");
        return FALSE;
    }
    if (throttled(ra, peer)) {
        mk_http_reply_error(req, 429, NULL, "too many failed logins from %s; try later", peer);
        return FALSE;
    }
    const char *user = "", *password = "";
    gboolean ok = mk_http_request_basic_auth(req, &user, &password);
    /* Non-short-circuit: both comparisons always run. */
    ok = ok & mk_http_secret_equal(user, ra->user) & mk_http_secret_equal(password, ra->password);
    record(ra, peer, ok);
    if (!ok)
        mk_http_reply_unauthorized(req, "meerkat admin");
    return ok;
}

gboolean rest_admin_route(MkModule *mod, const char *method, const char *rest, MkHttpFunc func,
                          GError **error)
{
    RestAdmin *ra = mk_module_get_data(mod);
    g_autofree char *pattern = g_strconcat(ra->prefix, rest, NULL);
    return mk_http_route_add(mod, method, pattern, func, NULL, error);
}

MkJid *rest_admin_param_jid(MkHttpRequest *req, const char *name)
{
    const char *v = mk_http_request_param(req, name);
    MkJid *jid = v ? mk_jid_new(v, NULL) : NULL;
    if (!jid)
        mk_http_reply_error(req, 400, name, "\"%s\" is not a valid JID", v ? v : "");
    return jid;
}

MkJid *rest_admin_field_jid(MkHttpRequest *req, JsonObject *obj, const char *field)
{
    const char *v;
    if (!mk_http_json_string(req, obj, field, TRUE, &v))
        return NULL;
    MkJid *jid = mk_jid_new(v, NULL);
    if (!jid)
        mk_http_reply_error(req, 400, field, "field \"%s\": \"%s\" is not a valid JID", field, v);
    return jid;
}

gboolean rest_admin_domain_known(MkHttpRequest *req, const char *domain)
{
    if (domain && mk_module_serves_domain(mk_http_request_module(req), domain))
        return TRUE;
    mk_http_reply_error(req, 404, NULL, "unknown domain %s", domain ? domain : "");
    return FALSE;
}

void rest_admin_reply_strings(MkHttpRequest *req, GPtrArray *strings)
{
    JsonArray *a = json_array_sized_new(strings->len);
    for (guint i = 0; i < strings->len; i++)
        json_array_add_string_element(a, g_ptr_array_index(strings, i));
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    mk_http_reply_json(req, 200, n);
}

/* The password from `password` or the first line of `password_file`. */
static char *read_password(MkModule *mod, GError **error)
{
    const char *inline_pw = mk_config_get_string(mod, "password");
    const char *file = mk_config_get_string(mod, "password_file");
    if (inline_pw && *inline_pw && file && *file) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: set password or password_file, not both");
        return NULL;
    }
    if (inline_pw && *inline_pw)
        return g_strdup(inline_pw);
    if (!file || !*file)
        return NULL;
    g_autofree char *text = NULL;
    g_autoptr(GError) local = NULL;
    if (!g_file_get_contents(file, &text, NULL, &local)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: password_file: %s", local->message);
        return NULL;
    }
    char *nl = strpbrk(text, "\r\n");
    if (nl)
        *nl = '\0';
    if (!*text) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: password_file %s is empty", file);
        return NULL;
    }
    return g_steal_pointer(&text);
}

static gboolean rest_admin_start(MkModule *mod, GError **error)
{
    g_autoptr(GError) local = NULL;
    char *password = read_password(mod, &local);
    if (local) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    const char *prefix = mk_config_get_string(mod, "prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        g_free(password);
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: prefix must start with '/' and not end with one");
        return FALSE;
    }
    RestAdmin *ra = g_new0(RestAdmin, 1);
    ra->prefix = g_strdup(prefix);
    ra->user = g_strdup(mk_config_get_string(mod, "username"));
    ra->password = password;
    g_mutex_init(&ra->lock);
    ra->failures = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    ra->known_senders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    ra->max_failures = (guint)mk_config_get_int(mod, "max_auth_failures");
    ra->backoff_s = (guint)mk_config_get_int(mod, "auth_backoff");
    ra->auth_failed = mk_counter_new(mod, "auth_failed");
    ra->auth_throttled = mk_counter_new(mod, "auth_throttled");
    mk_module_set_data(mod, ra, rest_admin_free);
    if (!password)
        g_message("mod_rest_admin: no password configured: every request is refused");
    return rest_users_start(mod, error) && rest_sessions_start(mod, error) &&
           rest_messages_start(mod, error) && rest_domains_start(mod, error) &&
           rest_contacts_start(mod, error);
}

static const MkConfigKey rest_admin_keys[] = {
    {"prefix", MK_CONFIG_STRING, "/api", 0, 0, "path under which the API is served"},
    {"username", MK_CONFIG_STRING, "admin", 0, 0, "the admin's Basic auth user name"},
    {"password", MK_CONFIG_STRING, "", 0, 0, "the admin's password (or password_file)"},
    {"password_file", MK_CONFIG_STRING, "", 0, 0, "file whose first line is the password"},
    {"max_auth_failures", MK_CONFIG_INT, "20", 0, 100000,
     "failed logins from one address before it backs off (0 = no limit)"},
    {"auth_backoff", MK_CONFIG_INT, "60", 1, 86400, "seconds an address backs off"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,          .name = "mod_rest_admin",  .version = "1.0",
    .config_keys = rest_admin_keys, .start = rest_admin_start,
};
