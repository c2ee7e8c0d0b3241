/* The HTTP listener (libmicrohttpd) and the modules' routes (mk-http.h).
 * docs/architecture.md, "HTTP", says which thread does what. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
#include <meerkat/mk-http.h>
#include <json-glib/json-glib.h>

typedef struct MkHttpRoutes MkHttpRoutes;
typedef struct MkHttpListener MkHttpListener;

/* ---- Routes (http-routes.c) ---- */

/* Main thread. (transfer full) */
MkHttpRoutes *mk_http_routes_new(void);
void mk_http_routes_free(MkHttpRoutes *routes);
/* Removes every route of @mod. Main thread, when @mod stops. */
void mk_http_routes_drop(MkHttpRoutes *routes, MkModule *mod);

typedef enum {
    MK_HTTP_MATCH_FOUND,
    MK_HTTP_MATCH_NO_PATH,   /* 404 */
    MK_HTTP_MATCH_NO_METHOD, /* 405; *allow lists the methods */
} MkHttpMatch;

/* Finds the route of @method @path among the routes of @modules' (names;
 * NULL or empty: every module's). FOUND: *func, *user_data, *mod (a
 * reference the caller drops) and *params (transfer full: name ->
 * value). NO_METHOD: *allow (transfer full) "GET, POST". Any thread. */
MkHttpMatch mk_http_routes_match(MkHttpRoutes *routes, char **modules, const char *method,
                                 const char *path, MkHttpFunc *func, gpointer *user_data,
                                 MkModule **mod, GHashTable **params, char **allow);

/* ---- Listeners (http.c) ---- */

/* A handler of the core itself (GET /metrics), run on the listener's own
 * thread: it must answer at once and cheaply. */
typedef void (*MkHttpCoreFunc)(MkHttpRequest *req, const MkListenConfig *lc);

/* Starts serving @lc (transfer none, must outlive the listener) on its
 * own thread; requests for module routes run on @workers. Main thread. */
MkHttpListener *mk_http_listener_start(MkServer *srv, const MkListenConfig *lc, GError **error);
/* Stops accepting, gives requests in flight a short while to be
 * answered (then answers 503), and stops. Main thread, while the
 * workers still run. (nullable) */
void mk_http_listener_stop(MkHttpListener *hl);
/* The bound port. Any thread. */
guint16 mk_http_listener_port(MkHttpListener *hl);

/* ---- /metrics (http-metrics.c) ---- */

/* Answers GET /metrics on @lc if it serves them: TRUE when it answered.
 * The listener's thread. */
gboolean mk_http_metrics_serve(MkHttpRequest *req, const MkListenConfig *lc);

/* ---- Credentials (http-user.c) ---- */

/* The first line of @path (a password), without its line end: TRUE and
 * *@out (transfer full; mk_http_secret_free), or FALSE with a GFileError
 * when it cannot be read or the line is empty. Any thread. */
gboolean mk_http_secret_read_file(const char *path, char **out, GError **error);
/* Whether @req carries the Basic credentials @user:@password, under the
 * server's per-address limits on password guessing; else answers 429 or
 * 401 (realm @realm) and returns FALSE. Any thread. */
gboolean mk_http_check_basic(MkHttpRequest *req, const char *realm, const char *user,
                             const char *password);
