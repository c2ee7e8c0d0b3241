/* The keyed cache of the module API (core/usercache.c) on a real storage
 * pool (sqlite3): one load for many lookups, held stanzas routed again
 * once the value is there, invalidation (also while a load runs), the
 * fallback of a failed load, direct installs, and the idle sweep. */
#include "module-fixture.h"
#include "db.h"
#include "modules.h"

#define ROOMS "rooms.test" /* held stanzas are addressed here */

/* What the test controls and sees; the load runs on a storage thread. */
static struct {
    GMutex lock;
    GCond cond;
    gint loads;       /* atomic: loads that ran */
    gint version;     /* atomic: what the next load reads */
    gint fail;        /* atomic: the next loads fail */
    gint failed;      /* atomic: loads that failed */
    gboolean gated;   /* loads wait until open */
    gboolean waiting; /* a gated load is waiting */
    gboolean open;
    gint routed; /* atomic: held stanzas that came back */
} t;

/* Values are GRefStrings. */
typedef char RefStr;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RefStr, g_ref_string_release)

static ModuleFixture fx;
static MkModule *mod;
static MkUserCache *cache;

static gboolean test_load(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                          gpointer user_data, GError **error)
{
    g_assert_null(user); /* not a MK_USER_CACHE_SESSIONS cache */
    g_atomic_int_inc(&t.loads);
    int version = g_atomic_int_get(&t.version);
    g_mutex_lock(&t.lock);
    if (t.gated) {
        t.waiting = TRUE;
        g_cond_broadcast(&t.cond);
        while (!t.open)
            g_cond_wait(&t.cond, &t.lock);
    }
    g_mutex_unlock(&t.lock);
    if (g_atomic_int_get(&t.fail)) {
        g_atomic_int_inc(&t.failed);
        g_set_error_literal(error, g_quark_from_static_string("test"), 1, "storage is down");
        return FALSE;
    }
    g_autofree char *text = g_strdup_printf("%s#%d", key, version);
    *value = g_ref_string_new(text);
    return TRUE;
}

static gpointer fallback_value(const char *key, gpointer user_data)
{
    return g_ref_string_new("fallback");
}

static gboolean test_keep(const char *key, gpointer user_data)
{
    return g_str_has_prefix(key, "keep");
}

static const MkUserCacheClass test_class = {
    .load = test_load,
    .ref = (gpointer(*)(gpointer))g_ref_string_acquire,
    .unref = (GDestroyNotify)g_ref_string_release,
    .fallback = fallback_value,
    .keep = test_keep,
};

static void on_routed(MkStanza *st, gpointer user_data)
{
    g_atomic_int_inc(&t.routed);
}

static gboolean cache_start(MkModule *m, GError **error)
{
    MkUserQueue *q = mk_user_queue_new(m);
    cache = mk_user_cache_new(m, q, &test_class, 1, NULL);
    return cache && mk_route_register(m, ROOMS, on_routed, NULL, error);
}

static const MkModuleDesc cache_desc = {MK_MODULE_DESC_HEADER, .name = "mod_cachetest",
                                        .start = cache_start};

static void setup(void)
{
    memset(&t, 0, sizeof t);
    g_mutex_init(&t.lock);
    g_cond_init(&t.cond);
    t.version = 1;
    module_fixture_start(&fx, &cache_desc);
    mod = fx.mod;
    g_assert_nonnull(cache);
}

static void teardown(void)
{
    fx.mod = mod; /* NULL when the test stopped it */
    module_fixture_stop(&fx);
    mod = NULL;
    cache = NULL;
    g_cond_clear(&t.cond);
    g_mutex_clear(&t.lock);
}

/* Iterates the main context until @cond; the deadline only keeps a
 * broken cache from hanging the suite. */
#define ITERATE_UNTIL(cond)                                                                        \
    do {                                                                                           \
        gint64 deadline_ = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;                       \
        while (!(cond) && g_get_monotonic_time() < deadline_)                                      \
            g_main_context_iteration(NULL, TRUE);                                                  \
        g_assert_true(cond);                                                                       \
    } while (0)

/* Waits (iterating) until @key has a value; returns it. (transfer full) */
static char *wait_value(const char *key)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    char *v;
    while (!(v = mk_user_cache_get(cache, key, NULL))) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, TRUE);
    }
    return v;
}

/* Waits (iterating, each lookup starting a load when the entry is
 * stale) until @key's value is @expected. */
static void wait_for(const char *key, const char *expected)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    for (;;) {
        char *v = mk_user_cache_get(cache, key, NULL);
        gboolean same = g_strcmp0(v, expected) == 0;
        if (v)
            g_ref_string_release(v);
        if (same)
            return;
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, TRUE);
    }
}

static MkStanza *held_stanza(void)
{
    g_autoptr(MkXml) xml = mk_xml_new("message", "jabber:client");
    g_autoptr(MkJid) to = mk_jid_new("room@" ROOMS, NULL);
    return mk_stanza_new_addressed(xml, NULL, to);
}

static void set_gate(gboolean gated)
{
    g_mutex_lock(&t.lock);
    t.gated = gated;
    t.open = !gated;
    t.waiting = FALSE;
    g_cond_broadcast(&t.cond);
    g_mutex_unlock(&t.lock);
}

static void wait_gated_load(void)
{
    g_mutex_lock(&t.lock);
    while (!t.waiting)
        g_cond_wait(&t.cond, &t.lock);
    g_mutex_unlock(&t.lock);
}

/* Many lookups before the value is there start one load; what they held
 * comes back once, after the value is installed. */
static void test_load_once(void)
{
    setup();
    set_gate(TRUE);
    g_autoptr(MkStanza) a = held_stanza();
    g_autoptr(MkStanza) b = held_stanza();
    g_assert_null(mk_user_cache_get(cache, "u@localhost", a));
    g_assert_null(mk_user_cache_get(cache, "u@localhost", b));
    g_assert_null(mk_user_cache_get(cache, "u@localhost", NULL));
    wait_gated_load();
    g_assert_cmpint(g_atomic_int_get(&t.routed), ==, 0);
    set_gate(FALSE);
    ITERATE_UNTIL(g_atomic_int_get(&t.routed) == 2);
    g_autoptr(RefStr) v = wait_value("u@localhost");
    g_assert_cmpstr(v, ==, "u@localhost#1");
    g_assert_cmpint(g_atomic_int_get(&t.loads), ==, 1);
    /* A second key is a second load. */
    g_autoptr(RefStr) w = wait_value("w@localhost");
    g_assert_cmpstr(w, ==, "w@localhost#1");
    g_assert_cmpint(g_atomic_int_get(&t.loads), ==, 2);
    teardown();
}

/* Invalidated: the old value serves until the new one is there. */
static void test_invalidate(void)
{
    setup();
    g_autoptr(RefStr) v1 = wait_value("u@localhost");
    g_atomic_int_set(&t.version, 2);
    mk_user_cache_invalidate(cache, "u@localhost");
    g_autoptr(RefStr) old = mk_user_cache_get(cache, "u@localhost", NULL);
    g_assert_cmpstr(old, ==, "u@localhost#1");
    wait_for("u@localhost", "u@localhost#2");
    g_assert_cmpint(g_atomic_int_get(&t.loads), ==, 2);
    teardown();
}

/* Invalidated while a load runs that read before the change: that load's
 * value is installed, and the next lookup loads again. */
static void test_invalidate_during_load(void)
{
    setup();
    set_gate(TRUE);
    g_assert_null(mk_user_cache_get(cache, "u@localhost", NULL));
    wait_gated_load(); /* it read version 1 */
    g_atomic_int_set(&t.version, 2);
    mk_user_cache_invalidate(cache, "u@localhost");
    /* Not a second load while the first one runs. */
    g_assert_null(mk_user_cache_get(cache, "u@localhost", NULL));
    set_gate(FALSE);
    g_autoptr(RefStr) v1 = wait_value("u@localhost");
    g_assert_cmpstr(v1, ==, "u@localhost#1");
    /* That get found the entry stale and loaded again. */
    ITERATE_UNTIL(g_atomic_int_get(&t.loads) == 2);
    wait_for("u@localhost", "u@localhost#2");
    teardown();
}

/* A failed load installs the fallback (held stanzas go on) and the next
 * lookup tries again. */
static void test_fallback(void)
{
    setup();
    g_atomic_int_set(&t.fail, 1);
    /* Failures are logged as warnings: not fatal here. */
    GLogLevelFlags fatal = g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    g_autoptr(MkStanza) a = held_stanza();
    g_assert_null(mk_user_cache_get(cache, "u@localhost", a));
    ITERATE_UNTIL(g_atomic_int_get(&t.routed) == 1);
    g_autoptr(RefStr) f = wait_value("u@localhost");
    g_assert_cmpstr(f, ==, "fallback");
    g_atomic_int_set(&t.fail, 0);
    wait_for("u@localhost", "u@localhost#1");

    /* A reload that fails keeps the value; the one after succeeds. */
    g_atomic_int_set(&t.fail, 1);
    g_atomic_int_set(&t.version, 2);
    mk_user_cache_invalidate(cache, "u@localhost");
    gint failed = g_atomic_int_get(&t.failed);
    g_autoptr(RefStr) v1 = mk_user_cache_get(cache, "u@localhost", NULL);
    g_assert_cmpstr(v1, ==, "u@localhost#1");
    /* A second failed load starts only from a lookup after the first
     * one's completion: then that completion has run. */
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    while (g_atomic_int_get(&t.failed) < failed + 2) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, TRUE);
        g_autoptr(RefStr) v = mk_user_cache_get(cache, "u@localhost", NULL);
        g_assert_cmpstr(v, ==, "u@localhost#1");
    }
    g_atomic_int_set(&t.fail, 0);
    g_autoptr(RefStr) still = mk_user_cache_get(cache, "u@localhost", NULL);
    g_assert_cmpstr(still, ==, "u@localhost#1");
    wait_for("u@localhost", "u@localhost#2");
    g_log_set_always_fatal(fatal);
    teardown();
}

/* A write installs its value without a load; forget drops it. */
static void test_set_forget(void)
{
    setup();
    mk_user_cache_set(cache, "u@localhost", g_ref_string_new("written"));
    g_autoptr(RefStr) v = mk_user_cache_get(cache, "u@localhost", NULL);
    g_assert_cmpstr(v, ==, "written");
    g_assert_cmpint(g_atomic_int_get(&t.loads), ==, 0);
    mk_user_cache_forget(cache, "u@localhost");
    g_assert_cmpuint(mk_user_cache_count(cache), ==, 0);
    g_autoptr(RefStr) w = wait_value("u@localhost");
    g_assert_cmpstr(w, ==, "u@localhost#1");
    teardown();
}

/* Idle entries leave memory, except those the class keeps. */
static void test_sweep(void)
{
    setup();
    g_autoptr(RefStr) a = wait_value("u@localhost");
    g_autoptr(RefStr) b = wait_value("keep@localhost");
    g_assert_cmpuint(mk_user_cache_count(cache), ==, 2);
    ITERATE_UNTIL(mk_user_cache_count(cache) == 1);
    g_autoptr(RefStr) kept = mk_user_cache_get(cache, "keep@localhost", NULL);
    g_assert_cmpstr(kept, ==, "keep@localhost#1");
    teardown();
}

/* The module stops with values cached, a stanza held and a load waiting
 * behind a running one: everything is released (ASan checks). */
static void test_stop(void)
{
    setup();
    g_autoptr(RefStr) a = wait_value("u@localhost");
    set_gate(TRUE);
    g_autoptr(MkStanza) held = held_stanza();
    g_assert_null(mk_user_cache_get(cache, "v@localhost", held));
    wait_gated_load();
    mk_module_stop_adhoc(g_steal_pointer(&mod));
    set_gate(FALSE);
    /* The running load completes (its value goes with the module). */
    ITERATE_UNTIL(g_atomic_int_get(&t.loads) == 2);
    mk_db_close(fx.srv.db);
    fx.srv.db = NULL;
    while (g_main_context_iteration(NULL, FALSE))
        ;
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/usercache/load-once", test_load_once);
    g_test_add_func("/usercache/invalidate", test_invalidate);
    g_test_add_func("/usercache/invalidate-during-load", test_invalidate_during_load);
    g_test_add_func("/usercache/fallback", test_fallback);
    g_test_add_func("/usercache/set-forget", test_set_forget);
    g_test_add_func("/usercache/sweep", test_sweep);
    g_test_add_func("/usercache/stop", test_stop);
    return g_test_run();
}
