#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Entity capabilities (XEP-0115) of local client sessions: the module
 * that handles caps (mod_disco) learns what a client's <c/> stands for
 * and records it on the session; others read it without knowing that
 * module (PEP sends a notification only for the namespaces a client's
 * caps name with "+notify", XEP-0163 section 4). The record goes with
 * the session. Since ABI 2.1. */

/* The caps of a session changed (first learned, or a presence with
 * another 'ver'). Announced with mk_hook_run by the module that learned
 * them, on the session's worker. From = the session's full JID. */
#define MK_HOOK_CAPS_CHANGED "caps_changed"

/* Records @features (NULL-terminated, copied) under @ver for @s,
 * replacing what it had; NULL @features forgets them. Returns TRUE when
 * the session's 'ver' changed. Any thread. */
MK_API gboolean mk_session_set_caps(MkSession *s, const char *ver, const char *const *features);

/* Whether the caps recorded for @s name @feature. FALSE when none are
 * known. Any thread. */
MK_API gboolean mk_session_has_feature(MkSession *s, const char *feature);

/* The features recorded for @s. Returns: (transfer full) (nullable)
 * NULL-terminated, NULL when none are known. Any thread. */
MK_API char **mk_session_features(MkSession *s);

G_END_DECLS
