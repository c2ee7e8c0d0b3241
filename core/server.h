/* The server object: everything a running meerkatd holds. One per
 * process (modules reach it through mk_server_get(), since the public API
 * has no server argument); no other mutable globals. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
#include "jobpool.h"
#include <gnutls/gnutls.h>

struct MkServer {
    MkConfigData *config; /* current; replaced on SIGHUP (main thread) */
    GMainLoop *loop;      /* main thread */
    MkWorkers *workers;
    MkHosts *hosts;
    MkDb *db;
    MkSm *sm;
    MkModules *modules;
    GPtrArray *listeners;                       /* of MkListener* */
    gnutls_certificate_credentials_t tls_creds; /* nullable */
    MkJobPool *auth_pool; /* SASL steps, account changes: through mk_server_auth_push only */
    gint64 started_at;    /* g_get_real_time() at start */
    struct MkHttpRoutes *http_routes; /* modules' HTTP routes (core/http-routes.c) */
    GPtrArray *http_listeners;        /* of MkHttpListener* */
};

/* A job for srv->auth_pool: job structs start with this. */
typedef struct {
    void (*run)(gpointer job);
} MkPoolJob;

/* Queues @job on the auth pool (credential reads, key derivation): TRUE,
 * and the pool owns it until job->run. FALSE once shutdown began
 * (mk_server_auth_drain): the job was not queued and is still the
 * caller's, who must tell its client. Any thread. */
gboolean mk_server_auth_push(MkServer *srv, MkPoolJob *job);
/* Refuses new auth jobs, then runs those queued and waits for them.
 * Main thread, at shutdown; mk_server_free calls it. */
void mk_server_auth_drain(MkServer *srv);

/* The login limits shared by XMPP logins and password-checking APIs
 * (authguard.h). (transfer none) (nullable) Any thread, until the
 * auth pool is drained. */
struct MkAuthGuard *mk_server_auth_guard(MkServer *srv);

/* (transfer none) The process's server, or NULL before mk_server_new. */
MkServer *mk_server_get(void);
/* Builds the server from @cfg (transfer full): storage and migrations,
 * hosts, workers, modules, listeners. NULL with an error on failure. */
MkServer *mk_server_new(MkConfigData *cfg, GError **error);
/* Runs the main loop until SIGINT/SIGTERM. SIGHUP reloads. */
void mk_server_run(MkServer *srv);
void mk_server_free(MkServer *srv);
/* Re-reads the configuration and starts/stops modules to match. */
gboolean mk_server_reload(MkServer *srv, GError **error);
