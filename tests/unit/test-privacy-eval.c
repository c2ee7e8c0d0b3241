/* XEP-0016 list evaluation, checked on its own. */
#include <string.h>

#include "privacy.h"

static PrivItem *item(guint32 order, PrivType type, const char *value, gboolean allow, guint kinds)
{
    PrivItem *it = g_new0(PrivItem, 1);
    it->order = order;
    it->type = type;
    it->value = g_strdup(value);
    it->allow = allow;
    it->kinds = kinds;
    if (type == PRIV_TYPE_JID) {
        /* Test values are already prepared: split them by hand. */
        const char *at = strchr(value, '@'), *slash = strchr(value, '/');
        const char *dstart = at ? at + 1 : value;
        it->node = at ? g_strndup(value, at - value) : NULL;
        it->domain = slash ? g_strndup(dstart, slash - dstart) : g_strdup(dstart);
        it->res = slash ? g_strdup(slash + 1) : NULL;
    } else if (type == PRIV_TYPE_SUBSCRIPTION) {
        it->sub = (guint)priv_sub_parse(value);
    }
    return it;
}

static GPtrArray *list(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)priv_item_free);
}

static void test_jid_deny_message(void)
{
    g_autoptr(GPtrArray) l = list();
    g_ptr_array_add(l, item(3, PRIV_TYPE_JID, "tybalt@example.com", FALSE, PRIV_MESSAGE));
    PrivPeer tybalt = {"tybalt", "example.com", "pda", PRIV_SUB_NONE, NULL};
    PrivPeer nurse = {"nurse", "example.com", "pda", PRIV_SUB_NONE, NULL};
    g_assert_false(priv_items_allow(l, PRIV_MESSAGE, &tybalt));
    g_assert_true(priv_items_allow(l, PRIV_IQ, &tybalt)); /* other kinds */
    g_assert_true(priv_items_allow(l, PRIV_PRESENCE_IN, &tybalt));
    g_assert_true(priv_items_allow(l, PRIV_MESSAGE, &nurse)); /* fall-through allows */
}

static void test_order_first_match(void)
{
    g_autoptr(GPtrArray) l = list();
    g_ptr_array_add(l, item(1, PRIV_TYPE_SUBSCRIPTION, "both", TRUE, 0));
    g_ptr_array_add(l, item(2, PRIV_TYPE_NONE, NULL, FALSE, 0));
    PrivPeer friend = {"f", "example.com", NULL, PRIV_SUB_BOTH, NULL};
    PrivPeer stranger = {"s", "example.com", NULL, PRIV_SUB_NONE, NULL};
    g_assert_true(priv_items_allow(l, PRIV_MESSAGE, &friend));
    g_assert_false(priv_items_allow(l, PRIV_MESSAGE, &stranger));
    g_assert_false(priv_items_allow(l, 0, &stranger)); /* all-stanza item covers kind 0 */
}

static void test_group_and_all(void)
{
    g_autoptr(GPtrArray) l = list();
    g_ptr_array_add(l, item(4, PRIV_TYPE_GROUP, "Enemies", FALSE, 0));
    const char *const groups[] = {"Friends", "Enemies", NULL};
    PrivPeer enemy = {"e", "example.com", NULL, PRIV_SUB_TO, groups};
    PrivPeer other = {"o", "example.com", NULL, PRIV_SUB_TO, NULL};
    g_assert_false(priv_items_allow(l, PRIV_PRESENCE_OUT, &enemy));
    g_assert_false(priv_items_allow(l, 0, &enemy));
    g_assert_true(priv_items_allow(l, 0, &other));
}

static void test_presence_kinds(void)
{
    g_autoptr(GPtrArray) l = list();
    g_ptr_array_add(l, item(1, PRIV_TYPE_JID, "example.com", FALSE, PRIV_PRESENCE_OUT));
    PrivPeer p = {"x", "example.com", NULL, PRIV_SUB_NONE, NULL};
    g_assert_false(priv_items_allow(l, PRIV_PRESENCE_OUT, &p));
    g_assert_true(priv_items_allow(l, PRIV_PRESENCE_IN, &p));
    g_assert_true(priv_items_allow(l, 0, &p)); /* a subscription request is not a notification */
}

static void test_sub_names(void)
{
    g_assert_cmpint(priv_sub_parse("from"), ==, PRIV_SUB_FROM);
    g_assert_cmpint(priv_sub_parse("nope"), ==, -1);
    g_assert_cmpstr(priv_sub_name(PRIV_SUB_BOTH), ==, "both");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/privacy/eval/jid-message", test_jid_deny_message);
    g_test_add_func("/privacy/eval/order", test_order_first_match);
    g_test_add_func("/privacy/eval/group", test_group_and_all);
    g_test_add_func("/privacy/eval/presence-kinds", test_presence_kinds);
    g_test_add_func("/privacy/eval/sub-names", test_sub_names);
    return g_test_run();
}
