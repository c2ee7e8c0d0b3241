/* The limits on password guessing and on unauthenticated connections
 * (core/authguard.c): backoff per address and per account, the owner of
 * an account not locked out by an attacker elsewhere, forgiveness on
 * success, the per-address cap, loopback exemption, the log's rate. */
#include "authguard.h"
#include <arpa/inet.h>
#include <string.h>

static MkAddrKey addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        g_assert_cmpint(inet_pton(AF_INET6, text, &sin6->sin6_addr), ==, 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        g_assert_cmpint(inet_pton(AF_INET, text, &sin->sin_addr), ==, 1);
    }
    MkAddrKey k;
    mk_addr_key_from_sockaddr(&k, &ss);
    return k;
}

static const MkAuthGuardConfig cfg = {
    .address_failures = 3,
    .account_failures = 2,
    .backoff_max = 300,
    .forget_after = 600,
    .exempt_loopback = TRUE,
};

static void test_address_backoff(void)
{
    MkAuthGuard *g = mk_auth_guard_new(&cfg);
    MkAddrKey a = addr("192.0.2.1"), b = addr("192.0.2.2");
    for (int i = 0; i < 2; i++) {
        g_assert_true(mk_auth_guard_address_ok(g, &a));
        mk_auth_guard_failed(g, &a, NULL, "localhost");
    }
    g_assert_true(mk_auth_guard_address_ok(g, &a));
    mk_auth_guard_failed(g, &a, NULL, "localhost"); /* the third: backoff */
    g_assert_false(mk_auth_guard_address_ok(g, &a));
    g_assert_true(mk_auth_guard_address_ok(g, &b));
    /* IPv6: the /64 counts as one address. */
    MkAddrKey v1 = addr("2001:db8::1"), v2 = addr("2001:db8::2"), other = addr("2001:db8:1::1");
    for (int i = 0; i < 3; i++)
        mk_auth_guard_failed(g, &v1, NULL, "localhost");
    g_assert_false(mk_auth_guard_address_ok(g, &v2));
    g_assert_true(mk_auth_guard_address_ok(g, &other));
    /* Success forgives. */
    mk_auth_guard_succeeded(g, &v2, "u", "localhost");
    g_assert_true(mk_auth_guard_address_ok(g, &v1));
    /* Loopback is exempt here. */
    MkAddrKey lo = addr("127.0.0.1");
    for (int i = 0; i < 10; i++)
        mk_auth_guard_failed(g, &lo, NULL, "localhost");
    g_assert_true(mk_auth_guard_address_ok(g, &lo));
    MkAuthGuardStats st;
    mk_auth_guard_stats(g, &st);
    g_assert_cmpint(st.failures, ==, 16);
    g_assert_cmpint(st.throttled_address, ==, 2);
    mk_auth_guard_free(g);
}

/* An attacker spreading guesses for one account over addresses puts the
 * account in backoff against addresses with failures, never against the
 * owner's clean one. */
static void test_account_backoff(void)
{
    MkAuthGuard *g = mk_auth_guard_new(&cfg);
    MkAddrKey x = addr("198.51.100.1"), y = addr("198.51.100.2"), owner = addr("203.0.113.9");
    g_assert_true(mk_auth_guard_account_ok(g, &x, "alice", "localhost"));
    mk_auth_guard_failed(g, &x, "alice", "localhost");
    mk_auth_guard_failed(g, &y, "alice", "localhost"); /* the second: backoff */
    g_assert_false(mk_auth_guard_account_ok(g, &x, "alice", "localhost"));
    g_assert_false(mk_auth_guard_account_ok(g, &y, "alice", "localhost"));
    g_assert_true(mk_auth_guard_account_ok(g, &x, "bob", "localhost"));
    g_assert_true(mk_auth_guard_account_ok(g, &owner, "alice", "localhost"));
    /* The owner logs in: the account's record is cleared. */
    mk_auth_guard_succeeded(g, &owner, "alice", "localhost");
    g_assert_true(mk_auth_guard_account_ok(g, &x, "alice", "localhost"));
    mk_auth_guard_free(g);
}

static void test_preauth_cap(void)
{
    MkAuthGuard *g = mk_auth_guard_new(&cfg);
    MkAddrKey a = addr("192.0.2.7"), lo = addr("127.0.0.1");
    g_assert_true(mk_auth_guard_preauth_enter(g, &a, 2));
    g_assert_true(mk_auth_guard_preauth_enter(g, &a, 2));
    g_assert_false(mk_auth_guard_preauth_enter(g, &a, 2));
    mk_auth_guard_preauth_leave(g, &a);
    g_assert_true(mk_auth_guard_preauth_enter(g, &a, 2));
    for (int i = 0; i < 5; i++)
        g_assert_true(mk_auth_guard_preauth_enter(g, &lo, 2));
    mk_auth_guard_preauth_leave(g, &a);
    mk_auth_guard_preauth_leave(g, &a);
    MkAuthGuardStats st;
    mk_auth_guard_stats(g, &st);
    g_assert_cmpint(st.preauth_refused, ==, 1);
    mk_auth_guard_free(g);
}

static void test_log_rate(void)
{
    MkAuthGuard *g = mk_auth_guard_new(&cfg);
    guint64 suppressed = 0;
    guint logged = 0;
    for (int i = 0; i < 1000; i++)
        logged += mk_auth_guard_log_ok(g, &suppressed);
    g_assert_cmpuint(logged, >=, 20);
    g_assert_cmpuint(logged, <, 100);
    mk_auth_guard_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/authguard/address-backoff", test_address_backoff);
    g_test_add_func("/authguard/account-backoff", test_account_backoff);
    g_test_add_func("/authguard/preauth-cap", test_preauth_cap);
    g_test_add_func("/authguard/log-rate", test_log_rate);
    return g_test_run();
}
