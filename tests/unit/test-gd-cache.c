/* mod_global_distrib's mapping cache: hits, negative entries, lifetime,
 * the bound with oldest-first eviction, invalidation. */
#include "gd-cache.h"

static void test_hit_and_negative(void)
{
    GdCache *c = gd_cache_new(10, 1000);
    const char *host = "x";
    g_assert_false(gd_cache_get(c, "j:a@d", 0, &host));
    gd_cache_put(c, "j:a@d", "eu", 0);
    gd_cache_put(c, "j:b@d", NULL, 0);
    g_assert_true(gd_cache_get(c, "j:a@d", 10, &host));
    g_assert_cmpstr(host, ==, "eu");
    g_assert_true(gd_cache_get(c, "j:b@d", 10, &host));
    g_assert_null(host);
    gd_cache_put(c, "j:a@d", "us", 20); /* replaced, not duplicated */
    g_assert_true(gd_cache_get(c, "j:a@d", 30, &host));
    g_assert_cmpstr(host, ==, "us");
    g_assert_cmpuint(gd_cache_size(c), ==, 2);
    gd_cache_free(c);
}

static void test_lifetime(void)
{
    GdCache *c = gd_cache_new(10, 1000);
    const char *host;
    gd_cache_put(c, "j:a@d", "eu", 0);
    g_assert_true(gd_cache_get(c, "j:a@d", 999, &host));
    g_assert_false(gd_cache_get(c, "j:a@d", 1000, &host));
    g_assert_cmpuint(gd_cache_size(c), ==, 0); /* an expired entry goes on lookup */
    gd_cache_put_for(c, "j:b@d", "us", 0, 5);
    g_assert_false(gd_cache_get(c, "j:b@d", 5, &host));
    gd_cache_free(c);
}

static void test_bound(void)
{
    GdCache *c = gd_cache_new(3, 1000);
    const char *host;
    gd_cache_put(c, "1", "r", 0);
    gd_cache_put(c, "2", "r", 0);
    gd_cache_put(c, "3", "r", 0);
    gd_cache_put(c, "1", "r", 1); /* re-put: now the newest */
    gd_cache_put(c, "4", "r", 2);
    g_assert_cmpuint(gd_cache_size(c), ==, 3);
    g_assert_false(gd_cache_get(c, "2", 3, &host)); /* the oldest went */
    g_assert_true(gd_cache_get(c, "1", 3, &host));
    g_assert_true(gd_cache_get(c, "3", 3, &host));
    g_assert_true(gd_cache_get(c, "4", 3, &host));
    for (int i = 0; i < 1000; i++) {
        g_autofree char *k = g_strdup_printf("k%d", i);
        gd_cache_put(c, k, "r", 4);
    }
    g_assert_cmpuint(gd_cache_size(c), ==, 3);
    gd_cache_free(c);
}

static void test_drop(void)
{
    GdCache *c = gd_cache_new(3, 1000);
    const char *host;
    gd_cache_put(c, "1", "r", 0);
    gd_cache_put(c, "2", "r", 0);
    gd_cache_drop(c, "1");
    gd_cache_drop(c, "nothing");
    g_assert_false(gd_cache_get(c, "1", 1, &host));
    g_assert_true(gd_cache_get(c, "2", 1, &host));
    gd_cache_put(c, "3", "r", 0);
    gd_cache_put(c, "4", "r", 0);
    gd_cache_put(c, "5", "r", 0); /* evicts "2", the oldest left */
    g_assert_false(gd_cache_get(c, "2", 1, &host));
    g_assert_cmpuint(gd_cache_size(c), ==, 3);
    gd_cache_free(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/gd-cache/hit-and-negative", test_hit_and_negative);
    g_test_add_func("/gd-cache/lifetime", test_lifetime);
    g_test_add_func("/gd-cache/bound", test_bound);
    g_test_add_func("/gd-cache/drop", test_drop);
    return g_test_run();
}
