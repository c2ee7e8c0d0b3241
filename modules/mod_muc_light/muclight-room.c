/* mod_muc_light: room values and the affiliation rules of the protocol
 * (docs/mod_muc_light.md), without a server so that a unit test checks
 * them. */
#define ML_PURE
#include "muclight.h"

#include <string.h>

static void user_free(gpointer data)
{
    MlUser *u = data;
    g_free(u->jid);
    g_free(u);
}

MlRoom *ml_room_new(void)
{
    MlRoom *r = g_new0(MlRoom, 1);
    r->ref = 1;
    r->users = g_ptr_array_new_with_free_func(user_free);
    return r;
}

MlRoom *ml_room_ref(MlRoom *r)
{
    g_atomic_int_inc(&r->ref);
    return r;
}

void ml_room_unref(MlRoom *r)
{
    if (!r || !g_atomic_int_dec_and_test(&r->ref))
        return;
    g_free(r->version);
    g_free(r->roomname);
    g_free(r->subject);
    g_ptr_array_unref(r->users);
    if (r->recipients)
        g_ptr_array_unref(r->recipients);
    g_free(r);
}

MlRoom *ml_room_copy(const MlRoom *r)
{
    MlRoom *c = ml_room_new();
    c->exists = r->exists;
    c->version = g_strdup(r->version);
    c->roomname = g_strdup(r->roomname);
    c->subject = g_strdup(r->subject);
    for (guint i = 0; i < r->users->len; i++) {
        const MlUser *u = g_ptr_array_index(r->users, i);
        MlUser *n = g_new0(MlUser, 1);
        n->jid = g_strdup(u->jid);
        n->aff = u->aff;
        g_ptr_array_add(c->users, n);
    }
    return c;
}

/* Binary search in the sorted list: the index of @jid, or where it goes. */
static gboolean find(const MlRoom *r, const char *jid, guint *at)
{
    guint lo = 0, hi = r->users->len;
    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        int c = strcmp(((MlUser *)g_ptr_array_index(r->users, mid))->jid, jid);
        if (c == 0) {
            *at = mid;
            return TRUE;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return FALSE;
}

MlAff ml_room_aff(const MlRoom *r, const char *jid)
{
    guint at;
    return find(r, jid, &at) ? ((MlUser *)g_ptr_array_index(r->users, at))->aff : ML_NONE;
}

void ml_room_set_aff(MlRoom *r, const char *jid, MlAff aff)
{
    guint at;
    if (find(r, jid, &at)) {
        if (aff == ML_NONE)
            g_ptr_array_remove_index(r->users, at);
        else
            ((MlUser *)g_ptr_array_index(r->users, at))->aff = aff;
        return;
    }
    if (aff == ML_NONE)
        return;
    MlUser *u = g_new0(MlUser, 1);
    u->jid = g_strdup(jid);
    u->aff = aff;
    g_ptr_array_insert(r->users, (gint)at, u);
}

const char *ml_room_owner(const MlRoom *r)
{
    for (guint i = 0; i < r->users->len; i++) {
        const MlUser *u = g_ptr_array_index(r->users, i);
        if (u->aff == ML_OWNER)
            return u->jid;
    }
    return NULL;
}

gboolean ml_aff_parse(const char *text, MlAff *aff)
{
    if (g_strcmp0(text, "owner") == 0)
        *aff = ML_OWNER;
    else if (g_strcmp0(text, "member") == 0)
        *aff = ML_MEMBER;
    else if (g_strcmp0(text, "none") == 0)
        *aff = ML_NONE;
    else
        return FALSE;
    return TRUE;
}

const char *ml_aff_name(MlAff aff)
{
    switch (aff) {
    case ML_OWNER:
        return "owner";
    case ML_MEMBER:
        return "member";
    default:
        return "none";
    }
}

char *ml_random_id(guint chars)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char *s = g_malloc(chars + 1);
    for (guint i = 0; i < chars; i++)
        s[i] = alphabet[g_random_int_range(0, (gint32)(sizeof alphabet - 1))];
    s[chars] = '\0';
    return s;
}

MlChange *ml_change_new(const char *jid, MlAff aff)
{
    MlChange *c = g_new0(MlChange, 1);
    c->jid = g_strdup(jid);
    c->aff = aff;
    return c;
}

void ml_change_free(gpointer data)
{
    MlChange *c = data;
    g_free(c->jid);
    g_free(c);
}

static gint change_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp((*(MlChange *const *)a)->jid, (*(MlChange *const *)b)->jid);
}

MlVerdict ml_apply_changes(const MlRoom *before, const char *actor, GPtrArray *req,
                           const MlRules *rules, MlRoom **after, GPtrArray **changes)
{
    MlAff actor_aff = ml_room_aff(before, actor);
    const char *new_owner = NULL;
    for (guint i = 0; i < req->len; i++) {
        const MlChange *c = g_ptr_array_index(req, i);
        MlAff cur = ml_room_aff(before, c->jid);
        if (c->aff == cur)
            return ML_BAD_REQUEST; /* every change must change something */
        if (c->aff == ML_OWNER) {
            if (new_owner)
                return ML_BAD_REQUEST; /* at most one owner */
            new_owner = c->jid;
        }
        if (actor_aff == ML_OWNER)
            continue;
        /* A member may leave, and invite when the service allows it. */
        gboolean leaves = c->aff == ML_NONE && strcmp(c->jid, actor) == 0;
        gboolean invites = cur == ML_NONE && c->aff == ML_MEMBER && rules->all_can_invite;
        if (!leaves && !invites)
            return ML_NOT_ALLOWED;
    }

    g_autoptr(MlRoom) r = ml_room_copy(before);
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(ml_change_free);
    const char *old_owner = ml_room_owner(before);
    for (guint i = 0; i < req->len; i++) {
        const MlChange *c = g_ptr_array_index(req, i);
        ml_room_set_aff(r, c->jid, c->aff);
        g_ptr_array_add(out, ml_change_new(c->jid, c->aff));
    }
    /* One owner at most: naming a new one demotes the old one. */
    if (new_owner && old_owner && strcmp(old_owner, new_owner) != 0 &&
        ml_room_aff(r, old_owner) == ML_OWNER) {
        ml_room_set_aff(r, old_owner, ML_MEMBER);
        g_ptr_array_add(out, ml_change_new(old_owner, ML_MEMBER));
    }
    /* The owner left without naming a successor (an owner who only
     * stepped down to member chose to leave the room without one). */
    if (old_owner && !ml_room_owner(r) && ml_room_aff(r, old_owner) == ML_NONE &&
        rules->promote_on_owner_leave && r->users->len) {
        MlUser *first = g_ptr_array_index(r->users, 0);
        first->aff = ML_OWNER;
        g_ptr_array_add(out, ml_change_new(first->jid, ML_OWNER));
    }
    g_ptr_array_sort(out, change_cmp);
    *after = g_steal_pointer(&r);
    *changes = g_steal_pointer(&out);
    return ML_OK;
}
