/* mk_http_request_check_user: a user's own credentials on a REST route,
 * checked once here for every module that serves users (mod_rest_client,
 * the rooms' client endpoints). */
#include "mk-core.h"

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
