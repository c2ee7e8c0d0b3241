/* The registry's counters in the Prometheus text format 0.0.4: each
 * "host_type.module.name" counter as meerkat_<name>_total, with the
 * characters Prometheus refuses in names turned into '_'. */
#include "metrics.h"
#include "modules.h"
#include "server.h"
#include <string.h>

/* A metric name: [a-zA-Z_:][a-zA-Z0-9_:]*, ours always lower-case. */
static char *sanitise(const char *name)
{
    GString *s = g_string_new("meerkat_");
    for (const char *p = name; *p; p++)
        g_string_append_c(s, g_ascii_isalnum(*p) ? g_ascii_tolower(*p) : '_');
    g_string_append(s, "_total");
    return g_string_free(s, FALSE);
}

/* See metrics.h. Any thread. */
void metrics_render_prometheus(GString *out)
{
    MkServer *srv = mk_server_get();
    g_autofree char *dump = mk_metrics_dump(srv ? srv->modules : NULL);
    g_auto(GStrv) lines = g_strsplit(dump, "\n", -1);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (char **l = lines; *l; l++) {
        char *space = strrchr(*l, ' ');
        if (!space)
            continue;
        g_autofree char *raw = g_strndup(*l, (gsize)(space - *l));
        char *name = sanitise(raw);
        if (!g_hash_table_add(seen, name))
            continue; /* two names sanitised alike: keep the first */
        g_string_append_printf(out, "# HELP %s Meerkat counter %s.\n# TYPE %s counter\n%s %s\n",
                               name, raw, name, name, space + 1);
    }
}
