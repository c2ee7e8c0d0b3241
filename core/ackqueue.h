/* The XEP-0198 counters of one stream and its queue of stanzas sent but
 * not yet acknowledged. Pure logic, no I/O: c2s-sm.c drives it, and
 * tests/unit/test-ackqueue.c checks it (wrap-around at 2^32, trimming,
 * the byte count).
 *
 * Counters are 32-bit and wrap (XEP-0198 section 4: "h" counts modulo
 * 2^32), so every comparison is done on differences. The queue always
 * holds exactly h_out - acked stanzas.
 *
 * Threads: the owner of the stream only. */
#pragma once

#include "mk-core.h"

/* One unacknowledged stanza. The GList link is embedded: queuing costs
 * one allocation, as a plain GQueue push did. */
typedef struct {
    GList link;      /* .data points to the entry itself */
    MkXml *xml;      /* ref */
    gsize bytes;     /* as written (or as it would be written) to the stream */
    gint64 stamp_us; /* wall clock when it was sent: the XEP-0203 stamp if re-routed */
    /* When the router chose this session among the account's resources
     * (sm.h mk_sm_bare_targets); 0 when it was addressed otherwise. */
    gint64 chosen_us;
} MkAckEntry;

typedef struct {
    guint32 h_in;   /* stanzas handled from the client */
    guint32 h_out;  /* stanzas sent to the client */
    guint32 acked;  /* the client's last acknowledged h */
    GQueue unacked; /* MkAckEntry*, oldest first */
    gsize bytes;    /* sum of the queued entries' bytes */
} MkAckQueue;

void mk_ack_queue_init(MkAckQueue *q);
/* Frees every queued entry. The counters stay. */
void mk_ack_queue_clear(MkAckQueue *q);
/* TRUE for message, presence and iq in jabber:client (or without a
 * namespace, as core replies are built): what "h" counts. */
gboolean mk_ack_queue_is_stanza(MkXml *el);
/* @stanza (@bytes long on the wire) was sent at @stamp_us (wall clock),
 * routed to this stream by a choice made at @chosen_us (0: none):
 * counted and queued (a reference is taken). */
void mk_ack_queue_sent(MkAckQueue *q, MkXml *stanza, gsize bytes, gint64 stamp_us,
                       gint64 chosen_us);
/* The client says it handled @h stanzas: drops those from the queue.
 * FALSE (nothing changed) when @h acknowledges more than was sent. */
gboolean mk_ack_queue_ack(MkAckQueue *q, guint32 h);
/* Takes the oldest entry out of the queue (the counters stay: the stream
 * is over). (transfer full) (nullable) Free with mk_ack_entry_free. */
MkAckEntry *mk_ack_queue_pop(MkAckQueue *q);
void mk_ack_entry_free(MkAckEntry *e);
/* Parses an "h" attribute (decimal, 0 .. 2^32-1). FALSE when malformed. */
gboolean mk_ack_queue_parse_h(const char *text, guint32 *h);
