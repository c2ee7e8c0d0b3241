/* `type = http` listeners on libmicrohttpd, and the request objects
 * modules answer (mk-http.h).
 *
 * Threads (docs/architecture.md, "HTTP"): each listener runs one
 * libmicrohttpd thread (its internal epoll loop) that reads requests,
 * enforces the bounds and matches routes; a module's handler runs on a
 * worker, reached through its mailbox, with the connection suspended;
 * the reply, from any thread, resumes it. So no worker ever waits for a
 * slow client, and handlers get the same API as hooks. */
#include "http.h"
#include "modules.h"
#include "server.h"
#include "worker.h"
#include <errno.h>
#include <gio/gio.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

/* Time requests in flight get to be answered when a listener stops. */
#define STOP_GRACE_US (3 * G_USEC_PER_SEC)

struct MkHttpListener {
    MkServer *srv;
    const MkListenConfig *lc;
    struct MHD_Daemon *daemon;
    guint16 port;
    char *cert_pem, *key_pem; /* HTTPS: libmicrohttpd wants them in memory */
    guint next_worker;        /* atomic: round robin of handlers */

    GMutex lock;
    GCond cond;
    GHashTable *live; /* MkHttpRequest* set: begun and not completed */
    gboolean stopping;
    /* core.http.* counters (never freed: they live with the registry). */
    MkCounter *requests, *too_large, *too_many_headers, *not_found, *server_errors;
};

struct MkHttpRequest {
    gint ref;     /* memory: libmicrohttpd's (until completed) + handlers' */
    gint pending; /* references of handlers: the last one without a reply answers 500 */
    MkHttpListener *hl;
    struct MHD_Connection *conn; /* until completed */
    char *method, *path, *peer;
    GString *body;
    gboolean too_large; /* body beyond max_body_size: 413 at the end */
    gboolean dispatched;
    GHashTable *params, *query, *headers; /* headers: lower-case names */
    MkModule *mod;                        /* reference, once matched */
    JsonParser *parser;                   /* the parsed body, lazily */
    char *auth_user, *auth_password;      /* Basic credentials, once parsed */

    GMutex lock; /* everything below */
    gboolean suspended;
    gboolean replied;
    gboolean completed;
    guint status;
    struct MHD_Response *response;
    GPtrArray *reply_headers; /* name, value, name, value ... */
    /* Streamed replies (mk_http_reply_stream). */
    gboolean streaming, stream_closed;
    GString *stream_buf;
};

static void request_free(MkHttpRequest *req)
{
    g_free(req->method);
    g_free(req->path);
    g_free(req->peer);
    g_string_free(req->body, TRUE);
    g_clear_pointer(&req->params, g_hash_table_unref);
    g_clear_pointer(&req->query, g_hash_table_unref);
    g_clear_pointer(&req->headers, g_hash_table_unref);
    g_clear_object(&req->parser);
    g_free(req->auth_user);
    if (req->auth_password) {
        memset(req->auth_password, 0, strlen(req->auth_password));
        g_free(req->auth_password);
    }
    if (req->response)
        MHD_destroy_response(req->response);
    g_ptr_array_unref(req->reply_headers);
    if (req->stream_buf)
        g_string_free(req->stream_buf, TRUE);
    g_mutex_clear(&req->lock);
    if (req->mod)
        mk_module_unref(req->mod);
    g_free(req);
}

static void request_unref_memory(MkHttpRequest *req)
{
    if (g_atomic_int_dec_and_test(&req->ref))
        request_free(req);
}

/* Public module API (mk-http.h). Any thread. */
MkHttpRequest *mk_http_request_ref(MkHttpRequest *req)
{
    g_return_val_if_fail(req != NULL, NULL);
    g_atomic_int_inc(&req->ref);
    g_atomic_int_inc(&req->pending);
    return req;
}

/* Public module API. Any thread. */
void mk_http_request_unref(MkHttpRequest *req)
{
    if (!req)
        return;
    if (g_atomic_int_dec_and_test(&req->pending)) {
        g_mutex_lock(&req->lock);
        gboolean answered = req->replied;
        g_mutex_unlock(&req->lock);
        if (!answered)
            mk_http_reply_error(req, 500, NULL, "the handler gave no answer");
    }
    request_unref_memory(req);
}

/* Wakes the connection up if it waits for us. Under req->lock. */
static void wake_locked(MkHttpRequest *req)
{
    if (req->suspended && !req->completed) {
        req->suspended = FALSE;
        MHD_resume_connection(req->conn);
    }
}

/* Installs @resp as the answer: FALSE when there was one already. */
static gboolean set_response(MkHttpRequest *req, guint status, struct MHD_Response *resp)
{
    g_mutex_lock(&req->lock);
    if (req->replied) {
        g_mutex_unlock(&req->lock);
        MHD_destroy_response(resp);
        g_warning("HTTP %s %s: answered twice", req->method, req->path);
        return FALSE;
    }
    for (guint i = 0; i + 1 < req->reply_headers->len; i += 2)
        MHD_add_response_header(resp, req->reply_headers->pdata[i],
                                req->reply_headers->pdata[i + 1]);
    req->replied = TRUE;
    req->status = status;
    req->response = resp;
    wake_locked(req);
    g_mutex_unlock(&req->lock);
    return TRUE;
}

/* Public module API. Any thread. */
void mk_http_reply_header(MkHttpRequest *req, const char *name, const char *value)
{
    g_return_if_fail(req && name && value);
    g_mutex_lock(&req->lock);
    g_ptr_array_add(req->reply_headers, g_strdup(name));
    g_ptr_array_add(req->reply_headers, g_strdup(value));
    g_mutex_unlock(&req->lock);
}

/* Public module API. Any thread. */
void mk_http_reply_text(MkHttpRequest *req, guint status, const char *content_type,
                        const char *body)
{
    g_return_if_fail(req != NULL);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body ? strlen(body) : 0, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (body && content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    set_response(req, status, resp);
}

/* Public module API. Any thread. */
void mk_http_reply_json(MkHttpRequest *req, guint status, JsonNode *body)
{
    g_return_if_fail(req != NULL);
    if (!body) {
        mk_http_reply_text(req, status, NULL, NULL);
        return;
    }
    g_autofree char *text = json_to_string(body, FALSE);
    json_node_unref(body);
    mk_http_reply_text(req, status, "application/json", text);
}

/* Public module API. Any thread. */
void mk_http_reply_error(MkHttpRequest *req, guint status, const char *field, const char *format,
                         ...)
{
    g_return_if_fail(req != NULL && format != NULL);
    va_list ap;
    va_start(ap, format);
    g_autofree char *msg = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_add_string_value(b, msg);
    if (field) {
        json_builder_set_member_name(b, "field");
        json_builder_add_string_value(b, field);
    }
    json_builder_end_object(b);
    mk_http_reply_json(req, status, json_builder_get_root(b));
}

/* Public module API. Any thread. */
void mk_http_reply_unauthorized(MkHttpRequest *req, const char *realm)
{
    g_autofree char *value = g_strdup_printf("Basic realm=\"%s\"", realm ? realm : "meerkat");
    mk_http_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, value);
    mk_http_reply_error(req, 401, NULL, "authentication required");
}

/* ---- streamed replies ---- */

/* The listener's thread: the next bytes of a stream, or a pause. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    MkHttpRequest *req = cls;
    g_mutex_lock(&req->lock);
    ssize_t n = 0;
    if (req->stream_buf->len) {
        n = (ssize_t)MIN(max, req->stream_buf->len);
        memcpy(buf, req->stream_buf->str, (size_t)n);
        g_string_erase(req->stream_buf, 0, n);
    } else if (req->stream_closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: sleep until the next write instead of being
         * polled (libmicrohttpd would spin on a 0). */
        req->suspended = TRUE;
        MHD_suspend_connection(req->conn);
    }
    g_mutex_unlock(&req->lock);
    return n;
}

/* Public module API. Any thread. */
void mk_http_reply_stream(MkHttpRequest *req, guint status, const char *content_type)
{
    g_return_if_fail(req != NULL);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, req, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    g_mutex_lock(&req->lock);
    req->streaming = TRUE;
    req->stream_buf = g_string_new(NULL);
    g_mutex_unlock(&req->lock);
    if (set_response(req, status, resp)) {
        /* The response reads from @req until libmicrohttpd is done with it. */
        g_atomic_int_inc(&req->ref);
    }
}

/* Public module API. Any thread. */
gboolean mk_http_stream_write(MkHttpRequest *req, const char *data, gssize len)
{
    g_return_val_if_fail(req != NULL && data != NULL, FALSE);
    g_mutex_lock(&req->lock);
    gboolean open = req->streaming && !req->stream_closed && !req->completed;
    if (open) {
        g_string_append_len(req->stream_buf, data, len);
        wake_locked(req);
    }
    g_mutex_unlock(&req->lock);
    return open;
}

/* Public module API. Any thread. */
void mk_http_stream_close(MkHttpRequest *req)
{
    g_return_if_fail(req != NULL);
    g_mutex_lock(&req->lock);
    req->stream_closed = TRUE;
    wake_locked(req);
    g_mutex_unlock(&req->lock);
}

/* ---- request accessors ---- */

MkModule *mk_http_request_module(MkHttpRequest *req)
{
    return req->mod;
}

const char *mk_http_request_method(MkHttpRequest *req)
{
    return req->method;
}

const char *mk_http_request_path(MkHttpRequest *req)
{
    return req->path;
}

const char *mk_http_request_param(MkHttpRequest *req, const char *name)
{
    return req->params ? g_hash_table_lookup(req->params, name) : NULL;
}

const char *mk_http_request_query(MkHttpRequest *req, const char *name)
{
    return req->query ? g_hash_table_lookup(req->query, name) : NULL;
}

const char *mk_http_request_header(MkHttpRequest *req, const char *name)
{
    g_autofree char *lower = g_ascii_strdown(name, -1);
    return req->headers ? g_hash_table_lookup(req->headers, lower) : NULL;
}

const char *mk_http_request_peer(MkHttpRequest *req)
{
    return req->peer;
}

const char *mk_http_request_body(MkHttpRequest *req, gsize *len)
{
    if (len)
        *len = req->body->len;
    return req->body->str;
}

/* Public module API. The handler's thread. */
JsonObject *mk_http_request_json(MkHttpRequest *req)
{
    if (req->parser) {
        JsonNode *root = json_parser_get_root(req->parser);
        return root ? json_node_get_object(root) : NULL;
    }
    const char *ct = mk_http_request_header(req, "content-type");
    if (!ct || g_ascii_strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        mk_http_reply_error(req, 415, NULL, "the body must be application/json");
        return NULL;
    }
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) error = NULL;
    if (!json_parser_load_from_data(parser, req->body->str, (gssize)req->body->len, &error)) {
        mk_http_reply_error(req, 400, NULL, "invalid JSON: %s", error->message);
        return NULL;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        mk_http_reply_error(req, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    req->parser = g_steal_pointer(&parser);
    return json_node_get_object(root);
}

/* Public module API. */
gboolean mk_http_request_query_int(MkHttpRequest *req, const char *name, gint64 max, gint64 *out)
{
    const char *v = mk_http_request_query(req, name);
    if (!v)
        return TRUE;
    char *end = NULL;
    gint64 n = g_ascii_strtoll(v, &end, 10);
    if (!*v || *end || n < 0 || n > max) {
        mk_http_reply_error(req, 400, name, "%s must be an integer from 0 to %" G_GINT64_FORMAT,
                            name, max);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

gboolean mk_http_json_string(MkHttpRequest *req, JsonObject *obj, const char *field,
                             gboolean required, const char **out)
{
    JsonNode *n = json_object_get_member(obj, field);
    *out = NULL;
    if (!n || JSON_NODE_HOLDS_NULL(n)) {
        if (!required)
            return TRUE;
        mk_http_reply_error(req, 400, field, "missing field \"%s\"", field);
        return FALSE;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
        mk_http_reply_error(req, 400, field, "field \"%s\" must be a string", field);
        return FALSE;
    }
    *out = json_node_get_string(n);
    return TRUE;
}

/* Public module API. */
gboolean mk_http_json_int(MkHttpRequest *req, JsonObject *obj, const char *field, gboolean required,
                          gint64 *out)
{
    JsonNode *n = json_object_get_member(obj, field);
    if (!n || JSON_NODE_HOLDS_NULL(n)) {
        if (!required)
            return TRUE;
        mk_http_reply_error(req, 400, field, "missing field \"%s\"", field);
        return FALSE;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) {
        mk_http_reply_error(req, 400, field, "field \"%s\" must be an integer", field);
        return FALSE;
    }
    *out = json_node_get_int(n);
    return TRUE;
}

/* Public module API. Any thread. */
gboolean mk_http_secret_equal(const char *given, const char *expected)
{
    g_return_val_if_fail(given && expected, FALSE);
    gsize n = strlen(expected), m = strlen(given);
    /* Every byte of @expected is looked at whatever @given holds. */
    guint8 diff = n != m;
    for (gsize i = 0; i < n; i++)
        diff |= (guint8)expected[i] ^ (guint8)(i < m ? given[i] : 0);
    return diff == 0;
}

/* Public module API. The handler's thread. */
gboolean mk_http_request_basic_auth(MkHttpRequest *req, const char **user, const char **password)
{
    if (!req->auth_user) {
        const char *h = mk_http_request_header(req, "authorization");
        if (!h || g_ascii_strncasecmp(h, "Basic ", 6) != 0)
            return FALSE;
        gsize len = 0;
        g_autofree guchar *raw = g_base64_decode(h + 6, &len);
        g_autofree char *text = g_strndup((const char *)raw, len);
        char *colon = strchr(text, ':');
        if (!colon || strlen(text) != len || !g_utf8_validate(text, -1, NULL)) {
            if (text)
                memset(text, 0, strlen(text));
            return FALSE;
        }
        *colon = '\0';
        req->auth_user = g_strdup(text);
        req->auth_password = g_strdup(colon + 1);
        memset(text, 0, len);
    }
    *user = req->auth_user;
    *password = req->auth_password;
    return TRUE;
}

/* ---- the listener's thread ---- */

typedef struct {
    MkHttpRequest *req; /* a handler reference (pending) */
    MkHttpFunc func;
    gpointer user_data;
} HandlerJob;

static void handler_job_free(gpointer data)
{
    HandlerJob *job = data;
    mk_http_request_unref(job->req); /* no answer yet: 500 */
    g_free(job);
}

/* The worker: runs the route's handler, unless its module stopped. */
static void handler_job_run(gpointer data)
{
    HandlerJob *job = data;
    if (mk_module_is_running(job->req->mod))
        job->func(job->req, job->user_data);
    else
        mk_http_reply_error(job->req, 503, NULL, "%s is stopping", mk_module_name(job->req->mod));
    handler_job_free(job);
}

static enum MHD_Result collect_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    GHashTable *t = cls;
    if (key)
        g_hash_table_insert(t, kind == MHD_HEADER_KIND ? g_ascii_strdown(key, -1) : g_strdup(key),
                            g_strdup(value ? value : ""));
    return MHD_YES;
}

static enum MHD_Result queue_now(struct MHD_Connection *conn, MkHttpRequest *req)
{
    g_mutex_lock(&req->lock);
    struct MHD_Response *resp = req->response;
    guint status = req->status;
    g_mutex_unlock(&req->lock);
    MkHttpListener *hl = req->hl;
    if (status == 413)
        mk_counter_add(hl->too_large, 1);
    else if (status == 431)
        mk_counter_add(hl->too_many_headers, 1);
    else if (status == 404)
        mk_counter_add(hl->not_found, 1);
    else if (status >= 500)
        mk_counter_add(hl->server_errors, 1);
    return MHD_queue_response(conn, status, resp);
}

/* Answers at once from the listener's thread (errors of the core). */
static enum MHD_Result answer_error(struct MHD_Connection *conn, MkHttpRequest *req, guint status,
                                    const char *allow, const char *msg)
{
    if (allow)
        mk_http_reply_header(req, MHD_HTTP_HEADER_ALLOW, allow);
    mk_http_reply_error(req, status, NULL, "%s", msg);
    return queue_now(conn, req);
}

static MkHttpRequest *request_new(MkHttpListener *hl, struct MHD_Connection *conn,
                                  const char *method, const char *url)
{
    MkHttpRequest *req = g_new0(MkHttpRequest, 1);
    req->ref = 1; /* libmicrohttpd's, until completed */
    req->hl = hl;
    req->conn = conn;
    req->method = g_strdup(method);
    req->path = g_strdup(url);
    req->body = g_string_new(NULL);
    req->reply_headers = g_ptr_array_new_with_free_func(g_free);
    g_mutex_init(&req->lock);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        g_autoptr(GSocketAddress) sa = g_socket_address_new_from_native(
            ci->client_addr, ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                    : sizeof(struct sockaddr_in));
        if (G_IS_INET_SOCKET_ADDRESS(sa))
            req->peer = g_inet_address_to_string(
                g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa)));
    }
    if (!req->peer)
        req->peer = g_strdup("?");
    req->headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    req->query = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_value, req->headers);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_value, req->query);
    return req;
}

/* Routes the complete request: the core's own answers here, a module's
 * handler on a worker. */
static enum MHD_Result dispatch(MkHttpListener *hl, struct MHD_Connection *conn, MkHttpRequest *req)
{
    req->dispatched = TRUE;
    if (req->too_large)
        return answer_error(conn, req, 413, NULL, "the body is too large");
    if (g_str_equal(req->method, "GET") && mk_http_metrics_serve(req, hl->lc))
        return queue_now(conn, req);

    MkHttpFunc func = NULL;
    gpointer user_data = NULL;
    g_autofree char *allow = NULL;
    switch (mk_http_routes_match(hl->srv->http_routes, hl->lc->modules, req->method, req->path,
                                 &func, &user_data, &req->mod, &req->params, &allow)) {
    case MK_HTTP_MATCH_NO_PATH:
        return answer_error(conn, req, 404, NULL, "no such resource");
    case MK_HTTP_MATCH_NO_METHOD:
        return answer_error(conn, req, 405, allow, "method not allowed here");
    case MK_HTTP_MATCH_FOUND:
        break;
    }
    HandlerJob *job = g_new0(HandlerJob, 1);
    job->req = mk_http_request_ref(req);
    job->func = func;
    job->user_data = user_data;
    g_mutex_lock(&req->lock);
    req->suspended = TRUE;
    MHD_suspend_connection(conn);
    g_mutex_unlock(&req->lock);
    guint n = mk_workers_count(hl->srv->workers);
    guint i = (guint)g_atomic_int_add((gint *)&hl->next_worker, 1) % n;
    mk_worker_post(mk_workers_get(hl->srv->workers, i), handler_job_run, job, handler_job_free);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    MkHttpListener *hl = cls;
    MkHttpRequest *req = *con_cls;
    if (!req) {
        req = request_new(hl, conn, method, url);
        *con_cls = req;
        mk_counter_add(hl->requests, 1);
        g_mutex_lock(&hl->lock);
        g_hash_table_add(hl->live, req);
        g_mutex_unlock(&hl->lock);
        req->dispatched = TRUE; /* an error answered here: drop any body */
        if (g_hash_table_size(req->headers) > hl->lc->max_headers)
            return answer_error(conn, req, 431, NULL, "too many header fields");
        const char *cl = g_hash_table_lookup(req->headers, "content-length");
        if (cl && g_ascii_strtoull(cl, NULL, 10) > hl->lc->max_body_size)
            return answer_error(conn, req, 413, NULL, "the body is too large");
        req->dispatched = FALSE;
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->body->len + *upload_size > hl->lc->max_body_size)
            req->too_large = TRUE;
        else if (!req->dispatched)
            g_string_append_len(req->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!req->dispatched)
        return dispatch(hl, conn, req);
    /* Resumed with an answer. */
    g_mutex_lock(&req->lock);
    gboolean ready = req->response != NULL;
    g_mutex_unlock(&req->lock);
    return ready ? queue_now(conn, req) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    MkHttpListener *hl = cls;
    MkHttpRequest *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    g_mutex_lock(&req->lock);
    req->completed = TRUE;
    req->conn = NULL;
    gboolean streaming = req->streaming && req->replied;
    g_mutex_unlock(&req->lock);
    g_mutex_lock(&hl->lock);
    g_hash_table_remove(hl->live, req);
    g_cond_broadcast(&hl->cond);
    g_mutex_unlock(&hl->lock);
    if (streaming)
        request_unref_memory(req); /* the stream's reader */
    request_unref_memory(req);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    g_debug("http: %s", g_strchomp(msg));
}

MkHttpListener *mk_http_listener_start(MkServer *srv, const MkListenConfig *lc, GError **error)
{
    MkHttpListener *hl = g_new0(MkHttpListener, 1);
    hl->srv = srv;
    hl->lc = lc;
    g_mutex_init(&hl->lock);
    g_cond_init(&hl->cond);
    hl->live = g_hash_table_new(NULL, NULL);
    hl->requests = mk_metrics_core_counter(srv->modules, "http.requests");
    hl->too_large = mk_metrics_core_counter(srv->modules, "http.body_too_large");
    hl->too_many_headers = mk_metrics_core_counter(srv->modules, "http.too_many_headers");
    hl->not_found = mk_metrics_core_counter(srv->modules, "http.not_found");
    hl->server_errors = mk_metrics_core_counter(srv->modules, "http.server_errors");

    const char *host =
        g_ascii_strcasecmp(lc->address, "localhost") == 0 ? "127.0.0.1" : lc->address;
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(host);
    g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(ia, lc->port);
    struct sockaddr_storage native;
    if (!g_socket_address_to_native(sa, &native, sizeof native, error)) {
        mk_http_listener_stop(hl);
        return NULL;
    }
    unsigned int flags =
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (g_inet_address_get_family(ia) == G_SOCKET_FAMILY_IPV6)
        flags |= MHD_USE_IPv6;
    if (lc->tls == MK_TLS_DIRECT) {
        if (!g_file_get_contents(lc->certfile, &hl->cert_pem, NULL, error) ||
            !g_file_get_contents(lc->keyfile, &hl->key_pem, NULL, error)) {
            g_prefix_error(error, "[listen.%s]: ", lc->name);
            mk_http_listener_stop(hl);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, hl->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, hl->key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"},
        {MHD_OPTION_END, 0, NULL},
    };
    hl->daemon = MHD_start_daemon(
        flags, lc->port, NULL, NULL, on_request, hl, MHD_OPTION_SOCK_ADDR, &native,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, hl, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)lc->idle_timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)lc->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)lc->max_connections_per_address, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned int)lc->backlog, MHD_OPTION_EXTERNAL_LOGGER, on_log, hl, MHD_OPTION_ARRAY,
        lc->tls == MK_TLS_DIRECT ? tls_opts : &tls_opts[3], MHD_OPTION_END);
    if (!hl->daemon) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE,
                    "[listen.%s]: cannot serve HTTP on %s:%u: %s", lc->name, lc->address, lc->port,
                    g_strerror(errno));
        mk_http_listener_stop(hl);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(hl->daemon, MHD_DAEMON_INFO_BIND_PORT);
    hl->port = di ? di->port : lc->port;
    return hl;
}

guint16 mk_http_listener_port(MkHttpListener *hl)
{
    return hl->port;
}

/* Answers every request still waiting for a handler (503) and ends the
 * streams. Under hl->lock. */
static void give_up_locked(MkHttpListener *hl)
{
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, hl->live);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        MkHttpRequest *req = key;
        g_mutex_lock(&req->lock);
        gboolean replied = req->replied, waiting = req->suspended;
        req->stream_closed = TRUE;
        wake_locked(req);
        g_mutex_unlock(&req->lock);
        if (!replied && waiting)
            mk_http_reply_error(req, 503, NULL, "the server is shutting down");
    }
}

/* Whether a request of hl->live is still suspended. Under hl->lock. */
static gboolean any_suspended_locked(MkHttpListener *hl)
{
    GHashTableIter it;
    gpointer key;
    gboolean any = FALSE;
    g_hash_table_iter_init(&it, hl->live);
    while (!any && g_hash_table_iter_next(&it, &key, NULL)) {
        MkHttpRequest *req = key;
        g_mutex_lock(&req->lock);
        any = req->suspended || (req->dispatched && !req->replied);
        g_mutex_unlock(&req->lock);
    }
    return any;
}

void mk_http_listener_stop(MkHttpListener *hl)
{
    if (!hl)
        return;
    if (hl->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(hl->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        /* Handlers in flight (their storage jobs) get a moment; then the
         * core answers for them, since libmicrohttpd must not be stopped
         * with suspended connections. */
        gint64 deadline = g_get_monotonic_time() + STOP_GRACE_US;
        g_mutex_lock(&hl->lock);
        hl->stopping = TRUE;
        while (any_suspended_locked(hl)) {
            if (!g_cond_wait_until(&hl->cond, &hl->lock,
                                   MIN(deadline, g_get_monotonic_time() + G_USEC_PER_SEC / 20)) &&
                g_get_monotonic_time() >= deadline) {
                give_up_locked(hl);
                deadline = G_MAXINT64;
            }
            /* Streams never end by themselves. */
            GHashTableIter it;
            gpointer key;
            g_hash_table_iter_init(&it, hl->live);
            while (g_hash_table_iter_next(&it, &key, NULL)) {
                MkHttpRequest *req = key;
                g_mutex_lock(&req->lock);
                if (req->streaming) {
                    req->stream_closed = TRUE;
                    wake_locked(req);
                }
                g_mutex_unlock(&req->lock);
            }
        }
        g_mutex_unlock(&hl->lock);
        MHD_stop_daemon(hl->daemon);
    }
    g_hash_table_unref(hl->live);
    g_mutex_clear(&hl->lock);
    g_cond_clear(&hl->cond);
    g_free(hl->cert_pem);
    g_free(hl->key_pem);
    g_free(hl);
}
