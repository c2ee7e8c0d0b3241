/* GET PREFIX/global-distrib/regions (docs/api.md): the regions in the
 * global Redis and this node's link to each, for an admin. Registered
 * through the core's HTTP routes, so it is there on every http listener
 * whether or not mod_rest_admin runs; the admin's credentials come from
 * this module's own password file, as the room modules' endpoints do. */
#include "gd.h"
#include <json-glib/json-glib.h>

/* Worker: the route's handler. */
static void on_regions(MkHttpRequest *req, gpointer user_data)
{
    Gd *gd = user_data;
    if (!mk_http_request_check_admin(req, gd->rest_admin_user, gd->rest_admin_password))
        return;
    if (!gd_rest_post(gd, req))
        mk_http_reply_error(req, 503, NULL, "the server is stopping");
}

gboolean gd_rest_start(Gd *gd, GError **error)
{
    const char *prefix = mk_config_get_string(gd->mod, "rest_prefix");
    if (!prefix || prefix[0] != '/' || g_str_has_suffix(prefix, "/")) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: rest_prefix must start with '/' and not end with one");
        return FALSE;
    }
    if (!mk_http_secret_read(gd->mod, "rest_admin_password_file", &gd->rest_admin_password, error))
        return FALSE;
    gd->rest_prefix = g_strdup(prefix);
    gd->rest_admin_user = g_strdup(mk_config_get_string(gd->mod, "rest_admin_username"));
    g_autofree char *pattern = g_strconcat(prefix, "/global-distrib/regions", NULL);
    return mk_http_route_add(gd->mod, "GET", pattern, on_regions, gd, error);
}

static void add_region(Gd *gd, JsonBuilder *b, const char *name, const char *endpoints)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "local");
    json_builder_add_boolean_value(b, g_str_equal(name, gd->local_host));
    json_builder_set_member_name(b, "endpoints");
    json_builder_begin_array(b);
    g_auto(GStrv) eps = g_strsplit(endpoints ? endpoints : "", " ", -1);
    for (guint i = 0; eps[i]; i++)
        if (*eps[i])
            json_builder_add_string_value(b, eps[i]);
    json_builder_end_array(b);
    if (!g_str_equal(name, gd->local_host)) {
        guint queued = 0;
        const char *state = gd_link_state(gd, name, &queued);
        GdRegionMetrics *m = gd_region_metrics(gd, name);
        json_builder_set_member_name(b, "link");
        json_builder_add_string_value(b, state);
        json_builder_set_member_name(b, "queued");
        json_builder_add_int_value(b, queued);
        /* Regions not named in `regions` share the label "other". */
        json_builder_set_member_name(b, "metrics_region");
        json_builder_add_string_value(b, g_hash_table_contains(gd->regions, name) ? name : "other");
        json_builder_set_member_name(b, "stanzas_out");
        json_builder_add_int_value(b, mk_counter_get(m->out));
        json_builder_set_member_name(b, "stanzas_in");
        json_builder_add_int_value(b, mk_counter_get(m->in));
        json_builder_set_member_name(b, "link_errors");
        json_builder_add_int_value(b, mk_counter_get(m->link_errors));
        json_builder_set_member_name(b, "reconnects");
        json_builder_add_int_value(b, mk_counter_get(m->reconnects));
    }
    json_builder_end_object(b);
}

/* Module thread: @values are name, endpoints, name, ... (NULL: Redis is
 * not there; the regions this node has links to are listed alone). */
static void on_listing(Gd *gd, char **values, gpointer data)
{
    MkHttpRequest *req = data;
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "global_host");
    json_builder_add_string_value(b, gd->global_host);
    json_builder_set_member_name(b, "local_host");
    json_builder_add_string_value(b, gd->local_host);
    json_builder_set_member_name(b, "redis");
    json_builder_add_boolean_value(b, values != NULL);
    json_builder_set_member_name(b, "regions");
    json_builder_begin_array(b);
    for (guint i = 0; values && values[i] && values[i + 1]; i += 2) {
        g_hash_table_add(seen, values[i]);
        add_region(gd, b, values[i], values[i + 1]);
    }
    GHashTableIter it;
    gpointer key;
    if (gd->remotes && !gd->stopping) {
        g_hash_table_iter_init(&it, gd->remotes);
        while (g_hash_table_iter_next(&it, &key, NULL))
            if (!g_hash_table_contains(seen, key))
                add_region(gd, b, key, NULL);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    mk_http_reply_json(req, 200, json_builder_get_root(b));
}

void gd_rest_answer(Gd *gd, MkHttpRequest *req)
{
    gd_redis_regions(gd, on_listing, req, (GDestroyNotify)mk_http_request_unref);
}
