/* mod_csi: which stanzas wait while the client is inactive, and the
 * queue that holds them. No server calls beyond stanza/XML accessors.
 *
 * Held: presence (available and unavailable; the latest per sender full
 * JID is enough to show the current state), and messages without a body
 * that carry a chat state (typing notifications: stale by the time the
 * user looks). Delivered at once: messages with a body, IQs (the sender
 * waits for an answer), subscription presence (the user decides on
 * them), errors, anything else. */
#include "csi.h"

CsiAction csi_classify(MkXml *xml)
{
    const char *name = mk_xml_name(xml);
    const char *type = mk_xml_get_attr(xml, "type");
    if (g_strcmp0(name, "presence") == 0) {
        if (!type || g_str_equal(type, "unavailable"))
            return CSI_LATEST;
        return CSI_PASS;
    }
    if (g_strcmp0(name, "message") == 0) {
        if (g_strcmp0(type, "error") == 0 || mk_xml_child(xml, "body", NULL) ||
            mk_xml_child(xml, "subject", NULL))
            return CSI_PASS;
        if (mk_xml_child(xml, NULL, NS_CHATSTATES))
            return CSI_QUEUE;
        return CSI_PASS;
    }
    return CSI_PASS;
}

typedef struct {
    MkStanza *st;
    char *sender;
    gboolean presence;
} Held;

struct CsiQueue {
    GQueue items;          /* Held*, oldest first */
    GHashTable *presences; /* sender -> GList* link of its held presence */
};

static void held_free(Held *h)
{
    mk_stanza_unref(h->st);
    g_free(h->sender);
    g_free(h);
}

CsiQueue *csi_queue_new(void)
{
    CsiQueue *q = g_new0(CsiQueue, 1);
    g_queue_init(&q->items);
    q->presences = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return q;
}

void csi_queue_free(gpointer data)
{
    CsiQueue *q = data;
    if (!q)
        return;
    g_queue_clear_full(&q->items, (GDestroyNotify)held_free);
    g_hash_table_destroy(q->presences);
    g_free(q);
}

guint csi_queue_length(CsiQueue *q)
{
    return g_queue_get_length(&q->items);
}

gboolean csi_queue_push(CsiQueue *q, MkStanza *st, const char *sender, CsiAction action)
{
    gboolean replaced = FALSE;
    Held *h = g_new0(Held, 1);
    h->st = mk_stanza_ref(st);
    h->sender = g_strdup(sender ? sender : "");
    h->presence = action == CSI_LATEST;
    if (h->presence) {
        GList *old = g_hash_table_lookup(q->presences, h->sender);
        if (old) {
            held_free(old->data);
            g_queue_delete_link(&q->items, old);
            replaced = TRUE;
        }
    }
    g_queue_push_tail(&q->items, h);
    if (h->presence)
        g_hash_table_replace(q->presences, g_strdup(h->sender), q->items.tail);
    return replaced;
}

GPtrArray *csi_queue_take(CsiQueue *q, const char *sender)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mk_stanza_unref);
    for (GList *l = q->items.head; l;) {
        GList *next = l->next;
        Held *h = l->data;
        if (!sender || g_str_equal(h->sender, sender)) {
            g_ptr_array_add(out, mk_stanza_ref(h->st));
            if (h->presence)
                g_hash_table_remove(q->presences, h->sender);
            held_free(h);
            g_queue_delete_link(&q->items, l);
        }
        l = next;
    }
    return out;
}
