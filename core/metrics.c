/* Counters "host_type.module.name": atomic 64-bit values, lock-free to
 * count. The table only grows: a counter stays allocated until the
 * registry is freed, because a stopped module's in-flight callbacks may
 * still count; it just leaves the dump while no instance owns it, and a
 * restarted module gets the same counter back (values keep growing). */
#include "modules-priv.h"
#include "modules.h"
#include <string.h>

struct MkCounter {
    char *name;
    gint64 value; /* atomic */
    guint owners; /* running instances that asked for it (under the lock) */
};

struct MkMetrics {
    GMutex lock;
    GHashTable *counters;        /* name -> MkCounter* */
    MkMetricsCoreFunc core_func; /* nullable: the core's own counters */
    gpointer core_data;
};

static void counter_free(gpointer data)
{
    MkCounter *c = data;
    g_free(c->name);
    g_free(c);
}

MkMetrics *mk_metrics_new(void)
{
    MkMetrics *m = g_new0(MkMetrics, 1);
    g_mutex_init(&m->lock);
    m->counters = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, counter_free);
    return m;
}

void mk_metrics_free(MkMetrics *m)
{
    if (!m)
        return;
    g_hash_table_unref(m->counters);
    g_mutex_clear(&m->lock);
    g_free(m);
}

/* Public module API (mk-metrics.h). (transfer none) Main thread, in
 * start(). */
MkCounter *mk_counter_new(MkModule *mod, const char *name)
{
    g_return_val_if_fail(mod != NULL && name != NULL, NULL);
    MkMetrics *m = mod->mods->metrics;
    g_autofree char *full = g_strdup_printf("%s.%s.%s", mod->host_type, mod->name, name);
    g_mutex_lock(&m->lock);
    MkCounter *c = g_hash_table_lookup(m->counters, full);
    if (!c) {
        c = g_new0(MkCounter, 1);
        c->name = g_steal_pointer(&full);
        g_hash_table_insert(m->counters, c->name, c);
    }
    if (mod->live && !g_ptr_array_find(mod->counters, c, NULL)) {
        c->owners++;
        g_ptr_array_add(mod->counters, c);
    }
    g_mutex_unlock(&m->lock);
    return c;
}

/* See modules.h. Any thread. */
MkCounter *mk_metrics_core_counter(MkModules *mods, const char *name)
{
    MkMetrics *m = mods->metrics;
    g_autofree char *full = g_strconcat("core.", name, NULL);
    g_mutex_lock(&m->lock);
    MkCounter *c = g_hash_table_lookup(m->counters, full);
    if (!c) {
        c = g_new0(MkCounter, 1);
        c->name = g_steal_pointer(&full);
        c->owners = 1; /* the core never lets go */
        g_hash_table_insert(m->counters, c->name, c);
    }
    g_mutex_unlock(&m->lock);
    return c;
}

/* Public module API. Any thread, lock-free. */
void mk_counter_add(MkCounter *counter, gint64 n)
{
    g_return_if_fail(counter != NULL);
    __atomic_add_fetch(&counter->value, n, __ATOMIC_RELAXED);
}

/* Public module API. Any thread. */
gint64 mk_counter_get(MkCounter *counter)
{
    g_return_val_if_fail(counter != NULL, 0);
    return __atomic_load_n(&counter->value, __ATOMIC_RELAXED);
}

/* See modules-priv.h. Main thread. */
void mk_metrics_release(MkModule *mod)
{
    MkMetrics *m = mod->mods->metrics;
    g_mutex_lock(&m->lock);
    for (guint i = 0; i < mod->counters->len; i++) {
        MkCounter *c = g_ptr_array_index(mod->counters, i);
        c->owners--;
    }
    g_ptr_array_set_size(mod->counters, 0);
    g_mutex_unlock(&m->lock);
}

static int cmp_counter(gconstpointer a, gconstpointer b)
{
    const MkCounter *x = *(MkCounter *const *)a, *y = *(MkCounter *const *)b;
    return strcmp(x->name, y->name);
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

/* See modules.h. (transfer full) Sorted lines "name value\n". Any
 * thread. */
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
    g_hash_table_iter_init(&it, m->counters);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((MkCounter *)v)->owners > 0)
            g_ptr_array_add(list, v);
    g_ptr_array_sort(list, cmp_counter);
    for (guint i = 0; i < list->len; i++) {
        MkCounter *c = g_ptr_array_index(list, i);
        g_string_append_printf(out, "%s %" G_GINT64_FORMAT "\n", c->name, mk_counter_get(c));
    }
    if (m->core_func)
        m->core_func(out, m->core_data);
    g_mutex_unlock(&m->lock);
    return g_string_free(out, FALSE);
}
