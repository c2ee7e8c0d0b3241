/* XEP-0198 acknowledgement holds. See ackgate.h. */
#include "ackgate.h"

struct MkAckGate {
    gint ref; /* atomic */
    GMutex lock;
    GQueue holds; /* MkAckHold*, links embedded; under lock */
    MkWorker *w;
    MkAckGateFunc released; /* under lock; NULL once closed */
    gpointer owner;
    gboolean posted; /* a callback job is queued; under lock */
};

struct MkAckHold {
    GList link;      /* .data = the hold */
    MkAckGate *gate; /* ref */
    guint32 h;
};

MkAckGate *mk_ack_gate_new(MkWorker *w, MkAckGateFunc released, gpointer owner)
{
    MkAckGate *g = g_new0(MkAckGate, 1);
    g->ref = 1;
    g_mutex_init(&g->lock);
    g_queue_init(&g->holds);
    g->w = w;
    g->released = released;
    g->owner = owner;
    return g;
}

MkAckGate *mk_ack_gate_ref(MkAckGate *gate)
{
    g_atomic_int_inc(&gate->ref);
    return gate;
}

void mk_ack_gate_unref(MkAckGate *gate)
{
    if (!gate || !g_atomic_int_dec_and_test(&gate->ref))
        return;
    /* Holds keep a reference: none can be left here. */
    g_mutex_clear(&gate->lock);
    g_free(gate);
}

void mk_ack_gate_close(MkAckGate *gate)
{
    if (!gate)
        return;
    g_mutex_lock(&gate->lock);
    gate->released = NULL;
    gate->owner = NULL;
    g_mutex_unlock(&gate->lock);
    mk_ack_gate_unref(gate);
}

guint32 mk_ack_gate_durable(MkAckGate *gate, guint32 h_in)
{
    guint32 oldest_age = 0;
    gboolean any = FALSE;
    g_mutex_lock(&gate->lock);
    for (GList *l = gate->holds.head; l; l = l->next) {
        guint32 age = h_in - ((MkAckHold *)l->data)->h; /* unsigned: across the wrap */
        if (!any || age > oldest_age)
            oldest_age = age;
        any = TRUE;
    }
    g_mutex_unlock(&gate->lock);
    return any ? h_in - oldest_age - 1 : h_in;
}

MkAckHold *mk_ack_gate_hold(MkAckGate *gate, guint32 h)
{
    MkAckHold *hold = g_new0(MkAckHold, 1);
    hold->link.data = hold;
    hold->gate = mk_ack_gate_ref(gate);
    hold->h = h;
    g_mutex_lock(&gate->lock);
    g_queue_push_tail_link(&gate->holds, &hold->link);
    g_mutex_unlock(&gate->lock);
    return hold;
}

/* On the gate's worker. */
static void released_job(gpointer data)
{
    MkAckGate *gate = data;
    g_mutex_lock(&gate->lock);
    gate->posted = FALSE;
    MkAckGateFunc func = gate->released;
    gpointer owner = gate->owner;
    g_mutex_unlock(&gate->lock);
    /* Closing happens on this thread too: owner stays valid meanwhile. */
    if (func)
        func(owner);
    mk_ack_gate_unref(gate);
}

/* Public module API (mk-stanza.h). Any thread. */
void mk_ack_hold_release(MkAckHold *hold)
{
    if (!hold)
        return;
    MkAckGate *gate = hold->gate;
    gboolean post = FALSE;
    g_mutex_lock(&gate->lock);
    g_queue_unlink(&gate->holds, &hold->link);
    if (gate->released && !gate->posted) {
        gate->posted = TRUE;
        post = TRUE;
    }
    g_mutex_unlock(&gate->lock);
    if (post)
        mk_worker_post(gate->w, released_job, mk_ack_gate_ref(gate),
                       (GDestroyNotify)mk_ack_gate_unref);
    mk_ack_gate_unref(gate);
    g_free(hold);
}
