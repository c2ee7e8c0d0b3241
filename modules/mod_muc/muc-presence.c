/* Occupants' presence (XEP-0045 7.1-7.4, 7.6, 7.14): join, presence
 * updates, nick changes, leaving, and the broadcasts that go with them.
 * Owner worker only. */
#include "muc.h"

MucRole muc_default_role(MucRoom *room, MucAff aff)
{
    if (aff >= AFF_ADMIN)
        return ROLE_MODERATOR;
    if (room->cfg.moderated && aff < AFF_MEMBER)
        return ROLE_VISITOR;
    return ROLE_PARTICIPANT;
}

/* The presence of @o as @viewer (nullable: as anyone) sees it: the
 * user's own presence children plus <x muc#user><item/></x>. Real JIDs
 * show in non-anonymous rooms and to moderators. (transfer full) */
MkXml *muc_presence_item(MucRoom *room, MucOccupant *o, MucOccupant *viewer, gboolean leave)
{
    MkXml *p = mk_xml_new("presence", "jabber:client");
    if (leave)
        mk_xml_set_attr(p, "type", "unavailable");
    else if (o->presence) {
        for (guint i = 0; i < mk_xml_child_count(o->presence); i++) {
            MkXml *c = mk_xml_child_at(o->presence, i);
            if (mk_xml_is_text(c) || mk_xml_is(c, "x", NS_MUC) || mk_xml_is(c, "x", NS_MUC_USER))
                continue;
            mk_xml_append(p, mk_xml_ref(c));
        }
    }
    MkXml *x = mk_xml_add_child(p, "x", NS_MUC_USER);
    MkXml *item = mk_xml_add_child(x, "item", NULL);
    mk_xml_set_attr(item, "affiliation", muc_aff_name(muc_room_aff(room, o->bare)));
    mk_xml_set_attr(item, "role", leave ? "none" : muc_role_name(o->role));
    if (room->cfg.non_anonymous || (viewer && viewer->role == ROLE_MODERATOR) || viewer == o) {
        MkJid *real = o->sessions->len ? g_ptr_array_index(o->sessions, 0) : o->bare;
        mk_xml_set_attr(item, "jid", mk_jid_string(real));
    }
    return p;
}

/* Sends @xml from @from to every session of @o. */
void muc_send_to_occupant(MucOccupant *o, MkXml *xml, MkJid *from)
{
    for (guint i = 0; i < o->sessions->len; i++) {
        g_autoptr(MkStanza) st =
            mk_stanza_new_addressed(xml, from, g_ptr_array_index(o->sessions, i));
        mk_router_send(st);
    }
}

/* @xml's <x muc#user/>. (transfer none) */
static MkXml *user_x(MkXml *xml)
{
    return mk_xml_child(xml, "x", NS_MUC_USER);
}

/* Appends the children of @extra (nullable) to the <item/> of @x. */
static void add_extra(MkXml *x, MkXml *extra)
{
    MkXml *item = mk_xml_child(x, "item", NULL);
    for (guint i = 0; extra && item && i < mk_xml_child_count(extra); i++)
        mk_xml_append(item, mk_xml_ref(mk_xml_child_at(extra, i)));
}

/* Tells every occupant about @o: available, or leaving (@leave) with
 * @codes (0-terminated, nullable) in the <x/> and the children of @extra
 * (nullable: <actor/>, <reason/>) in its <item/>; @o itself gets 110 as
 * well. */
void muc_presence_broadcast(MucRoom *room, MucOccupant *o, gboolean leave, const int *codes,
                            MkXml *extra)
{
    g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MucOccupant *to = v;
        g_autoptr(MkXml) p = muc_presence_item(room, o, to, leave);
        MkXml *x = user_x(p);
        add_extra(x, extra);
        for (guint i = 0; codes && codes[i]; i++)
            muc_add_status(x, codes[i]);
        if (to == o)
            muc_add_status(x, 110);
        muc_send_to_occupant(to, p, from);
    }
    /* Not in the table any more (removed before the broadcast). */
    if (!g_hash_table_contains(room->occupants, o->nick)) {
        g_autoptr(MkXml) p = muc_presence_item(room, o, o, leave);
        MkXml *x = user_x(p);
        add_extra(x, extra);
        for (guint i = 0; codes && codes[i]; i++)
            muc_add_status(x, codes[i]);
        muc_add_status(x, 110);
        muc_send_to_occupant(o, p, from);
    }
}

/* Takes @o out of the room and tells everyone, @o included, with @codes
 * (307 kicked, 301 banned, 321/322 no longer a member); @actor
 * (nullable) and @reason (nullable) go into the item. */
void muc_occupant_remove(MucRoom *room, MucOccupant *o, const int *codes, const char *reason,
                         MucOccupant *actor)
{
    for (guint i = 0; i < o->sessions->len; i++)
        g_hash_table_remove(room->by_jid, mk_jid_string(g_ptr_array_index(o->sessions, i)));
    g_hash_table_steal(room->occupants, o->nick);
    g_autoptr(MkXml) extra = mk_xml_new("extra", NULL);
    if (actor)
        mk_xml_set_attr(mk_xml_add_child(extra, "actor", NULL), "nick", actor->nick);
    if (reason)
        mk_xml_add_text(mk_xml_add_child(extra, "reason", NULL), reason, -1);
    muc_presence_broadcast(room, o, TRUE, codes, extra);
    /* Back in, then out: the table's free function frees it. */
    g_hash_table_insert(room->occupants, o->nick, o);
    g_hash_table_remove(room->occupants, o->nick);
}

/* One session of @o leaves (7.14). The occupant goes with its last one. */
static void leave(MucRoom *room, MucOccupant *o, MkJid *real, MkStanza *st)
{
    if (o->sessions->len > 1) {
        g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
        g_autoptr(MkXml) p = muc_presence_item(room, o, o, TRUE);
        muc_add_status(user_x(p), 110);
        g_autoptr(MkStanza) out = mk_stanza_new_addressed(p, from, real);
        mk_router_send(out);
        g_hash_table_remove(room->by_jid, mk_jid_string(real));
        for (guint i = 0; i < o->sessions->len; i++)
            if (mk_jid_equal(g_ptr_array_index(o->sessions, i), real)) {
                g_ptr_array_remove_index(o->sessions, i);
                break;
            }
        return;
    }
    /* The leave carries the user's status text to the others. */
    if (o->presence)
        mk_xml_unref(o->presence);
    o->presence = mk_xml_ref(mk_stanza_xml(st));
    muc_occupant_remove(room, o, NULL, NULL, NULL);
}

static void send_subject(MucRoom *room, MkJid *to)
{
    g_autoptr(MkXml) m = mk_xml_new("message", "jabber:client");
    mk_xml_set_attr(m, "type", "groupchat");
    mk_xml_set_attr(m, "id", room->key);
    MkXml *s = mk_xml_add_child(m, "subject", NULL);
    if (room->subject)
        mk_xml_add_text(s, room->subject, -1);
    g_autoptr(MkJid) from =
        room->subject_nick ? mk_jid_with_resource(room->jid, room->subject_nick, NULL) : NULL;
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(m, from ? from : room->jid, to);
    mk_router_send(st);
}

static gint64 attr_int(MkXml *el, const char *name, gint64 dflt)
{
    const char *v = mk_xml_get_attr(el, name);
    if (!v)
        return dflt;
    gint64 n = g_ascii_strtoll(v, NULL, 10);
    return n < 0 ? 0 : n;
}

/* Discussion history (7.2.15), filtered by the <history/> the joiner
 * asked for. */
static void send_history(MucRoom *room, MkJid *to, MkXml *req)
{
    gint64 maxstanzas = G_MAXINT64, maxchars = G_MAXINT64, since_us = 0;
    if (req) {
        maxstanzas = attr_int(req, "maxstanzas", G_MAXINT64);
        maxchars = attr_int(req, "maxchars", G_MAXINT64);
        gint64 seconds = attr_int(req, "seconds", -1);
        if (seconds >= 0)
            since_us = g_get_real_time() - seconds * G_USEC_PER_SEC;
        const char *since = mk_xml_get_attr(req, "since");
        if (since) {
            g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(since, NULL);
            if (dt)
                since_us = MAX(since_us, g_date_time_to_unix(dt) * G_USEC_PER_SEC +
                                             g_date_time_get_microsecond(dt));
        }
    }
    /* Walk back from the newest to find where to start. */
    GList *start = NULL;
    gint64 n = 0, chars = 0;
    for (GList *l = room->history.tail; l; l = l->prev) {
        MucHistory *h = l->data;
        if (h->stamp_us < since_us || n + 1 > maxstanzas || chars + (gint64)h->chars > maxchars)
            break;
        n++;
        chars += h->chars;
        start = l;
    }
    for (GList *l = start; l; l = l->next) {
        MucHistory *h = l->data;
        g_autoptr(MkXml) m = mk_xml_copy_shallow(h->msg);
        MkXml *d = mk_xml_add_child(m, "delay", NS_DELAY);
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(h->stamp_us / G_USEC_PER_SEC);
        g_autofree char *stamp = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
        mk_xml_set_attr(d, "stamp", stamp);
        mk_xml_set_attr(d, "from", room->key);
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(m, h->from, to);
        mk_router_send(st);
    }
}

static gboolean nick_reserved_by_other(MucRoom *room, const char *nick, MkJid *real)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, room->affs);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        MucAffItem *a = v;
        if (a->nick && g_str_equal(a->nick, nick) && g_strcmp0(k, mk_jid_bare_string(real)))
            return TRUE;
    }
    return FALSE;
}

/* The nick @real's user reserved (7.10), or NULL. (transfer none) */
static const char *reserved_nick(MucRoom *room, MkJid *real)
{
    MucAffItem *a = g_hash_table_lookup(room->affs, mk_jid_bare_string(real));
    return a ? a->nick : NULL;
}

/* @rewritten: the room gave the joiner another nick than asked for (its
 * reserved one), which the self-presence says with status 210. */
static void join(MucRoom *room, MkStanza *st, const char *nick, gboolean rewritten)
{
    Muc *muc = room->muc;
    MkJid *real = mk_stanza_from(st);
    MkXml *mx = mk_xml_child(mk_stanza_xml(st), "x", NS_MUC);
    MucAff aff = muc_room_aff(room, real);
    gboolean created = room->locked && g_hash_table_size(room->occupants) == 0 && !room->stored &&
                       aff == AFF_OWNER;
    if (room->locked && aff != AFF_OWNER) {
        muc_error(st, MK_ERR_ITEM_NOT_FOUND, "the room is locked until its owner configures it");
        return;
    }
    if (aff == AFF_OUTCAST) {
        muc_error(st, MK_ERR_FORBIDDEN, "you are banned from this room");
        return;
    }
    MucOccupant *o = g_hash_table_lookup(room->occupants, nick);
    if (o && !mk_jid_bare_equal(o->bare, real)) {
        muc_error(st, MK_ERR_CONFLICT, "this nickname is in use");
        return;
    }
    if (!o && nick_reserved_by_other(room, nick, real)) {
        muc_error(st, MK_ERR_CONFLICT, "this nickname is reserved");
        return;
    }
    if (room->cfg.members_only && aff < AFF_MEMBER) {
        muc_error(st, MK_ERR_REGISTRATION_REQUIRED, "the room is members-only");
        return;
    }
    if (!o && room->cfg.password_protected && room->cfg.password && *room->cfg.password) {
        g_autofree char *pw = mx ? mk_xml_child_text(mx, "password", NULL) : NULL;
        if (g_strcmp0(pw, room->cfg.password)) {
            muc_error(st, MK_ERR_NOT_AUTHORIZED, "a password is required");
            return;
        }
    }
    if (!o && aff < AFF_ADMIN &&
        (gint64)g_hash_table_size(room->occupants) >= room->cfg.max_users) {
        muc_error(st, MK_ERR_SERVICE_UNAVAILABLE, "the room is full");
        return;
    }
    if (!o && !muc_joined_take(muc, real)) {
        mk_counter_add(muc->c_join_limited, 1);
        muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "you are in too many rooms");
        return;
    }
    mk_counter_add(muc->c_joins, 1);
    gboolean another_session = o != NULL;
    if (!o) {
        o = g_new0(MucOccupant, 1);
        o->muc = muc;
        o->nick = g_strdup(nick);
        o->bare = mk_jid_bare(real);
        o->sessions = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
        o->role = muc_default_role(room, aff);
        g_hash_table_insert(room->occupants, o->nick, o);
    }
    g_ptr_array_add(o->sessions, mk_jid_ref(real));
    g_hash_table_insert(room->by_jid, g_strdup(mk_jid_string(real)), o);
    if (o->presence)
        mk_xml_unref(o->presence);
    o->presence = mk_xml_ref(mk_stanza_xml(st));

    /* 1. The others' presence to the new session. */
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MucOccupant *other = v;
        if (other == o)
            continue;
        g_autoptr(MkXml) p = muc_presence_item(room, other, o, FALSE);
        g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, other->nick, NULL);
        g_autoptr(MkStanza) out = mk_stanza_new_addressed(p, from, real);
        mk_router_send(out);
    }
    /* 2. The new occupant's presence to the others (not again for a
     * second session of the same occupant). */
    g_autoptr(MkJid) self = mk_jid_with_resource(room->jid, o->nick, NULL);
    if (!another_session) {
        g_hash_table_iter_init(&it, room->occupants);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            MucOccupant *other = v;
            if (other == o)
                continue;
            g_autoptr(MkXml) p = muc_presence_item(room, o, other, FALSE);
            muc_send_to_occupant(other, p, self);
        }
    }
    /* 3. Self-presence with its status codes. */
    g_autoptr(MkXml) p = muc_presence_item(room, o, o, FALSE);
    MkXml *x = user_x(p);
    if (room->cfg.non_anonymous)
        muc_add_status(x, 100);
    muc_add_status(x, 110);
    if (room->cfg.logging && mk_archive_available(muc->mod))
        muc_add_status(x, 170);
    if (created)
        muc_add_status(x, 201);
    if (rewritten)
        muc_add_status(x, 210);
    g_autoptr(MkStanza) out = mk_stanza_new_addressed(p, self, real);
    mk_router_send(out);
    /* 4. History, 5. the subject, even an empty one (7.2.15). */
    if (!created)
        send_history(room, real, mx ? mk_xml_child(mx, "history", NULL) : NULL);
    send_subject(room, real);
}

/* A nick change (7.6): unavailable from the old nick with 303 and the
 * new nick, then available from the new one. */
static void change_nick(MucRoom *room, MucOccupant *o, MkStanza *st, const char *nick)
{
    MkJid *real = mk_stanza_from(st);
    MucOccupant *taken = g_hash_table_lookup(room->occupants, nick);
    if (taken || nick_reserved_by_other(room, nick, real)) {
        muc_error(st, MK_ERR_CONFLICT, "this nickname is in use");
        return;
    }
    g_autoptr(MkJid) old_from = mk_jid_with_resource(room->jid, o->nick, NULL);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MucOccupant *to = v;
        g_autoptr(MkXml) p = muc_presence_item(room, o, to, TRUE);
        MkXml *x = user_x(p);
        mk_xml_set_attr(mk_xml_child(x, "item", NULL), "nick", nick);
        muc_add_status(x, 303);
        if (to == o)
            muc_add_status(x, 110);
        muc_send_to_occupant(to, p, old_from);
    }
    g_hash_table_steal(room->occupants, o->nick);
    g_free(o->nick);
    o->nick = g_strdup(nick);
    g_hash_table_insert(room->occupants, o->nick, o);
    if (o->presence)
        mk_xml_unref(o->presence);
    o->presence = mk_xml_ref(mk_stanza_xml(st));
    muc_presence_broadcast(room, o, FALSE, NULL, NULL);
}

/* Owner worker: a presence to the room or an occupant's JID. */
void muc_presence(MucRoom *room, MkStanza *st)
{
    MkJid *real = mk_stanza_from(st);
    const char *nick = mk_jid_resource(mk_stanza_to(st));
    const char *type = mk_stanza_type(st);
    MucOccupant *o = g_hash_table_lookup(room->by_jid, mk_jid_string(real));
    if (type && (g_str_equal(type, "unavailable") || g_str_equal(type, "error"))) {
        if (o)
            leave(room, o, real, st);
        return;
    }
    if (type) {
        muc_error(st, MK_ERR_BAD_REQUEST, NULL);
        return;
    }
    if (!nick) {
        muc_error(st, MK_ERR_JID_MALFORMED, "a nickname is required");
        return;
    }
    if ((gint64)g_utf8_strlen(nick, -1) > room->muc->max_nick) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "nickname too long");
        return;
    }
    if (!o) {
        /* enforce_reserved_nick: a reserved nick is the user's only one. */
        const char *mine = room->muc->enforce_nick ? reserved_nick(room, real) : NULL;
        join(room, st, mine ? mine : nick, mine && g_strcmp0(mine, nick) != 0);
        return;
    }
    if (!g_str_equal(o->nick, nick)) {
        const char *mine = room->muc->enforce_nick ? reserved_nick(room, real) : NULL;
        if (mine && !g_str_equal(mine, nick)) {
            muc_error(st, MK_ERR_NOT_ACCEPTABLE, "your nickname in this room is reserved");
            return;
        }
        change_nick(room, o, st, nick);
        return;
    }
    /* A presence update: everyone sees the new show/status. */
    if (o->presence)
        mk_xml_unref(o->presence);
    o->presence = mk_xml_ref(mk_stanza_xml(st));
    muc_presence_broadcast(room, o, FALSE, NULL, NULL);
}
