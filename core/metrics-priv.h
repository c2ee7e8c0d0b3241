/* The registry's insides, shared by metrics.c (registration),
 * metrics-prom.c (rendering), metrics-core.c (the core's series) and
 * metrics-textfile.c. Nothing else includes this. */
#pragma once

#include "metrics.h"
#include "modules.h"

#define MK_METRICS_MAX_LABELS 4

struct MkMetricFamily {
    MkMetrics *m;
    char *name; /* the sample name; a histogram's samples add _bucket etc. */
    char *help;
    MkMetricType type;
    char **labels; /* names, NULL-terminated */
    guint n_labels;
    double *bounds; /* histograms */
    guint n_bounds;
    double scale;      /* stored value x scale = shown value */
    GPtrArray *series; /* of MkMetricSeries*, owned, in creation order */
};

typedef struct {
    MkMetricsCollectFunc func;
    gpointer data;
} MkMetricsCollector;

struct MkMetrics {
    GMutex lock;
    GHashTable *families;        /* name -> MkMetricFamily*, owned */
    GHashTable *legacy;          /* "host_type.module.name" -> MkMetricSeries* */
    MkMetricsCoreFunc core_func; /* nullable: the core's own counter lines */
    gpointer core_data;
    GMutex collect_lock; /* held while collectors run, and to change them */
    GArray *collectors;  /* of MkMetricsCollector */
    MkCoreMetrics core;
    struct MkMetricsTextfile *textfile; /* metrics-textfile.c, main thread */
};

/* metrics-prom.c: @families (sorted) in the text format, then the
 * "core.NAME value" lines of @core_func as counters. Under the lock. */
void mk_metrics_render_locked(GString *out, GPtrArray *families, MkMetricsCoreFunc core_func,
                              gpointer core_data);
/* metrics-textfile.c */
void mk_metrics_textfile_start(MkServer *srv);
void mk_metrics_textfile_stop(MkServer *srv);
