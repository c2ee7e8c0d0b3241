/* Backend "http": each event is POSTed as JSON to http_url.
 *
 * libsoup 3 on a thread of its own with its own GMainContext: a
 * SoupSession belongs to the context it was made in, and the workers'
 * contexts must never run a slow server's callbacks; the thread keeps
 * connections alive for reuse, runs at most http_concurrency requests at
 * once and retries failures with back-off. Why libsoup rather than
 * libcurl: docs/mod_event_pusher.md. */
#include "pusher.h"
#include <libsoup/soup.h>

typedef struct {
    PusherBackend base;
    MkModule *mod;
    char *url;
    guint timeout_s, retries, retry_ms, concurrency, batch;
    gboolean verify;
    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;
    GCancellable *cancel;
    /* The thread's own. */
    SoupSession *session;
    guint in_flight;      /* requests sent or waiting for a retry */
    GHashTable *retrying; /* HttpReq -> its timer GSource */
    gboolean stopping;
    GSource *linger; /* a partial batch waits */
    gboolean flush;  /* send one partial batch now */
    PusherBuf local; /* records taken from the queue, not yet sent */
    gsize local_off; /* the first unsent record in @local */
    guint local_n;   /* records from @local_off */
    GMutex pool_lock;
    GPtrArray *pool; /* Body: spare POST bodies */
    gint64 last_log_us;
    guint64 failed_since_log;
    MkCounter *sent, *failed, *retried;
} Http;

/* One POST: one event, or with http_batch > 1 a JSON array of up to
 * that many; the body is kept for retries. */
typedef struct {
    Http *h;
    GBytes *body;
    guint events;
    guint attempt;
    SoupMessage *msg;
} HttpReq;

static void req_free(HttpReq *r)
{
    g_clear_object(&r->msg);
    g_bytes_unref(r->body);
    g_free(r);
}

static void drain(Http *h);

/* The thread: an operator asked for it (http_tls_verify = false). */
static gboolean accept_any(SoupMessage *msg, GTlsCertificate *cert, GTlsCertificateFlags errors,
                           gpointer data)
{
    return TRUE;
}

static void on_sent(GObject *src, GAsyncResult *res, gpointer data);

static void send_req(HttpReq *r)
{
    Http *h = r->h;
    r->msg = soup_message_new("POST", h->url);
    soup_message_set_request_body_from_bytes(r->msg, "application/json", r->body);
    /* libsoup opens a new connection for every POST (one that is not
     * idempotent cannot be replayed on a kept-alive connection the server
     * closed meanwhile); we retry anyway, so reuse them. */
    soup_message_add_flags(r->msg, SOUP_MESSAGE_IDEMPOTENT);
    if (!h->verify)
        g_signal_connect(r->msg, "accept-certificate", G_CALLBACK(accept_any), NULL);
    soup_session_send_and_read_async(h->session, r->msg, G_PRIORITY_DEFAULT, h->cancel, on_sent, r);
}

static gboolean on_retry(gpointer data)
{
    HttpReq *r = data;
    GSource *t = g_hash_table_lookup(r->h->retrying, r);
    g_hash_table_remove(r->h->retrying, r);
    g_source_unref(t); /* the table's reference; the context drops its own */
    send_req(r);
    return G_SOURCE_REMOVE;
}

/* Logs failures at most every 10 s, with how many there were. */
static void log_failure(Http *h, HttpReq *r, const char *why)
{
    h->failed_since_log += r->events;
    gint64 now = g_get_monotonic_time();
    if (now - h->last_log_us < 10 * G_USEC_PER_SEC)
        return;
    h->last_log_us = now;
    g_warning("mod_event_pusher: http: POST %s failed (%s) after %u attempt(s); %" G_GUINT64_FORMAT
              " event(s) dropped so since the last such line",
              h->url, why, r->attempt + 1, h->failed_since_log);
    h->failed_since_log = 0;
}

static void on_sent(GObject *src, GAsyncResult *res, gpointer data)
{
    HttpReq *r = data;
    Http *h = r->h;
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) reply = soup_session_send_and_read_finish(SOUP_SESSION(src), res, &err);
    guint status = err ? 0 : soup_message_get_status(r->msg);
    g_clear_object(&r->msg);
    if (h->stopping) {
        if (!err && status >= 200 && status < 300)
            mk_counter_add(h->sent, r->events);
        h->in_flight--;
        req_free(r);
        return;
    }
    if (!err && status >= 200 && status < 300) {
        mk_counter_add(h->sent, r->events);
        h->in_flight--;
        req_free(r);
        drain(h);
        return;
    }
    /* Worth another try: no answer, a server error, "too many requests". */
    gboolean transient = err || status >= 500 || status == 429 || status == 408;
    if (transient && r->attempt < h->retries) {
        guint delay = MIN((guint64)h->retry_ms << r->attempt, 30000);
        r->attempt++;
        mk_counter_add(h->retried, 1);
        GSource *t = g_timeout_source_new(delay);
        g_source_set_callback(t, on_retry, r, NULL);
        g_hash_table_insert(h->retrying, r, t);
        g_source_attach(t, h->ctx);
        return;
    }
    mk_counter_add(h->failed, r->events);
    g_autofree char *why = err ? g_strdup(err->message) : g_strdup_printf("HTTP %u", status);
    log_failure(h, r, why);
    h->in_flight--;
    req_free(r);
    drain(h);
}

/* The thread: a partial batch waited long enough. */
static gboolean on_linger(gpointer data)
{
    Http *h = data;
    g_clear_pointer(&h->linger, g_source_unref);
    h->flush = TRUE; /* until a partial batch went: all connections may be busy now */
    drain(h);
    return G_SOURCE_REMOVE;
}

/* A POST's body buffer, back in the pool when libsoup lets go of it: a
 * batch's body is tens of KB, and malloc gave that back to the kernel
 * and faulted it in again for every POST. */
typedef struct {
    Http *h;
    PusherBuf buf;
} Body;

#define BODY_POOL_MAX 8

/* Whatever thread drops the last reference (libsoup's: the http thread). */
static void body_done(gpointer data)
{
    Body *b = data;
    Http *h = b->h;
    g_mutex_lock(&h->pool_lock);
    if (h->pool->len < BODY_POOL_MAX) {
        g_ptr_array_add(h->pool, b);
        b = NULL;
    }
    g_mutex_unlock(&h->pool_lock);
    if (b) {
        g_free(b->buf.data);
        g_free(b);
    }
}

static void body_free(gpointer data)
{
    Body *b = data;
    g_free(b->buf.data);
    g_free(b);
}

/* The thread: an empty body buffer, from the pool or new. */
static Body *body_get(Http *h)
{
    g_mutex_lock(&h->pool_lock);
    Body *b = h->pool->len ? g_ptr_array_steal_index_fast(h->pool, h->pool->len - 1) : NULL;
    g_mutex_unlock(&h->pool_lock);
    if (!b) {
        b = g_new0(Body, 1);
        b->h = h;
    }
    b->buf.len = 0;
    return b;
}

/* The thread: the body of one POST from up to http_batch records of
 * @local: one JSON object, or with http_batch > 1 a JSON array. */
static HttpReq *next_req(Http *h)
{
    HttpReq *r = g_new0(HttpReq, 1);
    r->h = h;
    PusherRecord rec;
    Body *b = body_get(h);
    if (h->batch == 1) {
        h->local_off += pusher_record_read(h->local.data + h->local_off, &rec);
        pusher_buf_append(&b->buf, rec.json, rec.json_len);
        r->events = 1;
    } else {
        /* "[a,b,c]" */
        pusher_buf_append(&b->buf, "[", 1);
        while (r->events < h->batch && r->events < h->local_n) {
            h->local_off += pusher_record_read(h->local.data + h->local_off, &rec);
            if (r->events++)
                pusher_buf_append(&b->buf, ",", 1);
            pusher_buf_append(&b->buf, rec.json, rec.json_len);
        }
        pusher_buf_append(&b->buf, "]", 1);
    }
    r->body = g_bytes_new_with_free_func(b->buf.data, b->buf.len, body_done, b);
    h->local_n -= r->events;
    if (!h->local_n) {
        h->local.len = 0; /* kept for the next swap */
        h->local_off = 0;
    }
    return r;
}

/* The thread: sends what the queue holds, up to http_concurrency POSTs at
 * once. With http_batch > 1 a partial batch waits up to HTTP_LINGER_MS
 * for more: a trickle of events then costs one POST per batch, not one
 * per event. */
#define HTTP_LINGER_MS 20
static void drain(Http *h)
{
    while (!h->stopping && h->in_flight < h->concurrency) {
        guint queued = pusher_queue_length(h->base.queue);
        guint have = h->local_n + queued;
        if (!have) {
            h->flush = FALSE;
            return;
        }
        if (h->batch > 1 && have < h->batch && !h->flush) {
            if (!h->linger) {
                h->linger = g_timeout_source_new(HTTP_LINGER_MS);
                g_source_set_callback(h->linger, on_linger, h, NULL);
                g_source_attach(h->linger, h->ctx);
            }
            return;
        }
        /* A linger that ran out sends one partial batch, not one per free
         * connection: the rest waits to fill up again. */
        if (have < h->batch)
            h->flush = FALSE;
        /* One lock for all that is queued. */
        if (h->local_n < h->batch && queued) {
            h->local_n += pusher_queue_take(h->base.queue, &h->local, 0, 0);
            pusher_queue_hold(h->base.queue, h->local_n);
        }
        if (!h->local_n)
            return;
        HttpReq *r = next_req(h);
        pusher_queue_hold(h->base.queue, h->local_n);
        h->in_flight++;
        send_req(r);
    }
}

static gboolean drain_cb(gpointer data)
{
    drain(data);
    return G_SOURCE_REMOVE;
}

/* Any thread (a hook's worker): the queue got its first event. */
static void wake(gpointer data)
{
    Http *h = data;
    g_main_context_invoke(h->ctx, drain_cb, h);
}

/* How long a stopping backend waits for the POSTs in flight. */
#define HTTP_STOP_GRACE_MS 1000

static gboolean on_grace(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

static gpointer http_thread(gpointer data)
{
    Http *h = data;
    g_main_context_push_thread_default(h->ctx);
    /* No proxy resolver: GIO's default asks libproxy on a thread pool for
     * every connection, and a webhook is a direct address. */
    h->session = soup_session_new_with_options(
        "timeout", h->timeout_s, "idle-timeout", 60, "max-conns-per-host", (int)h->concurrency,
        "user-agent", "meerkat-event-pusher", "proxy-resolver", NULL, NULL);
    drain(h); /* what came before the thread ran */
    g_main_loop_run(h->loop);

    /* Stopping: nothing new is sent; what is in flight is cancelled and
     * its callback runs here. */
    h->stopping = TRUE;
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, h->retrying);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        g_source_destroy(value);
        g_source_unref(value);
        h->in_flight--;
        req_free(key);
        g_hash_table_iter_remove(&it);
    }
    if (h->linger) {
        g_source_destroy(h->linger);
        g_clear_pointer(&h->linger, g_source_unref);
    }
    /* POSTs already on their way get a moment to finish; only what is
     * still out after it is cancelled. (Cancelling a connection attempt
     * in the middle also leaks a little inside Debian 12's GIO, which a
     * sanitizer build reports at exit.) */
    gboolean expired = FALSE;
    GSource *grace = g_timeout_source_new(HTTP_STOP_GRACE_MS);
    g_source_set_callback(grace, on_grace, &expired, NULL);
    g_source_attach(grace, h->ctx);
    while (h->in_flight > 0 && !expired)
        g_main_context_iteration(h->ctx, TRUE);
    g_source_destroy(grace);
    g_source_unref(grace);
    g_cancellable_cancel(h->cancel);
    soup_session_abort(h->session);
    while (h->in_flight > 0)
        g_main_context_iteration(h->ctx, TRUE);
    g_clear_object(&h->session);
    while (g_main_context_iteration(h->ctx, FALSE))
        ;
    g_main_context_pop_thread_default(h->ctx);
    return NULL;
}

static gboolean quit_cb(gpointer data)
{
    Http *h = data;
    g_main_loop_quit(h->loop);
    return G_SOURCE_REMOVE;
}

static void http_stop(PusherBackend *b)
{
    Http *h = (Http *)b;
    pusher_queue_close(b->queue);
    /* The thread cancels what is still in flight after a grace period. */
    g_main_context_invoke(h->ctx, quit_cb, h);
    g_thread_join(h->thread);
    h->thread = NULL;
}

static void http_free(PusherBackend *b)
{
    Http *h = (Http *)b;
    pusher_queue_free(b->queue);
    pusher_filter_clear(&b->filter);
    g_hash_table_unref(h->retrying);
    g_free(h->local.data);
    g_ptr_array_unref(h->pool);
    g_mutex_clear(&h->pool_lock);
    g_main_loop_unref(h->loop);
    g_main_context_unref(h->ctx);
    g_object_unref(h->cancel);
    g_free(h->url);
    g_free(h);
}

/* Main thread, in start(). (transfer full) (nullable) */
PusherBackend *pusher_http_new(MkModule *mod, GError **error)
{
    const char *url = mk_config_get_string(mod, "http_url");
    g_autoptr(GUri) uri = url ? g_uri_parse(url, G_URI_FLAGS_NONE, NULL) : NULL;
    if (!uri || (g_strcmp0(g_uri_get_scheme(uri), "http") != 0 &&
                 g_strcmp0(g_uri_get_scheme(uri), "https") != 0)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "http_url: an http:// or https:// URL is required for the http backend");
        return NULL;
    }
    Http *h = g_new0(Http, 1);
    h->base.name = "http";
    if (!pusher_filter_init(&h->base.filter, mod, "http_", error)) {
        g_free(h);
        return NULL;
    }
    h->mod = mod;
    h->url = g_strdup(url);
    h->timeout_s = (guint)mk_config_get_int(mod, "http_timeout");
    h->retries = (guint)mk_config_get_int(mod, "http_retries");
    h->retry_ms = (guint)mk_config_get_int(mod, "http_retry_ms");
    h->concurrency = (guint)mk_config_get_int(mod, "http_concurrency");
    h->batch = (guint)mk_config_get_int(mod, "http_batch");
    h->verify = mk_config_get_bool(mod, "http_tls_verify");
    h->sent = mk_counter_new(mod, "http_sent");
    h->failed = mk_counter_new(mod, "http_failed");
    h->retried = mk_counter_new(mod, "http_retried");
    h->retrying = g_hash_table_new(NULL, NULL);
    h->pool = g_ptr_array_new_with_free_func(body_free);
    g_mutex_init(&h->pool_lock);
    h->ctx = g_main_context_new();
    h->loop = g_main_loop_new(h->ctx, FALSE);
    h->cancel = g_cancellable_new();
    h->base.queue =
        pusher_queue_new(mod, "http", (guint)mk_config_get_int(mod, "http_queue_max"), wake, h);
    h->base.stop = http_stop;
    h->base.free = http_free;
    h->thread = g_thread_new("mk-push-http", http_thread, h);
    return &h->base;
}
