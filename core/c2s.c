/* Client-to-server streams. See c2s.h.
 *
 * States: a stream header is awaited, then features are offered; STARTTLS
 * and SASL each restart the stream; after SASL the client binds a
 * resource and becomes a session. STARTTLS and SASL are in c2s-sasl.c,
 * IQs before authentication in c2s-preauth.c, XEP-0198 in c2s-sm.c. */
#include "c2s.h"
#include "c2s-priv.h"
#include "fanout.h"
#include "c2s-sm.h"
#include "cluster.h"
#include "conn.h"
#include "hosts.h"
#include "log.h"
#include "metrics.h"
#include "modules.h"
#include "router.h"
#include "preload.h"
#include "sasl.h"
#include "server.h"
#include "sm.h"
#include "tls.h"
#include "xmlstream.h"
#include <gnutls/crypto.h>
#include <unistd.h>

/* How often each worker sweeps its streams for idle timeouts and for
 * parsers to release; and after how long an idle stream drops its parser. */
#define SWEEP_INTERVAL_S 2
#define PARSER_IDLE_US   (2 * G_USEC_PER_SEC)

static void c2s_free(MkC2s *c);
static const MkSessionTransport c2s_transport;
static void transport_deliver(MkSession *s, MkStanza *st);
static void c2s_end_session(MkC2s *c);

MkC2s *c2s_ref(MkC2s *c)
{
    c->ref++; /* owner worker only */
    return c;
}

void c2s_unref(MkC2s *c)
{
    if (--c->ref == 0)
        c2s_free(c);
}

void c2s_write(MkC2s *c, const char *data)
{
    if (c->conn && c->state != C2S_CLOSING)
        mk_conn_write(c->conn, data, strlen(data));
}

/* @chosen_us: see c2s_sm_write. */
static void write_xml(MkC2s *c, MkXml *xml, gint64 chosen_us)
{
    if (c->state == C2S_CLOSING)
        return;
    mk_metrics_stanza(TRUE, mk_metrics_kind_of(mk_xml_name(xml)));
    if (G_UNLIKELY(c->sm)) {
        c2s_sm_write(c, xml, chosen_us); /* also while detached: queued for a resume */
        return;
    }
    if (!c->conn)
        return;
    GString *out = g_string_sized_new(256);
    mk_xml_write(xml, NS_CLIENT, out);
    mk_conn_write(c->conn, out->str, out->len);
    g_string_free(out, TRUE);
}

void c2s_write_xml(MkC2s *c, MkXml *xml)
{
    write_xml(c, xml, 0);
}

/* ---- stream header, features, errors ---------------------------------- */

/* Sent at every stream (re)start: built by concatenation, which costs a
 * fraction of a printf. */
static void send_header(MkC2s *c)
{
    g_autofree char *hdr = g_strconcat("<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
                                       "' xmlns:stream='" NS_STREAM "' id='",
                                       c->stream_id, "' from='", c->domain ? c->domain : "",
                                       "' version='1.0' xml:lang='en'>", NULL);
    c2s_write(c, hdr);
    c->header_sent = TRUE;
}

static void new_stream_id(MkC2s *c)
{
    guint8 rnd[12];
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    g_free(c->stream_id);
    c->stream_id = g_base64_encode(rnd, sizeof rnd);
    /* base64 may contain '/' and '+', both fine in an attribute. */
}

/* Sends a stream error and closes (RFC 6120 4.9). When no header was
 * sent yet, one is sent first as the RFC requires. */
void c2s_close(MkC2s *c, const char *stream_error)
{
    if (c->state == C2S_CLOSING)
        return;
    if (!c->conn) {
        /* A detached XEP-0198 session (expired, replaced, shut down):
         * nothing to write to and no on_closed to wait for. */
        c->state = C2S_CLOSING;
        c2s_end_session(c);
        c2s_stream_remove(c);
        return;
    }
    if (stream_error) {
        if (!c->header_sent) {
            if (!c->stream_id)
                new_stream_id(c);
            send_header(c);
        }
        g_autofree char *err = g_strdup_printf(
            "<stream:error><%s xmlns='" NS_STREAMS_ERR "'/></stream:error>", stream_error);
        c2s_write(c, err);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "closing stream: %s", stream_error);
    }
    if (G_UNLIKELY(c->sm))
        c2s_sm_before_close(c);
    c2s_write(c, "</stream:stream>");
    c->state = C2S_CLOSING;
    mk_conn_close(c->conn);
    /* The session leaves at once so that nothing more is routed here; the
     * connection itself goes when on_closed arrives. */
    c2s_end_session(c);
}

/* Plain appends rather than printf-family calls: this runs at every
 * stream start of every login. */
static void send_features(MkC2s *c)
{
    GString *f = g_string_sized_new(512);
    g_string_append(f, "<stream:features>");
    gboolean tls = mk_conn_is_tls(c->conn);
    MkTlsMode mode = c->listen->lc.tls;

    if (!c->username) {
        gboolean offer_tls = !tls && c->listen->creds && mode != MK_TLS_NONE;
        if (offer_tls)
            g_string_append(f, mode == MK_TLS_REQUIRED
                                   ? "<starttls xmlns='" NS_TLS "'><required/></starttls>"
                                   : "<starttls xmlns='" NS_TLS "'></starttls>");
        if (tls || mode != MK_TLS_REQUIRED) {
            MkConfigData *cfg = c->cs->srv->config;
            gboolean any_plus = FALSE;
            g_string_append(f, "<mechanisms xmlns='" NS_SASL "'>");
            for (char **m = cfg->mechanisms; m && *m; m++) {
                /* ANONYMOUS is offered per host below, once. */
                if (g_str_equal(*m, "ANONYMOUS") || !c2s_mech_allowed(c, *m))
                    continue;
                g_string_append(f, "<mechanism>");
                g_string_append(f, *m);
                g_string_append(f, "</mechanism>");
                any_plus |= g_str_has_suffix(*m, "-PLUS");
            }
            if (c2s_mech_allowed(c, "ANONYMOUS"))
                g_string_append(f, "<mechanism>ANONYMOUS</mechanism>");
            g_string_append(f, "</mechanisms>");
            /* XEP-0440: which channel-binding types we can check. */
            if (any_plus)
                g_string_append_printf(f,
                                       "<sasl-channel-binding xmlns='" NS_SASL_CB "'>"
                                       "<channel-binding type='%s'/></sasl-channel-binding>",
                                       mk_conn_channel_binding_type(c->conn));
            const char *extra = mk_stream_features_for(c->domain, MK_STREAM_PRE_AUTH);
            if (extra)
                g_string_append(f, extra);
        }
    } else {
        g_string_append(f, "<bind xmlns='" NS_BIND "'/>"
                           "<session xmlns='" NS_SESSION "'><optional/></session>");
        const char *extra = mk_stream_features_for(c->domain, MK_STREAM_POST_AUTH);
        if (extra)
            g_string_append(f, extra);
    }
    g_string_append(f, "</stream:features>");
    mk_conn_write(c->conn, f->str, f->len);
    g_string_free(f, TRUE);
}

/* ---- stream callbacks ------------------------------------------------- */

static void on_stream_start(gpointer user_data, MkXml *header)
{
    MkC2s *c = user_data;
    MkServer *srv = c->cs->srv;
    const char *to = mk_xml_get_attr(header, "to");
    const char *version = mk_xml_get_attr(header, "version");

    if (c->state != C2S_WAIT_STREAM) {
        c2s_close(c, "not-well-formed");
        return;
    }
    new_stream_id(c);
    if (!mk_xml_is(header, "stream", NS_STREAM)) {
        c2s_close(c, "invalid-namespace");
        return;
    }
    /* The default namespace must be jabber:client (RFC 6120 4.8.5). */
    const char *default_ns = mk_xml_get_attr(header, "xmlns");
    if (default_ns && !g_str_equal(default_ns, NS_CLIENT)) {
        c2s_close(c, "invalid-namespace");
        return;
    }
    g_autoptr(MkJid) to_jid = NULL;
    const char *domain = NULL;
    if (to && c->domain && g_str_equal(to, c->domain))
        domain = c->domain; /* a restart naming the prepared domain: prepared already */
    else if (to && (to_jid = mk_jid_new(to, NULL)) && !mk_jid_node(to_jid))
        domain = mk_jid_domain(to_jid);
    if (!domain || !mk_hosts_lookup(srv->hosts, domain)) {
        g_free(c->domain);
        c->domain =
            g_strdup(srv->config->host_types->len
                         ? ((MkHostTypeConfig *)srv->config->host_types->pdata[0])->domains[0]
                         : "localhost");
        c2s_close(c, "host-unknown");
        return;
    }
    if (c->domain && !g_str_equal(c->domain, domain)) {
        /* A restarted stream may not switch domains. */
        c2s_close(c, "host-unknown");
        return;
    }
    if (!c->domain) /* a restart keeps the same one (checked above) */
        c->domain = g_strdup(domain);
    send_header(c);
    if (!version || g_ascii_strtod(version, NULL) < 1.0) {
        c2s_close(c, "unsupported-version");
        return;
    }
    c->state = C2S_OPEN;
    send_features(c);
}

static void on_stream_end(gpointer user_data)
{
    MkC2s *c = user_data;
    if (G_UNLIKELY(c->sm) && c2s_sm_stream_end(c))
        return; /* waits for a final <a/> first */
    c2s_close(c, NULL);
}

static void on_stream_error(gpointer user_data, const char *condition, const char *text)
{
    MkC2s *c = user_data;
    C2S_LOG(c, G_LOG_LEVEL_INFO, "bad XML (%s): %s", condition, text ? text : "");
    c2s_close(c, condition);
}

/* ---- binding ---------------------------------------------------------- */

static void send_iq_error(MkC2s *c, MkXml *iq, MkStanzaError cond)
{
    g_autoptr(MkStanza) st = mk_stanza_new(iq, NULL);
    g_autoptr(MkStanza) err = st ? mk_stanza_new_error_reply(st, cond, NULL) : NULL;
    if (err)
        c2s_write_xml(c, mk_stanza_xml(err));
}

static void send_iq_result(MkC2s *c, MkXml *iq, MkXml *payload)
{
    g_autoptr(MkXml) res = mk_xml_new("iq", NS_CLIENT);
    mk_xml_set_attr(res, "type", "result");
    if (mk_xml_get_attr(iq, "id"))
        mk_xml_set_attr(res, "id", mk_xml_get_attr(iq, "id"));
    if (payload)
        mk_xml_append(res, payload);
    c2s_write_xml(c, res);
}

/* The bind's result, and the session is open for the modules. */
static void bind_answer(MkC2s *c, MkXml *iq)
{
    MkServer *srv = c->cs->srv;
    MkJid *jid = mk_session_jid(c->session);
    g_autoptr(MkXml) reply = mk_xml_new("bind", NS_BIND);
    MkXml *jel = mk_xml_add_child(reply, "jid", NS_BIND);
    mk_xml_add_text(jel, mk_jid_string(jid), -1);
    send_iq_result(c, iq, g_steal_pointer(&reply));
    C2S_LOG(c, G_LOG_LEVEL_INFO, "session bound");
    c->sessions_gauge = mk_metrics_sessions(mk_hosts_lookup(srv->hosts, c->domain));
    mk_metric_add(c->sessions_gauge, 1);

    MkHookCall call = {.domain = c->domain, .session = c->session, .from = jid};
    mk_hooks_run(srv->modules, MK_HOOK_SESSION_OPENED, &call);
    mk_hook_call_clear(&call);
}

typedef struct {
    MkC2s *c;
    MkXml *iq;
} BindWait;

static void bind_wait_free(gpointer data)
{
    BindWait *b = data;
    c2s_unref(b->c);
    mk_xml_unref(b->iq);
    g_free(b);
}

/* On the stream's worker: Redis has the new session's record (or is
 * away, or did not answer in time): answer, then read on. */
static void bind_written(gpointer data)
{
    BindWait *b = data;
    MkC2s *c = b->c;
    c->bind_busy = FALSE;
    if (c->state != C2S_CLOSING && c->session) {
        g_autoptr(GBytes) rest = mk_xml_stream_take_rest(c->xs);
        mk_conn_pause(c->conn, FALSE);
        bind_answer(c, b->iq);
        MkStanza *st;
        while ((st = g_queue_pop_head(&c->bind_held))) {
            transport_deliver(c->session, st);
            mk_stanza_unref(st);
        }
        gsize len = 0;
        const char *bytes = rest ? g_bytes_get_data(rest, &len) : NULL;
        if (len && c->state != C2S_CLOSING)
            c2s_feed(c, bytes, len);
    }
    g_queue_clear_full(&c->bind_held, (GDestroyNotify)mk_stanza_unref);
    bind_wait_free(b);
}

static void handle_bind(MkC2s *c, MkXml *iq, MkXml *bind)
{
    MkServer *srv = c->cs->srv;
    g_autofree char *wanted = mk_xml_child_text(bind, "resource", NS_BIND);
    g_autofree char *resource = NULL;
    g_autoptr(GError) error = NULL;

    if (c->session) {
        send_iq_error(c, iq, MK_ERR_NOT_ALLOWED);
        return;
    }
    guint resources = 0;
    for (guint i = 0; i < mk_xml_child_count(bind); i++) {
        MkXml *ch = mk_xml_child_at(bind, i);
        if (!mk_xml_is_text(ch) && mk_xml_is(ch, "resource", NS_BIND))
            resources++;
    }
    if (resources > 1) {
        /* RFC 6120 7.7.2.1: one resource, or none for the server to pick. */
        send_iq_error(c, iq, MK_ERR_BAD_REQUEST);
        return;
    }
    if (wanted)
        g_strstrip(wanted);
    if (wanted && *wanted) {
        resource = g_steal_pointer(&wanted);
    } else {
        /* Server-generated resource (RFC 6120 7.6.2.1). */
        guint8 rnd[9];
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
        g_autofree char *b64 = g_base64_encode(rnd, sizeof rnd);
        resource = g_strdup_printf("mk-%s", b64);
        g_strdelimit(resource, "+/=", 'x');
    }
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(c->username, c->domain, resource, &error);
    if (!jid) {
        send_iq_error(c, iq, MK_ERR_BAD_REQUEST);
        return;
    }
    c->session = mk_session_new(jid, c->worker, &c2s_transport, c);
    mk_session_set_preloads(c->session, g_steal_pointer(&c->preloads));
    c->session->last_input_us = c->last_input_us;
    g_autoptr(MkSession) old = NULL;
    MkConfigData *cfg = g_atomic_pointer_get(&srv->config);
    if (!mk_sm_register_limited(srv->sm, c->session, cfg->max_sessions_per_account, &old)) {
        /* RFC 6120 7.6.2.1: the account reached its limit of connected
         * resources. The stream stays; the client may close another. */
        g_clear_pointer(&c->session, mk_session_unref);
        mk_counter_add(c->cs->bind_refused, 1);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "bind refused: %u sessions already",
                cfg->max_sessions_per_account);
        send_iq_error(c, iq, MK_ERR_RESOURCE_CONSTRAINT);
        return;
    }
    if (old) {
        /* A second bind of the same full JID replaces the older session
         * (RFC 6120 7.7.2.2, policy: "override"). */
        mk_session_close(old, "conflict");
    }
    MkCluster *cl = mk_sm_get_cluster(srv->sm);
    if (G_UNLIKELY(cl)) {
        /* The answer waits until Redis has the session's record, so that
         * whatever the client does next is routable from every node
         * (docs/clustering.md, A new session). Input waits with it. */
        c->bind_busy = TRUE;
        if (mk_xml_stream_has_more_input(c->xs))
            mk_xml_stream_hand_over(c->xs);
        mk_conn_pause(c->conn, TRUE);
        BindWait *b = g_new0(BindWait, 1);
        b->c = c2s_ref(c);
        b->iq = mk_xml_ref(iq);
        mk_cluster_when_written(cl, c->worker, bind_written, b, bind_wait_free);
        return;
    }
    bind_answer(c, iq);
}

/* ---- presence --------------------------------------------------------- */

/* The priority of @presence in *@prio (0 without one). FALSE when its
 * <priority/> children are not as RFC 6121 4.7.2.3 requires: at most one,
 * an integer from -128 to 127. */
static gboolean parse_priority(MkXml *presence, int *prio)
{
    guint seen = 0;
    *prio = 0;
    for (guint i = 0; i < mk_xml_child_count(presence); i++) {
        MkXml *ch = mk_xml_child_at(presence, i);
        if (mk_xml_is_text(ch) || !g_str_equal(mk_xml_name(ch), "priority"))
            continue;
        g_autofree char *text = mk_xml_text(ch);
        char *end = NULL;
        long long v = strtoll(text, &end, 10); /* skips leading blanks */
        while (end != text && g_ascii_isspace(*end))
            end++;
        if (++seen > 1 || end == text || *end || v < -128 || v > 127)
            return FALSE;
        *prio = (int)v;
    }
    return TRUE;
}

static void send_directed_unavailable(MkSession *s)
{
    if (!s->directed || g_hash_table_size(s->directed) == 0)
        return;
    g_autoptr(MkXml) xml = mk_xml_new("presence", NS_CLIENT);
    mk_xml_set_attr(xml, "type", "unavailable");
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, s->directed);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, s->jid, v);
        mk_router_route(st, NULL);
    }
    g_hash_table_remove_all(s->directed);
}

/* Broadcast presence (no 'to', RFC 6121 4.2 and 4.5): record it, let
 * modules tell the subscribers, and show it to the user's own resources. */
static void presence_broadcast(MkServer *srv, MkSession *s, const char *domain, MkStanza *st,
                               int priority)
{
    const char *type = mk_stanza_type(st);
    gboolean available = type == NULL;

    if (type && !g_str_equal(type, "unavailable"))
        return; /* e.g. a probe or subscription type without 'to': meaningless */
    if (!available && !s->available)
        return;

    mk_sm_set_presence(srv->sm, s, st, available, priority);

    MkHookCall call = {.domain = domain, .session = s, .stanza = mk_stanza_ref(st), .from = s->jid};
    mk_hooks_run(srv->modules, MK_HOOK_PRESENCE_BROADCAST, &call);
    mk_hook_call_clear(&call);

    g_autoptr(MkJid) bare = mk_jid_bare(s->jid);
    g_autoptr(GPtrArray) own = mk_sm_sessions(srv->sm, bare);
    for (guint i = 0; i < own->len; i++) {
        MkSession *o = g_ptr_array_index(own, i);
        if (!mk_session_is_available(o) && o != s)
            continue;
        g_autoptr(MkStanza) copy = mk_stanza_new_addressed(mk_stanza_xml(st), s->jid, o->jid);
        mk_session_send(o, copy);
    }
    if (!available)
        send_directed_unavailable(s);
}

static void track_directed(MkC2s *c, MkStanza *st)
{
    MkSession *s = c->session;
    const char *type = mk_stanza_type(st);
    MkJid *to = mk_stanza_to(st);
    if (type && !g_str_equal(type, "unavailable"))
        return;
    if (!s->directed)
        s->directed =
            g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)mk_jid_unref);
    if (type)
        g_hash_table_remove(s->directed, mk_jid_string(to));
    else
        g_hash_table_replace(s->directed, (gpointer)mk_jid_string(to), mk_jid_ref(to));
}

/* ---- stanzas from the client ------------------------------------------ */

static gboolean known_message_type(const char *type)
{
    switch (type[0]) { /* one comparison on every message */
    case 'c':
        return strcmp(type, "chat") == 0;
    case 'n':
        return strcmp(type, "normal") == 0;
    case 'g':
        return strcmp(type, "groupchat") == 0;
    case 'h':
        return strcmp(type, "headline") == 0;
    case 'e':
        return strcmp(type, "error") == 0;
    default:
        return FALSE;
    }
}

/* What the RFCs require of a client's stanza beyond well-formed XML.
 * Returns the text of the bad-request to answer, or NULL; a presence's
 * priority goes to *@prio. A message of a type nobody defined is normal
 * (RFC 6121 5.2.2): its 'type' goes, so that the recipient sees what the
 * server routed. Stream worker. */
static const char *check_stanza(MkXml *el, MkStanzaKind kind, int *prio)
{
    if (kind == MK_STANZA_MESSAGE) {
        const char *type = mk_xml_get_attr(el, "type");
        if (type && !known_message_type(type))
            mk_xml_set_attr(el, "type", NULL);
    } else if (kind == MK_STANZA_PRESENCE && !parse_priority(el, prio)) {
        return "a presence carries at most one priority, an integer from -128 to 127";
    } else if (kind == MK_STANZA_IQ && !mk_xml_get_attr(el, "id")) {
        /* RFC 6120 8.1.3: no answer could be matched without one. */
        return "an IQ needs an 'id'";
    }
    return NULL;
}

static void handle_stanza(MkC2s *c, MkXml *el)
{
    MkServer *srv = c->cs->srv;
    MkSession *s = c->session;
    const char *name = mk_xml_name(el);
    const char *to_attr = mk_xml_get_attr(el, "to");
    g_autoptr(MkJid) to = NULL;
    MkStanzaKind kind;

    if (g_str_equal(name, "message"))
        kind = MK_STANZA_MESSAGE;
    else if (g_str_equal(name, "presence"))
        kind = MK_STANZA_PRESENCE;
    else if (g_str_equal(name, "iq"))
        kind = MK_STANZA_IQ;
    else {
        c2s_close(c, "unsupported-stanza-type");
        return;
    }
    if (g_strcmp0(mk_xml_ns(el), NS_CLIENT) != 0) {
        c2s_close(c, "invalid-namespace");
        return;
    }
    mk_metrics_stanza(FALSE, kind);
    if (to_attr) {
        to = mk_jid_new(to_attr, NULL);
        if (!to) {
            /* Answer from the server: the bad 'to' cannot be a 'from'. */
            g_autoptr(MkXml) copy = mk_xml_copy(el);
            mk_xml_set_attr(copy, "to", c->domain);
            mk_xml_set_attr(copy, "from", NULL);
            g_autoptr(MkStanza) st = mk_stanza_new(copy, NULL);
            g_autoptr(MkStanza) err =
                st ? mk_stanza_new_error_reply(st, MK_ERR_JID_MALFORMED, NULL) : NULL;
            if (err) {
                g_autoptr(MkStanza) out = mk_stanza_new_addressed(mk_stanza_xml(err), NULL, s->jid);
                c2s_write_xml(c, mk_stanza_xml(out));
            }
            return;
        }
    } else if (kind == MK_STANZA_MESSAGE) {
        /* A message without 'to' is for the user's own bare JID (RFC 6120
         * 10.3.1). */
        to = mk_jid_bare(s->jid);
    }
    int prio = 0;
    const char *bad = check_stanza(el, kind, &prio);
    /* The server stamps the sender's full JID: a client cannot spoof. */
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(el, s->jid, to);
    if (G_UNLIKELY(bad)) {
        mk_router_bounce(st, MK_ERR_BAD_REQUEST, bad);
        return;
    }

    MkHookCall call = {
        .domain = c->domain, .session = s, .stanza = mk_stanza_ref(st), .from = s->jid, .to = to};
    MkResult r = mk_hooks_run(srv->modules, MK_HOOK_USER_SEND_PACKET, &call);
    if (call.stanza != st) {
        mk_stanza_unref(st);
        st = mk_stanza_ref(call.stanza);
        if (kind == MK_STANZA_PRESENCE && !parse_priority(mk_stanza_xml(st), &prio))
            prio = 0; /* a module's own presence */
    }
    if (r == MK_ERROR && call.has_error)
        mk_router_bounce(st, call.error, call.error_text);
    mk_hook_call_clear(&call);
    if (r != MK_PASS)
        return;
    if (G_UNLIKELY(c->sm))
        c2s_sm_tag(c, st); /* a module may hold its acknowledgement */

    switch (kind) {
    case MK_STANZA_PRESENCE:
        if (!to) {
            presence_broadcast(srv, s, c->domain, st, prio);
            return;
        }
        track_directed(c, st);
        mk_router_route(st, s);
        return;
    case MK_STANZA_IQ: {
        const char *type = mk_stanza_type(st);
        gboolean request = g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0;
        if (!type || (!request && g_strcmp0(type, "result") && g_strcmp0(type, "error"))) {
            mk_router_bounce(st, MK_ERR_BAD_REQUEST, NULL);
            return;
        }
        if (!to || (mk_jid_is_bare(to) && mk_jid_bare_equal(to, s->jid))) {
            /* To the account itself: the server answers on its behalf. */
            if (request)
                mk_iq_dispatch(srv->modules, c->domain, MK_IQ_SCOPE_ACCOUNT, st, s);
            return;
        }
        mk_router_route(st, s);
        return;
    }
    default:
        mk_router_route(st, s);
        return;
    }
}

static void on_element(gpointer user_data, MkXml *el)
{
    MkC2s *c = user_data;
    g_autoptr(MkXml) owned = el;
    const char *ns = mk_xml_ns(el);

    if (c->state != C2S_OPEN)
        return;
    if (c->sasl_busy || c->bind_busy) {
        /* Input is paused during a SASL step; anything already parsed
         * from the same read is pipelining we do not allow. */
        c2s_close(c, "policy-violation");
        return;
    }
    if (!c->username) {
        if (mk_xml_is(el, "starttls", NS_TLS))
            c2s_starttls(c);
        else if (g_strcmp0(ns, NS_SASL) == 0)
            c2s_sasl_element(c, el);
        else if (!mk_conn_is_tls(c->conn) && c->listen->lc.tls == MK_TLS_REQUIRED &&
                 c->listen->creds)
            c2s_close(c, "policy-violation");
        else if (mk_xml_is(el, "iq", NS_CLIENT) && c2s_preauth_iq_dispatch(c, el))
            mk_metrics_stanza(FALSE, MK_STANZA_IQ); /* a module's (in-band registration) */
        else
            c2s_close(c, "not-authorized");
        return;
    }
    /* XEP-0198 (<enable/>, <resume/> before bind, <r/>, <a/>), when a
     * module switched it on for this domain. */
    if (G_UNLIKELY(g_strcmp0(ns, NS_SM) == 0) && c2s_sm_element(c, el))
        return;
    if (!c->session) {
        MkXml *bind =
            mk_xml_is(el, "iq", NS_CLIENT) && g_strcmp0(mk_xml_get_attr(el, "type"), "set") == 0
                ? mk_xml_child(el, "bind", NS_BIND)
                : NULL;
        if (mk_xml_is(el, "iq", NS_CLIENT))
            mk_metrics_stanza(FALSE, MK_STANZA_IQ);
        if (bind)
            handle_bind(c, el, bind);
        else if (mk_xml_is(el, "iq", NS_CLIENT))
            send_iq_error(c, el, MK_ERR_NOT_AUTHORIZED);
        else
            c2s_close(c, "not-authorized");
        return;
    }
    if (G_UNLIKELY(c->sm))
        c2s_sm_received(c, el); /* h counts what the core answers itself too */
    /* The legacy session IQ (RFC 3921) is a no-op that clients still send. */
    if (mk_xml_is(el, "iq", NS_CLIENT) && mk_xml_child(el, "session", NS_SESSION) &&
        !mk_xml_get_attr(el, "to")) {
        mk_metrics_stanza(FALSE, MK_STANZA_IQ);
        send_iq_result(c, el, NULL);
        return;
    }
    if (mk_xml_is(el, "iq", NS_CLIENT) && mk_xml_child(el, "bind", NS_BIND)) {
        mk_metrics_stanza(FALSE, MK_STANZA_IQ);
        send_iq_error(c, el, MK_ERR_NOT_ALLOWED);
        return;
    }
    /* Stream-level elements of modules (XEP-0198, XEP-0352, ...). */
    if (g_strcmp0(ns, NS_CLIENT) != 0 && mk_stream_element_dispatch(c->session, el) == MK_HANDLED)
        return;
    handle_stanza(c, el);
}

static const MkXmlStreamCallbacks stream_callbacks = {
    .stream_start = on_stream_start,
    .stanza = on_element,
    .stream_end = on_stream_end,
    .error = on_stream_error,
};

/* ---- connection callbacks --------------------------------------------- */

void c2s_feed(MkC2s *c, const char *data, gsize len)
{
    if (c->state == C2S_CLOSING || c->state == C2S_TLS)
        return;
    c->last_input_us = g_get_monotonic_time();
    if (c->session)
        c->session->last_input_us = c->last_input_us;
    if (G_UNLIKELY(c->sm) && c2s_sm_feed_closing(c, data, len))
        return;
    c2s_ref(c);
    mk_xml_stream_feed(c->xs, data, len);
    if (c->restart) {
        c->restart = FALSE;
        mk_xml_stream_reset(c->xs);
    }
    if (G_UNLIKELY(c->sm))
        c2s_sm_flush_ask(c);
    c2s_unref(c);
}

static void on_data(gpointer user_data, const char *data, gsize len)
{
    c2s_feed(user_data, data, len);
}

static void on_tls_done(gpointer user_data, gboolean ok)
{
    MkC2s *c = user_data;
    c->tls_started_us = 0;
    if (!ok) {
        C2S_LOG(c, G_LOG_LEVEL_INFO, "TLS handshake failed");
        c->state = C2S_CLOSING;
        return; /* the conn closes itself; on_closed follows */
    }
    if (c->state == C2S_TLS) {
        mk_xml_stream_reset(c->xs);
        c->state = C2S_WAIT_STREAM;
        c->header_sent = FALSE;
    }
}

static void on_closed(gpointer user_data)
{
    MkC2s *c = user_data;
    mk_metric_add(c->listen->connections, -1);
    /* A resumable XEP-0198 session outlives its connection. */
    if (c->state != C2S_CLOSING && c2s_sm_detach(c))
        return;
    c->state = C2S_CLOSING;
    c2s_end_session(c);
    g_queue_unlink(&c->cw->streams, &c->link);
    mk_conn_free(c->conn);
    c->conn = NULL;
    c2s_unref(c);
}

static const MkConnCallbacks conn_callbacks = {
    .on_data = on_data,
    .on_tls_done = on_tls_done,
    .on_closed = on_closed,
};

/* The session leaves: unavailable to everyone who saw it available, out
 * of the table, modules told. */
static void c2s_end_session(MkC2s *c)
{
    MkSession *s = c->session;
    MkServer *srv = c->cs->srv;
    if (!s)
        return;
    c->session = NULL;

    if (G_UNLIKELY(c->sm && c2s_sm_handed_over(c))) {
        /* Ending (this node stops) while another node takes the session
         * over: that node resends the queue and keeps the presence, so
         * this end is as quiet as after its word (routing the queue
         * again here delivered it twice). */
        mk_log_conn(G_LOG_LEVEL_INFO, "detached", mk_jid_string(s->jid),
                    "ends while it moves to another node: its queue went there");
        c->moved = TRUE;
        c2s_sm_free(c);
    }
    if (G_UNLIKELY(c->moved)) {
        /* Resumed on another node, which has its presence and directed
         * presence now: its contacts see no unavailable. */
    } else if (s->available) {
        g_autoptr(MkXml) xml = mk_xml_new("presence", NS_CLIENT);
        mk_xml_set_attr(xml, "type", "unavailable");
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, s->jid, NULL);
        presence_broadcast(srv, s, c->domain, st, 0);
    } else {
        send_directed_unavailable(s);
    }
    mk_sm_unregister(srv->sm, s);
    mk_metric_add(g_steal_pointer(&c->sessions_gauge), -1);
    /* Unacknowledged stanzas are routed again, now that the session is
     * out of the table (so that nothing comes back to it). */
    if (c->sm)
        c2s_sm_session_ended(c, s);
    s->transport_data = NULL;

    MkHookCall call = {.domain = c->domain, .session = s, .from = s->jid};
    mk_hooks_run(srv->modules, MK_HOOK_SESSION_CLOSED, &call);
    mk_hook_call_clear(&call);

    g_clear_pointer(&s->slots, g_hash_table_destroy);
    g_clear_pointer(&s->directed, g_hash_table_destroy);
    mk_session_set_preloads(s, NULL);
    mk_session_unref(s);
}

static C2sWorker *worker_state(MkC2sServer *cs, MkWorker *w);

void mk_c2s_accept(MkWorker *w, int fd, const struct sockaddr_storage *peer,
                   const MkListenConfig *lc, gpointer user_data)
{
    MkC2sServer *cs = user_data;
    C2sListen *listen = NULL;
    for (guint i = 0; i < cs->listens->len; i++) {
        C2sListen *l = g_ptr_array_index(cs->listens, i);
        if (g_str_equal(l->lc.name, lc->name))
            listen = l;
    }
    if (!listen) {
        close(fd);
        return;
    }
    MkC2s *c = c2s_stream_new(cs, listen, w);
    if (!c2s_limits_accept(c, peer)) {
        close(fd);
        c2s_stream_remove(c);
        return;
    }
    c->conn = mk_conn_new(w, fd, peer, &conn_callbacks, c);
    mk_metric_add(listen->connections, 1);
    if (listen->lc.tls == MK_TLS_DIRECT && listen->creds) {
        c->state = C2S_TLS;
        c->tls_started_us = c->created_us;
        mk_conn_start_tls(c->conn, listen->creds);
    }
}

MkC2s *c2s_stream_new(MkC2sServer *cs, C2sListen *listen, MkWorker *w)
{
    MkC2s *c = g_new0(MkC2s, 1);
    c->ref = 1;
    c->cs = cs;
    c->listen = listen;
    c->worker = w;
    c->cw = worker_state(cs, w);
    c->link.data = c;
    c->last_input_us = g_get_monotonic_time();
    c->created_us = c->last_input_us;
    c->xs = mk_xml_stream_new(&stream_callbacks, c, c->cw->xml, listen->lc.max_stanza_size,
                              listen->lc.max_depth);
    g_queue_push_tail_link(&c->cw->streams, &c->link);
    return c;
}

void c2s_adopt_conn(MkC2s *c, MkConn *conn)
{
    c->conn = conn;
    mk_conn_attach(conn, c->worker, &conn_callbacks, c);
}

void c2s_stream_remove(MkC2s *c)
{
    g_queue_unlink(&c->cw->streams, &c->link);
    c2s_unref(c);
}

static void c2s_free(MkC2s *c)
{
    c2s_limits_leave(c);
    if (c->sm)
        c2s_sm_free(c);
    g_clear_pointer(&c->sasl, mk_sasl_session_free);
    mk_preloads_free(c->preloads);
    if (c->conn)
        mk_conn_free(c->conn);
    mk_xml_stream_free(c->xs);
    g_queue_clear_full(&c->bind_held, (GDestroyNotify)mk_stanza_unref);
    g_free(c->domain);
    g_free(c->stream_id);
    g_free(c->username);
    g_free(c);
}

/* ---- the session transport ------------------------------------------ */

static void deliver_buf_free(gpointer p)
{
    g_string_free(p, TRUE);
}

/* A worker's buffer for fan-out copies (transport_deliver). */
static GPrivate deliver_buf = G_PRIVATE_INIT(deliver_buf_free);

static void transport_deliver(MkSession *s, MkStanza *st)
{
    MkC2s *c = s->transport_data;
    if (G_UNLIKELY(c->bind_busy)) {
        /* Routed here before the bind's answer went out: after it. */
        g_queue_push_tail(&c->bind_held, mk_stanza_ref(st));
        return;
    }
    if (G_UNLIKELY(c->state == C2S_CLOSING)) {
        /* Routed here just before the session left the table (the client
         * closed, or the stream failed): a message is stored offline as if
         * no resource had been there, a request bounces, not dropped. */
        mk_router_session_gone(st);
        return;
    }
    MkWire *wire = mk_stanza_wire(st);
    if (!wire) {
        write_xml(c, mk_stanza_xml(st), mk_stanza_chosen_us(st));
        return;
    }
    /* A fan-out copy: the shared bytes with this copy's 'to'. */
    if (c->state == C2S_CLOSING || (!c->sm && !c->conn))
        return;
    /* Written into the thread's buffer, which mk_conn_write copies from:
     * no allocation per copy. */
    GString *out = g_private_get(&deliver_buf);
    if (G_UNLIKELY(!out)) {
        out = g_string_sized_new(MAX(mk_wire_len(wire) + 128, 1024));
        g_private_set(&deliver_buf, out);
    }
    g_string_truncate(out, 0);
    mk_wire_write(wire, mk_stanza_to(st), out);
    if (G_UNLIKELY(c->sm))
        c2s_sm_write_serialised(c, mk_stanza_xml(st), out, mk_stanza_chosen_us(st));
    else
        mk_conn_write(c->conn, out->str, out->len);
    if (G_UNLIKELY(out->allocated_len > 64 * 1024)) {
        /* One big stanza does not keep its buffer for good. */
        g_private_replace(&deliver_buf, g_string_sized_new(1024));
    }
}

static void transport_close(MkSession *s, const char *stream_error)
{
    c2s_close(s->transport_data, stream_error);
}

static void transport_write_xml(MkSession *s, MkXml *el)
{
    MkC2s *c = s->transport_data;
    /* XEP-0198 may keep the element for a resend: a module's element is
     * not known to stay unchanged, so it keeps a copy. */
    g_autoptr(MkXml) own = G_UNLIKELY(c->sm) ? mk_xml_copy(el) : mk_xml_ref(el);
    c2s_write_xml(c, own);
}

static const MkSessionTransport c2s_transport = {
    .deliver = transport_deliver,
    .close = transport_close,
    .write_xml = transport_write_xml,
};

MkSession *c2s_session_new(MkC2s *c, MkJid *jid)
{
    return mk_session_new(jid, c->worker, &c2s_transport, c);
}

/* ---- per-worker state and the sweep ----------------------------------- */

static gboolean sweep(gpointer user_data)
{
    C2sWorker *cw = user_data;
    gint64 now = g_get_monotonic_time();

    for (GList *l = cw->streams.head; l;) {
        MkC2s *c = l->data;
        l = l->next;
        gint64 idle = now - c->last_input_us;
        guint timeout = c->listen->lc.idle_timeout;
        if (c->state == C2S_CLOSING || c->state == C2S_DETACHED || c->state == C2S_MIGRATING)
            continue;
        if (c2s_limits_sweep(c, now))
            continue;
        if (timeout && idle > (gint64)timeout * G_USEC_PER_SEC) {
            c2s_close(c, "connection-timeout");
            continue;
        }
        /* An idle stream does not need its libxml2 parser (~8 KiB). */
        if (idle > PARSER_IDLE_US && mk_xml_stream_is_idle(c->xs))
            mk_xml_stream_release(c->xs);
    }
    return G_SOURCE_CONTINUE;
}

static C2sWorker *worker_state(MkC2sServer *cs, MkWorker *w)
{
    guint i = mk_worker_index(w);
    if (!cs->workers[i]) {
        C2sWorker *cw = g_new0(C2sWorker, 1);
        cw->xml = mk_xml_shared_new();
        g_queue_init(&cw->streams);
        cw->sweep = g_timeout_source_new_seconds(SWEEP_INTERVAL_S);
        g_source_set_callback(cw->sweep, sweep, cw, NULL);
        g_source_attach(cw->sweep, mk_worker_context(w));
        cs->workers[i] = cw;
    }
    return cs->workers[i];
}

MkC2sServer *mk_c2s_server_new(MkServer *srv, GError **error)
{
    MkC2sServer *cs = g_new0(MkC2sServer, 1);
    cs->srv = srv;
    cs->sasl =
        mk_sasl_new(srv->db, srv->config->scram_iterations, srv->config->password_plain, error);
    if (!cs->sasl) {
        g_free(cs);
        return NULL;
    }
    cs->listens = g_ptr_array_new();
    cs->n_workers = mk_workers_count(srv->workers);
    cs->workers = g_new0(C2sWorker *, cs->n_workers);
    g_mutex_init(&cs->resume_lock);
    cs->resumable = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, c2s_sm_resumable_free);
    c2s_limits_init(cs);
    cs->bind_refused = mk_metrics_core_counter(srv->modules, "c2s.bind_resource_limit");
    return cs;
}

gboolean mk_c2s_server_add_listener(MkC2sServer *cs, const MkListenConfig *lc, GError **error)
{
    C2sListen *l = g_new0(C2sListen, 1);
    l->lc = *lc;
    if (lc->tls != MK_TLS_NONE) {
        l->creds = mk_tls_load(lc->certfile, lc->keyfile, error);
        if (!l->creds) {
            g_free(l);
            return FALSE;
        }
    }
    l->connections = mk_metrics_connections(lc->name, "c2s");
    g_ptr_array_add(cs->listens, l);
    return TRUE;
}

/* Shutdown runs a step on every worker and waits for all of them. */
typedef struct {
    MkC2sServer *cs;
    GFunc step; /* (C2sWorker *nullable, MkC2sServer *) on the worker */
    gint ref;   /* the waiter and each worker: a slow worker may outlive the wait */
    GMutex lock;
    GCond cond;
    gint pending;
} ShutdownCtx;

static void shutdown_ctx_unref(ShutdownCtx *ctx)
{
    if (!g_atomic_int_dec_and_test(&ctx->ref))
        return;
    g_mutex_clear(&ctx->lock);
    g_cond_clear(&ctx->cond);
    g_free(ctx);
}

static void shutdown_job(gpointer data)
{
    ShutdownCtx *ctx = data;
    MkWorker *w = mk_worker_self();
    if (w)
        ctx->step(ctx->cs->workers[mk_worker_index(w)], ctx->cs);
    g_mutex_lock(&ctx->lock);
    ctx->pending--;
    g_cond_signal(&ctx->cond);
    g_mutex_unlock(&ctx->lock);
    shutdown_ctx_unref(ctx);
}

/* Returns whether every worker ran step within the deadline. */
static gboolean on_every_worker(MkC2sServer *cs, GFunc step, gint64 timeout_us)
{
    ShutdownCtx *ctx = g_new0(ShutdownCtx, 1);
    ctx->cs = cs;
    ctx->step = step;
    ctx->pending = (gint)cs->n_workers;
    ctx->ref = (gint)cs->n_workers + 1;
    g_mutex_init(&ctx->lock);
    g_cond_init(&ctx->cond);
    for (guint i = 0; i < cs->n_workers; i++)
        mk_worker_post(mk_workers_get(cs->srv->workers, i), shutdown_job, ctx,
                       (GDestroyNotify)shutdown_ctx_unref);
    g_mutex_lock(&ctx->lock);
    gint64 deadline = g_get_monotonic_time() + timeout_us;
    while (ctx->pending > 0 && g_cond_wait_until(&ctx->cond, &ctx->lock, deadline))
        ;
    gboolean all = ctx->pending == 0;
    g_mutex_unlock(&ctx->lock);
    shutdown_ctx_unref(ctx);
    return all;
}

/* Step 1: every stream ends cleanly with system-shutdown. */
static void close_streams(gpointer data, gpointer user_data)
{
    C2sWorker *cw = data;
    if (!cw)
        return;
    for (GList *l = cw->streams.head; l;) {
        MkC2s *c = l->data;
        l = l->next;
        if (c->state != C2S_CLOSING)
            c2s_close(c, "system-shutdown");
    }
}

/* Step 2: what is left of the streams and the worker's own state goes,
 * on the worker that owns it. */
static void reap_worker(gpointer data, gpointer user_data)
{
    C2sWorker *cw = data;
    MkC2sServer *cs = user_data;
    if (!cw)
        return;
    while (cw->streams.head)
        on_closed(cw->streams.head->data);
    g_source_destroy(cw->sweep);
    g_source_unref(cw->sweep);
    mk_xml_shared_free(cw->xml);
    cs->workers[mk_worker_index(mk_worker_self())] = NULL;
    g_free(cw);
}

void mk_c2s_server_free(MkC2sServer *cs)
{
    if (!cs)
        return;
    on_every_worker(cs, close_streams, 2 * G_USEC_PER_SEC);
    /* Give queued </stream:stream> writes a moment to leave. */
    g_usleep(100 * 1000);
    if (!on_every_worker(cs, reap_worker, 5 * G_USEC_PER_SEC)) {
        /* A worker that does not answer may still touch cs: keep it. */
        g_warning("c2s: a worker did not finish its shutdown; leaving its state");
        return;
    }
    for (guint i = 0; i < cs->listens->len; i++) {
        C2sListen *l = g_ptr_array_index(cs->listens, i);
        if (l->creds)
            gnutls_certificate_free_credentials(l->creds);
        g_free(l);
    }
    g_ptr_array_unref(cs->listens);
    if (cs->configs)
        g_ptr_array_unref(cs->configs);
    g_free(cs->workers);
    g_hash_table_destroy(cs->resumable);
    g_mutex_clear(&cs->resume_lock);
    c2s_limits_free(cs);
    mk_sasl_free(cs->sasl);
    g_free(cs);
}
