/* mod_rest_client: MongooseIM's client REST API: a user's own messages,
 * archive, contacts and a server-sent event stream of incoming messages,
 * authenticated as user@domain with the account's password. */
#pragma once

#include <meerkat/module.h>
#include <json-glib/json-glib.h>

typedef struct RestSse RestSse;

typedef struct {
    char *prefix;
    RestSse *sse;
} RestClient;

/* A handler that runs once the request's credentials are checked: @user
 * is the authenticated bare JID (transfer none). Worker. */
typedef void (*RestClientFunc)(MkHttpRequest *req, MkJid *user);

/* Registers PREFIX@rest for @method, running @func after authentication.
 * Main thread, in start(). */
gboolean rest_client_route(MkModule *mod, const char *method, const char *rest, RestClientFunc func,
                           GError **error);

/* Server-sent events (rest-sse.c). Main thread, in start(). */
gboolean rest_sse_start(MkModule *mod, RestClient *rc, GError **error);
void rest_sse_free(RestSse *sse);
/* Ends every stream: the module's stop. Main thread. */
void rest_sse_stop(RestSse *sse);
/* GET PREFIX/sse. Worker. */
void rest_sse_open(MkHttpRequest *req, MkJid *user);
