/* Private to the module loader and the registries (modules.c, hooks.c,
 * iq.c, disco.c, routes.c, timers.c, metrics.c, modconfig.c, hosts.c):
 * struct MkModule, the published registry snapshot, and the grace-period
 * retirement of snapshots. No other file may include this.
 *
 * Concurrency model (RCU-like): the authoritative registrations are the
 * records on each MkModule, changed on the main thread only. After a
 * change the main thread builds a complete immutable MkRegSnapshot and
 * swaps it in with g_atomic_pointer_set; workers read the current pointer
 * once per event (never keeping it across main-loop iterations), so the
 * old snapshot is freed MK_RETIRE_GRACE_S seconds later on the main loop. */
#pragma once

#include "mk-core.h"
#include <gmodule.h>

#define MK_RETIRE_GRACE_S 10

/* ---- Grace-period retirement (hosts.c) ---- */
typedef struct MkRetire MkRetire;
/* Main thread. */
MkRetire *mk_retire_new(void);
/* Frees @data with @destroy after the grace period. Main thread. */
void mk_retire_push(MkRetire *r, gpointer data, GDestroyNotify destroy);
/* Frees everything still waiting, now: only when no reader can remain
 * (workers stopped). Main thread. */
void mk_retire_free(MkRetire *r);

/* ---- Registration records, owned by their MkModule (main thread) ---- */
typedef struct {
    char *hook;
    int priority;
    guint64 seq; /* registration order, for equal priorities */
    MkHookFunc func;
    gpointer user_data;
} MkHookReg;

typedef struct {
    MkIqScope scopes;
    MkIqType type;
    char *xmlns;
    MkIqFunc func;
    gpointer user_data;
} MkIqReg;

typedef struct {
    char *domain; /* prepared */
    MkRouteFunc func;
    gpointer user_data;
} MkRouteReg;

typedef struct {
    char *xmlns;
    MkStreamElementFunc func; /* NULL for a pre-auth IQ handler */
    gpointer user_data;
    MkPreauthIqFunc iq_func; /* mk_preauth_iq_register */
} MkStreamReg;

typedef struct {
    guint stages;
    MkStreamFeatureFunc func;
    gpointer user_data;
} MkStreamFeatureReg;

/* XEP-0198 settings a module switched on for its host type; the protocol
 * itself lives in core/c2s-sm.c because it must see every stanza. */
typedef struct {
    gboolean on;
    guint resume_timeout;     /* seconds a detached session waits; 0: no resumption */
    guint max_unacked;        /* unacknowledged stanzas before the stream is closed */
    guint ack_timeout;        /* seconds an <r/> may go unanswered before max_unacked applies */
    guint close_wait_ms;      /* wait for a final <a/> after the client's </stream:stream> */
    gsize max_detached_bytes; /* queued while detached; beyond it the session ends */
    /* The module's counters (never freed, see metrics.c). */
    MkCounter *enabled, *resumed, *resume_failed, *expired, *rerouted;
    MkCounter *not_requeued, *detached_overflow, *unacked_closed;
} MkStreamMgmtConfig;

struct MkModule {
    gint ref;
    MkModules *mods;
    const MkModuleDesc *desc;
    const char *name;      /* interned */
    const char *host_type; /* interned */
    GHashTable *values;    /* key -> MkConfValue*, immutable while running */
    gpointer data;         /* freed with data_destroy by the last mk_module_unref */
    GDestroyNotify data_destroy;
    gboolean live;  /* registrations allowed (start() .. stop); atomic */
    gint offworker; /* atomic: calls in progress off the workers (mk_module_enter) */
    /* Registrations (main thread only), removed by the core on stop. */
    GPtrArray *hooks;           /* MkHookReg* */
    GPtrArray *iqs;             /* MkIqReg* */
    GPtrArray *features;        /* char* */
    GPtrArray *acct_features;   /* char*: of accounts' bare JIDs */
    GPtrArray *identities;      /* char*, groups of 3 */
    GPtrArray *items;           /* char*, groups of 2 */
    GPtrArray *routes;          /* MkRouteReg* */
    GPtrArray *services;        /* MkServiceReg* (services.c) */
    GMutex timers_lock;         /* timers end on the thread they run on */
    GPtrArray *timers;          /* MkTimer*, under timers_lock */
    GPtrArray *stream_features; /* char*: stage mask digit, then the XML */
    GPtrArray *stream_regs;     /* MkStreamReg* */
    GPtrArray *stream_funcs;    /* MkStreamFeatureReg*: computed features */
    GPtrArray *counters;        /* MkCounter* (not owned) */
    GPtrArray *queues;          /* MkUserQueue*, owned; closed on stop, freed with the struct */
    GPtrArray *caches;          /* MkUserCache*, owned; freed with the struct */
    /* mk_stream_management_enable */
    MkStreamMgmtConfig stream_mgmt;
    /* mk_module_on_stopping (main thread): called once, then cleared */
    MkModuleStoppingFunc stopping;
    gpointer stopping_data;
};

/* Fences a call into @mod's handlers from a thread other than a worker
 * (the auth pool), which the snapshot's grace period does not cover:
 * returns FALSE when the instance stopped (do not call), else TRUE and
 * its stop waits for mk_module_leave before the module's data goes. */
gboolean mk_module_enter(MkModule *mod);
void mk_module_leave(MkModule *mod);

/* ---- The published snapshot ---- */
typedef struct {
    int priority;
    guint64 seq;
    MkHookFunc func;
    gpointer user_data;
    MkModule *mod; /* the snapshot holds a reference */
} MkHookEntry;

typedef struct {
    MkIqFunc func;
    gpointer user_data;
    MkModule *mod;
} MkIqEntry;

typedef struct {
    MkRouteFunc func;
    gpointer user_data;
    MkModule *mod;
} MkRouteEntry;

typedef struct {
    MkStreamElementFunc func;
    gpointer user_data;
    MkModule *mod;
    MkPreauthIqFunc iq_func;
} MkStreamEntry;

/* Stream features of a host type per stage (index: 0 pre-auth, 1 post-auth). */
#define MK_STREAM_STAGE_COUNT 2

/* Index of the IQ table of (@scope bit, @type). */
#define MK_IQ_TABLE(scope_is_account, type) ((scope_is_account)*2 + (type))

typedef struct {
    GHashTable *hooks;    /* hook name -> GArray of MkHookEntry, run order */
    GHashTable *iq[4];    /* xmlns -> MkIqEntry*, by MK_IQ_TABLE */
    char **features;      /* sorted, unique */
    char **acct_features; /* of accounts, sorted, unique */
    char **identities;    /* groups of 3, sorted, unique */
    char **items;         /* groups of 2, sorted, unique */
    char *stream_features[MK_STREAM_STAGE_COUNT]; /* concatenated XML, nullable */
    GHashTable *stream_elements;                  /* xmlns -> MkStreamEntry* */
    GHashTable *preauth_iqs;                      /* xmlns -> MkStreamEntry* (iq_func) */
    GHashTable *services;                         /* name -> MkServiceReg* (borrowed) */
    MkStreamMgmtConfig stream_mgmt;               /* .on FALSE: no module offers it */
} MkHostReg;

typedef struct {
    GHashTable *hosts;  /* host type (interned) -> MkHostReg* */
    GHashTable *routes; /* domain -> MkRouteEntry* */
    GPtrArray *refs;    /* MkModule references held by the entries */
} MkRegSnapshot;

typedef struct MkMetrics MkMetrics;

struct MkModules {
    MkServer *server;    /* nullable in unit tests */
    MkRegSnapshot *snap; /* atomic; the published registrations */
    MkRetire *retire;
    guint batch;    /* > 0 while a start() runs: publish once at its end */
    gboolean dirty; /* a change waits for publication */
    guint64 seq;
    GPtrArray *instances; /* live MkModule*, in start order */
    GPtrArray *running;   /* the loader's records, in dependency order */
    GHashTable *gmodules; /* name -> GModule*, kept open (see modules.c) */
    /* mk_iq_send requests waiting for their response (any thread). */
    GMutex pending_lock;
    GHashTable *pending; /* "id\x1fpeer" -> MkIqPending* */
    gint iq_seq;         /* atomic */
    MkMetrics *metrics;
};

/* (transfer none) The current snapshot; valid until the caller returns to
 * its main loop. Any thread. */
MkRegSnapshot *mk_modules_snapshot(MkModules *mods);
/* The registrations of the host type serving @domain. (nullable) Any
 * thread, same lifetime as the snapshot. */
MkHostReg *mk_modules_host_reg(MkModules *mods, const char *domain);
/* Publishes a new snapshot after a registration changed (deferred while a
 * module's start() runs). Main thread. */
void mk_modules_publish(MkModules *mods);
/* The MkModules of the process's server. (nullable) Any thread. */
MkModules *mk_modules_get(void);

/* An instance of @desc outside any conf.d file, started now (defaults for
 * its config). For unit tests of the registries and for core-internal
 * pseudo-modules. (transfer full) or NULL with an error. Main thread. */
MkModule *mk_module_start_adhoc(MkModules *mods, const MkModuleDesc *desc, const char *host_type,
                                GError **error);
/* Stops an instance made by mk_module_start_adhoc. Main thread. */
void mk_module_stop_adhoc(MkModule *mod);

/* Per-registry parts of the snapshot build and of module stop. */
void mk_hooks_build(MkHostReg *hr, MkModule *mod);
void mk_hooks_entries_free(gpointer array);
void mk_hook_reg_free(gpointer reg);
void mk_iq_build(MkHostReg *hr, MkModule *mod);
void mk_iq_reg_free(gpointer reg);
void mk_disco_build(MkHostReg *hr, GPtrArray *features, GPtrArray *identities, GPtrArray *items,
                    GPtrArray *acct_features);
void mk_routes_build(GHashTable *routes, MkModule *mod);
/* A service a module provides (services.c): a table of functions whose
 * layout the service's header defines, and the provider's data. */
typedef struct {
    char *name;
    gconstpointer funcs;
    gpointer data;
    MkModule *mod; /* the provider (no reference: the snapshot holds one) */
} MkServiceReg;
void mk_service_reg_free(gpointer reg);
void mk_services_build(MkHostReg *hr, MkModule *mod);
/* Registers @mod as the provider of service @name on its host type.
 * FALSE with MK_MODULE_ERROR_DUPLICATE when another instance of the host
 * type provides it. Main thread, in start(). */
gboolean mk_service_provide(MkModule *mod, const char *name, gconstpointer funcs, gpointer data,
                            GError **error);
/* The provider of @name for @host_type: (transfer none) its registration,
 * valid as long as the snapshot (a worker until it returns to its loop),
 * or NULL. */
const MkServiceReg *mk_service_lookup(MkModules *mods, const char *host_type, const char *name);
/* For a call off the workers (a storage thread): fills @out with the
 * provider of @name and enters its instance (mk_module_enter); FALSE when
 * none runs. mk_service_leave() afterwards. */
gboolean mk_service_enter(MkModules *mods, const char *host_type, const char *name,
                          MkServiceReg *out);
void mk_service_leave(MkServiceReg *reg);
void mk_route_reg_free(gpointer reg);
void mk_stream_build(MkHostReg *hr, MkModule *mod);
void mk_stream_reg_free(gpointer reg);
/* Appends the computed features of @mod, once @hr's disco lists are built. */
void mk_stream_build_computed(MkHostReg *hr, MkModule *mod);
/* Removes every timer of @mod. Main thread. */
void mk_timers_remove_all(MkModule *mod);

/* ---- User queues (userqueue.c) ---- */
/* Cancels what waits in @mod's queues and refuses later pushes. Main thread. */
void mk_user_queues_close(MkModule *mod);
/* Frees an MkUserQueue (the free function of mod->queues). */
void mk_user_queue_free(gpointer queue);
/* Frees an MkUserCache of a module being freed (usercache.c). */
void mk_user_cache_free(gpointer cache);
/* Entries of @cache, loaded or loading (for tests). Any thread. */
guint mk_user_cache_count(MkUserCache *cache);

/* ---- Pending mk_iq_send requests (iq.c) ---- */
/* Ends every pending request: callbacks run with NULL, as on a timeout. */
void mk_iq_pending_clear(MkModules *mods);

/* ---- Metrics (metrics.c) ---- */
MkMetrics *mk_metrics_new(void);
void mk_metrics_free(MkMetrics *m);
/* Detaches @mod's counters: they leave the dump (values are kept for a
 * restart of the same module). Main thread. */
void mk_metrics_release(MkModule *mod);

/* ---- Typed module config (modconfig.c) ---- */
/* Parses the validated string values of mk_config_module_values() into
 * typed values per @keys. (transfer full) key -> MkConfValue*. */
GHashTable *mk_modconfig_parse(const MkConfigKey *keys, GHashTable *strings);
