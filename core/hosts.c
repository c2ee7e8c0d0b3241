/* Host types and their domains (see hosts.h), plus the grace-period
 * retirement that every RCU-like table of the core uses (modules-priv.h).
 *
 * Readers (every worker, every stanza) load the current snapshot pointer
 * and look the domain up, without a lock. A change builds a new snapshot
 * on the main thread, swaps it in atomically and retires the old one: it
 * is freed MK_RETIRE_GRACE_S seconds later, long after any reader that
 * could have loaded it returned to its main loop. */
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"
#include <string.h>

/* ---- Retirement ---- */

typedef struct {
    gpointer data;
    GDestroyNotify destroy;
    gint64 due; /* monotonic µs */
} Retired;

struct MkRetire {
    GQueue queue; /* of Retired*, oldest first */
    GSource *timer;
};

MkRetire *mk_retire_new(void)
{
    return g_new0(MkRetire, 1);
}

static gboolean retire_tick(gpointer user_data)
{
    MkRetire *r = user_data;
    gint64 now = g_get_monotonic_time();
    Retired *head;
    while ((head = g_queue_peek_head(&r->queue)) && head->due <= now) {
        g_queue_pop_head(&r->queue);
        head->destroy(head->data);
        g_free(head);
    }
    if (g_queue_is_empty(&r->queue)) {
        g_source_unref(r->timer);
        r->timer = NULL;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void mk_retire_push(MkRetire *r, gpointer data, GDestroyNotify destroy)
{
    if (!data)
        return;
    Retired *item = g_new0(Retired, 1);
    item->data = data;
    item->destroy = destroy;
    item->due = g_get_monotonic_time() + MK_RETIRE_GRACE_S * G_USEC_PER_SEC;
    g_queue_push_tail(&r->queue, item);
    if (!r->timer) {
        /* Ticks every grace period: an item waits between one and two. */
        r->timer = g_timeout_source_new_seconds(MK_RETIRE_GRACE_S);
        g_source_set_callback(r->timer, retire_tick, r, NULL);
        g_source_attach(r->timer, g_main_context_default());
    }
}

void mk_retire_free(MkRetire *r)
{
    if (!r)
        return;
    if (r->timer) {
        g_source_destroy(r->timer);
        g_source_unref(r->timer);
    }
    Retired *item;
    while ((item = g_queue_pop_head(&r->queue))) {
        item->destroy(item->data);
        g_free(item);
    }
    g_free(r);
}

/* ---- Hosts ---- */

typedef struct {
    GHashTable *domains; /* prepared domain (owned) -> host type (interned) */
    GPtrArray *types;    /* interned host type names, config order */
} HostsSnap;

struct MkHosts {
    HostsSnap *snap; /* atomic */
    MkRetire *retire;
};

static void snap_free(gpointer data)
{
    HostsSnap *s = data;
    g_hash_table_unref(s->domains);
    g_ptr_array_unref(s->types);
    g_free(s);
}

static HostsSnap *snap_copy(const HostsSnap *old)
{
    HostsSnap *s = g_new0(HostsSnap, 1);
    s->domains = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    s->types = g_ptr_array_new();
    if (old) {
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, old->domains);
        while (g_hash_table_iter_next(&it, &k, &v))
            g_hash_table_insert(s->domains, g_strdup(k), v);
        for (guint i = 0; i < old->types->len; i++)
            g_ptr_array_add(s->types, old->types->pdata[i]);
    }
    return s;
}

static void publish(MkHosts *hosts, HostsSnap *next)
{
    HostsSnap *old = g_atomic_pointer_exchange(&hosts->snap, next);
    mk_retire_push(hosts->retire, old, snap_free);
}

/* Builds the table from @cfg's host types (domains already prepared).
 * (transfer full) Main thread. */
MkHosts *mk_hosts_new(const MkConfigData *cfg)
{
    MkHosts *hosts = g_new0(MkHosts, 1);
    hosts->retire = mk_retire_new();
    HostsSnap *s = snap_copy(NULL);
    for (guint i = 0; cfg && i < cfg->host_types->len; i++) {
        MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        const char *type = g_intern_string(ht->name);
        g_ptr_array_add(s->types, (gpointer)type);
        for (char **d = ht->domains; d && *d; d++)
            g_hash_table_insert(s->domains, g_strdup(*d), (gpointer)type);
    }
    hosts->snap = s;
    return hosts;
}

/* Frees @hosts at once: no reader may remain (workers stopped). Main
 * thread. */
void mk_hosts_free(MkHosts *hosts)
{
    if (!hosts)
        return;
    mk_retire_free(hosts->retire);
    snap_free(hosts->snap);
    g_free(hosts);
}

/* (transfer none) (nullable) The host type of prepared @domain: an
 * interned string. Any thread, lock-free. */
const char *mk_hosts_lookup(MkHosts *hosts, const char *domain)
{
    if (!hosts || !domain)
        return NULL;
    HostsSnap *s = g_atomic_pointer_get(&hosts->snap);
    return g_hash_table_lookup(s->domains, domain);
}

static int cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* (transfer full) The domains of @host_type, sorted. Any thread. */
char **mk_hosts_domains(MkHosts *hosts, const char *host_type)
{
    GPtrArray *out = g_ptr_array_new();
    if (hosts && host_type) {
        HostsSnap *s = g_atomic_pointer_get(&hosts->snap);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, s->domains);
        while (g_hash_table_iter_next(&it, &k, &v))
            if (g_str_equal(v, host_type))
                g_ptr_array_add(out, g_strdup(k));
        g_ptr_array_sort(out, cmp_str);
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

/* (transfer full) Every host type name, in configuration order. Any
 * thread. */
char **mk_hosts_types(MkHosts *hosts)
{
    GPtrArray *out = g_ptr_array_new();
    if (hosts) {
        HostsSnap *s = g_atomic_pointer_get(&hosts->snap);
        for (guint i = 0; i < s->types->len; i++)
            g_ptr_array_add(out, g_strdup(s->types->pdata[i]));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

static char *prepare(const char *domain, GError **error)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, domain, NULL, error);
    return jid ? g_strdup(mk_jid_domain(jid)) : NULL;
}

/* Serves @domain with @host_type from now on and runs the domain_added
 * hook of that host type (From = the domain). Main thread. */
gboolean mk_hosts_add_domain(MkHosts *hosts, const char *host_type, const char *domain,
                             GError **error)
{
    g_return_val_if_fail(hosts && host_type && domain, FALSE);
    HostsSnap *cur = hosts->snap;
    const char *type = NULL;
    for (guint i = 0; i < cur->types->len; i++)
        if (g_str_equal(cur->types->pdata[i], host_type))
            type = cur->types->pdata[i];
    if (!type) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE, "unknown host type %s",
                    host_type);
        return FALSE;
    }
    g_autofree char *prepared = prepare(domain, error);
    if (!prepared)
        return FALSE;
    const char *other = g_hash_table_lookup(cur->domains, prepared);
    if (other) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE,
                    "domain %s is already served by host type %s", prepared, other);
        return FALSE;
    }
    HostsSnap *next = snap_copy(cur);
    g_hash_table_insert(next->domains, g_strdup(prepared), (gpointer)type);
    publish(hosts, next);

    MkServer *srv = mk_server_get();
    if (srv && srv->hosts == hosts && srv->modules) {
        g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, prepared, NULL, NULL);
        MkHookCall call = {.domain = prepared, .from = jid};
        mk_hooks_run(srv->modules, MK_HOOK_DOMAIN_ADDED, &call);
        mk_hook_call_clear(&call);
    }
    return TRUE;
}

/* Stops serving @domain. Sessions of the domain are not closed here.
 * Main thread. */
gboolean mk_hosts_remove_domain(MkHosts *hosts, const char *domain, GError **error)
{
    g_return_val_if_fail(hosts && domain, FALSE);
    g_autofree char *prepared = prepare(domain, error);
    if (!prepared)
        return FALSE;
    if (!g_hash_table_contains(hosts->snap->domains, prepared)) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE, "domain %s is not served",
                    prepared);
        return FALSE;
    }
    HostsSnap *next = snap_copy(hosts->snap);
    g_hash_table_remove(next->domains, prepared);
    publish(hosts, next);
    return TRUE;
}
