/* The pure decisions of mod_offline: what is stored (XEP-0160 section 3,
 * XEP-0334, XEP-0085), when a failed store is retried or bounced, the
 * back-off, and the XEP-0082 stamps of XEP-0203 delays. */
#define OFFLINE_PURE
#include "offline.h"

static void test_classify(void)
{
    g_assert_cmpint(offline_classify(NULL, FALSE, TRUE, FALSE), ==, OFFLINE_STORE);
    g_assert_cmpint(offline_classify("normal", FALSE, TRUE, FALSE), ==, OFFLINE_STORE);
    g_assert_cmpint(offline_classify("chat", FALSE, TRUE, FALSE), ==, OFFLINE_STORE);
    g_assert_cmpint(offline_classify("groupchat", FALSE, TRUE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("groupchat", FALSE, TRUE, TRUE), ==, OFFLINE_STORE);
    g_assert_cmpint(offline_classify("headline", FALSE, TRUE, TRUE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("headline", FALSE, TRUE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("error", FALSE, TRUE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("bogus", FALSE, TRUE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("chat", TRUE, TRUE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify(NULL, TRUE, FALSE, FALSE), ==, OFFLINE_PASS);
    g_assert_cmpint(offline_classify("chat", FALSE, FALSE, FALSE), ==, OFFLINE_DROP);
}

static void test_retry(void)
{
    /* retries = 3: the first try and three retries, then a bounce. */
    g_assert_cmpint(offline_retry_next(0, 3), ==, OFFLINE_RETRY);
    g_assert_cmpint(offline_retry_next(2, 3), ==, OFFLINE_RETRY);
    g_assert_cmpint(offline_retry_next(3, 3), ==, OFFLINE_GIVE_UP);
    g_assert_cmpint(offline_retry_next(0, 0), ==, OFFLINE_GIVE_UP);

    g_assert_cmpuint(offline_retry_delay_ms(0, 200), ==, 200);
    g_assert_cmpuint(offline_retry_delay_ms(1, 200), ==, 400);
    g_assert_cmpuint(offline_retry_delay_ms(3, 200), ==, 1600);
    g_assert_cmpuint(offline_retry_delay_ms(20, 200), ==, 30000);
    g_assert_cmpuint(offline_retry_delay_ms(1000, 1000), ==, 30000);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/offline/classify", test_classify);
    g_test_add_func("/offline/retry", test_retry);
    return g_test_run();
}
