/* meerkat-bench: one worker process. One epoll loop over non-blocking
 * client sockets; each client walks the XMPP login (stream, optional
 * STARTTLS, SASL PLAIN or SCRAM-SHA-256, restart, bind, optional session,
 * initial presence) and then plays its scenario.
 *
 * No XML parser: a byte scanner tracks the element depth and hands every
 * complete top-level element (depth 1 inside the stream) to the state
 * machine, which looks only at its name and a few substrings. That is
 * enough for the replies of the servers under test and keeps the
 * generator cheap. */
#define _GNU_SOURCE
#include "bench.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

typedef enum {
    ST_IDLE,
    ST_CONNECTING,
    ST_FEATURES, /* waiting for features (before auth, or after TLS) */
    ST_PROCEED,
    ST_HANDSHAKE,
    ST_AUTH,
    ST_FEATURES2, /* after auth */
    ST_BIND,
    ST_SESSION,
    ST_ONLINE,
    ST_OFFLINE,  /* presence scenario: online stream, unavailable */
    ST_REGISTER, /* register scenario: request sent */
    ST_DONE,     /* register scenario: answered and closed */
    ST_DEAD,
} State;

typedef struct {
    int fd;
    int user;
    State st;
    gboolean tls_done;
    gboolean session_needed;
    guint32 h_in; /* --sm: stanzas received since <enable/> */
    gnutls_session_t tls;
    Scram *scram;
    /* Input: bytes not yet scanned into a complete element. */
    char *rx;
    gsize rx_len, rx_cap;
    gsize scan; /* scanner position in rx */
    int depth;
    gsize el_start;
    /* Output not yet written. */
    char *tx;
    gsize tx_len, tx_cap;
    gsize tls_retry; /* length passed to a record_send that said AGAIN */
    gboolean want_out;
    /* chat */
    int peer;      /* index in the worker's client array */
    int in_flight; /* my messages not yet received by the peer */
    guint64 seq;
    /* presence */
    int subscribed;
    /* mam: when the query in flight was sent (0: none) */
    guint64 query_sent_us;
} Client;

typedef struct Worker {
    const BenchOpts *o;
    int ep;
    int ctl_fd, rep_fd;
    int index;
    Client *c;
    int n, lo;
    int next_connect;
    int connecting; /* logins in progress */
    guint64 start_us;
    double rate;
    gnutls_certificate_credentials_t cred;
    gboolean measuring, running, quit;
    gboolean login_reported;
    guint64 ready_us;
    guint64 logins_done_us; /* when the last login ended */
    WorkerStats stats;
    char *body_pad;
    /* presence: toggles per second and the next toggle time */
    guint64 next_toggle_us;
    int toggle_cursor;
    BenchMuc *muc; /* muc scenario */
} Worker;

static void client_fail(Worker *w, Client *c, const char *why);
static void pep_on_message(Worker *w, const char *el, gsize len);

/* ---- output ----------------------------------------------------------- */

static void update_events(Worker *w, Client *c)
{
    gboolean want = c->tx_len > 0 || c->st == ST_CONNECTING ||
                    (c->st == ST_HANDSHAKE && c->tls && gnutls_record_get_direction(c->tls) == 1);
    if (want == c->want_out)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.u32 = (guint32)(c - w->c)};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static gboolean flush_tx(Worker *w, Client *c)
{
    while (c->tx_len > 0) {
        ssize_t n;
        if (c->tls_done) {
            gsize len = c->tls_retry ? c->tls_retry : MIN(c->tx_len, 16384);
            n = gnutls_record_send(c->tls, c->tx, len);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                c->tls_retry = len;
                break;
            }
            c->tls_retry = 0;
            if (n < 0) {
                client_fail(w, c, gnutls_strerror((int)n));
                return FALSE;
            }
        } else {
            n = send(c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n < 0) {
                client_fail(w, c, g_strerror(errno));
                return FALSE;
            }
        }
        memmove(c->tx, c->tx + n, c->tx_len - (gsize)n);
        c->tx_len -= (gsize)n;
    }
    if (c->tx_len == 0 && c->tx_cap > 4096) {
        g_clear_pointer(&c->tx, g_free);
        c->tx_cap = 0;
    }
    update_events(w, c);
    return TRUE;
}

static void client_send(Worker *w, Client *c, const char *data, gsize len)
{
    if (c->st == ST_DEAD)
        return;
    if (c->tx_len + len > c->tx_cap) {
        c->tx_cap = MAX(c->tx_cap * 2, c->tx_len + len + 256);
        c->tx = g_realloc(c->tx, c->tx_cap);
    }
    memcpy(c->tx + c->tx_len, data, len);
    c->tx_len += len;
    if (!c->tls_retry)
        flush_tx(w, c);
}

static void client_sendf(Worker *w, Client *c, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void client_sendf(Worker *w, Client *c, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf) {
        va_start(ap, fmt);
        g_autofree char *big = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        client_send(w, c, big, strlen(big));
        return;
    }
    client_send(w, c, buf, (gsize)n);
}

/* ---- login ------------------------------------------------------------ */

static void send_header(Worker *w, Client *c)
{
    c->depth = 0;
    client_sendf(w, c,
                 "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client'"
                 " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
                 w->o->domain);
}

static void client_close(Worker *w, Client *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->tls) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
    }
    g_clear_pointer(&c->scram, scram_free);
    g_clear_pointer(&c->rx, g_free);
    g_clear_pointer(&c->tx, g_free);
    c->rx_len = c->rx_cap = c->tx_len = c->tx_cap = 0;
}

static void client_fail(Worker *w, Client *c, const char *why)
{
    if (c->st == ST_DEAD)
        return;
    gboolean was_login = c->st != ST_ONLINE && c->st != ST_OFFLINE;
    if (w->stats.failed < 5 || (w->o->scenario != SCEN_LOGIN && !was_login))
        g_printerr("bench[%d]: %s%d: %s (state %d)\n", w->index, w->o->prefix, c->user, why, c->st);
    if (was_login) {
        w->connecting--;
    }
    w->stats.failed++;
    c->st = ST_DEAD;
    client_close(w, c);
}

static void logged_in(Worker *w, Client *c)
{
    if (w->o->sm)
        client_sendf(w, c, "<enable xmlns='urn:xmpp:sm:3'/>");
    if (w->o->scenario == SCEN_PEP) {
        g_autofree char *p = pep_presence();
        client_send(w, c, p, strlen(p));
    } else {
        client_send(w, c, "<presence/>", 11);
    }
    if (w->o->scenario == SCEN_MUCLIGHT && muclight_is_creator(w->o, c->user)) {
        g_autofree char *create = muclight_create(w->o, c->user);
        client_send(w, c, create, strlen(create));
    }
    c->st = ST_ONLINE;
    w->connecting--;
    w->stats.logged_in++;
    g_clear_pointer(&c->scram, scram_free);
    if (w->muc)
        bench_muc_logged_in(w->muc, (int)(c - w->c));
}

/* Register scenario: the server answered; the account exists now. */
static void registered(Worker *w, Client *c)
{
    client_send(w, c, "</stream:stream>", 16);
    client_close(w, c);
    c->st = ST_DONE;
    w->connecting--;
    w->stats.logged_in++;
}

static void start_auth(Worker *w, Client *c)
{
    c->st = ST_AUTH;
    g_autofree char *user = g_strdup_printf("%s%d", w->o->prefix, c->user);
    if (g_str_equal(w->o->mech, "PLAIN")) {
        g_autofree char *raw = g_strdup_printf("%c%s%c%s", 0, user, 0, w->o->password);
        gsize len = 2 + strlen(user) + strlen(w->o->password);
        g_autofree char *b64 = g_base64_encode((const guchar *)raw, len);
        client_sendf(w, c,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
                     b64);
    } else {
        c->scram = scram_new(user, w->o->password);
        const char *first = scram_client_first(c->scram);
        g_autofree char *b64 = g_base64_encode((const guchar *)first, strlen(first));
        client_sendf(w, c,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
                     w->o->mech, b64);
    }
}

static void start_tls(Worker *w, Client *c)
{
    gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
    gnutls_set_default_priority(c->tls);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, w->cred);
    gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, w->o->domain, strlen(w->o->domain));
    gnutls_transport_set_int(c->tls, c->fd);
    c->st = ST_HANDSHAKE;
}

static void do_handshake(Worker *w, Client *c)
{
    int rc = gnutls_handshake(c->tls);
    if (rc == GNUTLS_E_SUCCESS) {
        c->tls_done = TRUE;
        c->st = ST_FEATURES;
        send_header(w, c);
        return;
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(rc)) {
        update_events(w, c);
        return;
    }
    client_fail(w, c, gnutls_strerror(rc));
}

/* ---- scenarios: sending ------------------------------------------------ */

static void chat_send(Worker *w, Client *c)
{
    Client *peer = &w->c[c->peer];
    c->in_flight++;
    c->seq++;
    if (w->measuring)
        w->stats.sent++;
    client_sendf(
        w, c, "<message to='%s%d@%s/%s' type='chat'><body>%" G_GUINT64_FORMAT "%s</body></message>",
        w->o->prefix, peer->user, w->o->domain, w->o->resource, now_us(), w->body_pad);
}

static gboolean attr_is(const char *el, gsize len, const char *name, const char *value);

/* One archive query: the last page, optionally with the pair partner. */
static void mam_send(Worker *w, Client *c)
{
    c->seq++;
    c->query_sent_us = now_us();
    if (w->measuring)
        w->stats.sent++;
    g_autofree char *form =
        w->o->mam_with
            ? g_strdup_printf("<x xmlns='jabber:x:data' type='submit'><field var='with'><value>"
                              "%s%d@%s</value></field></x>",
                              w->o->prefix, c->user ^ 1, w->o->domain)
            : g_strdup("");
    client_sendf(w, c,
                 "<iq type='set' id='mq%" G_GUINT64_FORMAT "'><query xmlns='urn:xmpp:mam:2'>%s"
                 "<set xmlns='http://jabber.org/protocol/rsm'><max>%d</max><before/></set>"
                 "</query></iq>",
                 c->seq, form, w->o->page);
}

static void mam_start(Worker *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->c[i].st == ST_ONLINE && !w->c[i].query_sent_us)
            mam_send(w, &w->c[i]);
}

/* The IQ result that closes a query: its round trip, and the next one. */
static void mam_done(Worker *w, Client *c, const char *el, gsize len)
{
    if (!c->query_sent_us)
        return;
    if (!attr_is(el, len, "type", "result")) {
        g_autofree char *txt = g_strndup(el, MIN(len, 300));
        client_fail(w, c, txt);
        return;
    }
    guint64 now = now_us();
    if (w->measuring) {
        w->stats.received++;
        hist_add(&w->stats.hist, now - c->query_sent_us);
    }
    c->query_sent_us = 0;
    if (w->running)
        mam_send(w, c);
}

static void chat_start(Worker *w)
{
    for (int i = 0; i < w->n; i++) {
        Client *c = &w->c[i];
        if (c->st != ST_ONLINE || w->c[c->peer].st != ST_ONLINE)
            continue;
        while (c->in_flight < w->o->window)
            chat_send(w, c);
    }
}

/* Presence set-up: every user asks each contact of its group for a
 * subscription; the contact approves (see on_presence). */
static void presence_subscribe(Worker *w, Client *c)
{
    int g = w->o->roster + 1;
    int base = (c->user - w->o->first_user) / g * g + w->o->first_user;
    for (int u = base; u < base + g; u++)
        if (u != c->user)
            client_sendf(w, c, "<presence to='%s%d@%s' type='subscribe'/>", w->o->prefix, u,
                         w->o->domain);
}

/* ---- scenarios: receiving ---------------------------------------------- */

static gboolean has(const char *el, gsize len, const char *needle)
{
    return memmem(el, len, needle, strlen(needle)) != NULL;
}

static gboolean attr_is(const char *el, gsize len, const char *name, const char *value)
{
    char a[128], b[128];
    snprintf(a, sizeof a, "%s='%s'", name, value);
    snprintf(b, sizeof b, "%s=\"%s\"", name, value);
    /* Only in the start tag. */
    const char *end = memchr(el, '>', len);
    gsize tag = end ? (gsize)(end - el) : len;
    return has(el, tag, a) || has(el, tag, b);
}

/* The text of the first <NAME> child (transfer full), or NULL. */
static char *child_text(const char *el, gsize len, const char *name)
{
    char open[64];
    snprintf(open, sizeof open, "<%s", name);
    const char *p = memmem(el, len, open, strlen(open));
    if (!p)
        return NULL;
    const char *gt = memchr(p, '>', (gsize)(el + len - p));
    if (!gt || gt[-1] == '/')
        return g_strdup("");
    const char *end = memmem(gt, (gsize)(el + len - gt), "</", 2);
    if (!end)
        return NULL;
    return g_strndup(gt + 1, (gsize)(end - gt - 1));
}

/* The user number in the from attribute's localpart, or -1. */
static int from_user(Worker *w, const char *el, gsize len)
{
    const char *end = memchr(el, '>', len);
    gsize tag = end ? (gsize)(end - el) : len;
    const char *p = memmem(el, tag, "from=", 5);
    if (!p)
        return -1;
    p += 6;
    gsize pl = strlen(w->o->prefix);
    if (strncmp(p, w->o->prefix, pl) != 0)
        return -1;
    return atoi(p + pl);
}

static void on_message(Worker *w, Client *c, const char *el, gsize len)
{
    const char *b = memmem(el, len, "<body>", 6);
    if (!b)
        return;
    guint64 sent_at = g_ascii_strtoull(b + 6, NULL, 10);
    guint64 now = now_us();
    if (w->measuring) {
        w->stats.received++;
        hist_add(&w->stats.hist, now >= sent_at ? now - sent_at : 0);
    }
    if (w->o->scenario != SCEN_CHAT)
        return; /* muclight: every copy counts, the sending is paced */
    Client *sender = &w->c[c->peer];
    if (sender->in_flight > 0)
        sender->in_flight--;
    if (w->running && sender->st == ST_ONLINE)
        while (sender->in_flight < w->o->window)
            chat_send(w, sender);
}

static void on_presence(Worker *w, Client *c, const char *el, gsize len)
{
    if (attr_is(el, len, "type", "subscribe")) {
        int u = from_user(w, el, len);
        if (u >= 0)
            client_sendf(w, c, "<presence to='%s%d@%s' type='subscribed'/>", w->o->prefix, u,
                         w->o->domain);
        return;
    }
    if (attr_is(el, len, "type", "subscribed")) {
        c->subscribed++;
        return;
    }
    if (w->measuring && (attr_is(el, len, "type", "unavailable") || !has(el, len, "type=")))
        w->stats.received++;
}

/* ---- the state machine --------------------------------------------------- */

static void on_element(Worker *w, Client *c, const char *el, gsize len)
{
    /* The element's name. */
    gsize nl = 1;
    while (nl < len && el[nl] != ' ' && el[nl] != '>' && el[nl] != '/' && el[nl] != '\t' &&
           el[nl] != '\n' && el[nl] != '\r')
        nl++;
    g_autofree char *name = g_strndup(el + 1, nl - 1);
    const char *local = strchr(name, ':') ? strchr(name, ':') + 1 : name;

    if (g_str_equal(local, "error") && g_str_has_prefix(name, "stream")) {
        g_autofree char *txt = g_strndup(el, MIN(len, 300));
        client_fail(w, c, txt);
        return;
    }
    switch (c->st) {
    case ST_FEATURES:
        if (!g_str_equal(local, "features"))
            return;
        if (w->o->starttls && !c->tls_done) {
            client_send(w, c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 51);
            c->st = ST_PROCEED;
        } else if (w->o->scenario == SCEN_REGISTER) {
            g_autofree char *req = register_request(w->o, c->user);
            c->st = ST_REGISTER;
            client_send(w, c, req, strlen(req));
        } else {
            start_auth(w, c);
        }
        return;
    case ST_PROCEED:
        if (g_str_equal(local, "proceed")) {
            start_tls(w, c);
            do_handshake(w, c);
        } else {
            client_fail(w, c, "STARTTLS refused");
        }
        return;
    case ST_AUTH:
        if (g_str_equal(local, "challenge") && c->scram) {
            g_autofree char *b64 = child_text(el, len, "challenge");
            if (!b64) {
                /* The element itself holds the text. */
                const char *gt = memchr(el, '>', len);
                const char *lt = g_strrstr_len(el, (gssize)len, "</");
                b64 = gt && lt && lt > gt ? g_strndup(gt + 1, (gsize)(lt - gt - 1)) : g_strdup("");
            }
            gsize raw_len = 0;
            g_autofree guchar *raw = g_base64_decode(b64, &raw_len);
            g_autofree char *final = scram_client_final(c->scram, (const char *)raw, raw_len);
            if (!final) {
                client_fail(w, c, "bad SCRAM challenge");
                return;
            }
            g_autofree char *out = g_base64_encode((const guchar *) final, strlen(final));
            client_sendf(w, c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>",
                         out);
        } else if (g_str_equal(local, "success")) {
            c->st = ST_FEATURES2;
            send_header(w, c);
        } else {
            g_autofree char *txt = g_strndup(el, MIN(len, 300));
            client_fail(w, c, txt);
        }
        return;
    case ST_REGISTER:
        if (!g_str_equal(local, "iq"))
            return;
        if (register_outcome(el, len) == REGISTER_FAILED) {
            g_autofree char *txt = g_strndup(el, MIN(len, 300));
            client_fail(w, c, txt);
        } else {
            registered(w, c);
        }
        return;
    case ST_FEATURES2:
        if (!g_str_equal(local, "features"))
            return;
        c->session_needed = has(el, len, "xmpp-session") && !has(el, len, "<optional");
        c->st = ST_BIND;
        client_sendf(w, c,
                     "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     "<resource>%s</resource></bind></iq>",
                     w->o->resource);
        return;
    case ST_BIND:
    case ST_SESSION:
        if (!g_str_equal(local, "iq"))
            return;
        if (!attr_is(el, len, "type", "result")) {
            g_autofree char *txt = g_strndup(el, MIN(len, 300));
            client_fail(w, c, txt);
            return;
        }
        if (c->st == ST_BIND && c->session_needed) {
            c->st = ST_SESSION;
            client_send(
                w, c,
                "<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
                79);
            return;
        }
        logged_in(w, c);
        if (w->o->scenario == SCEN_PRESENCE || w->o->scenario == SCEN_PEP)
            presence_subscribe(w, c);
        return;
    case ST_ONLINE:
    case ST_OFFLINE:
        if (w->muc) {
            bench_muc_element(w->muc, (int)(c - w->c), local, el, len);
            return;
        }
        if (w->o->scenario == SCEN_MAM) {
            /* The results are messages; only the closing IQ counts. */
            if (g_str_equal(local, "iq") && !attr_is(el, len, "type", "get") &&
                !attr_is(el, len, "type", "set"))
                mam_done(w, c, el, len);
            return;
        }
        if (g_str_equal(local, "message") || g_str_equal(local, "presence") ||
            g_str_equal(local, "iq"))
            c->h_in++;
        else if (w->o->sm && g_str_equal(local, "r"))
            client_sendf(w, c, "<a xmlns='urn:xmpp:sm:3' h='%u'/>", c->h_in);
        else if (g_str_equal(local, "enabled"))
            c->h_in = 0;
        if (g_str_equal(local, "message") && w->o->scenario == SCEN_PEP)
            pep_on_message(w, el, len);
        else if (g_str_equal(local, "message"))
            on_message(w, c, el, len);
        else if (g_str_equal(local, "presence"))
            on_presence(w, c, el, len);
        else if (g_str_equal(local, "iq") &&
                 (attr_is(el, len, "type", "get") || attr_is(el, len, "type", "set"))) {
            /* Server pings and the like: an error keeps them quiet. */
            char *id = NULL;
            const char *p = memmem(el, len, "id=", 3);
            if (p) {
                const char *q = memchr(p + 4, p[3], (gsize)(el + len - p - 4));
                if (q)
                    id = g_strndup(p + 4, (gsize)(q - p - 4));
            }
            const char *from_p = memmem(el, len, "from=", 5);
            g_autofree char *from = NULL;
            if (from_p) {
                const char *q = memchr(from_p + 6, from_p[5], (gsize)(el + len - from_p - 6));
                if (q)
                    from = g_strndup(from_p + 6, (gsize)(q - from_p - 6));
            }
            if (w->o->scenario == SCEN_PEP && pep_is_caps_query(el, len)) {
                g_autofree char *answer = pep_caps_answer(id, from);
                client_send(w, c, answer, strlen(answer));
            } else {
                client_sendf(w, c, "<iq type='result' id='%s'%s%s%s/>", id ? id : "",
                             from ? " to='" : "", from ? from : "", from ? "'" : "");
            }
            g_free(id);
        }
        return;
    default:
        return;
    }
}

/* Scans new input for complete top-level elements. */
static void scan_input(Worker *w, Client *c)
{
    gsize i = c->scan;
    while (i < c->rx_len && c->fd >= 0) {
        char *lt = memchr(c->rx + i, '<', c->rx_len - i);
        if (!lt) {
            i = c->rx_len;
            break;
        }
        gsize tag_start = (gsize)(lt - c->rx);
        char *gt = memchr(lt, '>', c->rx_len - tag_start);
        if (!gt) {
            i = tag_start;
            break;
        }
        gsize tag_end = (gsize)(gt - c->rx) + 1;
        char kind = tag_start + 1 < c->rx_len ? c->rx[tag_start + 1] : 0;
        i = tag_end;
        if (kind == '?' || kind == '!')
            continue;
        if (kind == '/') {
            c->depth--;
            if (c->depth <= 0) {
                client_fail(w, c, "stream closed by the server");
                return;
            }
            if (c->depth == 1) {
                on_element(w, c, c->rx + c->el_start, tag_end - c->el_start);
                if (c->fd < 0)
                    return;
            }
            continue;
        }
        gboolean empty = gt[-1] == '/';
        if (c->depth == 1)
            c->el_start = tag_start;
        if (empty) {
            if (c->depth == 1) {
                on_element(w, c, c->rx + tag_start, tag_end - tag_start);
                if (c->fd < 0)
                    return;
            }
        } else {
            c->depth++;
        }
    }
    /* Drop what is consumed: everything before the current element (or
     * before i when between elements). */
    gsize keep_from = c->depth >= 2 ? c->el_start : i;
    if (keep_from > 0) {
        memmove(c->rx, c->rx + keep_from, c->rx_len - keep_from);
        c->rx_len -= keep_from;
        if (c->depth >= 2)
            c->el_start = 0;
        i -= keep_from;
    }
    c->scan = i;
    if (c->rx_len == 0 && c->rx_cap > 4096) {
        g_clear_pointer(&c->rx, g_free);
        c->rx_cap = 0;
    }
}

static void on_readable(Worker *w, Client *c)
{
    if (c->st == ST_HANDSHAKE) {
        do_handshake(w, c);
        if (c->st != ST_FEATURES)
            return;
    }
    for (int rounds = 0; rounds < 8 && c->fd >= 0; rounds++) {
        if (c->rx_cap - c->rx_len < 4096) {
            c->rx_cap = MAX(c->rx_cap * 2, c->rx_len + 16384);
            c->rx = g_realloc(c->rx, c->rx_cap);
        }
        ssize_t n;
        if (c->tls_done) {
            n = gnutls_record_recv(c->tls, c->rx + c->rx_len, c->rx_cap - c->rx_len);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                break;
            if (n < 0) {
                client_fail(w, c, gnutls_strerror((int)n));
                return;
            }
        } else {
            n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n < 0) {
                client_fail(w, c, g_strerror(errno));
                return;
            }
        }
        if (n == 0) {
            client_fail(w, c, "connection closed by the server");
            return;
        }
        c->rx_len += (gsize)n;
        scan_input(w, c);
        if (c->fd < 0) /* failed, or done (register) */
            return;
        if (c->st == ST_HANDSHAKE)
            break;
        if (c->tls_done && gnutls_record_check_pending(c->tls) > 0)
            continue;
        if ((gsize)n < 4096 && !c->tls_done)
            break;
    }
}

static void on_writable(Worker *w, Client *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            client_fail(w, c, g_strerror(err));
            return;
        }
        c->st = ST_FEATURES;
        send_header(w, c);
        update_events(w, c);
        return;
    }
    if (c->st == ST_HANDSHAKE) {
        do_handshake(w, c);
        return;
    }
    flush_tx(w, c);
}

static void start_connect(Worker *w, Client *c)
{
    const BenchOpts *o = w->o;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        w->connecting++;
        c->fd = -1;
        client_fail(w, c, g_strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->src_addrs > 0) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (guint32)(c->user % o->src_addrs));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            g_printerr("bench: bind: %s\n", g_strerror(errno));
    }
    int port = o->nports ? o->ports[c->user % o->nports] : o->port; /* cluster: spread users */
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((guint16)port)};
    inet_pton(AF_INET, o->host, &dst.sin_addr);
    c->fd = fd;
    c->st = ST_CONNECTING;
    w->connecting++;
    int rc = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (rc < 0 && errno != EINPROGRESS) {
        client_fail(w, c, g_strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (guint32)(c - w->c)};
    c->want_out = TRUE;
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- control ------------------------------------------------------------- */

static void report(Worker *w, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void report(Worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    gsize len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(w->rep_fd, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (gsize)n;
    }
}

static void on_control(Worker *w)
{
    char buf[64];
    ssize_t n = read(w->ctl_fd, buf, sizeof buf);
    if (n <= 0) {
        w->quit = TRUE;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        switch (buf[i]) {
        case 'G': /* go: start the measured activity */
            memset(&w->stats.hist, 0, sizeof w->stats.hist);
            w->stats.sent = w->stats.received = 0;
            w->measuring = TRUE;
            w->running = TRUE;
            if (w->o->scenario == SCEN_CHAT)
                chat_start(w);
            if (w->o->scenario == SCEN_MAM)
                mam_start(w);
            if (w->muc)
                bench_muc_start(w->muc);
            w->next_toggle_us = now_us();
            break;
        case 'S': { /* stop measuring and report */
            w->measuring = FALSE;
            w->running = FALSE;
            if (g_getenv("BENCH_DEBUG")) {
                for (int k = 0; k < w->n; k++)
                    g_printerr("c%d st=%d inflight=%d seq=%" G_GUINT64_FORMAT " rx=%zu depth=%d\n",
                               w->c[k].user, w->c[k].st, w->c[k].in_flight, w->c[k].seq,
                               w->c[k].rx_len, w->c[k].depth);
            }
            g_autofree char *h = hist_serialize(&w->stats.hist);
            report(w, "M %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %s\n", w->stats.sent,
                   w->stats.received, h);
            break;
        }
        case 'Q':
            w->quit = TRUE;
            break;
        default:
            break;
        }
    }
}

/* Presence set-up: every online client has the approval of each contact. */
static gboolean subscriptions_done(Worker *w)
{
    if (w->o->scenario != SCEN_PRESENCE && w->o->scenario != SCEN_PEP)
        return TRUE;
    for (int i = 0; i < w->n; i++)
        if (w->c[i].st == ST_ONLINE && w->c[i].subscribed < w->o->roster)
            return FALSE;
    return TRUE;
}

/* MUC Light activity: clients take turns sending to their room. */
static void muclight_tick(Worker *w)
{
    if (!w->running || w->o->msg_rate <= 0 || w->o->scenario != SCEN_MUCLIGHT)
        return;
    guint64 now = now_us();
    guint64 step = (guint64)(1e6 / (w->o->msg_rate / w->o->procs));
    int budget = 1000;
    while (w->next_toggle_us <= now && budget-- > 0) {
        w->next_toggle_us += step;
        for (int tries = 0; tries < w->n; tries++) {
            Client *c = &w->c[w->toggle_cursor];
            w->toggle_cursor = (w->toggle_cursor + 1) % w->n;
            if (c->st != ST_ONLINE)
                continue;
            g_autofree char *m = muclight_message(w->o, c->user, now_us(), w->body_pad);
            client_send(w, c, m, strlen(m));
            if (w->measuring)
                w->stats.sent++;
            break;
        }
    }
    if (now > w->next_toggle_us + 1000000)
        w->next_toggle_us = now; /* cannot keep up: do not build a backlog */
}

/* PEP: a tune notification arrived. */
static void pep_on_message(Worker *w, const char *el, gsize len)
{
    guint64 sent = pep_notification_sent_us(el, len);
    if (!sent || !w->measuring)
        return;
    guint64 now = now_us();
    w->stats.received++;
    hist_add(&w->stats.hist, now >= sent ? now - sent : 0);
}

/* PEP activity: clients take turns publishing a tune. */
static void pep_tick(Worker *w)
{
    if (!w->running || w->o->toggles <= 0 || w->o->scenario != SCEN_PEP)
        return;
    guint64 now = now_us();
    guint64 step = (guint64)(1e6 / (w->o->toggles / w->o->procs));
    int budget = 1000;
    while (w->next_toggle_us <= now && budget-- > 0) {
        w->next_toggle_us += step;
        Client *c = &w->c[w->toggle_cursor];
        w->toggle_cursor = (w->toggle_cursor + 1) % w->n;
        if (c->st != ST_ONLINE)
            continue;
        g_autofree char *p = pep_publish(++c->seq, now);
        client_send(w, c, p, strlen(p));
        if (w->measuring)
            w->stats.sent++;
    }
    if (now > w->next_toggle_us + 1000000)
        w->next_toggle_us = now; /* cannot keep up: do not build a backlog */
}

/* Presence activity: clients take turns going unavailable and back. */
static void presence_tick(Worker *w)
{
    if (!w->running || w->o->toggles <= 0 || w->o->scenario != SCEN_PRESENCE)
        return;
    guint64 now = now_us();
    double per_proc = w->o->toggles / w->o->procs;
    guint64 step = (guint64)(1e6 / per_proc);
    int budget = 1000;
    while (w->next_toggle_us <= now && budget-- > 0) {
        w->next_toggle_us += step;
        for (int tries = 0; tries < w->n; tries++) {
            Client *c = &w->c[w->toggle_cursor];
            w->toggle_cursor = (w->toggle_cursor + 1) % w->n;
            if (c->st == ST_ONLINE) {
                client_send(w, c, "<presence type='unavailable'/>", 30);
                c->st = ST_OFFLINE;
                if (w->measuring)
                    w->stats.sent++;
                break;
            }
            if (c->st == ST_OFFLINE) {
                client_send(w, c, "<presence/>", 11);
                c->st = ST_ONLINE;
                if (w->measuring)
                    w->stats.sent++;
                break;
            }
        }
    }
    if (now > w->next_toggle_us + 1000000)
        w->next_toggle_us = now; /* cannot keep up: do not build a backlog */
}

int worker_run(const BenchOpts *o, int lo, int hi, int ctl_fd, int rep_fd, int index)
{
    Worker w_ = {0}, *w = &w_;
    w->o = o;
    w->ctl_fd = ctl_fd;
    w->rep_fd = rep_fd;
    w->index = index;
    w->lo = lo;
    w->n = hi - lo;
    w->c = g_new0(Client, MAX(w->n, 1));
    w->rate = o->rate > 0 ? o->rate / o->procs : 0;
    w->body_pad = g_malloc(o->body_size + 2);
    w->body_pad[0] = o->body_size > 0 ? ' ' : '\0';
    memset(w->body_pad + 1, 'x', o->body_size > 0 ? (gsize)o->body_size - 1 : 0);
    w->body_pad[o->body_size > 0 ? o->body_size : 0] = '\0';
    for (int i = 0; i < w->n; i++) {
        w->c[i].fd = -1;
        w->c[i].user = lo + i;
        /* Chat: users 2k and 2k+1 talk to each other; ranges are even. */
        w->c[i].peer = i ^ 1;
        if (w->c[i].peer >= w->n)
            w->c[i].peer = i;
    }
    if (o->starttls) {
        gnutls_certificate_allocate_credentials(&w->cred);
    }
    if (o->scenario == SCEN_MUC)
        w->muc = bench_muc_new(w, o, w->n);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = G_MAXUINT32};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, ctl_fd, &ev);
    w->start_us = now_us();
    guint64 deadline = w->start_us + (guint64)(o->login_timeout * 1e6);

    struct epoll_event evs[512];
    while (!w->quit) {
        /* Pace the connects. */
        guint64 now = now_us();
        if (w->next_connect < w->n) {
            int target = w->n;
            if (w->rate > 0)
                target = MIN(w->n, (int)((double)(now - w->start_us) / 1e6 * w->rate) + 1);
            while (w->next_connect < target && w->connecting < o->inflight) {
                start_connect(w, &w->c[w->next_connect]);
                w->next_connect++;
            }
        }
        gboolean logins_done = w->next_connect == w->n && w->connecting == 0;
        if (logins_done && !w->logins_done_us)
            w->logins_done_us = now;
        /* Presence set-up waits until the subscriptions are answered (at
         * most a minute): a server still busy with them would otherwise
         * spend the measured window on the set-up. */
        if (!w->login_reported &&
            ((logins_done && ((subscriptions_done(w) && (!w->muc || bench_muc_ready(w->muc))) ||
                              now > w->logins_done_us + 60000000u)) ||
             now > deadline)) {
            w->login_reported = TRUE;
            w->ready_us = now;
            report(w, "R %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %.6f\n", w->stats.logged_in,
                   w->stats.failed + (guint64)w->connecting, (double)(now - w->start_us) / 1e6);
        }
        presence_tick(w);
        muclight_tick(w);
        if (w->muc)
            bench_muc_tick(w->muc, w->body_pad);
        pep_tick(w);
        int timeout = (w->next_connect < w->n || w->running) ? 2 : 200;
        int n = epoll_wait(w->ep, evs, G_N_ELEMENTS(evs), timeout);
        for (int i = 0; i < n; i++) {
            guint32 id = evs[i].data.u32;
            if (id == G_MAXUINT32) {
                on_control(w);
                continue;
            }
            Client *c = &w->c[id];
            if (c->st == ST_DEAD || c->fd < 0)
                continue;
            if (evs[i].events & EPOLLOUT)
                on_writable(w, c);
            if (c->st != ST_DEAD && c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(w, c);
        }
    }
    for (int i = 0; i < w->n; i++)
        if (w->c[i].fd >= 0) {
            /* Closing the stream politely would cost the server work we do
             * not measure; a plain close is what a crowd of dropped
             * clients looks like. */
            client_close(w, &w->c[i]);
        }
    if (w->cred)
        gnutls_certificate_free_credentials(w->cred);
    bench_muc_free(w->muc);
    g_free(w->c);
    g_free(w->body_pad);
    close(w->ep);
    return 0;
}

/* For scenario files (bench.h). */
void bench_send(BenchWorker *w, int idx, const char *data, gsize len)
{
    client_send(w, &w->c[idx], data, len);
}

gboolean bench_online(BenchWorker *w, int idx)
{
    return w->c[idx].st == ST_ONLINE;
}

int bench_user(BenchWorker *w, int idx)
{
    return w->c[idx].user;
}

gboolean bench_measuring(BenchWorker *w)
{
    return w->measuring;
}

gboolean bench_running(BenchWorker *w)
{
    return w->running;
}

WorkerStats *bench_stats(BenchWorker *w)
{
    return &w->stats;
}
