/* The integration test harness: TAP output, private meerkatd servers,
 * libstrophe clients and raw TCP connections. See harness.h. */
#include "harness.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- TAP ---------------------------------------------------------------- */

static guint tap_count;
static guint tap_failed;
static char tap_name[64] = "test";

/* Servers still running, so a timeout or an early exit can kill them. */
#define MAX_SERVERS 16
static volatile pid_t live_pids[MAX_SERVERS];

static void kill_live_servers(void)
{
    for (guint i = 0; i < MAX_SERVERS; i++) {
        pid_t pid = live_pids[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            live_pids[i] = 0;
        }
    }
}

static void on_alarm(int sig)
{
    char line[160];
    /* snprintf is not async-signal-safe in theory; the program is stuck
     * in a poll() here in practice, and it exits right after. */
    int n = snprintf(line, sizeof line, "not ok %u - timeout: %s did not finish in time\n1..%u\n",
                     tap_count + 1, tap_name, tap_count + 1);
    if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
        _exit(3);
    kill_live_servers();
    _exit(1);
}

static void on_exit_kill(void)
{
    kill_live_servers();
}

static void register_pid(pid_t pid)
{
    for (guint i = 0; i < MAX_SERVERS; i++)
        if (live_pids[i] == 0) {
            live_pids[i] = pid;
            return;
        }
}

static void unregister_pid(pid_t pid)
{
    for (guint i = 0; i < MAX_SERVERS; i++)
        if (live_pids[i] == pid)
            live_pids[i] = 0;
}

static GPtrArray *dead_ctxs; /* xmpp_ctx_t* freed at mkt_done */

void mkt_init(const char *name, guint timeout_s)
{
    g_strlcpy(tap_name, name, sizeof tap_name);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    atexit(on_exit_kill);
    alarm(timeout_s);
    xmpp_initialize();
    dead_ctxs = g_ptr_array_new();
}

gboolean mkt_ok(gboolean cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *name = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* A '#' would start a TAP directive. */
    g_strdelimit(name, "#\n", ' ');
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%sok %u - %s\n", cond ? "" : "not ", tap_count, name);
    fflush(stdout);
    return cond;
}

void mkt_skip(const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *name = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_strdelimit(name, "#\n", ' ');
    tap_count++;
    printf("ok %u - %s # SKIP %s\n", tap_count, name, reason);
    fflush(stdout);
}

void mkt_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++)
        if (**l || l[1])
            printf("# %s\n", *l);
    fflush(stdout);
}

int mkt_done(void)
{
    alarm(0);
    for (guint i = 0; i < dead_ctxs->len; i++)
        xmpp_ctx_free(dead_ctxs->pdata[i]);
    g_ptr_array_free(dead_ctxs, TRUE);
    dead_ctxs = NULL;
    xmpp_shutdown();
    if (tap_count == 0)
        mkt_ok(FALSE, "no test case ran");
    printf("1..%u\n", tap_count);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

/* ---- paths and processes ------------------------------------------------ */

static const char *env_or_dot(const char *name)
{
    const char *v = g_getenv(name);
    return v && *v ? v : ".";
}

char *mkt_builddir_path(const char *file)
{
    g_autofree char *p = g_build_filename(env_or_dot("MK_TOP_BUILDDIR"), file, NULL);
    return g_canonicalize_filename(p, NULL);
}

char *mkt_srcdir_path(const char *file)
{
    g_autofree char *p = g_build_filename(env_or_dot("MK_TOP_SRCDIR"), file, NULL);
    return g_canonicalize_filename(p, NULL);
}

char *mkt_meerkatd_path(void)
{
    return mkt_builddir_path("core/meerkatd");
}

char *mkt_meerkatctl_path(void)
{
    return mkt_builddir_path("tools/meerkatctl");
}

int mkt_run(const char *const *argv, char **output)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                      &error)) {
        if (output)
            *output = g_strdup(error->message);
        return -1;
    }
    if (output)
        *output = g_strconcat(out ? out : "", err ? err : "", NULL);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -1;
}

/* ---- servers ------------------------------------------------------------ */

struct MktServer {
    char *dir;
    char *conf;
    char *confd;
    char *log;
    guint16 port;
    pid_t pid;
    int exit_status;    /* waitpid status once reaped, else -1 */
    gboolean log_shown; /* its tail was printed already */
};

static guint16 free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    guint16 port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static gboolean copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(from, &data, &len, &error) ||
        !g_file_set_contents(to, data, (gssize)len, &error)) {
        mkt_diag("copy %s: %s", from, error->message);
        return FALSE;
    }
    return TRUE;
}

gboolean mkt_server_enable_module(MktServer *srv, const char *module)
{
    g_autofree char *name = g_strconcat(module, ".conf", NULL);
    g_autofree char *rel = g_build_filename("conf.d", "available", name, NULL);
    g_autofree char *from = mkt_srcdir_path(rel);
    g_autofree char *to = g_build_filename(srv->confd, name, NULL);
    return copy_file(from, to);
}

MktServer *mkt_server_prepare(const char *extra_conf, const char *const *modules)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("mkt-XXXXXX", &error);
    if (!dir) {
        mkt_diag("mkdtemp: %s", error->message);
        return NULL;
    }
    MktServer *srv = g_new0(MktServer, 1);
    srv->dir = g_steal_pointer(&dir);
    srv->conf = g_build_filename(srv->dir, "meerkat.conf", NULL);
    srv->confd = g_build_filename(srv->dir, "conf.d", NULL);
    srv->log = g_build_filename(srv->dir, "meerkatd.log", NULL);
    srv->port = free_port();
    srv->exit_status = -1;
    g_autofree char *state = g_build_filename(srv->dir, "state", NULL);
    g_mkdir_with_parents(srv->confd, 0755);
    g_mkdir_with_parents(state, 0755);
    for (const char *const *m = modules; m && *m; m++)
        mkt_server_enable_module(srv, *m);

    g_autofree char *moddir = mkt_builddir_path("modules/.libs");
    g_autofree char *conf = g_strdup_printf("[general]\n"
                                            "hosts = localhost\n"
                                            "state_dir = %s\n"
                                            "module_dir = %s\n"
                                            "conf_dir = conf.d\n"
                                            "workers = 2\n"
                                            "log_level = debug\n"
                                            "\n"
                                            "[auth]\n"
                                            "mechanisms = PLAIN;SCRAM-SHA-1;SCRAM-SHA-256\n"
                                            "\n"
                                            "[storage]\n"
                                            "driver = sqlite3\n"
                                            "database = meerkat.db\n"
                                            "\n"
                                            "[listen.c2s]\n"
                                            "type = c2s\n"
                                            "address = 127.0.0.1\n"
                                            "port = %u\n"
                                            "tls = optional\n"
                                            "\n"
                                            "%s\n",
                                            state, moddir, srv->port, extra_conf ? extra_conf : "");
    /* GKeyFile refuses a group that appears twice, so merge repeated
     * sections here: parse the text section by section, later keys win. */
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) lines = g_strsplit(conf, "\n", -1);
    char *group = NULL;
    for (char **l = lines; *l; l++) {
        g_autofree char *line = g_strstrip(g_strdup(*l));
        if (!*line || *line == '#')
            continue;
        if (*line == '[' && g_str_has_suffix(line, "]")) {
            g_free(group);
            group = g_strndup(line + 1, strlen(line) - 2);
            /* An empty section must still exist. */
            if (!g_key_file_has_group(kf, group))
                g_key_file_set_comment(kf, group, NULL, " section", NULL);
            continue;
        }
        char *eq = strchr(line, '=');
        if (!group || !eq) {
            mkt_diag("bad extra_conf line: %s", line);
            continue;
        }
        *eq = '\0';
        g_autofree char *key = g_strstrip(g_strdup(line));
        g_autofree char *value = g_strstrip(g_strdup(eq + 1));
        g_key_file_set_value(kf, group, key, value);
    }
    g_free(group);
    if (!g_key_file_save_to_file(kf, srv->conf, &error)) {
        mkt_diag("write %s: %s", srv->conf, error->message);
        mkt_server_stop(srv);
        return NULL;
    }
    return srv;
}

static gboolean reap(MktServer *srv, gboolean block)
{
    if (srv->pid <= 0)
        return TRUE;
    int status = 0;
    pid_t r = waitpid(srv->pid, &status, block ? 0 : WNOHANG);
    if (r == srv->pid) {
        srv->exit_status = status;
        unregister_pid(srv->pid);
        srv->pid = 0;
        return TRUE;
    }
    return FALSE;
}

gboolean mkt_server_alive(MktServer *srv)
{
    return srv && srv->pid > 0 && !reap(srv, FALSE);
}

static gboolean port_accepts(guint16 port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    gboolean ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void print_log_tail(MktServer *srv, guint lines)
{
    srv->log_shown = TRUE;
    g_autofree char *text = mkt_server_log(srv);
    g_auto(GStrv) all = g_strsplit(text, "\n", -1);
    guint n = g_strv_length(all);
    guint from = n > lines ? n - lines : 0;
    mkt_diag("---- tail of %s ----", srv->log);
    for (guint i = from; i < n; i++)
        if (*all[i])
            mkt_diag("%s", all[i]);
    mkt_diag("----");
}

gboolean mkt_server_launch(MktServer *srv)
{
    g_autofree char *bin = mkt_meerkatd_path();
    int logfd = open(srv->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        mkt_diag("open %s: %s", srv->log, g_strerror(errno));
        return FALSE;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return FALSE;
    }
    if (pid == 0) {
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        execl(bin, bin, "-c", srv->conf, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    srv->pid = pid;
    srv->exit_status = -1;
    register_pid(pid);

    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < deadline) {
        if (!mkt_server_alive(srv)) {
            mkt_diag("meerkatd exited (status 0x%x) before listening", srv->exit_status);
            print_log_tail(srv, 40);
            return FALSE;
        }
        if (port_accepts(srv->port))
            return TRUE;
        g_usleep(20000);
    }
    mkt_diag("meerkatd did not listen on 127.0.0.1:%u within 10 s", srv->port);
    print_log_tail(srv, 40);
    return FALSE;
}

MktServer *mkt_server_start(const char *extra_conf, const char *const *modules)
{
    MktServer *srv = mkt_server_prepare(extra_conf, modules);
    if (!srv)
        return NULL;
    if (!mkt_server_launch(srv)) {
        mkt_server_stop(srv);
        return NULL;
    }
    return srv;
}

static gboolean terminate(MktServer *srv);

gboolean mkt_server_stop(MktServer *srv)
{
    if (!srv)
        return FALSE;
    gboolean clean = terminate(srv);
    gboolean never_ran = srv->exit_status == -1;
    if (!never_ran && !clean && !srv->log_shown) {
        if (srv->exit_status >= 0 && WIFSIGNALED(srv->exit_status))
            mkt_diag("meerkatd died of signal %d", WTERMSIG(srv->exit_status));
        else if (srv->exit_status >= 0 && WIFEXITED(srv->exit_status))
            mkt_diag("meerkatd exited with status %d", WEXITSTATUS(srv->exit_status));
    }
    gboolean keep = g_getenv("MK_KEEP_TMP") != NULL;
    if ((!never_ran && !clean) || tap_failed) {
        if (g_file_test(srv->log, G_FILE_TEST_EXISTS) && !srv->log_shown)
            print_log_tail(srv, 60);
        keep = TRUE;
    }
    if (keep) {
        mkt_diag("kept %s", srv->dir);
    } else {
        const char *argv[] = {"rm", "-rf", srv->dir, NULL};
        mkt_run(argv, NULL);
    }
    g_free(srv->dir);
    g_free(srv->conf);
    g_free(srv->confd);
    g_free(srv->log);
    g_free(srv);
    return never_ran ? FALSE : clean;
}

static gboolean terminate(MktServer *srv)
{
    if (srv->pid > 0 && mkt_server_alive(srv)) {
        kill(srv->pid, SIGTERM);
        gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (!reap(srv, FALSE) && g_get_monotonic_time() < deadline)
            g_usleep(10000);
        if (srv->pid > 0) {
            mkt_diag("meerkatd did not exit within 5 s of SIGTERM; killing it");
            kill(srv->pid, SIGKILL);
            reap(srv, TRUE);
            srv->exit_status = -2;
        }
    }
    return srv->exit_status >= 0 && WIFEXITED(srv->exit_status) &&
           WEXITSTATUS(srv->exit_status) == 0;
}

gboolean mkt_server_restart(MktServer *srv)
{
    gboolean clean = terminate(srv);
    if (!clean)
        mkt_diag("meerkatd did not exit cleanly before the restart (status 0x%x)",
                 srv->exit_status);
    return mkt_server_launch(srv) && clean;
}

int mkt_server_exit_code(MktServer *srv)
{
    if (srv->pid > 0 && !reap(srv, FALSE))
        return -1;
    if (srv->exit_status == -2)
        return 128 + SIGKILL;
    if (srv->exit_status < 0)
        return -1;
    if (WIFEXITED(srv->exit_status))
        return WEXITSTATUS(srv->exit_status);
    return 128 + WTERMSIG(srv->exit_status);
}

void mkt_server_reload(MktServer *srv, guint settle_ms)
{
    if (srv->pid > 0)
        kill(srv->pid, SIGHUP);
    mkt_pump(settle_ms);
}

guint16 mkt_server_port(MktServer *srv)
{
    return srv->port;
}

const char *mkt_server_conf_path(MktServer *srv)
{
    return srv->conf;
}

const char *mkt_server_dir(MktServer *srv)
{
    return srv->dir;
}

const char *mkt_server_confd(MktServer *srv)
{
    return srv->confd;
}

const char *mkt_server_log_path(MktServer *srv)
{
    return srv->log;
}

char *mkt_server_log(MktServer *srv)
{
    char *text = NULL;
    if (!g_file_get_contents(srv->log, &text, NULL, NULL))
        return g_strdup("");
    return text;
}

gboolean mkt_server_register(MktServer *srv, const char *user, const char *password)
{
    g_autofree char *ctl = mkt_meerkatctl_path();
    const char *argv[] = {ctl, "-c", srv->conf, "register", user, "localhost", password, NULL};
    g_autofree char *out = NULL;
    int rc = mkt_run(argv, &out);
    if (rc != 0) {
        mkt_diag("meerkatctl register %s failed (%d): %s", user, rc, out ? out : "");
        return FALSE;
    }
    return TRUE;
}

/* ---- libstrophe clients ------------------------------------------------- */

struct MktClient {
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    xmpp_log_t log;
    GQueue queue; /* of xmpp_stanza_t* */
    GString *received;
    char *jid;
    char *stream_error;
    char *why;
    gboolean connected;
    gboolean closed; /* DISCONNECT or FAIL seen */
};

static GList *live_clients;

static void client_log(void *userdata, xmpp_log_level_t level, const char *area, const char *msg)
{
    MktClient *c = userdata;
    if (g_str_has_prefix(msg, "RECV: ")) {
        g_string_append(c->received, msg);
        g_string_append_c(c->received, '\n');
    }
    if (level >= XMPP_LEVEL_ERROR && !c->why)
        c->why = g_strdup_printf("%s: %s", area, msg);
    if (g_getenv("MKT_VERBOSE"))
        fprintf(stderr, "[%p %s] %s\n", (void *)c, area, msg);
}

static const char *stream_error_name(xmpp_error_type_t t)
{
    switch (t) {
    case XMPP_SE_BAD_FORMAT:
        return "bad-format";
    case XMPP_SE_BAD_NS_PREFIX:
        return "bad-namespace-prefix";
    case XMPP_SE_CONFLICT:
        return "conflict";
    case XMPP_SE_CONN_TIMEOUT:
        return "connection-timeout";
    case XMPP_SE_HOST_GONE:
        return "host-gone";
    case XMPP_SE_HOST_UNKNOWN:
        return "host-unknown";
    case XMPP_SE_IMPROPER_ADDR:
        return "improper-addressing";
    case XMPP_SE_INTERNAL_SERVER_ERROR:
        return "internal-server-error";
    case XMPP_SE_INVALID_FROM:
        return "invalid-from";
    case XMPP_SE_INVALID_ID:
        return "invalid-id";
    case XMPP_SE_INVALID_NS:
        return "invalid-namespace";
    case XMPP_SE_INVALID_XML:
        return "invalid-xml";
    case XMPP_SE_NOT_AUTHORIZED:
        return "not-authorized";
    case XMPP_SE_POLICY_VIOLATION:
        return "policy-violation";
    case XMPP_SE_REMOTE_CONN_FAILED:
        return "remote-connection-failed";
    case XMPP_SE_RESOURCE_CONSTRAINT:
        return "resource-constraint";
    case XMPP_SE_RESTRICTED_XML:
        return "restricted-xml";
    case XMPP_SE_SEE_OTHER_HOST:
        return "see-other-host";
    case XMPP_SE_SYSTEM_SHUTDOWN:
        return "system-shutdown";
    case XMPP_SE_UNDEFINED_CONDITION:
        return "undefined-condition";
    case XMPP_SE_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    case XMPP_SE_UNSUPPORTED_STANZA_TYPE:
        return "unsupported-stanza-type";
    case XMPP_SE_UNSUPPORTED_VERSION:
        return "unsupported-version";
    case XMPP_SE_XML_NOT_WELL_FORMED:
        return "not-well-formed";
    }
    return "unknown";
}

/* The condition of a stream error: the name of the <stream:error/>
 * child in the streams namespace. libstrophe's own enum cannot be used:
 * it maps "xml-not-well-formed" (an old draft's name) and reports
 * RFC 6120's "not-well-formed" as undefined-condition. */
static char *stream_error_condition(xmpp_stream_error_t *se)
{
    for (xmpp_stanza_t *ch = se->stanza ? xmpp_stanza_get_children(se->stanza) : NULL; ch;
         ch = xmpp_stanza_get_next(ch))
        if (xmpp_stanza_is_tag(ch) &&
            g_strcmp0(xmpp_stanza_get_ns(ch), "urn:ietf:params:xml:ns:xmpp-streams") == 0)
            return g_strdup(xmpp_stanza_get_name(ch));
    return g_strdup(stream_error_name(se->type));
}

static void conn_handler(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
                         xmpp_stream_error_t *se, void *userdata)
{
    MktClient *c = userdata;
    if (se && !c->stream_error)
        c->stream_error = stream_error_condition(se);
    switch (event) {
    case XMPP_CONN_CONNECT:
        c->connected = TRUE;
        g_free(c->jid);
        c->jid = g_strdup(xmpp_conn_get_bound_jid(conn));
        break;
    case XMPP_CONN_RAW_CONNECT:
        break;
    case XMPP_CONN_DISCONNECT:
    case XMPP_CONN_FAIL:
        c->connected = FALSE;
        c->closed = TRUE;
        if (!c->why) {
            if (se)
                c->why = g_strdup_printf("stream error: %s", c->stream_error);
            else
                c->why = g_strdup_printf("disconnected (error %d)", error);
        }
        break;
    }
}

static int stanza_handler(xmpp_conn_t *conn, xmpp_stanza_t *stanza, void *userdata)
{
    MktClient *c = userdata;
    g_queue_push_tail(&c->queue, xmpp_stanza_copy(stanza));
    return 1;
}

static void pump_round(guint timeout_ms)
{
    guint n = g_list_length(live_clients);
    if (n == 0) {
        g_usleep(timeout_ms * 1000);
        return;
    }
    guint each = MAX(1, timeout_ms / n);
    for (GList *l = live_clients; l; l = l->next) {
        MktClient *c = l->data;
        xmpp_run_once(c->ctx, each);
    }
}

void mkt_pump(guint ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;
    while (g_get_monotonic_time() < deadline)
        pump_round(5);
}

static void client_free(MktClient *c)
{
    live_clients = g_list_remove(live_clients, c);
    xmpp_stanza_t *st;
    while ((st = g_queue_pop_head(&c->queue)))
        xmpp_stanza_release(st);
    xmpp_conn_release(c->conn);
    /* Stanzas handed to the test belong to this context: free it last. */
    if (dead_ctxs)
        g_ptr_array_add(dead_ctxs, c->ctx);
    g_string_free(c->received, TRUE);
    g_free(c->jid);
    g_free(c->stream_error);
    g_free(c->why);
    g_free(c);
}

MktClient *mkt_client_connect(MktServer *srv, const char *jid, const char *password, guint flags,
                              char **why)
{
    MktClient *c = g_new0(MktClient, 1);
    c->received = g_string_new(NULL);
    g_queue_init(&c->queue);
    c->log.handler = client_log;
    c->log.userdata = c;
    c->ctx = xmpp_ctx_new(NULL, &c->log);
    c->conn = xmpp_conn_new(c->ctx);
    long xf = XMPP_CONN_FLAG_TRUST_TLS;
    if (!(flags & MKT_ENABLE_SM))
        xf |= XMPP_CONN_FLAG_DISABLE_SM;
    if (flags & MKT_MANDATORY_TLS)
        xf |= XMPP_CONN_FLAG_MANDATORY_TLS;
    if (flags & MKT_DISABLE_TLS)
        xf |= XMPP_CONN_FLAG_DISABLE_TLS;
    if (flags & MKT_DIRECT_TLS)
        xf |= XMPP_CONN_FLAG_LEGACY_SSL;
    xmpp_conn_set_flags(c->conn, xf);
    xmpp_conn_set_jid(c->conn, jid);
    if (password)
        xmpp_conn_set_pass(c->conn, password);
    xmpp_handler_add(c->conn, stanza_handler, NULL, NULL, NULL, c);
    live_clients = g_list_append(live_clients, c);
    if (xmpp_connect_client(c->conn, "127.0.0.1", srv->port, conn_handler, c) != XMPP_EOK) {
        if (why)
            *why = g_strdup("xmpp_connect_client failed");
        client_free(c);
        return NULL;
    }
    if (flags & MKT_NO_WAIT)
        return c;
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!c->connected && !c->closed && g_get_monotonic_time() < deadline)
        pump_round(10);
    if (!c->connected) {
        if (why)
            *why = g_strdup(c->why ? c->why : "timeout: no session within 10 s");
        if (!c->closed) {
            xmpp_disconnect(c->conn);
            mkt_pump(100);
        }
        client_free(c);
        return NULL;
    }
    return c;
}

void mkt_client_send(MktClient *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *xml = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    xmpp_send_raw(c->conn, xml, strlen(xml));
    /* Let it leave now, so that ordering across clients is what the
     * test wrote. */
    xmpp_run_once(c->ctx, 1);
}

const char *mkt_client_jid(MktClient *c)
{
    return c->jid;
}

gboolean mkt_client_connected(MktClient *c)
{
    return c->connected && !c->closed;
}

gboolean mkt_client_secured(MktClient *c)
{
    return xmpp_conn_is_secured(c->conn);
}

const char *mkt_client_stream_error(MktClient *c)
{
    return c->stream_error;
}

const char *mkt_client_received_log(MktClient *c)
{
    return c->received->str;
}

/* "{NS}name" / "{NS}" / "name" against one element. */
static gboolean child_spec_matches(xmpp_stanza_t *el, const char *spec)
{
    const char *name = spec;
    g_autofree char *ns = NULL;
    if (*spec == '{') {
        const char *end = strchr(spec, '}');
        if (!end)
            return FALSE;
        ns = g_strndup(spec + 1, end - spec - 1);
        name = end + 1;
    }
    const char *elname = xmpp_stanza_get_name(el);
    if (!elname || !xmpp_stanza_is_tag(el))
        return FALSE;
    if (*name && g_strcmp0(elname, name) != 0)
        return FALSE;
    if (ns && g_strcmp0(xmpp_stanza_get_ns(el), ns) != 0)
        return FALSE;
    return TRUE;
}

gboolean mkt_stanza_matches(xmpp_stanza_t *st, const char *spec)
{
    g_auto(GStrv) tok = g_strsplit(spec, " ", -1);
    gboolean first = TRUE;
    for (char **t = tok; *t; t++) {
        if (!**t)
            continue;
        if (first) {
            first = FALSE;
            if (!g_str_equal(*t, "*") && g_strcmp0(xmpp_stanza_get_name(st), *t) != 0)
                return FALSE;
            continue;
        }
        if (**t == '>') {
            gboolean found = FALSE;
            for (xmpp_stanza_t *ch = xmpp_stanza_get_children(st); ch && !found;
                 ch = xmpp_stanza_get_next(ch)) {
                if (child_spec_matches(ch, *t + 1)) {
                    found = TRUE;
                    break;
                }
                if (!xmpp_stanza_is_tag(ch))
                    continue;
                for (xmpp_stanza_t *gc = xmpp_stanza_get_children(ch); gc;
                     gc = xmpp_stanza_get_next(gc))
                    if (child_spec_matches(gc, *t + 1)) {
                        found = TRUE;
                        break;
                    }
            }
            if (!found)
                return FALSE;
            continue;
        }
        char *eq = strchr(*t, '=');
        if (!eq)
            return FALSE;
        *eq = '\0';
        const char *have = xmpp_stanza_get_attribute(st, *t);
        if (!eq[1]) {
            if (have && *have)
                return FALSE;
        } else if (g_strcmp0(have, eq + 1) != 0) {
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean spec_pred(xmpp_stanza_t *st, gpointer data)
{
    return mkt_stanza_matches(st, data);
}

static xmpp_stanza_t *take_match(MktClient *c, MktPredicate pred, gpointer data)
{
    for (GList *l = c->queue.head; l; l = l->next)
        if (pred(l->data, data)) {
            xmpp_stanza_t *st = l->data;
            g_queue_delete_link(&c->queue, l);
            return st;
        }
    return NULL;
}

xmpp_stanza_t *mkt_client_wait_pred(MktClient *c, MktPredicate pred, gpointer data,
                                    guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        xmpp_stanza_t *st = take_match(c, pred, data);
        if (st)
            return st;
        if (g_get_monotonic_time() >= deadline)
            return NULL;
        pump_round(5);
    }
}

xmpp_stanza_t *mkt_client_wait(MktClient *c, const char *spec, guint timeout_ms)
{
    return mkt_client_wait_pred(c, spec_pred, (gpointer)spec, timeout_ms);
}

gboolean mkt_client_expect_nothing(MktClient *c, const char *spec, guint ms)
{
    mkt_pump(ms);
    xmpp_stanza_t *st = take_match(c, spec_pred, (gpointer)spec);
    if (!st)
        return TRUE;
    g_autofree char *xml = mkt_stanza_xml(st);
    mkt_diag("unexpected stanza: %s", xml);
    xmpp_stanza_release(st);
    return FALSE;
}

gboolean mkt_client_wait_closed(MktClient *c, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (!c->closed && g_get_monotonic_time() < deadline)
        pump_round(5);
    return c->closed;
}

void mkt_client_flush(MktClient *c)
{
    xmpp_stanza_t *st;
    while ((st = g_queue_pop_head(&c->queue)))
        xmpp_stanza_release(st);
}

void mkt_client_disconnect(MktClient *c)
{
    if (!c)
        return;
    if (!c->closed) {
        xmpp_disconnect(c->conn);
        mkt_client_wait_closed(c, 2000);
    }
    client_free(c);
}

char *mkt_stanza_xml(xmpp_stanza_t *st)
{
    char *buf = NULL;
    size_t len = 0;
    if (!st || xmpp_stanza_to_text(st, &buf, &len) != XMPP_EOK)
        return g_strdup("(null)");
    char *out = g_strndup(buf, len);
    xmpp_free(xmpp_stanza_get_context(st), buf);
    return out;
}

const char *mkt_stanza_attr(xmpp_stanza_t *st, const char *name)
{
    return st ? xmpp_stanza_get_attribute(st, name) : NULL;
}

char *mkt_stanza_child_text(xmpp_stanza_t *st, const char *name)
{
    xmpp_stanza_t *ch = st ? xmpp_stanza_get_child_by_name(st, name) : NULL;
    if (!ch)
        return NULL;
    char *t = xmpp_stanza_get_text(ch);
    if (!t)
        return g_strdup("");
    char *out = g_strdup(t);
    xmpp_free(xmpp_stanza_get_context(st), t);
    return out;
}

/* ---- raw TCP ------------------------------------------------------------ */

struct MktRaw {
    int fd;
    GString *data;
    gboolean closed;
};

MktRaw *mkt_raw_connect(guint16 port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        mkt_diag("connect 127.0.0.1:%u: %s", port, g_strerror(errno));
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    MktRaw *r = g_new0(MktRaw, 1);
    r->fd = fd;
    r->data = g_string_new(NULL);
    return r;
}

gboolean mkt_raw_write(MktRaw *r, const char *data, gssize len)
{
    gsize n = len < 0 ? strlen(data) : (gsize)len;
    while (n > 0) {
        ssize_t w = send(r->fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return FALSE;
        data += w;
        n -= (gsize)w;
    }
    return TRUE;
}

gboolean mkt_raw_read_until(MktRaw *r, const char *needle, guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        if (needle && strstr(r->data->str, needle))
            return TRUE;
        if (r->closed)
            return needle == NULL;
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0)
            return FALSE;
        /* Other clients keep running while a raw test waits. */
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&p, 1, live_clients ? MIN(left, 5) : (int)left);
        if (live_clients)
            pump_round(1);
        if (pr <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(r->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            r->closed = TRUE;
            continue;
        }
        g_string_append_len(r->data, buf, n);
    }
}

gboolean mkt_raw_closed(MktRaw *r)
{
    return r->closed;
}

const char *mkt_raw_data(MktRaw *r)
{
    return r->data->str;
}

void mkt_raw_clear(MktRaw *r)
{
    g_string_truncate(r->data, 0);
}

void mkt_raw_free(MktRaw *r)
{
    if (!r)
        return;
    close(r->fd);
    g_string_free(r->data, TRUE);
    g_free(r);
}

MktRaw *mkt_raw_login(guint16 port, const char *user, const char *password, const char *resource)
{
    MktRaw *r = mkt_raw_connect(port);
    if (!r)
        return NULL;
    /* authzid (empty) NUL authcid NUL password */
    gsize ulen = strlen(user), plen = strlen(password);
    g_autofree guchar *msg = g_malloc(ulen + plen + 2);
    msg[0] = '\0';
    memcpy(msg + 1, user, ulen);
    msg[1 + ulen] = '\0';
    memcpy(msg + 2 + ulen, password, plen);
    g_autofree char *b64 = g_base64_encode(msg, ulen + plen + 2);
    g_autofree char *auth = g_strdup_printf(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
    g_autofree char *bind =
        g_strdup_printf("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                        "<resource>%s</resource></bind></iq>",
                        resource);
    const char *step = "stream features";
    if (!mkt_raw_write(r, MKT_STREAM_HEADER, -1) || !mkt_raw_read_until(r, "features", 5000))
        goto fail;
    step = "SASL PLAIN";
    mkt_raw_clear(r);
    if (!mkt_raw_write(r, auth, -1) || !mkt_raw_read_until(r, "<success", 5000))
        goto fail;
    step = "stream restart";
    mkt_raw_clear(r);
    if (!mkt_raw_write(r, MKT_STREAM_HEADER, -1) || !mkt_raw_read_until(r, "features", 5000))
        goto fail;
    step = "bind";
    mkt_raw_clear(r);
    if (!mkt_raw_write(r, bind, -1) || !mkt_raw_read_until(r, "</iq>", 5000) ||
        (!strstr(r->data->str, "type='result'") && !strstr(r->data->str, "type=\"result\"")))
        goto fail;
    mkt_raw_clear(r);
    return r;
fail:
    mkt_diag("raw login of %s failed at %s; read: %s", user, step, r->data->str);
    mkt_raw_free(r);
    return NULL;
}
