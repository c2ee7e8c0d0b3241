/* The per-address registration limit of mod_register, without a server. */
#include "register.h"

#define S G_USEC_PER_SEC

static void test_limit_and_window(void)
{
    RegLimiter *l = reg_limiter_new(2, 10 * S);
    g_assert_true(reg_limiter_take(l, "192.0.2.1", 100 * S));
    g_assert_true(reg_limiter_take(l, "192.0.2.1", 101 * S));
    g_assert_false(reg_limiter_take(l, "192.0.2.1", 102 * S));
    /* Another address has its own slots. */
    g_assert_true(reg_limiter_take(l, "192.0.2.2", 102 * S));
    /* The first slot leaves the window at 110 s. */
    g_assert_false(reg_limiter_take(l, "192.0.2.1", 109 * S));
    g_assert_true(reg_limiter_take(l, "192.0.2.1", 110 * S));
    g_assert_false(reg_limiter_take(l, "192.0.2.1", 110 * S));
    reg_limiter_free(l);
}

static void test_give_back(void)
{
    RegLimiter *l = reg_limiter_new(1, 10 * S);
    g_assert_true(reg_limiter_take(l, "::1", 0));
    g_assert_false(reg_limiter_take(l, "::1", 1 * S));
    reg_limiter_give_back(l, "::1"); /* that registration failed */
    g_assert_true(reg_limiter_take(l, "::1", 2 * S));
    reg_limiter_free(l);
}

static void test_expire_and_unlimited(void)
{
    RegLimiter *l = reg_limiter_new(3, 10 * S);
    reg_limiter_take(l, "a", 0);
    reg_limiter_take(l, "b", 5 * S);
    g_assert_cmpuint(reg_limiter_size(l), ==, 2);
    reg_limiter_expire(l, 12 * S);
    g_assert_cmpuint(reg_limiter_size(l), ==, 1);
    reg_limiter_expire(l, 20 * S);
    g_assert_cmpuint(reg_limiter_size(l), ==, 0);
    reg_limiter_free(l);

    RegLimiter *none = reg_limiter_new(0, 10 * S);
    for (int i = 0; i < 100; i++)
        g_assert_true(reg_limiter_take(none, "a", 0));
    g_assert_cmpuint(reg_limiter_size(none), ==, 0);
    reg_limiter_free(none);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mod_register/limit/window", test_limit_and_window);
    g_test_add_func("/mod_register/limit/give-back", test_give_back);
    g_test_add_func("/mod_register/limit/expire", test_expire_and_unlimited);
    return g_test_run();
}
