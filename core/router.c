/* The router. See router.h; the rules for local accounts are RFC 6121
 * section 8.5 (8.5.2: bare JID, 8.5.3: full JID). */
#include "router.h"
#include "cluster.h"
#include "hosts.h"
#include "metrics.h"
#include "modules.h"
#include "server.h"
#include "sm.h"

void mk_router_bounce(MkStanza *st, MkStanzaError cond, const char *text)
{
    /* mk_stanza_new_error_reply gives NULL for type="error": errors are never
     * answered with errors, which also stops bounce loops. */
    g_autoptr(MkStanza) reply = mk_stanza_new_error_reply(st, cond, text);
    if (reply && mk_stanza_to(reply)) {
        mk_metrics_routed(MK_ROUTED_BOUNCED);
        mk_router_route(reply, NULL);
    }
}

/* Readers of routing state take the shard lock inside these accessors. */
static gboolean session_available(MkSession *s, int *priority)
{
    *priority = mk_session_priority(s);
    return mk_session_is_available(s);
}

static gboolean is_subscription_type(const char *type)
{
    return type && (g_str_equal(type, "subscribe") || g_str_equal(type, "subscribed") ||
                    g_str_equal(type, "unsubscribe") || g_str_equal(type, "unsubscribed"));
}

static void route_offline(MkServer *srv, MkStanza *st, MkJid *to, gboolean headline);

/* Set while a message the cluster looked up in Redis is routed again
 * (mk_router_message_rechecked): no second look. */
static __thread gboolean rechecked;

/* A local delivery: to @sink when there is one (the fan-out gathers them
 * per worker), else straight to the session. */
static inline void deliver(MkRouteSink *sink, MkSession *s, MkStanza *st)
{
    if (sink && !s->remote)
        sink->deliver(sink, s, st);
    else
        mk_session_send(s, st);
}

/* A message for a bare JID (RFC 6121 8.5.2.1.1 and 8.5.2.2.1). */
static void route_message_bare(MkServer *srv, MkStanza *st, MkJid *to, MkRouteSink *sink)
{
    const char *type = mk_stanza_type(st);
    gboolean headline = g_strcmp0(type, "headline") == 0;

    if (g_strcmp0(type, "error") == 0)
        return;
    /* Groupchat to a bare JID bounces (RFC 6121 8.5.2.1.1), unless a room
     * service of ours sends it (MUC Light, mk-fanout.h): then it is for
     * every resource, and offline storage when none is there. */
    gboolean from_room = FALSE;
    if (g_strcmp0(type, "groupchat") == 0) {
        MkJid *from = mk_stanza_from(st);
        from_room = from && mk_routes_has(srv->modules, mk_jid_domain(from));
        if (!from_room) {
            mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
            return;
        }
        headline = TRUE;
    }
    /* Only available resources with non-negative priority take messages
     * sent to the bare JID; normal and chat go to the highest of them
     * (all that share it), headline to every one of them. The time of
     * the choice goes with the message: a stream-managed session that
     * ends without acknowledging it knows who else had it (c2s-sm.c). */
    g_autoptr(MkJid) bare = mk_jid_bare(to);
    gint64 chosen_us;
    g_autoptr(GPtrArray) sessions = mk_sm_bare_targets(srv->sm, bare, headline, &chosen_us);
    if (sessions->len)
        mk_stanza_set_chosen_us(st, chosen_us);
    guint delivered = 0;
    for (guint i = 0; i < sessions->len; i++) {
        deliver(sink, g_ptr_array_index(sessions, i), st);
        delivered++;
    }
    if (delivered) {
        mk_metrics_routed(MK_ROUTED_DELIVERED);
        return;
    }
    /* In a cluster, a session bound on another node a moment ago may not
     * be in this node's table yet: Redis is asked first. */
    if (G_UNLIKELY(!rechecked) && mk_cluster_offline_recheck(mk_sm_get_cluster(srv->sm), st))
        return;
    route_offline(srv, st, to, headline);
}

/* No resource took the message: the offline_message hook, else a bounce
 * (headline is dropped silently). */
static void route_offline(MkServer *srv, MkStanza *st, MkJid *to, gboolean headline)
{
    MkHookCall call = {.domain = mk_jid_domain(to),
                       .stanza = mk_stanza_ref(st),
                       .from = mk_stanza_from(st),
                       .to = to};
    MkResult r = mk_hooks_run(srv->modules, MK_HOOK_OFFLINE_MESSAGE, &call);
    if (r == MK_HANDLED)
        mk_metrics_routed(MK_ROUTED_OFFLINE);
    if (r == MK_ERROR && call.has_error)
        mk_router_bounce(st, call.error, call.error_text);
    else if (r == MK_PASS && !headline)
        mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    /* A room's copy nobody stored is dropped: the room's archive has it,
     * and an error per offline occupant would only flood the room. */
    mk_hook_call_clear(&call);
}

/* Presence for a bare JID that no module took: to every available
 * resource (RFC 6121 8.5.2.1.2); probes and subscription requests without
 * a roster module have nowhere to go. */
static void route_presence_bare(MkServer *srv, MkStanza *st, MkJid *to)
{
    const char *type = mk_stanza_type(st);
    if (g_strcmp0(type, "probe") == 0 || g_strcmp0(type, "error") == 0)
        return;
    g_autoptr(MkJid) bare = mk_jid_bare(to);
    g_autoptr(GPtrArray) sessions = mk_sm_sessions(srv->sm, bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        int prio;
        if (session_available(s, &prio))
            mk_session_send(s, st);
    }
}

/* No session here would take @st (for a full JID: that resource; for a
 * bare JID: any): a module that knows where else the account lives
 * (mod_global_distrib) may take it over before the recipient's filters
 * run here. TRUE when it did (or bounced it). */
static gboolean route_unheld(MkServer *srv, MkStanza *st, MkJid *to, MkDomainHooks *dh)
{
    if (dh ? !dh->unheld || !dh->unheld->len
           : !mk_hooks_any(srv->modules, mk_jid_domain(to), MK_HOOK_ROUTE_UNHELD))
        return FALSE;
    if (mk_jid_is_bare(to)) {
        g_autoptr(GPtrArray) sessions = mk_sm_sessions(srv->sm, to);
        if (sessions->len)
            return FALSE;
    } else {
        g_autoptr(MkSession) s = mk_sm_find(srv->sm, to);
        if (s)
            return FALSE;
    }
    MkHookCall call = {.domain = mk_jid_domain(to),
                       .stanza = mk_stanza_ref(st),
                       .from = mk_stanza_from(st),
                       .to = to};
    MkResult r = dh ? mk_hooks_run_list(dh->unheld, &call)
                    : mk_hooks_run(srv->modules, MK_HOOK_ROUTE_UNHELD, &call);
    if (r == MK_ERROR && call.has_error)
        mk_router_bounce(st, call.error, call.error_text);
    mk_hook_call_clear(&call);
    return r != MK_PASS;
}

static void route_to_account(MkServer *srv, MkStanza *st, MkSession *sender, gboolean hooks,
                             gboolean unheld, MkRouteSink *sink)
{
    MkJid *to = mk_stanza_to(st);
    const char *type = mk_stanza_type(st);
    MkStanzaKind kind = mk_stanza_kind(st);

    /* A fan-out's copies share their domain's lookups (modules.h). */
    MkDomainHooks *dh = sink && sink->hooks
                            ? mk_domain_hooks_for(sink->hooks, srv->modules, mk_jid_domain(to))
                            : NULL;

    if (hooks && unheld && route_unheld(srv, st, to, dh))
        return;

    /* Subscription-related presence and probes always concern the bare
     * JID (RFC 6121 3.1.3, 4.3), as does any presence to the bare JID. */
    gboolean presence_to_account =
        kind == MK_STANZA_PRESENCE &&
        (mk_jid_is_bare(to) || is_subscription_type(type) || g_strcmp0(type, "probe") == 0);

    /* A handler may replace the stanza (mod_mam tags it with its archive
     * ID): what follows delivers the replacement. */
    g_autoptr(MkStanza) replaced = NULL;
    {
        MkHookCall call = {.domain = mk_jid_domain(to),
                           .stanza = mk_stanza_ref(st),
                           .from = mk_stanza_from(st),
                           .to = to};
        MkResult r = dh ? mk_hooks_run_list(dh->filter, &call)
                        : mk_hooks_run(srv->modules, MK_HOOK_FILTER_LOCAL_PACKET, &call);
        if (r == MK_ERROR && call.has_error)
            mk_router_bounce(st, call.error, call.error_text);
        if (r == MK_PASS && call.stanza && call.stanza != st)
            st = replaced = mk_stanza_ref(call.stanza);
        mk_hook_call_clear(&call);
        if (r != MK_PASS)
            return;
    }

    if (presence_to_account && hooks) {
        MkHookCall call = {.domain = mk_jid_domain(to),
                           .stanza = mk_stanza_ref(st),
                           .from = mk_stanza_from(st),
                           .to = to};
        MkResult r = mk_hooks_run(srv->modules, MK_HOOK_PRESENCE_IN, &call);
        if (r == MK_ERROR && call.has_error)
            mk_router_bounce(st, call.error, call.error_text);
        mk_hook_call_clear(&call);
        if (r != MK_PASS)
            return;
    }
    if (presence_to_account) {
        route_presence_bare(srv, st, to);
        return;
    }

    if (!mk_jid_is_bare(to)) {
        g_autoptr(MkSession) s = mk_sm_find(srv->sm, to);
        if (s) {
            mk_metrics_routed(MK_ROUTED_DELIVERED);
            deliver(sink, s, st);
            return;
        }
        /* No such resource (RFC 6121 8.5.3.2). */
        switch (kind) {
        case MK_STANZA_MESSAGE:
            if (g_strcmp0(type, "groupchat") == 0)
                mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
            else
                route_message_bare(srv, st, to, sink);
            return;
        case MK_STANZA_IQ:
            if (g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0)
                mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
            return;
        default:
            return; /* presence to a gone resource: silently dropped */
        }
    }

    switch (kind) {
    case MK_STANZA_MESSAGE:
        route_message_bare(srv, st, to, sink);
        return;
    case MK_STANZA_IQ:
        /* The server answers IQs to a bare JID on the account's behalf,
         * and takes the responses to requests it sent as the account
         * (XEP-0357 publishes from the user's bare JID). */
        if (g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0)
            mk_iq_dispatch(srv->modules, mk_jid_domain(to), MK_IQ_SCOPE_ACCOUNT, st, sender);
        else
            mk_iq_take_response(srv->modules, st);
        return;
    default:
        return;
    }
}

static void route_to_server(MkServer *srv, MkStanza *st, MkSession *sender)
{
    const char *type = mk_stanza_type(st);
    if (mk_stanza_kind(st) != MK_STANZA_IQ)
        return; /* messages and presence to the server itself go nowhere */
    if (g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0)
        mk_iq_dispatch(srv->modules, mk_jid_domain(mk_stanza_to(st)), MK_IQ_SCOPE_SERVER, st,
                       sender);
    else
        mk_iq_take_response(srv->modules, st);
}

void mk_router_route(MkStanza *st, MkSession *sender)
{
    mk_router_route_to(st, sender, NULL);
}

void mk_router_route_to(MkStanza *st, MkSession *sender, MkRouteSink *sink)
{
    MkServer *srv = mk_server_get();
    MkJid *to = mk_stanza_to(st);
    g_return_if_fail(srv && st);

    if (!to) {
        g_debug("dropping a stanza without 'to' routed by the server");
        return;
    }
    const char *domain = mk_jid_domain(to);
    gboolean served = sink && sink->hooks
                          ? mk_domain_hooks_for(sink->hooks, srv->modules, domain)->served
                          : mk_hosts_lookup(srv->hosts, domain) != NULL;
    if (served) {
        if (mk_jid_node(to))
            route_to_account(srv, st, sender, TRUE, TRUE, sink);
        else
            route_to_server(srv, st, sender);
        return;
    }
    if (mk_routes_dispatch(srv->modules, domain, st))
        return;
    /* No s2s yet: every other domain is unreachable. */
    mk_router_bounce(st, MK_ERR_REMOTE_SERVER_NOT_FOUND, NULL);
}

void mk_router_to_account(MkStanza *st, MkSession *sender)
{
    MkServer *srv = mk_server_get();
    MkJid *to = mk_stanza_to(st);
    g_return_if_fail(srv && st);
    if (!to || !mk_jid_node(to) || !mk_hosts_lookup(srv->hosts, mk_jid_domain(to))) {
        mk_router_route(st, sender);
        return;
    }
    route_to_account(srv, st, sender, FALSE, FALSE, NULL);
}

/* Public API (mk-router.h). */

void mk_router_send(MkStanza *stanza)
{
    mk_router_route(stanza, NULL);
}

void mk_router_send_to_account(MkStanza *stanza)
{
    mk_router_to_account(stanza, NULL);
}

void mk_router_send_here(MkStanza *stanza)
{
    MkServer *srv = mk_server_get();
    MkJid *to = mk_stanza_to(stanza);
    g_return_if_fail(srv && stanza);
    if (to && mk_jid_node(to) && mk_hosts_lookup(srv->hosts, mk_jid_domain(to)))
        route_to_account(srv, stanza, NULL, TRUE, FALSE, NULL);
    else
        mk_router_route(stanza, NULL);
}

void mk_router_message_rechecked(MkStanza *st)
{
    MkServer *srv = mk_server_get();
    MkJid *to = mk_stanza_to(st);
    g_autoptr(MkSession) s = mk_jid_is_bare(to) ? NULL : mk_sm_find(srv->sm, to);
    rechecked = TRUE;
    if (s) {
        mk_metrics_routed(MK_ROUTED_DELIVERED);
        mk_session_send(s, st);
    } else {
        route_message_bare(srv, st, to, NULL);
    }
    rechecked = FALSE;
}

void mk_router_session_gone(MkStanza *st)
{
    MkServer *srv = mk_server_get();
    MkJid *to = mk_stanza_to(st);
    const char *type = mk_stanza_type(st);
    switch (mk_stanza_kind(st)) {
    case MK_STANZA_MESSAGE:
        if (g_strcmp0(type, "error") != 0 && g_strcmp0(type, "groupchat") != 0)
            route_offline(srv, st, to, g_strcmp0(type, "headline") == 0);
        return;
    case MK_STANZA_IQ:
        if (g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0)
            mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return;
    default:
        return;
    }
}
