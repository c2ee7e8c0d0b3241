/* mod_rest_admin: the administration REST API that MongooseIM 6.5 serves
 * under /api (users, sessions, messages, stanzas, contacts, domains), on
 * every `type = http` listener, so that tools written for it work
 * unchanged (docs/api.md). Requests carry the admin's Basic credentials;
 * one without them changes nothing. */
#include "rest-admin.h"

static void rest_admin_free(gpointer data)
{
    RestAdmin *ra = data;
    g_hash_table_unref(ra->known_senders);
    g_mutex_clear(&ra->lock);
    g_free(ra->prefix);
    g_free(ra->user);
    mk_http_secret_free(ra->password);
    g_free(ra);
}

gboolean rest_admin_authorized(MkHttpRequest *req)
{
    RestAdmin *ra = mk_module_get_data(mk_http_request_module(req));
    return mk_http_request_check_admin(req, ra->user, ra->password);
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
static gboolean read_password(MkModule *mod, char **out, GError **error)
{
    const char *inline_pw = mk_config_get_string(mod, "password");
    const char *file = mk_config_get_string(mod, "password_file");
    *out = NULL;
    if (inline_pw && *inline_pw && file && *file) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: set password or password_file, not both");
        return FALSE;
    }
    if (inline_pw && *inline_pw) {
        *out = g_strdup(inline_pw);
        return TRUE;
    }
    return mk_http_secret_read(mod, "password_file", out, error);
}

static gboolean rest_admin_start(MkModule *mod, GError **error)
{
    char *password;
    if (!read_password(mod, &password, error))
        return FALSE;
    const char *prefix = mk_config_get_string(mod, "prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        mk_http_secret_free(password);
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_rest_admin: prefix must start with '/' and not end with one");
        return FALSE;
    }
    RestAdmin *ra = g_new0(RestAdmin, 1);
    ra->prefix = g_strdup(prefix);
    ra->user = g_strdup(mk_config_get_string(mod, "username"));
    ra->password = password;
    g_mutex_init(&ra->lock);
    ra->known_senders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    mk_module_set_data(mod, ra, rest_admin_free);
    if (!password)
        g_message("mod_rest_admin: no password configured: every request is refused");
    /* Earlier releases' own throttle: accepted so old files still start. */
    if (*mk_config_get_string(mod, "max_auth_failures") ||
        *mk_config_get_string(mod, "auth_backoff"))
        g_warning("mod_rest_admin: max_auth_failures and auth_backoff are ignored: the core's "
                  "[auth] address_failures and backoff_max bound password guessing");
    return rest_users_start(mod, error) && rest_sessions_start(mod, error) &&
           rest_messages_start(mod, error) && rest_domains_start(mod, error) &&
           rest_contacts_start(mod, error);
}

static const MkConfigKey rest_admin_keys[] = {
    {"prefix", MK_CONFIG_STRING, "/api", 0, 0, "path under which the API is served"},
    {"username", MK_CONFIG_STRING, "admin", 0, 0, "the admin's Basic auth user name"},
    {"password", MK_CONFIG_STRING, "", 0, 0, "the admin's password (or password_file)"},
    {"password_file", MK_CONFIG_STRING, "", 0, 0, "file whose first line is the password"},
    {"max_auth_failures", MK_CONFIG_STRING, "", 0, 0, "ignored (was this module's throttle)"},
    {"auth_backoff", MK_CONFIG_STRING, "", 0, 0, "ignored (was this module's throttle)"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,          .name = "mod_rest_admin",  .version = "1.0",
    .config_keys = rest_admin_keys, .start = rest_admin_start,
};
