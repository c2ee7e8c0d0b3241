/* mod_roster: rosters, presence subscriptions and presence broadcast
 * (RFC 6121 sections 2, 3 and 4; roster versioning, XEP-0237).
 *
 * This file holds the module instance, the per-session slot, roster
 * pushes and the helpers that send a user's presence; the protocol lives
 * in roster-iq.c and roster-presence.c, storage in roster-db.c. */
#include "roster.h"

/* The module's data: freed by the core with the module's last reference,
 * after stop() and after every callback in flight returned. */
static void roster_free(gpointer data)
{
    Roster *r = data;
    g_free(r);
}

static void slot_free(gpointer data)
{
    RosterSlot *slot = data;
    roster_preload_free(slot->preload);
    g_free(slot->subs);
    g_free(slot);
}

RosterSlot *roster_slot(Roster *r, MkSession *s)
{
    RosterSlot *slot = mk_session_get_slot(s, r->mod);
    if (slot)
        return slot;
    slot = g_new0(RosterSlot, 1);
    mk_session_set_slot(s, r->mod, slot, slot_free);
    return slot;
}

void roster_set_interested(Roster *r, MkSession *s)
{
    /* Pushes are sent from whatever thread completes a change, which may
     * not read the slot: a session flag. */
    mk_session_set_flags(s, r->mod, ROSTER_INTERESTED, ROSTER_INTERESTED);
}

MkXml *roster_item_xml(const RosterItem *item, gboolean removed)
{
    MkXml *el = mk_xml_new("item", NULL);
    mk_xml_set_attr(el, "jid", item->contact);
    if (removed) {
        mk_xml_set_attr(el, "subscription", "remove");
        return el;
    }
    if (item->name)
        mk_xml_set_attr(el, "name", item->name);
    mk_xml_set_attr(el, "subscription", roster_sub_name(item->st.sub));
    if (item->st.ask)
        mk_xml_set_attr(el, "ask", "subscribe");
    if (item->st.approved)
        mk_xml_set_attr(el, "approved", "true");
    for (guint i = 0; item->groups[i]; i++) {
        MkXml *g = mk_xml_add_child(el, "group", NULL);
        mk_xml_add_text(g, item->groups[i], -1);
    }
    return el;
}

void roster_push(Roster *r, MkJid *user, const RosterItem *item, gboolean removed, gint64 ver)
{
    g_autoptr(MkJid) bare = mk_jid_bare(user);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    g_autofree char *ver_s = g_strdup_printf("%" G_GINT64_FORMAT, ver);

    /* Every stored change comes here: tell the modules that derive
     * something from rosters. */
    mk_hook_run(r->mod, MK_HOOK_ROSTER_CHANGED, bare);

    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (!(mk_session_get_flags(s, r->mod) & ROSTER_INTERESTED))
            continue;

        g_autofree char *id = g_strdup_printf("push%u", (guint)g_atomic_int_add(&r->push_id, 1));
        g_autoptr(MkXml) iq = mk_xml_new("iq", NS_CLIENT);
        mk_xml_set_attr(iq, "type", "set");
        mk_xml_set_attr(iq, "id", id);
        MkXml *query = mk_xml_add_child(iq, "query", NS_ROSTER);
        mk_xml_set_attr(query, "ver", ver_s);
        mk_xml_append(query, roster_item_xml(item, removed));
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(iq, bare, mk_session_jid(s));
        mk_session_send(s, st);
        mk_counter_add(r->pushes, 1);
    }
}

void roster_send_presence_to(MkJid *user, MkJid *to)
{
    g_autoptr(MkJid) bare = mk_jid_bare(user);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        g_autoptr(MkStanza) last = mk_session_is_available(s) ? mk_session_last_presence(s) : NULL;
        if (!last)
            continue;
        g_autoptr(MkStanza) st =
            mk_stanza_new_addressed(mk_stanza_xml(last), mk_session_jid(s), to);
        mk_router_send(st);
    }
}

void roster_send_unavailable_to(MkJid *user, MkJid *to)
{
    g_autoptr(MkJid) bare = mk_jid_bare(user);
    g_autoptr(GPtrArray) sessions = mk_session_list(bare);
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (mk_session_is_available(s))
            roster_route_presence("unavailable", mk_session_jid(s), to);
    }
}

void roster_route_presence(const char *type, MkJid *from, MkJid *to)
{
    g_autoptr(MkXml) xml = mk_xml_new("presence", NS_CLIENT);
    if (type)
        mk_xml_set_attr(xml, "type", type);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(xml, from, to);
    mk_router_send(st);
}

static gboolean roster_start(MkModule *mod, GError **error)
{
    Roster *r = g_new0(Roster, 1);
    r->mod = mod;
    r->queue = mk_user_queue_new(mod);
    r->pushes = mk_counter_new(mod, "pushes");
    r->subscriptions = mk_counter_new(mod, "subscription_stanzas");
    r->preloads_used = mk_counter_new(mod, "preloads_used");
    r->preloads_stale = mk_counter_new(mod, "preloads_stale");
    r->subs_used = mk_counter_new(mod, "presence_subscribers_cached");
    r->subs_stale = mk_counter_new(mod, "presence_subscribers_stale");
    r->limit_refusals = mk_counter_new(mod, "limit_refusals");
    r->max_items = mk_config_get_int(mod, "max_items");
    r->max_groups = mk_config_get_int(mod, "max_groups");
    r->max_text = mk_config_get_int(mod, "max_text_length");
    r->max_bytes = mk_config_get_int(mod, "max_bytes");
    mk_module_set_data(mod, r, roster_free);

    static const MkRosterFuncs service = {
        .contacts = roster_db_contacts,
        .relation = roster_db_relation,
        .presence_subscribers = roster_db_presence_subscribers,
    };
    if (!roster_iq_start(r, error) || !mk_roster_register(mod, &service, r, error) ||
        !roster_admin_start(r, error))
        return FALSE;
    roster_presence_start(r);
    roster_preload_start(r);
    /* XEP-0237 versioning and RFC 6121 3.4 pre-approval, after SASL. */
    mk_stream_feature_add(mod, MK_STREAM_POST_AUTH, "<ver xmlns='urn:xmpp:features:rosterver'/>");
    mk_stream_feature_add(mod, MK_STREAM_POST_AUTH,
                          "<sub xmlns='urn:xmpp:features:pre-approval'/>");
    return TRUE;
}

/* Per-user caps (docs/security.md). max_bytes stays at most 1.25 Mi so
 * that a roster result, at most 6 bytes a character, fits the 8 MiB a
 * connection may queue. */
static const MkConfigKey roster_keys[] = {
    {"max_items", MK_CONFIG_INT, "1000", 1, 100000,
     "roster rows of a user (items and requests waiting for an answer)"},
    {"max_groups", MK_CONFIG_INT, "32", 1, 1000, "groups of one roster item"},
    {"max_text_length", MK_CONFIG_INT, "1023", 1, 1023,
     "bytes of an item's name or of a group's name"},
    {"max_bytes", MK_CONFIG_INT, "1048576", 1024, 1310720,
     "size of a user's roster (characters plus the markup of each item and group)"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_roster",
    .version = "1.0",
    .config_keys = roster_keys,
    .migrations = roster_migrations,
    .start = roster_start,
};
