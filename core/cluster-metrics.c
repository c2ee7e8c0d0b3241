/* The cluster's metrics (cluster-metrics.h, docs/metrics.md). */
#include "cluster-metrics.h"
#include "metrics.h"
#include "server.h"

static gpointer series(MkMetrics *reg, const char *name, const char *help, MkMetricType type,
                       const char *label, const char *value)
{
    const char *labels[] = {label, NULL};
    const char *values[] = {value, NULL};
    MkMetricFamily *f = mk_metrics_family(reg, name, help, type, label ? labels : NULL, NULL, 0, 1);
    return mk_metrics_series(f, label ? values : NULL);
}

/* Before a rendering: the gauges from the cluster's state. Any thread. */
static void collect(MkMetrics *reg, gpointer data)
{
    (void)reg;
    MkCluster *cl = data;
    const MkClusterMetrics *m = mk_cluster_metrics(cl);
    mk_metric_set(m->links_up, mk_cluster_links_up(cl));
    mk_metric_set(m->redis_up, mk_cluster_redis_up(cl) ? 1 : 0);
    mk_metric_set(m->redis_pending, mk_cluster_redis_pending(cl));
}

void mk_cluster_metrics_init(MkServer *srv, MkCluster *cl, MkClusterMetrics *m)
{
    MkMetrics *reg = srv->modules ? srv->modules->metrics : NULL;
    if (!reg)
        return;
    const char *link_help = "Stanzas carried over node links, by direction.";
    m->link_sent = series(reg, "meerkat_cluster_link_stanzas_total", link_help, MK_METRIC_COUNTER,
                          "direction", "sent");
    m->link_received = series(reg, "meerkat_cluster_link_stanzas_total", link_help,
                              MK_METRIC_COUNTER, "direction", "received");
    m->link_unreachable =
        series(reg, "meerkat_cluster_link_unreachable_total",
               "Stanzas for a session of another node that had no live link (handled as for a "
               "session that went away).",
               MK_METRIC_COUNTER, NULL, NULL);
    m->links_up = series(reg, "meerkat_cluster_links_up",
                         "Node links this node dialled that are up (authenticated).",
                         MK_METRIC_GAUGE, NULL, NULL);
    m->nodes_reaped = series(reg, "meerkat_cluster_nodes_reaped_total",
                             "Dead nodes whose sessions this node removed from Redis.",
                             MK_METRIC_COUNTER, NULL, NULL);
    m->sessions_reaped = series(reg, "meerkat_cluster_sessions_reaped_total",
                                "Sessions of dead nodes this node removed from Redis.",
                                MK_METRIC_COUNTER, NULL, NULL);
    m->redis_up =
        series(reg, "meerkat_cluster_redis_up", "1 while both Redis connections are ready, else 0.",
               MK_METRIC_GAUGE, NULL, NULL);
    m->redis_errors =
        series(reg, "meerkat_cluster_redis_errors_total",
               "Redis error replies, failed connection attempts and lost connections.",
               MK_METRIC_COUNTER, NULL, NULL);
    m->redis_reconnects = series(reg, "meerkat_cluster_redis_reconnects_total",
                                 "Times Redis became reachable again after the first time.",
                                 MK_METRIC_COUNTER, NULL, NULL);
    m->redis_pending =
        series(reg, "meerkat_cluster_redis_pending_commands",
               "Redis commands sent and not yet answered.", MK_METRIC_GAUGE, NULL, NULL);
    m->updates_dropped =
        series(reg, "meerkat_cluster_session_updates_dropped_total",
               "Session updates not written because Redis had too many unanswered commands.",
               MK_METRIC_COUNTER, NULL, NULL);
    /* By MkLinkError (mk-cluster.h); "closed" is not a refusal. */
    static const char *const reasons[] = {NULL, "protocol", "tls", "certificate", "secret", "peer"};
    for (guint i = 1; i < G_N_ELEMENTS(reasons); i++)
        m->link_refused[i] =
            series(reg, "meerkat_cluster_link_refused_total",
                   "Node link handshakes refused, by reason (protocol: not a node link or plain "
                   "TCP against TLS; certificate: not signed by link_cafile; secret: wrong "
                   "cluster secret; peer: another node than the one dialled).",
                   MK_METRIC_COUNTER, "reason", reasons[i]);
    mk_metrics_add_collector(reg, collect, cl);
}

void mk_cluster_metrics_stop(MkServer *srv, MkCluster *cl)
{
    if (srv->modules && srv->modules->metrics)
        mk_metrics_remove_collector(srv->modules->metrics, collect, cl);
}
