/* Users: GET/POST PREFIX/users/{domain}, PUT/DELETE
 * PREFIX/users/{domain}/{user}, through the core's accounts
 * (mk-account.h): registration and password changes derive keys on the
 * auth pool, and a removal runs the remove_user hook as an in-band
 * removal does. */
#include "rest-admin.h"

/* One account operation waiting for its completion. */
typedef struct {
    MkHttpRequest *req; /* ref */
    char *user, *domain;
    int op; /* 0 register, 1 password, 2 remove */
} UserOp;

static void user_op_free(gpointer data)
{
    UserOp *op = data;
    mk_http_request_unref(op->req);
    g_free(op->user);
    g_free(op->domain);
    g_free(op);
}

static void user_op_done(const GError *error, gpointer data)
{
    UserOp *op = data;
    if (!error) {
        if (op->op == 0) {
            g_autofree char *msg =
                g_strdup_printf("User %s@%s successfully registered", op->user, op->domain);
            JsonNode *n = json_node_new(JSON_NODE_VALUE);
            json_node_set_string(n, msg);
            mk_http_reply_json(op->req, 201, n);
            return;
        }
        if (op->op == 2) {
            /* As XEP-0077 3.2 ends an account's sessions. */
            g_autoptr(MkJid) bare = mk_jid_new_from_parts(op->user, op->domain, NULL, NULL);
            g_autoptr(GPtrArray) sessions = bare ? mk_session_list(bare) : NULL;
            for (guint i = 0; sessions && i < sessions->len; i++)
                mk_session_close(g_ptr_array_index(sessions, i), "not-authorized");
        }
        mk_http_reply_json(op->req, 204, NULL);
        return;
    }
    if (error->domain != MK_ACCOUNT_ERROR) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
        return;
    }
    switch ((MkAccountErrorCode)error->code) {
    case MK_ACCOUNT_ERROR_NO_USER:
        mk_http_reply_error(op->req, 404, NULL, "unknown user %s@%s", op->user, op->domain);
        break;
    case MK_ACCOUNT_ERROR_EXISTS:
        mk_http_reply_error(op->req, 409, "username", "user %s@%s exists already", op->user,
                            op->domain);
        break;
    case MK_ACCOUNT_ERROR_INVALID:
        mk_http_reply_error(op->req, 400, op->op == 2 ? NULL : "password", "%s", error->message);
        break;
    default:
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
        break;
    }
}

static UserOp *user_op_new(MkHttpRequest *req, const char *user, const char *domain, int kind)
{
    UserOp *op = g_new0(UserOp, 1);
    op->req = mk_http_request_ref(req);
    op->user = g_strdup(user);
    op->domain = g_strdup(domain);
    op->op = kind;
    return op;
}

/* A valid account name: the core would refuse it later, but the answer
 * must name the field. */
static gboolean valid_user(MkHttpRequest *req, const char *user, const char *domain,
                           const char *field)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(user, domain, NULL, NULL);
    if (jid && user && *user)
        return TRUE;
    mk_http_reply_error(req, 400, field, "\"%s\" is not a valid user name", user ? user : "");
    return FALSE;
}

static void on_list(MkDbResult *res, const GError *error, gpointer data)
{
    MkHttpRequest *req = data;
    if (error) {
        mk_http_reply_error(req, 500, NULL, "%s", error->message);
    } else {
        const char *domain = mk_http_request_param(req, "domain");
        g_autoptr(GPtrArray) jids = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < mk_db_result_rows(res); i++)
            g_ptr_array_add(jids,
                            g_strdup_printf("%s@%s", mk_db_result_get_string(res, i, 0), domain));
        rest_admin_reply_strings(req, jids);
    }
    mk_http_request_unref(req);
}

static void users_list(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain))
        return;
    mk_db_query(mk_http_request_module(req),
                "SELECT username FROM users WHERE domain = ? ORDER BY username", on_list,
                mk_http_request_ref(req), MK_DB_STR(domain));
}

static void users_register(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain))
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *user, *password;
    if (!o || !mk_http_json_string(req, o, "username", TRUE, &user) ||
        !mk_http_json_string(req, o, "password", TRUE, &password) ||
        !valid_user(req, user, domain, "username"))
        return;
    if (!*password) {
        mk_http_reply_error(req, 400, "password", "the password must not be empty");
        return;
    }
    mk_account_register(mk_http_request_module(req), user, domain, password, user_op_done,
                        user_op_new(req, user, domain, 0), user_op_free);
}

static void users_passwd(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    const char *user = mk_http_request_param(req, "user");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain))
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *password;
    if (!o || !mk_http_json_string(req, o, "newpass", TRUE, &password) ||
        !valid_user(req, user, domain, "user"))
        return;
    if (!*password) {
        mk_http_reply_error(req, 400, "newpass", "the password must not be empty");
        return;
    }
    mk_account_set_password(mk_http_request_module(req), user, domain, password, user_op_done,
                            user_op_new(req, user, domain, 1), user_op_free);
}

static void users_remove(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    const char *user = mk_http_request_param(req, "user");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain) ||
        !valid_user(req, user, domain, "user"))
        return;
    mk_account_remove(mk_http_request_module(req), user, domain, user_op_done,
                      user_op_new(req, user, domain, 2), user_op_free);
}

gboolean rest_users_start(MkModule *mod, GError **error)
{
    return rest_admin_route(mod, "GET", "/users/{domain}", users_list, error) &&
           rest_admin_route(mod, "POST", "/users/{domain}", users_register, error) &&
           rest_admin_route(mod, "PUT", "/users/{domain}/{user}", users_passwd, error) &&
           rest_admin_route(mod, "DELETE", "/users/{domain}/{user}", users_remove, error);
}
