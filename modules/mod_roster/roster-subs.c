/* The session's list of the user's subscribers, so that a presence
 * change after initial presence (away, available again, the unavailable
 * at logout) is routed without reading the roster: before, each one was
 * a hand-off to the storage pool, a transaction and a read of every row.
 *
 * Only the subscribers' bare JIDs are kept, in one allocation ("a@x\0b@y\0\0"),
 * NULL when there is none: every idle session holds one. The list is
 * valid for one value of the stripe's writes_queued (roster-preload.c):
 * any roster write of the user, from this session, another resource or a
 * contact's subscription stanza, changes that count when it is pushed,
 * and the next broadcast then reads the roster in the user queue again
 * (roster-presence.c) and refreshes the list from that read. */
#include "roster.h"

void roster_subs_store(RosterSlot *slot, GPtrArray *items, gint queued)
{
    GString *buf = NULL;
    for (guint i = 0; i < items->len; i++) {
        RosterItem *item = g_ptr_array_index(items, i);
        if (!(item->st.sub & ROSTER_SUB_FROM))
            continue;
        if (!buf)
            buf = g_string_new(NULL);
        g_string_append_len(buf, item->contact, strlen(item->contact) + 1);
    }
    g_free(slot->subs);
    /* The terminating empty string: GString's own NUL. */
    slot->subs = buf ? g_string_free(buf, FALSE) : NULL;
    slot->subs_queued = queued;
    slot->subs_valid = TRUE;
}

gboolean roster_subs_current(Roster *r, RosterSlot *slot, MkSession *s)
{
    if (!slot->subs_valid || mk_cluster_active()) /* other nodes write rosters too */
        return FALSE;
    g_autoptr(MkJid) user = mk_jid_bare(mk_session_jid(s));
    if (roster_writes_queued(r, user) != slot->subs_queued) {
        g_debug("mod_roster: presence of %s: the session's list of subscribers is stale",
                mk_jid_string(mk_session_jid(s)));
        mk_counter_add(r->subs_stale, 1);
        slot->subs_valid = FALSE;
        g_clear_pointer(&slot->subs, g_free);
        return FALSE;
    }
    g_debug("mod_roster: presence of %s from the session's list of subscribers",
            mk_jid_string(mk_session_jid(s)));
    mk_counter_add(r->subs_used, 1);
    return TRUE;
}

void roster_subs_send(const char *subs, MkJid *from, MkStanza *stanza)
{
    for (const char *p = subs; p && *p; p += strlen(p) + 1) {
        g_autoptr(MkJid) contact = mk_jid_new(p, NULL);
        if (!contact)
            continue;
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(mk_stanza_xml(stanza), from, contact);
        mk_router_send(st);
    }
}
