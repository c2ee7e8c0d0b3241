/* The XEP-0198 counters of one stream and its queue of stanzas sent but
 * not yet acknowledged. Pure logic, no I/O: c2s-sm.c drives it, and
 * tests/unit/test-ackqueue.c checks it (wrap-around at 2^32, trimming).
 *
 * Counters are 32-bit and wrap (XEP-0198 section 4: "h" counts modulo
 * 2^32), so every comparison is done on differences. The queue always
 * holds exactly h_out - acked stanzas.
 *
 * Threads: the owner of the stream only. */
#pragma once

#include "mk-core.h"

typedef struct {
    guint32 h_in;   /* stanzas handled from the client */
    guint32 h_out;  /* stanzas sent to the client */
    guint32 acked;  /* the client's last acknowledged h */
    GQueue unacked; /* MkXml* (ref each), oldest first */
} MkAckQueue;

void mk_ack_queue_init(MkAckQueue *q);
/* Unrefs every queued stanza. The counters stay. */
void mk_ack_queue_clear(MkAckQueue *q);
/* TRUE for message, presence and iq in jabber:client (or without a
 * namespace, as core replies are built): what "h" counts. */
gboolean mk_ack_queue_is_stanza(MkXml *el);
/* @stanza was sent: counted and queued (a reference is taken). */
void mk_ack_queue_sent(MkAckQueue *q, MkXml *stanza);
/* The client says it handled @h stanzas: drops those from the queue.
 * FALSE (nothing changed) when @h acknowledges more than was sent. */
gboolean mk_ack_queue_ack(MkAckQueue *q, guint32 h);
/* Parses an "h" attribute (decimal, 0 .. 2^32-1). FALSE when malformed. */
gboolean mk_ack_queue_parse_h(const char *text, guint32 *h);
