/* Holding back XEP-0198 acknowledgements until what they count is safe.
 *
 * An <a h='N'/> tells the client it may forget the first N stanzas it
 * sent. A stanza a module takes over and makes durable later (mod_offline
 * stores it on the storage pool) must not be counted before that: a
 * crash in between would lose a stanza the client was told is safe. The
 * stream (c2s-sm.c) owns a gate; each stanza it reads carries the gate
 * and its number (mk_stanza_set_ack_gate); a module that defers the
 * stanza's fate takes a hold (mk_stanza_hold_ack) and releases it when
 * the stanza is stored or answered. The stream answers <r/> only with an
 * h below every held stanza, and waits for the holds when there are any.
 *
 * Threads: holds are taken and released on any thread; the gate's
 * callback runs on its worker, never inside a release. */
#pragma once

#include "mk-core.h"
#include "worker.h"

typedef struct MkAckGate MkAckGate;
typedef void (*MkAckGateFunc)(gpointer owner);

/* A gate whose @released(@owner) runs on @w (through its mailbox) after
 * holds were released, coalesced. (transfer full) @w's thread. */
MkAckGate *mk_ack_gate_new(MkWorker *w, MkAckGateFunc released, gpointer owner);
/* The owner goes away: no callback runs after this returns; the holds
 * still out release into nothing. Drops the owner's reference. The
 * gate's worker. */
void mk_ack_gate_close(MkAckGate *gate);
MkAckGate *mk_ack_gate_ref(MkAckGate *gate);
void mk_ack_gate_unref(MkAckGate *gate);
/* The stanza number just below the oldest held one, when any is held,
 * relative to @h_in, the last stanza number handed out (numbers wrap at
 * 2^32). Returns @h_in when nothing is held. Any thread. */
guint32 mk_ack_gate_durable(MkAckGate *gate, guint32 h_in);

/* Core side of mk_stanza_hold_ack (stanza.c): @st is stanza number @h of
 * @gate's stream. Before @st is routed (stanzas are immutable after). */
void mk_stanza_set_ack_gate(MkStanza *st, MkAckGate *gate, guint32 h);
/* (transfer full) (nullable) A hold on stanza @h of @gate. Any thread. */
MkAckHold *mk_ack_gate_hold(MkAckGate *gate, guint32 h);
