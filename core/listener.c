/* Listeners: one SO_REUSEPORT socket per worker and address. Each worker
 * watches its own sockets in its epoll set and accepts on them, so new
 * connections land on a worker without any hand-off. */
#define _GNU_SOURCE 1 /* accept4 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Accepts per wake-up; the socket stays readable if more wait. */
#define ACCEPT_BATCH 256
/* Out of descriptors: pause accepting this long instead of spinning. */
#define EMFILE_PAUSE_MS 100
#define DEFAULT_BACKLOG 1024

typedef struct {
    MkListener *l;
    MkWorker *w;
    int fd;
    MkPollWatch *watch;
    GSource *resume;
    gint64 last_log_us;
    guint64 took_one_in; /* the batch whose wake-up took a single connection */
} ListenSock;

struct MkListener {
    MkListenConfig lc; /* own deep copy */
    MkAcceptFunc func;
    gpointer user_data;
    guint16 port;
    GPtrArray *socks; /* of ListenSock*, closed by their workers at stop */

    GMutex lock;
    GCond cond;
    guint live; /* sockets not yet dropped by their worker */
};

/* Descriptors (docs/security.md): new connections are refused while the
 * accepted descriptor's number is within the reserve of RLIMIT_NOFILE
 * (the kernel hands out the lowest free number, so all below it are in
 * use), which keeps descriptors for the database, TLS and the sessions
 * already open. At the limit itself, a spare descriptor is given up to
 * accept and close one waiting connection at a time, so that clients
 * hear "no" at once instead of hanging in the backlog. Process-wide. */
static GMutex spare_lock;
static gint spare_fd = -1;    /* under spare_lock; read atomically below */
static gboolean spare_wanted; /* under spare_lock: the spare was open once */
static guint fd_reserve_conf; /* 0 = auto */
static gint fd_threshold;     /* atomic; 0 = not computed yet */
static gint64 refused_reserve, dropped_at_limit;

static int compute_threshold(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > G_MAXINT)
        return G_MAXINT;
    int limit = (int)rl.rlim_cur;
    int reserve = fd_reserve_conf ? (int)fd_reserve_conf : MAX(32, limit / 20);
    return MAX(limit - reserve, 16);
}

void mk_listener_set_fd_reserve(guint reserve)
{
    fd_reserve_conf = reserve;
    g_atomic_int_set(&fd_threshold, compute_threshold());
    g_mutex_lock(&spare_lock);
    if (spare_fd < 0)
        g_atomic_int_set(&spare_fd, open("/dev/null", O_RDONLY | O_CLOEXEC));
    spare_wanted = spare_wanted || spare_fd >= 0;
    g_mutex_unlock(&spare_lock);
}

/* The spare can be lost: between drop_one's close() and its accept4(),
 * another worker's accept takes the freed number, and the spare cannot
 * be opened again while the process is at its limit; every later
 * connection would then hang in the backlog. A connection accepted while
 * the spare is missing gives its descriptor back to the spare and is
 * closed at once (it would have been refused at the limit anyway). TRUE
 * when @fd was used so. Any worker. */
static gboolean take_back_spare(int fd)
{
    if (G_LIKELY(g_atomic_int_get(&spare_fd) >= 0))
        return FALSE;
    gboolean took = FALSE;
    g_mutex_lock(&spare_lock);
    if (spare_fd < 0 && spare_wanted) {
        close(fd);
        g_atomic_int_set(&spare_fd, open("/dev/null", O_RDONLY | O_CLOEXEC));
        took = TRUE;
        __atomic_add_fetch(&dropped_at_limit, 1, __ATOMIC_RELAXED);
    }
    g_mutex_unlock(&spare_lock);
    return took;
}

void mk_listener_fd_stats(gint64 *refused, gint64 *dropped)
{
    *refused = __atomic_load_n(&refused_reserve, __ATOMIC_RELAXED);
    *dropped = __atomic_load_n(&dropped_at_limit, __ATOMIC_RELAXED);
}

/* Whether @fd is within the reserve. The limit is read again before
 * refusing: an operator may have raised it (prlimit). */
static gboolean in_reserve(int fd)
{
    int t = g_atomic_int_get(&fd_threshold);
    if (t == 0 || fd < t)
        return FALSE;
    t = compute_threshold();
    g_atomic_int_set(&fd_threshold, t);
    return fd >= t;
}

/* Out of descriptors: the spare one makes room to take one waiting
 * connection and close it. FALSE when there is no spare (another
 * thread has it, or it could not be re-opened). */
static gboolean drop_one(int listen_fd)
{
    gboolean dropped = FALSE;
    g_mutex_lock(&spare_lock);
    /* Another thread may have taken the descriptor freed last time. */
    if (spare_fd < 0)
        g_atomic_int_set(&spare_fd, open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (spare_fd >= 0) {
        close(spare_fd);
        g_atomic_int_set(&spare_fd, -1);
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            dropped = TRUE;
            __atomic_add_fetch(&dropped_at_limit, 1, __ATOMIC_RELAXED);
        }
        g_atomic_int_set(&spare_fd, open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
    g_mutex_unlock(&spare_lock);
    return dropped;
}

static gboolean resume_accepting(gpointer data)
{
    ListenSock *ls = data;
    g_clear_pointer(&ls->resume, g_source_unref);
    mk_poll_watch_modify(ls->watch, EPOLLIN);
    return G_SOURCE_REMOVE;
}

static void pause_accepting(ListenSock *ls, int err)
{
    gint64 now = g_get_monotonic_time();
    if (now - ls->last_log_us >= G_USEC_PER_SEC) {
        ls->last_log_us = now;
        g_warning("listener %s port %u: cannot accept: %s; pausing accepts", ls->l->lc.name,
                  ls->l->port, g_strerror(err));
    }
    if (ls->resume)
        return;
    mk_poll_watch_modify(ls->watch, 0);
    ls->resume = g_timeout_source_new(EMFILE_PAUSE_MS);
    g_source_set_callback(ls->resume, resume_accepting, ls, NULL);
    g_source_attach(ls->resume, mk_worker_context(ls->w));
}

static void on_acceptable(gpointer data, guint32 events)
{
    ListenSock *ls = data;
    MkListener *l = ls->l;
    /* Accepting until EAGAIN costs a failed accept4 per wake-up: at a
     * steady rate, with one connection per wake-up, a second system call
     * per connection. So a wake-up takes one connection, unless the one
     * of the batch just before did so too: then connections queue up and
     * this one takes all of them. The socket is level-triggered: one
     * that still has connections waiting is in the next batch again. */
    guint64 batch = mk_worker_batch_serial(ls->w);
    gboolean drain = batch == ls->took_one_in + 1;

    for (guint i = 0; i < ACCEPT_BATCH; i++) {
        /* The peer's address comes with the connection: no getpeername. */
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(ls->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM: /* firewall */
                continue;
            case EMFILE:
            case ENFILE: {
                int err = errno;
                /* The limit may have been lowered (prlimit): the reserve
                 * follows it from now on. */
                g_atomic_int_set(&fd_threshold, compute_threshold());
                if (drop_one(ls->fd))
                    continue;
                pause_accepting(ls, err);
                return;
            }
            case ENOBUFS:
            case ENOMEM:
                pause_accepting(ls, errno);
                return;
            default:
                g_warning("listener %s: accept: %s", l->lc.name, g_strerror(errno));
                return;
            }
        }
        if (G_UNLIKELY(take_back_spare(fd)))
            continue;
        if (G_UNLIKELY(in_reserve(fd))) {
            close(fd);
            __atomic_add_fetch(&refused_reserve, 1, __ATOMIC_RELAXED);
            continue;
        }
        l->func(ls->w, fd, &peer, &l->lc, l->user_data);
        if (!drain) {
            ls->took_one_in = batch;
            return;
        }
    }
}

static void watch_job(gpointer data)
{
    ListenSock *ls = data;
    ls->watch = mk_poll_watch_add(ls->w, ls->fd, EPOLLIN, on_acceptable, ls);
}

static void sock_dropped(ListenSock *ls)
{
    MkListener *l = ls->l;
    if (ls->fd >= 0)
        close(ls->fd);
    ls->fd = -1;
    g_mutex_lock(&l->lock);
    l->live--;
    g_cond_signal(&l->cond);
    g_mutex_unlock(&l->lock);
}

static void unwatch_job(gpointer data)
{
    ListenSock *ls = data;
    g_clear_pointer(&ls->watch, mk_poll_watch_remove);
    if (ls->resume) {
        g_source_destroy(ls->resume);
        g_clear_pointer(&ls->resume, g_source_unref);
    }
    sock_dropped(ls);
}

static void unwatch_job_destroy(gpointer data)
{
    /* The worker stopped first: its epoll set is gone with it. */
    sock_dropped(data);
}

static char *describe(const struct sockaddr *sa, socklen_t len, guint16 port)
{
    char host[NI_MAXHOST];
    if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
        g_strlcpy(host, "?", sizeof host);
    return sa->sa_family == AF_INET6 ? g_strdup_printf("[%s]:%u", host, port)
                                     : g_strdup_printf("%s:%u", host, port);
}

static void set_port(struct sockaddr *sa, guint16 port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static guint16 bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* One listening socket; on failure the error names the address. */
static int open_socket(MkListener *l, struct addrinfo *ai, gboolean v6only, GError **error)
{
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    set_port((struct sockaddr *)&ss, l->port);
    const char *what = "socket";

    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1;
        what = "setsockopt";
        /* Stanzas are small and complete when written: no Nagle delay.
         * Set on the listening socket, Linux copies it to every accepted
         * one, which saves a system call per connection. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 &&
            (ai->ai_family != AF_INET6 || !v6only ||
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0)) {
            what = "bind";
            if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) == 0) {
                what = "listen";
                if (listen(fd, l->lc.backlog > 0 ? l->lc.backlog : DEFAULT_BACKLOG) == 0)
                    return fd;
            }
        }
    }
    int e = errno;
    g_autofree char *addr = describe((struct sockaddr *)&ss, ai->ai_addrlen, l->port);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "listener %s: cannot %s %s: %s",
                l->lc.name, what, addr, g_strerror(e));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void listener_free(MkListener *l)
{
    g_free(l->lc.name);
    g_free(l->lc.type);
    g_free(l->lc.address);
    g_free(l->lc.certfile);
    g_free(l->lc.keyfile);
    g_ptr_array_unref(l->socks);
    g_mutex_clear(&l->lock);
    g_cond_clear(&l->cond);
    g_free(l);
}

/* See listener.h. Main thread. Returns: (transfer full) */
MkListener *mk_listener_start(MkWorkers *workers, const MkListenConfig *lc, MkAcceptFunc func,
                              gpointer user_data, GError **error)
{
    g_return_val_if_fail(workers && lc && func, NULL);
    MkListener *l = g_new0(MkListener, 1);
    l->lc = *lc;
    l->lc.name = g_strdup(lc->name ? lc->name : "?");
    l->lc.type = g_strdup(lc->type);
    l->lc.address = g_strdup(lc->address);
    l->lc.certfile = g_strdup(lc->certfile);
    l->lc.keyfile = g_strdup(lc->keyfile);
    l->func = func;
    l->user_data = user_data;
    l->port = lc->port;
    l->socks = g_ptr_array_new_with_free_func(g_free);
    g_mutex_init(&l->lock);
    g_cond_init(&l->cond);

    const char *node = lc->address;
    if (node && (!*node || g_str_equal(node, "*")))
        node = NULL;
    struct addrinfo hints = {
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
    };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(node, "0", &hints, &res);
    if (gai != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "listener %s: address %s port %u: %s", l->lc.name, node ? node : "*", lc->port,
                    gai_strerror(gai));
        listener_free(l);
        return NULL;
    }
    /* Both families on one port: keep IPv6 sockets from claiming IPv4. */
    gboolean v6only = res && res->ai_next;
    guint n = mk_workers_count(workers);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        gboolean dup = FALSE;
        for (struct addrinfo *p = res; p != ai; p = p->ai_next)
            dup |= p->ai_addrlen == ai->ai_addrlen &&
                   memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
        if (dup)
            continue;
        for (guint i = 0; i < n; i++) {
            int fd = open_socket(l, ai, v6only, error);
            if (fd < 0)
                goto fail;
            if (l->port == 0)
                l->port = bound_port(fd); /* the others join the same port */
            ListenSock *ls = g_new0(ListenSock, 1);
            ls->l = l;
            ls->w = mk_workers_get(workers, i);
            ls->fd = fd;
            g_ptr_array_add(l->socks, ls);
        }
    }
    freeaddrinfo(res);
    res = NULL;

    l->live = l->socks->len;
    for (guint i = 0; i < l->socks->len; i++) {
        ListenSock *ls = g_ptr_array_index(l->socks, i);
        mk_worker_post(ls->w, watch_job, ls, NULL);
    }
    return l;

fail:
    freeaddrinfo(res);
    for (guint i = 0; i < l->socks->len; i++)
        close(((ListenSock *)g_ptr_array_index(l->socks, i))->fd);
    listener_free(l);
    return NULL;
}

/* See listener.h. Main thread. */
void mk_listener_stop(MkListener *l)
{
    if (!l)
        return;
    g_return_if_fail(mk_worker_self() == NULL);
    for (guint i = 0; i < l->socks->len; i++) {
        ListenSock *ls = g_ptr_array_index(l->socks, i);
        /* After watch_job in the same mailbox: FIFO per poster. */
        mk_worker_post(ls->w, unwatch_job, ls, unwatch_job_destroy);
    }
    g_mutex_lock(&l->lock);
    while (l->live > 0)
        g_cond_wait(&l->cond, &l->lock);
    g_mutex_unlock(&l->lock);
    listener_free(l);
}

/* See listener.h. Any thread. */
guint16 mk_listener_port(MkListener *l)
{
    return l->port;
}
