/* The roster managing service (mk-roster.h, "roster-admin"): what an
 * administration or client API does to a roster goes through the same
 * operations as the user's own client (roster sets, subscription
 * presence), so pushes, presence and the state machine follow. */
#include "roster.h"

static const char *ask_name(const RosterState *st)
{
    if (st->ask && st->pending_in)
        return "both";
    return st->ask ? "out" : st->pending_in ? "in" : "none";
}

/* Storage thread, inside the caller's job. */
static gboolean admin_items(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                            GError **error)
{
    g_autoptr(GPtrArray) items = NULL;
    if (!roster_db_load_all(conn, user, &items, error))
        return FALSE;
    for (guint i = 0; i < items->len; i++) {
        RosterItem *item = g_ptr_array_index(items, i);
        if (!item->st.in_roster)
            continue;
        MkRosterContact *c = g_new0(MkRosterContact, 1);
        c->jid = g_strdup(item->contact);
        c->name = g_strdup(item->name);
        c->subscription = roster_sub_name(item->st.sub);
        c->ask = ask_name(&item->st);
        g_ptr_array_add(out, c);
    }
    return TRUE;
}

/* Worker. */
static void admin_set_item(gpointer data, MkJid *user, MkJid *contact, const char *name,
                           gboolean remove, MkRosterDone done, gpointer user_data,
                           GDestroyNotify destroy)
{
    g_autoptr(MkJid) bare = mk_jid_bare(contact);
    RosterItem *want = roster_item_new(mk_jid_string(bare));
    want->name = name && *name ? g_strdup(name) : NULL;
    roster_set_item(data, user, want, remove, done, user_data, destroy);
}

/* Worker. */
static void admin_subscription(gpointer data, MkJid *user, MkJid *contact, const char *type)
{
    RosterPresType t;
    if (roster_pres_type_parse(type, &t))
        roster_user_subscription(data, user, contact, t);
}

gboolean roster_admin_start(Roster *r, GError **error)
{
    static const MkRosterAdminFuncs funcs = {
        .items = admin_items,
        .set_item = admin_set_item,
        .subscription = admin_subscription,
    };
    return mk_roster_admin_register(r->mod, &funcs, r, error);
}
