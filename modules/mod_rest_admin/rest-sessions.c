/* Sessions: GET PREFIX/sessions/{domain} lists the full JIDs bound in
 * the cluster (this node's and the other nodes' it knows); DELETE
 * PREFIX/sessions/{domain}/{user}/{resource} ends one with a stream error (the admin's kick). */
#include "rest-admin.h"

typedef struct {
    MkHttpRequest *req; /* ref */
    char *domain;
    GPtrArray *jids;
} ListOp;

static void list_op_free(gpointer data)
{
    ListOp *op = data;
    mk_http_request_unref(op->req);
    g_free(op->domain);
    g_ptr_array_unref(op->jids);
    g_free(op);
}

static void collect(MkSession *s, gpointer data)
{
    ListOp *op = data;
    MkJid *jid = mk_session_jid(s);
    if (g_str_equal(mk_jid_domain(jid), op->domain))
        g_ptr_array_add(op->jids, g_strdup(mk_jid_string(jid)));
}

static int cmp_str(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* The main thread, where the session table may be walked. */
static gboolean list_on_main(gpointer data)
{
    ListOp *op = data;
    mk_session_foreach_cluster(collect, op);
    g_ptr_array_sort(op->jids, cmp_str);
    rest_admin_reply_strings(op->req, op->jids);
    return G_SOURCE_REMOVE;
}

static void sessions_list(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain))
        return;
    g_autoptr(MkJid) d = mk_jid_new_from_parts(NULL, domain, NULL, NULL);
    ListOp *op = g_new0(ListOp, 1);
    op->req = mk_http_request_ref(req);
    op->domain = g_strdup(mk_jid_domain(d));
    op->jids = g_ptr_array_new_with_free_func(g_free);
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, list_on_main, op, list_op_free);
    g_source_attach(src, g_main_context_default());
    g_source_unref(src);
}

static void sessions_kick(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    const char *user = mk_http_request_param(req, "user");
    const char *resource = mk_http_request_param(req, "resource");
    if (!rest_admin_authorized(req) || !rest_admin_domain_known(req, domain))
        return;
    g_autoptr(MkJid) full = mk_jid_new_from_parts(user, domain, resource, NULL);
    if (!full) {
        mk_http_reply_error(req, 400, "user", "%s@%s/%s is not a valid JID", user, domain,
                            resource);
        return;
    }
    g_autoptr(MkJid) bare = mk_jid_bare(full);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (mk_jid_equal(mk_session_jid(s), full)) {
            g_info("mod_rest_admin: %s kicked by %s", mk_jid_string(full),
                   mk_http_request_peer(req));
            mk_session_close(s, "policy-violation");
            mk_http_reply_json(req, 204, NULL);
            return;
        }
    }
    mk_http_reply_error(req, 404, NULL, "no session %s", mk_jid_string(full));
}

gboolean rest_sessions_start(MkModule *mod, GError **error)
{
    return rest_admin_route(mod, "GET", "/sessions/{domain}", sessions_list, error) &&
           rest_admin_route(mod, "DELETE", "/sessions/{domain}/{user}/{resource}", sessions_kick,
                            error);
}
