/* meerkatctl's way to a running server: the admin REST API
 * (mod_rest_admin) on the configuration's http listener, with the
 * admin's credentials from the module's configuration. A small blocking
 * HTTP/1.1 client over GIO: one request per connection. */
#include "meerkatctl-rest.h"
#include <gio/gio.h>
#include <string.h>

struct CtlRest {
    char *host;
    guint16 port;
    gboolean tls;
    char *prefix;
    char *user, *password;
};

void ctl_rest_free(CtlRest *r)
{
    if (!r)
        return;
    g_free(r->host);
    g_free(r->prefix);
    g_free(r->user);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        g_free(r->password);
    }
    g_free(r);
}

/* The listener serving mod_rest_admin's routes, or NULL. */
static const MkListenConfig *admin_listener(const MkConfigData *cfg)
{
    for (guint i = 0; i < cfg->listeners->len; i++) {
        const MkListenConfig *lc = g_ptr_array_index(cfg->listeners, i);
        if (g_str_equal(lc->type, "http") &&
            (!lc->modules || !*lc->modules ||
             g_strv_contains((const char *const *)lc->modules, "mod_rest_admin")))
            return lc;
    }
    return NULL;
}

static char *module_key(GKeyFile *kf, const char *key, const char *def)
{
    g_autofree char *v = g_key_file_get_string(kf, "mod_rest_admin", key, NULL);
    return g_strdup(v ? g_strstrip(v) : def);
}

CtlRest *ctl_rest_new(const MkConfigData *cfg, GError **error)
{
    const MkModuleConfig *mc = mk_config_find_module(cfg, "mod_rest_admin");
    const MkListenConfig *lc = admin_listener(cfg);
    if (!mc || !lc) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "the configuration has no admin REST API (mod_rest_admin and a "
                    "type = http listener)");
        return NULL;
    }
    CtlRest *r = g_new0(CtlRest, 1);
    const char *a = lc->address;
    r->host = g_strdup(g_ascii_strcasecmp(a, "localhost") == 0 || g_str_equal(a, "0.0.0.0") ||
                               g_str_equal(a, "*") || !*a
                           ? "127.0.0.1"
                       : g_str_equal(a, "::") ? "::1"
                                              : a);
    r->port = lc->port;
    r->tls = lc->tls == MK_TLS_DIRECT;
    r->prefix = module_key(mc->keys, "prefix", "/api");
    r->user = module_key(mc->keys, "username", "admin");
    r->password = module_key(mc->keys, "password", "");
    g_autofree char *file = module_key(mc->keys, "password_file", "");
    if (!*r->password && *file) {
        g_autofree char *text = NULL;
        if (!g_file_get_contents(file, &text, NULL, error)) {
            ctl_rest_free(r);
            return NULL;
        }
        text[strcspn(text, "\r\n")] = '\0';
        g_free(r->password);
        r->password = g_steal_pointer(&text);
    }
    return r;
}

static gboolean accept_any(GTlsConnection *conn, GTlsCertificate *cert, GTlsCertificateFlags errors,
                           gpointer data)
{
    return TRUE; /* our own server, usually with its self-signed certificate */
}

static void on_event(GSocketClient *client, GSocketClientEvent event,
                     GSocketConnectable *connectable, GIOStream *connection, gpointer data)
{
    if (event == G_SOCKET_CLIENT_TLS_HANDSHAKING)
        g_signal_connect(connection, "accept-certificate", G_CALLBACK(accept_any), NULL);
}

static GSocketConnection *connect_to(CtlRest *r, GError **error)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_socket_client_set_timeout(client, 30);
    if (r->tls) {
        g_socket_client_set_tls(client, TRUE);
        g_signal_connect(client, "event", G_CALLBACK(on_event), NULL);
    }
    return g_socket_client_connect_to_host(client, r->host, r->port, NULL, error);
}

gboolean ctl_rest_running(CtlRest *r)
{
    g_autoptr(GSocketConnection) c = connect_to(r, NULL);
    return c != NULL;
}

const char *ctl_rest_address(CtlRest *r)
{
    static char buf[300];
    g_snprintf(buf, sizeof buf, "%s:%u", r->host, r->port);
    return buf;
}

/* Percent-encodes a path segment. */
static char *seg(const char *s)
{
    return g_uri_escape_string(s, "@", TRUE);
}

char *ctl_rest_path(CtlRest *r, const char *first, ...)
{
    GString *p = g_string_new(r->prefix);
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        g_autofree char *e = seg(s);
        g_string_append_c(p, '/');
        g_string_append(p, e);
    }
    va_end(ap);
    return g_string_free(p, FALSE);
}

gboolean ctl_rest_call(CtlRest *r, const char *method, const char *path, const char *json,
                       guint *status, char **body, GError **error)
{
    g_autoptr(GSocketConnection) c = connect_to(r, error);
    if (!c)
        return FALSE;
    g_autofree char *cred = g_strdup_printf("%s:%s", r->user, r->password);
    g_autofree char *b64 = g_base64_encode((const guchar *)cred, strlen(cred));
    g_autoptr(GString) req = g_string_new(NULL);
    g_string_append_printf(req,
                           "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"
                           "Connection: close\r\nAccept: application/json\r\n",
                           method, path, r->host, b64);
    if (json)
        g_string_append_printf(req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                               strlen(json));
    g_string_append(req, "\r\n");
    if (json)
        g_string_append(req, json);
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(c));
    if (!g_output_stream_write_all(out, req->str, req->len, NULL, NULL, error))
        return FALSE;
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(c));
    g_autoptr(GByteArray) resp = g_byte_array_new();
    guint8 buf[8192];
    for (;;) {
        gssize n = g_input_stream_read(in, buf, sizeof buf, NULL, error);
        if (n < 0)
            return FALSE;
        if (n == 0)
            break;
        g_byte_array_append(resp, buf, (guint)n);
    }
    g_byte_array_append(resp, (const guint8 *)"", 1);
    const char *text = (const char *)resp->data;
    const char *end = strstr(text, "\r\n\r\n");
    if (!g_str_has_prefix(text, "HTTP/1.") || !end || strlen(text) < 12) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not an HTTP answer from %s",
                    ctl_rest_address(r));
        return FALSE;
    }
    *status = (guint)g_ascii_strtoull(text + 9, NULL, 10);
    /* The server answers with Content-Length and closes (Connection:
     * close): the body is the rest. */
    *body = g_strdup(end + 4);
    return TRUE;
}
