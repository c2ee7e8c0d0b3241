/* mod_testroom: a stub group chat service for test-mam.py, never
 * installed. It proves the core's archive service (mk-archive.h) from
 * the user's side, as MUC will use it: rooms at rooms.DOMAIN echo each
 * groupchat message back to its sender from room/nick, archived through
 * whichever module provides the service and tagged with the ID it gave,
 * and hand the archive queries sent to a room's JID over to it. */
#include <meerkat/module.h>

#define NS_MAM "urn:xmpp:mam:2"
#define NS_SID "urn:xmpp:sid:0"

static void on_room(MkStanza *st, gpointer user_data)
{
    MkModule *mod = user_data;
    MkJid *room = mk_stanza_to(st);
    MkJid *from = mk_stanza_from(st);
    MkXml *xml = mk_stanza_xml(st);

    if (mk_stanza_kind(st) == MK_STANZA_MESSAGE &&
        g_strcmp0(mk_stanza_type(st), "groupchat") == 0 && mk_jid_node(room)) {
        const char *nick = mk_jid_node(from);
        g_autoptr(MkJid) room_bare = mk_jid_bare(room);
        g_autoptr(MkJid) occupant = mk_jid_with_resource(room_bare, nick, NULL);
        /* What the room sends its occupants: from room/nick, no 'to'. */
        g_autoptr(MkXml) out = mk_xml_copy(xml);
        mk_xml_set_attr(out, "to", NULL);
        mk_xml_set_attr(out, "from", NULL);
        g_autoptr(MkStanza) sent = mk_stanza_new_addressed(out, occupant, NULL);
        g_autofree char *id = mk_archive_store(mod, room_bare, sent, nick, from);
        g_autoptr(MkXml) echo = mk_xml_copy(out);
        if (id) {
            MkXml *tag = mk_xml_add_child(echo, "stanza-id", NS_SID);
            mk_xml_set_attr(tag, "by", mk_jid_string(room_bare));
            mk_xml_set_attr(tag, "id", id);
        }
        g_autoptr(MkStanza) back = mk_stanza_new_addressed(echo, occupant, from);
        mk_router_send(back);
        return;
    }
    if (mk_stanza_kind(st) == MK_STANZA_IQ && mk_xml_child(xml, "query", NS_MAM)) {
        g_autoptr(MkJid) room_bare = mk_jid_bare(room);
        if (mk_archive_query(mod, room_bare, st))
            return;
    }
    g_autoptr(MkStanza) err = mk_stanza_new_error_reply(st, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    if (err)
        mk_router_send(err);
}

static gboolean testroom_start(MkModule *mod, GError **error)
{
    g_auto(GStrv) domains = mk_module_domains(mod);
    g_autofree char *service = g_strconcat("rooms.", domains[0], NULL);
    return mk_route_register(mod, service, on_room, mod, error);
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_testroom",
    .version = "1.0",
    .start = testroom_start,
};
