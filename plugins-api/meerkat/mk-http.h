#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* HTTP routes (Since ABI 2.1). A module registers its own endpoints on
 * every `type = http` listener; the core parses requests (libmicrohttpd),
 * bounds them, matches routes, answers 404/405/413/415 itself, and runs
 * the handler on a worker, like a hook: it may call the whole module
 * API but must never block. A handler answers exactly once, at once or
 * later from any thread (mk_http_request_ref, then a reply, then
 * mk_http_request_unref). A request whose last reference goes without a
 * reply gets 500. docs/modules.md, "HTTP routes", shows a whole handler. */

typedef struct MkHttpRequest MkHttpRequest;
/* json-glib's types (a module that reads or writes JSON includes
 * <json-glib/json-glib.h> and builds with `pkg-config json-glib-1.0`). */
typedef struct _JsonNode JsonNode;
typedef struct _JsonObject JsonObject;

/* Runs on a worker. @req is (transfer none): ref it to answer later. */
typedef void (*MkHttpFunc)(MkHttpRequest *req, gpointer user_data);

/* Adds the route @method ("GET", "POST", "PUT", "DELETE", "PATCH") on
 * @pattern, an absolute path whose segments are literals or "{name}"
 * parameters ("/api/users/{domain}/{user}"). The same route may come
 * from one instance per host type: a request then goes to the instance
 * whose host type serves the first path parameter that is a served
 * domain or a JID at one (else to the first). FALSE with
 * MK_MODULE_ERROR_DUPLICATE when the host type has the route already.
 * The core removes the route when the module stops. Main thread, in
 * start(). */
MK_API gboolean mk_http_route_add(MkModule *mod, const char *method, const char *pattern,
                                  MkHttpFunc func, gpointer user_data, GError **error);

MK_API MkHttpRequest *mk_http_request_ref(MkHttpRequest *req);
MK_API void mk_http_request_unref(MkHttpRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkHttpRequest, mk_http_request_unref)

/* The module instance the route belongs to. (transfer none) Any thread. */
MK_API MkModule *mk_http_request_module(MkHttpRequest *req);
/* "GET", ... (transfer none) Any thread. */
MK_API const char *mk_http_request_method(MkHttpRequest *req);
/* The decoded path without the query. (transfer none) Any thread. */
MK_API const char *mk_http_request_path(MkHttpRequest *req);
/* The value of path parameter {@name}, percent-decoded. (transfer none)
 * (nullable) Any thread. */
MK_API const char *mk_http_request_param(MkHttpRequest *req, const char *name);
/* A query argument ("?limit=10"). (transfer none) (nullable) Any thread. */
MK_API const char *mk_http_request_query(MkHttpRequest *req, const char *name);
/* A request header, case-insensitive. (transfer none) (nullable) */
MK_API const char *mk_http_request_header(MkHttpRequest *req, const char *name);
/* The peer's address ("127.0.0.1"). (transfer none) Any thread. */
MK_API const char *mk_http_request_peer(MkHttpRequest *req);
/* The body (at most the listener's max_body_size). (transfer none) Any
 * thread; @len (nullable) gets its length. Never NULL ("" when empty). */
MK_API const char *mk_http_request_body(MkHttpRequest *req, gsize *len);

/* The body as a JSON object: (transfer none), valid as long as @req. When
 * the body is not `application/json` this answers 415, when it is not a
 * JSON object 400, and returns NULL: the handler then just returns. */
MK_API JsonObject *mk_http_request_json(MkHttpRequest *req);
/* Member @field of @obj as a string (transfer none, valid as @obj). A
 * missing member (when @required) or one of another type answers 400
 * naming the field and returns FALSE; an optional missing one gives
 * TRUE with *@out = NULL. */
MK_API gboolean mk_http_json_string(MkHttpRequest *req, JsonObject *obj, const char *field,
                                    gboolean required, const char **out);
/* The same for an integer member; *@out is left alone when an optional
 * member is missing. */
MK_API gboolean mk_http_json_int(MkHttpRequest *req, JsonObject *obj, const char *field,
                                 gboolean required, gint64 *out);

/* Query argument @name as an integer from 0 to @max: TRUE with *@out
 * set, or TRUE with *@out left alone when the argument is absent;
 * anything else answers 400 naming it and returns FALSE. Since ABI 2.1. */
MK_API gboolean mk_http_request_query_int(MkHttpRequest *req, const char *name, gint64 max,
                                          gint64 *out);

/* The credentials of an `Authorization: Basic` header: TRUE and both
 * strings (transfer none) when there is a well-formed one. */
MK_API gboolean mk_http_request_basic_auth(MkHttpRequest *req, const char **user,
                                           const char **password);
/* Compares two secrets in time that depends only on @expected's length
 * (a password or a token): TRUE when equal. Any thread. */
MK_API gboolean mk_http_secret_equal(const char *given, const char *expected);

/* Adds a header to the reply to come (before mk_http_reply_*). */
MK_API void mk_http_reply_header(MkHttpRequest *req, const char *name, const char *value);
/* Answers with @status and a JSON body (transfer full, nullable: no
 * body). Any thread, once; later replies are ignored with a warning. */
MK_API void mk_http_reply_json(MkHttpRequest *req, guint status, JsonNode *body);
/* Answers with @status and @body (may be NULL) of @content_type. */
MK_API void mk_http_reply_text(MkHttpRequest *req, guint status, const char *content_type,
                               const char *body);
/* Answers {"error": MESSAGE} (and "field": @field when non-NULL) with
 * @status. Any thread. */
MK_API void mk_http_reply_error(MkHttpRequest *req, guint status, const char *field,
                                const char *format, ...) G_GNUC_PRINTF(4, 5);
/* 401 with `WWW-Authenticate: Basic realm="@realm"`. */
MK_API void mk_http_reply_unauthorized(MkHttpRequest *req, const char *realm);

/* Routes a user calls with their own account: @user (transfer none) is
 * the bare JID whose password the request's Basic credentials
 * (user@domain:password) proved. */
typedef void (*MkHttpUserFunc)(MkHttpRequest *req, MkJid *user, gpointer user_data);
/* Checks the request's Basic credentials as a PLAIN login checks them
 * (mk_account_check_password: the login limits of XMPP apply, counted
 * for the request's peer), then calls @func on the calling thread. When
 * they are missing, malformed or wrong it answers 401 with
 * WWW-Authenticate itself (realm "meerkat"), 429 while the address or
 * account is throttled, 500 when storage failed, and @func does not run.
 * @user_data (transfer none) must outlive the check (a function pointer
 * or the module's data). A worker, in a route's handler. Since ABI 2.1. */
MK_API void mk_http_request_check_user(MkHttpRequest *req, MkHttpUserFunc func, gpointer user_data);

/* A streamed answer (server-sent events): the status line and headers go
 * out now, then each mk_http_stream_write as it comes, until
 * mk_http_stream_close or the client leaves. Any thread. Returns FALSE
 * when the client is gone (the request's streaming ended); stop writing. */
MK_API void mk_http_reply_stream(MkHttpRequest *req, guint status, const char *content_type);
MK_API gboolean mk_http_stream_write(MkHttpRequest *req, const char *data, gssize len);
MK_API void mk_http_stream_close(MkHttpRequest *req);

/* ---- Admin credentials (the modules' admin endpoints) ----
 * A module that serves administration endpoints (mod_rest_admin, the
 * room modules' /mucs and /muc-lights) keeps an admin user name and a
 * password read once at start from a file an operator can protect. */

/* Reads the secret kept in the file that config key @key of @mod names:
 * its first line, without the line end. TRUE with *@out = NULL when the
 * key is unset or empty; FALSE with @error (naming the module, the key
 * and the file) when the file cannot be read or its first line is
 * empty. *@out: (transfer full), free it with mk_http_secret_free.
 * Main thread, in start(). */
MK_API gboolean mk_http_secret_read(MkModule *mod, const char *key, char **out, GError **error);
/* Overwrites @secret (nullable) with zeros and frees it. Any thread. */
MK_API void mk_http_secret_free(char *secret);

/* Whether @req carries the Basic credentials @user:@password (both
 * compared in full, in time that depends only on their lengths). When
 * not, it answers and returns FALSE: 403 when @password is NULL (none
 * configured), 429 while the request's address backs off after failed
 * logins, else 401 with `WWW-Authenticate: Basic realm="meerkat admin"`.
 * Failures and successes count in the server's per-address limits on
 * password guessing, the ones XMPP logins count in ([auth]
 * address_failures, backoff_max, throttle_loopback). Any thread, in a
 * route's handler. */
MK_API gboolean mk_http_request_check_admin(MkHttpRequest *req, const char *user,
                                            const char *password);

G_END_DECLS
