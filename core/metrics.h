/* The metrics registry, core side: families of counters, gauges and
 * histograms with a fixed label set each, the core's own series, and the
 * Prometheus text rendering (docs/metrics.md). Counting takes no lock:
 * each series keeps a cell per worker, on its own cache line, plus one
 * that other threads share; a scrape sums the cells. Registration and
 * rendering take the registry's lock. */
#pragma once

#include "mk-core.h"
#include "modules-priv.h"
#include <meerkat/module.h>

typedef enum {
    MK_METRIC_COUNTER,
    MK_METRIC_GAUGE,
    MK_METRIC_HISTOGRAM,
} MkMetricType;

typedef struct MkMetricFamily MkMetricFamily;

/* Cells of one series: see mk_metric_add for who counts into which. */
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

/* Adds @n to @s (NULL: nothing). Any thread, no lock. Worker i owns
 * cell i + 1 alone and adds without a locked instruction; every other
 * thread adds atomically to cell 0. (mk_metrics_shard_tls: cell + 1.) */
static inline void mk_metric_add(gpointer s, gint64 n)
{
    if (G_UNLIKELY(!s))
        return;
    guint shard = mk_metrics_shard_tls;
    if (G_UNLIKELY(!shard))
        shard = mk_metrics_shard_assign();
    gint64 *v = &((MkMetricSeries *)s)->cells[shard - 1].v;
    if (G_LIKELY(shard > 1))
        __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
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
/* The running server's core series, published by mk_metrics_server_start
 * (one server per process, as mk_server_get), or a set of NULLs that
 * counting ignores (unit tests, start-up, shutdown). A load, not a call:
 * three of these run per chat message (docs/metrics.md). Any thread. */
extern MkCoreMetrics *mk_core_metrics_running;
extern const MkCoreMetrics mk_core_metrics_none;
static inline MkCoreMetrics *mk_core_metrics(void)
{
    MkCoreMetrics *c = __atomic_load_n(&mk_core_metrics_running, __ATOMIC_ACQUIRE);
    return G_LIKELY(c) ? c : (MkCoreMetrics *)&mk_core_metrics_none;
}

/* A stanza of @kind read from (@out FALSE) or written to a client. */
static inline void mk_metrics_stanza(gboolean out, MkStanzaKind kind)
{
    if (kind <= MK_STANZA_IQ)
        mk_metric_add((out ? mk_core_metrics()->stanzas_out : mk_core_metrics()->stanzas_in)[kind],
                      1);
}
/* The kind of a top-level element named @name. Compared a character at
 * a time, unrolled: a strcmp() call, or a loop, was most of what counting
 * a stanza cost (callgrind). The && chain stops at the first difference,
 * so it never reads past @name's end. */
static inline MkStanzaKind mk_metrics_kind_of(const char *n)
{
    if (n[0] == 'm' && n[1] == 'e' && n[2] == 's' && n[3] == 's' && n[4] == 'a' && n[5] == 'g' &&
        n[6] == 'e' && !n[7])
        return MK_STANZA_MESSAGE;
    if (n[0] == 'p' && n[1] == 'r' && n[2] == 'e' && n[3] == 's' && n[4] == 'e' && n[5] == 'n' &&
        n[6] == 'c' && n[7] == 'e' && !n[8])
        return MK_STANZA_PRESENCE;
    if (n[0] == 'i' && n[1] == 'q' && !n[2])
        return MK_STANZA_IQ;
    return MK_STANZA_OTHER;
}
static inline void mk_metrics_routed(MkRoutedOutcome outcome)
{
    mk_metric_add(mk_core_metrics()->routed[outcome], 1);
}
/* The connections gauge of listener @name (resolve once). (nullable) */
gpointer mk_metrics_connections(const char *listener, const char *type);
/* The sessions gauge of @host_type (nullable): resolved at bind, kept
 * for the session's end (the domain may have left the host type by
 * then). Takes the lock. */
gpointer mk_metrics_sessions(const char *host_type);
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
