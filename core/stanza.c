/* Stanzas: an immutable MkXml plus its prepared addresses, shared between
 * threads by reference. */
#include "xmlstream.h"
#include "ackgate.h"
#include "fanout.h"

#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

struct MkStanza {
    gint ref;
    MkStanzaKind kind;
    /* NULL on a stanza made by mk_stanza_new_whole_wire until someone
     * asks for it (base_xml), then set once atomically from @wire. */
    MkXml *xml;
    MkJid *from; /* nullable */
    MkJid *to;   /* nullable */
    /* XEP-0198: the stream it came from and its number there (ackgate.h);
     * NULL unless read from a client with stream management. */
    MkAckGate *gate;
    guint32 gate_h;
    /* A fan-out copy's shared serialisation (fanout.h); NULL otherwise. */
    MkWire *wire;
    /* A fan-out copy made by mk_stanza_new_wire_copy: @xml is the shared
     * element without 'to', and the element with this copy's 'to' is made
     * only when someone asks for it (mk_stanza_xml), set once atomically.
     * Most copies are only written out from @wire and never need it. */
    gboolean lazy_to;
    MkXml *full; /* nullable */
    /* When the router chose the resources of a bare JID for it (sm.h);
     * 0 when it was not routed that way. */
    gint64 chosen_us;
};

static MkStanzaKind kind_of(const MkXml *xml)
{
    const char *ns = mk_xml_ns(xml);
    if (ns && *ns && strcmp(ns, "jabber:client") != 0 && strcmp(ns, "jabber:server") != 0)
        return MK_STANZA_OTHER;
    const char *name = mk_xml_name(xml);
    if (!name)
        return MK_STANZA_OTHER;
    if (strcmp(name, "message") == 0)
        return MK_STANZA_MESSAGE;
    if (strcmp(name, "presence") == 0)
        return MK_STANZA_PRESENCE;
    if (strcmp(name, "iq") == 0)
        return MK_STANZA_IQ;
    return MK_STANZA_OTHER;
}

/* Takes @xml, @from and @to (transfer full). */
static MkStanza *wrap(MkXml *xml, MkJid *from, MkJid *to)
{
    MkStanza *st = g_new(MkStanza, 1);
    st->ref = 1;
    st->xml = xml;
    st->from = from;
    st->to = to;
    st->kind = kind_of(xml);
    st->gate = NULL;
    st->gate_h = 0;
    st->wire = NULL;
    st->lazy_to = FALSE;
    st->full = NULL;
    st->chosen_us = 0;
    return st;
}

/* Wraps @xml (referenced, must not change afterwards), reading and
 * preparing from/to. Returns: (transfer full) (nullable) NULL with
 * MK_JID_ERROR when an address is invalid. Any thread. */
MkStanza *mk_stanza_new(MkXml *xml, GError **error)
{
    g_return_val_if_fail(xml != NULL && !mk_xml_is_text(xml), NULL);
    const char *f = mk_xml_get_attr(xml, "from");
    const char *t = mk_xml_get_attr(xml, "to");
    g_autoptr(MkJid) from = NULL;
    g_autoptr(MkJid) to = NULL;
    if (f && !(from = mk_jid_new(f, error)))
        return NULL;
    if (t && !(to = mk_jid_new(t, error)))
        return NULL;
    return wrap(mk_xml_ref(xml), g_steal_pointer(&from), g_steal_pointer(&to));
}

static gboolean attr_matches(const MkXml *xml, const char *name, const MkJid *jid)
{
    const char *v = mk_xml_get_attr(xml, name);
    if (!jid)
        return v == NULL;
    return v && strcmp(v, mk_jid_string(jid)) == 0;
}

/* A stanza for @xml whose from/to are exactly @from/@to (nullable: the
 * attribute is then absent). When @xml's attributes differ they are
 * written into a shallow copy (children shared). (transfer none) of all
 * arguments; Returns: (transfer full). Any thread. */
MkStanza *mk_stanza_new_addressed(MkXml *xml, MkJid *from, MkJid *to)
{
    g_return_val_if_fail(xml != NULL && !mk_xml_is_text(xml), NULL);
    MkXml *x;
    if (attr_matches(xml, "from", from) && attr_matches(xml, "to", to)) {
        x = mk_xml_ref(xml);
    } else {
        static const char *const names[] = {"from", "to"};
        const char *values[] = {from ? mk_jid_string(from) : NULL, to ? mk_jid_string(to) : NULL};
        x = mk_xml_copy_shallow_set(xml, names, values, 2);
    }
    return wrap(x, from ? mk_jid_ref(from) : NULL, to ? mk_jid_ref(to) : NULL);
}

/* (transfer full) Any thread. */
MkStanza *mk_stanza_ref(MkStanza *st)
{
    g_return_val_if_fail(st != NULL, NULL);
    g_atomic_int_inc(&st->ref);
    return st;
}

/* @st may be NULL. Any thread. */
void mk_stanza_unref(MkStanza *st)
{
    if (!st || !g_atomic_int_dec_and_test(&st->ref))
        return;
    if (st->xml)
        mk_xml_unref(st->xml);
    mk_jid_unref(st->from);
    mk_jid_unref(st->to);
    mk_ack_gate_unref(st->gate);
    mk_wire_unref(st->wire);
    if (st->full)
        mk_xml_unref(st->full);
    g_free(st);
}

/* See ackgate.h. The stanza's creator, before routing. */
void mk_stanza_set_ack_gate(MkStanza *st, MkAckGate *gate, guint32 h)
{
    if (st->gate)
        mk_ack_gate_unref(st->gate);
    st->gate = gate ? mk_ack_gate_ref(gate) : NULL;
    st->gate_h = h;
}

/* See fanout.h. */
void mk_stanza_set_wire(MkStanza *st, MkWire *w)
{
    g_return_if_fail(st->wire == NULL);
    st->wire = w ? mk_wire_ref(w) : NULL;
}

MkWire *mk_stanza_wire(const MkStanza *st)
{
    return st->wire;
}

/* See sm.h. */
void mk_stanza_set_chosen_us(MkStanza *st, gint64 chosen_us)
{
    st->chosen_us = chosen_us;
}

gint64 mk_stanza_chosen_us(const MkStanza *st)
{
    return st->chosen_us;
}

/* See fanout.h. */
MkStanza *mk_stanza_new_wire_copy(MkXml *base, MkJid *from, MkJid *to, MkWire *w)
{
    g_return_val_if_fail(base != NULL && to != NULL && w != NULL, NULL);
    if (!attr_matches(base, "from", from) || mk_xml_get_attr(base, "to")) {
        MkStanza *st = mk_stanza_new_addressed(base, from, to);
        mk_stanza_set_wire(st, w);
        return st;
    }
    MkStanza *st = wrap(mk_xml_ref(base), from ? mk_jid_ref(from) : NULL, mk_jid_ref(to));
    st->wire = mk_wire_ref(w);
    st->lazy_to = TRUE;
    return st;
}

/* See fanout.h. */
gboolean mk_stanza_wire_shares(const MkStanza *st)
{
    return st->lazy_to;
}

/* See fanout.h. */
MkStanza *mk_stanza_new_wire_sibling(const MkStanza *first, MkJid *to)
{
    g_return_val_if_fail(first != NULL && first->lazy_to && to != NULL, NULL);
    MkStanza *st = g_new(MkStanza, 1);
    *st = (MkStanza){
        .ref = 1,
        .kind = first->kind,
        .xml = mk_xml_ref(first->xml),
        .from = first->from ? mk_jid_ref(first->from) : NULL,
        .to = mk_jid_ref(to),
        .wire = mk_wire_ref(first->wire),
        .lazy_to = TRUE,
    };
    return st;
}

/* Public module API (mk-stanza.h). (transfer full) (nullable) Any
 * thread. */
MkAckHold *mk_stanza_hold_ack(MkStanza *st)
{
    g_return_val_if_fail(st != NULL, NULL);
    return st->gate ? mk_ack_gate_hold(st->gate, st->gate_h) : NULL;
}

/* See fanout.h. */
MkStanza *mk_stanza_new_whole_wire(MkWire *w, MkJid *from, MkJid *to)
{
    g_return_val_if_fail(w != NULL, NULL);
    MkStanza *st = g_new0(MkStanza, 1);
    st->ref = 1;
    st->from = from ? mk_jid_ref(from) : NULL;
    st->to = to ? mk_jid_ref(to) : NULL;
    st->wire = mk_wire_ref(w);
    const char *name;
    gsize n = mk_wire_name(w, &name);
    /* The sender's element was in jabber:client (else its serialisation
     * names its namespace after the name, and it is "other"). */
    st->kind = n == 7 && memcmp(name, "message", 7) == 0    ? MK_STANZA_MESSAGE
               : n == 8 && memcmp(name, "presence", 8) == 0 ? MK_STANZA_PRESENCE
               : n == 2 && memcmp(name, "iq", 2) == 0       ? MK_STANZA_IQ
                                                            : MK_STANZA_OTHER;
    return st;
}

/* @st's element: a whole-wire stanza's is parsed on first use. Two
 * threads may race to parse it; the first one set is kept. */
static MkXml *base_xml(const MkStanza *st)
{
    MkXml *x = g_atomic_pointer_get(&((MkStanza *)st)->xml);
    if (G_LIKELY(x))
        return x;
    MkStanza *mut = (MkStanza *)st;
    x = mk_wire_parse(st->wire);
    if (G_UNLIKELY(!x)) /* a peer's bytes that do not parse: an empty stanza */
        x = mk_xml_new(st->kind == MK_STANZA_PRESENCE ? "presence"
                       : st->kind == MK_STANZA_IQ     ? "iq"
                                                      : "message",
                       "jabber:client");
    if (!g_atomic_pointer_compare_and_exchange(&mut->xml, NULL, x)) {
        mk_xml_unref(x);
        x = g_atomic_pointer_get(&mut->xml);
    }
    return x;
}

MkXml *mk_stanza_xml(const MkStanza *st)
{
    if (G_LIKELY(!st->lazy_to))
        return base_xml(st);
    /* A fan-out copy: its element with 'to', made on first use. Two
     * threads may race to make it; the first one set is kept. The
     * stanza is otherwise immutable, hence the cast. */
    MkStanza *mut = (MkStanza *)st;
    MkXml *full = g_atomic_pointer_get(&mut->full);
    if (full)
        return full;
    static const char *const names[] = {"to"};
    const char *values[] = {mk_jid_string(st->to)};
    full = mk_xml_copy_shallow_set(st->xml, names, values, 1);
    if (!g_atomic_pointer_compare_and_exchange(&mut->full, NULL, full)) {
        mk_xml_unref(full);
        full = g_atomic_pointer_get(&mut->full);
    }
    return full;
}

MkStanzaKind mk_stanza_kind(const MkStanza *st)
{
    return st->kind;
}

MkJid *mk_stanza_from(const MkStanza *st)
{
    return st->from;
}

MkJid *mk_stanza_to(const MkStanza *st)
{
    return st->to;
}

const char *mk_stanza_type(const MkStanza *st)
{
    return mk_xml_get_attr(base_xml(st), "type");
}

/* Public module API (mk-stanza.h). Any thread. */
gboolean mk_stanza_is_error(const MkStanza *st)
{
    g_return_val_if_fail(st != NULL, FALSE);
    return g_strcmp0(mk_xml_get_attr(base_xml(st), "type"), "error") == 0;
}

const char *mk_stanza_id(const MkStanza *st)
{
    return mk_xml_get_attr(base_xml(st), "id");
}

/* Condition names and error types, RFC 6120 section 8.3.3. */
static const struct {
    const char *name;
    const char *type;
} conditions[] = {
    [MK_ERR_BAD_REQUEST] = {"bad-request", "modify"},
    [MK_ERR_CONFLICT] = {"conflict", "cancel"},
    [MK_ERR_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", "cancel"},
    [MK_ERR_FORBIDDEN] = {"forbidden", "auth"},
    [MK_ERR_GONE] = {"gone", "cancel"},
    [MK_ERR_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel"},
    [MK_ERR_ITEM_NOT_FOUND] = {"item-not-found", "cancel"},
    [MK_ERR_JID_MALFORMED] = {"jid-malformed", "modify"},
    [MK_ERR_NOT_ACCEPTABLE] = {"not-acceptable", "modify"},
    [MK_ERR_NOT_ALLOWED] = {"not-allowed", "cancel"},
    [MK_ERR_NOT_AUTHORIZED] = {"not-authorized", "auth"},
    [MK_ERR_POLICY_VIOLATION] = {"policy-violation", "modify"},
    [MK_ERR_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", "wait"},
    [MK_ERR_REDIRECT] = {"redirect", "modify"},
    [MK_ERR_REGISTRATION_REQUIRED] = {"registration-required", "auth"},
    [MK_ERR_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", "cancel"},
    [MK_ERR_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", "wait"},
    [MK_ERR_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait"},
    [MK_ERR_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel"},
    [MK_ERR_SUBSCRIPTION_REQUIRED] = {"subscription-required", "auth"},
    [MK_ERR_UNDEFINED_CONDITION] = {"undefined-condition", "cancel"},
    [MK_ERR_UNEXPECTED_REQUEST] = {"unexpected-request", "wait"},
};

/* (transfer none) */
const char *mk_stanza_error_name(MkStanzaError cond)
{
    g_return_val_if_fail((guint)cond < G_N_ELEMENTS(conditions), "undefined-condition");
    return conditions[cond].name;
}

/* (transfer none) */
const char *mk_stanza_error_type(MkStanzaError cond)
{
    g_return_val_if_fail((guint)cond < G_N_ELEMENTS(conditions), "cancel");
    return conditions[cond].type;
}

/* The error reply to @st (see mk-stanza.h). Returns: (transfer full)
 * (nullable) NULL when @st is itself an error. Any thread. */
MkStanza *mk_stanza_new_error_reply(const MkStanza *st, MkStanzaError cond, const char *text)
{
    g_return_val_if_fail(st != NULL, NULL);
    if (g_strcmp0(mk_stanza_type(st), "error") == 0)
        return NULL;
    MkXml *x = mk_xml_copy_shallow(base_xml(st));
    mk_xml_set_attr(x, "from", st->to ? mk_jid_string(st->to) : NULL);
    mk_xml_set_attr(x, "to", st->from ? mk_jid_string(st->from) : NULL);
    mk_xml_set_attr(x, "type", "error");
    MkXml *err = mk_xml_add_child(x, "error", NULL);
    mk_xml_set_attr(err, "type", mk_stanza_error_type(cond));
    mk_xml_add_child(err, mk_stanza_error_name(cond), NS_STANZAS);
    if (text) {
        MkXml *t = mk_xml_add_child(err, "text", NS_STANZAS);
        mk_xml_add_text(t, text, -1);
    }
    return wrap(x, st->to ? mk_jid_ref(st->to) : NULL, st->from ? mk_jid_ref(st->from) : NULL);
}
