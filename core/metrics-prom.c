/* The Prometheus text exposition format, version 0.0.4: per family a
 * "# HELP" and a "# TYPE" line, then one line per sample; label values
 * escape '\', '"' and newlines, help texts '\' and newlines; a histogram
 * gives cumulative NAME_bucket{le="..."} lines ending with le="+Inf",
 * then NAME_sum and NAME_count. See docs/metrics.md. */
#include "metrics-priv.h"
#include "server.h"
#include <string.h>

static void append_escaped(GString *out, const char *s, gboolean quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            g_string_append(out, "\\\\");
        else if (*s == '\n')
            g_string_append(out, "\\n");
        else if (quote && *s == '"')
            g_string_append(out, "\\\"");
        else
            g_string_append_c(out, *s);
    }
}

static void append_double(GString *out, double v)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    if (v == 1.0 / 0.0)
        g_string_append(out, "+Inf");
    else
        g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.15g", v));
}

/* NAME{l1="v1",...,@extra_name="@extra"} with @suffix after NAME. */
static void append_sample_name(GString *out, const MkMetricFamily *f, const MkMetricSeries *s,
                               const char *suffix, const char *extra_name, const char *extra)
{
    g_string_append(out, f->name);
    g_string_append(out, suffix);
    if (!f->n_labels && !extra_name)
        return;
    g_string_append_c(out, '{');
    for (guint i = 0; i < f->n_labels; i++) {
        g_string_append_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        append_escaped(out, s->values[i], TRUE);
        g_string_append_c(out, '"');
    }
    if (extra_name) {
        g_string_append_printf(out, "%s%s=\"", f->n_labels ? "," : "", extra_name);
        append_escaped(out, extra, TRUE);
        g_string_append_c(out, '"');
    }
    g_string_append_c(out, '}');
}

static void append_value(GString *out, gint64 v, double scale)
{
    g_string_append_c(out, ' ');
    if (scale == 1)
        g_string_append_printf(out, "%" G_GINT64_FORMAT, v);
    else
        append_double(out, (double)v * scale);
    g_string_append_c(out, '\n');
}

static void render_histogram(GString *out, const MkMetricFamily *f, const MkMetricSeries *s)
{
    /* Buckets are read once, so that +Inf and _count agree with the
     * buckets below them even while observations land. */
    gint64 cumulative = 0;
    for (guint i = 0; i <= f->n_bounds; i++) {
        char le[G_ASCII_DTOSTR_BUF_SIZE];
        if (i < f->n_bounds)
            g_ascii_formatd(le, sizeof le, "%.15g", f->bounds[i]);
        else
            g_strlcpy(le, "+Inf", sizeof le);
        cumulative += __atomic_load_n(&s->hist.buckets[i], __ATOMIC_RELAXED);
        append_sample_name(out, f, s, "_bucket", "le", le);
        append_value(out, cumulative, 1);
    }
    guint64 bits = __atomic_load_n(&s->hist.sum_bits, __ATOMIC_RELAXED);
    double sum;
    memcpy(&sum, &bits, sizeof sum);
    append_sample_name(out, f, s, "_sum", NULL, NULL);
    g_string_append_c(out, ' ');
    append_double(out, sum);
    g_string_append_c(out, '\n');
    append_sample_name(out, f, s, "_count", NULL, NULL);
    append_value(out, cumulative, 1);
}

static const char *type_name(MkMetricType t)
{
    return t == MK_METRIC_COUNTER ? "counter" : t == MK_METRIC_GAUGE ? "gauge" : "histogram";
}

static void render_family(GString *out, const MkMetricFamily *f)
{
    guint listed = 0;
    for (guint i = 0; i < f->series->len; i++)
        listed += ((MkMetricSeries *)g_ptr_array_index(f->series, i))->owners > 0;
    if (!listed)
        return; /* only series of stopped modules */
    g_string_append_printf(out, "# HELP %s ", f->name);
    append_escaped(out, f->help, FALSE);
    g_string_append_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    for (guint i = 0; i < f->series->len; i++) {
        const MkMetricSeries *s = g_ptr_array_index(f->series, i);
        if (!s->owners)
            continue;
        if (f->type == MK_METRIC_HISTOGRAM) {
            render_histogram(out, f, s);
        } else {
            append_sample_name(out, f, s, "", NULL, NULL);
            append_value(out, mk_metric_value((gpointer)s), f->scale);
        }
    }
}

/* The core source's "core.AREA.NAME value" lines: counters named
 * meerkat_core_AREA_NAME_total. */
static void render_core_lines(GString *out, MkMetricsCoreFunc func, gpointer data)
{
    g_autoptr(GString) lines = g_string_new(NULL);
    func(lines, data);
    g_auto(GStrv) rows = g_strsplit(lines->str, "\n", -1);
    for (guint i = 0; rows[i]; i++) {
        char *sp = strchr(rows[i], ' ');
        if (!sp || !g_str_has_prefix(rows[i], "core."))
            continue;
        *sp = '\0';
        g_autofree char *name = g_strdup_printf("meerkat_%s_total", rows[i]);
        for (char *p = name; *p; p++)
            if (!g_ascii_isalnum(*p) && *p != '_')
                *p = '_';
        g_string_append_printf(out,
                               "# HELP %s The core's counter %s (docs/security.md).\n"
                               "# TYPE %s counter\n%s %s\n",
                               name, rows[i], name, name, sp + 1);
    }
}

/* See metrics-priv.h. */
void mk_metrics_render_locked(GString *out, GPtrArray *families, MkMetricsCoreFunc core_func,
                              gpointer core_data)
{
    for (guint i = 0; i < families->len; i++)
        render_family(out, g_ptr_array_index(families, i));
    if (core_func)
        render_core_lines(out, core_func, core_data);
}

/* See metrics.h. Any thread. */
void metrics_render_prometheus(GString *out)
{
    MkServer *srv = mk_server_get();
    if (srv && srv->modules)
        mk_metrics_render(srv->modules->metrics, out);
}
