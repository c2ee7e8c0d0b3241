/* The server object: everything a running meerkatd holds. One per
 * process (modules reach it through mk_server_get(), since the public API
 * has no server argument); no other mutable globals. */
#pragma once

#include "mk-core.h"
#include "conffile.h"
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
    GThreadPool *auth_pool;                     /* SASL steps: credential reads + key derivation */
    gint64 started_at;                          /* g_get_real_time() at start */
};

/* A job for srv->auth_pool: job structs start with this. */
typedef struct {
    void (*run)(gpointer job);
} MkPoolJob;

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
