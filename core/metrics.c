/* The metrics registry (metrics.h, docs/metrics.md). Families and series
 * only grow: a series stays allocated until the registry is freed,
 * because a stopped module's in-flight callbacks may still count; a
 * module's series just leave the output while no instance owns them, and
 * a restarted module gets the same series back (values keep growing). */
#include "metrics-priv.h"
#include "modules.h"
#include "worker.h"
#include <math.h>
#include <string.h>

__thread guint mk_metrics_shard_tls;

/* A worker's cell is its own (one server's workers per process); pool
 * threads and the main thread share cell 0, with locked adds. */
guint mk_metrics_shard_assign(void)
{
    MkWorker *w = mk_worker_self();
    guint s = w && mk_worker_index(w) < MK_METRIC_SHARDS - 1 ? mk_worker_index(w) + 2 : 1;
    mk_metrics_shard_tls = s;
    return s;
}

static void series_free(gpointer p)
{
    MkMetricSeries *s = p;
    g_strfreev(s->values);
    g_free(s->legacy);
    g_free(s->hist.buckets);
    g_aligned_free(s);
}

static void family_free(gpointer p)
{
    MkMetricFamily *f = p;
    g_ptr_array_unref(f->series);
    g_free(f->name);
    g_free(f->help);
    g_strfreev(f->labels);
    g_free(f->bounds);
    g_free(f);
}

MkMetrics *mk_metrics_new(void)
{
    MkMetrics *m = g_new0(MkMetrics, 1);
    g_mutex_init(&m->lock);
    g_mutex_init(&m->collect_lock);
    m->families = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, family_free);
    m->legacy = g_hash_table_new(g_str_hash, g_str_equal);
    m->collectors = g_array_new(FALSE, FALSE, sizeof(MkMetricsCollector));
    mk_core_metrics_init(m, &m->core);
    return m;
}

void mk_metrics_free(MkMetrics *m)
{
    if (!m)
        return;
    g_hash_table_unref(m->legacy);
    g_hash_table_unref(m->families);
    g_array_unref(m->collectors);
    g_mutex_clear(&m->collect_lock);
    g_mutex_clear(&m->lock);
    g_free(m);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (a label name: without ':'). */
static gboolean valid_name(const char *name, gboolean label)
{
    if (!name || !*name || g_ascii_isdigit(*name))
        return FALSE;
    for (const char *p = name; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '_' && (label || *p != ':'))
            return FALSE;
    return !label || !g_str_has_prefix(name, "__");
}

static MkMetricFamily *family_locked(MkMetrics *m, const char *name, const char *help,
                                     MkMetricType type, const char *const *labels,
                                     const double *bounds, guint n_bounds, double scale)
{
    guint n_labels = labels ? g_strv_length((char **)labels) : 0;
    MkMetricFamily *f = g_hash_table_lookup(m->families, name);
    if (f) {
        gboolean same = f->type == type && f->n_labels == n_labels;
        for (guint i = 0; same && i < n_labels; i++)
            same = g_str_equal(f->labels[i], labels[i]);
        if (!same)
            g_warning("metrics: %s asked for again with another type or other labels", name);
        return same ? f : NULL;
    }
    gboolean ok = valid_name(name, FALSE) && n_labels <= MK_METRICS_MAX_LABELS;
    for (guint i = 0; ok && i < n_labels; i++)
        ok = valid_name(labels[i], TRUE) && !g_str_equal(labels[i], "le");
    for (guint i = 0; ok && type == MK_METRIC_HISTOGRAM && i < n_bounds; i++)
        ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
    if (!ok) {
        g_warning("metrics: refusing %s: bad name, labels or buckets", name);
        return NULL;
    }
    f = g_new0(MkMetricFamily, 1);
    f->m = m;
    f->name = g_strdup(name);
    f->help = g_strdup(help ? help : "");
    f->type = type;
    f->labels = g_strdupv((char **)labels);
    if (!f->labels)
        f->labels = g_new0(char *, 1);
    f->n_labels = n_labels;
    if (type == MK_METRIC_HISTOGRAM) {
        f->bounds = g_memdup2(bounds, sizeof(double) * n_bounds);
        f->n_bounds = n_bounds;
    }
    f->scale = scale;
    f->series = g_ptr_array_new_with_free_func(series_free);
    g_hash_table_insert(m->families, f->name, f);
    return f;
}

/* See metrics.h. Any thread. */
MkMetricFamily *mk_metrics_family(MkMetrics *m, const char *name, const char *help,
                                  MkMetricType type, const char *const *labels,
                                  const double *bounds, guint n_bounds, double scale)
{
    g_return_val_if_fail(m && name, NULL);
    g_mutex_lock(&m->lock);
    MkMetricFamily *f = family_locked(m, name, help, type, labels, bounds, n_bounds, scale);
    g_mutex_unlock(&m->lock);
    return f;
}

static MkMetricSeries *series_locked(MkMetricFamily *f, const char *const *values)
{
    guint n = values ? g_strv_length((char **)values) : 0;
    if (n != f->n_labels)
        return NULL;
    for (guint i = 0; i < f->series->len; i++) {
        MkMetricSeries *s = g_ptr_array_index(f->series, i);
        gboolean same = TRUE;
        for (guint j = 0; same && j < n; j++)
            same = g_str_equal(s->values[j], values[j]);
        if (same)
            return s;
    }
    MkMetricSeries *s = g_aligned_alloc0(1, sizeof *s, 64);
    s->fam = f;
    s->values = g_strdupv((char **)values);
    if (!s->values)
        s->values = g_new0(char *, 1);
    s->owners = 1;
    if (f->type == MK_METRIC_HISTOGRAM)
        s->hist.buckets = g_new0(gint64, f->n_bounds + 1);
    g_ptr_array_add(f->series, s);
    return s;
}

/* See metrics.h. Any thread. */
gpointer mk_metrics_series(MkMetricFamily *f, const char *const *values)
{
    if (!f)
        return NULL;
    g_mutex_lock(&f->m->lock);
    MkMetricSeries *s = series_locked(f, values);
    g_mutex_unlock(&f->m->lock);
    return s;
}

gint64 mk_metric_value(gpointer p)
{
    MkMetricSeries *s = p;
    gint64 sum = 0;
    for (guint i = 0; s && i < MK_METRIC_SHARDS; i++)
        sum += __atomic_load_n(&s->cells[i].v, __ATOMIC_RELAXED);
    return sum;
}

void mk_metric_set(gpointer s, gint64 v)
{
    if (s)
        mk_metric_add(s, v - mk_metric_value(s));
}

void mk_metric_observe(gpointer p, double v)
{
    MkMetricSeries *s = p;
    if (!s || !s->hist.buckets)
        return;
    const MkMetricFamily *f = s->fam;
    guint i = 0;
    while (i < f->n_bounds && v > f->bounds[i])
        i++;
    __atomic_add_fetch(&s->hist.buckets[i], 1, __ATOMIC_RELAXED);
    guint64 old = __atomic_load_n(&s->hist.sum_bits, __ATOMIC_RELAXED), new;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&new, &d, sizeof new);
    } while (!__atomic_compare_exchange_n(&s->hist.sum_bits, &old, new, TRUE, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
}

/* ---- The module API (mk-metrics.h) ---- */

/* "meerkat_MODULE_NAME", anything but [a-zA-Z0-9_] made '_'. */
static char *module_metric_name(MkModule *mod, const char *name, const char *suffix)
{
    char *full = g_strconcat("meerkat_", mod->name, "_", name, suffix, NULL);
    for (char *p = full; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '_')
            *p = '_';
    return full;
}

/* A series of @mod: host_type first, then @labels' pairs. */
static MkMetricSeries *module_series(MkModule *mod, const char *name, const char *help,
                                     MkMetricType type, const double *bounds, guint n_bounds,
                                     const char *const *labels, const char *legacy)
{
    g_return_val_if_fail(mod != NULL && name != NULL, NULL);
    MkMetrics *m = mod->mods->metrics;
    const char *suffix =
        type == MK_METRIC_COUNTER && !g_str_has_suffix(name, "_total") ? "_total" : "";
    g_autofree char *full = module_metric_name(mod, name, suffix);
    g_autofree char *deflt = NULL;
    if (!help)
        help = deflt = g_strdup_printf("%s of module %s.", name, mod->name);
    const char *lnames[MK_METRICS_MAX_LABELS + 1] = {"host_type"};
    const char *lvalues[MK_METRICS_MAX_LABELS + 1] = {mod->host_type};
    guint n = 1;
    for (; labels && labels[0] && labels[1] && n < MK_METRICS_MAX_LABELS; labels += 2, n++) {
        lnames[n] = labels[0];
        lvalues[n] = labels[1];
    }
    if (labels && labels[0]) {
        g_warning("metrics: %s: too many labels or a label without a value", full);
        return NULL;
    }
    g_mutex_lock(&m->lock);
    MkMetricFamily *f = family_locked(m, full, help, type, lnames, bounds, n_bounds, 1);
    /* A plain counter is found by its log name, which is unique. */
    MkMetricSeries *s = f && legacy ? g_hash_table_lookup(m->legacy, legacy) : NULL;
    if (f && !s) {
        guint before = f->series->len;
        s = series_locked(f, lvalues);
        gboolean fresh = f->series->len > before;
        if (fresh)
            s->owners = 0;
        if (fresh && legacy) {
            s->legacy = g_strdup(legacy);
            g_hash_table_insert(m->legacy, s->legacy, s);
        }
    }
    if (s && mod->live && !g_ptr_array_find(mod->counters, s, NULL)) {
        s->owners++;
        g_ptr_array_add(mod->counters, s);
    }
    g_mutex_unlock(&m->lock);
    return s;
}

/* Public module API. (transfer none) Main thread, in start(). */
MkCounter *mk_counter_new(MkModule *mod, const char *name)
{
    g_return_val_if_fail(mod != NULL && name != NULL, NULL);
    g_autofree char *legacy = g_strdup_printf("%s.%s.%s", mod->host_type, mod->name, name);
    return (MkCounter *)module_series(mod, name, NULL, MK_METRIC_COUNTER, NULL, 0, NULL, legacy);
}

MkCounter *mk_counter_new_full(MkModule *mod, const char *name, const char *help,
                               const char *const *labels)
{
    return (MkCounter *)module_series(mod, name, help, MK_METRIC_COUNTER, NULL, 0, labels, NULL);
}

MkGauge *mk_gauge_new(MkModule *mod, const char *name, const char *help, const char *const *labels)
{
    return (MkGauge *)module_series(mod, name, help, MK_METRIC_GAUGE, NULL, 0, labels, NULL);
}

MkHistogram *mk_histogram_new(MkModule *mod, const char *name, const char *help,
                              const double *bounds, guint n_bounds, const char *const *labels)
{
    return (MkHistogram *)module_series(mod, name, help, MK_METRIC_HISTOGRAM, bounds, n_bounds,
                                        labels, NULL);
}

/* Public module API. Any thread, lock-free. */
void mk_counter_add(MkCounter *counter, gint64 n)
{
    mk_metric_add(counter, n);
}

gint64 mk_counter_get(MkCounter *counter)
{
    return mk_metric_value(counter);
}

void mk_gauge_add(MkGauge *gauge, gint64 n)
{
    mk_metric_add(gauge, n);
}

void mk_gauge_set(MkGauge *gauge, gint64 value)
{
    mk_metric_set(gauge, value);
}

gint64 mk_gauge_get(MkGauge *gauge)
{
    return mk_metric_value(gauge);
}

void mk_histogram_observe(MkHistogram *histogram, double value)
{
    mk_metric_observe(histogram, value);
}

/* See modules.h. Any thread. */
MkCounter *mk_metrics_core_counter(MkModules *mods, const char *name)
{
    MkMetrics *m = mods->metrics;
    g_autofree char *legacy = g_strconcat("core.", name, NULL);
    g_autofree char *full = g_strdup_printf("meerkat_core_%s_total", name);
    g_strdelimit(full, ".-", '_');
    g_mutex_lock(&m->lock);
    MkMetricSeries *s = g_hash_table_lookup(m->legacy, legacy);
    if (!s) {
        g_autofree char *help = g_strdup_printf("The core's counter %s.", legacy);
        MkMetricFamily *f = family_locked(m, full, help, MK_METRIC_COUNTER, NULL, NULL, 0, 1);
        s = f ? series_locked(f, NULL) : NULL; /* the core never lets go (owners 1) */
        if (s && !s->legacy) {
            s->legacy = g_steal_pointer(&legacy);
            g_hash_table_insert(m->legacy, s->legacy, s);
        }
    }
    g_mutex_unlock(&m->lock);
    return (MkCounter *)s;
}

/* See modules-priv.h. Main thread. */
void mk_metrics_release(MkModule *mod)
{
    MkMetrics *m = mod->mods->metrics;
    g_mutex_lock(&m->lock);
    for (guint i = 0; i < mod->counters->len; i++) {
        MkMetricSeries *s = g_ptr_array_index(mod->counters, i);
        s->owners--;
    }
    g_ptr_array_set_size(mod->counters, 0);
    g_mutex_unlock(&m->lock);
}

static int cmp_legacy(gconstpointer a, gconstpointer b)
{
    const MkMetricSeries *x = *(MkMetricSeries *const *)a, *y = *(MkMetricSeries *const *)b;
    return strcmp(x->legacy, y->legacy);
}

/* See modules.h. Main thread. */
void mk_metrics_set_core_source(MkModules *mods, MkMetricsCoreFunc func, gpointer data)
{
    MkMetrics *m = mods->metrics;
    g_mutex_lock(&m->lock);
    m->core_func = func;
    m->core_data = data;
    g_mutex_unlock(&m->lock);
}

/* See modules.h. (transfer full) Sorted lines "name value\n", then the
 * core source's. Any thread. */
char *mk_metrics_dump(MkModules *mods)
{
    GString *out = g_string_new(NULL);
    if (!mods)
        return g_string_free(out, FALSE);
    MkMetrics *m = mods->metrics;
    g_autoptr(GPtrArray) list = g_ptr_array_new();
    g_mutex_lock(&m->lock);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, m->legacy);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((MkMetricSeries *)v)->owners > 0)
            g_ptr_array_add(list, v);
    g_ptr_array_sort(list, cmp_legacy);
    for (guint i = 0; i < list->len; i++) {
        MkMetricSeries *s = g_ptr_array_index(list, i);
        g_string_append_printf(out, "%s %" G_GINT64_FORMAT "\n", s->legacy, mk_metric_value(s));
    }
    if (m->core_func)
        m->core_func(out, m->core_data);
    g_mutex_unlock(&m->lock);
    return g_string_free(out, FALSE);
}

/* ---- Collectors ---- */

void mk_metrics_add_collector(MkMetrics *m, MkMetricsCollectFunc func, gpointer data)
{
    MkMetricsCollector c = {func, data};
    g_mutex_lock(&m->collect_lock);
    g_array_append_val(m->collectors, c);
    g_mutex_unlock(&m->collect_lock);
}

void mk_metrics_remove_collector(MkMetrics *m, MkMetricsCollectFunc func, gpointer data)
{
    g_mutex_lock(&m->collect_lock);
    for (guint i = 0; i < m->collectors->len; i++) {
        MkMetricsCollector *c = &g_array_index(m->collectors, MkMetricsCollector, i);
        if (c->func == func && c->data == data) {
            g_array_remove_index(m->collectors, i);
            break;
        }
    }
    g_mutex_unlock(&m->collect_lock);
}

static int cmp_family(gconstpointer a, gconstpointer b)
{
    const MkMetricFamily *x = *(MkMetricFamily *const *)a, *y = *(MkMetricFamily *const *)b;
    return strcmp(x->name, y->name);
}

/* See metrics.h. Any thread. */
void mk_metrics_render(MkMetrics *m, GString *out)
{
    g_return_if_fail(m && out);
    g_mutex_lock(&m->collect_lock);
    for (guint i = 0; i < m->collectors->len; i++) {
        MkMetricsCollector *c = &g_array_index(m->collectors, MkMetricsCollector, i);
        c->func(m, c->data);
    }
    g_mutex_lock(&m->lock);
    g_autoptr(GPtrArray) families = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, m->families);
    while (g_hash_table_iter_next(&it, NULL, &v))
        g_ptr_array_add(families, v);
    g_ptr_array_sort(families, cmp_family);
    mk_metrics_render_locked(out, families, m->core_func, m->core_data);
    g_mutex_unlock(&m->lock);
    g_mutex_unlock(&m->collect_lock);
}
