/* The metrics registry as an operator sees it. */
#pragma once

#include "mk-core.h"

/* Appends every metric to @out in the Prometheus text exposition format
 * 0.0.4 (served at GET /metrics, core/http-metrics.c). Any thread. */
void metrics_render_prometheus(GString *out);
