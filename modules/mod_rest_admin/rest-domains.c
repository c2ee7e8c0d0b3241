/* Domains at run time: PUT PREFIX/domains/{domain} {host_type} serves a
 * new domain with a configured host type, GET tells which host type
 * serves one, DELETE {host_type} stops serving it. Changes run on the
 * main thread, where the host table is written. */
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

static gboolean domain_on_main(gpointer data)
{
    DomainOp *op = data;
    const char *current = mk_domain_host_type(op->domain);
    g_autoptr(GError) error = NULL;
    if (op->add) {
        if (current && g_str_equal(current, op->host_type))
            mk_http_reply_json(op->req, 204, NULL); /* already so: idempotent */
        else if (current)
            mk_http_reply_error(op->req, 409, NULL, "%s is served by host type %s", op->domain,
                                current);
        else if (!mk_domain_add(op->host_type, op->domain, &error))
            mk_http_reply_error(op->req, 403, "host_type", "%s", error->message);
        else
            mk_http_reply_json(op->req, 204, NULL);
    } else {
        if (!current)
            mk_http_reply_json(op->req, 204, NULL); /* gone already */
        else if (!g_str_equal(current, op->host_type))
            mk_http_reply_error(op->req, 403, "host_type", "%s is served by host type %s",
                                op->domain, current);
        else if (!mk_domain_remove(op->domain, &error))
            mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
        else
            mk_http_reply_json(op->req, 204, NULL);
    }
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
    g_source_set_callback(src, domain_on_main, op, domain_op_free);
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
