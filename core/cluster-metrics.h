/* The cluster's series in the metrics registry (docs/metrics.md,
 * Cluster): counted lock-free from the cluster thread and the workers;
 * the gauges (links up, Redis connected, commands awaiting a reply) are
 * read by a collector when the text is made. */
#pragma once

#include "mk-core.h"

typedef struct MkCluster MkCluster;

typedef struct {
    gpointer link_sent;        /* stanzas written to a link */
    gpointer link_received;    /* stanzas read from a link */
    gpointer link_unreachable; /* stanzas for a stand-in whose node had no link */
    gpointer links_up;         /* gauge */
    gpointer nodes_reaped;     /* dead nodes whose sessions this node removed */
    gpointer sessions_reaped;  /* their sessions */
    gpointer redis_up;         /* gauge: 1 while both connections are ready */
    gpointer redis_errors;     /* error replies, failed connections, lost connections */
    gpointer redis_reconnects; /* connections made after the first */
    gpointer redis_pending;    /* gauge */
    gpointer updates_dropped;  /* session writes dropped while Redis lagged */
    gpointer link_refused[8];  /* peers refused, by MkLinkError code */
} MkClusterMetrics;

/* Registers the cluster's series for @cl in @srv's registry and its
 * collector. @m: zeroed, filled; NULL series (no registry) ignore
 * counting. Main thread, at start. */
void mk_cluster_metrics_init(MkServer *srv, MkCluster *cl, MkClusterMetrics *m);
/* Removes the collector. Main thread, at stop. */
void mk_cluster_metrics_stop(MkServer *srv, MkCluster *cl);

/* For the collector (cluster.c). Any thread. */
const MkClusterMetrics *mk_cluster_metrics(MkCluster *cl);
guint mk_cluster_links_up(MkCluster *cl);
guint mk_cluster_redis_pending(MkCluster *cl);
gboolean mk_cluster_redis_up(MkCluster *cl);
