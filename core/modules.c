/* The module loader: opens mod_NAME.so, checks its descriptor, orders
 * modules by dependency, validates their config, runs their migrations
 * and starts one instance per host type; also publishes the registry
 * snapshot that hooks.c, iq.c, disco.c and routes.c read.
 *
 * GModules are never closed while the server runs, even after a module
 * stopped: a worker may still be inside its code (a hook that loaded the
 * previous snapshot, a storage completion, an idle callback), and nothing
 * tells us when the last one returned. They are closed by
 * mk_modules_free(), after the workers stopped. A restart of the same
 * module reuses the open handle. */
#include "modules.h"
#include "http.h"
#include "db.h"
#include "hosts.h"
#include "modules-priv.h"
#include "server.h"
#include "worker.h"
#include <string.h>

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-module-error-quark, mk_module_error)
/* clang-format on */

/* One enabled module: its descriptor and its instances. */
typedef struct {
    const char *name; /* interned */
    const MkModuleDesc *desc;
    char *checksum;        /* of its conf.d file */
    char **host_types;     /* the host types it runs on, config order */
    GPtrArray *values;     /* per host type: typed values (GHashTable*) */
    GPtrArray *instances;  /* MkModule*, same order; empty when stopped */
    gboolean from_running; /* in mods->running before this apply */
} Loaded;

static void loaded_free(Loaded *l)
{
    g_free(l->checksum);
    g_strfreev(l->host_types);
    g_ptr_array_unref(l->values);
    g_ptr_array_unref(l->instances);
    g_free(l);
}

/* ---- MkModule ---- */

static MkModule *module_new(MkModules *mods, const MkModuleDesc *desc, const char *host_type,
                            GHashTable *values)
{
    MkModule *m = g_new0(MkModule, 1);
    m->ref = 1;
    m->mods = mods;
    m->desc = desc;
    m->name = g_intern_string(desc->name);
    m->host_type = g_intern_string(host_type);
    m->values = g_hash_table_ref(values);
    m->hooks = g_ptr_array_new_with_free_func(mk_hook_reg_free);
    m->iqs = g_ptr_array_new_with_free_func(mk_iq_reg_free);
    m->features = g_ptr_array_new_with_free_func(g_free);
    m->acct_features = g_ptr_array_new_with_free_func(g_free);
    m->identities = g_ptr_array_new_with_free_func(g_free);
    m->items = g_ptr_array_new_with_free_func(g_free);
    m->routes = g_ptr_array_new_with_free_func(mk_route_reg_free);
    g_mutex_init(&m->timers_lock);
    m->services = g_ptr_array_new_with_free_func(mk_service_reg_free);
    m->timers = g_ptr_array_new();
    m->counters = g_ptr_array_new();
    m->queues = g_ptr_array_new_with_free_func(mk_user_queue_free);
    m->caches = g_ptr_array_new_with_free_func(mk_user_cache_free);
    m->stream_features = g_ptr_array_new_with_free_func(g_free);
    m->stream_regs = g_ptr_array_new_with_free_func(mk_stream_reg_free);
    m->stream_funcs = g_ptr_array_new_with_free_func(g_free);
    return m;
}

/* (transfer full) Any thread. */
MkModule *mk_module_ref(MkModule *mod)
{
    g_atomic_int_inc(&mod->ref);
    return mod;
}

/* See modules-priv.h. Any thread. Sequentially consistent atomics: either
 * the caller sees live = FALSE, or the stopping thread sees the count. */
gboolean mk_module_enter(MkModule *mod)
{
    g_atomic_int_inc(&mod->offworker);
    if (g_atomic_int_get(&mod->live))
        return TRUE;
    mk_module_leave(mod);
    return FALSE;
}

void mk_module_leave(MkModule *mod)
{
    g_atomic_int_add(&mod->offworker, -1);
}

static void run_data_destroy(MkModule *m)
{
    GDestroyNotify destroy = g_steal_pointer(&m->data_destroy);
    gpointer data = g_steal_pointer(&m->data);
    if (data && destroy)
        destroy(data);
}

/* Any thread. The struct, and the module's data, outlive stop() while
 * snapshots, MkIqs or the core's jobs still hold references: the data's
 * destroy notify runs here, after the last callback returned. */
void mk_module_unref(MkModule *mod)
{
    if (!mod || !g_atomic_int_dec_and_test(&mod->ref))
        return;
    run_data_destroy(mod);
    g_hash_table_unref(mod->values);
    g_ptr_array_unref(mod->hooks);
    g_ptr_array_unref(mod->iqs);
    g_ptr_array_unref(mod->features);
    g_ptr_array_unref(mod->acct_features);
    g_ptr_array_unref(mod->identities);
    g_ptr_array_unref(mod->items);
    g_ptr_array_unref(mod->routes);
    g_ptr_array_unref(mod->services);
    g_ptr_array_unref(mod->timers);
    g_mutex_clear(&mod->timers_lock);
    g_ptr_array_unref(mod->counters);
    g_ptr_array_unref(mod->caches);
    g_ptr_array_unref(mod->queues);
    g_ptr_array_unref(mod->stream_features);
    g_ptr_array_unref(mod->stream_regs);
    g_ptr_array_unref(mod->stream_funcs);
    g_free(mod);
}

/* Public module API (mk-moddesc.h). Any thread. */
gboolean mk_module_is_running(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, FALSE);
    return g_atomic_int_get(&mod->live);
}

/* Public module API (mk-moddesc.h). (transfer none) Any thread. */
const char *mk_module_name(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, NULL);
    return mod->name;
}

/* Public module API. (transfer none) Any thread. */
const char *mk_module_host_type(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, NULL);
    return mod->host_type;
}

static MkHosts *module_hosts(MkModule *mod)
{
    MkServer *srv = mod->mods ? mod->mods->server : NULL;
    return srv ? srv->hosts : NULL;
}

/* Public module API. (transfer full) Any thread. */
char **mk_module_domains(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, NULL);
    return mk_hosts_domains(module_hosts(mod), mod->host_type);
}

/* Public module API. Any thread. */
gboolean mk_module_serves_domain(MkModule *mod, const char *domain)
{
    g_return_val_if_fail(mod != NULL, FALSE);
    return g_strcmp0(mk_hosts_lookup(module_hosts(mod), domain), mod->host_type) == 0;
}

/* Public module API. Main thread (normally in start()). */
void mk_module_set_data(MkModule *mod, gpointer data, GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL);
    if (mod->data && mod->data_destroy && mod->data != data)
        mod->data_destroy(mod->data);
    mod->data = data;
    mod->data_destroy = destroy;
}

/* Public module API. (transfer none) Any thread. */
gpointer mk_module_get_data(MkModule *mod)
{
    g_return_val_if_fail(mod != NULL, NULL);
    return mod->data;
}

/* ---- Snapshot ---- */

static void host_reg_free(gpointer data)
{
    MkHostReg *hr = data;
    g_hash_table_unref(hr->hooks);
    for (int i = 0; i < 4; i++)
        g_hash_table_unref(hr->iq[i]);
    g_strfreev(hr->features);
    g_strfreev(hr->acct_features);
    g_strfreev(hr->identities);
    g_strfreev(hr->items);
    for (int i = 0; i < MK_STREAM_STAGE_COUNT; i++)
        g_free(hr->stream_features[i]);
    g_hash_table_unref(hr->stream_elements);
    g_hash_table_unref(hr->preauth_iqs);
    g_hash_table_unref(hr->services);
    g_free(hr);
}

static void snapshot_free(gpointer data)
{
    MkRegSnapshot *s = data;
    if (!s)
        return;
    g_hash_table_unref(s->hosts);
    g_hash_table_unref(s->routes);
    g_ptr_array_unref(s->refs);
    g_free(s);
}

static MkRegSnapshot *snapshot_new(void)
{
    MkRegSnapshot *s = g_new0(MkRegSnapshot, 1);
    s->hosts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, host_reg_free);
    s->routes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    s->refs = g_ptr_array_new_with_free_func((GDestroyNotify)mk_module_unref);
    return s;
}

static MkRegSnapshot *snapshot_build(MkModules *mods)
{
    MkRegSnapshot *s = snapshot_new();
    /* host type -> the disco records of all its instances */
    g_autoptr(GHashTable) disco = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                                        (GDestroyNotify)g_ptr_array_unref);
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *m = g_ptr_array_index(mods->instances, i);
        MkHostReg *hr = g_hash_table_lookup(s->hosts, m->host_type);
        if (!hr) {
            hr = g_new0(MkHostReg, 1);
            hr->hooks =
                g_hash_table_new_full(g_str_hash, g_str_equal, g_free, mk_hooks_entries_free);
            for (int t = 0; t < 4; t++)
                hr->iq[t] = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
            hr->stream_elements = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
            hr->preauth_iqs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
            hr->services = g_hash_table_new(g_str_hash, g_str_equal);
            g_hash_table_insert(s->hosts, (gpointer)m->host_type, hr);
            GPtrArray *lists = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
            for (int t = 0; t < 4; t++)
                g_ptr_array_add(lists, g_ptr_array_new());
            g_hash_table_insert(disco, (gpointer)m->host_type, lists);
        }
        g_ptr_array_add(s->refs, mk_module_ref(m));
        mk_hooks_build(hr, m);
        mk_iq_build(hr, m);
        mk_routes_build(s->routes, m);
        mk_services_build(hr, m);
        mk_stream_build(hr, m);
        GPtrArray *lists = g_hash_table_lookup(disco, m->host_type);
        for (guint j = 0; j < m->features->len; j++)
            g_ptr_array_add(lists->pdata[0], m->features->pdata[j]);
        for (guint j = 0; j < m->identities->len; j++)
            g_ptr_array_add(lists->pdata[1], m->identities->pdata[j]);
        for (guint j = 0; j < m->items->len; j++)
            g_ptr_array_add(lists->pdata[2], m->items->pdata[j]);
        for (guint j = 0; j < m->acct_features->len; j++)
            g_ptr_array_add(lists->pdata[3], m->acct_features->pdata[j]);
    }
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, disco);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        GPtrArray *lists = v;
        mk_disco_build(g_hash_table_lookup(s->hosts, k), lists->pdata[0], lists->pdata[1],
                       lists->pdata[2], lists->pdata[3]);
    }
    /* Computed stream features read the finished disco lists. */
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *m = g_ptr_array_index(mods->instances, i);
        mk_stream_build_computed(g_hash_table_lookup(s->hosts, m->host_type), m);
    }
    return s;
}

/* See modules-priv.h. Main thread. */
void mk_modules_publish(MkModules *mods)
{
    if (mods->batch > 0) {
        mods->dirty = TRUE;
        return;
    }
    mods->dirty = FALSE;
    MkRegSnapshot *old = g_atomic_pointer_exchange(&mods->snap, snapshot_build(mods));
    mk_retire_push(mods->retire, old, snapshot_free);
}

/* See modules-priv.h. Any thread. */
MkRegSnapshot *mk_modules_snapshot(MkModules *mods)
{
    return g_atomic_pointer_get(&mods->snap);
}

/* See modules-priv.h. Any thread. */
MkHostReg *mk_modules_host_reg(MkModules *mods, const char *domain)
{
    if (!mods || !mods->server)
        return NULL;
    const char *ht = mk_hosts_lookup(mods->server->hosts, domain);
    if (!ht)
        return NULL;
    return g_hash_table_lookup(mk_modules_snapshot(mods)->hosts, ht);
}

/* See modules-priv.h. Any thread. */
MkModules *mk_modules_get(void)
{
    MkServer *srv = mk_server_get();
    return srv ? srv->modules : NULL;
}

/* ---- Registry object ---- */

static void close_gmodule(gpointer gm)
{
    g_module_close(gm);
}

/* (transfer full) An empty registry for @server (nullable in tests).
 * Main thread. */
MkModules *mk_modules_new(MkServer *server)
{
    MkModules *mods = g_new0(MkModules, 1);
    mods->server = server;
    mods->snap = snapshot_new();
    mods->retire = mk_retire_new();
    mods->instances = g_ptr_array_new();
    mods->running = g_ptr_array_new_with_free_func((GDestroyNotify)loaded_free);
    mods->gmodules = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_gmodule);
    g_mutex_init(&mods->pending_lock);
    mods->pending = g_hash_table_new(g_str_hash, g_str_equal);
    mods->metrics = mk_metrics_new();
    return mods;
}

/* Stops everything still running and frees @mods. Workers must have
 * stopped: old snapshots are freed at once and GModules closed. Main
 * thread. */
void mk_modules_free(MkModules *mods)
{
    if (!mods)
        return;
    mk_modules_stop_all(mods);
    mk_iq_pending_clear(mods);
    g_hash_table_unref(mods->pending);
    g_mutex_clear(&mods->pending_lock);
    mk_retire_free(mods->retire);
    snapshot_free(mods->snap);
    g_ptr_array_unref(mods->running);
    g_ptr_array_unref(mods->instances);
    mk_metrics_free(mods->metrics);
    g_hash_table_unref(mods->gmodules);
    g_free(mods);
}

/* ---- Loading and ordering ---- */

static const MkModuleDesc *load_desc(MkModules *mods, const MkConfigData *cfg, const char *name,
                                     GError **error)
{
    GModule *gm = g_hash_table_lookup(mods->gmodules, name);
    g_autofree char *file = g_strdup_printf("%s/%s.so", cfg->module_dir, name);
    if (!gm) {
        /* Never lazy: an unresolved symbol must fail here, not in a
         * worker later. */
        gm = g_module_open(file, G_MODULE_BIND_LOCAL);
        if (!gm) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_LOAD, "%s: cannot load %s: %s",
                        name, file, g_module_error());
            return NULL;
        }
        g_hash_table_insert(mods->gmodules, g_strdup(name), gm);
    }
    gpointer sym = NULL;
    if (!g_module_symbol(gm, "mk_module_desc", &sym) || !sym) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_LOAD,
                    "%s: no mk_module_desc symbol in %s", name, file);
        return NULL;
    }
    const MkModuleDesc *desc = sym;
    /* Nothing past the two version fields is read before this check. */
    if (desc->abi_major != MK_ABI_MAJOR || desc->abi_minor > MK_ABI_MINOR) {
        g_warning("module %s: built for module ABI %u.%u, this server provides %d.%d; not loaded",
                  name, desc->abi_major, desc->abi_minor, MK_ABI_MAJOR, MK_ABI_MINOR);
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_ABI,
                    "%s: built for module ABI %u.%u, this server provides %d.%d", name,
                    desc->abi_major, desc->abi_minor, MK_ABI_MAJOR, MK_ABI_MINOR);
        return NULL;
    }
    if (g_strcmp0(desc->name, name) != 0) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_LOAD,
                    "%s: %s describes itself as \"%s\"", name, file,
                    desc->name ? desc->name : "(null)");
        return NULL;
    }
    return desc;
}

static Loaded *find_loaded(GPtrArray *list, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        Loaded *l = g_ptr_array_index(list, i);
        if (g_str_equal(l->name, name))
            return l;
    }
    return NULL;
}

/* Depth-first: appends @l after its dependencies. @state: name ->
 * 1 (visiting) / 2 (done). */
static gboolean visit(Loaded *l, GPtrArray *all, GHashTable *state, GPtrArray *order,
                      GPtrArray *path, GError **error)
{
    int st = GPOINTER_TO_INT(g_hash_table_lookup(state, l->name));
    if (st == 2)
        return TRUE;
    g_ptr_array_add(path, (gpointer)l->name);
    if (st == 1) {
        g_ptr_array_add(path, NULL);
        g_autofree char *cycle = g_strjoinv(" -> ", (char **)path->pdata);
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY, "dependency cycle: %s",
                    cycle);
        return FALSE;
    }
    g_hash_table_insert(state, (gpointer)l->name, GINT_TO_POINTER(1));
    for (const char *const *d = l->desc->depends; d && *d; d++) {
        Loaded *dep = find_loaded(all, *d);
        if (!dep) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY,
                        "%s depends on %s, which is not enabled (no conf.d/%s.conf)", l->name, *d,
                        *d);
            return FALSE;
        }
        if (!visit(dep, all, state, order, path, error))
            return FALSE;
    }
    g_ptr_array_remove_index(path, path->len - 1);
    g_hash_table_insert(state, (gpointer)l->name, GINT_TO_POINTER(2));
    g_ptr_array_add(order, l);
    return TRUE;
}

static gboolean depends_on(Loaded *l, const char *name)
{
    for (const char *const *d = l->desc->depends; d && *d; d++)
        if (g_str_equal(*d, name))
            return TRUE;
    return FALSE;
}

/* ---- Start and stop ---- */

static void unregister_all(MkModule *m)
{
    MkModules *mods = m->mods;
    gboolean had = m->hooks->len || m->iqs->len || m->features->len || m->acct_features->len ||
                   m->identities->len || m->items->len || m->routes->len || m->services->len ||
                   m->stream_features->len || m->stream_regs->len || m->stream_funcs->len ||
                   m->stream_mgmt.on;
    g_atomic_int_set(&m->live, FALSE);
    /* An auth_preload handler may be running on the auth pool (it reads
     * the database): stop() must not free what it uses. */
    while (g_atomic_int_get(&m->offworker) > 0)
        g_usleep(1000);
    mk_timers_remove_all(m);
    mk_user_queues_close(m);
    mk_metrics_release(m);
    if (mods->server)
        mk_http_routes_drop(mods->server->http_routes, m);
    g_ptr_array_set_size(m->hooks, 0);
    g_ptr_array_set_size(m->iqs, 0);
    g_ptr_array_set_size(m->features, 0);
    g_ptr_array_set_size(m->acct_features, 0);
    g_ptr_array_set_size(m->identities, 0);
    g_ptr_array_set_size(m->items, 0);
    g_ptr_array_set_size(m->routes, 0);
    g_ptr_array_set_size(m->services, 0);
    g_ptr_array_set_size(m->stream_features, 0);
    g_ptr_array_set_size(m->stream_regs, 0);
    g_ptr_array_set_size(m->stream_funcs, 0);
    memset(&m->stream_mgmt, 0, sizeof m->stream_mgmt);
    g_ptr_array_remove(mods->instances, m);
    if (had || mods->dirty)
        mk_modules_publish(mods);
}

/* Public module API (mk-moddesc.h). Main thread, in start(). */
void mk_module_on_stopping(MkModule *mod, MkModuleStoppingFunc func, gpointer user_data)
{
    g_return_if_fail(mod != NULL);
    if (!mod->live) {
        g_warning("module %s: mk_module_on_stopping outside a running instance ignored", mod->name);
        return;
    }
    mod->stopping = func;
    mod->stopping_data = user_data;
}

/* Runs @m's goodbye, once; TRUE when it had one (the caller then waits
 * for the workers). Main thread. */
static gboolean run_stopping(MkModule *m)
{
    MkModuleStoppingFunc func = g_steal_pointer(&m->stopping);
    if (!func || !g_atomic_int_get(&m->live))
        return FALSE;
    func(m, m->stopping_data);
    return TRUE;
}

/* What the goodbyes posted to the workers has run (and was routed on):
 * 5 s at most, a worker stuck elsewhere does not hold the stop. */
static void wait_goodbyes(MkModules *mods)
{
    if (mods->server && mods->server->workers &&
        !mk_workers_barrier(mods->server->workers, 5 * G_USEC_PER_SEC))
        g_warning("modules: a worker did not finish the goodbyes within 5 s");
}

/* See modules.h. Main thread. */
void mk_modules_stopping_all(MkModules *mods)
{
    gboolean any = FALSE;
    for (guint i = 0; mods && i < mods->running->len; i++) {
        Loaded *l = g_ptr_array_index(mods->running, i);
        for (guint j = 0; j < l->instances->len; j++)
            any |= run_stopping(g_ptr_array_index(l->instances, j));
    }
    if (any)
        wait_goodbyes(mods);
}

/* The data goes with the last reference, once work still in flight for
 * the instance has completed. */
static void stop_instance(MkModule *m)
{
    if (run_stopping(m))
        wait_goodbyes(m->mods);
    unregister_all(m);
    if (m->desc->stop)
        m->desc->stop(m);
    mk_module_unref(m);
}

static void stop_loaded(Loaded *l)
{
    while (l->instances->len > 0) {
        MkModule *m = g_ptr_array_steal_index(l->instances, l->instances->len - 1);
        g_info("stopping module %s on host type %s", l->name, m->host_type);
        stop_instance(m);
    }
}

/* Creates the instance of @desc on @host_type and runs its start().
 * (transfer full) or NULL with everything it registered removed. */
static MkModule *start_instance(MkModules *mods, const MkModuleDesc *desc, const char *ht,
                                GHashTable *values, GError **error)
{
    MkModule *m = module_new(mods, desc, ht, values);
    m->live = TRUE;
    g_ptr_array_add(mods->instances, m);
    g_autoptr(GError) local = NULL;
    mods->batch++;
    gboolean ok = desc->start ? desc->start(m, &local) : TRUE;
    mods->batch--;
    if (!ok) {
        /* Whatever it registered goes; start() failing means stop() is
         * not called, but its data is freed (with the last reference). */
        unregister_all(m);
        mk_module_unref(m);
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "module %s failed to start on host type %s: %s", desc->name, ht,
                    local ? local->message : "start() returned FALSE without a reason");
        return NULL; /* the caller reports it */
    }
    if (mods->dirty)
        mk_modules_publish(mods);
    g_info("started module %s on host type %s", desc->name, ht);
    return m;
}

/* See modules-priv.h. Main thread. */
MkModule *mk_module_start_adhoc(MkModules *mods, const MkModuleDesc *desc, const char *host_type,
                                GError **error)
{
    g_autoptr(GHashTable) strings = g_hash_table_new(g_str_hash, g_str_equal);
    for (const MkConfigKey *k = desc->config_keys; k && k->name; k++)
        if (k->default_value)
            g_hash_table_insert(strings, (gpointer)k->name, (gpointer)k->default_value);
    g_autoptr(GHashTable) values = mk_modconfig_parse(desc->config_keys, strings);
    return start_instance(mods, desc, host_type, values, error);
}

/* See modules-priv.h. Main thread. */
void mk_module_stop_adhoc(MkModule *mod)
{
    stop_instance(mod);
}

static gboolean start_loaded(MkModules *mods, Loaded *l, GError **error)
{
    MkServer *srv = mods->server;
    if (srv && srv->db && l->desc->migrations &&
        !mk_db_migrate(srv->db, l->name, l->desc->migrations, error)) {
        g_prefix_error(error, "module %s: ", l->name);
        return FALSE;
    }
    for (guint h = 0; l->host_types[h]; h++) {
        const char *ht = l->host_types[h];
        MkModule *m = start_instance(mods, l->desc, ht, g_ptr_array_index(l->values, h), error);
        if (!m) {
            stop_loaded(l);
            return FALSE;
        }
        g_ptr_array_add(l->instances, m);
    }
    return TRUE;
}

static gboolean same_strv(char **a, char **b)
{
    return g_strv_equal((const char *const *)a, (const char *const *)b);
}

/* Builds the Loaded record of every enabled module, validated, in
 * dependency order. Nothing runs yet. */
static GPtrArray *prepare(MkModules *mods, const MkConfigData *cfg, GError **error)
{
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func((GDestroyNotify)loaded_free);
    GPtrArray *ht_names = g_ptr_array_new();
    for (guint i = 0; i < cfg->host_types->len; i++) {
        MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        g_ptr_array_add(ht_names, g_strdup(ht->name));
    }
    g_ptr_array_add(ht_names, NULL);
    g_auto(GStrv) host_types = (char **)g_ptr_array_free(ht_names, FALSE);

    for (guint i = 0; i < cfg->modules->len; i++) {
        const MkModuleConfig *mc = g_ptr_array_index(cfg->modules, i);
        const MkModuleDesc *desc = load_desc(mods, cfg, mc->name, error);
        if (!desc)
            return NULL;
        Loaded *l = g_new0(Loaded, 1);
        l->name = g_intern_string(mc->name);
        l->desc = desc;
        l->checksum = g_strdup(mc->checksum);
        l->host_types = g_strdupv(host_types);
        l->values = g_ptr_array_new_with_free_func((GDestroyNotify)g_hash_table_unref);
        l->instances = g_ptr_array_new();
        g_ptr_array_add(all, l);
        for (char **ht = host_types; *ht; ht++) {
            g_autoptr(GHashTable) strings =
                mk_config_module_values(mc, desc->config_keys, *ht, error);
            if (!strings)
                return NULL;
            g_ptr_array_add(l->values, mk_modconfig_parse(desc->config_keys, strings));
        }
    }
    GPtrArray *order = g_ptr_array_new_with_free_func((GDestroyNotify)loaded_free);
    g_autoptr(GHashTable) state = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GPtrArray) path = g_ptr_array_new();
    for (guint i = 0; i < all->len; i++) {
        g_ptr_array_set_size(path, 0);
        if (!visit(g_ptr_array_index(all, i), all, state, order, path, error)) {
            /* @order borrows from @all: empty it before both go. */
            g_ptr_array_set_free_func(order, NULL);
            g_ptr_array_unref(order);
            return NULL;
        }
    }
    /* Ownership moves from @all to @order. */
    g_ptr_array_set_free_func(all, NULL);
    return order;
}

/* See modules.h. Main thread. */
gboolean mk_modules_apply(MkModules *mods, const MkConfigData *cfg, GError **error)
{
    g_return_val_if_fail(mods != NULL && cfg != NULL, FALSE);
    g_autoptr(GPtrArray) want = prepare(mods, cfg, error);
    if (!want)
        return FALSE;

    /* A running module keeps running when its file, host types and code
     * are the same and none of its dependencies restarts. */
    g_autoptr(GHashTable) keep = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < want->len; i++) {
        Loaded *w = g_ptr_array_index(want, i);
        Loaded *r = find_loaded(mods->running, w->name);
        gboolean same = r && r->desc == w->desc && g_strcmp0(r->checksum, w->checksum) == 0 &&
                        same_strv(r->host_types, w->host_types);
        for (const char *const *d = w->desc->depends; same && d && *d; d++)
            same = g_hash_table_contains(keep, *d);
        if (same)
            g_hash_table_add(keep, (gpointer)w->name);
    }

    /* Stop, in reverse order, what vanished or restarts. They stay in
     * @stopped so that a failed start can bring them back. */
    g_autoptr(GPtrArray) stopped = g_ptr_array_new_with_free_func((GDestroyNotify)loaded_free);
    for (guint i = mods->running->len; i-- > 0;) {
        Loaded *r = g_ptr_array_index(mods->running, i);
        if (g_hash_table_contains(keep, r->name))
            continue;
        /* A kept module must not lose a dependency (the checks above make
         * this impossible; keep the guard for safety). */
        for (guint j = 0; j < want->len; j++) {
            Loaded *w = g_ptr_array_index(want, j);
            if (g_hash_table_contains(keep, w->name) && depends_on(w, r->name) &&
                !find_loaded(want, r->name)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DEPENDENCY,
                            "cannot stop %s: %s depends on it", r->name, w->name);
                return FALSE;
            }
        }
        g_info("module %s %s", r->name,
               find_loaded(want, r->name) ? "restarts (its configuration changed)" : "stops");
        stop_loaded(r);
        g_ptr_array_insert(stopped, 0, g_ptr_array_steal_index(mods->running, i));
    }

    /* Start the new ones in dependency order; the final order of
     * mods->running is @want's. */
    g_autoptr(GPtrArray) started = g_ptr_array_new();
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < want->len; i++) {
        Loaded *w = g_ptr_array_index(want, i);
        if (g_hash_table_contains(keep, w->name))
            continue;
        if (start_loaded(mods, w, error))
            g_ptr_array_add(started, w);
        else
            ok = FALSE;
    }
    if (!ok) {
        for (guint i = started->len; i-- > 0;)
            stop_loaded(g_ptr_array_index(started, i));
        /* Bring back what this call stopped, with its previous values. */
        for (guint i = 0; i < stopped->len; i++) {
            Loaded *s = g_ptr_array_index(stopped, i);
            g_autoptr(GError) again = NULL;
            if (!start_loaded(mods, s, &again)) {
                g_warning("module %s could not be restarted: %s", s->name, again->message);
                continue;
            }
            g_ptr_array_add(mods->running, g_ptr_array_steal_index(stopped, i--));
        }
        return FALSE;
    }

    /* Adopt @want as the running list, moving kept instances over. */
    GPtrArray *next = g_ptr_array_new_with_free_func((GDestroyNotify)loaded_free);
    for (guint i = 0; i < want->len; i++) {
        Loaded *w = g_ptr_array_index(want, i);
        Loaded *r =
            g_hash_table_contains(keep, w->name) ? find_loaded(mods->running, w->name) : NULL;
        if (r) {
            for (guint j = 0; j < r->instances->len; j++)
                g_ptr_array_add(w->instances, r->instances->pdata[j]);
            g_ptr_array_set_size(r->instances, 0);
            /* Running instances keep the values they started with. */
            GPtrArray *tmp = w->values;
            w->values = r->values;
            r->values = tmp;
        }
        g_ptr_array_add(next, w);
    }
    g_ptr_array_set_free_func(want, NULL);
    g_ptr_array_unref(mods->running);
    mods->running = next;
    return TRUE;
}

/* See modules.h. Main thread. */
void mk_modules_stop_all(MkModules *mods)
{
    if (!mods)
        return;
    for (guint i = mods->running->len; i-- > 0;)
        stop_loaded(g_ptr_array_index(mods->running, i));
    g_ptr_array_set_size(mods->running, 0);
}

/* See modules.h. (transfer full) Main thread. */
char **mk_modules_running(MkModules *mods, const char *host_type)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; mods && i < mods->running->len; i++) {
        Loaded *l = g_ptr_array_index(mods->running, i);
        for (guint j = 0; j < l->instances->len; j++) {
            MkModule *m = g_ptr_array_index(l->instances, j);
            if (!host_type || g_str_equal(m->host_type, host_type)) {
                g_ptr_array_add(out, g_strdup(l->name));
                break;
            }
        }
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}
