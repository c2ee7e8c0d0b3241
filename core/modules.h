/* The module loader and the registries modules fill: hooks, IQ handlers,
 * disco, routes, timers, metrics. Registries are read by workers without
 * locks (immutable snapshots swapped on change, old ones freed after a
 * grace period); writes happen on the main thread at module start/stop. */
#pragma once

#include "mk-core.h"

MkModules *mk_modules_new(MkServer *server);

/* A module instance stays allocated, and its data (mk_module_set_data)
 * alive, while anything holds a reference: the published registrations,
 * and every piece of work the core runs for it (IQ calls, storage and
 * account jobs, user-queue operations, mk_iq_send requests, timers,
 * session slots). The last unref runs the data's destroy notify, on
 * whichever thread drops it. Any thread. */
MkModule *mk_module_ref(MkModule *mod);
void mk_module_unref(MkModule *mod);
void mk_modules_free(MkModules *mods);

/* Makes the running modules match @cfg: stops (in reverse dependency
 * order) modules whose conf.d file vanished, starts (in dependency order,
 * per host type) the new ones, applying their migrations first. On the
 * first failure everything this call started is stopped again and FALSE
 * returns with an error naming the module. Main thread. */
gboolean mk_modules_apply(MkModules *mods, const MkConfigData *cfg, GError **error);
/* Stops all modules in reverse order. Main thread. */
void mk_modules_stop_all(MkModules *mods);
/* Runs the goodbye (mk_module_on_stopping) of every running instance and
 * waits for the workers to carry it out: at shutdown, before the client
 * streams close. Main thread. */
void mk_modules_stopping_all(MkModules *mods);
/* Names of the running modules on @host_type (transfer full). */
char **mk_modules_running(MkModules *mods, const char *host_type);

/* The arguments of a hook run; filled by the core on the stack. */
struct MkHookCall {
    const char *domain; /* selects the host type */
    MkSession *session; /* nullable */
    MkStanza *stanza;   /* nullable; owned by the caller (mk_hook_call_set_stanza replaces it) */
    MkJid *from;        /* nullable */
    MkJid *to;          /* nullable */
    gboolean has_error;
    MkStanzaError error;
    char *error_text; /* freed by mk_hook_call_clear */
    /* auth_preload only (preload.c): its connection, where handlers keep
     * their data, and the module whose handler is running. */
    MkDbConn *db;
    struct MkPreloads *preloads;
    MkModule *running;
};
/* Runs @hook's handlers for the host type of call->domain. Returns the
 * result of the handler that stopped, or MK_PASS. Any worker thread. */
MkResult mk_hooks_run(MkModules *mods, const char *hook, MkHookCall *call);
/* Frees the error text and the stanza reference held by @call. */
void mk_hook_call_clear(MkHookCall *call);
/* @hook's handlers for the host type of @domain, copied out of the
 * published snapshot (entries MkHookEntry, each holding a reference on
 * its module), for a caller that may outlast the snapshot's grace period.
 * Returns: (transfer full) (nullable) NULL when there are none. Any thread. */
GArray *mk_hooks_copy(MkModules *mods, const char *domain, const char *hook);
/* TRUE when @hook has handlers for the host type of @domain: a lookup,
 * without mk_hooks_copy's copy and references. Any thread. */
gboolean mk_hooks_any(MkModules *mods, const char *domain, const char *hook);

/* What routing one copy to a local account asks of the host and hook
 * tables, looked up once for a run of copies to one domain (a fan-out,
 * a batch of its copies on a worker) instead of per copy: a host lookup
 * and three hook tables are string hashes each (docs/benchmarks.md, "MUC
 * fan-out: the cached domain"). Points into the published snapshots, so
 * it lives within one call on one thread (their grace period); a module
 * (un)loaded meanwhile is seen by the next run, as a hook run that has
 * started sees the snapshot it started with. */
typedef struct {
    char *domain;     /* owned; NULL: nothing looked up yet */
    gboolean served;  /* a host of ours (mk_hosts_lookup) */
    GArray *filter;   /* filter_local_packet's handlers (nullable) */
    GArray *unheld;   /* route_unheld's */
    GArray *received; /* user_receive_packet's */
} MkDomainHooks;
/* @c filled for @domain, unless it holds @domain already. Returns @c. */
MkDomainHooks *mk_domain_hooks_for(MkDomainHooks *c, MkModules *mods, const char *domain);
void mk_domain_hooks_clear(MkDomainHooks *c);
/* mk_hooks_run over a list of mk_domain_hooks_for (nullable: MK_PASS). */
MkResult mk_hooks_run_list(GArray *list, MkHookCall *call);

/* Dispatches an IQ request (type get/set) to the handler of its payload's
 * namespace for @scope on the host type of @domain; answers
 * service-unavailable through mk_router_send() when none claims it, and
 * bad-request when the IQ has not exactly one payload. @session is the
 * local sender's session or NULL. Any worker thread. */
void mk_iq_dispatch(MkModules *mods, const char *domain, MkIqScope scope, MkStanza *iq,
                    MkSession *session);
/* Offers an IQ result/error addressed to a server or module JID to the
 * pending mk_iq_send() requests. TRUE when it answered one. Any thread. */
gboolean mk_iq_take_response(MkModules *mods, MkStanza *response);

/* The module route claiming @domain, if any: calls it and returns TRUE. */
gboolean mk_routes_dispatch(MkModules *mods, const char *domain, MkStanza *stanza);
/* TRUE when a module routes @domain (a room service). Any thread. */
gboolean mk_routes_has(MkModules *mods, const char *domain);

/* Stream features the modules of @domain's host type add at @stage,
 * concatenated XML. (transfer none) (nullable) Any thread; valid until the
 * caller returns to its main loop (stream-ext.c). */
const char *mk_stream_features_for(const char *domain, MkStreamStage stage);
/* Hands a top-level element outside jabber:client from bound session @s
 * to the module that claimed its namespace. MK_PASS when none did. The
 * session's worker. */
MkResult mk_stream_element_dispatch(MkSession *s, MkXml *el);
/* The pre-authentication IQ handler claimed for payload namespace @xmlns
 * on @domain's host type, or FALSE. Any thread; @user_data valid as the
 * snapshot (stream-ext.c). */
gboolean mk_stream_preauth_iq_lookup(const char *domain, const char *xmlns, MkPreauthIqFunc *func,
                                     gpointer *user_data);

/* Every counter as "host_type.module.name value" lines, then the core's
 * own as "core.NAME value" lines. (transfer full) */
char *mk_metrics_dump(MkModules *mods);
/* The core's counters: @func appends "core.NAME value\n" lines to @out
 * (any thread, under the registry's lock: it must not call back). NULL
 * to remove. Main thread. */
typedef void (*MkMetricsCoreFunc)(GString *out, gpointer data);
void mk_metrics_set_core_source(MkModules *mods, MkMetricsCoreFunc func, gpointer data);
/* A counter of the core itself, "core.@name", always listed. (transfer
 * none): lives as long as @mods. Any thread. */
MkCounter *mk_metrics_core_counter(MkModules *mods, const char *name);
