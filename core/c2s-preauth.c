/* IQs before authentication (mk-stream.h): a module that claimed a
 * payload namespace (in-band registration) answers them on the stream's
 * worker; the client has no address yet, so replies carry none. */
#include "c2s-priv.h"
#include "modules.h"

struct MkPreauthIq {
    gint ref; /* the stream's worker only, like the stream's own count */
    MkC2s *c; /* ref held */
    MkXml *iq;
    MkXml *payload; /* a child of iq */
    char *peer;     /* the address without the port */
    gboolean replied;
};

/* "192.0.2.1:5222" -> "192.0.2.1", "[2001:db8::1]:5222" -> "2001:db8::1".
 * Returns: (transfer full) */
static char *peer_address(const char *peer)
{
    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');
        return end ? g_strndup(peer + 1, (gsize)(end - peer - 1)) : g_strdup(peer);
    }
    const char *colon = strrchr(peer, ':');
    return colon ? g_strndup(peer, (gsize)(colon - peer)) : g_strdup(peer);
}

MkPreauthIq *mk_preauth_iq_ref(MkPreauthIq *iq)
{
    g_return_val_if_fail(iq != NULL, NULL);
    g_return_val_if_fail(mk_worker_self() == iq->c->worker, iq);
    iq->ref++;
    return iq;
}

void mk_preauth_iq_unref(MkPreauthIq *iq)
{
    if (!iq)
        return;
    g_return_if_fail(mk_worker_self() == iq->c->worker);
    if (--iq->ref > 0)
        return;
    c2s_unref(iq->c);
    mk_xml_unref(iq->iq);
    g_free(iq->peer);
    g_free(iq);
}

MkXml *mk_preauth_iq_xml(MkPreauthIq *iq)
{
    return iq->iq;
}

MkXml *mk_preauth_iq_payload(MkPreauthIq *iq)
{
    return iq->payload;
}

MkIqType mk_preauth_iq_type(MkPreauthIq *iq)
{
    return g_strcmp0(mk_xml_get_attr(iq->iq, "type"), "set") == 0 ? MK_IQ_SET : MK_IQ_GET;
}

const char *mk_preauth_iq_domain(MkPreauthIq *iq)
{
    return iq->c->domain;
}

const char *mk_preauth_iq_peer(MkPreauthIq *iq)
{
    return iq->peer;
}

gboolean mk_preauth_iq_is_secure(MkPreauthIq *iq)
{
    return iq->c->conn && mk_conn_is_tls(iq->c->conn);
}

/* Writes the answer unless the stream closed meanwhile (c2s_write_xml
 * checks). The client has no address yet: the reply carries none. */
static gboolean preauth_claim(MkPreauthIq *iq)
{
    g_return_val_if_fail(iq != NULL, FALSE);
    g_return_val_if_fail(mk_worker_self() == iq->c->worker, FALSE);
    if (iq->replied) {
        g_warning("pre-auth IQ answered twice; the second answer is dropped");
        return FALSE;
    }
    iq->replied = TRUE;
    return TRUE;
}

void mk_preauth_iq_reply(MkPreauthIq *iq, MkXml *payload)
{
    g_autoptr(MkXml) owned = payload;
    if (!preauth_claim(iq))
        return;
    g_autoptr(MkXml) res = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(res, "type", "result");
    if (mk_xml_get_attr(iq->iq, "id"))
        mk_xml_set_attr(res, "id", mk_xml_get_attr(iq->iq, "id"));
    if (owned)
        mk_xml_append(res, g_steal_pointer(&owned));
    c2s_write_xml(iq->c, res);
}

void mk_preauth_iq_reply_error(MkPreauthIq *iq, MkStanzaError cond, const char *text)
{
    if (!preauth_claim(iq))
        return;
    g_autoptr(MkStanza) st = mk_stanza_new(iq->iq, NULL);
    g_autoptr(MkStanza) err = st ? mk_stanza_new_error_reply(st, cond, text) : NULL;
    if (err)
        c2s_write_xml(iq->c, mk_stanza_xml(err));
}

/* Offers a pre-authentication <iq/> to the module that claimed its
 * payload's namespace. FALSE when nobody did (the caller closes the
 * stream as before). */
gboolean c2s_preauth_iq_dispatch(MkC2s *c, MkXml *el)
{
    const char *type = mk_xml_get_attr(el, "type");
    const char *to = mk_xml_get_attr(el, "to");
    MkPreauthIqFunc func;
    gpointer data;

    if (g_strcmp0(type, "get") != 0 && g_strcmp0(type, "set") != 0)
        return FALSE;
    MkXml *payload = NULL;
    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *child = mk_xml_child_at(el, i);
        if (mk_xml_is_text(child))
            continue;
        if (payload)
            return FALSE; /* exactly one payload (RFC 6120 8.2.3) */
        payload = child;
    }
    if (!payload)
        return FALSE;
    if (to) {
        /* Only the server of this stream may be asked. */
        g_autoptr(MkJid) to_jid = mk_jid_new(to, NULL);
        if (!to_jid || !mk_jid_is_bare(to_jid) || mk_jid_node(to_jid) ||
            g_strcmp0(mk_jid_domain(to_jid), c->domain) != 0)
            return FALSE;
    }
    if (!mk_stream_preauth_iq_lookup(c->domain, mk_xml_ns(payload), &func, &data))
        return FALSE;

    MkPreauthIq *iq = g_new0(MkPreauthIq, 1);
    iq->ref = 1;
    iq->c = c2s_ref(c);
    iq->iq = mk_xml_ref(el);
    iq->payload = payload;
    iq->peer = peer_address(mk_conn_peer(c->conn));
    MkResult r = func(iq, data);
    if (r == MK_PASS && !iq->replied)
        mk_preauth_iq_reply_error(iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    mk_preauth_iq_unref(iq);
    return TRUE;
}
