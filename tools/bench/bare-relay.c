/* bare-relay: NOT an XMPP server. A minimal single-threaded epoll
 * forwarder that answers the client side of meerkat-bench's login (stream
 * header, SASL PLAIN, restart, bind, presence) with canned replies and
 * forwards each <message/> byte for byte to the connection of the user
 * its `to` names. No XML parser, no JID preparation, no stamping, no
 * storage, no password check: it measures what the kernel, loopback TCP
 * and the load generator cost for the benchmark's byte exchange, the
 * upper bound every server figure is quoted against
 * (docs/benchmarks.md).
 *
 *   bare-relay [--address 127.0.0.1] [--port 5299] [--domain localhost] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
    R_HEADER,  /* before the first stream header */
    R_AUTH,    /* features sent, waiting for <auth> */
    R_HEADER2, /* after <success/>, waiting for the new header */
    R_OPEN,    /* bound or binding */
} RState;

typedef struct {
    int fd;
    RState st;
    char *user; /* localpart after auth */
    char *rx;
    gsize rx_len, rx_cap;
    char *tx;
    gsize tx_len, tx_cap;
    gboolean want_out;
} Conn;

static int ep;
static const char *domain = "localhost";
static GHashTable *by_user; /* localpart -> Conn (borrowed) */

static void conn_free(Conn *c)
{
    if (c->user && g_hash_table_lookup(by_user, c->user) == c)
        g_hash_table_remove(by_user, c->user);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    g_free(c->user);
    g_free(c->rx);
    g_free(c->tx);
    g_free(c);
}

static void set_out(Conn *c, gboolean want)
{
    if (want == c->want_out)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(Conn *c)
{
    while (c->tx_len > 0) {
        ssize_t n = send(c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            c->tx_len = 0; /* reading will notice the close */
            break;
        }
        memmove(c->tx, c->tx + n, c->tx_len - (gsize)n);
        c->tx_len -= (gsize)n;
    }
    if (c->tx_len == 0 && c->tx_cap > 0) {
        g_clear_pointer(&c->tx, g_free);
        c->tx_cap = 0;
    }
    set_out(c, c->tx_len > 0);
}

/* Queues @len bytes; written at once when the socket takes them. */
static void put(Conn *c, const char *data, gsize len)
{
    if (c->tx_len == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return;
        if (n > 0) {
            data += n;
            len -= (gsize)n;
        }
    }
    if (c->tx_len + len > c->tx_cap) {
        c->tx_cap = MAX(c->tx_cap * 2, c->tx_len + len + 512);
        c->tx = g_realloc(c->tx, c->tx_cap);
    }
    memcpy(c->tx + c->tx_len, data, len);
    c->tx_len += len;
    set_out(c, TRUE);
}

static void puts_c(Conn *c, const char *s)
{
    put(c, s, strlen(s));
}

static void send_header(Conn *c, const char *features)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
                     " xmlns:stream='http://etherx.jabber.org/streams' id='relay'"
                     " from='%s' version='1.0'><stream:features>%s</stream:features>",
                     domain, features);
    put(c, buf, (gsize)n);
}

/* Handles the complete units at the start of rx; returns the bytes used,
 * 0 when more input is needed, -1 to close. */
static gssize step(Conn *c)
{
    char *b = c->rx, *end = c->rx + c->rx_len;
    gsize len = c->rx_len;
    switch (c->st) {
    case R_HEADER:
    case R_HEADER2: {
        char *h = memmem(b, len, "<stream:stream", 14);
        char *gt = h ? memchr(h, '>', (gsize)(end - h)) : NULL;
        if (!gt)
            return 0;
        if (c->st == R_HEADER) {
            send_header(c, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                           "<mechanism>PLAIN</mechanism></mechanisms>");
            c->st = R_AUTH;
        } else {
            send_header(c, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
            c->st = R_OPEN;
        }
        return gt + 1 - b;
    }
    case R_AUTH: {
        char *close_tag = memmem(b, len, "</auth>", 7);
        if (!close_tag)
            return 0;
        char *gt = memchr(b, '>', (gsize)(close_tag - b));
        if (!gt)
            return -1;
        g_autofree char *b64 = g_strndup(gt + 1, (gsize)(close_tag - gt - 1));
        gsize raw_len = 0;
        g_autofree guchar *raw = g_base64_decode(b64, &raw_len);
        /* authzid NUL authcid NUL password */
        guchar *nul = raw ? memchr(raw, 0, raw_len) : NULL;
        if (!nul)
            return -1;
        c->user = g_strndup((char *)nul + 1, raw_len - (gsize)(nul + 1 - raw));
        g_hash_table_replace(by_user, c->user, c);
        puts_c(c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        c->st = R_HEADER2;
        return close_tag + 7 - b;
    }
    case R_OPEN: {
        char *lt = memchr(b, '<', len);
        if (!lt)
            return (gssize)len;
        gsize rest = (gsize)(end - lt);
        if (rest < 3)
            return 0;
        if (lt[1] == 'm') { /* <message ... </message> */
            char *close_tag = memmem(lt, rest, "</message>", 10);
            if (!close_tag)
                return 0;
            char *stop = close_tag + 10;
            char *to = memmem(lt, (gsize)(stop - lt), "to='", 4);
            if (to) {
                char *at = memchr(to + 4, '@', (gsize)(stop - to - 4));
                if (at) {
                    char name[256];
                    gsize nl = MIN((gsize)(at - to - 4), sizeof name - 1);
                    memcpy(name, to + 4, nl);
                    name[nl] = '\0';
                    Conn *dst = g_hash_table_lookup(by_user, name);
                    if (dst)
                        put(dst, lt, (gsize)(stop - lt));
                }
            }
            return stop - b;
        }
        if (lt[1] == 'i') { /* the bind request (or any iq: answered the same) */
            char *close_tag = memmem(lt, rest, "</iq>", 5);
            if (!close_tag)
                return 0;
            char buf[512];
            int n = snprintf(buf, sizeof buf,
                             "<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
                             "xmpp-bind'><jid>%s@%s/r</jid></bind></iq>",
                             c->user, domain);
            put(c, buf, (gsize)n);
            return close_tag + 5 - b;
        }
        if (lt[1] == 'p') { /* presence: dropped */
            char *gt = memchr(lt, '>', rest);
            if (!gt)
                return 0;
            if (gt[-1] == '/')
                return gt + 1 - b;
            char *close_tag = memmem(lt, rest, "</presence>", 11);
            return close_tag ? close_tag + 11 - b : 0;
        }
        if (lt[1] == '/')
            return -1; /* </stream:stream> */
        char *gt = memchr(lt, '>', rest);
        return gt ? gt + 1 - b : 0;
    }
    }
    return -1;
}

static void on_read(Conn *c)
{
    for (;;) {
        if (c->rx_cap - c->rx_len < 4096) {
            c->rx_cap = MAX(c->rx_cap * 2, c->rx_len + 16384);
            c->rx = g_realloc(c->rx, c->rx_cap);
        }
        ssize_t n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            conn_free(c);
            return;
        }
        c->rx_len += (gsize)n;
        gssize used;
        while (c->rx_len > 0 && (used = step(c)) != 0) {
            if (used < 0) {
                conn_free(c);
                return;
            }
            memmove(c->rx, c->rx + used, c->rx_len - (gsize)used);
            c->rx_len -= (gsize)used;
        }
        if ((gsize)n < 4096)
            break;
    }
    /* Idle connections keep no buffer. */
    if (c->rx_len == 0) {
        g_clear_pointer(&c->rx, g_free);
        c->rx_cap = 0;
    }
}

int main(int argc, char **argv)
{
    g_autofree char *address = g_strdup("127.0.0.1");
    int port = 5299;
    g_autofree char *dom = NULL;
    GOptionEntry entries[] = {
        {"address", 'a', 0, G_OPTION_ARG_STRING, &address, "listen address (IPv4)", "ADDR"},
        {"port", 'p', 0, G_OPTION_ARG_INT, &port, "listen port", "PORT"},
        {"domain", 'd', 0, G_OPTION_ARG_STRING, &dom, "domain in replies", "DOMAIN"},
        {NULL},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GOptionContext) ctx = g_option_context_new("- the benchmark's machine limit");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("bare-relay: %s\n", error->message);
        return 2;
    }
    if (dom)
        domain = dom;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    by_user = g_hash_table_new(g_str_hash, g_str_equal);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((guint16)port)};
    inet_pton(AF_INET, address, &sa.sin_addr);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
        g_printerr("bare-relay: %s:%d: %s\n", address, port, g_strerror(errno));
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, G_N_ELEMENTS(evs), -1);
        for (int i = 0; i < n; i++) {
            Conn *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Conn *nc = g_new0(Conn, 1);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            /* A connection freed earlier in this batch cannot appear
             * again: each fd has one event per epoll_wait. */
            if (evs[i].events & EPOLLOUT)
                flush(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_read(c);
        }
    }
}
