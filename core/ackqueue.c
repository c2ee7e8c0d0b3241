/* XEP-0198 counters and the unacknowledged queue. See ackqueue.h. */
#include "ackqueue.h"
#include <errno.h>
#include <string.h>

void mk_ack_queue_init(MkAckQueue *q)
{
    memset(q, 0, sizeof *q);
    g_queue_init(&q->unacked);
}

void mk_ack_entry_free(MkAckEntry *e)
{
    if (!e)
        return;
    mk_xml_unref(e->xml);
    g_free(e);
}

MkAckEntry *mk_ack_queue_pop(MkAckQueue *q)
{
    GList *l = g_queue_pop_head_link(&q->unacked);
    if (!l)
        return NULL;
    MkAckEntry *e = l->data;
    q->bytes -= e->bytes;
    return e;
}

void mk_ack_queue_clear(MkAckQueue *q)
{
    MkAckEntry *e;
    while ((e = mk_ack_queue_pop(q)))
        mk_ack_entry_free(e);
}

gboolean mk_ack_queue_is_stanza(MkXml *el)
{
    const char *ns = mk_xml_ns(el);
    if (ns && strcmp(ns, "jabber:client") != 0)
        return FALSE;
    const char *name = mk_xml_name(el);
    return g_str_equal(name, "message") || g_str_equal(name, "presence") || g_str_equal(name, "iq");
}

void mk_ack_queue_sent(MkAckQueue *q, MkXml *stanza, gsize bytes, gint64 stamp_us, gint64 chosen_us)
{
    MkAckEntry *e = g_new(MkAckEntry, 1);
    e->link.data = e;
    e->link.prev = e->link.next = NULL;
    e->xml = mk_xml_ref(stanza);
    e->bytes = bytes;
    e->stamp_us = stamp_us;
    e->chosen_us = chosen_us;
    q->h_out++; /* wraps at 2^32 as the XEP says */
    q->bytes += bytes;
    g_queue_push_tail_link(&q->unacked, &e->link);
}

gboolean mk_ack_queue_ack(MkAckQueue *q, guint32 h)
{
    /* Unsigned difference: correct across the wrap. */
    guint32 n = h - q->acked;
    if (n > q->unacked.length)
        return FALSE;
    for (guint32 i = 0; i < n; i++)
        mk_ack_entry_free(mk_ack_queue_pop(q));
    q->acked = h;
    return TRUE;
}

gboolean mk_ack_queue_parse_h(const char *text, guint32 *h)
{
    if (!text || !g_ascii_isdigit(*text))
        return FALSE;
    char *end;
    errno = 0;
    guint64 v = g_ascii_strtoull(text, &end, 10);
    if (*end || errno || v > G_MAXUINT32)
        return FALSE;
    *h = (guint32)v;
    return TRUE;
}
