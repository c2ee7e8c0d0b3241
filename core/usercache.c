/* Keyed caches of immutable values for modules (mk-usercache.h).
 *
 * One mutex per cache guards its table; a lookup on the hot path (every
 * delivered stanza for a privacy or block list) takes it for the hash
 * lookup and a reference only. Loads go through the module's user queue,
 * so a load never overtakes a write of the same key, and their
 * completion installs the value with mk_user_cache_set like any write.
 *
 * The cache's memory belongs to its MkModule (freed with the struct); a
 * load holds the module through its user-queue operation. */
#include "modules-priv.h"

struct MkUserCache {
    MkModule *mod; /* no reference: the module owns the cache */
    MkUserQueue *queue;
    const MkUserCacheClass *klass;
    gpointer user_data;
    guint idle_s;
    GMutex lock;
    GHashTable *entries; /* key -> Entry* */
};

typedef struct {
    gpointer value;   /* NULL while the first load runs */
    GPtrArray *held;  /* MkStanza* to route again once the value is there */
    gint64 used_us;   /* monotonic time of the last get */
    gboolean stale;   /* invalidated or the last load failed: load on next get */
    gboolean loading; /* a load is queued or running */
    guint gen;        /* invalidations so far: a load started before one is stale */
} Entry;

static void entry_free(gpointer data, gpointer klass_unref)
{
    Entry *e = data;
    if (e->value)
        ((GDestroyNotify)klass_unref)(e->value);
    if (e->held)
        g_ptr_array_unref(e->held);
    g_free(e);
}

/* Frees @data, an MkUserCache, with its module. See modules-priv.h. */
void mk_user_cache_free(gpointer data)
{
    MkUserCache *c = data;
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, c->entries);
    while (g_hash_table_iter_next(&it, NULL, &value))
        entry_free(value, c->klass->unref);
    g_hash_table_destroy(c->entries);
    g_mutex_clear(&c->lock);
    g_free(c);
}

/* See modules-priv.h. Any thread. */
guint mk_user_cache_count(MkUserCache *c)
{
    g_mutex_lock(&c->lock);
    guint n = g_hash_table_size(c->entries);
    g_mutex_unlock(&c->lock);
    return n;
}

/* ---- loading ---------------------------------------------------------- */

typedef struct {
    MkUserCache *c;
    char *key;
    MkJid *user;    /* MK_USER_CACHE_SESSIONS: @key as a JID */
    guint gen;      /* the entry's gen when the load was asked for */
    gpointer value; /* the load's result */
} Load;

static void load_free(gpointer data)
{
    Load *l = data;
    if (l->value)
        l->c->klass->unref(l->value);
    g_free(l->key);
    if (l->user)
        mk_jid_unref(l->user);
    g_free(l);
}

static gboolean load_work(MkDbConn *conn, gpointer data, GError **error)
{
    Load *l = data;
    if ((l->c->klass->flags & MK_USER_CACHE_SESSIONS) && !l->user) {
        l->user = mk_jid_new(l->key, error);
        if (!l->user)
            return FALSE;
    }
    return l->c->klass->load(conn, l->key, l->user, &l->value, l->c->user_data, error);
}

static void install(MkUserCache *c, const char *key, gpointer value, const Load *load);

/* On the thread that asked for the load. */
static void load_done(const GError *error, gpointer data)
{
    Load *l = data;
    MkUserCache *c = l->c;
    if (!error) {
        install(c, l->key, g_steal_pointer(&l->value), l);
        return;
    }
    if (!g_error_matches(error, MK_USER_QUEUE_ERROR, MK_USER_QUEUE_ERROR_STOPPED))
        g_warning("%s: loading %s: %s", c->mod->name, l->key, error->message);
    g_autoptr(GPtrArray) held = NULL;
    gboolean fallback = FALSE;
    g_mutex_lock(&c->lock);
    Entry *e = g_hash_table_lookup(c->entries, l->key);
    if (e) {
        e->loading = FALSE;
        e->stale = TRUE; /* the next get tries again */
        if (e->value) {
            /* A reload failed: the value it had keeps serving. */
        } else if (c->klass->fallback) {
            fallback = TRUE;
        } else {
            held = g_steal_pointer(&e->held); /* dropped */
            g_hash_table_remove(c->entries, l->key);
            entry_free(e, c->klass->unref);
        }
    }
    g_mutex_unlock(&c->lock);
    if (fallback) {
        /* Failing open beats holding the key's traffic forever: the
         * held stanzas go on, and the next get tries storage again. */
        install(c, l->key, c->klass->fallback(l->key, c->user_data), NULL);
    }
}

static void load_start(MkUserCache *c, const char *key, MkJid *user, guint gen)
{
    Load *l = g_new0(Load, 1);
    l->c = c;
    l->key = g_strdup(key);
    l->user = user ? mk_jid_bare(user) : NULL;
    l->gen = gen;
    mk_user_queue_push_reads(c->queue, key, load_work, load_done, l, load_free);
}

/* ---- public API --------------------------------------------------------- */

/* mk_user_cache_get; @user (nullable) is @key as a JID, which saves the
 * load parsing it. */
static gpointer get(MkUserCache *c, const char *key, MkJid *user, MkStanza *hold)
{
    gboolean start = FALSE;
    guint gen = 0;
    gpointer value = NULL;

    g_mutex_lock(&c->lock);
    Entry *e = g_hash_table_lookup(c->entries, key);
    if (!e) {
        e = g_new0(Entry, 1);
        g_hash_table_insert(c->entries, g_strdup(key), e);
        e->stale = TRUE;
    }
    e->used_us = g_get_monotonic_time();
    if (e->stale && !e->loading) {
        e->stale = FALSE;
        e->loading = TRUE;
        start = TRUE;
        gen = e->gen;
    }
    if (e->value) {
        value = c->klass->ref(e->value);
    } else if (hold) {
        if (!e->held)
            e->held = g_ptr_array_new_with_free_func((GDestroyNotify)mk_stanza_unref);
        g_ptr_array_add(e->held, mk_stanza_ref(hold));
    }
    g_mutex_unlock(&c->lock);

    if (start)
        load_start(c, key, user, gen);
    return value;
}

/* Public module API (mk-usercache.h). (transfer full) (nullable) Any thread. */
gpointer mk_user_cache_get(MkUserCache *c, const char *key, MkStanza *hold)
{
    g_return_val_if_fail(c != NULL && key != NULL, NULL);
    return get(c, key, NULL, hold);
}

/* Installs @value (transfer full) for @key, from a write or from @load. */
static void install(MkUserCache *c, const char *key, gpointer value, const Load *load)
{
    g_mutex_lock(&c->lock);
    Entry *e = g_hash_table_lookup(c->entries, key);
    if (!e) {
        e = g_new0(Entry, 1);
        e->used_us = g_get_monotonic_time();
        g_hash_table_insert(c->entries, g_strdup(key), e);
    }
    gpointer old = e->value;
    e->value = value;
    if (load) {
        e->loading = FALSE;
        /* Invalidated while it loaded: what it read may be older. */
        if (e->gen == load->gen)
            e->stale = FALSE;
    }
    GPtrArray *held = g_steal_pointer(&e->held);
    g_mutex_unlock(&c->lock);

    if (old)
        c->klass->unref(old);
    /* Routed again from the top: this time the module finds the value. */
    for (guint i = 0; held && i < held->len; i++)
        mk_router_send(g_ptr_array_index(held, i));
    if (held)
        g_ptr_array_unref(held);
}

/* Public module API (mk-usercache.h). Any thread. */
void mk_user_cache_set(MkUserCache *c, const char *key, gpointer value)
{
    g_return_if_fail(c != NULL && key != NULL && value != NULL);
    install(c, key, value, NULL);
}

/* Public module API (mk-usercache.h). Any thread. */
void mk_user_cache_invalidate(MkUserCache *c, const char *key)
{
    g_return_if_fail(c != NULL && key != NULL);
    g_mutex_lock(&c->lock);
    Entry *e = g_hash_table_lookup(c->entries, key);
    if (e && (e->value || e->loading)) {
        e->stale = TRUE;
        e->gen++;
    }
    g_mutex_unlock(&c->lock);
}

/* Public module API (mk-usercache.h). Any thread. */
void mk_user_cache_forget(MkUserCache *c, const char *key)
{
    g_return_if_fail(c != NULL && key != NULL);
    Entry *gone = NULL;
    g_mutex_lock(&c->lock);
    Entry *e = g_hash_table_lookup(c->entries, key);
    if (e && e->value && !e->held) {
        g_hash_table_remove(c->entries, key); /* frees the key, not the entry */
        gone = e;
    }
    g_mutex_unlock(&c->lock);
    if (gone)
        entry_free(gone, c->klass->unref);
}

/* ---- sweep and the session hooks ------------------------------------- */

static gboolean has_session(MkJid *user)
{
    g_autoptr(MkJid) bare = mk_jid_bare(user);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    return sessions->len > 0;
}

static gboolean user_has_session(const char *key)
{
    g_autoptr(MkJid) user = mk_jid_new(key, NULL);
    return user && has_session(user);
}

/* Main thread: forgets the entries unused for idle_s that nobody keeps. */
static gboolean sweep(gpointer data)
{
    MkUserCache *c = data;
    gint64 limit = g_get_monotonic_time() - (gint64)c->idle_s * G_USEC_PER_SEC;
    g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);

    g_mutex_lock(&c->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, c->entries);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Entry *e = v;
        if (e->value && !e->held && e->used_us < limit)
            g_ptr_array_add(old, g_strdup(k));
    }
    g_mutex_unlock(&c->lock);

    /* Outside the lock: the session table and the module's callback
     * take their own. */
    for (guint i = 0; i < old->len; i++) {
        const char *key = g_ptr_array_index(old, i);
        if ((c->klass->flags & MK_USER_CACHE_SESSIONS) && user_has_session(key))
            continue;
        if (c->klass->keep && c->klass->keep(key, c->user_data))
            continue;
        mk_user_cache_forget(c, key);
    }
    return G_SOURCE_CONTINUE;
}

/* session_opened: load before the first stanza needs it. */
static MkResult on_session_opened(MkHookCall *call, gpointer data)
{
    MkSession *s = mk_hook_call_session(call);
    if (s) {
        MkUserCache *c = data;
        MkJid *jid = mk_session_jid(s);
        gpointer value = get(c, mk_jid_bare_string(jid), jid, NULL);
        if (value)
            c->klass->unref(value);
    }
    return MK_PASS;
}

/* session_closed: the last session of a user takes the value along. */
static MkResult on_session_closed(MkHookCall *call, gpointer data)
{
    MkSession *s = mk_hook_call_session(call);
    if (s && !has_session(mk_session_jid(s)))
        mk_user_cache_forget(data, mk_jid_bare_string(mk_session_jid(s)));
    return MK_PASS;
}

static MkResult on_remove_user(MkHookCall *call, gpointer data)
{
    MkJid *user = mk_hook_call_from(call);
    if (user)
        mk_user_cache_forget(data, mk_jid_bare_string(user));
    return MK_PASS;
}

/* Public module API (mk-usercache.h). (transfer none) Main thread. */
MkUserCache *mk_user_cache_new(MkModule *mod, MkUserQueue *queue, const MkUserCacheClass *klass,
                               guint idle_s, gpointer user_data)
{
    g_return_val_if_fail(mod != NULL && queue != NULL && klass != NULL, NULL);
    g_return_val_if_fail(klass->load && klass->ref && klass->unref, NULL);
    if (!g_atomic_int_get(&mod->live)) {
        g_warning("module %s: mk_user_cache_new outside a running instance ignored", mod->name);
        return NULL;
    }
    MkUserCache *c = g_new0(MkUserCache, 1);
    c->mod = mod;
    c->queue = queue;
    c->klass = klass;
    c->user_data = user_data;
    c->idle_s = MAX(idle_s, 1);
    g_mutex_init(&c->lock);
    c->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_ptr_array_add(mod->caches, c);

    mk_timer_add(mod, c->idle_s * 1000, sweep, c);
    if (klass->flags & MK_USER_CACHE_SESSIONS) {
        /* Early, like the filters that use such caches. */
        mk_hook_add(mod, MK_HOOK_SESSION_OPENED, 100, on_session_opened, c);
        mk_hook_add(mod, MK_HOOK_SESSION_CLOSED, 100, on_session_closed, c);
        mk_hook_add(mod, MK_HOOK_REMOVE_USER, 100, on_remove_user, c);
    }
    return c;
}
