/* IQ handlers keyed by (scope, type, namespace) per host type; the core
 * answers what nobody claims (service-unavailable) and malformed requests
 * (bad-request). Also the server's own outgoing requests (mk_iq_send) and
 * the matching of their responses. */
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"

#define NS_CLIENT "jabber:client"

struct MkIq {
    gint ref;
    MkModule *mod; /* reference */
    MkStanza *stanza;
    MkXml *payload; /* (transfer none) child of the stanza's XML */
    MkSession *session;
    MkIqType type;
    gint replied; /* atomic flag */
};

/* ---- Registration ---- */

void mk_iq_reg_free(gpointer reg)
{
    MkIqReg *r = reg;
    g_free(r->xmlns);
    g_free(r);
}

/* Adds @mod's handlers to @hr (snapshot build). Main thread. */
void mk_iq_build(MkHostReg *hr, MkModule *mod)
{
    for (guint i = 0; i < mod->iqs->len; i++) {
        MkIqReg *r = g_ptr_array_index(mod->iqs, i);
        for (int acct = 0; acct < 2; acct++) {
            MkIqScope bit = acct ? MK_IQ_SCOPE_ACCOUNT : MK_IQ_SCOPE_SERVER;
            if (!(r->scopes & bit))
                continue;
            MkIqEntry *e = g_new0(MkIqEntry, 1);
            e->func = r->func;
            e->user_data = r->user_data;
            e->mod = mod;
            g_hash_table_insert(hr->iq[MK_IQ_TABLE(acct, r->type)], g_strdup(r->xmlns), e);
        }
    }
}

static const char *scope_name(MkIqScope scopes)
{
    return scopes == MK_IQ_SCOPE_SERVER    ? "server"
           : scopes == MK_IQ_SCOPE_ACCOUNT ? "account"
                                           : "server+account";
}

/* Public module API (mk-iq.h). Main thread, in start(). */
gboolean mk_iq_register(MkModule *mod, MkIqScope scopes, MkIqType type, const char *xmlns,
                        MkIqFunc func, gpointer user_data, GError **error)
{
    g_return_val_if_fail(mod != NULL && xmlns != NULL && func != NULL, FALSE);
    g_return_val_if_fail(type == MK_IQ_GET || type == MK_IQ_SET, FALSE);
    g_return_val_if_fail((scopes & (MK_IQ_SCOPE_SERVER | MK_IQ_SCOPE_ACCOUNT)) != 0, FALSE);
    if (!mod->live) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "%s: IQ handlers are registered while the module runs", mod->name);
        return FALSE;
    }
    MkModules *mods = mod->mods;
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *other = g_ptr_array_index(mods->instances, i);
        if (other->host_type != mod->host_type)
            continue;
        for (guint j = 0; j < other->iqs->len; j++) {
            MkIqReg *r = g_ptr_array_index(other->iqs, j);
            if (r->type == type && (r->scopes & scopes) && g_str_equal(r->xmlns, xmlns)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                            "%s: the IQ %s handler for %s (%s scope) on host type %s is taken "
                            "by %s already",
                            mod->name, type == MK_IQ_GET ? "get" : "set", xmlns,
                            scope_name(r->scopes & scopes), mod->host_type, other->name);
                return FALSE;
            }
        }
    }
    MkIqReg *r = g_new0(MkIqReg, 1);
    r->scopes = scopes;
    r->type = type;
    r->xmlns = g_strdup(xmlns);
    r->func = func;
    r->user_data = user_data;
    g_ptr_array_add(mod->iqs, r);
    mk_modules_publish(mods);
    return TRUE;
}

/* ---- Answering ---- */

static void route_error(MkStanza *st, MkStanzaError cond, const char *text)
{
    g_autoptr(MkStanza) reply = mk_stanza_new_error_reply(st, cond, text);
    if (reply)
        mk_router_send(reply);
}

/* Public module API. (transfer full) Any thread. */
MkIq *mk_iq_ref(MkIq *iq)
{
    g_return_val_if_fail(iq != NULL, NULL);
    g_atomic_int_inc(&iq->ref);
    return iq;
}

/* Public module API. Any thread. The last reference of an IQ nobody
 * answered answers internal-server-error, so a request never hangs. */
void mk_iq_unref(MkIq *iq)
{
    if (!iq || !g_atomic_int_dec_and_test(&iq->ref))
        return;
    if (g_atomic_int_compare_and_exchange(&iq->replied, 0, 1)) {
        g_warning("module %s dropped an IQ (%s) without answering it; answering "
                  "internal-server-error",
                  iq->mod ? iq->mod->name : "?",
                  iq->payload ? (mk_xml_ns(iq->payload) ? mk_xml_ns(iq->payload) : "") : "");
        route_error(iq->stanza, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    }
    mk_stanza_unref(iq->stanza);
    if (iq->mod)
        mk_module_unref(iq->mod);
    g_free(iq);
}

/* Public module API: accessors. (transfer none) Any thread. */
MkStanza *mk_iq_stanza(MkIq *iq)
{
    return iq->stanza;
}

MkXml *mk_iq_payload(MkIq *iq)
{
    return iq->payload;
}

MkJid *mk_iq_from(MkIq *iq)
{
    return mk_stanza_from(iq->stanza);
}

MkJid *mk_iq_to(MkIq *iq)
{
    return mk_stanza_to(iq->stanza);
}

/* Public module API (mk-iq.h). (transfer full) (nullable) Any thread. */
MkJid *mk_iq_own_account(MkIq *iq)
{
    g_return_val_if_fail(iq != NULL, NULL);
    MkJid *from = mk_stanza_from(iq->stanza);
    MkJid *to = mk_stanza_to(iq->stanza);
    if (!from || !mk_jid_node(from) || (to && !mk_jid_bare_equal(to, from))) {
        mk_iq_reply_error(iq, MK_ERR_FORBIDDEN, NULL);
        return NULL;
    }
    return mk_jid_bare(from);
}

MkIqType mk_iq_type(MkIq *iq)
{
    return iq->type;
}

MkSession *mk_iq_session(MkIq *iq)
{
    return iq->session;
}

MkModule *mk_iq_module(MkIq *iq)
{
    return iq->mod;
}

static gboolean claim_reply(MkIq *iq)
{
    if (g_atomic_int_compare_and_exchange(&iq->replied, 0, 1))
        return TRUE;
    g_warning("module %s answered the IQ %s twice; the second answer is ignored",
              iq->mod ? iq->mod->name : "?",
              mk_stanza_id(iq->stanza) ? mk_stanza_id(iq->stanza) : "");
    return FALSE;
}

/* Public module API. (transfer full) of @payload. Any thread. */
void mk_iq_reply(MkIq *iq, MkXml *payload)
{
    g_return_if_fail(iq != NULL);
    g_autoptr(MkXml) owned = payload;
    if (!claim_reply(iq))
        return;
    g_autoptr(MkXml) xml = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(xml, "type", "result");
    const char *id = mk_stanza_id(iq->stanza);
    if (id)
        mk_xml_set_attr(xml, "id", id);
    if (owned)
        mk_xml_append(xml, g_steal_pointer(&owned));
    g_autoptr(MkStanza) reply =
        mk_stanza_new_addressed(xml, mk_stanza_to(iq->stanza), mk_stanza_from(iq->stanza));
    mk_router_send(reply);
}

/* Public module API. Any thread. */
void mk_iq_reply_error(MkIq *iq, MkStanzaError cond, const char *text)
{
    g_return_if_fail(iq != NULL);
    if (claim_reply(iq))
        route_error(iq->stanza, cond, text);
}

/* Public module API. (transfer full) of @app. Any thread. */
void mk_iq_reply_error_app(MkIq *iq, MkStanzaError cond, const char *text, MkXml *app)
{
    g_return_if_fail(iq != NULL);
    g_autoptr(MkXml) owned = app;
    if (!claim_reply(iq))
        return;
    g_autoptr(MkStanza) plain = mk_stanza_new_error_reply(iq->stanza, cond, text);
    if (!plain)
        return;
    /* The plain reply is ours until routed: copy it and add the condition. */
    g_autoptr(MkXml) xml = mk_xml_copy(mk_stanza_xml(plain));
    MkXml *err = mk_xml_child(xml, "error", NULL);
    if (err && owned)
        mk_xml_append(err, g_steal_pointer(&owned));
    g_autoptr(MkStanza) reply =
        mk_stanza_new_addressed(xml, mk_stanza_from(plain), mk_stanza_to(plain));
    mk_router_send(reply);
}

/* The one child element of @el, or NULL when it has none or several. */
static MkXml *single_child(MkXml *el)
{
    MkXml *found = NULL;
    guint n = mk_xml_child_count(el);
    for (guint i = 0; i < n; i++) {
        MkXml *c = mk_xml_child_at(el, i);
        if (mk_xml_is_text(c))
            continue;
        if (found)
            return NULL;
        found = c;
    }
    return found;
}

/* See modules.h. Any worker thread. */
void mk_iq_dispatch(MkModules *mods, const char *domain, MkIqScope scope, MkStanza *st,
                    MkSession *session)
{
    g_return_if_fail(st != NULL);
    const char *type = mk_stanza_type(st);
    MkIqType t;
    if (g_strcmp0(type, "get") == 0)
        t = MK_IQ_GET;
    else if (g_strcmp0(type, "set") == 0)
        t = MK_IQ_SET;
    else if (g_strcmp0(type, "result") == 0 || g_strcmp0(type, "error") == 0)
        return; /* responses are never answered */
    else {
        route_error(st, MK_ERR_BAD_REQUEST, "IQ type must be get, set, result or error");
        return;
    }
    MkXml *payload = single_child(mk_stanza_xml(st));
    if (!payload) {
        route_error(st, MK_ERR_BAD_REQUEST, "an IQ request has exactly one child element");
        return;
    }
    MkHostReg *hr = mk_modules_host_reg(mods, domain);
    const char *ns = mk_xml_ns(payload);
    MkIqEntry *e = NULL;
    if (hr && ns) {
        int acct = scope == MK_IQ_SCOPE_ACCOUNT;
        e = g_hash_table_lookup(hr->iq[MK_IQ_TABLE(acct, t)], ns);
    }
    if (!e) {
        route_error(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return;
    }

    MkIq *iq = g_new0(MkIq, 1);
    iq->ref = 1;
    iq->mod = mk_module_ref(e->mod);
    iq->stanza = mk_stanza_ref(st);
    iq->payload = payload;
    iq->session = session;
    iq->type = t;
    MkResult r = e->func(iq, e->user_data);
    iq->session = NULL; /* only valid during the handler */
    if (r == MK_PASS && g_atomic_int_compare_and_exchange(&iq->replied, 0, 1))
        route_error(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    else if (r == MK_ERROR && g_atomic_int_compare_and_exchange(&iq->replied, 0, 1)) {
        g_warning("module %s returned MK_ERROR for an IQ without mk_iq_reply_error", iq->mod->name);
        route_error(st, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    }
    mk_iq_unref(iq);
}

/* ---- Outgoing requests ---- */

typedef struct MkIqPending MkIqPending;
struct MkIqPending {
    gint ref;
    char *key; /* "id\x1fpeer" */
    MkIqResponse done;
    gpointer user_data;
    GDestroyNotify destroy;
    GMainContext *ctx;
    GSource *timeout;
    MkModules *mods;
    MkModule *mod; /* reference: keeps the module's data alive */
};

static void pending_unref(gpointer data)
{
    MkIqPending *p = data;
    if (!g_atomic_int_dec_and_test(&p->ref))
        return;
    if (p->destroy)
        p->destroy(p->user_data);
    g_free(p->key);
    g_main_context_unref(p->ctx);
    if (p->timeout)
        g_source_unref(p->timeout);
    mk_module_unref(p->mod);
    g_free(p);
}

static char *pending_key(const char *id, MkJid *peer)
{
    return g_strdup_printf("%s\x1f%s", id, peer ? mk_jid_string(peer) : "");
}

/* Removes @key's entry when it is still @p (or any, when @p is NULL).
 * (transfer full) the table's reference, or NULL. Any thread. */
static MkIqPending *pending_steal(MkModules *mods, const char *key, MkIqPending *p)
{
    g_mutex_lock(&mods->pending_lock);
    MkIqPending *found = g_hash_table_lookup(mods->pending, key);
    if (found && (!p || found == p))
        g_hash_table_remove(mods->pending, key);
    else
        found = NULL;
    g_mutex_unlock(&mods->pending_lock);
    return found;
}

/* On the caller's context: no response in time. */
static gboolean pending_timeout(gpointer data)
{
    MkIqPending *p = data;
    MkIqPending *mine = pending_steal(p->mods, p->key, p);
    if (mine) {
        mine->done(NULL, mine->user_data);
        pending_unref(mine);
    }
    return G_SOURCE_REMOVE;
}

typedef struct {
    MkIqPending *p;     /* the table's reference */
    MkStanza *response; /* nullable */
} Delivery;

static gboolean deliver(gpointer data)
{
    Delivery *d = data;
    d->p->done(d->response, d->p->user_data);
    return G_SOURCE_REMOVE;
}

static void delivery_free(gpointer data)
{
    Delivery *d = data;
    if (d->response)
        mk_stanza_unref(d->response);
    pending_unref(d->p);
    g_free(d);
}

/* Hands @p (the table's reference, already out of the table) its answer
 * on its own context. Any thread. */
static void complete(MkIqPending *p, MkStanza *response)
{
    g_source_destroy(p->timeout);
    Delivery *d = g_new0(Delivery, 1);
    d->p = p;
    d->response = response ? mk_stanza_ref(response) : NULL;
    g_main_context_invoke_full(p->ctx, G_PRIORITY_DEFAULT, deliver, d, delivery_free);
}

/* Public module API. (transfer none) of @request. Any thread that runs
 * its thread-default main context: @done runs there, exactly once, then
 * @destroy (nullable). */
void mk_iq_send(MkModule *mod, MkStanza *request, guint timeout_ms, MkIqResponse done,
                gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && request != NULL && done != NULL);
    MkModules *mods = mod->mods;
    g_autoptr(MkStanza) st = NULL;
    const char *id = mk_stanza_id(request);
    if (id && *id) {
        st = mk_stanza_ref(request);
    } else {
        guint n = (guint)g_atomic_int_add(&mods->iq_seq, 1) + 1;
        g_autofree char *gen = g_strdup_printf("mk-iq-%u", n);
        g_autoptr(MkXml) copy = mk_xml_copy(mk_stanza_xml(request));
        mk_xml_set_attr(copy, "id", gen);
        st = mk_stanza_new_addressed(copy, mk_stanza_from(request), mk_stanza_to(request));
        id = mk_stanza_id(st);
    }
    MkIqPending *p = g_new0(MkIqPending, 1);
    p->ref = 2; /* the table's and the timeout source's */
    p->key = pending_key(id, mk_stanza_to(st));
    p->done = done;
    p->user_data = user_data;
    p->destroy = destroy;
    p->mod = mk_module_ref(mod);
    p->ctx = g_main_context_ref_thread_default();
    p->mods = mods;
    p->timeout = g_timeout_source_new(timeout_ms);
    g_source_set_callback(p->timeout, pending_timeout, p, pending_unref);
    g_source_attach(p->timeout, p->ctx);

    g_mutex_lock(&mods->pending_lock);
    MkIqPending *old = g_hash_table_lookup(mods->pending, p->key);
    if (old)
        g_hash_table_steal(mods->pending, p->key);
    g_hash_table_insert(mods->pending, p->key, p);
    g_mutex_unlock(&mods->pending_lock);
    if (old) {
        /* The same id to the same peer is still waiting: the response
         * cannot tell them apart, so the older request ends now. */
        g_warning("module %s reuses IQ id %s while a request with it is pending", mod->name, id);
        complete(old, NULL);
    }
    mk_router_send(st);
}

/* See modules.h. Any thread. */
gboolean mk_iq_take_response(MkModules *mods, MkStanza *response)
{
    g_return_val_if_fail(response != NULL, FALSE);
    if (!mods)
        return FALSE;
    const char *type = mk_stanza_type(response);
    const char *id = mk_stanza_id(response);
    if (!id || (g_strcmp0(type, "result") != 0 && g_strcmp0(type, "error") != 0))
        return FALSE;
    g_autofree char *key = pending_key(id, mk_stanza_from(response));
    MkIqPending *p = pending_steal(mods, key, NULL);
    if (!p)
        return FALSE;
    complete(p, response);
    return TRUE;
}

/* See modules-priv.h. Main thread, workers stopped. */
void mk_iq_pending_clear(MkModules *mods)
{
    g_mutex_lock(&mods->pending_lock);
    GList *all = g_hash_table_get_values(mods->pending);
    g_hash_table_steal_all(mods->pending);
    g_mutex_unlock(&mods->pending_lock);
    for (GList *l = all; l; l = l->next) {
        MkIqPending *p = l->data;
        g_source_destroy(p->timeout);
        /* As a timeout would: the caller frees what it attached. Its
         * module has stopped already; its code is still mapped. */
        if (p->done)
            p->done(NULL, p->user_data);
        pending_unref(p);
    }
    g_list_free(all);
}
