/* Domains at run time: PUT PREFIX/domains/{domain} {host_type} serves a
 * new domain with a configured host type, GET tells which host type
 * serves one, DELETE {host_type} stops serving it. Changes are stored
 * (mk_domain_add_stored), so a restart keeps them; they run on the main
 * thread, where the host table is written. */
#include "rest-admin.h"

typedef struct {
    MkHttpRequest *req; /* ref */
    char *domain, *host_type;
    gboolean add;
} DomainOp;

static void domain_op_free(gpointer data)
{
    DomainOp *op = data;
    mk_http_request_unref(op->req);
    g_free(op->domain);
    g_free(op->host_type);
    g_free(op);
}

/* Main thread: the stored change is made (or refused). */
static void domain_changed(const GError *error, gpointer data)
{
    DomainOp *op = data;
    if (!error)
        mk_http_reply_json(op->req, 204, NULL);
    else if (g_error_matches(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE))
        mk_http_reply_error(op->req, 409, NULL, "%s", error->message);
    else if (error->domain == MK_MODULE_ERROR)
        mk_http_reply_error(op->req, 403, "host_type", "%s", error->message);
    else
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    domain_op_free(op);
}

static gboolean domain_on_main(gpointer data)
{
    DomainOp *op = data;
    const char *current = mk_domain_host_type(op->domain);
    if (op->add && current && !g_str_equal(current, op->host_type)) {
        mk_http_reply_error(op->req, 409, NULL, "%s is served by host type %s", op->domain,
                            current);
    } else if (!op->add && current && !g_str_equal(current, op->host_type)) {
        mk_http_reply_error(op->req, 403, "host_type", "%s is served by host type %s", op->domain,
                            current);
    } else if (!op->add && current && mk_domain_is_configured(op->domain)) {
        mk_http_reply_error(op->req, 403, NULL,
                            "%s is one of the configuration's hosts: remove it there", op->domain);
    } else if (op->add) {
        /* Also when served already: its row is written if missing. */
        mk_domain_add_stored(op->host_type, op->domain, domain_changed, op);
        return G_SOURCE_REMOVE;
    } else {
        /* Also when not served: a stale row goes. */
        mk_domain_remove_stored(op->domain, domain_changed, op);
        return G_SOURCE_REMOVE;
    }
    domain_op_free(op);
    return G_SOURCE_REMOVE;
}

static void domain_change(MkHttpRequest *req, gboolean add)
{
    const char *domain = mk_http_request_param(req, "domain");
    if (!rest_admin_authorized(req))
        return;
    JsonObject *o = mk_http_request_json(req);
    const char *host_type;
    if (!o || !mk_http_json_string(req, o, "host_type", TRUE, &host_type))
        return;
    g_autoptr(MkJid) d = mk_jid_new_from_parts(NULL, domain, NULL, NULL);
    if (!d) {
        mk_http_reply_error(req, 400, "domain", "\"%s\" is not a valid domain", domain);
        return;
    }
    DomainOp *op = g_new0(DomainOp, 1);
    op->req = mk_http_request_ref(req);
    op->domain = g_strdup(mk_jid_domain(d));
    op->host_type = g_strdup(host_type);
    op->add = add;
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, domain_on_main, op, NULL); /* it frees @op */
    g_source_attach(src, g_main_context_default());
    g_source_unref(src);
}

static void domains_put(MkHttpRequest *req, gpointer user_data)
{
    domain_change(req, TRUE);
}

static void domains_delete(MkHttpRequest *req, gpointer user_data)
{
    domain_change(req, FALSE);
}

static void domains_get(MkHttpRequest *req, gpointer user_data)
{
    const char *domain = mk_http_request_param(req, "domain");
    if (!rest_admin_authorized(req))
        return;
    const char *ht = mk_domain_host_type(domain);
    if (!ht) {
        mk_http_reply_error(req, 404, NULL, "unknown domain %s", domain);
        return;
    }
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "host_type");
    json_builder_add_string_value(b, ht);
    json_builder_set_member_name(b, "status");
    json_builder_add_string_value(b, "enabled");
    json_builder_end_object(b);
    mk_http_reply_json(req, 200, json_builder_get_root(b));
}

gboolean rest_domains_start(MkModule *mod, GError **error)
{
    return rest_admin_route(mod, "PUT", "/domains/{domain}", domains_put, error) &&
           rest_admin_route(mod, "GET", "/domains/{domain}", domains_get, error) &&
           rest_admin_route(mod, "DELETE", "/domains/{domain}", domains_delete, error);
}
