/* The roster read at authentication (the core's auth_preload hook), so
 * that a client's first roster get and its initial presence need no
 * storage round trip of their own: on a login they were the second
 * hand-off to a thread pool, after the credentials (docs/benchmarks.md).
 *
 * What was read may be stale when it is used: a roster write for the
 * same user (another resource's roster set, a subscription stanza) may
 * come in between. Every write counts itself in one of ROSTER_STRIPES
 * pairs of counters, picked by the user's bare JID: "queued" when it is
 * pushed to the user's queue, "running" until its op is freed, after its
 * transaction committed. A preload is read only when no write of its
 * stripe is running (so every earlier write is visible to the read) and
 * used only while "queued" is what it was before the read (so no write
 * came after). Users sharing a stripe only cost each other a read on the
 * storage pool, as before. */
#include "roster.h"

struct RosterPreload {
    guint stripe;
    gint queued; /* the stripe's count before the read */
    gint64 ver;
    GPtrArray *items; /* of RosterItem, as roster_db_load_all */
};

static guint stripe_of(MkJid *user)
{
    return g_str_hash(mk_jid_string(user)) % ROSTER_STRIPES;
}

void roster_write_begin(Roster *r, MkJid *user)
{
    guint i = stripe_of(user);
    g_atomic_int_inc(&r->writes_running[i]);
    g_atomic_int_inc(&r->writes_queued[i]);
}

void roster_write_end(Roster *r, MkJid *user)
{
    g_atomic_int_add(&r->writes_running[stripe_of(user)], -1);
}

gint roster_writes_queued(Roster *r, MkJid *user)
{
    return g_atomic_int_get(&r->writes_queued[stripe_of(user)]);
}

gboolean roster_writes_running(Roster *r, MkJid *user)
{
    return g_atomic_int_get(&r->writes_running[stripe_of(user)]) > 0;
}

void roster_preload_free(RosterPreload *p)
{
    if (!p)
        return;
    if (p->items)
        g_ptr_array_unref(p->items);
    g_free(p);
}

/* auth_preload, on the auth pool: From = the account. */
static MkResult on_auth_preload(MkHookCall *call, gpointer user_data)
{
    Roster *r = user_data;
    MkJid *user = mk_hook_call_from(call);
    g_autoptr(RosterPreload) p = g_new0(RosterPreload, 1);
    p->stripe = stripe_of(user);
    p->queued = g_atomic_int_get(&r->writes_queued[p->stripe]);
    if (g_atomic_int_get(&r->writes_running[p->stripe]) > 0)
        return MK_PASS; /* read later, in order, on the storage pool */
    g_autoptr(GError) error = NULL;
    MkDbConn *conn = mk_hook_call_db(call);
    if (!roster_db_version(conn, user, &p->ver, &error) ||
        !roster_db_load_all(conn, user, &p->items, &error)) {
        g_debug("mod_roster: no roster read at authentication for %s: %s", mk_jid_string(user),
                error->message);
        return MK_PASS;
    }
    mk_hook_call_set_preload(call, g_steal_pointer(&p), (GDestroyNotify)roster_preload_free);
    return MK_PASS;
}

const RosterPreload *roster_preload_get(Roster *r, MkSession *s, const char *purpose)
{
    RosterSlot *slot = roster_slot(r, s);
    if (!slot->preload_taken) {
        slot->preload_taken = TRUE;
        slot->preload = mk_session_take_preload(s, r->mod);
    }
    RosterPreload *p = slot->preload;
    if (!p)
        return NULL;
    if (g_atomic_int_get(&r->writes_queued[p->stripe]) != p->queued) {
        g_debug("mod_roster: %s of %s: the roster read at authentication is stale", purpose,
                mk_jid_string(mk_session_jid(s)));
        mk_counter_add(r->preloads_stale, 1);
        g_clear_pointer(&slot->preload, roster_preload_free);
        return NULL;
    }
    g_debug("mod_roster: %s of %s from the roster read at authentication", purpose,
            mk_jid_string(mk_session_jid(s)));
    mk_counter_add(r->preloads_used, 1);
    return p;
}

void roster_preload_drop(Roster *r, MkSession *s)
{
    RosterSlot *slot = roster_slot(r, s);
    slot->preload_taken = TRUE;
    g_clear_pointer(&slot->preload, roster_preload_free);
}

gint64 roster_preload_version(const RosterPreload *p)
{
    return p->ver;
}

gint roster_preload_queued(const RosterPreload *p)
{
    return p->queued;
}

GPtrArray *roster_preload_items(const RosterPreload *p)
{
    return p->items;
}

void roster_preload_start(Roster *r)
{
    mk_hook_add(r->mod, MK_HOOK_AUTH_PRELOAD, 0, on_auth_preload, r);
}
