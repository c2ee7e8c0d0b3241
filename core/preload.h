/* The auth_preload hook (mk-hooks.h): runs it on the auth pool once an
 * account is known, and keeps what the handlers read until the session
 * takes it (mk_session_take_preload). */
#pragma once

#include "mk-core.h"

/* What the handlers of one run kept, by module instance. */
typedef struct MkPreloads MkPreloads;

/* TRUE when auth_preload has handlers for @domain's host type. Any thread. */
gboolean mk_preloads_wanted(MkServer *srv, const char *domain);
/* Runs auth_preload for @username@@domain on @conn. Blocks (database):
 * the auth pool only. Returns: (transfer full) (nullable) NULL when no
 * handler kept anything or none is registered (the modules then read
 * later, as without the hook). */
MkPreloads *mk_preloads_run(MkServer *srv, MkDbConn *conn, const char *username,
                            const char *domain);
/* Frees what nobody took, with the handlers' destroy notifies. Any thread. */
void mk_preloads_free(MkPreloads *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkPreloads, mk_preloads_free)
/* Removes and returns @mod's data. (transfer full) (nullable) */
gpointer mk_preloads_take(MkPreloads *p, MkModule *mod);
