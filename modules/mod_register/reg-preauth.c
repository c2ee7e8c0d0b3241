/* mod_register: creating an account before logging in (XEP-0077 3.1). */
#include "register.h"

#define INSTRUCTIONS "Choose a username and password to register with this server."

typedef struct {
    Reg *reg;
    MkPreauthIq *iq; /* ref; the stream's worker, where the completion runs */
    char *addr;      /* the client's address, for the limiter */
    char *node;      /* the prepared username */
    char *domain;
} Pending;

static void pending_free(gpointer data)
{
    Pending *p = data;
    mk_preauth_iq_unref(p->iq);
    g_free(p->addr);
    g_free(p->node);
    g_free(p->domain);
    g_free(p);
}

/* The stream's worker (mk_account_* returns to the caller's thread). */
static void registered(const GError *error, gpointer data)
{
    Pending *p = data;
    Reg *r = p->reg;
    if (!error) {
        mk_counter_add(r->registered, 1);
        g_info("mod_register: %s@%s registered from %s", p->node, p->domain, p->addr);
        mk_preauth_iq_reply(p->iq, NULL);
        return;
    }
    /* Nothing was created: the attempt does not count against the address. */
    reg_limiter_give_back(r->limiter, p->addr);
    mk_counter_add(r->refused, 1);
    if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_EXISTS)) {
        mk_preauth_iq_reply_error(p->iq, MK_ERR_CONFLICT, "The username is taken");
    } else if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_INVALID)) {
        mk_preauth_iq_reply_error(p->iq, MK_ERR_NOT_ACCEPTABLE, error->message);
    } else {
        g_warning("mod_register: registering %s@%s: %s", p->node, p->domain, error->message);
        mk_preauth_iq_reply_error(p->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    }
}

static MkXml *registration_form(void)
{
    MkXml *q = mk_xml_new("query", NS_REGISTER);
    mk_xml_add_text(mk_xml_add_child(q, "instructions", NULL), INSTRUCTIONS, -1);
    mk_xml_add_child(q, "username", NULL);
    mk_xml_add_child(q, "password", NULL);
    return q;
}

/* The stream's worker. */
MkResult reg_preauth_iq(MkPreauthIq *iq, gpointer user_data)
{
    Reg *r = user_data;
    MkXml *query = mk_preauth_iq_payload(iq);

    if (!r->allow_registration || !mk_module_is_running(r->mod) ||
        !mk_xml_is(query, "query", NS_REGISTER)) {
        mk_preauth_iq_reply_error(iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return MK_HANDLED;
    }
    if (mk_preauth_iq_type(iq) == MK_IQ_GET) {
        mk_preauth_iq_reply(iq, registration_form());
        return MK_HANDLED;
    }
    if (mk_xml_child(query, "remove", NS_REGISTER)) {
        /* Cancelling needs an account to cancel: log in first. */
        mk_preauth_iq_reply_error(iq, MK_ERR_NOT_AUTHORIZED, "Log in to cancel a registration");
        return MK_HANDLED;
    }
    g_autofree char *username = mk_xml_child_text(query, "username", NS_REGISTER);
    g_autofree char *password = mk_xml_child_text(query, "password", NS_REGISTER);
    if (!username || !*username || !password) {
        mk_counter_add(r->refused, 1);
        mk_preauth_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE,
                                  "A username and a password are required");
        return MK_HANDLED;
    }
    const char *domain = mk_preauth_iq_domain(iq);
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(g_strstrip(username), domain, NULL, NULL);
    if (!jid || !mk_jid_node(jid)) {
        mk_counter_add(r->refused, 1);
        mk_preauth_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "The username is not valid");
        return MK_HANDLED;
    }
    const char *problem = reg_password_problem(r, password);
    if (problem) {
        mk_counter_add(r->refused, 1);
        mk_preauth_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, problem);
        return MK_HANDLED;
    }
    const char *addr = mk_preauth_iq_peer(iq);
    if (!reg_limiter_take(r->limiter, addr, g_get_monotonic_time())) {
        mk_counter_add(r->rate_limited, 1);
        g_info("mod_register: registration from %s refused: over the limit", addr);
        /* resource-constraint is type 'wait': the client may retry later. */
        mk_preauth_iq_reply_error(iq, MK_ERR_RESOURCE_CONSTRAINT,
                                  "Too many registrations from your address; try again later");
        return MK_HANDLED;
    }
    Pending *p = g_new0(Pending, 1);
    p->reg = r;
    p->iq = mk_preauth_iq_ref(iq);
    p->addr = g_strdup(addr);
    p->node = g_strdup(mk_jid_node(jid));
    p->domain = g_strdup(mk_jid_domain(jid));
    mk_account_register(r->mod, p->node, p->domain, password, registered, p, pending_free);
    if (password)
        memset(password, 0, strlen(password));
    return MK_HANDLED;
}
