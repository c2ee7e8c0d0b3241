/* Archiving 1:1 messages (XEP-0313 section 5.1.1) and their stanza IDs
 * (XEP-0359).
 *
 * The sender's copy is taken in user_send_packet, the recipient's in
 * filter_local_packet, both on the worker that routes the message and
 * both only queued here (mam-writer.c writes them). The two copies share
 * one ID: the sender's side tags the message with <stanza-id by='sender'>
 * and the recipient's side takes the ID from that tag. A client cannot
 * forge either tag: user_send_packet removes every <stanza-id/> that
 * claims one of our JIDs before anything else reads the message, so a
 * tag by a local JID seen later is ours. A message that already carries
 * its recipient's tag (routed again by stream management or from
 * offline storage) was archived and is not archived again.
 *
 * Both copies of a message between local users are one text: the
 * recipient's copy is the sender's as the recipient received it, minus
 * the recipient's own tag, which a query adds back from the row's ID
 * (mam-iq.c). The sender's side serialises it and leaves it in a slot
 * for the recipient's side, which runs next on the same worker (while
 * the router delivers the message) and takes it, with the message's ID,
 * when the message is the same object: then it neither checks the
 * message again nor looks for the sender's tag. */
#include "mam.h"

#define NS_SID     "urn:xmpp:sid:0"
#define NS_HINTS   "urn:xmpp:hints"
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_RETRACT "urn:xmpp:message-retract:1"
#define NS_OMEMO   "eu.siacs.conversations.axolotl"
#define NS_OMEMO2  "urn:xmpp:omemo:2"
#define NS_MAM_ANY "urn:xmpp:mam:"

/* Whether @xml is a message a user archive keeps (XEP-0313 5.1.1,
 * XEP-0334): chat or normal, with a body or an encrypted payload or a
 * store hint, not a carbon copy or an archive result, no no-store hint. */
static gboolean archivable(MkStanza *st)
{
    if (mk_stanza_kind(st) != MK_STANZA_MESSAGE)
        return FALSE;
    const char *type = mk_stanza_type(st);
    if (type && !g_str_equal(type, "chat") && !g_str_equal(type, "normal"))
        return FALSE; /* error, headline, groupchat (rooms archive theirs) */
    MkXml *xml = mk_stanza_xml(st);
    gboolean payload = FALSE;
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        if (mk_xml_is_text(c))
            continue;
        const char *ns = mk_xml_ns(c);
        const char *name = mk_xml_name(c);
        if (g_strcmp0(ns, NS_HINTS) == 0) {
            if (g_str_equal(name, "no-store") || g_str_equal(name, "no-permanent-store"))
                return FALSE;
            if (g_str_equal(name, "store"))
                payload = TRUE;
        } else if (g_strcmp0(ns, NS_CARBONS) == 0 ||
                   (ns && g_str_has_prefix(ns, NS_MAM_ANY) && g_str_equal(name, "result"))) {
            return FALSE;
        } else if (g_str_equal(name, "body") && g_strcmp0(ns, "jabber:client") == 0) {
            payload = TRUE;
        } else if (g_str_equal(name, "encrypted") &&
                   (g_strcmp0(ns, NS_OMEMO) == 0 || g_strcmp0(ns, NS_OMEMO2) == 0)) {
            payload = TRUE;
        } else if (g_str_equal(name, "retract") && g_strcmp0(ns, NS_RETRACT) == 0) {
            return FALSE; /* handled as a retraction, not kept as a message */
        }
    }
    return payload;
}

/* The ID of our <stanza-id by=@by/> in @xml, or 0. */
static guint64 our_tag(MkXml *xml, const char *by)
{
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        guint64 id;
        if (!mk_xml_is_text(c) && mk_xml_is(c, "stanza-id", NS_SID) &&
            g_strcmp0(mk_xml_get_attr(c, "by"), by) == 0 &&
            mam_id_parse(mk_xml_get_attr(c, "id"), &id))
            return id;
    }
    return 0;
}

/* Whether a <stanza-id/> by @by claims a JID of ours: a local account or
 * a served domain (rooms and services are subdomains of those). */
static gboolean domain_ours(MkModule *mod, const char *domain)
{
    if (mk_module_serves_domain(mod, domain))
        return TRUE;
    const char *dot = strchr(domain, '.');
    return dot && mk_module_serves_domain(mod, dot + 1);
}

static gboolean claims_ours(MkModule *mod, const char *by)
{
    g_autoptr(MkJid) jid = by ? mk_jid_new(by, NULL) : NULL;
    return jid && domain_ours(mod, mk_jid_domain(jid));
}

/* Appends <stanza-id by=@by id=@id/> to @xml. */
static void add_tag(MkXml *xml, const char *by, guint64 id)
{
    char text[MAM_ID_TEXT_LEN + 1];
    mam_id_format(id, text);
    MkXml *tag = mk_xml_add_child(xml, "stanza-id", NS_SID);
    mk_xml_set_attr(tag, "by", by);
    mk_xml_set_attr(tag, "id", text);
}

/* A copy of @xml, sharing its children, without the <stanza-id/>s that
 * claim our JIDs (@strip), plus our own tag when @by is set. (transfer full) */
static MkXml *retag(MkModule *mod, MkXml *xml, gboolean strip, const char *by, guint64 id)
{
    MkXml *out = mk_xml_copy_shallow(xml);
    if (strip) {
        /* Other entities' tags go back, at the end. */
        mk_xml_remove_children(out, "stanza-id", NS_SID);
        for (guint i = 0; i < mk_xml_child_count(xml); i++) {
            MkXml *c = mk_xml_child_at(xml, i);
            if (!mk_xml_is_text(c) && mk_xml_is(c, "stanza-id", NS_SID) &&
                !claims_ours(mod, mk_xml_get_attr(c, "by")))
                mk_xml_append(out, mk_xml_ref(c));
        }
    }
    if (by)
        add_tag(out, by, id);
    return out;
}

gboolean mam_xml_has_tag(MkXml *xml, const char *by)
{
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        if (!mk_xml_is_text(c) && mk_xml_is(c, "stanza-id", NS_SID) &&
            g_strcmp0(mk_xml_get_attr(c, "by"), by) == 0)
            return TRUE;
    }
    return FALSE;
}

MkXml *mam_xml_set_tag(MkXml *xml, const char *by, guint64 id)
{
    MkXml *out = mk_xml_copy_shallow(xml);
    mk_xml_remove_children(out, "stanza-id", NS_SID);
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        if (!mk_xml_is_text(c) && mk_xml_is(c, "stanza-id", NS_SID) &&
            g_strcmp0(mk_xml_get_attr(c, "by"), by) != 0)
            mk_xml_append(out, mk_xml_ref(c));
    }
    add_tag(out, by, id);
    return out;
}

/* Whether @xml holds a <stanza-id/> that claims one of our JIDs. */
static gboolean has_claims(MkModule *mod, MkXml *xml)
{
    for (guint i = 0; i < mk_xml_child_count(xml); i++) {
        MkXml *c = mk_xml_child_at(xml, i);
        if (!mk_xml_is_text(c) && mk_xml_is(c, "stanza-id", NS_SID) &&
            claims_ours(mod, mk_xml_get_attr(c, "by")))
            return TRUE;
    }
    return FALSE;
}

/* What a retraction or a message names its message by: the origin-id
 * (XEP-0359) when there is one, else the stanza's id. (transfer none) */
static const char *origin_id_of(MkStanza *st)
{
    MkXml *origin = mk_xml_child(mk_stanza_xml(st), "origin-id", NS_SID);
    const char *id = origin ? mk_xml_get_attr(origin, "id") : NULL;
    return id ? id : mk_stanza_id(st);
}

/* @xml: a GRefString, (transfer full). */
static MamRow *row_new(MkJid *owner, guint64 id, MkJid *with, MkJid *from, MkStanza *st, char *xml)
{
    return mam_row_new(NULL, mk_jid_node(owner), mk_jid_domain(owner), id, mk_jid_bare_string(with),
                       mk_jid_resource(with), mk_jid_bare_string(from), origin_id_of(st), xml);
}

/* ---- one text for both copies ------------------------------------------------ */

typedef struct {
    MkXml *xml; /* a reference: its address names no other message meanwhile */
    char *text; /* GRefString */
    guint64 id; /* the ID the sender's side gave it */
} MamShared;

static void shared_free(MamShared *sh)
{
    if (!sh)
        return;
    mk_xml_unref(sh->xml);
    g_ref_string_release(sh->text);
    g_free(sh);
}

static gpointer *shared_slot(Mam *m, MkXml *xml)
{
    guint64 h = (guint64)(guintptr)xml * G_GUINT64_CONSTANT(0x9E3779B97F4A7C15);
    return &m->shared[(h >> 32) % G_N_ELEMENTS(m->shared)];
}

/* Leaves @text (a reference is taken) and @id for the recipient's copy
 * of @xml. */
static void shared_put(Mam *m, MkXml *xml, char *text, guint64 id)
{
    MamShared *sh = g_new(MamShared, 1);
    sh->xml = mk_xml_ref(xml);
    sh->text = g_ref_string_acquire(text);
    sh->id = id;
    shared_free(g_atomic_pointer_exchange(shared_slot(m, xml), sh));
}

/* The text left for @xml, or NULL; its ID in *@id. (transfer full) */
static char *shared_take(Mam *m, MkXml *xml, guint64 *id)
{
    gpointer *slot = shared_slot(m, xml);
    MamShared *sh = g_atomic_pointer_exchange(slot, NULL);
    if (sh && sh->xml != xml) {
        /* Another message's: back, unless a newer one took the slot. */
        if (!g_atomic_pointer_compare_and_exchange(slot, NULL, sh))
            shared_free(sh);
        return NULL;
    }
    if (!sh)
        return NULL;
    char *text = g_steal_pointer(&sh->text);
    *id = sh->id;
    mk_xml_unref(sh->xml);
    g_free(sh);
    return text;
}

void mam_archive_free(Mam *m)
{
    for (guint i = 0; i < G_N_ELEMENTS(m->shared); i++)
        shared_free(g_steal_pointer(&m->shared[i]));
}

/* The preferences of the sender @owner allow archiving a message to
 * @with. They are loaded when the session starts; in the moment before
 * that load completes, the server's default (always) applies. */
static gboolean prefs_allow(Mam *m, MkJid *owner, MkJid *with)
{
    g_autoptr(MamPrefs) p = mk_user_cache_get(m->prefs, mk_jid_bare_string(owner), NULL);
    return mam_prefs_archives(p, mk_jid_bare_string(with));
}

/* ---- the sender's copy ---------------------------------------------------- */

static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Mam *m = mk_module_get_data(user_data);
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = mk_hook_call_to(call);

    if (!st || !from || !to || mk_stanza_kind(st) != MK_STANZA_MESSAGE)
        return MK_PASS;
    MkXml *xml = mk_stanza_xml(st);
    MkXml *retract = mk_xml_child(xml, "retract", NS_RETRACT);
    if (retract && mk_xml_get_attr(retract, "id"))
        mam_retract(m, from, to, mk_xml_get_attr(retract, "id"));
    gboolean keep = archivable(st) && mk_jid_node(from) && prefs_allow(m, from, to);
    gboolean strip = has_claims(m->mod, xml);
    if (!keep && !strip)
        return MK_PASS; /* nothing to tag, nothing to strip: no copy */
    guint64 id = keep ? mam_id_next(&m->ids, g_get_real_time()) : 0;
    g_autoptr(MkXml) tagged = retag(m->mod, xml, strip, keep ? mk_jid_bare_string(from) : NULL, id);
    MkStanza *out = mk_stanza_new_addressed(tagged, from, to);
    if (keep) {
        char *text = mam_xml_text(tagged);
        if (mk_jid_node(to) && domain_ours(m->mod, mk_jid_domain(to)))
            shared_put(m, tagged, text, id);
        mam_writer_add(m->writer, row_new(from, id, to, from, out, text));
        mk_counter_add(m->archived, 1);
    }
    mk_hook_call_set_stanza(call, out);
    return MK_PASS;
}

/* ---- the recipient's copy ------------------------------------------------- */

static MkResult on_local(MkHookCall *call, gpointer user_data)
{
    Mam *m = mk_module_get_data(user_data);
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *from = mk_hook_call_from(call);
    MkJid *to = mk_hook_call_to(call);

    if (!st || !from || !to || !mk_jid_node(to))
        return MK_PASS;
    MkXml *xml = mk_stanza_xml(st);
    const char *owner = mk_jid_bare_string(to);
    /* The very message the sender's side just archived: archivable, its
     * ID and text known, so the checks below and the parse of its tag
     * are skipped (about 2k instructions, docs/benchmarks.md). */
    guint64 id = 0;
    char *text = shared_take(m, xml, &id);
    if (text && g_str_equal(owner, mk_jid_bare_string(from))) {
        g_ref_string_release(text);
        return MK_PASS; /* sent to oneself: the sender's copy is the one */
    }
    if (!text && (!archivable(st) || our_tag(xml, owner)))
        return MK_PASS; /* not kept; or archived already: routed again */
    /* An offline recipient's preferences may not be in memory: the
     * message waits for them and is routed again once they are (then
     * without the shared text, which is serialised again). */
    g_autoptr(MamPrefs) prefs = mk_user_cache_get(m->prefs, owner, st);
    if (!prefs || !mam_prefs_archives(prefs, mk_jid_bare_string(from))) {
        if (text)
            g_ref_string_release(text);
        return prefs ? MK_PASS : MK_HANDLED;
    }
    if (!text) {
        /* The sender's side tagged it when the sender is local: one ID. */
        if (domain_ours(m->mod, mk_jid_domain(from)))
            id = our_tag(xml, mk_jid_bare_string(from));
        /* Stored without the recipient's own tag (see the top of the file). */
        text = mam_xml_text(xml);
    }
    if (!id)
        id = mam_id_next(&m->ids, g_get_real_time());
    g_autoptr(MkXml) tagged = mk_xml_copy_shallow(xml);
    add_tag(tagged, owner, id);
    MkStanza *out = mk_stanza_new_addressed(tagged, from, to);
    mam_writer_add(m->writer, row_new(to, id, from, from, out, text));
    mk_counter_add(m->archived, 1);
    mk_hook_call_set_stanza(call, out);
    return MK_PASS;
}

/* A roster-mode user's preferences hold the roster: they are forgotten
 * (not merely invalidated, which would let the old value serve until the
 * reload), so that the next message to the user waits for the new ones. */
static MkResult on_roster_changed(MkHookCall *call, gpointer user_data)
{
    Mam *m = mk_module_get_data(user_data);
    MkJid *user = mk_hook_call_from(call);
    if (user)
        mk_user_cache_forget(m->prefs, mk_jid_bare_string(user));
    return MK_PASS;
}

void mam_archive_start(Mam *m)
{
    mk_hook_add(m->mod, MK_HOOK_ROSTER_CHANGED, 0, on_roster_changed, m->mod);
    /* After privacy and blocking (100), which may drop the message, and
     * before carbons (50 and 10), whose copies must show the tag. */
    mk_hook_add(m->mod, MK_HOOK_USER_SEND_PACKET, 70, on_send, m->mod);
    mk_hook_add(m->mod, MK_HOOK_FILTER_LOCAL_PACKET, 20, on_local, m->mod);
}
