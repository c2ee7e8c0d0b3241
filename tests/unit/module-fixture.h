/* A server with sqlite storage (pool of two) and one module started on
 * the host type "default", for the unit tests of module services (user
 * queues, user caches). */
#pragma once

#include "modules-priv.h"
#include "server.h"

typedef struct {
    MkServer srv;
    char *dir;     /* state directory, removed by module_fixture_stop */
    MkModule *mod; /* NULL once the test stopped it itself */
} ModuleFixture;

/* Opens storage and starts @desc; asserts that it started. */
void module_fixture_start(ModuleFixture *fx, const MkModuleDesc *desc);
/* Stops the module (unless fx->mod is NULL), closes storage (unless
 * fx->srv.db is NULL), runs what completions are left on this thread's
 * context, and frees everything. */
void module_fixture_stop(ModuleFixture *fx);
