/* The server object: builds and tears down every subsystem in order. */
#include "server.h"
#include "c2s.h"
#include "cluster.h"
#include "db.h"
#include "hosts.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "modules.h"
#include "sasl.h"
#include "sm.h"
#include "tls.h"
#include "worker.h"
#include <glib-unix.h>
#include <signal.h>

/* The one server of this process: the public module API has no server
 * argument, so its functions find it here. */
static MkServer *the_server;

/* Core-private extras kept beside the public struct. */
typedef struct {
    MkServer pub;
    MkC2sServer *c2s;
    MkCluster *cluster;     /* NULL without [cluster] */
    GPtrArray *old_configs; /* replaced configs: listeners keep pointing into them */
    /* Guards pub.auth_pool: pushes hold it shared, the drain exclusively,
     * so that no job lands in a pool being freed. */
    GRWLock auth_lock;
    guint signal_sources[4]; /* main thread; 0 once removed */
} ServerPriv;

MkServer *mk_server_get(void)
{
    return g_atomic_pointer_get(&the_server);
}

/* Public module API (mk-moddesc.h). Any thread. */
gint64 mk_server_uptime(void)
{
    MkServer *srv = mk_server_get();
    if (!srv)
        return 0;
    return MAX(0, (g_get_real_time() - srv->started_at) / G_USEC_PER_SEC);
}

void mk_server_set_for_tests(MkServer *srv);
void mk_server_set_for_tests(MkServer *srv)
{
    g_atomic_pointer_set(&the_server, srv);
}

static void auth_pool_run(gpointer data, gpointer pool_data)
{
    MkPoolJob *job = data;
    job->run(job);
}

/* See server.h. Any thread. */
gboolean mk_server_auth_push(MkServer *srv, MkPoolJob *job)
{
    ServerPriv *priv = (ServerPriv *)srv;
    g_rw_lock_reader_lock(&priv->auth_lock);
    gboolean open = srv->auth_pool != NULL;
    if (open)
        mk_job_pool_push(srv->auth_pool, job);
    g_rw_lock_reader_unlock(&priv->auth_lock);
    return open;
}

/* See server.h. */
MkAuthGuard *mk_server_auth_guard(MkServer *srv)
{
    ServerPriv *priv = (ServerPriv *)srv;
    return srv ? mk_c2s_server_guard(priv->c2s) : NULL;
}

/* See server.h. Main thread. */
void mk_server_auth_drain(MkServer *srv)
{
    ServerPriv *priv = (ServerPriv *)srv;
    g_rw_lock_writer_lock(&priv->auth_lock);
    MkJobPool *pool = g_steal_pointer(&srv->auth_pool);
    g_rw_lock_writer_unlock(&priv->auth_lock);
    /* Outside the lock: the queued jobs run to the end, and a push that
     * comes meanwhile must be refused, not wait for them. */
    mk_job_pool_free(pool);
}

/* Makes sure every TLS listener has a certificate: the defaults under
 * state_dir get a self-signed one on first run. */
static gboolean prepare_certificates(MkConfigData *cfg, GError **error)
{
    g_autoptr(GPtrArray) domains = g_ptr_array_new();
    for (guint i = 0; i < cfg->host_types->len; i++) {
        MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        for (char **d = ht->domains; d && *d; d++)
            g_ptr_array_add(domains, *d);
    }
    g_ptr_array_add(domains, NULL);
    for (guint i = 0; i < cfg->listeners->len; i++) {
        MkListenConfig *lc = g_ptr_array_index(cfg->listeners, i);
        if (lc->tls == MK_TLS_NONE)
            continue;
        if (g_str_has_prefix(lc->certfile, cfg->state_dir) &&
            !mk_tls_ensure_selfsigned(lc->certfile, lc->keyfile,
                                      (const char *const *)domains->pdata, error))
            return FALSE;
    }
    return TRUE;
}

/* Starts an http listener (core/http.c). Main thread. */
static gboolean start_http(MkServer *srv, const MkListenConfig *lc, GError **error)
{
    if (!srv->http_listeners)
        srv->http_listeners = g_ptr_array_new_with_free_func((GDestroyNotify)mk_http_listener_stop);
    MkHttpListener *hl = mk_http_listener_start(srv, lc, error);
    if (!hl)
        return FALSE;
    g_ptr_array_add(srv->http_listeners, hl);
    g_message("listening on %s:%u (%s, http%s)", lc->address, mk_http_listener_port(hl), lc->name,
              lc->tls == MK_TLS_DIRECT ? "s" : "");
    return TRUE;
}

/* Main thread. A signal that arrives before the loop runs is dispatched
 * as soon as mk_server_run() starts it. */
static gboolean on_quit_signal(gpointer user_data);
static gboolean on_hup(gpointer user_data);
static gboolean on_metrics_signal(gpointer user_data);

static void signals_install(ServerPriv *priv)
{
    MkServer *srv = &priv->pub;
    srv->loop = g_main_loop_new(NULL, FALSE);
    priv->signal_sources[0] = g_unix_signal_add(SIGINT, on_quit_signal, srv);
    priv->signal_sources[1] = g_unix_signal_add(SIGTERM, on_quit_signal, srv);
    priv->signal_sources[2] = g_unix_signal_add(SIGHUP, on_hup, srv);
    priv->signal_sources[3] = g_unix_signal_add(SIGUSR1, on_metrics_signal, srv);
}

/* Main thread. */
static void signals_remove(ServerPriv *priv)
{
    for (guint i = 0; i < G_N_ELEMENTS(priv->signal_sources); i++)
        if (priv->signal_sources[i]) {
            g_source_remove(priv->signal_sources[i]);
            priv->signal_sources[i] = 0;
        }
}

MkServer *mk_server_new(MkConfigData *cfg, GError **error)
{
    ServerPriv *priv = g_new0(ServerPriv, 1);
    MkServer *srv = &priv->pub;
    srv->config = cfg;
    srv->started_at = g_get_real_time();
    priv->old_configs = g_ptr_array_new_with_free_func((GDestroyNotify)mk_config_free);
    g_rw_lock_init(&priv->auth_lock);
    g_atomic_pointer_set(&the_server, srv);
    /* Before any listener: a SIGTERM or SIGUSR1 that comes as soon as the
     * port answers must find our handlers, not the default action. */
    signals_install(priv);

    if (g_mkdir_with_parents(cfg->state_dir, 0750) != 0) {
        g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_FILE, "cannot create state_dir %s: %s",
                    cfg->state_dir, g_strerror(errno));
        goto fail;
    }
    srv->hosts = mk_hosts_new(cfg);
    srv->db = mk_db_open(cfg, error);
    if (!srv->db)
        goto fail;
    if (!mk_db_migrate(srv->db, "core", mk_core_migrations, error))
        goto fail;
    if (!mk_domains_restore(srv, error))
        goto fail;
    if (!prepare_certificates(cfg, error))
        goto fail;
    srv->sm = mk_sm_new();
    srv->auth_pool = mk_job_pool_new("mk-auth", MAX(2, cfg->workers), auth_pool_run, srv);
    srv->workers = mk_workers_start(cfg->workers, error);
    if (!srv->workers)
        goto fail;
    srv->http_routes = mk_http_routes_new();
    srv->modules = mk_modules_new(srv);
    if (!mk_modules_apply(srv->modules, cfg, error))
        goto fail;
    mk_metrics_server_start(srv); /* collectors, [metrics] textfile */
    priv->c2s = mk_c2s_server_new(srv, error);
    if (!priv->c2s)
        goto fail;
    if (cfg->cluster && !(priv->cluster = mk_cluster_start(srv, cfg->cluster, error)))
        goto fail;
    mk_cluster_set_c2s(priv->cluster, priv->c2s);
    srv->listeners = g_ptr_array_new_with_free_func((GDestroyNotify)mk_listener_stop);
    for (guint i = 0; i < cfg->listeners->len; i++) {
        MkListenConfig *lc = g_ptr_array_index(cfg->listeners, i);
        if (g_str_equal(lc->type, "http")) {
            if (!start_http(srv, lc, error))
                goto fail;
            continue;
        }
        if (!mk_c2s_server_add_listener(priv->c2s, lc, error))
            goto fail;
        if (srv->listeners->len == 0)
            mk_listener_set_fd_reserve(cfg->fd_reserve);
        MkListener *l = mk_listener_start(srv->workers, lc, mk_c2s_accept, priv->c2s, error);
        if (!l)
            goto fail;
        g_ptr_array_add(srv->listeners, l);
        g_message("listening on %s:%u (%s, tls %s)", lc->address, mk_listener_port(l), lc->name,
                  lc->tls == MK_TLS_REQUIRED   ? "required"
                  : lc->tls == MK_TLS_OPTIONAL ? "optional"
                  : lc->tls == MK_TLS_DIRECT   ? "direct"
                                               : "none");
    }
    return srv;

fail:
    mk_server_free(srv);
    return NULL;
}

/* Logs every counter as "metric NAME VALUE" (docs/operations.md, Metrics).
 * Main thread. */
static void log_metrics(MkServer *srv)
{
    g_autofree char *dump = mk_metrics_dump(srv->modules);
    g_auto(GStrv) lines = g_strsplit(dump, "\n", -1);
    for (guint i = 0; lines[i]; i++)
        if (lines[i][0])
            g_message("metric %s", lines[i]);
}

static gboolean on_metrics_signal(gpointer user_data)
{
    log_metrics(user_data);
    mk_metrics_textfile_write(user_data);
    return G_SOURCE_CONTINUE;
}

static gboolean on_quit_signal(gpointer user_data)
{
    MkServer *srv = user_data;
    g_message("shutting down");
    g_main_loop_quit(srv->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean on_hup(gpointer user_data)
{
    MkServer *srv = user_data;
    g_autoptr(GError) error = NULL;
    if (!mk_server_reload(srv, &error))
        g_warning("reload failed, keeping the running configuration: %s", error->message);
    return G_SOURCE_CONTINUE;
}

gboolean mk_server_reload(MkServer *srv, GError **error)
{
    ServerPriv *priv = (ServerPriv *)srv;
    g_autoptr(MkConfigData) cfg = mk_config_load(srv->config->main_file, error);
    if (!cfg)
        return FALSE;
    if (!mk_modules_apply(srv->modules, cfg, error))
        return FALSE;
    /* Listeners, storage and workers keep their start-up settings (a
     * restart changes those); the old config stays alive because the
     * listeners' settings point into it. */
    g_ptr_array_add(priv->old_configs, srv->config);
    mk_log_set_threshold(cfg->log_level);
    g_atomic_pointer_set(&srv->config, g_steal_pointer(&cfg));
    g_message("configuration reloaded");
    return TRUE;
}

void mk_server_run(MkServer *srv)
{
    g_main_loop_run(srv->loop);
    /* A second signal during the shutdown takes the default action. */
    signals_remove((ServerPriv *)srv);
}

void mk_server_free(MkServer *srv)
{
    ServerPriv *priv = (ServerPriv *)srv;
    if (!srv)
        return;
    if (srv->modules)
        mk_metrics_server_stop(srv);
    if (srv->listeners)
        g_ptr_array_unref(srv->listeners);
    /* HTTP handlers run on the workers: answered or given up before
     * anything they use goes. */
    if (srv->http_listeners)
        g_ptr_array_unref(srv->http_listeners);
    /* SASL jobs still queued use the c2s server's SASL context: let them
     * finish before it goes. Their results land on still-running workers.
     * From here until the streams are closed, new jobs are refused. */
    mk_server_auth_drain(srv);
    if (srv->modules) {
        /* docs/operations.md promises the counters in the log at shutdown. */
        log_metrics(srv);
        mk_metrics_set_core_source(srv->modules, NULL, NULL);
    }
    mk_cluster_set_c2s(priv->cluster, NULL); /* no more releases from peers */
    /* Modules say goodbye (a MUC room's 332) while the streams are open. */
    if (srv->modules)
        mk_modules_stopping_all(srv->modules);
    if (priv->c2s)
        mk_c2s_server_free(priv->c2s);
    /* Every stream ended: the cluster removes what is left of this node. */
    mk_cluster_stop(priv->cluster);
    if (srv->modules) {
        mk_modules_stop_all(srv->modules);
    }
    if (srv->workers)
        mk_workers_stop(srv->workers);
    /* Storage jobs still queued run module code (their work functions):
     * drain the pool while the modules' .so files are still mapped. */
    if (srv->db) {
        mk_db_close(srv->db);
        srv->db = NULL;
    }
    if (srv->modules)
        mk_modules_free(srv->modules);
    mk_sm_free(srv->sm);
    mk_http_routes_free(srv->http_routes);
    if (srv->hosts)
        mk_hosts_free(srv->hosts);
    signals_remove(priv); /* start-up failed before mk_server_run() */
    if (srv->loop)
        g_main_loop_unref(srv->loop);
    g_atomic_pointer_set(&the_server, NULL);
    g_ptr_array_unref(priv->old_configs);
    g_rw_lock_clear(&priv->auth_lock);
    mk_config_free(srv->config);
    g_free(priv);
}
