/* The core's own metrics (docs/metrics.md): their families, the helpers
 * that the core's files call in one line, and the collectors that read
 * workers, pools and the process at rendering time. */
#include "db.h"
#include "metrics-priv.h"
#include "server.h"
#include "worker.h"
#include <sys/resource.h>
#include <unistd.h>

/* The mechanisms the auth series are made for; the last one takes any
 * other name, so that the label set stays fixed. */
static const char *const mechanisms[] = {
    "PLAIN",         "ANONYMOUS",          "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "other",
};
static const char *const drivers[] = {"sqlite3", "pgsql"};

/* Seconds, from 100 µs to 10 s. */
static const double db_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

static gpointer counter(MkMetrics *m, const char *name, const char *help, const char *label,
                        const char *value)
{
    const char *labels[] = {label, NULL};
    const char *values[] = {value, NULL};
    MkMetricFamily *f =
        mk_metrics_family(m, name, help, MK_METRIC_COUNTER, label ? labels : NULL, NULL, 0, 1);
    return mk_metrics_series(f, label ? values : NULL);
}

static gpointer gauge(MkMetrics *m, const char *name, const char *help, double scale)
{
    return mk_metrics_series(
        mk_metrics_family(m, name, help, MK_METRIC_GAUGE, NULL, NULL, 0, scale), NULL);
}

/* See metrics.h. */
void mk_core_metrics_init(MkMetrics *m, MkCoreMetrics *c)
{
    static const char *const kinds[] = {"message", "presence", "iq"};
    for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
        c->stanzas_in[i] = counter(m, "meerkat_stanzas_received_total",
                                   "Stanzas received from clients, by kind.", "kind", kinds[i]);
        c->stanzas_out[i] = counter(m, "meerkat_stanzas_sent_total",
                                    "Stanzas written to clients, by kind.", "kind", kinds[i]);
    }
    static const char *const outcomes[] = {"delivered", "offline", "bounced"};
    G_STATIC_ASSERT(G_N_ELEMENTS(outcomes) == MK_ROUTED_N);
    for (guint i = 0; i < MK_ROUTED_N; i++)
        c->routed[i] = counter(m, "meerkat_routed_stanzas_total",
                               "Stanzas the router delivered to local sessions, handed to "
                               "offline storage, or answered with an error.",
                               "outcome", outcomes[i]);
    static const char *const auth_labels[] = {"mechanism", "result", NULL};
    MkMetricFamily *auth = mk_metrics_family(m, "meerkat_auth_attempts_total",
                                             "SASL exchanges that ended, by mechanism and result.",
                                             MK_METRIC_COUNTER, auth_labels, NULL, 0, 1);
    G_STATIC_ASSERT(G_N_ELEMENTS(mechanisms) <= G_N_ELEMENTS(c->auth));
    for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++)
        for (guint ok = 0; ok < 2; ok++)
            c->auth[i][ok] = mk_metrics_series(
                auth, (const char *[]){mechanisms[i], ok ? "success" : "failure", NULL});

    static const char *const conn_labels[] = {"listener", "type", NULL};
    c->connections = mk_metrics_family(m, "meerkat_connections", "Open client connections.",
                                       MK_METRIC_GAUGE, conn_labels, NULL, 0, 1);
    static const char *const ht[] = {"host_type", NULL};
    c->sessions = mk_metrics_family(m, "meerkat_sessions",
                                    "Bound sessions (resumable ones included), by host type.",
                                    MK_METRIC_GAUGE, ht, NULL, 0, 1);
    static const char *const drv[] = {"driver", NULL};
    c->db_duration_fam =
        mk_metrics_family(m, "meerkat_db_query_duration_seconds", "Time taken by database queries.",
                          MK_METRIC_HISTOGRAM, drv, db_bounds, G_N_ELEMENTS(db_bounds), 1);
    c->db_errors_fam =
        mk_metrics_family(m, "meerkat_db_query_errors_total", "Database queries that failed.",
                          MK_METRIC_COUNTER, drv, NULL, 0, 1);
    static const char *const worker[] = {"worker", NULL};
    c->mailbox =
        mk_metrics_family(m, "meerkat_worker_mailbox_jobs", "Jobs waiting in a worker's mailbox.",
                          MK_METRIC_GAUGE, worker, NULL, 0, 1);
    static const char *const pool[] = {"pool", NULL};
    c->pool_queue = mk_metrics_family(m, "meerkat_jobpool_queued_jobs",
                                      "Jobs waiting for a thread of a pool (auth, storage).",
                                      MK_METRIC_GAUGE, pool, NULL, 0, 1);
    static const char *const version[] = {"version", NULL};
    mk_metric_add(mk_metrics_series(mk_metrics_family(m, "meerkat_build_info",
                                                      "Always 1; the version as a label.",
                                                      MK_METRIC_GAUGE, version, NULL, 0, 1),
                                    (const char *[]){MK_VERSION_STRING, NULL}),
                  1);

    /* The process, as Prometheus's client libraries name it. */
    c->rss = gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.", 1);
    c->vsize = gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", 1);
    c->cpu = mk_metrics_series(mk_metrics_family(m, "process_cpu_seconds_total",
                                                 "Total user and system CPU time spent in "
                                                 "seconds.",
                                                 MK_METRIC_COUNTER, NULL, NULL, 0, 1e-6),
                               NULL);
    c->fds = gauge(m, "process_open_fds", "Number of open file descriptors.", 1);
    c->max_fds = gauge(m, "process_max_fds", "Maximum number of open file descriptors.", 1);
    c->start_time = gauge(m, "process_start_time_seconds",
                          "Start time of the process since the Unix epoch in seconds.", 1e-6);
    mk_metric_set(c->start_time, g_get_real_time());
}

MkCoreMetrics *mk_core_metrics_running;
const MkCoreMetrics mk_core_metrics_none; /* only NULLs, never written */

gpointer mk_metrics_connections(const char *listener, const char *type)
{
    return mk_metrics_series(mk_core_metrics()->connections,
                             (const char *[]){listener, type, NULL});
}

gpointer mk_metrics_sessions(const char *host_type)
{
    return host_type
               ? mk_metrics_series(mk_core_metrics()->sessions, (const char *[]){host_type, NULL})
               : NULL;
}

void mk_metrics_auth(const char *mech, gboolean success)
{
    guint i = 0;
    while (i < G_N_ELEMENTS(mechanisms) - 1 && g_strcmp0(mech, mechanisms[i]) != 0)
        i++;
    mk_metric_add(mk_core_metrics()->auth[i][success ? 1 : 0], 1);
}

void mk_metrics_db_query(const char *driver, gint64 usec, gboolean ok)
{
    MkCoreMetrics *c = mk_core_metrics();
    guint d = g_strcmp0(driver, drivers[0]) == 0 ? 0 : 1;
    gpointer h = g_atomic_pointer_get(&c->db_duration[d]);
    if (G_UNLIKELY(!h && c->db_duration_fam)) {
        /* Made on first use, so that only the driver in use is listed. */
        const char *v[] = {drivers[d], NULL};
        g_atomic_pointer_set(&c->db_errors[d], mk_metrics_series(c->db_errors_fam, v));
        h = mk_metrics_series(c->db_duration_fam, v);
        g_atomic_pointer_set(&c->db_duration[d], h);
    }
    mk_metric_observe(h, (double)usec / G_USEC_PER_SEC);
    if (!ok)
        mk_metric_add(g_atomic_pointer_get(&c->db_errors[d]), 1);
}

/* ---- Collectors ---- */

/* /proc/self/stat, fields 14-15 (utime, stime: clock ticks), 23 (vsize:
 * bytes) and 24 (rss: pages), counted after the command's ')'. */
static void collect_process(MkMetrics *m, gpointer data)
{
    MkCoreMetrics *c = &m->core;
    g_autofree char *stat = NULL;
    if (g_file_get_contents("/proc/self/stat", &stat, NULL, NULL) && strrchr(stat, ')')) {
        g_auto(GStrv) f = g_strsplit(strrchr(stat, ')') + 2, " ", -1);
        if (g_strv_length(f) > 21) {
            long tick = sysconf(_SC_CLK_TCK);
            gint64 ticks = g_ascii_strtoll(f[11], NULL, 10) + g_ascii_strtoll(f[12], NULL, 10);
            mk_metric_set(c->cpu, ticks * G_USEC_PER_SEC / (tick > 0 ? tick : 100));
            mk_metric_set(c->vsize, g_ascii_strtoll(f[20], NULL, 10));
            mk_metric_set(c->rss, g_ascii_strtoll(f[21], NULL, 10) * sysconf(_SC_PAGESIZE));
        }
    }
    g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
    if (dir) {
        gint64 n = -1; /* the directory's own fd */
        while (g_dir_read_name(dir))
            n++;
        mk_metric_set(c->fds, n);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        mk_metric_set(c->max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (gint64)rl.rlim_cur);
    (void)data;
}

static void collect_server(MkMetrics *m, gpointer data)
{
    MkServer *srv = data;
    MkCoreMetrics *c = &m->core;
    for (guint i = 0; srv->workers && i < mk_workers_count(srv->workers); i++) {
        char idx[16];
        g_snprintf(idx, sizeof idx, "%u", i);
        mk_metric_set(mk_metrics_series(c->mailbox, (const char *[]){idx, NULL}),
                      mk_worker_mailbox_length(mk_workers_get(srv->workers, i)));
    }
    if (srv->auth_pool)
        mk_metric_set(mk_metrics_series(c->pool_queue, (const char *[]){"auth", NULL}),
                      mk_job_pool_queued(srv->auth_pool));
    if (srv->db)
        mk_metric_set(mk_metrics_series(c->pool_queue, (const char *[]){"storage", NULL}),
                      mk_db_async_queued(mk_db_get_async(srv->db)));
}

/* See metrics.h. Main thread. */
void mk_metrics_server_start(MkServer *srv)
{
    if (!srv->modules)
        return;
    mk_metrics_add_collector(srv->modules->metrics, collect_process, NULL);
    mk_metrics_add_collector(srv->modules->metrics, collect_server, srv);
    __atomic_store_n(&mk_core_metrics_running, &srv->modules->metrics->core, __ATOMIC_RELEASE);
    mk_metrics_textfile_start(srv);
}

void mk_metrics_server_stop(MkServer *srv)
{
    if (!srv->modules)
        return;
    mk_metrics_textfile_stop(srv);
    __atomic_store_n(&mk_core_metrics_running, NULL, __ATOMIC_RELEASE);
    mk_metrics_remove_collector(srv->modules->metrics, collect_server, srv);
    mk_metrics_remove_collector(srv->modules->metrics, collect_process, NULL);
}
