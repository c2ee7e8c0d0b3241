/* The metrics registry, core side: families of counters, gauges and
 * histograms with a fixed label set each, the core's own series, and the
 * Prometheus text rendering (docs/metrics.md). Counting takes no lock:
 * each series keeps one cell per thread shard, added to with a relaxed
 * atomic on a cache line that other threads rarely touch; a scrape sums
 * the cells. Registration and rendering take the registry's lock. */
#pragma once

#include "mk-core.h"
#include "modules-priv.h"
#include <meerkat/module.h>
#include <string.h>

typedef enum {
    MK_METRIC_COUNTER,
    MK_METRIC_GAUGE,
    MK_METRIC_HISTOGRAM,
} MkMetricType;

typedef struct MkMetricFamily MkMetricFamily;

/* Cells of one series: a thread counts into cell (its shard). */
#define MK_METRIC_SHARDS 8
typedef struct {
    gint64 v; /* atomic */
} __attribute__((aligned(64))) MkMetricCell;

/* Series of a histogram: non-cumulative bucket counts (the last one is
 * +Inf) and the sum of observations as the bits of a double. */
typedef struct {
    gint64 *buckets; /* atomic, family's n_bounds + 1 */
    guint64 sum_bits;
} MkMetricHist;

/* One series: the family plus its label values. MkCounter, MkGauge and
 * MkHistogram (mk-metrics.h) are this struct. */
typedef struct {
    MkMetricCell cells[MK_METRIC_SHARDS];
    MkMetricFamily *fam;
    char **values; /* as many as the family has labels */
    char *legacy;  /* nullable: "host_type.module.name" in the log dump */
    guint owners;  /* module instances holding it, under the lock; 0: hidden */
    MkMetricHist hist;
} MkMetricSeries;

extern __thread guint mk_metrics_shard_tls;
guint mk_metrics_shard_assign(void);

/* Adds @n to @s (NULL: nothing). Any thread, no lock. */
static inline void mk_metric_add(gpointer s, gint64 n)
{
    if (G_UNLIKELY(!s))
        return;
    guint shard = mk_metrics_shard_tls;
    if (G_UNLIKELY(!shard))
        shard = mk_metrics_shard_assign();
    __atomic_add_fetch(&((MkMetricSeries *)s)->cells[shard - 1].v, n, __ATOMIC_RELAXED);
}

/* The sum of @s's cells. Any thread. */
gint64 mk_metric_value(gpointer s);
/* Sets gauge @s to @v (for single writers such as collectors). Any
 * thread. */
void mk_metric_set(gpointer s, gint64 v);
/* Adds @v to histogram @s (NULL: nothing). Any thread, no lock. */
void mk_metric_observe(gpointer s, double v);

/* A family of the registry, created on first use: @name is the full
 * sample name (a counter's ends in _total), @labels the label names
 * (NULL-terminated, nullable), @bounds the histogram's upper bounds,
 * increasing. A family asked for again must have the same type and
 * labels, else NULL. @scale multiplies stored values on output
 * (1e-6: microseconds stored, seconds shown). (transfer none): lives as
 * long as @m. Any thread (takes the lock). */
MkMetricFamily *mk_metrics_family(MkMetrics *m, const char *name, const char *help,
                                  MkMetricType type, const char *const *labels,
                                  const double *bounds, guint n_bounds, double scale);
/* The series of @fam with @values (one per label, NULL-terminated),
 * created on first use and listed from then on. (transfer none)
 * (nullable when @fam is NULL or the count of values is wrong). Takes
 * the lock: resolve once, count often. */
gpointer mk_metrics_series(MkMetricFamily *fam, const char *const *values);

/* Functions that refresh gauges just before a rendering (mailbox depths,
 * pool queues, process figures). Main thread; remove waits for a
 * rendering that runs. */
typedef void (*MkMetricsCollectFunc)(MkMetrics *m, gpointer data);
void mk_metrics_add_collector(MkMetrics *m, MkMetricsCollectFunc func, gpointer data);
void mk_metrics_remove_collector(MkMetrics *m, MkMetricsCollectFunc func, gpointer data);

/* Appends the Prometheus text format (version 0.0.4) of every listed
 * series of @m to @out, after running the collectors. Any thread. */
void mk_metrics_render(MkMetrics *m, GString *out);
/* The same for the running server's registry (nothing without one). The
 * HTTP listener serves it at /metrics. Any thread. */
void metrics_render_prometheus(GString *out);

/* ---- The core's series (metrics-core.c) ---- */

typedef enum {
    MK_ROUTED_DELIVERED, /* to at least one local session */
    MK_ROUTED_OFFLINE,   /* taken by the offline_message hook (stored) */
    MK_ROUTED_BOUNCED,   /* answered with a stanza error */
    MK_ROUTED_N,
} MkRoutedOutcome;

typedef struct {
    gpointer stanzas_in[3]; /* by MkStanzaKind: message, presence, iq */
    gpointer stanzas_out[3];
    gpointer routed[MK_ROUTED_N];
    gpointer auth[8][2]; /* by mechanism (metrics-core.c), failure/success */
    gpointer db_duration[2],
        db_errors[2];            /* by driver: sqlite3, pgsql; atomic, made on first use */
    MkMetricFamily *connections; /* gauge {listener, type} */
    MkMetricFamily *sessions;    /* gauge {host_type} */
    MkMetricFamily *db_duration_fam, *db_errors_fam;
    MkMetricFamily *mailbox, *pool_queue; /* gauges {worker}, {pool} */
    gpointer rss, vsize, cpu, fds, max_fds, start_time;
} MkCoreMetrics;

/* Registers the core's families in @m. From mk_metrics_new. */
void mk_core_metrics_init(MkMetrics *m, MkCoreMetrics *core);
/* The running server's core series, or a set of NULLs (counting into
 * them does nothing) when there is none, as in unit tests. Any thread. */
MkCoreMetrics *mk_core_metrics(void);

/* A stanza of @kind read from (@out FALSE) or written to a client. */
static inline void mk_metrics_stanza(gboolean out, MkStanzaKind kind)
{
    if (kind <= MK_STANZA_IQ)
        mk_metric_add((out ? mk_core_metrics()->stanzas_out : mk_core_metrics()->stanzas_in)[kind],
                      1);
}
/* The kind of a top-level element named @name (cheap: first letter). */
static inline MkStanzaKind mk_metrics_kind_of(const char *name)
{
    switch (name[0]) {
    case 'm':
        return strcmp(name, "message") == 0 ? MK_STANZA_MESSAGE : MK_STANZA_OTHER;
    case 'p':
        return strcmp(name, "presence") == 0 ? MK_STANZA_PRESENCE : MK_STANZA_OTHER;
    case 'i':
        return name[1] == 'q' && !name[2] ? MK_STANZA_IQ : MK_STANZA_OTHER;
    default:
        return MK_STANZA_OTHER;
    }
}
static inline void mk_metrics_routed(MkRoutedOutcome outcome)
{
    mk_metric_add(mk_core_metrics()->routed[outcome], 1);
}
/* The connections gauge of listener @name (resolve once). (nullable) */
gpointer mk_metrics_connections(const char *listener, const char *type);
/* A session of @host_type bound (+1) or ended (-1). Takes the lock. */
void mk_metrics_sessions_add(const char *host_type, int delta);
/* A SASL exchange with @mech ended (NULL or unknown: "other"). */
void mk_metrics_auth(const char *mech, gboolean success);
/* One query on @driver took @usec; @ok FALSE when it failed. */
void mk_metrics_db_query(const char *driver, gint64 usec, gboolean ok);

/* Collectors of the running server (workers, pools, process) and the
 * textfile writer ([metrics] textfile). Main thread: start once the
 * server is built, stop first thing at shutdown. */
void mk_metrics_server_start(MkServer *srv);
void mk_metrics_server_stop(MkServer *srv);
/* Writes the textfile now (SIGUSR1), when one is configured. Main
 * thread. */
void mk_metrics_textfile_write(MkServer *srv);
