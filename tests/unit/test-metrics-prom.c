/* The metrics registry and its Prometheus text rendering
 * (core/metrics*.c): escaping of help texts and label values, the shape
 * of a histogram, counting from many threads and workers at once, and the refusal
 * of names and label sets that do not fit. */
#include "metrics-priv.h"
#include "worker.h"

static char *render(MkMetrics *m)
{
    GString *out = g_string_new(NULL);
    mk_metrics_render(m, out);
    return g_string_free(out, FALSE);
}

/* The lines of @text that start with @prefix, joined. */
static char *lines_of(const char *text, const char *prefix)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    GString *out = g_string_new(NULL);
    for (guint i = 0; lines[i]; i++)
        if (g_str_has_prefix(lines[i], prefix))
            g_string_append_printf(out, "%s\n", lines[i]);
    return g_string_free(out, FALSE);
}

static void test_escaping(void)
{
    MkMetrics *m = mk_metrics_new();
    static const char *const labels[] = {"path", "kind", NULL};
    MkMetricFamily *f = mk_metrics_family(m, "test_odd_total", "Back\\slash and\nnewline.",
                                          MK_METRIC_COUNTER, labels, NULL, 0, 1);
    mk_metric_add(mk_metrics_series(f, (const char *[]){"a\"b\\c\nd", "plain", NULL}), 3);
    g_autofree char *text = render(m);
    g_autofree char *got = lines_of(text, "# HELP test_odd");
    g_assert_cmpstr(got, ==, "# HELP test_odd_total Back\\\\slash and\\nnewline.\n");
    g_autofree char *type = lines_of(text, "# TYPE test_odd");
    g_assert_cmpstr(type, ==, "# TYPE test_odd_total counter\n");
    g_autofree char *sample = lines_of(text, "test_odd");
    g_assert_cmpstr(sample, ==, "test_odd_total{path=\"a\\\"b\\\\c\\nd\",kind=\"plain\"} 3\n");
    mk_metrics_free(m);
}

static void test_histogram(void)
{
    MkMetrics *m = mk_metrics_new();
    static const double bounds[] = {0.1, 1, 10};
    static const char *const labels[] = {"op", NULL};
    MkMetricFamily *f = mk_metrics_family(m, "test_latency_seconds", "Latency.",
                                          MK_METRIC_HISTOGRAM, labels, bounds, 3, 1);
    gpointer h = mk_metrics_series(f, (const char *[]){"read", NULL});
    mk_metrics_series(f, (const char *[]){"write", NULL}); /* listed with zeros */
    /* A bound is inclusive: 0.1 falls in le="0.1". */
    for (guint i = 0; i < 4; i++)
        mk_metric_observe(h, (double[]){0.05, 0.1, 0.5, 20}[i]);
    g_autofree char *text = render(m);
    g_autofree char *got = lines_of(text, "test_latency");
    g_assert_cmpstr(got, ==,
                    "test_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n"
                    "test_latency_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
                    "test_latency_seconds_bucket{op=\"read\",le=\"10\"} 3\n"
                    "test_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
                    "test_latency_seconds_sum{op=\"read\"} 20.65\n"
                    "test_latency_seconds_count{op=\"read\"} 4\n"
                    "test_latency_seconds_bucket{op=\"write\",le=\"0.1\"} 0\n"
                    "test_latency_seconds_bucket{op=\"write\",le=\"1\"} 0\n"
                    "test_latency_seconds_bucket{op=\"write\",le=\"10\"} 0\n"
                    "test_latency_seconds_bucket{op=\"write\",le=\"+Inf\"} 0\n"
                    "test_latency_seconds_sum{op=\"write\"} 0\n"
                    "test_latency_seconds_count{op=\"write\"} 0\n");
    g_autofree char *type = lines_of(text, "# TYPE test_latency");
    g_assert_cmpstr(type, ==, "# TYPE test_latency_seconds histogram\n");
    mk_metrics_free(m);
}

static void test_gauge_and_scale(void)
{
    MkMetrics *m = mk_metrics_new();
    gpointer g = mk_metrics_series(
        mk_metrics_family(m, "test_queue_jobs", "Jobs.", MK_METRIC_GAUGE, NULL, NULL, 0, 1), NULL);
    mk_metric_add(g, 5);
    mk_metric_add(g, -7);
    g_assert_cmpint(mk_metric_value(g), ==, -2);
    mk_metric_set(g, 42);
    gpointer s = mk_metrics_series(mk_metrics_family(m, "test_cpu_seconds_total", "CPU.",
                                                     MK_METRIC_COUNTER, NULL, NULL, 0, 1e-6),
                                   NULL);
    mk_metric_set(s, 1250000); /* microseconds, shown as seconds */
    g_autofree char *text = render(m);
    g_autofree char *got = lines_of(text, "test_");
    g_assert_cmpstr(got, ==, "test_cpu_seconds_total 1.25\ntest_queue_jobs 42\n");
    mk_metrics_free(m);
}

typedef struct {
    gpointer counter;
    guint n;
} AddJob;

static gpointer add_thread(gpointer data)
{
    AddJob *job = data;
    for (guint i = 0; i < job->n; i++)
        mk_metric_add(job->counter, 1);
    return NULL;
}

/* Threads that are not workers share cell 0 with locked adds: exact. */
static void test_threads(void)
{
    MkMetrics *m = mk_metrics_new();
    AddJob job = {mk_metrics_series(mk_metrics_family(m, "test_hits_total", "Hits.",
                                                      MK_METRIC_COUNTER, NULL, NULL, 0, 1),
                                    NULL),
                  200000};
    GThread *t[MK_METRIC_SHARDS + 3];
    for (guint i = 0; i < G_N_ELEMENTS(t); i++)
        t[i] = g_thread_new("adder", add_thread, &job);
    for (guint i = 0; i < G_N_ELEMENTS(t); i++)
        g_thread_join(t[i]);
    g_assert_cmpint(mk_metric_value(job.counter), ==, (gint64)job.n * G_N_ELEMENTS(t));
    mk_metrics_free(m);
}

static gint workers_done;

static void add_job(gpointer data)
{
    add_thread(data);
    g_atomic_int_inc(&workers_done);
}

/* Workers add to their own cells without a locked instruction, while
 * other threads share cell 0 with locked adds: the sum is exact. */
static void test_workers(void)
{
    MkMetrics *m = mk_metrics_new();
    AddJob job = {
        mk_metrics_series(
            mk_metrics_family(m, "test_w_total", "W.", MK_METRIC_COUNTER, NULL, NULL, 0, 1), NULL),
        300000};
    g_autoptr(GError) error = NULL;
    MkWorkers *ws = mk_workers_start(3, &error);
    g_assert_no_error(error);
    g_atomic_int_set(&workers_done, 0);
    for (guint i = 0; i < 3; i++)
        mk_worker_post(mk_workers_get(ws, i), add_job, &job, NULL);
    GThread *t = g_thread_new("adder", add_thread, &job);
    add_thread(&job);
    g_thread_join(t);
    while (g_atomic_int_get(&workers_done) < 3)
        g_usleep(1000);
    mk_workers_stop(ws);
    g_assert_cmpint(mk_metric_value(job.counter), ==, (gint64)job.n * 5);
    /* Three workers' cells and the shared one. */
    guint used = 0;
    for (guint i = 0; i < MK_METRIC_SHARDS; i++)
        used += ((MkMetricSeries *)job.counter)->cells[i].v != 0;
    g_assert_cmpuint(used, ==, 4);
    mk_metrics_free(m);
}

static void test_refusals(void)
{
    MkMetrics *m = mk_metrics_new();
    static const char *const one[] = {"a", NULL}, *const two[] = {"a", "b", NULL};
    MkMetricFamily *f =
        mk_metrics_family(m, "test_x_total", "X.", MK_METRIC_COUNTER, one, NULL, 0, 1);
    g_assert_nonnull(f);
    g_assert_true(mk_metrics_family(m, "test_x_total", "X.", MK_METRIC_COUNTER, one, NULL, 0, 1) ==
                  f);
    /* The series of one set of values is made once. */
    gpointer s = mk_metrics_series(f, (const char *[]){"v", NULL});
    g_assert_true(mk_metrics_series(f, (const char *[]){"v", NULL}) == s);
    g_assert_null(mk_metrics_series(f, (const char *[]){"v", "w", NULL}));
    mk_metric_add(NULL, 1); /* a refused metric counts nothing, quietly */

    g_assert_null(mk_metrics_family(m, "test_x_total", "X.", MK_METRIC_COUNTER, two, NULL, 0, 1));
    g_assert_null(mk_metrics_family(m, "test_x_total", "X.", MK_METRIC_GAUGE, one, NULL, 0, 1));
    static const char *const bad_label[] = {"le", NULL}, *const reserved[] = {"__x", NULL};
    static const double unsorted[] = {1, 0.5};
    const struct {
        const char *name;
        const char *const *labels;
        MkMetricType type;
    } bad[] = {
        {"9lives", NULL, MK_METRIC_GAUGE},
        {"has-dash", NULL, MK_METRIC_GAUGE},
        {"test_le", bad_label, MK_METRIC_GAUGE},
        {"test_reserved", reserved, MK_METRIC_GAUGE},
        {"test_unsorted", NULL, MK_METRIC_HISTOGRAM},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_null(
            mk_metrics_family(m, bad[i].name, "", bad[i].type, bad[i].labels, unsorted, 2, 1));
    }
    mk_metrics_free(m);
}

/* Every line is a comment or NAME{LABELS} VALUE, and every family has
 * HELP and TYPE before its samples: the core's own series included. */
static void test_core_series_shape(void)
{
    MkMetrics *m = mk_metrics_new();
    g_autofree char *text = render(m);
    g_autoptr(GRegex) sample = g_regex_new(
        "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\\n]|\\\\.)*\",?)*\\})? "
        "(-?[0-9.e+-]+|\\+Inf)$",
        0, 0, NULL);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(GHashTable) typed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    guint samples = 0;
    for (guint i = 0; lines[i] && lines[i][0]; i++) {
        if (g_str_has_prefix(lines[i], "# TYPE ")) {
            g_auto(GStrv) w = g_strsplit(lines[i] + 7, " ", 2);
            g_hash_table_add(typed, g_strdup(w[0]));
            continue;
        }
        if (lines[i][0] == '#')
            continue;
        g_autoptr(GMatchInfo) mi = NULL;
        g_assert_true(g_regex_match(sample, lines[i], 0, &mi));
        g_autofree char *name = g_match_info_fetch(mi, 1);
        gboolean known = g_hash_table_contains(typed, name);
        for (const char *sfx = "_bucket\0_sum\0_count\0"; !known && *sfx; sfx += strlen(sfx) + 1)
            if (g_str_has_suffix(name, sfx)) {
                g_autofree char *base = g_strndup(name, strlen(name) - strlen(sfx));
                known = g_hash_table_contains(typed, base);
            }
        g_assert_true(known);
        samples++;
    }
    g_assert_cmpuint(samples, >=, 30);
    g_assert_nonnull(strstr(text, "\nmeerkat_stanzas_received_total{kind=\"message\"} 0\n"));
    g_assert_nonnull(strstr(text, "\nprocess_start_time_seconds "));
    mk_metrics_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Refused names are logged as warnings on purpose. */
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    g_test_add_func("/metrics/escaping", test_escaping);
    g_test_add_func("/metrics/histogram", test_histogram);
    g_test_add_func("/metrics/gauge-scale", test_gauge_and_scale);
    g_test_add_func("/metrics/threads", test_threads);
    g_test_add_func("/metrics/workers", test_workers);
    g_test_add_func("/metrics/refusals", test_refusals);
    g_test_add_func("/metrics/core-shape", test_core_series_shape);
    return g_test_run();
}
