/* mod_register: what a logged-in user does with jabber:iq:register:
 * read its registration, change its password (XEP-0077 3.3), cancel its
 * account (3.2). */
#include "register.h"

typedef struct {
    Reg *reg;
    MkIq *iq;    /* ref */
    MkJid *bare; /* ref: the account */
} Pending;

static void pending_free(gpointer data)
{
    Pending *p = data;
    mk_iq_unref(p->iq);
    mk_jid_unref(p->bare);
    g_free(p);
}

static void password_changed(const GError *error, gpointer data)
{
    Pending *p = data;
    if (!error) {
        mk_counter_add(p->reg->password_changed, 1);
        g_info("mod_register: %s changed its password", mk_jid_string(p->bare));
        mk_iq_reply(p->iq, NULL);
    } else if (g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_INVALID)) {
        mk_iq_reply_error(p->iq, MK_ERR_NOT_ACCEPTABLE, error->message);
    } else {
        g_warning("mod_register: password change of %s: %s", mk_jid_string(p->bare),
                  error->message);
        mk_iq_reply_error(p->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    }
}

/* The account is gone: answer, then end every session of it with
 * not-authorized (XEP-0077 3.2). mk_session_close goes through the
 * session's mailbox, so the result written now precedes the error. */
static void removed(const GError *error, gpointer data)
{
    Pending *p = data;
    if (error && !g_error_matches(error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_NO_USER)) {
        g_warning("mod_register: removing %s: %s", mk_jid_string(p->bare), error->message);
        mk_iq_reply_error(p->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    mk_counter_add(p->reg->removed, 1);
    g_info("mod_register: %s removed its account", mk_jid_string(p->bare));
    mk_iq_reply(p->iq, NULL);
    g_autoptr(GPtrArray) sessions = mk_session_list(p->bare);
    for (guint i = 0; i < sessions->len; i++)
        mk_session_close(g_ptr_array_index(sessions, i), "not-authorized");
}

static Pending *pending_new(Reg *r, MkIq *iq, MkJid *bare)
{
    Pending *p = g_new0(Pending, 1);
    p->reg = r;
    p->iq = mk_iq_ref(iq);
    p->bare = mk_jid_ref(bare);
    return p;
}

static void change_password(Reg *r, MkIq *iq, MkXml *query, MkJid *bare)
{
    g_autofree char *username = mk_xml_child_text(query, "username", NS_REGISTER);
    g_autofree char *password = mk_xml_child_text(query, "password", NS_REGISTER);
    if (!username || !password) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "Both username and password are required");
        return;
    }
    g_autoptr(MkJid) named =
        mk_jid_new_from_parts(g_strstrip(username), mk_jid_domain(bare), NULL, NULL);
    if (!named || !mk_jid_bare_equal(named, bare)) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ALLOWED, "You may only change your own password");
        return;
    }
    const char *problem = reg_password_problem(r, password);
    if (problem) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, problem);
        return;
    }
    mk_account_set_password(r->mod, mk_jid_node(bare), mk_jid_domain(bare), password,
                            password_changed, pending_new(r, iq, bare), pending_free);
    memset(password, 0, strlen(password));
}

/* On the asking session's worker. */
MkResult reg_account_iq(MkIq *iq, gpointer user_data)
{
    Reg *r = user_data;
    MkJid *from = mk_iq_from(iq);
    MkJid *to = mk_iq_to(iq);
    MkXml *query = mk_iq_payload(iq);

    /* Only a local user, about its own account: to its server or its
     * own bare JID. */
    if (!mk_iq_session(iq) || !from || !mk_jid_node(from) ||
        (to && mk_jid_node(to) && !mk_jid_bare_equal(to, from))) {
        mk_iq_reply_error(iq, MK_ERR_FORBIDDEN, NULL);
        return MK_HANDLED;
    }
    g_autoptr(MkJid) bare = mk_jid_bare(from);
    if (mk_iq_type(iq) == MK_IQ_GET) {
        g_autoptr(MkXml) q = mk_xml_new("query", NS_REGISTER);
        mk_xml_add_child(q, "registered", NULL);
        mk_xml_add_text(mk_xml_add_child(q, "username", NULL), mk_jid_node(bare), -1);
        mk_iq_reply(iq, g_steal_pointer(&q));
        return MK_HANDLED;
    }
    if (!mk_module_is_running(r->mod)) {
        mk_iq_reply_error(iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return MK_HANDLED;
    }
    if (mk_xml_child(query, "remove", NS_REGISTER)) {
        mk_account_remove(r->mod, mk_jid_node(bare), mk_jid_domain(bare), removed,
                          pending_new(r, iq, bare), pending_free);
        return MK_HANDLED;
    }
    change_password(r, iq, query, bare);
    return MK_HANDLED;
}
