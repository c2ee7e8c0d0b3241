/* XEP-0191 section 4 JID matching, checked on its own. */
#include <glib.h>

gboolean blocking_jid_match(const char *inode, const char *idomain, const char *ires,
                            const char *node, const char *domain, const char *res);

static void test_full(void)
{
    g_assert_true(
        blocking_jid_match("romeo", "example.net", "orchard", "romeo", "example.net", "orchard"));
    g_assert_false(
        blocking_jid_match("romeo", "example.net", "orchard", "romeo", "example.net", "garden"));
    g_assert_false(
        blocking_jid_match("romeo", "example.net", "orchard", "romeo", "example.net", NULL));
}

static void test_bare(void)
{
    g_assert_true(blocking_jid_match("romeo", "example.net", NULL, "romeo", "example.net", "x"));
    g_assert_true(blocking_jid_match("romeo", "example.net", NULL, "romeo", "example.net", NULL));
    g_assert_false(blocking_jid_match("romeo", "example.net", NULL, "juliet", "example.net", NULL));
    g_assert_false(blocking_jid_match("romeo", "example.net", NULL, "romeo", "example.org", NULL));
    g_assert_false(blocking_jid_match("romeo", "example.net", NULL, NULL, "example.net", NULL));
}

static void test_domain_resource(void)
{
    g_assert_true(blocking_jid_match(NULL, "example.net", "bot", NULL, "example.net", "bot"));
    g_assert_false(blocking_jid_match(NULL, "example.net", "bot", NULL, "example.net", "other"));
    g_assert_false(blocking_jid_match(NULL, "example.net", "bot", "romeo", "example.net", "bot"));
    g_assert_false(blocking_jid_match(NULL, "example.net", "bot", NULL, "example.net", NULL));
}

static void test_domain(void)
{
    g_assert_true(blocking_jid_match(NULL, "example.net", NULL, NULL, "example.net", NULL));
    g_assert_true(blocking_jid_match(NULL, "example.net", NULL, "romeo", "example.net", "x"));
    g_assert_true(blocking_jid_match(NULL, "example.net", NULL, NULL, "example.net", "bot"));
    g_assert_true(blocking_jid_match(NULL, "example.net", NULL, "a", "muc.example.net", NULL));
    g_assert_false(blocking_jid_match(NULL, "example.net", NULL, "a", "badexample.net", NULL));
    g_assert_false(blocking_jid_match(NULL, "example.net", NULL, "a", "example.org", NULL));
    g_assert_false(blocking_jid_match(NULL, "example.net", NULL, "a", "net", NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/blocking/match/full", test_full);
    g_test_add_func("/blocking/match/bare", test_bare);
    g_test_add_func("/blocking/match/domain-resource", test_domain_resource);
    g_test_add_func("/blocking/match/domain", test_domain);
    return g_test_run();
}
