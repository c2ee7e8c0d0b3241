/* Credentials on REST routes, checked once here for every module: a
 * user's own (mk_http_request_check_user: mod_rest_client, the rooms'
 * client endpoints) and the admin's (mk_http_request_check_admin:
 * mod_rest_admin, the rooms' admin endpoints), and the secret files
 * the admin passwords are kept in. */
#include "authguard.h"
#include "http.h"
#include "server.h"
#include <string.h>

typedef struct {
    MkHttpRequest *req; /* ref */
    MkJid *user;
    MkHttpUserFunc func;
    gpointer user_data;
} UserCheck;

static void user_check_free(gpointer data)
{
    UserCheck *uc = data;
    mk_http_request_unref(uc->req);
    mk_jid_unref(uc->user);
    g_free(uc);
}

/* On the thread that asked: the handler, or the answer that refuses. */
static void user_checked(const GError *error, gpointer data)
{
    UserCheck *uc = data;
    if (!error)
        uc->func(uc->req, uc->user, uc->user_data);
    else if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_THROTTLED))
        mk_http_reply_error(uc->req, 429, NULL, "%s", error->message);
    else if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_NOT_AUTHORIZED) ||
             g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_INVALID))
        mk_http_reply_unauthorized(uc->req, "meerkat"); /* an unknown domain is INVALID */
    else
        mk_http_reply_error(uc->req, 500, NULL, "%s", error->message);
}

void mk_http_request_check_user(MkHttpRequest *req, MkHttpUserFunc func, gpointer user_data)
{
    g_return_if_fail(req != NULL && func != NULL);
    const char *user = "", *password = "";
    g_autoptr(MkJid) jid = NULL;
    if (!mk_http_request_basic_auth(req, &user, &password) || !(jid = mk_jid_new(user, NULL)) ||
        !mk_jid_node(jid) || mk_jid_resource(jid)) {
        mk_http_reply_unauthorized(req, "meerkat");
        return;
    }
    UserCheck *uc = g_new0(UserCheck, 1);
    uc->req = mk_http_request_ref(req);
    uc->user = g_steal_pointer(&jid);
    uc->func = func;
    uc->user_data = user_data;
    mk_account_check_password(mk_http_request_module(req), mk_jid_node(uc->user),
                              mk_jid_domain(uc->user), password, mk_http_request_peer(req),
                              user_checked, uc, user_check_free);
}

/* ---- admin credentials ---- */

/* See http.h. */
gboolean mk_http_secret_read_file(const char *path, char **out, GError **error)
{
    g_autofree char *text = NULL;
    *out = NULL;
    if (!g_file_get_contents(path, &text, NULL, error))
        return FALSE;
    text[strcspn(text, "\r\n")] = '\0';
    if (!*text) {
        mk_http_secret_free(g_steal_pointer(&text));
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: the first line is empty", path);
        return FALSE;
    }
    *out = g_steal_pointer(&text);
    return TRUE;
}

/* Public module API (mk-http.h). Main thread. */
gboolean mk_http_secret_read(MkModule *mod, const char *key, char **out, GError **error)
{
    g_return_val_if_fail(mod != NULL && key != NULL && out != NULL, FALSE);
    const char *file = mk_config_get_string(mod, key);
    *out = NULL;
    if (!file || !*file)
        return TRUE;
    g_autoptr(GError) local = NULL;
    if (!mk_http_secret_read_file(file, out, &local)) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "%s: %s: %s",
                    mk_module_name(mod), key, local->message);
        return FALSE;
    }
    return TRUE;
}

/* Public module API (mk-http.h). Any thread. */
void mk_http_secret_free(char *secret)
{
    if (!secret)
        return;
    memset(secret, 0, strlen(secret));
    g_free(secret);
}

/* A failed login on the log, at the rate the XMPP ones are logged. */
static void log_failure(MkAuthGuard *guard, const char *realm, const char *peer)
{
    guint64 suppressed = 0;
    if (guard && !mk_auth_guard_log_ok(guard, &suppressed))
        return;
    if (suppressed)
        g_message("HTTP %s: failed login from %s [%" G_GUINT64_FORMAT
                  " failure lines suppressed before this one]",
                  realm, peer, suppressed);
    else
        g_message("HTTP %s: failed login from %s", realm, peer);
}

/* See http.h. */
gboolean mk_http_check_basic(MkHttpRequest *req, const char *realm, const char *user,
                             const char *password)
{
    MkAuthGuard *guard = mk_server_auth_guard(mk_server_get());
    MkAddrKey addr;
    mk_addr_key_from_string(&addr, mk_http_request_peer(req));
    if (guard && !mk_auth_guard_address_ok(guard, &addr)) {
        mk_http_reply_error(req, 429, NULL, "too many failed logins from this address; try later");
        return FALSE;
    }
    const char *given_user = "", *given_password = "";
    gboolean ok = mk_http_request_basic_auth(req, &given_user, &given_password);
    /* Non-short-circuit: both comparisons always run. */
    ok = ok & mk_http_secret_equal(given_user, user) &
         mk_http_secret_equal(given_password, password);
    if (ok) {
        if (guard)
            mk_auth_guard_succeeded(guard, &addr, NULL, NULL);
        return TRUE;
    }
    if (guard)
        mk_auth_guard_failed(guard, &addr, NULL, NULL);
    log_failure(guard, realm, mk_http_request_peer(req));
    mk_http_reply_unauthorized(req, realm);
    return FALSE;
}

/* Public module API (mk-http.h). Any thread. */
gboolean mk_http_request_check_admin(MkHttpRequest *req, const char *user, const char *password)
{
    g_return_val_if_fail(req != NULL && user != NULL, FALSE);
    if (!password) {
        mk_http_reply_error(req, 403, NULL, "no admin password is configured");
        return FALSE;
    }
    return mk_http_check_basic(req, "meerkat admin", user, password);
}
