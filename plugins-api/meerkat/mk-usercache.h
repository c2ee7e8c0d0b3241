#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>
#include <meerkat/mk-db.h>
#include <meerkat/mk-userqueue.h>

G_BEGIN_DECLS
/* A keyed cache of immutable values loaded from storage on first use.
 * Since ABI 2.
 *
 * For state a module needs on a hot path where it may not wait for the
 * database: a user's block list or privacy lists on every delivered
 * stanza, an archive's preferences on every message, a room's or a
 * PubSub node's configuration on every stanza to it. The key is a string,
 * normally a bare JID (a user, a room) or "service/node".
 *
 *  - mk_user_cache_get() returns the value (a reference) or, while the
 *    key is not loaded, NULL: it then starts one load (the class's @load
 *    on a storage thread, pushed on the key's user queue behind the
 *    key's writes) and may hold a stanza that needs the value; held
 *    stanzas are routed again, from the top, once the value is there.
 *  - A value is immutable: a change installs a new one as a whole with
 *    mk_user_cache_set() from the @done of a user-queue operation of the
 *    same key, so values are installed in the order they were written.
 *  - mk_user_cache_invalidate(): the next get loads again; the old value
 *    serves until the new one is there.
 *  - Entries unused for @idle_s seconds leave memory (a sweep on the main
 *    thread), except those the class keeps (@keep, and with
 *    MK_USER_CACHE_SESSIONS the keys of users with a session).
 *  - A first load that fails installs the class's @fallback value (fail
 *    open: held stanzas go on rather than wait forever), and the next get
 *    tries again; without @fallback the held stanzas are dropped. A
 *    reload that fails keeps the value the key had.
 *
 * The cache belongs to the module instance: the core removes its hooks
 * and timer with the module's and frees it, its values and any stanza
 * still held, with the module. */

typedef struct MkUserCache MkUserCache;

typedef enum {
    MK_USER_CACHE_DEFAULT = 0,
    /* Keys are users' bare JIDs: load at session start (before the first
     * stanza needs it), forget with the user's last session and on
     * remove_user, and never sweep a user who has a session. */
    MK_USER_CACHE_SESSIONS = 1 << 0,
} MkUserCacheFlags;

/* Storage thread, inside a user-queue operation of @key: reads @key's
 * value into @value (transfer full). @user (transfer none) is @key as a
 * bare JID in a cache with MK_USER_CACHE_SESSIONS, else NULL. Return
 * FALSE with @error set when storage failed. */
typedef gboolean (*MkUserCacheLoad)(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                                    gpointer user_data, GError **error);

typedef struct {
    MkUserCacheLoad load;
    /* Reference and release a value; any thread. */
    gpointer (*ref)(gpointer value);
    GDestroyNotify unref;
    /* (nullable) The value that serves after a failed load: (transfer full). */
    gpointer (*fallback)(const char *key, gpointer user_data);
    /* (nullable) Main thread, in the sweep: TRUE keeps an idle entry
     * (a room with occupants, a node with subscribers online). */
    gboolean (*keep)(const char *key, gpointer user_data);
    MkUserCacheFlags flags;
} MkUserCacheClass;

/* A new cache for @mod's instance. Loads run on @queue (the module's user
 * queue, so they order with the module's writes). @klass must outlive
 * the module (a static const). @idle_s: seconds an unused entry stays,
 * at least 1. @user_data goes to @klass's functions. Returns: (transfer
 * none) a handle valid as long as @mod is; NULL outside a running
 * instance. Main thread, in start(). */
MK_API MkUserCache *mk_user_cache_new(MkModule *mod, MkUserQueue *queue,
                                      const MkUserCacheClass *klass, guint idle_s,
                                      gpointer user_data);

/* @key's value: (transfer full) (nullable) NULL while it is not loaded;
 * then a load starts (once) and @hold (nullable), when given, is held
 * and routed again once the value is installed. Any thread. */
MK_API gpointer mk_user_cache_get(MkUserCache *cache, const char *key, MkStanza *hold);

/* Installs @value (transfer full) for @key and routes the stanzas held
 * for it. Only from the @done of an operation on the cache's queue under
 * @key (or a load's), so that values are installed in write order. Any
 * thread. */
MK_API void mk_user_cache_set(MkUserCache *cache, const char *key, gpointer value);

/* The next get of @key loads it again; the current value serves until
 * then. Nothing when @key is not cached. Any thread. */
MK_API void mk_user_cache_invalidate(MkUserCache *cache, const char *key);

/* Forgets @key's value, unless a load is pending (stanzas are held for
 * it). Any thread. */
MK_API void mk_user_cache_forget(MkUserCache *cache, const char *key);

G_END_DECLS
