/* XEP-0357's XML: the client's requests (section 5 and 6) and the
 * notification the server publishes (section 7). Pure: no server state. */
#include "push.h"

#define NS_CLIENT  "jabber:client"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_CARBONS "urn:xmpp:carbons:2"

void push_request_free(PushRequest *r)
{
    if (!r)
        return;
    g_free(r->service);
    g_free(r->node);
    g_free(r->form);
    g_free(r);
}

/* The FORM_TYPE value of a data form, or NULL. (transfer full) */
static char *form_type(MkXml *x)
{
    for (guint i = 0; i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        if (!mk_xml_is_text(f) && mk_xml_is(f, "field", NS_XDATA) &&
            g_strcmp0(mk_xml_get_attr(f, "var"), "FORM_TYPE") == 0)
            return mk_xml_child_text(f, "value", NS_XDATA);
    }
    return NULL;
}

/* Any thread. (transfer full) (nullable) */
PushRequest *push_request_parse(MkXml *payload, const char **why)
{
    gboolean enable = mk_xml_is(payload, "enable", NS_PUSH);
    if (!enable && !mk_xml_is(payload, "disable", NS_PUSH)) {
        *why = "expected <enable/> or <disable/>";
        return NULL;
    }
    const char *jid = mk_xml_get_attr(payload, "jid");
    const char *node = mk_xml_get_attr(payload, "node");
    g_autoptr(MkJid) service = jid ? mk_jid_new(jid, NULL) : NULL;
    if (!service) {
        *why = "a valid 'jid' (the app server) is required";
        return NULL;
    }
    if (node && !*node)
        node = NULL;
    if (enable && !node) {
        *why = "'node' is required to enable";
        return NULL;
    }
    g_autoptr(PushRequest) r = g_new0(PushRequest, 1);
    r->enable = enable;
    r->service = g_strdup(mk_jid_string(service));
    r->node = g_strdup(node);
    MkXml *x = enable ? mk_xml_child(payload, "x", NS_XDATA) : NULL;
    if (x) {
        g_autofree char *type = form_type(x);
        if (g_strcmp0(type, NS_PUBLISH_OPTS) != 0) {
            *why = "the form's FORM_TYPE must be " NS_PUBLISH_OPTS;
            return NULL;
        }
        r->form = mk_xml_to_string(x, NULL);
    }
    return g_steal_pointer(&r);
}

static void add_field(MkXml *x, const char *var, const char *value)
{
    MkXml *f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", var);
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), value, -1);
}

/* Any thread. (transfer full) */
MkXml *push_publish_new(const char *account, const char *service, const char *node,
                        const PushSummary *sum, const char *form)
{
    MkXml *iq = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(iq, "type", "set");
    mk_xml_set_attr(iq, "from", account);
    mk_xml_set_attr(iq, "to", service);
    MkXml *pubsub = mk_xml_add_child(iq, "pubsub", NS_PUBSUB);
    MkXml *publish = mk_xml_add_child(pubsub, "publish", NULL);
    mk_xml_set_attr(publish, "node", node);
    MkXml *item = mk_xml_add_child(publish, "item", NULL);
    MkXml *notif = mk_xml_add_child(item, "notification", NS_PUSH);
    MkXml *x = mk_xml_add_child(notif, "x", NS_XDATA);
    mk_xml_set_attr(x, "type", "submit");
    char count[16];
    g_snprintf(count, sizeof count, "%u", sum->count);
    add_field(x, "FORM_TYPE", NS_PUSH_SUMMARY);
    add_field(x, "message-count", count);
    if (sum->sender)
        add_field(x, "last-message-sender", sum->sender);
    if (sum->body)
        add_field(x, "last-message-body", sum->body);
    if (form) {
        /* Stored by us from a client's valid form: it parses. */
        g_autoptr(MkXml) opts = mk_xml_parse(form, -1, NULL);
        if (opts)
            mk_xml_append(mk_xml_add_child(pubsub, "publish-options", NULL),
                          g_steal_pointer(&opts));
    }
    return iq;
}

/* Any thread. (transfer none) (nullable) */
const char *push_error_condition(MkXml *response)
{
    MkXml *err = mk_xml_child(response, "error", NULL);
    if (!err)
        return NULL;
    for (guint i = 0; i < mk_xml_child_count(err); i++) {
        MkXml *c = mk_xml_child_at(err, i);
        if (!mk_xml_is_text(c) && g_strcmp0(mk_xml_ns(c), NS_STANZAS) == 0 &&
            g_strcmp0(mk_xml_name(c), "text") != 0)
            return mk_xml_name(c);
    }
    return NULL;
}

/* Any thread. */
gboolean push_message_wanted(MkXml *msg, gboolean groupchat_ok)
{
    MkXml *body = mk_xml_is(msg, "message", NULL) ? mk_xml_child(msg, "body", NS_CLIENT) : NULL;
    if (!body)
        return FALSE;
    /* An empty body (MUC Light's affiliation notices carry one) says
     * nothing a user would want to be woken for. */
    g_autofree char *text = mk_xml_text(body);
    if (!text || !*g_strstrip(text))
        return FALSE;
    /* A carbon copy tells of a message another of the user's clients
     * handled: nothing the sleeping device missed. */
    if (mk_xml_child(msg, "sent", NS_CARBONS) || mk_xml_child(msg, "received", NS_CARBONS))
        return FALSE;
    const char *type = mk_xml_get_attr(msg, "type");
    if (!type || g_str_equal(type, "chat") || g_str_equal(type, "normal"))
        return TRUE;
    return groupchat_ok && g_str_equal(type, "groupchat");
}
