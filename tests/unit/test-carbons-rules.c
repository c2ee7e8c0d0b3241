/* The pure rules of mod_carboncopy: eligibility (XEP-0280 section 6,
 * XEP-0334 no-copy) and which resources the router gives a message
 * itself, so that none of them also gets a carbon of it. */
#include "carbons.h"

static void test_eligible(void)
{
    CarbonsMessage m = {.type = "chat"};
    g_assert_true(carbons_eligible(&m));
    m.has_body = TRUE;
    g_assert_true(carbons_eligible(&m));
    m.type = NULL;
    g_assert_true(carbons_eligible(&m));
    m.type = "normal";
    g_assert_true(carbons_eligible(&m));
    m.has_body = FALSE;
    g_assert_false(carbons_eligible(&m)); /* normal without body */
    m.has_body = TRUE;
    for (guint i = 0; i < 3; i++) {
        m.type = (const char *[]){"error", "groupchat", "headline"}[i];
        g_assert_false(carbons_eligible(&m));
    }
    m.type = "chat";
    m.is_private = TRUE;
    g_assert_false(carbons_eligible(&m));
    m.is_private = FALSE;
    m.no_copy = TRUE;
    g_assert_false(carbons_eligible(&m));
    m.no_copy = FALSE;
    m.is_carbon = TRUE;
    g_assert_false(carbons_eligible(&m));
}

static void test_direct(void)
{
    gboolean gets[4];
    /* Bare JID, two resources share the top priority: both get it. */
    CarbonsResource a[] = {{TRUE, 5, FALSE}, {TRUE, 5, FALSE}, {TRUE, 1, FALSE}, {FALSE, 9, FALSE}};
    carbons_direct_recipients(a, 4, gets);
    g_assert_true(gets[0] && gets[1] && !gets[2] && !gets[3]);
    /* A full JID: only that resource, even an unavailable one. */
    CarbonsResource b[] = {{TRUE, 5, FALSE}, {FALSE, 0, TRUE}};
    carbons_direct_recipients(b, 2, gets);
    g_assert_true(!gets[0] && gets[1]);
    /* Only negative priorities: nobody (offline storage). */
    CarbonsResource c[] = {{TRUE, -1, FALSE}, {FALSE, 3, FALSE}};
    carbons_direct_recipients(c, 2, gets);
    g_assert_true(!gets[0] && !gets[1]);
    carbons_direct_recipients(NULL, 0, gets);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/carbons/eligible", test_eligible);
    g_test_add_func("/carbons/direct", test_direct);
    return g_test_run();
}
