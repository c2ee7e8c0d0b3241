/* mod_carboncopy: Message Carbons (XEP-0280, urn:xmpp:carbons:2).
 *
 * A resource enables carbons for itself with an IQ; from then on, while
 * it is available, it gets a copy of the eligible messages its user's
 * other resources send (<sent/>, from the user_send_packet hook) and of
 * those delivered to its user that the router does not give it itself
 * (<received/>, from the filter_local_packet hook, which runs once per
 * message whatever the number of resources that take it). Copies come
 * from the bare JID and wrap the original in an XEP-0297 <forwarded/>. */
#include <meerkat/module.h>

#include "carbons.h"

typedef struct {
    MkModule *mod;
    MkCounter *sent;
    MkCounter *received;
} Carbons;

/* Session flag (mk_session_set_flags): the session enabled carbons. */
#define CARBONS_ENABLED (1u << 0)

/* Copies go to the sessions that enabled carbons and are available (an
 * unavailable one takes no messages to the bare JID either, and would get
 * the same message again from offline storage). Any thread. */
static gboolean wants_copies(Carbons *c, MkSession *s)
{
    return (mk_session_get_flags(s, c->mod) & CARBONS_ENABLED) && mk_session_is_available(s);
}

/* ---- enable / disable (XEP-0280 sections 4 and 5) ---------------------- */

static MkResult on_iq(MkIq *iq, gpointer user_data)
{
    Carbons *c = user_data;
    MkXml *payload = mk_iq_payload(iq);
    MkSession *s = mk_iq_session(iq);
    MkJid *to = mk_iq_to(iq);
    gboolean enable = mk_xml_is(payload, "enable", NS_CARBONS);

    if (!enable && !mk_xml_is(payload, "disable", NS_CARBONS)) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, NULL);
        return MK_HANDLED;
    }
    /* Only a resource of the account itself switches its own carbons. */
    if (!s || (to && mk_jid_node(to) && !mk_jid_bare_equal(to, mk_session_jid(s)))) {
        mk_iq_reply_error(iq, MK_ERR_FORBIDDEN, NULL);
        return MK_HANDLED;
    }
    /* Repeated enables or disables are no-ops (section 10.1). */
    mk_session_set_flags(s, c->mod, enable ? CARBONS_ENABLED : 0, CARBONS_ENABLED);
    mk_iq_reply(iq, NULL);
    return MK_HANDLED;
}

/* ---- the copies -------------------------------------------------------- */

static gboolean eligible(MkStanza *st)
{
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE)
        return FALSE;
    MkXml *x = mk_stanza_xml(st);
    CarbonsMessage m = {
        .type = mk_stanza_type(st),
        .has_body = mk_xml_child(x, "body", NULL) != NULL,
        .is_private = mk_xml_child(x, "private", NS_CARBONS) != NULL,
        .no_copy = mk_xml_child(x, "no-copy", NS_HINTS) != NULL,
        .is_carbon = mk_xml_child(x, "sent", NS_CARBONS) != NULL ||
                     mk_xml_child(x, "received", NS_CARBONS) != NULL,
    };
    return carbons_eligible(&m);
}

/* <message from=BARE to=@to><@kind xmlns=carbons><forwarded>original
 * </forwarded></@kind></message>. (transfer full) */
static MkStanza *carbon_new(MkStanza *st, const char *kind, MkJid *bare, MkJid *to)
{
    g_autoptr(MkXml) msg = mk_xml_new("message", NS_CLIENT);
    const char *type = mk_stanza_type(st);
    if (type)
        mk_xml_set_attr(msg, "type", type);
    MkXml *wrap = mk_xml_add_child(msg, kind, NS_CARBONS);
    MkXml *fwd = mk_xml_add_child(wrap, "forwarded", NS_FORWARD);
    mk_xml_append(fwd, mk_xml_copy(mk_stanza_xml(st)));
    return mk_stanza_new_addressed(msg, bare, to);
}

/* Sends a @kind carbon of @st to every resource of @bare that wants
 * copies and is not marked in @skip (parallel to @sessions). */
static void send_carbons(Carbons *c, MkStanza *st, const char *kind, MkJid *bare,
                         GPtrArray *sessions, const gboolean *skip, MkCounter *counter)
{
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *o = g_ptr_array_index(sessions, i);
        if (skip[i] || !wants_copies(c, o))
            continue;
        g_autoptr(MkStanza) carbon = carbon_new(st, kind, bare, mk_session_jid(o));
        mk_session_send(o, carbon);
        mk_counter_add(counter, 1);
    }
}

/* A message between two resources of the same account is nobody's
 * conversation with someone else: no carbons either way. */
static gboolean to_self(MkStanza *st)
{
    MkJid *from = mk_stanza_from(st), *to = mk_stanza_to(st);
    return from && to && mk_jid_bare_equal(from, to);
}

/* user_send_packet: on the sender's worker, before routing (section 7). */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Carbons *c = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkSession *s = mk_hook_call_session(call);
    if (!st || !s || !mk_stanza_to(st) || !eligible(st) || to_self(st))
        return MK_PASS;

    g_autoptr(MkJid) bare = mk_jid_bare(mk_session_jid(s));
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    g_autofree gboolean *skip = g_new0(gboolean, sessions->len + 1);
    for (guint i = 0; i < sessions->len; i++)
        skip[i] = g_ptr_array_index(sessions, i) == s;
    send_carbons(c, st, "sent", bare, sessions, skip, c->sent);
    return MK_PASS;
}

/* A carbon made in another region of a distributed domain
 * (mod_global_distrib, docs/mod_global_distrib.md "Carbons"): from the
 * account's bare JID to the same bare JID, wrapping <sent/> or
 * <received/>. Clients' stanzas carry their full JID, so only a server
 * module addresses one so. */
static gboolean relayed_carbon(MkStanza *st)
{
    MkJid *from = mk_stanza_from(st), *to = mk_stanza_to(st);
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE || !from || !to || !mk_jid_is_bare(from) ||
        !mk_jid_is_bare(to) || !mk_jid_node(to) || !mk_jid_equal(from, to))
        return FALSE;
    MkXml *x = mk_stanza_xml(st);
    return mk_xml_child(x, "sent", NS_CARBONS) != NULL ||
           mk_xml_child(x, "received", NS_CARBONS) != NULL;
}

/* Hands a relayed carbon, readdressed, to this region's resources that
 * want copies; it is not routed further (nor stored offline). */
static void deliver_relayed(Carbons *c, MkStanza *st)
{
    MkJid *bare = mk_stanza_to(st);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *o = g_ptr_array_index(sessions, i);
        if (!wants_copies(c, o))
            continue;
        g_autoptr(MkStanza) carbon =
            mk_stanza_new_addressed(mk_stanza_xml(st), bare, mk_session_jid(o));
        mk_session_send(o, carbon);
        mk_counter_add(mk_xml_child(mk_stanza_xml(st), "sent", NS_CARBONS) ? c->sent : c->received,
                       1);
    }
}

/* filter_local_packet: once per stanza for a local account, on the worker
 * that routes it, before the router picks resources (section 6). The
 * resources the router will hand the message get no copy of it. Low
 * priority, so that blocking and privacy filters run first. */
static MkResult on_local(MkHookCall *call, gpointer user_data)
{
    Carbons *c = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = st ? mk_stanza_to(st) : NULL;
    if (st && relayed_carbon(st)) {
        deliver_relayed(c, st);
        return MK_HANDLED;
    }
    if (!st || !to || !mk_jid_node(to) || !eligible(st) || to_self(st))
        return MK_PASS;

    g_autoptr(MkJid) bare = mk_jid_bare(to);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    g_autofree CarbonsResource *res = g_new0(CarbonsResource, sessions->len + 1);
    g_autofree gboolean *direct = g_new0(gboolean, sessions->len + 1);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *o = g_ptr_array_index(sessions, i);
        res[i].available = mk_session_is_available(o);
        res[i].priority = mk_session_priority(o);
        res[i].addressed = !mk_jid_is_bare(to) && mk_jid_equal(to, mk_session_jid(o));
    }
    carbons_direct_recipients(res, sessions->len, direct);
    send_carbons(c, st, "received", bare, sessions, direct, c->received);
    return MK_PASS;
}

static gboolean carbons_start(MkModule *mod, GError **error)
{
    Carbons *c = g_new0(Carbons, 1);
    c->mod = mod;
    c->sent = mk_counter_new(mod, "sent_carbons");
    c->received = mk_counter_new(mod, "received_carbons");
    mk_module_set_data(mod, c, g_free); /* freed with the last reference */

    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER | MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_CARBONS, on_iq,
                        c, error))
        return FALSE;
    mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, 50, on_send, c);
    mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, 10, on_local, c);
    mk_disco_feature_add(mod, NS_CARBONS);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_carboncopy",
    .version = "1.0",
    .start = carbons_start,
};
