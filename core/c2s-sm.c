/* XEP-0198 Stream Management on client streams: acknowledgements, the
 * queue of unacknowledged stanzas, and resumption of a session whose
 * connection dropped.
 *
 * Why in the core: "h" must count every stanza of the stream, those the
 * core writes or answers itself (bind, the legacy session IQ, errors) and
 * those modules write with mk_session_write_xml, so the counting sits in
 * c2s.c's single write and read paths. mod_stream_management only
 * switches it on per host type and holds the settings
 * (mk_stream_management_enable). Streams that did not enable it pay one
 * pointer test per element.
 *
 * Detached sessions: when the connection of a resumable stream drops, the
 * MkC2s stays in its worker's list as C2S_DETACHED without a connection;
 * the session stays in the session table and everything delivered to it
 * is counted and queued as unacknowledged. A timer on the worker ends it
 * after the resumption timeout; the queue is then routed again.
 *
 * Resumption across workers: a session and its MkC2s never leave their
 * worker (MkSession.worker stays immutable, so senders and slots need no
 * new rules). Instead the new connection moves: the worker that parsed
 * <resume/> pauses it, detaches the socket from its epoll set and posts
 * it, with the stream's negotiated state, to the session's worker, which
 * adopts it into a new MkC2s and resumes there. What the client sent
 * after <resume/> (XEP-0198 allows stanzas there) goes along as unparsed
 * bytes and is parsed on the new worker after the resend. See
 * docs/stream-management.md. */
#include "c2s-sm.h"
#include "ackgate.h"
#include "cluster.h"
#include "ackqueue.h"
#include "hosts.h"
#include "log.h"
#include "metrics.h"
#include "modules-priv.h"
#include "modules.h"
#include "router.h"
#include "server.h"
#include "sm.h"
#include <gnutls/crypto.h>
#include <string.h>

#define NS_STANZAS     "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_DELAY       "urn:xmpp:delay"
#define NS_CARBONS     "urn:xmpp:carbons:2"
#define NS_SID         "urn:xmpp:sid:0"
#define NS_MAM_PFX     "urn:xmpp:mam:"
#define FINAL_A_MAX    1024  /* bytes read after </stream:stream> looking for <a/> */
#define MOVE_WAIT_MS   10000 /* a moved session waits this long for the new node's word */
#define MOVE_MAX_BYTES (8 * 1024 * 1024) /* queued bytes a session may move with */

struct C2sSm {
    MkAckQueue q;
    MkC2s *c; /* the stream holding this state (changes on resumption) */
    char *id; /* resumption id, in cs->resumable; NULL: not resumable */
    guint timeout;
    guint max_unacked;
    gboolean r_sent;        /* our <r/> waits for its <a/> */
    gint64 r_sent_us;       /* monotonic, when it went out */
    gboolean over_limit;    /* too many unacknowledged: closing, no resumption */
    MkDeferred ask;         /* <r/> at the end of the batch that sent stanzas */
    GSource *ask_idle;      /* the same outside a batch */
    MkAckGate *gate;        /* holds on what the client sent (ackgate.h) */
    gboolean a_wanted;      /* the client's <r/> waits for holds */
    guint32 a_target;       /* ... until this h is durable */
    gboolean closing;       /* the client sent </stream:stream>; we wait for <a/> */
    GSource *close_wait;    /* ... this long */
    GString *trailing;      /* bytes after </stream:stream> */
    GSource *expiry;        /* while detached */
    MkStreamMgmtConfig cfg; /* as enabled: the module's counters */
    char *move_node;        /* cluster: handed to this node, waiting for its word */
    GSource *move_wait;     /* ... this long */
    gboolean move_failed;   /* no word in time, or not taken: ends here as on timeout */
};

/* A resumable session of this node. */
typedef struct {
    char *id;
    char *bare;       /* the account: only it may resume */
    MkWorker *worker; /* the session's worker, immutable */
    MkC2s *c;         /* the stream holding the session; read on worker only */
} C2sResumable;

void c2s_sm_resumable_free(gpointer data)
{
    C2sResumable *r = data;
    g_free(r->id);
    g_free(r->bare);
    g_free(r);
}

static gboolean sm_config(MkC2s *c, MkStreamMgmtConfig *out)
{
    MkHostReg *hr = c->domain ? mk_modules_host_reg(mk_modules_get(), c->domain) : NULL;
    if (!hr || !hr->stream_mgmt.on)
        return FALSE;
    *out = hr->stream_mgmt; /* copied: the snapshot is only valid until we return */
    return TRUE;
}

static void send_failed(MkC2s *c, const char *condition, const guint32 *h)
{
    g_autofree char *hattr = h ? g_strdup_printf(" h='%u'", *h) : g_strdup("");
    g_autofree char *msg = g_strdup_printf(
        "<failed xmlns='" NS_SM "'%s><%s xmlns='" NS_STANZAS "'/></failed>", hattr, condition);
    c2s_write(c, msg);
}

/* An XEP-0082 UTC time with milliseconds. (transfer full) */
static char *stamp_text(gint64 wall_us)
{
    g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(wall_us / G_USEC_PER_SEC);
    if (!t)
        return g_strdup("1970-01-01T00:00:00.000Z");
    g_autofree char *base = g_date_time_format(t, "%Y-%m-%dT%H:%M:%S");
    return g_strdup_printf("%s.%03dZ", base, (int)((wall_us % G_USEC_PER_SEC) / 1000));
}

/* @xml, or when it is a message or presence without an XEP-0203 delay,
 * a copy with one (@domain, the time it was first sent): however often
 * a stanza is resent or moved, it carries exactly one delay, with the
 * original time. (transfer full) */
static MkXml *with_delay(MkXml *xml, const char *domain, gint64 stamp_us)
{
    const char *name = mk_xml_name(xml);
    if ((!g_str_equal(name, "message") && !g_str_equal(name, "presence")) ||
        mk_xml_child(xml, "delay", NS_DELAY))
        return mk_xml_ref(xml);
    MkXml *copy = mk_xml_copy(xml);
    MkXml *delay = mk_xml_add_child(copy, "delay", NS_DELAY);
    if (domain)
        mk_xml_set_attr(delay, "from", domain);
    g_autofree char *stamp = stamp_text(stamp_us);
    mk_xml_set_attr(delay, "stamp", stamp);
    return copy;
}

/* Writes @e again without counting it (a resent stanza keeps its place),
 * with its delay stamp. */
static void write_uncounted(MkC2s *c, MkAckEntry *e)
{
    if (!c->conn || c->state == C2S_CLOSING)
        return;
    g_autoptr(MkXml) xml = with_delay(e->xml, c->domain, e->stamp_us);
    GString *out = g_string_sized_new(256);
    mk_xml_write(xml, NS_CLIENT, out);
    mk_conn_write(c->conn, out->str, out->len);
    g_string_free(out, TRUE);
}

/* (transfer full) The account's bare JID as the session table spells it. */
static char *account_bare(MkC2s *c)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(c->username, c->domain, NULL, NULL);
    return jid ? g_strdup(mk_jid_string(jid)) : NULL;
}

static void unregister_id(MkC2s *c, C2sSm *sm)
{
    if (!sm->id)
        return;
    MkC2sServer *cs = c->cs;
    g_mutex_lock(&cs->resume_lock);
    C2sResumable *r = g_hash_table_lookup(cs->resumable, sm->id);
    if (r && r->c == c)
        g_hash_table_remove(cs->resumable, sm->id);
    g_mutex_unlock(&cs->resume_lock);
}

static void stop_expiry(C2sSm *sm)
{
    if (sm->expiry) {
        g_source_destroy(sm->expiry);
        g_clear_pointer(&sm->expiry, g_source_unref);
    }
}

/* Forgets a pending <r/> (the state is freed, moves or detaches). */
static void stop_asking(C2sSm *sm)
{
    if (sm->ask.queued && sm->c)
        mk_worker_undefer(sm->c->worker, &sm->ask);
    if (sm->ask_idle) {
        g_source_destroy(sm->ask_idle);
        g_clear_pointer(&sm->ask_idle, g_source_unref);
    }
}

static void sm_free(C2sSm *sm)
{
    stop_expiry(sm);
    stop_asking(sm);
    if (sm->close_wait) {
        g_source_destroy(sm->close_wait);
        g_clear_pointer(&sm->close_wait, g_source_unref);
    }
    if (sm->trailing)
        g_string_free(sm->trailing, TRUE);
    if (sm->move_wait) {
        g_source_destroy(sm->move_wait);
        g_clear_pointer(&sm->move_wait, g_source_unref);
    }
    g_free(sm->move_node);
    mk_ack_gate_close(sm->gate);
    mk_ack_queue_clear(&sm->q);
    g_free(sm->id);
    g_free(sm);
}

void c2s_sm_free(MkC2s *c)
{
    C2sSm *sm = g_steal_pointer(&c->sm);
    unregister_id(c, sm);
    sm_free(sm);
}

/* ---- counting --------------------------------------------------------- */

void c2s_sm_received(MkC2s *c, MkXml *el)
{
    if (mk_ack_queue_is_stanza(el))
        c->sm->q.h_in++; /* wraps at 2^32 */
}

/* Writes <r/> if stanzas wait for an acknowledgement and none was asked
 * for since the last <a/>. */
static void ask_now(C2sSm *sm)
{
    MkC2s *c = sm->c;
    if (!c || !c->conn || c->state == C2S_CLOSING || sm->r_sent || sm->q.unacked.length == 0)
        return;
    sm->r_sent = TRUE;
    sm->r_sent_us = g_get_monotonic_time();
    c2s_write(c, "<r xmlns='" NS_SM "'/>");
}

static void ask_deferred(MkDeferred *d)
{
    ask_now((C2sSm *)((char *)d - G_STRUCT_OFFSET(C2sSm, ask)));
}

static gboolean ask_idle(gpointer user_data)
{
    C2sSm *sm = user_data;
    g_clear_pointer(&sm->ask_idle, g_source_unref); /* the return value destroys it */
    ask_now(sm);
    return G_SOURCE_REMOVE;
}

/* Asks for an acknowledgement once the current burst of stanzas is
 * written: at the end of the worker's batch (before the connection's
 * gathered write, so <r/> shares its send()), or from an idle source
 * outside a batch. One <r/> at a time: the next after its <a/>. */
static void ask_soon(MkC2s *c, C2sSm *sm)
{
    if (sm->r_sent || sm->ask.queued || sm->ask_idle)
        return;
    if (mk_worker_batching(c->worker)) {
        mk_worker_defer(c->worker, &sm->ask);
        return;
    }
    sm->ask_idle = g_idle_source_new();
    g_source_set_callback(sm->ask_idle, ask_idle, sm, NULL);
    g_source_attach(sm->ask_idle, mk_worker_context(c->worker));
}

void c2s_sm_flush_ask(MkC2s *c)
{
    C2sSm *sm = c->sm;
    if (sm && sm->ask.queued) {
        mk_worker_undefer(c->worker, &sm->ask);
        ask_now(sm);
    }
}

void c2s_sm_tag(MkC2s *c, MkStanza *st)
{
    mk_stanza_set_ack_gate(st, c->sm->gate, c->sm->q.h_in);
}

/* The stream of a detached session queued too much: it ends as on
 * timeout (its queue is stored or bounced). */
static void detached_overflow(MkC2s *c, C2sSm *sm)
{
    if (sm->over_limit || !c->session)
        return;
    sm->over_limit = TRUE;
    mk_counter_add(sm->cfg.detached_overflow, 1);
    C2S_LOG(c, G_LOG_LEVEL_INFO,
            "detached session queued %" G_GSIZE_FORMAT " bytes (limit %" G_GSIZE_FORMAT
            "): the session ends",
            sm->q.bytes, sm->cfg.max_detached_bytes);
    mk_session_close(c->session, NULL); /* from the mailbox: we are inside a delivery */
}

void c2s_sm_write(MkC2s *c, MkXml *el, gint64 chosen_us)
{
    GString *out = g_string_sized_new(256);
    mk_xml_write(el, NS_CLIENT, out);
    c2s_sm_write_serialised(c, el, out, chosen_us);
    g_string_free(out, TRUE);
}

static void move_forward(MkC2s *c, C2sSm *sm, MkXml *el, const GString *out, gint64 chosen_us);

void c2s_sm_write_serialised(MkC2s *c, MkXml *el, const GString *out, gint64 chosen_us)
{
    C2sSm *sm = c->sm;
    if (!mk_ack_queue_is_stanza(el)) {
        if (c->conn)
            mk_conn_write(c->conn, out->str, out->len);
        return;
    }
    if (G_UNLIKELY(sm->move_node)) {
        move_forward(c, sm, el, out, chosen_us);
        return;
    }
    mk_ack_queue_sent(&sm->q, el, out->len, g_get_real_time(), chosen_us);
    if (!c->conn) {
        /* Detached: queued for a resume, within a byte budget. */
        if (sm->q.bytes > sm->cfg.max_detached_bytes)
            detached_overflow(c, sm);
        return;
    }
    /* Before the write: the deferred <r/> then runs before the
     * connection's gathered flush and goes out in the same send(). */
    ask_soon(c, sm);
    mk_conn_write(c->conn, out->str, out->len);

    /* A client that never acknowledges would make us hold everything
     * forever; but a burst of ours (offline messages, a busy chat) is
     * not its fault: only an <r/> left unanswered for ack_timeout counts. */
    if (G_UNLIKELY(sm->q.unacked.length >= sm->max_unacked) && sm->r_sent && !sm->over_limit &&
        c->session &&
        g_get_monotonic_time() - sm->r_sent_us >= (gint64)sm->cfg.ack_timeout * G_USEC_PER_SEC) {
        sm->over_limit = TRUE;
        mk_counter_add(sm->cfg.unacked_closed, 1);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "%u stanzas unacknowledged, <r/> unanswered for %u s: closing",
                sm->q.unacked.length, sm->cfg.ack_timeout);
        /* Closed from the mailbox: we may be in the middle of a delivery. */
        mk_session_close(c->session, "policy-violation");
    }
}

/* ---- enable, r, a ----------------------------------------------------- */

static void gate_released(gpointer owner);

static char *new_resume_id(void)
{
    guint8 rnd[18];
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    g_autofree char *id = g_base64_encode(rnd, sizeof rnd);
    /* In a cluster the id names its node, so that a resumption elsewhere
     * can tell it to let go (docs/clustering.md). */
    MkConfigData *cfg = g_atomic_pointer_get(&mk_server_get()->config);
    if (cfg->cluster)
        return g_strdup_printf("%s~%s", cfg->cluster->name, id);
    return g_steal_pointer(&id);
}

static void handle_enable(MkC2s *c, MkXml *el, const MkStreamMgmtConfig *cfg)
{
    if (!c->session || c->sm) {
        /* Before bind, or a second time (XEP-0198 section 3). */
        send_failed(c, "unexpected-request", NULL);
        return;
    }
    C2sSm *sm = g_new0(C2sSm, 1);
    mk_ack_queue_init(&sm->q);
    sm->c = c;
    sm->ask.func = ask_deferred;
    sm->gate = mk_ack_gate_new(c->worker, gate_released, sm);
    sm->max_unacked = cfg->max_unacked;
    sm->cfg = *cfg;
    mk_counter_add(cfg->enabled, 1);
    const char *resume = mk_xml_get_attr(el, "resume");
    gboolean wanted = g_strcmp0(resume, "true") == 0 || g_strcmp0(resume, "1") == 0;
    if (wanted && cfg->resume_timeout > 0) {
        guint32 max = 0;
        sm->timeout = cfg->resume_timeout;
        /* The client's preferred maximum, when shorter, wins. */
        if (mk_ack_queue_parse_h(mk_xml_get_attr(el, "max"), &max) && max > 0 && max < sm->timeout)
            sm->timeout = max;
        sm->id = new_resume_id();
        C2sResumable *r = g_new0(C2sResumable, 1);
        r->id = g_strdup(sm->id);
        r->bare = g_strdup(mk_jid_bare_string(mk_session_jid(c->session)));
        r->worker = c->worker;
        r->c = c;
        g_mutex_lock(&c->cs->resume_lock);
        g_hash_table_replace(c->cs->resumable, r->id, r);
        g_mutex_unlock(&c->cs->resume_lock);
        g_autofree char *msg = g_strdup_printf(
            "<enabled xmlns='" NS_SM "' id='%s' resume='true' max='%u'/>", sm->id, sm->timeout);
        c2s_write(c, msg);
    } else {
        c2s_write(c, "<enabled xmlns='" NS_SM "'/>");
    }
    c->sm = sm;
    C2S_LOG(c, G_LOG_LEVEL_DEBUG, "stream management enabled%s", sm->id ? " (resumable)" : "");
}

static void handle_a(MkC2s *c, MkXml *el)
{
    C2sSm *sm = c->sm;
    guint32 h;
    if (!sm)
        return;
    if (!mk_ack_queue_parse_h(mk_xml_get_attr(el, "h"), &h) || !mk_ack_queue_ack(&sm->q, h)) {
        /* Acknowledging more than we sent (XEP-0198 section 4,
         * handled-count-too-high) or nonsense. */
        C2S_LOG(c, G_LOG_LEVEL_INFO, "bad <a h='%s'/> (sent %u)",
                mk_xml_get_attr(el, "h") ? mk_xml_get_attr(el, "h") : "", sm->q.h_out);
        c2s_close(c, "undefined-condition");
        return;
    }
    sm->r_sent = FALSE;
    if (sm->closing) {
        /* The final <a/> we waited for. */
        c2s_close(c, NULL);
        return;
    }
    /* Stanzas sent after our <r/> still wait: ask again after this read. */
    if (sm->q.unacked.length)
        ask_soon(c, sm);
}

/* Answers the client's <r/> with what is handled and safe: a stanza a
 * module still holds (mod_offline, until its store commits) is not
 * counted, so the answer waits for it (gate_released). */
static void answer_r(MkC2s *c, C2sSm *sm)
{
    guint32 durable = mk_ack_gate_durable(sm->gate, sm->q.h_in);
    if (durable != sm->q.h_in) {
        sm->a_wanted = TRUE;
        sm->a_target = sm->q.h_in;
        return;
    }
    sm->a_wanted = FALSE;
    g_autofree char *a = g_strdup_printf("<a xmlns='" NS_SM "' h='%u'/>", sm->q.h_in);
    c2s_write(c, a);
}

/* A hold was released (on the session's worker, from the mailbox). */
static void gate_released(gpointer owner)
{
    C2sSm *sm = owner;
    MkC2s *c = sm->c;
    if (!sm->a_wanted || !c || !c->conn)
        return;
    guint32 durable = mk_ack_gate_durable(sm->gate, sm->q.h_in);
    /* Distances back from h_in: smaller is newer. */
    if ((guint32)(sm->q.h_in - durable) > (guint32)(sm->q.h_in - sm->a_target))
        return;
    sm->a_wanted = FALSE;
    g_autofree char *a = g_strdup_printf("<a xmlns='" NS_SM "' h='%u'/>", durable);
    c2s_write(c, a);
}

/* ---- resumption ------------------------------------------------------- */

static void resume_failed(MkC2s *c, const char *condition, const guint32 *h)
{
    MkStreamMgmtConfig cfg;
    if (sm_config(c, &cfg))
        mk_counter_add(cfg.resume_failed, 1);
    C2S_LOG(c, G_LOG_LEVEL_INFO, "resumption failed: %s", condition);
    send_failed(c, condition, h);
}

/* On the session's worker: @c (authenticated, unbound) takes over the
 * session registered under @previd. */
static void resume_here(MkC2s *c, const char *previd, guint32 h)
{
    MkC2sServer *cs = c->cs;
    g_autofree char *bare = account_bare(c);
    MkC2s *old = NULL;

    g_mutex_lock(&cs->resume_lock);
    C2sResumable *r = g_hash_table_lookup(cs->resumable, previd);
    if (r && bare && g_str_equal(r->bare, bare) && r->worker == c->worker)
        old = r->c; /* only this worker changes or frees it */
    g_mutex_unlock(&cs->resume_lock);

    if (!old || old == c || !old->sm || !old->session) {
        resume_failed(c, "item-not-found", NULL);
        return;
    }
    C2sSm *sm = old->sm;
    if (!mk_ack_queue_ack(&sm->q, h)) {
        C2S_LOG(c, G_LOG_LEVEL_INFO, "resume with h=%u but only %u sent", h, sm->q.h_out);
        resume_failed(c, "unexpected-request", &sm->q.h_in);
        return;
    }
    mk_counter_add(sm->cfg.resumed, 1);
    MkSession *s = old->session;
    old->session = NULL;
    old->sm = NULL;
    stop_expiry(sm);
    stop_asking(sm);
    sm->r_sent = FALSE;
    sm->a_wanted = FALSE;
    sm->c = c;
    c->session = s;
    c->sessions_gauge = g_steal_pointer(&old->sessions_gauge);
    c->sm = sm;
    s->transport_data = c;
    s->last_input_us = c->last_input_us;
    g_atomic_int_set(&s->detached, FALSE);
    g_mutex_lock(&cs->resume_lock);
    r = g_hash_table_lookup(cs->resumable, previd);
    if (r)
        r->c = c;
    g_mutex_unlock(&cs->resume_lock);

    /* The old stream goes without ending the session: it has none now. */
    if (old->state == C2S_DETACHED) {
        old->state = C2S_CLOSING;
        c2s_stream_remove(old);
    } else {
        c2s_close(old, "conflict");
    }

    g_autofree char *msg =
        g_strdup_printf("<resumed xmlns='" NS_SM "' previd='%s' h='%u'/>", previd, sm->q.h_in);
    c2s_write(c, msg);
    for (GList *l = sm->q.unacked.head; l; l = l->next)
        write_uncounted(c, l->data);
    C2S_LOG(c, G_LOG_LEVEL_INFO, "session resumed, %u stanzas resent", sm->q.unacked.length);
    /* The resent ones are unacknowledged: ask once this is written. */
    if (sm->q.unacked.length)
        ask_soon(c, sm);

    /* Stream state of modules (XEP-0352's client state) starts afresh on
     * the new stream; before anything the client sent after <resume/>. */
    MkHookCall call = {.domain = c->domain, .session = s, .from = mk_session_jid(s)};
    mk_hooks_run(c->cs->srv->modules, MK_HOOK_SESSION_RESUMED, &call);
    mk_hook_call_clear(&call);
}

/* The new connection's journey to the session's worker. */
typedef struct {
    MkC2s *c; /* ref, on its (old) worker */
    MkWorker *target;
    char *previd;
    guint32 h;
} MigrateOut;

typedef struct {
    MkC2sServer *cs;
    C2sListen *listen;
    MkConn *conn; /* detached: nobody's until adopted */
    char *domain, *username, *stream_id, *primer, *previd;
    GBytes *rest; /* what the client sent after <resume/>, unparsed */
    guint32 h;
} MigrateIn;

static void migrate_in_free(gpointer data)
{
    MigrateIn *m = data;
    mk_conn_free(m->conn); /* no watch: closes the socket, no callback */
    g_free(m->domain);
    g_free(m->username);
    g_free(m->stream_id);
    g_free(m->primer);
    g_free(m->previd);
    if (m->rest)
        g_bytes_unref(m->rest);
    g_free(m);
}

/* Parses, on @c, the bytes the client sent after <resume/> (XEP-0198
 * lets it pipeline stanzas there): after the resumption's answer and the
 * resend, before anything read later from the socket. */
static void feed_rest(MkC2s *c, GBytes *rest)
{
    gsize len = 0;
    const char *data = rest ? g_bytes_get_data(rest, &len) : NULL;
    if (len)
        c2s_feed(c, data, len);
}

/* On the session's worker. */
static void migrate_in(gpointer data)
{
    MigrateIn *m = data;
    MkC2s *c = c2s_stream_new(m->cs, m->listen, mk_worker_self());
    c->domain = g_steal_pointer(&m->domain);
    c->username = g_steal_pointer(&m->username);
    c->stream_id = g_steal_pointer(&m->stream_id);
    c->state = C2S_OPEN;
    c->header_sent = TRUE;
    /* This worker's parser continues the stream the client opened. */
    if (m->primer)
        mk_xml_stream_set_primer(c->xs, m->primer);
    c2s_adopt_conn(c, g_steal_pointer(&m->conn));
    C2S_LOG(c, G_LOG_LEVEL_DEBUG, "connection moved to worker %u to resume",
            mk_worker_index(c->worker));
    resume_here(c, m->previd, m->h);
    feed_rest(c, m->rest);
    migrate_in_free(m);
}

static void migrate_out_free(gpointer data)
{
    MigrateOut *m = data;
    /* The worker stopped: like SASL jobs, leave the stream to its reaper. */
    g_free(m->previd);
    g_free(m);
}

/* On the connection's worker, from the loop (not inside its read). */
static void migrate_out(gpointer data)
{
    MigrateOut *m = data;
    MkC2s *c = m->c;
    /* The parser stopped after <resume/> (handle_resume); the rest goes
     * where the stream goes on. */
    g_autoptr(GBytes) rest = mk_xml_stream_take_rest(c->xs);

    if (c->state == C2S_MIGRATING && c->conn && mk_conn_detach(c->conn)) {
        MigrateIn *in = g_new0(MigrateIn, 1);
        in->cs = c->cs;
        in->listen = c->listen;
        in->conn = g_steal_pointer(&c->conn);
        in->domain = g_strdup(c->domain);
        in->username = g_strdup(c->username);
        in->stream_id = g_strdup(c->stream_id);
        in->primer = mk_xml_stream_dup_primer(c->xs);
        in->previd = g_steal_pointer(&m->previd);
        in->rest = g_steal_pointer(&rest);
        in->h = m->h;
        c->state = C2S_CLOSING;
        c2s_stream_remove(c);
        mk_worker_post(m->target, migrate_in, in, migrate_in_free);
    } else if (c->state == C2S_MIGRATING && c->conn) {
        /* Not movable right now (closing, odd TLS state): resumption fails
         * here, the stream goes on unbound. */
        c->state = C2S_OPEN;
        mk_conn_pause(c->conn, FALSE);
        resume_failed(c, "item-not-found", NULL);
        feed_rest(c, rest);
    }
    c2s_unref(c);
    g_free(m->previd);
    g_free(m);
}

static gboolean fetch_elsewhere(MkC2s *c, const char *previd, const char *bare, guint32 h);

static void handle_resume(MkC2s *c, MkXml *el)
{
    MkC2sServer *cs = c->cs;
    const char *previd = mk_xml_get_attr(el, "previd");
    guint32 h;

    if (c->session || c->sm) {
        send_failed(c, "unexpected-request", NULL);
        return;
    }
    if (!previd || !mk_ack_queue_parse_h(mk_xml_get_attr(el, "h"), &h)) {
        send_failed(c, "bad-request", NULL);
        return;
    }
    g_autofree char *bare = account_bare(c);
    MkWorker *owner = NULL;
    g_mutex_lock(&cs->resume_lock);
    C2sResumable *r = g_hash_table_lookup(cs->resumable, previd);
    if (r && bare && g_str_equal(r->bare, bare))
        owner = r->worker;
    g_mutex_unlock(&cs->resume_lock);

    if (!owner && bare && fetch_elsewhere(c, previd, bare, h))
        return; /* another node's: it hands the session over */
    if (!owner) {
        /* Unknown, expired, or someone else's: all look the same. A
         * session of another node of the cluster ends there now, its
         * unacknowledged stanzas routed again (mk_c2s_sm_release). */
        mk_cluster_resumed_elsewhere(mk_sm_get_cluster(cs->srv->sm), previd, bare, h);
        resume_failed(c, "item-not-found", NULL);
        return;
    }
    if (owner == c->worker) {
        resume_here(c, previd, h);
        return;
    }
    /* We are inside this connection's read: stop it, and move it once
     * the read has returned. What the client pipelined after <resume/>
     * stays unparsed and moves along (this worker's parser cannot: its
     * names live in this worker's dictionary). */
    c->state = C2S_MIGRATING;
    mk_conn_pause(c->conn, TRUE);
    mk_xml_stream_hand_over(c->xs);
    MigrateOut *m = g_new0(MigrateOut, 1);
    m->c = c2s_ref(c);
    m->target = owner;
    m->previd = g_strdup(previd);
    m->h = h;
    mk_worker_post(c->worker, migrate_out, m, migrate_out_free);
}

gboolean c2s_sm_element(MkC2s *c, MkXml *el)
{
    MkStreamMgmtConfig cfg;
    if (!sm_config(c, &cfg))
        return FALSE;
    const char *name = mk_xml_name(el);
    if (g_str_equal(name, "enable"))
        handle_enable(c, el, &cfg);
    else if (g_str_equal(name, "resume"))
        handle_resume(c, el);
    else if (g_str_equal(name, "r")) {
        if (!c->sm) {
            send_failed(c, "unexpected-request", NULL);
        } else {
            answer_r(c, c->sm);
        }
    } else if (g_str_equal(name, "a"))
        handle_a(c, el);
    else
        send_failed(c, "feature-not-implemented", NULL);
    return TRUE;
}

/* ---- detached sessions ------------------------------------------------ */

static gboolean on_expiry(gpointer user_data)
{
    MkC2s *c = user_data;
    g_clear_pointer(&c->sm->expiry, g_source_unref); /* the return value destroys it */
    C2S_LOG(c, G_LOG_LEVEL_INFO, "not resumed in time: the session ends");
    mk_counter_add(c->sm->cfg.expired, 1);
    c2s_close(c, NULL); /* no connection: ends the session and frees @c */
    return G_SOURCE_REMOVE;
}

gboolean c2s_sm_detach(MkC2s *c)
{
    C2sSm *sm = c->sm;
    if (!sm || !sm->id || !c->session || sm->over_limit || sm->closing)
        return FALSE;
    C2S_LOG(c, G_LOG_LEVEL_INFO, "connection lost; resumable for %u s (%u unacknowledged)",
            sm->timeout, sm->q.unacked.length);
    c->state = C2S_DETACHED;
    g_atomic_int_set(&c->session->detached, TRUE);
    g_clear_pointer(&c->conn, mk_conn_free);
    stop_asking(sm);
    sm->r_sent = FALSE;
    sm->a_wanted = FALSE;
    sm->expiry = g_timeout_source_new((guint)MIN((guint64)sm->timeout * 1000, G_MAXUINT));
    g_source_set_callback(sm->expiry, on_expiry, c, NULL);
    g_source_attach(sm->expiry, mk_worker_context(c->worker));
    return TRUE;
}

/* ---- the end of a session ---------------------------------------------- */

typedef enum {
    REROUTE_DROP,    /* stale, or safe elsewhere */
    REROUTE_SKIP,    /* a message not queued again as new (counted) */
    REROUTE_BOUNCE,  /* an IQ request: its sender gets an error */
    REROUTE_MESSAGE, /* routed to the account again */
} RerouteAction;

static gboolean child_in_ns_prefix(MkXml *xml, const char *name, const char *prefix)
{
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *ch = mk_xml_child_at(xml, i);
        const char *ns = mk_xml_is_text(ch) ? NULL : mk_xml_ns(ch);
        if (ns && g_str_has_prefix(ns, prefix) && g_str_equal(mk_xml_name(ch), name))
            return TRUE;
    }
    return FALSE;
}

/* What happens to an unacknowledged stanza of an ended session. Only
 * chat and normal messages with a body are queued again; carbon copies,
 * groupchat and messages with an archive id (the archive has them) are
 * not; nor are headlines, errors, or messages without a body (chat
 * states, receipts). */
static RerouteAction reroute_action(MkXml *xml)
{
    const char *name = mk_xml_name(xml);
    const char *type = mk_xml_get_attr(xml, "type");
    if (g_str_equal(name, "iq"))
        return g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0 ? REROUTE_BOUNCE
                                                                          : REROUTE_DROP;
    if (!g_str_equal(name, "message") || g_strcmp0(type, "error") == 0)
        return REROUTE_DROP;
    if (type && !g_str_equal(type, "chat") && !g_str_equal(type, "normal"))
        return REROUTE_SKIP; /* groupchat, headline */
    if (mk_xml_child(xml, "sent", NS_CARBONS) || mk_xml_child(xml, "received", NS_CARBONS) ||
        mk_xml_child(xml, "stanza-id", NS_SID) || child_in_ns_prefix(xml, "result", NS_MAM_PFX) ||
        !mk_xml_child(xml, "body", NS_CLIENT))
        return REROUTE_SKIP;
    return REROUTE_MESSAGE;
}

/* Whether another resource of the account of @s has been available,
 * taking messages sent to the bare JID, since @when_us (the router's
 * choice, sm.h: exactly ordered with availability): it got the message
 * this session was chosen for then. */
static gboolean others_had_it(MkSession *s, gint64 when_us)
{
    g_autoptr(MkJid) bare = mk_jid_bare(mk_session_jid(s));
    MkSm *sm = mk_server_get()->sm;
    g_autoptr(GPtrArray) list = mk_sm_sessions(sm, bare);
    for (guint i = 0; i < list->len; i++) {
        MkSession *o = g_ptr_array_index(list, i);
        if (o != s && mk_sm_available_since(sm, o, when_us))
            return TRUE;
    }
    return FALSE;
}

/* Deals with one unacknowledged stanza of the ended session @s. Returns
 * TRUE when a message was routed again. */
static gboolean reroute(MkC2s *c, MkSession *s, C2sSm *sm, MkAckEntry *e)
{
    switch (reroute_action(e->xml)) {
    case REROUTE_DROP:
        return FALSE;
    case REROUTE_SKIP:
        mk_counter_add(sm->cfg.not_requeued, 1);
        return FALSE;
    case REROUTE_BOUNCE: {
        g_autoptr(MkStanza) st = mk_stanza_new(e->xml, NULL);
        if (st && mk_stanza_to(st))
            mk_router_bounce(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        return FALSE;
    }
    case REROUTE_MESSAGE:
        break;
    }
    /* A message to the bare JID reached every available resource of the
     * top priority: if another one was available when it came, it has
     * the message already (sending it again would show it twice). One
     * that was moved before (it has a delay: from offline storage) went
     * to this session only. */
    const char *to = mk_xml_get_attr(e->xml, "to");
    g_autoptr(MkJid) to_jid = to ? mk_jid_new(to, NULL) : NULL;
    if (to_jid && mk_jid_is_bare(to_jid) && !mk_xml_child(e->xml, "delay", NS_DELAY) &&
        others_had_it(s, e->chosen_us ? e->chosen_us : e->stamp_us)) {
        mk_counter_add(sm->cfg.not_requeued, 1);
        return FALSE;
    }
    g_autoptr(MkXml) xml = with_delay(e->xml, c->domain, e->stamp_us);
    g_autoptr(MkStanza) st = mk_stanza_new(xml, NULL);
    if (!st || !mk_stanza_to(st))
        return FALSE;
    mk_router_route(st, NULL);
    return TRUE;
}

/* See c2s-sm.h. Session's worker. */
gboolean c2s_sm_handed_over(MkC2s *c)
{
    return c->sm && c->sm->move_node && !c->sm->move_failed;
}

void c2s_sm_session_ended(MkC2s *c, MkSession *s)
{
    C2sSm *sm = g_steal_pointer(&c->sm);
    guint n = 0;
    unregister_id(c, sm);
    stop_expiry(sm);
    MkAckEntry *e;
    while ((e = mk_ack_queue_pop(&sm->q))) {
        n += reroute(c, s, sm, e);
        mk_ack_entry_free(e);
    }
    mk_counter_add(sm->cfg.rerouted, n);
    if (n)
        mk_log_conn(G_LOG_LEVEL_INFO, c->conn ? mk_conn_peer(c->conn) : "detached",
                    mk_jid_string(mk_session_jid(s)), "%u unacknowledged messages routed again", n);
    mk_log_conn(G_LOG_LEVEL_DEBUG, c->conn ? mk_conn_peer(c->conn) : "detached",
                mk_jid_string(mk_session_jid(s)), "stream management session ended");
    sm_free(sm);
}

/* ---- a clean close ---------------------------------------------------- */

void c2s_sm_before_close(MkC2s *c)
{
    C2sSm *sm = c->sm;
    /* A last chance for a client that reads until our end to say what it
     * handled (before a stream error or a clean end of ours). */
    if (sm && !sm->closing && c->conn && !sm->r_sent && sm->q.unacked.length) {
        stop_asking(sm);
        ask_now(sm);
    }
}

static gboolean on_close_wait(gpointer user_data)
{
    MkC2s *c = user_data;
    g_clear_pointer(&c->sm->close_wait, g_source_unref); /* the return value destroys it */
    C2S_LOG(c, G_LOG_LEVEL_DEBUG, "no final <a/>: %u stanzas unacknowledged",
            c->sm->q.unacked.length);
    c2s_close(c, NULL);
    return G_SOURCE_REMOVE;
}

gboolean c2s_sm_stream_end(MkC2s *c)
{
    C2sSm *sm = c->sm;
    if (!c->session || !c->conn || sm->q.unacked.length == 0 || sm->cfg.close_wait_ms == 0)
        return FALSE;
    /* The client closed its side with stanzas unacknowledged: ask, and
     * give it close_wait_ms to answer (its <a/> may come after its
     * </stream:stream>, see c2s_sm_feed_closing) before they count as
     * lost and are routed again. */
    sm->closing = TRUE;
    /* Nothing new for a stream its client closed: out of the routing
     * table now, so that later stanzas go to another resource or
     * offline storage rather than into this wait. */
    mk_sm_unregister(mk_server_get()->sm, c->session);
    stop_asking(sm);
    sm->r_sent = FALSE;
    ask_now(sm);
    sm->close_wait = g_timeout_source_new(sm->cfg.close_wait_ms);
    g_source_set_callback(sm->close_wait, on_close_wait, c, NULL);
    g_source_attach(sm->close_wait, mk_worker_context(c->worker));
    return TRUE;
}

/* The value of the h attribute of the first <a .../> in @text, if whole. */
static gboolean find_final_a(const char *text, guint32 *h)
{
    for (const char *p = strstr(text, "<a"); p; p = strstr(p + 2, "<a")) {
        if (!g_ascii_isspace(p[2]) && p[2] != '/')
            continue;
        const char *end = strchr(p, '>');
        if (!end)
            return FALSE; /* not whole yet */
        g_autofree char *el = g_strndup(p, (gsize)(end - p + 1));
        const char *hp = strstr(el, "h=");
        if (!hp || (hp[2] != '\'' && hp[2] != '"'))
            return FALSE;
        g_autofree char *num = g_strndup(hp + 3, strcspn(hp + 3, "'\""));
        return mk_ack_queue_parse_h(num, h);
    }
    return FALSE;
}

gboolean c2s_sm_feed_closing(MkC2s *c, const char *data, gsize len)
{
    C2sSm *sm = c->sm;
    if (!sm->closing)
        return FALSE;
    /* The parser ended with </stream:stream>; a client still answering
     * our <r/> writes its <a/> after that. Read just that, bounded. */
    if (!sm->trailing)
        sm->trailing = g_string_new(NULL);
    g_string_append_len(sm->trailing, data, (gssize)MIN(len, FINAL_A_MAX));
    guint32 h;
    if (find_final_a(sm->trailing->str, &h)) {
        if (!mk_ack_queue_ack(&sm->q, h))
            C2S_LOG(c, G_LOG_LEVEL_INFO, "bad final <a h='%u'/> (sent %u)", h, sm->q.h_out);
        c2s_close(c, NULL);
    } else if (sm->trailing->len >= FINAL_A_MAX) {
        c2s_close(c, NULL);
    }
    return TRUE;
}

/* ---- cluster: a resumption on another node ---------------------------- */

typedef struct {
    MkC2sServer *cs;
    char *previd;
    char *bare;
    guint32 h;
} Release;

static void release_free(gpointer p)
{
    Release *rel = p;
    g_free(rel->previd);
    g_free(rel->bare);
    g_free(rel);
}

/* The worker of @bare's resumable session @previd (NULL: none here). Any
 * thread. */
static MkWorker *resumable_owner(MkC2sServer *cs, const char *previd, const char *bare)
{
    MkWorker *owner = NULL;
    g_mutex_lock(&cs->resume_lock);
    C2sResumable *r = g_hash_table_lookup(cs->resumable, previd);
    if (r && g_str_equal(r->bare, bare))
        owner = r->worker;
    g_mutex_unlock(&cs->resume_lock);
    return owner;
}

/* On the worker of @previd's session: its stream, if @bare's. */
static MkC2s *resumable_here(MkC2sServer *cs, const char *previd, const char *bare)
{
    MkC2s *c = NULL;
    g_mutex_lock(&cs->resume_lock);
    C2sResumable *r = g_hash_table_lookup(cs->resumable, previd);
    if (r && g_str_equal(r->bare, bare) && r->worker == mk_worker_self())
        c = r->c;
    g_mutex_unlock(&cs->resume_lock);
    return c;
}

/* On the session's worker: what the client acknowledged is dropped, the
 * session ends, and the rest is routed again (to the client's new
 * session on the other node, or to offline storage). */
static void release_run(gpointer p)
{
    Release *rel = p;
    MkC2s *c = resumable_here(rel->cs, rel->previd, rel->bare);
    if (c && c->sm && c->session) {
        if (!mk_ack_queue_ack(&c->sm->q, rel->h))
            C2S_LOG(c, G_LOG_LEVEL_INFO, "resumed elsewhere with h=%u but only %u sent", rel->h,
                    c->sm->q.h_out);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "resumed on another node: the session ends here");
        stop_expiry(c->sm);
        c2s_close(c, c->state == C2S_DETACHED ? NULL : "conflict");
    }
    release_free(rel);
}

void mk_c2s_sm_release(MkC2sServer *cs, const char *previd, const char *bare, guint32 h)
{
    MkWorker *owner = resumable_owner(cs, previd, bare);
    if (!owner)
        return;
    Release *rel = g_new0(Release, 1);
    rel->cs = cs;
    rel->previd = g_strdup(previd);
    rel->bare = g_strdup(bare);
    rel->h = h;
    mk_worker_post(owner, release_run, rel, release_free);
}

/* ---- cluster: the session moves to another node ------------------------ */
/* docs/clustering.md, Resumption on another node. On the session's node
 * (A) the session is handed over and ends without a word; on the node
 * where the client resumes (B) it is made again from what A sent. */

typedef struct {
    MkC2sServer *cs;
    char *node, *reqid, *previd, *bare;
    guint32 h;
    gboolean taken;
} MoveJob;

static void move_job_free(gpointer p)
{
    MoveJob *j = p;
    g_free(j->node);
    g_free(j->reqid);
    g_free(j->previd);
    g_free(j->bare);
    g_free(j);
}

/* A: a stanza for the session after its state went to the new node
 * follows it there (the same link, so after the state). */
static void move_forward(MkC2s *c, C2sSm *sm, MkXml *el, const GString *out, gint64 chosen_us)
{
    MkCluster *cl = mk_sm_get_cluster(c->cs->srv->sm);
    if (cl && c->session &&
        mk_cluster_resume_forward(cl, sm->move_node, mk_jid_string(mk_session_jid(c->session)),
                                  out->str, out->len))
        return;
    /* The link went down: kept, and routed again when the session ends. */
    mk_ack_queue_sent(&sm->q, el, out->len, g_get_real_time(), chosen_us);
}

/* A: the new node did not say it took the session: it ends as on timeout. */
static gboolean on_move_wait(gpointer user_data)
{
    MkC2s *c = user_data;
    g_clear_pointer(&c->sm->move_wait, g_source_unref); /* the return value destroys it */
    C2S_LOG(c, G_LOG_LEVEL_WARNING, "node %s did not confirm the resumption: the session ends",
            c->sm->move_node);
    c->sm->move_failed = TRUE;
    c2s_close(c, NULL);
    return G_SOURCE_REMOVE;
}

/* A: the session's state, to hand over. (transfer full) */
static MkMovedSession *moved_state(MkC2s *c, C2sSm *sm)
{
    MkSession *s = c->session;
    MkMovedSession *ms = mk_moved_session_new();
    ms->full = g_strdup(mk_jid_string(mk_session_jid(s)));
    ms->h_in = sm->q.h_in;
    ms->h_out = sm->q.h_out;
    ms->timeout = sm->timeout;
    ms->priority = mk_session_priority(s);
    ms->available = mk_session_is_available(s);
    ms->flags = mk_session_flags_text(s);
    g_autoptr(MkStanza) last = mk_session_last_presence(s);
    if (last && ms->available)
        ms->presence = mk_xml_to_string(mk_stanza_xml(last), NULL);
    if (s->directed) {
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, s->directed);
        while (g_hash_table_iter_next(&it, NULL, &v))
            g_ptr_array_add(ms->directed, g_strdup(mk_jid_string(v)));
    }
    for (GList *l = sm->q.unacked.head; l; l = l->next) {
        MkAckEntry *e = l->data;
        g_ptr_array_add(ms->queue, mk_xml_to_string(e->xml, NULL));
        g_array_append_val(ms->stamps, e->stamp_us);
    }
    return ms;
}

/* A, on the session's worker: freeze the session and send its state. */
static void move_out_run(gpointer p)
{
    MoveJob *j = p;
    MkCluster *cl = mk_sm_get_cluster(j->cs->srv->sm);
    MkC2s *c = resumable_here(j->cs, j->previd, j->bare);
    C2sSm *sm = c ? c->sm : NULL;
    if (!cl) {
        move_job_free(j);
        return;
    }
    if (sm && c->session && sm->q.bytes > MOVE_MAX_BYTES) {
        /* One frame carries the queue (the link's frame limit is 16 MiB). */
        C2S_LOG(c, G_LOG_LEVEL_INFO, "%" G_GSIZE_FORMAT " bytes queued: too many to move to %s",
                sm->q.bytes, j->node);
        sm = NULL;
    }
    if (!sm || !c->session || sm->over_limit || sm->closing || sm->move_node ||
        !mk_ack_queue_ack(&sm->q, j->h)) {
        if (sm && c->session)
            C2S_LOG(c, G_LOG_LEVEL_INFO, "node %s asked for the session with h=%u (sent %u)",
                    j->node, j->h, sm->q.h_out);
        mk_cluster_resume_answer(cl, j->node, j->reqid, NULL);
        move_job_free(j);
        return;
    }
    if (c->conn) {
        /* Still attached, stale: the old connection goes as on a local
         * resumption, the session stays. */
        c2s_write(c, "<stream:error><conflict xmlns='" NS_STREAMS_ERR
                     "'/></stream:error></stream:stream>");
        mk_metric_add(c->listen->connections, -1);
        c->state = C2S_DETACHED;
        g_atomic_int_set(&c->session->detached, TRUE);
        g_clear_pointer(&c->conn, mk_conn_free);
    }
    stop_expiry(sm);
    stop_asking(sm);
    sm->r_sent = FALSE;
    sm->a_wanted = FALSE;
    g_autoptr(MkMovedSession) ms = moved_state(c, sm);
    mk_cluster_resume_answer(cl, j->node, j->reqid, ms);
    C2S_LOG(c, G_LOG_LEVEL_INFO, "resuming on node %s: %u unacknowledged stanzas handed over",
            j->node, sm->q.unacked.length);
    sm->move_node = g_strdup(j->node);
    sm->move_wait = g_timeout_source_new(MOVE_WAIT_MS);
    g_source_set_callback(sm->move_wait, on_move_wait, c, NULL);
    g_source_attach(sm->move_wait, mk_worker_context(c->worker));
    move_job_free(j);
}

void mk_c2s_sm_move_out(MkC2sServer *cs, const char *node, const char *reqid, const char *previd,
                        const char *bare, guint32 h)
{
    MkWorker *owner = resumable_owner(cs, previd, bare);
    if (!owner) {
        mk_cluster_resume_answer(mk_sm_get_cluster(cs->srv->sm), node, reqid, NULL);
        return;
    }
    MoveJob *j = g_new0(MoveJob, 1);
    j->cs = cs;
    j->node = g_strdup(node);
    j->reqid = g_strdup(reqid);
    j->previd = g_strdup(previd);
    j->bare = g_strdup(bare);
    j->h = h;
    mk_worker_post(owner, move_out_run, j, move_job_free);
}

/* A, on the session's worker: the new node's word. */
static void move_done_run(gpointer p)
{
    MoveJob *j = p;
    MkC2s *c = resumable_here(j->cs, j->previd, j->bare);
    if (c && c->sm && c->sm->move_node && c->session) {
        if (j->taken) {
            C2S_LOG(c, G_LOG_LEVEL_INFO,
                    "resumed on another node (%s): the session ends here without a word",
                    c->sm->move_node);
            c->moved = TRUE;
            MkCluster *cl = mk_sm_get_cluster(j->cs->srv->sm);
            if (cl) /* its id still names this node: later resumptions go there */
                mk_cluster_resume_moved(cl, j->previd, c->sm->move_node, c->sm->timeout);
            c2s_sm_free(c); /* its queue went along */
        } else {
            C2S_LOG(c, G_LOG_LEVEL_INFO, "node %s did not take the session: it ends",
                    c->sm->move_node);
            c->sm->move_failed = TRUE;
        }
        c2s_close(c, NULL);
    }
    move_job_free(j);
}

void mk_c2s_sm_move_done(MkC2sServer *cs, const char *previd, const char *bare, gboolean taken)
{
    MkWorker *owner = resumable_owner(cs, previd, bare);
    if (!owner)
        return;
    MoveJob *j = g_new0(MoveJob, 1);
    j->cs = cs;
    j->previd = g_strdup(previd);
    j->bare = g_strdup(bare);
    j->taken = taken;
    mk_worker_post(owner, move_done_run, j, move_job_free);
}

/* B: session flags by module name (mod_roster's interest, carbons). */
static void restore_flags(MkSession *s, const char *domain, const char *flags)
{
    if (!flags || !*flags)
        return;
    MkServer *srv = mk_server_get();
    const char *ht = mk_hosts_lookup(srv->hosts, domain);
    MkRegSnapshot *snap = mk_modules_snapshot(srv->modules);
    g_auto(GStrv) pairs = g_strsplit(flags, ",", -1);
    for (char **p = pairs; *p; p++) {
        char *eq = strchr(*p, '=');
        if (!eq)
            continue;
        *eq = 0;
        guint v = (guint)g_ascii_strtoull(eq + 1, NULL, 10);
        for (guint i = 0; snap && snap->refs && i < snap->refs->len; i++) {
            MkModule *m = g_ptr_array_index(snap->refs, i);
            if (g_strcmp0(m->name, *p) == 0 && g_strcmp0(m->host_type, ht) == 0) {
                mk_session_set_flags(s, m, v, G_MAXUINT);
                break;
            }
        }
    }
}

typedef struct {
    MkC2s *c; /* ref */
    char *previd;
    char *bare;
    guint32 h;
} Fetch;

static void fetch_free(gpointer p)
{
    Fetch *f = p;
    c2s_unref(f->c);
    g_free(f->previd);
    g_free(f->bare);
    g_free(f);
}

typedef struct {
    char *node, *previd, *bare;
} Taken;

static void taken_free(gpointer p)
{
    Taken *t = p;
    g_free(t->node);
    g_free(t->previd);
    g_free(t->bare);
    g_free(t);
}

/* B: the session's record is in Redis: A may let go. */
static void taken_written(gpointer p)
{
    Taken *t = p;
    MkCluster *cl = mk_sm_get_cluster(mk_server_get()->sm);
    if (cl)
        mk_cluster_resume_done(cl, t->node, t->previd, t->bare, TRUE);
    taken_free(t);
}

/* B: @c takes over the session @ms of node @node. FALSE: not possible
 * (nothing changed). */
static gboolean resume_moved(MkC2s *c, MkMovedSession *ms, const char *node, const char *previd,
                             const char *bare)
{
    MkServer *srv = c->cs->srv;
    MkStreamMgmtConfig cfg;
    g_autoptr(MkJid) jid = mk_jid_new(ms->full, NULL);
    if (c->session || c->sm || !jid || !sm_config(c, &cfg) ||
        !g_str_equal(mk_jid_bare_string(jid), bare))
        return FALSE;
    g_autoptr(GPtrArray) queue = g_ptr_array_new_with_free_func((GDestroyNotify)mk_xml_unref);
    for (guint i = 0; i < ms->queue->len; i++) {
        MkXml *xml = mk_xml_parse(g_ptr_array_index(ms->queue, i), -1, NULL);
        if (!xml) {
            C2S_LOG(c, G_LOG_LEVEL_WARNING, "node %s sent an unreadable queued stanza", node);
            return FALSE;
        }
        g_ptr_array_add(queue, xml);
    }

    MkSession *s = c2s_session_new(c, jid);
    s->last_input_us = c->last_input_us;
    restore_flags(s, c->domain, ms->flags);
    if (ms->available) {
        /* Its contacts saw it available: it stays so, without a new
         * broadcast (the record written at registration says it). */
        g_autoptr(MkXml) pxml = ms->presence ? mk_xml_parse(ms->presence, -1, NULL) : NULL;
        if (!pxml)
            pxml = mk_xml_new("presence", NS_CLIENT);
        g_autoptr(MkStanza) pst = mk_stanza_new(pxml, NULL);
        if (pst)
            mk_sm_set_presence(srv->sm, s, pst, TRUE, ms->priority);
    }
    for (guint i = 0; i < ms->directed->len; i++) {
        MkJid *to = mk_jid_new(g_ptr_array_index(ms->directed, i), NULL);
        if (!to)
            continue;
        if (!s->directed)
            s->directed =
                g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)mk_jid_unref);
        g_hash_table_replace(s->directed, (gpointer)mk_jid_string(to), to);
    }
    MkSession *old = NULL;
    mk_sm_register_limited(srv->sm, s, 0, &old);
    if (old) {
        /* A's stand-in is replaced, not closed; a local one is a bind of
         * the same full JID that came in between: it loses. */
        if (!old->remote)
            mk_session_close(old, "conflict");
        mk_session_unref(old);
    }
    c->session = s;
    c->sessions_gauge = mk_metrics_sessions(mk_hosts_lookup(srv->hosts, c->domain));
    mk_metric_add(c->sessions_gauge, 1);

    C2sSm *sm = g_new0(C2sSm, 1);
    mk_ack_queue_init(&sm->q);
    sm->c = c;
    sm->ask.func = ask_deferred;
    sm->gate = mk_ack_gate_new(c->worker, gate_released, sm);
    sm->max_unacked = cfg.max_unacked;
    sm->cfg = cfg;
    sm->timeout = ms->timeout ? MIN(ms->timeout, cfg.resume_timeout) : cfg.resume_timeout;
    sm->id = g_strdup(previd);
    sm->q.h_in = ms->h_in;
    sm->q.h_out = ms->h_out - queue->len;
    sm->q.acked = sm->q.h_out;
    for (guint i = 0; i < queue->len; i++) {
        MkXml *xml = g_ptr_array_index(queue, i);
        mk_ack_queue_sent(&sm->q, xml, strlen(g_ptr_array_index(ms->queue, i)),
                          g_array_index(ms->stamps, gint64, i), 0);
    }
    C2sResumable *r = g_new0(C2sResumable, 1);
    r->id = g_strdup(sm->id);
    r->bare = g_strdup(bare);
    r->worker = c->worker;
    r->c = c;
    g_mutex_lock(&c->cs->resume_lock);
    g_hash_table_replace(c->cs->resumable, r->id, r);
    g_mutex_unlock(&c->cs->resume_lock);
    c->sm = sm;
    mk_counter_add(cfg.resumed, 1);

    g_autofree char *msg =
        g_strdup_printf("<resumed xmlns='" NS_SM "' previd='%s' h='%u'/>", previd, sm->q.h_in);
    c2s_write(c, msg);
    for (GList *l = sm->q.unacked.head; l; l = l->next)
        write_uncounted(c, l->data);
    C2S_LOG(c, G_LOG_LEVEL_INFO, "session resumed from node %s, %u stanzas resent", node,
            sm->q.unacked.length);
    /* What A forwarded before the session was in the table, in order. */
    MkCluster *cl = mk_sm_get_cluster(srv->sm);
    GQueue *early = cl ? mk_cluster_resume_arrived(cl, ms->full) : NULL;
    if (early) {
        MkStanza *st;
        while ((st = g_queue_pop_head(early))) {
            mk_session_send(s, st);
            mk_stanza_unref(st);
        }
        g_queue_free(early);
    }
    if (sm->q.unacked.length)
        ask_soon(c, sm);

    MkHookCall call = {.domain = c->domain, .session = s, .from = mk_session_jid(s)};
    mk_hooks_run(srv->modules, MK_HOOK_SESSION_RESUMED, &call);
    mk_hook_call_clear(&call);

    if (cl) {
        Taken *t = g_new0(Taken, 1);
        t->node = g_strdup(node);
        t->previd = g_strdup(previd);
        t->bare = g_strdup(bare);
        mk_cluster_when_written(cl, c->worker, taken_written, t, taken_free);
    }
    return TRUE;
}

/* B, on the resuming stream's worker: A's answer, or none in time. */
static void on_fetched(MkMovedSession *ms, const char *node, gpointer data)
{
    Fetch *f = data;
    MkC2s *c = f->c;
    MkCluster *cl = mk_sm_get_cluster(c->cs->srv->sm);
    c->bind_busy = FALSE;
    gboolean live = c->state == C2S_OPEN && c->conn;
    g_autoptr(GBytes) rest = live ? mk_xml_stream_take_rest(c->xs) : NULL;
    if (live)
        mk_conn_pause(c->conn, FALSE);
    if (ms && !(live && resume_moved(c, ms, node, f->previd, f->bare))) {
        /* Not taken: A ends the session as on timeout; what it forwarded
         * meanwhile is routed again from here. */
        if (cl) {
            mk_cluster_resume_done(cl, node, f->previd, f->bare, FALSE);
            GQueue *early = mk_cluster_resume_arrived(cl, ms->full);
            MkStanza *st;
            while (early && (st = g_queue_pop_head(early))) {
                mk_router_session_gone(st);
                mk_stanza_unref(st);
            }
            if (early)
                g_queue_free(early);
        }
        if (live)
            resume_failed(c, "item-not-found", NULL);
    } else if (!ms && live) {
        resume_failed(c, "item-not-found", NULL);
    }
    mk_moved_session_free(ms);
    if (live)
        feed_rest(c, rest);
    fetch_free(f);
}

/* B: @previd names another node whose link is up: ask it for the
 * session; the stream waits (as for a bind's Redis write). */
static gboolean fetch_elsewhere(MkC2s *c, const char *previd, const char *bare, guint32 h)
{
    MkCluster *cl = mk_sm_get_cluster(c->cs->srv->sm);
    if (!cl || !c->conn)
        return FALSE;
    Fetch *f = g_new0(Fetch, 1);
    f->c = c2s_ref(c);
    f->previd = g_strdup(previd);
    f->bare = g_strdup(bare);
    f->h = h;
    if (!mk_cluster_resume_fetch(cl, previd, bare, h, on_fetched, f, fetch_free)) {
        fetch_free(f);
        return FALSE;
    }
    c->bind_busy = TRUE;
    if (mk_xml_stream_has_more_input(c->xs))
        mk_xml_stream_hand_over(c->xs);
    mk_conn_pause(c->conn, TRUE);
    return TRUE;
}
