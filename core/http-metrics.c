/* GET /metrics on the http listeners that say `metrics = true`: the
 * registry in the Prometheus text format (metrics_render_prometheus),
 * answered on the listener's own thread, since rendering takes only the
 * registry's lock. Optional Basic auth: metrics_user and the password in
 * metrics_password_file (read on each scrape, so it may be rotated). */
#include "http.h"
#include "metrics.h"

/* See http.h. */
gboolean mk_http_metrics_serve(MkHttpRequest *req, const MkListenConfig *lc)
{
    if (!lc->metrics || !g_str_equal(mk_http_request_path(req), "/metrics"))
        return FALSE;
    if (lc->metrics_user && *lc->metrics_user) {
        g_autofree char *expected = NULL;
        g_autoptr(GError) error = NULL;
        if (!mk_http_secret_read_file(lc->metrics_password_file, &expected, &error)) {
            g_warning("[listen.%s] metrics_password_file: %s", lc->name, error->message);
            mk_http_reply_error(req, 500, NULL, "no password configured");
            return TRUE;
        }
        gboolean ok = mk_http_check_basic(req, "metrics", lc->metrics_user, expected);
        mk_http_secret_free(g_steal_pointer(&expected));
        if (!ok)
            return TRUE;
    }
    GString *out = g_string_sized_new(4096);
    metrics_render_prometheus(out);
    mk_http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", out->str);
    g_string_free(out, TRUE);
    return TRUE;
}
