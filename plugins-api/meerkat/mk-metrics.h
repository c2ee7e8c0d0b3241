#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Module metrics, exported in the Prometheus text format (docs/metrics.md)
 * as meerkat_MODULE_NAME{host_type="..."} plus the labels given; plain
 * counters are also logged on SIGUSR1 and at shutdown as
 * "metric HOST_TYPE.MODULE.NAME VALUE" (docs/operations.md). Updates are
 * lock-free from any thread; creating a metric takes a lock, so create
 * them in start(). A metric outlives its module instance (in-flight
 * callbacks may still count) and a restarted module gets the same one
 * back, values kept. */

typedef struct MkGauge MkGauge;         /* a value that goes up and down */
typedef struct MkHistogram MkHistogram; /* observations in fixed buckets */

/* Returns: (transfer none) the counter NAME of @mod's host type, created
 * on first use; exported as meerkat_MODULE_NAME_total. Main thread, in
 * start(). */
MK_API MkCounter *mk_counter_new(MkModule *mod, const char *name);
MK_API void mk_counter_add(MkCounter *counter, gint64 n);
MK_API gint64 mk_counter_get(MkCounter *counter);

/* @name: letters, digits and '_', with the unit in it (…_seconds,
 * …_bytes); "_total" is added to a counter's name. @help: one line for
 * the exposition. @labels: (nullable) NULL-terminated name, value pairs,
 * the same names for every series of one name; keep their values to a
 * small fixed set (never a JID). Returns: (transfer none) (nullable:
 * NULL when the name or the labels do not fit a metric of that name
 * already made; updating NULL does nothing). Main thread, in start().
 * This and everything below: Since ABI 2.1. */
MK_API MkCounter *mk_counter_new_full(MkModule *mod, const char *name, const char *help,
                                      const char *const *labels);
MK_API MkGauge *mk_gauge_new(MkModule *mod, const char *name, const char *help,
                             const char *const *labels);
/* @bounds: the buckets' upper bounds, increasing (+Inf is implied). */
MK_API MkHistogram *mk_histogram_new(MkModule *mod, const char *name, const char *help,
                                     const double *bounds, guint n_bounds,
                                     const char *const *labels);

/* Any thread, lock-free. A gauge's set is for a single writer; add and
 * subtract from anywhere. */
MK_API void mk_gauge_add(MkGauge *gauge, gint64 n);
MK_API void mk_gauge_set(MkGauge *gauge, gint64 value);
MK_API gint64 mk_gauge_get(MkGauge *gauge);
MK_API void mk_histogram_observe(MkHistogram *histogram, double value);

G_END_DECLS
