#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The module descriptor: the one symbol a module exports.
 *
 *   MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
 *       MK_MODULE_DESC_HEADER,
 *       .name = "mod_example", .version = "1.0",
 *       .start = example_start, .stop = example_stop,
 *   };
 *
 * Fields are only ever appended (ABI minor bump); the loader checks
 * abi_major/abi_minor before reading anything else. */

#define MK_MODULE_EXPORT __attribute__((visibility("default")))

typedef struct {
    guint32 abi_major;
    guint32 abi_minor;
    const char *name; /* "mod_roster": matches conf.d/mod_roster.conf */
    const char *version;
    const char *const *depends;     /* NULL-terminated module names, or NULL */
    const MkConfigKey *config_keys; /* ends with MK_CONFIG_KEYS_END, or NULL */
    const MkMigration *migrations;  /* ends with MK_MIGRATIONS_END, or NULL */
    /* Called on the main thread once per host type the module runs on,
     * after its dependencies started and its migrations ran. Register
     * hooks, IQ handlers, features, routes and timers here: the core
     * records them and removes them on stop or when start fails. */
    gboolean (*start)(MkModule *mod, GError **error);
    /* Called on the main thread after the core removed everything the
     * instance registered; may be NULL. Work still in flight (storage,
     * IQs, user-queue operations) completes afterwards as usual: do not
     * free the module's data here, mk_module_set_data's destroy does. */
    void (*stop)(MkModule *mod);
} MkModuleDesc;

#define MK_MODULE_DESC_HEADER .abi_major = MK_ABI_MAJOR, .abi_minor = MK_ABI_MINOR

/* The domain of the errors the core reports to a module: a registration
 * that is already taken (mk_iq_register, mk_route_register, ...); and of the
 * loader's own errors. New codes may be appended. */
#define MK_MODULE_ERROR (mk_module_error_quark())
MK_API GQuark mk_module_error_quark(void);

typedef enum {
    MK_MODULE_ERROR_LOAD, /* dlopen / missing descriptor */
    MK_MODULE_ERROR_ABI,  /* ABI mismatch */
    MK_MODULE_ERROR_DEPENDENCY,
    MK_MODULE_ERROR_START,
    MK_MODULE_ERROR_DUPLICATE, /* IQ key or route already taken */
} MkModuleErrorCode;

/* (transfer none) The module's name and the host type this instance serves. */
MK_API const char *mk_module_name(MkModule *mod);
MK_API const char *mk_module_host_type(MkModule *mod);
/* The domains served by this instance's host type right now, NULL-terminated.
 * Domains may be added at run time (hook "domain_added"). (transfer full) */
MK_API char **mk_module_domains(MkModule *mod);
/* TRUE when @domain is served by this instance's host type. Any thread. */
MK_API gboolean mk_module_serves_domain(MkModule *mod, const char *domain);
/* The instance's private data. The core keeps it alive while anything of
 * the instance is in flight (hook and IQ calls, storage and account jobs,
 * user-queue operations, mk_iq_send requests, timers, session slots) and
 * runs @destroy once, after stop() and after the last of those returned,
 * on whichever thread that was: @destroy must only free. Main thread (in
 * start()); get: any thread, (transfer none). */
MK_API void mk_module_set_data(MkModule *mod, gpointer data, GDestroyNotify destroy);
MK_API gpointer mk_module_get_data(MkModule *mod);
/* TRUE from start() until the instance stops. A completion that arrives
 * after the stop (a storage job, an IQ response) still runs, with the
 * module's data intact, and asks this to skip what only a running module
 * should do (sending, closing sessions). Any thread. */
MK_API gboolean mk_module_is_running(MkModule *mod);

/* Saying goodbye (Since ABI 2.2). Called on the main thread when the
 * instance is about to stop (it is unloaded or restarted by a reload,
 * or the server shuts down), while it still runs: its routes, timers,
 * owner posts (mk-owner.h) and storage work as usual and, at a
 * shutdown, the client streams are still open. The module posts its
 * goodbyes to its workers (a MUC room tells its occupants that it goes
 * away); the core then waits until every worker ran what was posted
 * (a few seconds at most) before it closes the streams or stops the
 * instance, so those stanzas reach the clients. Must not block. */
typedef void (*MkModuleStoppingFunc)(MkModule *mod, gpointer user_data);
/* Sets @mod's goodbye (once per instance; a later call replaces it).
 * Main thread, in start(). */
MK_API void mk_module_on_stopping(MkModule *mod, MkModuleStoppingFunc func, gpointer user_data);

G_END_DECLS
