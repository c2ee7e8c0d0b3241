/* --ports: the client ports of a cluster's nodes (bench-cluster.sh). */
#include "bench.h"
#include <stdlib.h>

void bench_parse_ports(BenchOpts *o, const char *list)
{
    g_auto(GStrv) parts = g_strsplit(list, ",", -1);
    o->nports = (int)g_strv_length(parts);
    o->ports = g_new0(int, o->nports ? o->nports : 1);
    for (int i = 0; i < o->nports; i++)
        o->ports[i] = atoi(parts[i]);
}
