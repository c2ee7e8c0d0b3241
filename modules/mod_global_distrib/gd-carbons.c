/* Message Carbons (XEP-0280) across regions: mod_carboncopy copies a
 * message to the account's resources in its own region; an account
 * bound in several regions also needs them in the others. For a message
 * a resource here sends (<sent/>) or that a full JID here receives
 * (<received/>), the module makes the carbon once, from the account's
 * bare JID to itself, and sends it as a copy to the account's other
 * regions (gd-fanout.c), where mod_carboncopy hands it to the resources
 * that enabled carbons (docs/mod_global_distrib.md, "Carbons"). */
#include "gd.h"

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS   "urn:xmpp:hints"

/* XEP-0280 section 6, as mod_carboncopy applies it: chat messages, and
 * normal ones with a body, unless marked private or no-copy, or carbons
 * themselves; not between two resources of one account. */
static gboolean eligible(MkStanza *st)
{
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE)
        return FALSE;
    MkXml *x = mk_stanza_xml(st);
    MkJid *from = mk_stanza_from(st), *to = mk_stanza_to(st);
    if (!from || !to || mk_jid_bare_equal(from, to) || mk_xml_child(x, "private", NS_CARBONS) ||
        mk_xml_child(x, "no-copy", NS_HINTS) || mk_xml_child(x, "sent", NS_CARBONS) ||
        mk_xml_child(x, "received", NS_CARBONS))
        return FALSE;
    const char *type = mk_stanza_type(st);
    if (!type || g_str_equal(type, "normal"))
        return mk_xml_child(x, "body", NULL) != NULL;
    return g_str_equal(type, "chat");
}

MkStanza *gd_carbon_for(Gd *gd, MkStanza *st, gboolean sent)
{
    MkJid *owner = sent ? mk_stanza_from(st) : mk_stanza_to(st);
    if (!owner || !mk_jid_node(owner) || !g_str_equal(mk_jid_domain(owner), gd->global_host) ||
        (!sent && mk_jid_is_bare(owner)) || !eligible(st))
        return NULL;
    /* Before the copy is made: most accounts are bound in one region. */
    if (gd_solo_known(gd, mk_jid_bare_string(owner)))
        return NULL;
    g_autoptr(MkJid) bare = mk_jid_bare(owner);
    g_autoptr(MkXml) msg = mk_xml_new("message", "jabber:client");
    const char *type = mk_stanza_type(st);
    if (type)
        mk_xml_set_attr(msg, "type", type);
    MkXml *wrap = mk_xml_add_child(msg, sent ? "sent" : "received", NS_CARBONS);
    MkXml *fwd = mk_xml_add_child(wrap, "forwarded", NS_FORWARD);
    mk_xml_append(fwd, mk_xml_copy(mk_stanza_xml(st)));
    return mk_stanza_new_addressed(msg, bare, bare);
}
