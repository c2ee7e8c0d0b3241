/* mod_rest_admin: MongooseIM's admin REST paths under a prefix (/api),
 * each file one group of endpoints (docs/api.md). */
#pragma once

#include <meerkat/module.h>
#include <json-glib/json-glib.h>

typedef struct {
    char *prefix;   /* "/api" */
    char *user;     /* Basic auth user */
    char *password; /* NULL: every request is refused (403) */
    GMutex lock;
    /* Senders of /messages and /stanzas whose account was found, until a
     * remove_user hook says otherwise (under @lock; rest-messages.c). */
    GHashTable *known_senders;
} RestAdmin;

/* Whether @req carries the admin's credentials; otherwise answers 401,
 * 403 or 429 and returns FALSE (mk_http_request_check_admin). Worker. */
gboolean rest_admin_authorized(MkHttpRequest *req);

/* "PREFIX/rest": registers @func for @method. Main thread, in start(). */
gboolean rest_admin_route(MkModule *mod, const char *method, const char *rest, MkHttpFunc func,
                          GError **error);

/* The path parameter @name as a JID, or NULL after answering 400 naming
 * it. (transfer full) */
MkJid *rest_admin_param_jid(MkHttpRequest *req, const char *name);
/* A JSON string field as a JID (400 naming it when missing or invalid).
 * (transfer full) */
MkJid *rest_admin_field_jid(MkHttpRequest *req, JsonObject *obj, const char *field);
/* Whether @domain is served by the module's host type; otherwise answers
 * 404 naming it. */
gboolean rest_admin_domain_known(MkHttpRequest *req, const char *domain);
/* Answers a JSON array of strings (transfer none) with 200. */
void rest_admin_reply_strings(MkHttpRequest *req, GPtrArray *strings);

/* Registration of each group. Main thread, in start(). */
gboolean rest_users_start(MkModule *mod, GError **error);
gboolean rest_sessions_start(MkModule *mod, GError **error);
gboolean rest_messages_start(MkModule *mod, GError **error);
gboolean rest_domains_start(MkModule *mod, GError **error);
gboolean rest_contacts_start(MkModule *mod, GError **error);
