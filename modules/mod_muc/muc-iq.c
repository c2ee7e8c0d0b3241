/* IQs at a room (XEP-0045 9, 10; XEP-0410; XEP-0313 at the room) and at
 * the service (disco). Room IQs run on the owner worker; service IQs on
 * any worker. */
#include "muc.h"

static void reply(MkStanza *st, MkXml *payload)
{
    g_autoptr(MkXml) iq = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(iq, "type", "result");
    if (mk_stanza_id(st))
        mk_xml_set_attr(iq, "id", mk_stanza_id(st));
    if (payload)
        mk_xml_append(iq, payload);
    g_autoptr(MkStanza) out = mk_stanza_new_addressed(iq, mk_stanza_to(st), mk_stanza_from(st));
    mk_router_send(out);
}

#define B(x) ((x) ? "1" : "0")

/* Owner: the configuration form was submitted (10.2, 10.1.2). */
static void owner_submit(MucRoom *room, MkStanza *st, MkXml *x)
{
    MucConfig cfg;
    muc_config_copy(&cfg, &room->cfg);
    const char *why = NULL;
    if (!muc_config_apply_form(&cfg, x, room->muc->max_users, room->muc->max_history, &why)) {
        muc_config_clear(&cfg);
        g_autofree char *text = g_strdup_printf("bad value for %s", why ? why : "a field");
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, text);
        return;
    }
    gboolean was_locked = room->locked;
    gboolean became_members_only = cfg.members_only && !room->cfg.members_only;
    gboolean whois_changed = cfg.non_anonymous != room->cfg.non_anonymous;
    muc_config_clear(&room->cfg);
    room->cfg = cfg;
    room->locked = FALSE;
    reply(st, NULL);
    if (became_members_only) {
        /* 9.3 / 10.2: occupants without membership leave with 322. */
        static const int codes[] = {322, 0};
        g_autoptr(GPtrArray) all = muc_room_occupants(room);
        for (guint i = 0; i < all->len; i++) {
            MucOccupant *o = g_ptr_array_index(all, i);
            if (muc_room_aff(room, o->bare) < AFF_MEMBER)
                muc_occupant_remove(room, o, codes, NULL, NULL);
        }
    }
    if (!was_locked) {
        int codes[] = {104, 0, 0};
        if (whois_changed)
            codes[1] = room->cfg.non_anonymous ? 172 : 173;
        muc_status_message(room, codes);
    }
    muc_room_summary(room, FALSE);
    muc_room_changed(room);
}

static void admin_iq(MucRoom *room, MkStanza *st, MkXml *q, MucAff aff, MucOccupant *self,
                     const char *ns);

static void owner_iq(MucRoom *room, MkStanza *st, MkXml *q, MucAff aff, MucOccupant *self)
{
    gboolean set = g_strcmp0(mk_stanza_type(st), "set") == 0;
    if (aff != AFF_OWNER) {
        muc_error(st, MK_ERR_FORBIDDEN, "only owners configure the room");
        return;
    }
    /* Owner and admin lists in muc#owner, as earlier versions of the XEP
     * had them: handled as in muc#admin. */
    if (mk_xml_child(q, "item", NULL)) {
        admin_iq(room, st, q, aff, self, NS_MUC_OWNER);
        return;
    }
    if (!set) {
        MkXml *out = mk_xml_new("query", NS_MUC_OWNER);
        mk_xml_append(out, muc_config_form(&room->cfg));
        reply(st, out);
        return;
    }
    MkXml *destroy = mk_xml_child(q, "destroy", NULL);
    if (destroy) {
        g_autofree char *reason = mk_xml_child_text(destroy, "reason", NULL);
        const char *alt = mk_xml_get_attr(destroy, "jid");
        if (alt) {
            g_autoptr(MkJid) altj = mk_jid_new(alt, NULL);
            if (!altj) {
                muc_error(st, MK_ERR_BAD_REQUEST, "the alternate venue is not a JID");
                return;
            }
        }
        reply(st, NULL);
        muc_room_destroy(room, alt, reason);
        return;
    }
    MkXml *x = mk_xml_child(q, "x", NS_DATA);
    if (!x) {
        muc_error(st, MK_ERR_BAD_REQUEST, NULL);
        return;
    }
    const char *type = mk_xml_get_attr(x, "type");
    if (!g_strcmp0(type, "cancel")) {
        reply(st, NULL);
        /* Cancelling the initial configuration destroys the new room. */
        if (room->locked) {
            muc_room_destroy(room, NULL, NULL);
        }
        return;
    }
    if (g_strcmp0(type, "submit")) {
        muc_error(st, MK_ERR_BAD_REQUEST, "a form of type submit or cancel");
        return;
    }
    owner_submit(room, st, x);
}

/* muc#admin: lists and changes of roles and affiliations (9, 10). */

static MucOccupant *by_nick(MucRoom *room, const char *nick)
{
    return nick ? g_hash_table_lookup(room->occupants, nick) : NULL;
}

static void admin_get(MucRoom *room, MkStanza *st, MkXml *item, MucAff aff, MucOccupant *self,
                      const char *ns)
{
    const char *aff_s = mk_xml_get_attr(item, "affiliation");
    const char *role_s = mk_xml_get_attr(item, "role");
    MucAff want_aff;
    MucRole want_role;
    MkXml *out = mk_xml_new("query", ns);
    if (aff_s && muc_aff_parse(aff_s, &want_aff) && want_aff != AFF_NONE) {
        if (aff < AFF_ADMIN) {
            mk_xml_unref(out);
            muc_error(st, MK_ERR_FORBIDDEN, "admins and owners see affiliation lists");
            return;
        }
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, room->affs);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            MucAffItem *a = v;
            if (a->aff != want_aff)
                continue;
            MkXml *i = mk_xml_add_child(out, "item", NULL);
            mk_xml_set_attr(i, "affiliation", muc_aff_name(a->aff));
            mk_xml_set_attr(i, "jid", k);
            if (a->nick)
                mk_xml_set_attr(i, "nick", a->nick);
            if (a->reason)
                mk_xml_add_text(mk_xml_add_child(i, "reason", NULL), a->reason, -1);
        }
    } else if (role_s && muc_role_parse(role_s, &want_role) && want_role != ROLE_NONE) {
        if (!self || self->role < ROLE_MODERATOR) {
            mk_xml_unref(out);
            muc_error(st, MK_ERR_FORBIDDEN, "moderators see role lists");
            return;
        }
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, room->occupants);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            MucOccupant *o = v;
            if (o->role != want_role)
                continue;
            MkXml *i = mk_xml_add_child(out, "item", NULL);
            mk_xml_set_attr(i, "role", muc_role_name(o->role));
            mk_xml_set_attr(i, "affiliation", muc_aff_name(muc_room_aff(room, o->bare)));
            mk_xml_set_attr(i, "nick", o->nick);
            mk_xml_set_attr(i, "jid", mk_jid_string(g_ptr_array_index(o->sessions, 0)));
        }
    } else {
        mk_xml_unref(out);
        muc_error(st, MK_ERR_BAD_REQUEST, "ask for one affiliation or one role");
        return;
    }
    reply(st, out);
}

/* Checks one item of a muc#admin set; NULL when allowed, else the error
 * (and its text in @why). */
static gboolean admin_check(MucRoom *room, MkXml *item, MucAff actor_aff, MucOccupant *self,
                            MkStanzaError *cond, const char **why)
{
    const char *aff_s = mk_xml_get_attr(item, "affiliation");
    const char *role_s = mk_xml_get_attr(item, "role");
    const char *nick = mk_xml_get_attr(item, "nick");
    const char *jid_s = mk_xml_get_attr(item, "jid");
    *cond = MK_ERR_BAD_REQUEST;
    if (!!aff_s == !!role_s) {
        *why = "an item changes either a role or an affiliation";
        return FALSE;
    }
    if (role_s) {
        MucRole role;
        if (!muc_role_parse(role_s, &role) || !nick) {
            *why = "a role change names a known role and an occupant's nick";
            return FALSE;
        }
        MucOccupant *target = by_nick(room, nick);
        if (!self || self->role < ROLE_MODERATOR) {
            *cond = MK_ERR_FORBIDDEN;
            *why = "only moderators change roles";
            return FALSE;
        }
        if (!target) {
            *cond = MK_ERR_ITEM_NOT_FOUND;
            *why = "no such occupant";
            return FALSE;
        }
        MucAff taff = muc_room_aff(room, target->bare);
        if (role == ROLE_MODERATOR && actor_aff < AFF_ADMIN) {
            *cond = MK_ERR_FORBIDDEN;
            *why = "only admins grant moderation";
            return FALSE;
        }
        if (role < ROLE_MODERATOR && (taff >= AFF_ADMIN || taff > actor_aff)) {
            *cond = MK_ERR_NOT_ALLOWED;
            *why = "an admin or owner keeps their role";
            return FALSE;
        }
        return TRUE;
    }
    MucAff aff;
    if (!muc_aff_parse(aff_s, &aff) || (!jid_s && !nick)) {
        *why = "an affiliation change names a known affiliation and a JID";
        return FALSE;
    }
    g_autoptr(MkJid) jid = jid_s ? mk_jid_new(jid_s, NULL) : NULL;
    MucOccupant *target = by_nick(room, nick);
    if (!jid && !target) {
        *cond = jid_s ? MK_ERR_BAD_REQUEST : MK_ERR_ITEM_NOT_FOUND;
        *why = "no such JID or occupant";
        return FALSE;
    }
    MucAff taff = muc_room_aff(room, jid ? jid : target->bare);
    if (actor_aff < AFF_ADMIN) {
        *cond = MK_ERR_FORBIDDEN;
        *why = "only admins and owners change affiliations";
        return FALSE;
    }
    if (actor_aff == AFF_ADMIN && (aff >= AFF_ADMIN || taff >= AFF_ADMIN)) {
        *cond = MK_ERR_FORBIDDEN;
        *why = "only owners change admins and owners";
        return FALSE;
    }
    return TRUE;
}

static int owner_count(MucRoom *room)
{
    int n = 0;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->affs);
    while (g_hash_table_iter_next(&it, NULL, &v))
        n += ((MucAffItem *)v)->aff == AFF_OWNER;
    return n;
}

/* Applies a checked item. */
static void admin_apply(MucRoom *room, MkXml *item, MucOccupant *actor)
{
    const char *aff_s = mk_xml_get_attr(item, "affiliation");
    const char *role_s = mk_xml_get_attr(item, "role");
    const char *nick = mk_xml_get_attr(item, "nick");
    const char *jid_s = mk_xml_get_attr(item, "jid");
    g_autofree char *reason = mk_xml_child_text(item, "reason", NULL);
    if (role_s) {
        MucRole role;
        muc_role_parse(role_s, &role);
        MucOccupant *o = by_nick(room, nick);
        if (!o)
            return; /* an earlier item of the request removed it */
        if (role == ROLE_NONE) {
            static const int kicked[] = {307, 0};
            muc_occupant_remove(room, o, kicked, reason, actor);
        } else if (o->role != role) {
            o->role = role;
            muc_presence_broadcast(room, o, FALSE, NULL, NULL);
        }
        return;
    }
    MucAff aff;
    muc_aff_parse(aff_s, &aff);
    g_autoptr(MkJid) jid = jid_s ? mk_jid_new(jid_s, NULL) : NULL;
    MucOccupant *target = by_nick(room, nick);
    if (!jid && !target)
        return; /* an earlier item of the request removed it */
    if (!jid)
        jid = mk_jid_ref(target->bare);
    g_autoptr(MkJid) bare = mk_jid_bare(jid);
    muc_room_set_aff(room, mk_jid_bare_string(bare), aff, reason);
    /* Occupants of that user see the change, or leave (9.1, 9.4, 9.8). */
    g_autoptr(GPtrArray) all = muc_room_occupants(room);
    for (guint i = 0; i < all->len; i++) {
        MucOccupant *o = g_ptr_array_index(all, i);
        if (!mk_jid_bare_equal(o->bare, bare))
            continue;
        if (aff == AFF_OUTCAST) {
            static const int banned[] = {301, 0};
            muc_occupant_remove(room, o, banned, reason, actor);
        } else if (room->cfg.members_only && aff < AFF_MEMBER) {
            static const int removed[] = {321, 0};
            muc_occupant_remove(room, o, removed, reason, actor);
        } else {
            o->role = muc_default_role(room, aff);
            muc_presence_broadcast(room, o, FALSE, NULL, NULL);
        }
    }
}

static void admin_iq(MucRoom *room, MkStanza *st, MkXml *q, MucAff aff, MucOccupant *self,
                     const char *ns)
{
    MkXml *first = mk_xml_child(q, "item", NULL);
    if (!first) {
        muc_error(st, MK_ERR_BAD_REQUEST, "no item");
        return;
    }
    if (g_strcmp0(mk_stanza_type(st), "get") == 0) {
        admin_get(room, st, first, aff, self, ns);
        return;
    }
    /* All items are checked before any is applied. */
    int owners_left = owner_count(room);
    for (guint i = 0; i < mk_xml_child_count(q); i++) {
        MkXml *item = mk_xml_child_at(q, i);
        if (!mk_xml_is(item, "item", NULL))
            continue;
        MkStanzaError cond;
        const char *why = NULL;
        if (!admin_check(room, item, aff, self, &cond, &why)) {
            muc_error(st, cond, why);
            return;
        }
        const char *aff_s = mk_xml_get_attr(item, "affiliation");
        const char *jid_s = mk_xml_get_attr(item, "jid");
        g_autoptr(MkJid) jid = jid_s ? mk_jid_new(jid_s, NULL) : NULL;
        MucOccupant *t = by_nick(room, mk_xml_get_attr(item, "nick"));
        if (aff_s && !g_str_equal(aff_s, "owner") &&
            muc_room_aff(room, jid ? jid : t->bare) == AFF_OWNER && --owners_left < 1) {
            muc_error(st, MK_ERR_CONFLICT, "a room keeps at least one owner");
            return;
        }
    }
    /* New affiliations beyond the room's bound are refused as a whole. */
    guint added = 0;
    for (guint i = 0; i < mk_xml_child_count(q); i++) {
        MkXml *item = mk_xml_child_at(q, i);
        const char *aff_s =
            mk_xml_is(item, "item", NULL) ? mk_xml_get_attr(item, "affiliation") : NULL;
        const char *jid_s = aff_s ? mk_xml_get_attr(item, "jid") : NULL;
        MucOccupant *t = aff_s ? by_nick(room, mk_xml_get_attr(item, "nick")) : NULL;
        g_autoptr(MkJid) jid = jid_s ? mk_jid_new(jid_s, NULL) : t ? mk_jid_ref(t->bare) : NULL;
        added += jid && g_strcmp0(aff_s, "none") &&
                 !g_hash_table_contains(room->affs, mk_jid_bare_string(jid));
    }
    if (added && (gint64)(g_hash_table_size(room->affs) + added) > room->muc->max_affs) {
        mk_counter_add(room->muc->c_limited, 1);
        muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "the room has too many affiliations");
        return;
    }
    reply(st, NULL);
    gboolean affs_changed = FALSE;
    for (guint i = 0; i < mk_xml_child_count(q); i++) {
        MkXml *item = mk_xml_child_at(q, i);
        if (!mk_xml_is(item, "item", NULL))
            continue;
        affs_changed |= mk_xml_get_attr(item, "affiliation") != NULL;
        /* Looked up again: an earlier item may have removed the actor. */
        MucOccupant *actor = g_hash_table_lookup(room->by_jid, mk_jid_string(mk_stanza_from(st)));
        admin_apply(room, item, actor);
    }
    if (affs_changed)
        muc_room_changed(room);
}

#define NS_REGISTER "jabber:iq:register"

/* The reserved nick of @real's bare JID, or NULL. (transfer none) */
static const char *reserved_nick(MucRoom *room, MkJid *real)
{
    MucAffItem *a = g_hash_table_lookup(room->affs, mk_jid_bare_string(real));
    return a ? a->nick : NULL;
}

/* Registering with the room (7.10): the form, or a submitted nick that
 * is reserved for the user, who becomes a member. */
static void register_iq(MucRoom *room, MkStanza *st, MkXml *q, MucAff aff)
{
    MkJid *real = mk_stanza_from(st);
    if (aff == AFF_OUTCAST) {
        muc_error(st, MK_ERR_FORBIDDEN, "you are banned from this room");
        return;
    }
    if (g_strcmp0(mk_stanza_type(st), "get") == 0) {
        MkXml *out = mk_xml_new("query", NS_REGISTER);
        const char *nick = reserved_nick(room, real);
        if (nick) {
            mk_xml_add_child(out, "registered", NULL);
            mk_xml_add_text(mk_xml_add_child(out, "username", NULL), nick, -1);
        } else {
            MkXml *x = mk_xml_add_child(out, "x", NS_DATA);
            mk_xml_set_attr(x, "type", "form");
            mk_xml_add_text(mk_xml_add_child(x, "title", NULL), "Nickname registration", -1);
            muc_form_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC "#register");
            muc_form_field(x, "muc#register_roomnick", "text-single", "Nickname", NULL);
        }
        reply(st, out);
        return;
    }
    MkXml *x = mk_xml_child(q, "x", NS_DATA);
    g_autofree char *nick = NULL;
    for (guint i = 0; x && i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        if (mk_xml_is(f, "field", NULL) &&
            !g_strcmp0(mk_xml_get_attr(f, "var"), "muc#register_roomnick"))
            nick = mk_xml_child_text(f, "value", NULL);
    }
    if (!nick || !*nick || (gint64)g_utf8_strlen(nick, -1) > room->muc->max_nick) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "a nickname of the allowed length is required");
        return;
    }
    g_autoptr(MkJid) check = mk_jid_with_resource(room->jid, nick, NULL);
    if (!check) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "not a valid nickname");
        return;
    }
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, room->affs);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        MucAffItem *a = v;
        if (a->nick && g_str_equal(a->nick, mk_jid_resource(check)) &&
            g_strcmp0(k, mk_jid_bare_string(real))) {
            muc_error(st, MK_ERR_CONFLICT, "this nickname is reserved");
            return;
        }
    }
    MucOccupant *o = g_hash_table_lookup(room->occupants, mk_jid_resource(check));
    if (o && !mk_jid_bare_equal(o->bare, real)) {
        muc_error(st, MK_ERR_CONFLICT, "this nickname is in use");
        return;
    }
    if (aff == AFF_NONE && (gint64)g_hash_table_size(room->affs) >= room->muc->max_affs) {
        mk_counter_add(room->muc->c_limited, 1);
        muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "the room has too many affiliations");
        return;
    }
    if (aff == AFF_NONE)
        muc_room_set_aff(room, mk_jid_bare_string(real), AFF_MEMBER, NULL);
    MucAffItem *a = g_hash_table_lookup(room->affs, mk_jid_bare_string(real));
    g_free(a->nick);
    a->nick = g_strdup(mk_jid_resource(check));
    reply(st, NULL);
    muc_room_changed(room);
}

/* disco#info of the room (6.4) with the muc#roominfo form. */
static void room_info(MucRoom *room, MkStanza *st, MkXml *req)
{
    MucConfig *c = &room->cfg;
    MkXml *q = mk_xml_new("query", NS_DISCO_INFO);
    if (!g_strcmp0(mk_xml_get_attr(req, "node"), "x-roomuser-item")) {
        /* The asker's reserved nick (7.12). */
        mk_xml_set_attr(q, "node", "x-roomuser-item");
        const char *nick = reserved_nick(room, mk_stanza_from(st));
        if (nick) {
            MkXml *id = mk_xml_add_child(q, "identity", NULL);
            mk_xml_set_attr(id, "category", "conference");
            mk_xml_set_attr(id, "type", "text");
            mk_xml_set_attr(id, "name", nick);
        }
        reply(st, q);
        return;
    }
    MkXml *id = mk_xml_add_child(q, "identity", NULL);
    mk_xml_set_attr(id, "category", "conference");
    mk_xml_set_attr(id, "type", "text");
    mk_xml_set_attr(id, "name", *c->title ? c->title : mk_jid_node(room->jid));
    const char *features[] = {
        NS_MUC,
        NS_DISCO_INFO,
        NS_REGISTER,
        "http://jabber.org/protocol/muc#stable_id",
        "http://jabber.org/protocol/muc#self-ping-optimization",
        c->public_room ? "muc_public" : "muc_hidden",
        c->persistent ? "muc_persistent" : "muc_temporary",
        c->members_only ? "muc_membersonly" : "muc_open",
        c->moderated ? "muc_moderated" : "muc_unmoderated",
        c->password_protected ? "muc_passwordprotected" : "muc_unsecured",
        c->non_anonymous ? "muc_nonanonymous" : "muc_semianonymous",
        c->logging && mk_archive_available(room->muc->mod) ? NS_MAM : NULL,
    };
    for (guint i = 0; i < G_N_ELEMENTS(features); i++)
        if (features[i])
            mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", features[i]);
    MkXml *x = mk_xml_add_child(q, "x", NS_DATA);
    mk_xml_set_attr(x, "type", "result");
    muc_form_field(x, "FORM_TYPE", "hidden", NULL, "http://jabber.org/protocol/muc#roominfo");
    muc_form_field(x, "muc#roominfo_description", NULL, "Description", c->description);
    char buf[16];
    g_snprintf(buf, sizeof buf, "%u", g_hash_table_size(room->occupants));
    muc_form_field(x, "muc#roominfo_occupants", NULL, "Occupants", buf);
    muc_form_field(x, "muc#roominfo_subject", NULL, "Subject", room->subject ? room->subject : "");
    muc_form_field(x, "muc#roomconfig_roomname", NULL, "Name", c->title);
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, c->max_users);
    muc_form_field(x, "muc#roomconfig_maxusers", NULL, "Maximum occupants", buf);
    muc_form_field(x, "muc#roomconfig_allowinvites", NULL, NULL, B(c->allow_invites));
    muc_form_field(x, "muc#roomconfig_changesubject", NULL, NULL, B(c->change_subject));
    reply(st, q);
}

static void forward_iq(MucRoom *room, MkStanza *st, MucOccupant *self, const char *nick);

static void occupant_iq(MucRoom *room, MkStanza *st, MucOccupant *self)
{
    const char *nick = mk_jid_resource(mk_stanza_to(st));
    MkXml *ping = mk_xml_child(mk_stanza_xml(st), "ping", NS_PING);
    /* XEP-0410: a client checks it is still joined by pinging its nick. */
    if (!self) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "you are not an occupant");
        return;
    }
    if (!g_hash_table_contains(room->occupants, nick)) {
        muc_error(st, MK_ERR_ITEM_NOT_FOUND, "no such occupant");
        return;
    }
    if (ping && g_strcmp0(mk_stanza_type(st), "get") == 0) {
        reply(st, NULL);
        return;
    }
    forward_iq(room, st, self, nick);
}

/* An IQ between occupants (a vCard request to room/nick, its answer):
 * sent on to the other occupant's first session from room/sendernick,
 * under the same id, so that the answer finds its way back the same
 * way. Real JIDs stay hidden. */
static void forward_iq(MucRoom *room, MkStanza *st, MucOccupant *self, const char *nick)
{
    MucOccupant *target = g_hash_table_lookup(room->occupants, nick);
    if (!target || !target->sessions->len)
        return;
    g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, self->nick, NULL);
    g_autoptr(MkXml) out = mk_xml_copy_shallow(mk_stanza_xml(st));
    g_autoptr(MkStanza) fwd =
        mk_stanza_new_addressed(out, from, g_ptr_array_index(target->sessions, 0));
    mk_router_send(fwd);
}

/* Owner worker: an IQ to the room or an occupant. */
void muc_room_iq(MucRoom *room, MkStanza *st)
{
    const char *type = mk_stanza_type(st);
    MkJid *real = mk_stanza_from(st);
    MucOccupant *self = g_hash_table_lookup(room->by_jid, mk_jid_string(real));
    if (!type || (g_strcmp0(type, "get") && g_strcmp0(type, "set"))) {
        /* A result or an error: an occupant answering a forwarded IQ
         * (the room itself asks nothing). */
        const char *nick = mk_jid_resource(mk_stanza_to(st));
        if (self && nick && type)
            forward_iq(room, st, self, nick);
        return;
    }
    MucAff aff = muc_room_aff(room, real);
    if (mk_jid_resource(mk_stanza_to(st))) {
        occupant_iq(room, st, self);
        return;
    }
    MkXml *xml = mk_stanza_xml(st);
    MkXml *q = NULL;
    for (guint i = 0; i < mk_xml_child_count(xml) && !q; i++)
        if (!mk_xml_is_text(mk_xml_child_at(xml, i)))
            q = mk_xml_child_at(xml, i);
    if (!q) {
        muc_error(st, MK_ERR_BAD_REQUEST, NULL);
        return;
    }
    gboolean get = g_str_equal(type, "get");
    if (room->locked && aff != AFF_OWNER) {
        muc_error(st, MK_ERR_ITEM_NOT_FOUND, "the room is locked");
        return;
    }
    if (mk_xml_is(q, "query", NS_MUC_OWNER)) {
        owner_iq(room, st, q, aff, self);
    } else if (mk_xml_is(q, "query", NS_MUC_ADMIN)) {
        admin_iq(room, st, q, aff, self, NS_MUC_ADMIN);
    } else if (get && mk_xml_is(q, "query", NS_DISCO_INFO)) {
        room_info(room, st, q);
    } else if (get && mk_xml_is(q, "query", NS_DISCO_ITEMS)) {
        reply(st, mk_xml_new("query", NS_DISCO_ITEMS)); /* occupants stay hidden (6.5) */
    } else if (get && mk_xml_is(q, "ping", NS_PING)) {
        reply(st, NULL);
    } else if (mk_xml_is(q, "query", NS_REGISTER)) {
        register_iq(room, st, q, aff);
    } else if (!get && mk_xml_is(q, "query", NS_MAM)) {
        if (aff == AFF_OUTCAST || (room->cfg.members_only && aff < AFF_MEMBER && !self)) {
            muc_error(st, MK_ERR_FORBIDDEN, "the archive is for the room's members");
            return;
        }
        if (!room->cfg.logging || !mk_archive_query(room->muc->mod, room->jid, st))
            muc_error(st, MK_ERR_SERVICE_UNAVAILABLE, "this room keeps no archive");
    } else {
        muc_error(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    }
}

/* Any worker: disco of the service itself (6.1, 6.3). */
void muc_service_iq(Muc *muc, MkStanza *st)
{
    const char *type = mk_stanza_type(st);
    if (g_strcmp0(type, "get") && g_strcmp0(type, "set"))
        return;
    MkXml *xml = mk_stanza_xml(st);
    gboolean get = g_str_equal(type, "get");
    if (get && mk_xml_child(xml, "query", NS_DISCO_INFO)) {
        MkXml *q = mk_xml_new("query", NS_DISCO_INFO);
        MkXml *id = mk_xml_add_child(q, "identity", NULL);
        mk_xml_set_attr(id, "category", "conference");
        mk_xml_set_attr(id, "type", "text");
        mk_xml_set_attr(id, "name", "Chatrooms");
        const char *features[] = {NS_MUC,
                                  NS_DISCO_INFO,
                                  NS_DISCO_ITEMS,
                                  NS_MUC "#unique",
                                  "http://jabber.org/protocol/muc#self-ping-optimization",
                                  "jabber:x:conference"};
        for (guint i = 0; i < G_N_ELEMENTS(features); i++)
            mk_xml_set_attr(mk_xml_add_child(q, "feature", NULL), "var", features[i]);
        reply(st, q);
        return;
    }
    if (get && mk_xml_child(xml, "query", NS_DISCO_ITEMS)) {
        MkXml *q = mk_xml_new("query", NS_DISCO_ITEMS);
        const char *service = mk_jid_domain(mk_stanza_to(st));
        g_mutex_lock(&muc->lock);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, muc->listed);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            const char *at = strchr(k, '@');
            if (!at || g_strcmp0(at + 1, service))
                continue;
            MkXml *item = mk_xml_add_child(q, "item", NULL);
            mk_xml_set_attr(item, "jid", k);
            if (v && *(const char *)v)
                mk_xml_set_attr(item, "name", v);
        }
        g_mutex_unlock(&muc->lock);
        reply(st, q);
        return;
    }
    if (get && mk_xml_child(xml, "ping", NS_PING)) {
        reply(st, NULL);
        return;
    }
    if (get && mk_xml_child(xml, "unique", NS_MUC "#unique")) {
        /* 10.1.4: a name no room has (a random UUID: no lookup needed). */
        g_autofree char *name = g_uuid_string_random();
        MkXml *u = mk_xml_new("unique", NS_MUC "#unique");
        mk_xml_add_text(u, name, -1);
        reply(st, u);
        return;
    }
    muc_error(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
}
