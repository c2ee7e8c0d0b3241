/* Messages in a room (XEP-0045 7.4, 7.5, 7.8.2, 8.1): groupchat fan-out
 * and history, private messages, subject changes, mediated invitations.
 * Owner worker only. */
#include "muc.h"

/* Sends @msg (no 'to') from @from to every session of every occupant.
 * The one place that fans out: a shared-serialisation send replaces the
 * loop here. */
void muc_fanout(MucRoom *room, MkXml *msg, MkJid *from)
{
    /* One stanza for every joined session: the core serialises it once
     * and writes only each copy's 'to' (mk-fanout.h). */
    g_autoptr(GPtrArray) to = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MucOccupant *o = v;
        for (guint i = 0; i < o->sessions->len; i++)
            g_ptr_array_add(to, g_ptr_array_index(o->sessions, i));
    }
    if (!to->len)
        return;
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(msg, from, to->pdata[0]);
    mk_fanout_send(st, (MkJid *const *)to->pdata, to->len);
}

/* A message from the room itself with status codes (0-terminated), as
 * 104 after a configuration change. */
void muc_status_message(MucRoom *room, const int *codes)
{
    g_autoptr(MkXml) m = mk_xml_new("message", "jabber:client");
    mk_xml_set_attr(m, "type", "groupchat");
    MkXml *x = mk_xml_add_child(m, "x", NS_MUC_USER);
    for (guint i = 0; codes[i]; i++)
        muc_add_status(x, codes[i]);
    muc_fanout(room, m, room->jid);
}

static void history_add(MucRoom *room, MkXml *msg, MkJid *from)
{
    if (room->cfg.history_length <= 0)
        return;
    MucHistory *h = g_new0(MucHistory, 1);
    h->msg = mk_xml_ref(msg);
    h->from = mk_jid_ref(from);
    h->stamp_us = g_get_real_time();
    g_autofree char *text = mk_xml_to_string(msg, NULL);
    h->chars = g_utf8_strlen(text, -1);
    g_queue_push_tail(&room->history, h);
    while ((gint64)room->history.length > room->cfg.history_length) {
        MucHistory *old = g_queue_pop_head(&room->history);
        mk_xml_unref(old->msg);
        mk_jid_unref(old->from);
        g_free(old);
    }
}

#define NS_HISTORY "urn:xmpp:meerkat:muc-history"

/* The history as text for the database (transfer full), or NULL when
 * there is none: <h><m stamp='µs' from='room/nick'>message</m>...</h>. */
char *muc_history_to_string(MucRoom *room)
{
    if (!room->history.length)
        return NULL;
    g_autoptr(MkXml) h = mk_xml_new("h", NS_HISTORY);
    for (GList *l = room->history.head; l; l = l->next) {
        MucHistory *e = l->data;
        MkXml *m = mk_xml_add_child(h, "m", NULL);
        char stamp[32];
        g_snprintf(stamp, sizeof stamp, "%" G_GINT64_FORMAT, e->stamp_us);
        mk_xml_set_attr(m, "stamp", stamp);
        mk_xml_set_attr(m, "from", mk_jid_string(e->from));
        mk_xml_append(m, mk_xml_ref(e->msg));
    }
    return mk_xml_to_string(h, NULL);
}

/* Puts back a history muc_history_to_string() wrote; what does not parse
 * is left out. */
void muc_history_from_string(MucRoom *room, const char *text)
{
    g_autoptr(MkXml) h = mk_xml_parse(text, -1, NULL);
    for (guint i = 0; h && i < mk_xml_child_count(h); i++) {
        MkXml *m = mk_xml_child_at(h, i);
        MkXml *msg = mk_xml_is(m, "m", NULL) ? mk_xml_child(m, "message", NULL) : NULL;
        const char *from_s = msg ? mk_xml_get_attr(m, "from") : NULL;
        g_autoptr(MkJid) from = from_s ? mk_jid_new(from_s, NULL) : NULL;
        if (!from)
            continue;
        MucHistory *e = g_new0(MucHistory, 1);
        e->msg = mk_xml_ref(msg);
        e->from = g_steal_pointer(&from);
        e->stamp_us = g_ascii_strtoll(mk_xml_get_attr(m, "stamp") ?: "0", NULL, 10);
        g_autofree char *s = mk_xml_to_string(msg, NULL);
        e->chars = g_utf8_strlen(s, -1);
        g_queue_push_tail(&room->history, e);
    }
}

static void groupchat(MucRoom *room, MucOccupant *o, MkStanza *st)
{
    Muc *muc = room->muc;
    MkXml *in = mk_stanza_xml(st);
    MkXml *subject = mk_xml_child(in, "subject", NULL);
    gboolean has_body = mk_xml_child(in, "body", NULL) != NULL;
    if (o->role < ROLE_PARTICIPANT) {
        muc_error(st, MK_ERR_FORBIDDEN, "visitors have no voice in this room");
        return;
    }
    if (subject && !has_body) {
        if (o->role < ROLE_MODERATOR && !room->cfg.change_subject) {
            muc_error(st, MK_ERR_FORBIDDEN, "only moderators may change the subject");
            return;
        }
        g_free(room->subject);
        g_free(room->subject_nick);
        room->subject = mk_xml_text(subject);
        room->subject_nick = g_strdup(o->nick);
        muc_room_changed(room);
    }
    g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
    g_autoptr(MkXml) out = mk_xml_copy_shallow(in);
    mk_xml_set_attr(out, "to", NULL);
    mk_xml_set_attr(out, "from", NULL);
    mk_xml_remove_children(out, "stanza-id", NS_SID);
    if (room->cfg.logging) {
        g_autoptr(MkStanza) as_sent = mk_stanza_new_addressed(out, from, NULL);
        MkJid *real = mk_stanza_from(st);
        g_autofree char *id = mk_archive_store(muc->mod, room->jid, as_sent, o->nick, real);
        if (id) {
            MkXml *tag = mk_xml_add_child(out, "stanza-id", NS_SID);
            mk_xml_set_attr(tag, "by", room->key);
            mk_xml_set_attr(tag, "id", id);
        }
    }
    mk_counter_add(muc->c_messages, 1);
    if (has_body) {
        history_add(room, out, from);
        muc_db_history_changed(room);
    }
    muc_fanout(room, out, from);
}

/* A private message to @to_nick (7.5). */
static void private_message(MucRoom *room, MucOccupant *o, MkStanza *st, const char *to_nick)
{
    MucOccupant *target = g_hash_table_lookup(room->occupants, to_nick);
    if (!target) {
        muc_error(st, MK_ERR_ITEM_NOT_FOUND, "no such occupant");
        return;
    }
    if (!room->cfg.allow_pm && o->role < ROLE_MODERATOR) {
        muc_error(st, MK_ERR_FORBIDDEN, "private messages are off in this room");
        return;
    }
    g_autoptr(MkXml) out = mk_xml_copy_shallow(mk_stanza_xml(st));
    mk_xml_set_attr(out, "to", NULL);
    mk_xml_set_attr(out, "from", NULL);
    if (!mk_xml_child(out, "x", NS_MUC_USER))
        mk_xml_add_child(out, "x", NS_MUC_USER);
    g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
    muc_send_to_occupant(target, out, from);
}

/* Mediated invitations and declines (7.8.2, 7.8.2's decline). */
static void invite_or_decline(MucRoom *room, MkStanza *st, MkXml *x)
{
    MkJid *real = mk_stanza_from(st);
    MucOccupant *o = g_hash_table_lookup(room->by_jid, mk_jid_string(real));
    MkXml *invite = mk_xml_child(x, "invite", NULL);
    MkXml *decline = mk_xml_child(x, "decline", NULL);
    MkXml *what = invite ? invite : decline;
    const char *to_s = mk_xml_get_attr(what, "to");
    g_autoptr(MkJid) to = to_s ? mk_jid_new(to_s, NULL) : NULL;
    if (!to) {
        muc_error(st, MK_ERR_BAD_REQUEST, "an invitation names its invitee in 'to'");
        return;
    }
    g_autofree char *reason = mk_xml_child_text(what, "reason", NULL);
    g_autoptr(MkXml) m = mk_xml_new("message", "jabber:client");
    MkXml *ox = mk_xml_add_child(m, "x", NS_MUC_USER);
    MkXml *el = mk_xml_add_child(ox, invite ? "invite" : "decline", NULL);
    mk_xml_set_attr(el, "from", mk_jid_string(real));
    if (reason)
        mk_xml_add_text(mk_xml_add_child(el, "reason", NULL), reason, -1);
    if (invite) {
        MucAff aff = muc_room_aff(room, real);
        if (!o) {
            muc_error(st, MK_ERR_NOT_ACCEPTABLE, "only occupants invite");
            return;
        }
        if ((!room->cfg.allow_invites && o->role < ROLE_MODERATOR) ||
            (room->cfg.members_only && aff < AFF_ADMIN && !room->cfg.allow_invites)) {
            muc_error(st, MK_ERR_FORBIDDEN, "invitations are not allowed");
            return;
        }
        /* An invitee of a members-only room becomes a member (9.3). */
        if (room->cfg.members_only && muc_room_aff(room, to) == AFF_NONE) {
            if ((gint64)g_hash_table_size(room->affs) >= room->muc->max_affs) {
                mk_counter_add(room->muc->c_limited, 1);
                muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "the room has too many affiliations");
                return;
            }
            muc_room_set_aff(room, mk_jid_bare_string(to), AFF_MEMBER, NULL);
            muc_room_changed(room);
        }
        if (room->cfg.password_protected && room->cfg.password)
            mk_xml_add_text(mk_xml_add_child(ox, "password", NULL), room->cfg.password, -1);
    }
    g_autoptr(MkStanza) out = mk_stanza_new_addressed(m, room->jid, to);
    mk_router_send(out);
}

/* The value of field @var of data form @x (transfer full), or NULL. */
static char *form_value(MkXml *x, const char *var)
{
    for (guint i = 0; i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        if (mk_xml_is(f, "field", NULL) && !g_strcmp0(mk_xml_get_attr(f, "var"), var))
            return mk_xml_child_text(f, "value", NULL);
    }
    return NULL;
}

/* Voice requests (7.13) and their approval by a moderator (8.6). */
static void voice_request(MucRoom *room, MucOccupant *o, MkStanza *st, MkXml *form)
{
    g_autofree char *allow = form_value(form, "muc#request_allow");
    if (allow) {
        /* A moderator's answer to a request it was sent. */
        if (o->role < ROLE_MODERATOR) {
            muc_error(st, MK_ERR_FORBIDDEN, "only moderators grant voice");
            return;
        }
        g_autofree char *nick = form_value(form, "muc#roomnick");
        MucOccupant *target = nick ? g_hash_table_lookup(room->occupants, nick) : NULL;
        if (!target) {
            muc_error(st, MK_ERR_ITEM_NOT_FOUND, "no such occupant");
            return;
        }
        if ((!g_strcmp0(allow, "true") || !g_strcmp0(allow, "1")) && target->role == ROLE_VISITOR) {
            target->role = ROLE_PARTICIPANT;
            muc_presence_broadcast(room, target, FALSE, NULL, NULL);
        }
        return;
    }
    g_autofree char *role = form_value(form, "muc#role");
    if (g_strcmp0(role, "participant")) {
        muc_error(st, MK_ERR_BAD_REQUEST, "a voice request asks for the participant role");
        return;
    }
    if (o->role != ROLE_VISITOR) {
        muc_error(st, MK_ERR_NOT_ALLOWED, "you have voice already");
        return;
    }
    g_autoptr(MkXml) m = mk_xml_new("message", "jabber:client");
    MkXml *x = mk_xml_add_child(m, "x", NS_DATA);
    mk_xml_set_attr(x, "type", "form");
    mk_xml_add_text(mk_xml_add_child(x, "title", NULL), "Voice request", -1);
    muc_form_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC "#request");
    muc_form_field(x, "muc#role", "list-single", "Requested role", "participant");
    MkJid *real = o->sessions->len ? g_ptr_array_index(o->sessions, 0) : o->bare;
    muc_form_field(x, "muc#jid", "jid-single", "User ID", mk_jid_string(real));
    muc_form_field(x, "muc#roomnick", "text-single", "Room nickname", o->nick);
    muc_form_field(x, "muc#request_allow", "boolean", "Grant voice?", "false");
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((MucOccupant *)v)->role == ROLE_MODERATOR)
            muc_send_to_occupant(v, m, room->jid);
}

static MkXml *request_form(MkXml *msg)
{
    for (guint i = 0; i < mk_xml_child_count(msg); i++) {
        MkXml *x = mk_xml_child_at(msg, i);
        if (!mk_xml_is(x, "x", NS_DATA) || g_strcmp0(mk_xml_get_attr(x, "type"), "submit"))
            continue;
        g_autofree char *type = form_value(x, "FORM_TYPE");
        if (!g_strcmp0(type, NS_MUC "#request"))
            return x;
    }
    return NULL;
}

/* Owner worker: a message to the room or to an occupant. */
void muc_message(MucRoom *room, MkStanza *st)
{
    MkJid *real = mk_stanza_from(st);
    const char *type = mk_stanza_type(st);
    const char *to_nick = mk_jid_resource(mk_stanza_to(st));
    MucOccupant *o = g_hash_table_lookup(room->by_jid, mk_jid_string(real));
    if (mk_stanza_is_error(st)) {
        return; /* an error a client bounced to the room: nothing answers it */
    }
    MkXml *x = mk_xml_child(mk_stanza_xml(st), "x", NS_MUC_USER);
    if (!to_nick && x && (mk_xml_child(x, "invite", NULL) || mk_xml_child(x, "decline", NULL))) {
        invite_or_decline(room, st, x);
        return;
    }
    if (!o) {
        muc_error(st, MK_ERR_NOT_ACCEPTABLE, "only occupants send messages to the room");
        return;
    }
    if (g_strcmp0(type, "groupchat") == 0) {
        if (to_nick) {
            muc_error(st, MK_ERR_BAD_REQUEST, "groupchat goes to the room, not an occupant");
            return;
        }
        groupchat(room, o, st);
        return;
    }
    if (!to_nick) {
        MkXml *form = request_form(mk_stanza_xml(st));
        if (form) {
            voice_request(room, o, st, form);
            return;
        }
        muc_error(st, MK_ERR_BAD_REQUEST, "messages to the room are of type groupchat");
        return;
    }
    private_message(room, o, st, to_nick);
}
