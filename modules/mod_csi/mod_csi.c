/* mod_csi: Client State Indication (XEP-0352).
 *
 * A client says <inactive/> when its user is away from the screen; until
 * it says <active/>, presence and typing notifications for it are held
 * (csi-policy.c says which) and written in order when it is active again,
 * or when the queue reaches queue_max. A stanza that goes through at once
 * first releases what is held from the same sender, so one sender's
 * stanzas never overtake each other (RFC 6120 10.1).
 *
 * Everything is per session, in a slot, on the session's worker: the
 * stream element handler and user_receive_packet both run there. Held
 * stanzas went through user_receive_packet already; they are written with
 * mk_session_write_xml. The state belongs to the stream, not to the
 * session: a stream that resumes the session by XEP-0198 starts active
 * (XEP-0352: the state is not restored on resumption), so the slot, which
 * survives the resumption with the session, is reset in session_resumed
 * and what it held is written then. */
#include "csi.h"

static const MkConfigKey csi_keys[] = {
    {"queue_max", MK_CONFIG_INT, "100", 1, 100000,
     "stanzas held for an inactive client before all of them are written"},
    MK_CONFIG_KEYS_END,
};

typedef struct {
    MkModule *mod;
    guint queue_max;
    MkCounter *inactive;
    MkCounter *active;
    MkCounter *held;
    MkCounter *superseded;
    MkCounter *flushed;
    MkCounter *overflows;
} Csi;

/* Per session: present only while the client is inactive (or has held
 * stanzas). */
typedef struct {
    gboolean inactive;
    CsiQueue *queue;
} CsiSlot;

static void slot_free(gpointer data)
{
    CsiSlot *slot = data;
    /* Held stanzas of a closed stream are dropped: presence and chat
     * states only, which a new session gets afresh. */
    csi_queue_free(slot->queue);
    g_free(slot);
}

static void write_all(Csi *csi, MkSession *s, GPtrArray *stanzas)
{
    for (guint i = 0; i < stanzas->len; i++)
        mk_session_write_xml(s, mk_stanza_xml(g_ptr_array_index(stanzas, i)));
    mk_counter_add(csi->flushed, stanzas->len);
}

static void flush(Csi *csi, MkSession *s, CsiSlot *slot, const char *sender)
{
    g_autoptr(GPtrArray) out = csi_queue_take(slot->queue, sender);
    write_all(csi, s, out);
}

static MkResult on_csi_element(MkSession *s, MkXml *el, gpointer user_data)
{
    Csi *csi = user_data;
    CsiSlot *slot = mk_session_get_slot(s, csi->mod);
    if (mk_xml_is(el, "inactive", NS_CSI)) {
        if (!slot) {
            slot = g_new0(CsiSlot, 1);
            slot->queue = csi_queue_new();
            mk_session_set_slot(s, csi->mod, slot, slot_free);
        }
        if (!slot->inactive)
            mk_counter_add(csi->inactive, 1);
        slot->inactive = TRUE;
        return MK_HANDLED;
    }
    if (mk_xml_is(el, "active", NS_CSI)) {
        if (slot && slot->inactive) {
            mk_counter_add(csi->active, 1);
            slot->inactive = FALSE;
            flush(csi, s, slot, NULL);
        }
        return MK_HANDLED;
    }
    return MK_PASS; /* unknown element: the core closes the stream */
}

/* The session now has a new stream, which begins active (XEP-0352):
 * what was held while the client was inactive, including what arrived
 * while the session was detached, goes out after the resent stanzas. */
static MkResult on_resumed(MkHookCall *call, gpointer user_data)
{
    Csi *csi = user_data;
    MkSession *s = mk_hook_call_session(call);
    CsiSlot *slot = s ? mk_session_get_slot(s, csi->mod) : NULL;
    if (slot && slot->inactive) {
        mk_counter_add(csi->active, 1);
        slot->inactive = FALSE;
        flush(csi, s, slot, NULL);
    }
    return MK_PASS;
}

/* Runs last (lowest priority): whatever reaches it is going to the
 * client, filters have spoken. */
static MkResult on_receive(MkHookCall *call, gpointer user_data)
{
    Csi *csi = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st)
        return MK_PASS;
    CsiSlot *slot = mk_session_get_slot(s, csi->mod);
    if (!slot || !slot->inactive)
        return MK_PASS;

    MkJid *from = mk_stanza_from(st);
    const char *sender = from ? mk_jid_string(from) : "";
    CsiAction action = csi_classify(mk_stanza_xml(st));
    if (action == CSI_PASS) {
        /* The sender's held stanzas go first, then this one through the
         * core as usual. */
        flush(csi, s, slot, sender);
        return MK_PASS;
    }
    if (csi_queue_push(slot->queue, st, sender, action))
        mk_counter_add(csi->superseded, 1);
    else
        mk_counter_add(csi->held, 1);
    if (csi_queue_length(slot->queue) >= csi->queue_max) {
        mk_counter_add(csi->overflows, 1);
        flush(csi, s, slot, NULL);
    }
    return MK_HANDLED;
}

static gboolean csi_start(MkModule *mod, GError **error)
{
    Csi *csi = g_new0(Csi, 1);
    csi->mod = mod;
    csi->queue_max = (guint)mk_config_get_int(mod, "queue_max");
    csi->inactive = mk_counter_new(mod, "inactive");
    csi->active = mk_counter_new(mod, "active");
    csi->held = mk_counter_new(mod, "held");
    csi->superseded = mk_counter_new(mod, "superseded");
    csi->flushed = mk_counter_new(mod, "flushed");
    csi->overflows = mk_counter_new(mod, "overflows");
    /* Sessions may outlive a stop (their slots then hold this module's
     * free function, not its state): freed with the module's data. */
    mk_module_set_data(mod, csi, g_free);
    if (!mk_stream_element_register(mod, NS_CSI, on_csi_element, csi, error))
        return FALSE;
    mk_stream_feature_add(mod, MK_STREAM_POST_AUTH, "<csi xmlns='" NS_CSI "'/>");
    mk_hook_add(mod, MK_HOOK_USER_RECEIVE_PACKET, -100, on_receive, csi);
    mk_hook_add(mod, MK_HOOK_SESSION_RESUMED, 50, on_resumed, csi);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,   .name = "mod_csi",  .version = "1.0",
    .config_keys = csi_keys, .start = csi_start,
};
