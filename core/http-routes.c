/* The modules' HTTP routes: "METHOD /literal/{param}" patterns, recorded
 * against the module that added them and dropped when it stops. Requests
 * are matched on the listener's thread under a read lock; module starts
 * and stops are rare, so a lock costs less here than a snapshot scheme. */
#include "http.h"
#include "modules.h"
#include "server.h"
#include <string.h>

typedef struct {
    char *method;
    char *pattern;
    char **segs; /* split pattern; "{x}" segments are parameters */
    MkHttpFunc func;
    gpointer user_data;
    MkModule *mod; /* no reference: the route goes before the module stops */
} HttpRoute;

struct MkHttpRoutes {
    GRWLock lock;
    GPtrArray *routes; /* HttpRoute*, in registration order */
};

static void route_free(gpointer data)
{
    HttpRoute *r = data;
    g_free(r->method);
    g_free(r->pattern);
    g_strfreev(r->segs);
    g_free(r);
}

MkHttpRoutes *mk_http_routes_new(void)
{
    MkHttpRoutes *routes = g_new0(MkHttpRoutes, 1);
    g_rw_lock_init(&routes->lock);
    routes->routes = g_ptr_array_new_with_free_func(route_free);
    return routes;
}

void mk_http_routes_free(MkHttpRoutes *routes)
{
    if (!routes)
        return;
    g_ptr_array_unref(routes->routes);
    g_rw_lock_clear(&routes->lock);
    g_free(routes);
}

void mk_http_routes_drop(MkHttpRoutes *routes, MkModule *mod)
{
    if (!routes)
        return;
    g_rw_lock_writer_lock(&routes->lock);
    for (guint i = routes->routes->len; i-- > 0;) {
        HttpRoute *r = g_ptr_array_index(routes->routes, i);
        if (r->mod == mod)
            g_ptr_array_remove_index(routes->routes, i);
    }
    g_rw_lock_writer_unlock(&routes->lock);
}

static gboolean is_param(const char *seg)
{
    gsize n = strlen(seg);
    return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

/* Path segments without the leading empty one. (transfer full) */
static char **split_path(const char *path)
{
    return g_strsplit(path[0] == '/' ? path + 1 : path, "/", -1);
}

static gboolean valid_pattern(const char *pattern)
{
    if (pattern[0] != '/' || strchr(pattern, '?'))
        return FALSE;
    g_auto(GStrv) segs = split_path(pattern);
    for (char **s = segs; *s; s++) {
        if (!**s && s[1]) /* "//" */
            return FALSE;
        if ((strchr(*s, '{') || strchr(*s, '}')) && !is_param(*s))
            return FALSE;
    }
    return TRUE;
}

/* Public module API (mk-http.h). Main thread, in start(). */
gboolean mk_http_route_add(MkModule *mod, const char *method, const char *pattern, MkHttpFunc func,
                           gpointer user_data, GError **error)
{
    g_return_val_if_fail(mod && method && pattern && func, FALSE);
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", NULL};
    MkServer *srv = mk_server_get();
    const char *name = mk_module_name(mod);
    if (!mk_module_is_running(mod) || !srv || !srv->http_routes) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "%s: HTTP routes are added while the module runs", name);
        return FALSE;
    }
    if (!g_strv_contains(methods, method) || !valid_pattern(pattern)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "%s: invalid HTTP route %s %s",
                    name, method, pattern);
        return FALSE;
    }
    MkHttpRoutes *routes = srv->http_routes;
    g_rw_lock_writer_lock(&routes->lock);
    for (guint i = 0; i < routes->routes->len; i++) {
        HttpRoute *r = g_ptr_array_index(routes->routes, i);
        if (g_str_equal(r->method, method) && g_str_equal(r->pattern, pattern) &&
            g_str_equal(mk_module_name(r->mod), name) &&
            g_str_equal(mk_module_host_type(r->mod), mk_module_host_type(mod))) {
            g_rw_lock_writer_unlock(&routes->lock);
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                        "%s: HTTP route %s %s is taken by %s already", name, method, pattern,
                        mk_module_name(r->mod));
            return FALSE;
        }
    }
    HttpRoute *r = g_new0(HttpRoute, 1);
    r->method = g_strdup(method);
    r->pattern = g_strdup(pattern);
    r->segs = split_path(pattern);
    r->func = func;
    r->user_data = user_data;
    r->mod = mod;
    g_ptr_array_add(routes->routes, r);
    g_rw_lock_writer_unlock(&routes->lock);
    return TRUE;
}

/* Fills @params when @segs (a request's) match @r's pattern. */
static gboolean route_matches(const HttpRoute *r, char **segs, GHashTable *params)
{
    guint i = 0;
    for (; r->segs[i] && segs[i]; i++) {
        if (is_param(r->segs[i])) {
            if (!*segs[i])
                return FALSE;
            if (params)
                g_hash_table_insert(params, g_strndup(r->segs[i] + 1, strlen(r->segs[i]) - 2),
                                    g_strdup(segs[i]));
        } else if (!g_str_equal(r->segs[i], segs[i])) {
            return FALSE;
        }
    }
    return !r->segs[i] && !segs[i];
}

/* The domain a path parameter names: itself, or a JID's domain part. */
static const char *param_domain(const char *value, char **tmp)
{
    const char *at = strchr(value, '@');
    const char *d = at ? at + 1 : value;
    const char *slash = strchr(d, '/');
    if (slash) {
        *tmp = g_strndup(d, (gsize)(slash - d));
        return *tmp;
    }
    return d;
}

/* Among routes of one pattern from several host types, the one serving
 * the first parameter naming a domain (see mk_http_route_add). */
static HttpRoute *pick_instance(GPtrArray *cands, char **pattern_segs, char **segs)
{
    if (cands->len == 1)
        return g_ptr_array_index(cands, 0);
    for (guint i = 0; pattern_segs[i] && segs[i]; i++) {
        if (!is_param(pattern_segs[i]))
            continue;
        g_autofree char *tmp = NULL;
        const char *d = param_domain(segs[i], &tmp);
        for (guint j = 0; j < cands->len; j++) {
            HttpRoute *r = g_ptr_array_index(cands, j);
            if (mk_module_serves_domain(r->mod, d))
                return r;
        }
    }
    return g_ptr_array_index(cands, 0);
}

MkHttpMatch mk_http_routes_match(MkHttpRoutes *routes, char **modules, const char *method,
                                 const char *path, MkHttpFunc *func, gpointer *user_data,
                                 MkModule **mod, GHashTable **params, char **allow)
{
    g_auto(GStrv) segs = split_path(path);
    g_autoptr(GPtrArray) cands = g_ptr_array_new();
    g_autoptr(GPtrArray) methods = g_ptr_array_new();
    MkHttpMatch result = MK_HTTP_MATCH_NO_PATH;
    g_rw_lock_reader_lock(&routes->lock);
    for (guint i = 0; i < routes->routes->len; i++) {
        HttpRoute *r = g_ptr_array_index(routes->routes, i);
        if ((modules && *modules &&
             !g_strv_contains((const char *const *)modules, mk_module_name(r->mod))) ||
            !route_matches(r, segs, NULL))
            continue;
        if (!g_str_equal(r->method, method)) {
            if (!g_ptr_array_find_with_equal_func(methods, r->method, g_str_equal, NULL))
                g_ptr_array_add(methods, r->method);
            continue;
        }
        /* The first pattern that matches wins; its twins of the same
         * module on other host types are the candidates. */
        if (cands->len && (!g_str_equal(((HttpRoute *)cands->pdata[0])->pattern, r->pattern) ||
                           !g_str_equal(mk_module_name(((HttpRoute *)cands->pdata[0])->mod),
                                        mk_module_name(r->mod))))
            continue;
        g_ptr_array_add(cands, r);
    }
    if (cands->len) {
        HttpRoute *r = pick_instance(cands, ((HttpRoute *)cands->pdata[0])->segs, segs);
        *params = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        route_matches(r, segs, *params);
        *func = r->func;
        *user_data = r->user_data;
        *mod = mk_module_ref(r->mod);
        result = MK_HTTP_MATCH_FOUND;
    } else if (methods->len) {
        g_ptr_array_add(methods, NULL);
        *allow = g_strjoinv(", ", (char **)methods->pdata);
        result = MK_HTTP_MATCH_NO_METHOD;
    }
    g_rw_lock_reader_unlock(&routes->lock);
    return result;
}
