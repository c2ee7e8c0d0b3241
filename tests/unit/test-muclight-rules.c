/* The MUC Light affiliation rules (modules/mod_muc_light/muclight-room.c):
 * who may change what, the owner moves and promotions. */
#define ML_PURE
#include "muclight.h"

static MlRoom *room3(void)
{
    MlRoom *r = ml_room_new();
    r->exists = TRUE;
    ml_room_set_aff(r, "crone@x", ML_OWNER);
    ml_room_set_aff(r, "hag77@x", ML_MEMBER);
    ml_room_set_aff(r, "hag88@x", ML_MEMBER);
    return r;
}

static GPtrArray *req(const char *jid, MlAff aff, ...)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(ml_change_free);
    va_list ap;
    va_start(ap, aff);
    while (jid) {
        g_ptr_array_add(a, ml_change_new(jid, aff));
        jid = va_arg(ap, const char *);
        if (jid)
            aff = va_arg(ap, MlAff);
    }
    va_end(ap);
    return a;
}

static const MlRules strict = {FALSE, TRUE};

static void test_owner_moves(void)
{
    g_autoptr(MlRoom) r = room3();
    g_autoptr(GPtrArray) q =
        req("hag66@x", ML_MEMBER, "hag77@x", ML_OWNER, "hag88@x", ML_NONE, NULL);
    MlRoom *after = NULL;
    GPtrArray *changes = NULL;
    g_assert_cmpint(ml_apply_changes(r, "crone@x", q, &strict, &after, &changes), ==, ML_OK);
    g_assert_cmpint(ml_room_aff(after, "crone@x"), ==, ML_MEMBER);
    g_assert_cmpint(ml_room_aff(after, "hag77@x"), ==, ML_OWNER);
    g_assert_cmpint(ml_room_aff(after, "hag66@x"), ==, ML_MEMBER);
    g_assert_cmpint(ml_room_aff(after, "hag88@x"), ==, ML_NONE);
    /* The request's three and the implied demotion, sorted by JID. */
    g_assert_cmpuint(changes->len, ==, 4);
    g_assert_cmpstr(((MlChange *)changes->pdata[0])->jid, ==, "crone@x");
    g_assert_cmpint(((MlChange *)changes->pdata[0])->aff, ==, ML_MEMBER);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
}

static void test_member_limits(void)
{
    g_autoptr(MlRoom) r = room3();
    MlRoom *after = NULL;
    GPtrArray *changes = NULL;
    g_autoptr(GPtrArray) kick = req("hag88@x", ML_NONE, NULL);
    g_assert_cmpint(ml_apply_changes(r, "hag77@x", kick, &strict, &after, &changes), ==,
                    ML_NOT_ALLOWED);
    g_autoptr(GPtrArray) invite = req("new@x", ML_MEMBER, NULL);
    g_assert_cmpint(ml_apply_changes(r, "hag77@x", invite, &strict, &after, &changes), ==,
                    ML_NOT_ALLOWED);
    const MlRules open = {TRUE, TRUE};
    g_assert_cmpint(ml_apply_changes(r, "hag77@x", invite, &open, &after, &changes), ==, ML_OK);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
    g_autoptr(GPtrArray) leave = req("hag77@x", ML_NONE, NULL);
    g_assert_cmpint(ml_apply_changes(r, "hag77@x", leave, &strict, &after, &changes), ==, ML_OK);
    g_assert_cmpuint(after->users->len, ==, 2);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
}

static void test_bad_requests(void)
{
    g_autoptr(MlRoom) r = room3();
    MlRoom *after = NULL;
    GPtrArray *changes = NULL;
    g_autoptr(GPtrArray) same = req("hag77@x", ML_MEMBER, NULL);
    g_assert_cmpint(ml_apply_changes(r, "crone@x", same, &strict, &after, &changes), ==,
                    ML_BAD_REQUEST);
    g_autoptr(GPtrArray) two = req("hag77@x", ML_OWNER, "hag88@x", ML_OWNER, NULL);
    g_assert_cmpint(ml_apply_changes(r, "crone@x", two, &strict, &after, &changes), ==,
                    ML_BAD_REQUEST);
    g_autoptr(GPtrArray) absent = req("nobody@x", ML_NONE, NULL);
    g_assert_cmpint(ml_apply_changes(r, "crone@x", absent, &strict, &after, &changes), ==,
                    ML_BAD_REQUEST);
}

static void test_owner_leaves(void)
{
    g_autoptr(MlRoom) r = room3();
    g_autoptr(GPtrArray) leave = req("crone@x", ML_NONE, NULL);
    MlRoom *after = NULL;
    GPtrArray *changes = NULL;
    g_assert_cmpint(ml_apply_changes(r, "crone@x", leave, &strict, &after, &changes), ==, ML_OK);
    g_assert_cmpstr(ml_room_owner(after), ==, "hag77@x"); /* the first member */
    g_assert_cmpuint(changes->len, ==, 2);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
    /* Stepping down to member is not leaving: nobody is promoted, and
     * the owner is not named twice. */
    g_autoptr(GPtrArray) down = req("crone@x", ML_MEMBER, NULL);
    g_assert_cmpint(ml_apply_changes(r, "crone@x", down, &strict, &after, &changes), ==, ML_OK);
    g_assert_null(ml_room_owner(after));
    g_assert_cmpuint(changes->len, ==, 1);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
    const MlRules keep = {FALSE, FALSE};
    g_assert_cmpint(ml_apply_changes(r, "crone@x", leave, &keep, &after, &changes), ==, ML_OK);
    g_assert_null(ml_room_owner(after));
    g_assert_cmpuint(changes->len, ==, 1);
    ml_room_unref(after);
    g_ptr_array_unref(changes);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/muclight/owner-moves", test_owner_moves);
    g_test_add_func("/muclight/member-limits", test_member_limits);
    g_test_add_func("/muclight/bad-requests", test_bad_requests);
    g_test_add_func("/muclight/owner-leaves", test_owner_leaves);
    return g_test_run();
}
