/* meerkat-bench: command line, worker processes, measurement, JSON.
 *
 * The parent forks --procs workers, each owning a contiguous share of the
 * users (one fd per client, so a share must stay under the open-files
 * limit), drives the phases through pipes (login, then G = measure, S =
 * stop and report, Q = quit) and reads the server's CPU time and RSS
 * from /proc/PID around each phase. */
#include "bench.h"
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int ctl; /* parent writes */
    int rep; /* parent reads */
    GString *buf;
    gboolean eof;
} Child;

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void send_all(Child *ch, int n, char cmd)
{
    for (int i = 0; i < n; i++)
        if (write(ch[i].ctl, &cmd, 1) != 1)
            g_printerr("bench: worker %d is gone\n", i);
}

/* Waits until every child sent a line starting with @tag (or died, or
 * @timeout_s passed); returns the lines, one per child (NULL if none). */
static char **collect(Child *ch, int n, char tag, double timeout_s)
{
    char **lines = g_new0(char *, n + 1);
    int have = 0;
    guint64 deadline = now_us() + (guint64)(timeout_s * 1e6);
    while (have < n && now_us() < deadline) {
        struct pollfd pf[n];
        for (int i = 0; i < n; i++) {
            pf[i].fd = ch[i].eof || lines[i] ? -1 : ch[i].rep;
            pf[i].events = POLLIN;
        }
        int rc = poll(pf, (nfds_t)n, 200);
        if (rc < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            char tmp[65536];
            ssize_t r = read(ch[i].rep, tmp, sizeof tmp);
            if (r <= 0) {
                ch[i].eof = TRUE;
                have++;
                continue;
            }
            g_string_append_len(ch[i].buf, tmp, r);
            char *nl;
            while (!lines[i] && (nl = memchr(ch[i].buf->str, '\n', ch[i].buf->len))) {
                gsize len = (gsize)(nl - ch[i].buf->str);
                if (ch[i].buf->str[0] == tag) {
                    lines[i] = g_strndup(ch[i].buf->str, len);
                    have++;
                }
                g_string_erase(ch[i].buf, 0, (gssize)len + 1);
            }
        }
    }
    return lines;
}

static void sleep_s(double s)
{
    if (s > 0)
        g_usleep((gulong)(s * 1e6));
}

static void opts_clear(BenchOpts *o)
{
    g_free(o->host);
    g_free(o->domain);
    g_free(o->prefix);
    g_free(o->password);
    g_free(o->mech);
    g_free(o->resource);
    g_free(o->server_pids);
    g_free(o->ports);
    g_free(o->muc_service);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(BenchOpts, opts_clear)

/* GOption keeps (and does not free) the value a string option replaces:
 * defaults are set after parsing, where none was given. */
static void set_default(char **field, const char *value)
{
    if (!*field)
        *field = g_strdup(value);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "C");
    g_auto(BenchOpts) o = {
        .port = 5222,
        .users = 100,
        .rate = 0,
        .inflight = 200,
        .pairs = 10,
        .window = 4,
        .roster = 10,
        .toggles = 500,
        .duration = 10,
        .settle = 3,
        .hold = 0,
        .login_timeout = 120,
        .procs = 0,
        .src_addrs = 4,
        .body_size = 0,
        .page = 50,
        .rooms = 10,
        .room_size = 100,
        .msg_rate = 100,
        .occupants = 100,
    };
    g_autofree char *scenario = NULL;
    g_autofree char *ports = NULL;
    GOptionEntry entries[] = {
        {"ports", 0, 0, G_OPTION_ARG_STRING, &ports,
         "a cluster's nodes, comma-separated: user n connects to the (n mod count)th", "P,P"},
        {"scenario", 's', 0, G_OPTION_ARG_STRING, &scenario,
         "login | chat | presence | register | mam | muclight | muc | pep", "NAME"},
        {"host", 0, 0, G_OPTION_ARG_STRING, &o.host, "server address (IPv4)", "ADDR"},
        {"port", 'p', 0, G_OPTION_ARG_INT, &o.port, "server port", "PORT"},
        {"domain", 'd', 0, G_OPTION_ARG_STRING, &o.domain, "XMPP domain", "DOMAIN"},
        {"prefix", 0, 0, G_OPTION_ARG_STRING, &o.prefix, "user names are PREFIX<n>", "PREFIX"},
        {"first", 0, 0, G_OPTION_ARG_INT, &o.first_user, "number of the first user (0)", "N"},
        {"password", 0, 0, G_OPTION_ARG_STRING, &o.password, "every user's password", "PW"},
        {"mech", 'm', 0, G_OPTION_ARG_STRING, &o.mech, "PLAIN or SCRAM-SHA-256", "MECH"},
        {"starttls", 't', 0, G_OPTION_ARG_NONE, &o.starttls, "negotiate STARTTLS", NULL},
        {"sm", 0, 0, G_OPTION_ARG_NONE, &o.sm, "enable stream management (XEP-0198) after bind",
         NULL},
        {"users", 'n', 0, G_OPTION_ARG_INT, &o.users, "users (login, presence, register)", "N"},
        {"rate", 'r', 0, G_OPTION_ARG_DOUBLE, &o.rate,
         "connects per second (0: as fast as --inflight allows)", "R"},
        {"inflight", 0, 0, G_OPTION_ARG_INT, &o.inflight, "logins in progress per process", "N"},
        {"pairs", 'P', 0, G_OPTION_ARG_INT, &o.pairs, "chatting pairs (chat)", "N"},
        {"window", 'w', 0, G_OPTION_ARG_INT, &o.window, "messages in flight per direction", "N"},
        {"roster", 'R', 0, G_OPTION_ARG_INT, &o.roster, "contacts per user (presence)", "N"},
        {"toggles", 0, 0, G_OPTION_ARG_DOUBLE, &o.toggles,
         "presence: availability changes per second (default 500)", "N"},
        {"body", 0, 0, G_OPTION_ARG_INT, &o.body_size, "extra body bytes per message", "N"},
        {"page", 0, 0, G_OPTION_ARG_INT, &o.page, "results per archive query (mam)", "N"},
        {"mam-with", 0, 0, G_OPTION_ARG_NONE, &o.mam_with,
         "archive queries filter on the user's pair partner (mam)", NULL},
        {"rooms", 0, 0, G_OPTION_ARG_INT, &o.rooms, "MUC Light rooms (muclight)", "N"},
        {"room-size", 0, 0, G_OPTION_ARG_INT, &o.room_size, "occupants per room (muclight)", "N"},
        {"msg-rate", 0, 0, G_OPTION_ARG_DOUBLE, &o.msg_rate,
         "muclight, muc: groupchat messages per second, all processes (default 100)", "N"},
        {"occupants", 0, 0, G_OPTION_ARG_INT, &o.occupants, "users per room (muc)", "N"},
        {"muc-service", 0, 0, G_OPTION_ARG_STRING, &o.muc_service,
         "rooms' domain (muc; default conference.DOMAIN)", "DOMAIN"},
        {"duration", 'D', 0, G_OPTION_ARG_DOUBLE, &o.duration, "measured seconds", "S"},
        {"settle", 0, 0, G_OPTION_ARG_DOUBLE, &o.settle, "seconds before reading RSS", "S"},
        {"hold", 0, 0, G_OPTION_ARG_DOUBLE, &o.hold, "seconds to stay connected at the end", "S"},
        {"login-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o.login_timeout, "seconds", "S"},
        {"procs", 'j', 0, G_OPTION_ARG_INT, &o.procs,
         "worker processes (0: one per 9,000 sessions)", "N"},
        {"src-addrs", 0, 0, G_OPTION_ARG_INT, &o.src_addrs,
         "spread source addresses over 127.0.0.2..127.0.0.(1+N); 0: kernel's choice", "N"},
        {"server-pid", 0, 0, G_OPTION_ARG_STRING, &o.server_pids,
         "server process ids, comma-separated, for CPU and RSS", "PIDS"},
        {NULL},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GOptionContext) ctx = g_option_context_new("- XMPP load generator");
    g_option_context_set_summary(ctx,
                                 "Logs users in and plays a scenario against an XMPP server on "
                                 "loopback;\nprints a JSON summary on standard output.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("meerkat-bench: %s\n", error->message);
        return 2;
    }
    set_default(&scenario, "login");
    if (ports)
        bench_parse_ports(&o, ports);
    set_default(&o.host, "127.0.0.1");
    set_default(&o.domain, "localhost");
    set_default(&o.prefix, "bench");
    set_default(&o.password, "secret");
    set_default(&o.mech, "PLAIN");
    set_default(&o.resource, "r");
    if (g_str_equal(scenario, "login"))
        o.scenario = SCEN_LOGIN;
    else if (g_str_equal(scenario, "chat"))
        o.scenario = SCEN_CHAT;
    else if (g_str_equal(scenario, "mam"))
        o.scenario = SCEN_MAM;
    else if (g_str_equal(scenario, "presence"))
        o.scenario = SCEN_PRESENCE;
    else if (g_str_equal(scenario, "pep"))
        o.scenario = SCEN_PEP;
    else if (g_str_equal(scenario, "register"))
        o.scenario = SCEN_REGISTER;
    else if (g_str_equal(scenario, "muclight") && o.room_size > 0)
        o.scenario = SCEN_MUCLIGHT;
    else if (g_str_equal(scenario, "muc"))
        o.scenario = SCEN_MUC;
    else {
        g_printerr("meerkat-bench: unknown scenario %s\n", scenario);
        return 2;
    }
    if (!g_str_equal(o.mech, "PLAIN") && !g_str_equal(o.mech, "SCRAM-SHA-256")) {
        g_printerr("meerkat-bench: --mech must be PLAIN or SCRAM-SHA-256\n");
        return 2;
    }
    int total = o.scenario == SCEN_CHAT ? 2 * o.pairs : o.users;
    if (o.scenario == SCEN_PRESENCE || o.scenario == SCEN_PEP) /* whole groups */
        total = total / (o.roster + 1) * (o.roster + 1);
    if (o.scenario == SCEN_MUCLIGHT)
        total = o.rooms * o.room_size;
    if (o.scenario == SCEN_MUC) /* whole rooms */
        total = total / MAX(o.occupants, 1) * MAX(o.occupants, 1);
    if (!o.muc_service)
        o.muc_service = g_strconcat("conference.", o.domain, NULL);
    if (total <= 0) {
        g_printerr("meerkat-bench: nothing to do\n");
        return 2;
    }
    if (o.procs <= 0)
        o.procs = (total + 8999) / 9000;
    o.procs = MIN(o.procs, total);
    if (o.inflight < 1)
        o.inflight = 1;
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    /* Shares: multiples of 2 (chat pairs) or of a roster group. */
    int unit = o.scenario == SCEN_CHAT                                 ? 2
               : o.scenario == SCEN_PRESENCE || o.scenario == SCEN_PEP ? o.roster + 1
               : o.scenario == SCEN_MUCLIGHT                           ? o.room_size
               : o.scenario == SCEN_MUC                                ? o.occupants
                                                                       : 1;
    int units = total / unit;
    Child *ch = g_new0(Child, o.procs);
    ProcSample s0 = proc_sample(o.server_pids);
    guint64 t0 = now_us();
    int lo_unit = 0;
    for (int i = 0; i < o.procs; i++) {
        int share = units / o.procs + (i < units % o.procs ? 1 : 0);
        int lo = o.first_user + lo_unit * unit, hi = lo + share * unit;
        lo_unit += share;
        int ctl[2], rep[2];
        if (pipe(ctl) < 0 || pipe(rep) < 0) {
            g_printerr("meerkat-bench: pipe: %s\n", g_strerror(errno));
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(ctl[1]);
            close(rep[0]);
            for (int j = 0; j < i; j++) {
                close(ch[j].ctl);
                close(ch[j].rep);
            }
            _exit(worker_run(&o, lo, hi, ctl[0], rep[1], i));
        }
        close(ctl[0]);
        close(rep[1]);
        ch[i] = (Child){.pid = pid, .ctl = ctl[1], .rep = rep[0], .buf = g_string_new(NULL)};
    }

    /* Login phase. */
    g_auto(GStrv) ready = collect(ch, o.procs, 'R', o.login_timeout + 10);
    guint64 t1 = now_us();
    ProcSample s1 = proc_sample(o.server_pids);
    guint64 ok = 0, failed = 0;
    for (int i = 0; i < o.procs; i++) {
        guint64 a = 0, b = 0;
        if (ready[i] &&
            sscanf(ready[i], "R %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &a, &b) == 2) {
            ok += a;
            failed += b;
        }
    }
    double login_wall = (double)(t1 - t0) / 1e6;
    sleep_s(o.settle);
    ProcSample s2 = proc_sample(o.server_pids);

    /* Measured phase. */
    ProcSample m0 = {0}, m1 = {0};
    guint64 sent = 0, received = 0;
    Hist hist = {0};
    double window_s = 0;
    if (o.scenario != SCEN_LOGIN && o.scenario != SCEN_REGISTER) {
        send_all(ch, o.procs, 'G');
        m0 = proc_sample(o.server_pids);
        guint64 w0 = now_us();
        sleep_s(o.duration);
        m1 = proc_sample(o.server_pids);
        guint64 w1 = now_us();
        send_all(ch, o.procs, 'S');
        window_s = (double)(w1 - w0) / 1e6;
        g_auto(GStrv) lines = collect(ch, o.procs, 'M', 30);
        for (int i = 0; i < o.procs; i++) {
            if (!lines[i])
                continue;
            guint64 a = 0, b = 0;
            int off = 0;
            if (sscanf(lines[i], "M %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %n", &a, &b,
                       &off) >= 2) {
                sent += a;
                received += b;
                hist_merge_text(&hist, lines[i] + off);
            }
        }
    }
    sleep_s(o.hold);
    send_all(ch, o.procs, 'Q');
    for (int i = 0; i < o.procs; i++) {
        int st;
        waitpid(ch[i].pid, &st, 0);
        close(ch[i].ctl);
        close(ch[i].rep);
        g_string_free(ch[i].buf, TRUE);
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double bench_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

    /* JSON summary. */
    GString *j = g_string_new("{");
    g_string_append_printf(j, "\"scenario\": \"%s\", \"mech\": \"%s\", \"starttls\": %s, ",
                           scenario, o.mech, o.starttls ? "true" : "false");
    g_string_append_printf(j, "\"procs\": %d, \"users\": %d, ", o.procs, total);
    g_string_append_printf(
        j, "\"sessions\": %" G_GUINT64_FORMAT ", \"failed\": %" G_GUINT64_FORMAT ", ", ok, failed);
    g_string_append_printf(j, "\"login_s\": %.3f, \"logins_per_s\": %.1f, ", login_wall,
                           login_wall > 0 ? (double)ok / login_wall : 0);
    if (o.server_pids) {
        double lcpu = s1.cpu_s - s0.cpu_s;
        g_string_append_printf(j, "\"login_server_cpu_s\": %.2f, \"logins_per_cpu_s\": %.0f, ",
                               lcpu, lcpu > 0 ? (double)ok / lcpu : 0);
        g_string_append_printf(j,
                               "\"rss_before_kib\": %" G_GUINT64_FORMAT
                               ", \"rss_after_kib\": %" G_GUINT64_FORMAT
                               ", \"rss_per_session_kib\": %.2f, ",
                               s0.rss_kib, s2.rss_kib,
                               ok ? ((double)s2.rss_kib - (double)s0.rss_kib) / (double)ok : 0);
    }
    if (o.scenario != SCEN_LOGIN && o.scenario != SCEN_REGISTER) {
        double cpu = m1.cpu_s - m0.cpu_s;
        gboolean rooms = o.scenario == SCEN_MUCLIGHT || o.scenario == SCEN_MUC;
        const char *what = o.scenario == SCEN_CHAT || rooms ? "messages"
                           : o.scenario == SCEN_MAM         ? "queries"
                           : o.scenario == SCEN_PEP         ? "notifications"
                                                            : "presences";
        g_string_append_printf(j, "\"window_s\": %.3f, \"sent\": %" G_GUINT64_FORMAT ", ", window_s,
                               sent);
        g_string_append_printf(j, "\"%s\": %" G_GUINT64_FORMAT ", \"%s_per_s\": %.0f, ", what,
                               received, what, window_s > 0 ? (double)received / window_s : 0);
        if (o.server_pids)
            g_string_append_printf(j, "\"server_cpu_s\": %.2f, \"%s_per_cpu_s\": %.0f, ", cpu, what,
                                   cpu > 0 ? (double)received / cpu : 0);
        if (o.scenario == SCEN_CHAT || o.scenario == SCEN_MAM || o.scenario == SCEN_PEP || rooms)
            g_string_append_printf(j,
                                   "\"latency_us\": {\"p50\": %" G_GUINT64_FORMAT
                                   ", \"p90\": %" G_GUINT64_FORMAT ", \"p99\": %" G_GUINT64_FORMAT
                                   ", \"max\": %" G_GUINT64_FORMAT "}, ",
                                   hist_percentile(&hist, 50), hist_percentile(&hist, 90),
                                   hist_percentile(&hist, 99), hist.max);
    }
    g_string_append_printf(j, "\"bench_cpu_s\": %.2f", bench_cpu);
    if (o.server_pids)
        g_string_append_printf(j, ", \"server_alive\": %s", s2.alive ? "true" : "false");
    g_string_append(j, "}");
    printf("%s\n", j->str);
    g_string_free(j, TRUE);
    g_free(ch);
    return ok > 0 ? 0 : 1;
}
