/* The store job: one message for one user, with retries.
 *
 * The offline_message hook has already told the core the message is
 * taken care of, so from here on it must end either stored or bounced to
 * its sender, never dropped: a failed storage call is retried with
 * back-off (store_retries times, from store_retry_ms), then the sender
 * gets resource-constraint (type wait: try again later). A full queue or
 * a missing account gets service-unavailable (XEP-0160 section 2, RFC 6121
 * 8.5.1). The only loss is a shutdown that comes before the message could
 * be stored, and that is logged as a warning with both addresses.
 *
 * When the sender's stream uses stream management, its acknowledgement
 * of the message is held (mk_stanza_hold_ack) until the store committed
 * or the sender was answered: an <a/> never counts a message a crash
 * could still lose. */
#include "offline.h"

typedef struct {
    gint ref;
    Offline *o;
    OfflineJob *job; /* while the job runs */
    MkStanza *st;
    MkJid *user; /* bare */
    char *sender;
    char *stamp;
    char *xml;
    guint attempt;
    OfflineStoreResult result;
    gboolean settled; /* stored or bounced */
    MkAckHold *hold;  /* the sender's XEP-0198 acknowledgement, until settled */
} StoreOp;

/* One pending callback of an op (a storage completion or a retry timer):
 * the callback marks it called; when it is released without having been
 * called, its thread ended (shutdown) and the job is abandoned. */
typedef struct {
    StoreOp *op;
    gboolean called;
    gboolean cancelled; /* the module stopped; the message was bounced */
} Pending;

static StoreOp *store_op_ref(StoreOp *op)
{
    g_atomic_int_inc(&op->ref);
    return op;
}

static void store_op_unref(gpointer data)
{
    StoreOp *op = data;
    if (!op || !g_atomic_int_dec_and_test(&op->ref))
        return;
    /* Only a shutdown frees an op that is neither stored nor bounced
     * (waiting in the queue, or its storage call never came back). */
    if (!op->settled)
        g_warning("mod_offline: shutting down before the message from %s to %s could be stored",
                  op->sender, mk_jid_string(op->user));
    /* At shutdown the sender's stream is gone: nothing counts it. */
    mk_ack_hold_release(g_steal_pointer(&op->hold));
    offline_unref(op->o);
    mk_stanza_unref(op->st);
    mk_jid_unref(op->user);
    g_free(op->sender);
    g_free(op->stamp);
    g_free(op->xml);
    g_free(op);
}

static Pending *pending_new(StoreOp *op)
{
    Pending *p = g_new0(Pending, 1);
    p->op = store_op_ref(op);
    return p;
}

static StoreOp *pending_call(gpointer data)
{
    Pending *p = data;
    p->called = TRUE;
    return p->op;
}

static void pending_release(gpointer data)
{
    Pending *p = data;
    StoreOp *op = p->op;
    if (!p->called && op->job) {
        /* Drops the queue's reference. */
        offline_job_abandon(g_steal_pointer(&op->job));
    }
    store_op_unref(op);
    g_free(p);
}

static void store_finish(StoreOp *op)
{
    /* Stored (committed) or answered: the sender's <a/> may count it. */
    mk_ack_hold_release(g_steal_pointer(&op->hold));
    offline_job_finish(g_steal_pointer(&op->job));
}

static void store_bounce(StoreOp *op, MkStanzaError cond, const char *text)
{
    op->settled = TRUE;
    g_autoptr(MkStanza) err = mk_stanza_error_reply(op->st, cond, text);
    if (err)
        mk_route(err);
    mk_counter_add(op->o->bounced, 1);
}

static gboolean store_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    StoreOp *op = ((Pending *)user_data)->op;
    return offline_db_store(conn, mk_jid_node(op->user), mk_jid_domain(op->user), &op->o->limits,
                            op->sender, op->stamp, op->xml, &op->result, error);
}

static void store_done(const GError *error, gpointer user_data);

static void store_submit(StoreOp *op)
{
    mk_db_transaction(op->o->mod, store_work, store_done, pending_new(op), pending_release);
}

/* The module stops while a retry waits: the sender hears of it. */
static void store_cancel(gpointer user_data)
{
    Pending *p = user_data;
    p->cancelled = TRUE;
    p->op->settled = TRUE;
    g_warning("mod_offline: stopping before the message from %s to %s could be stored;"
              " bounced to the sender",
              p->op->sender, mk_jid_string(p->op->user));
    store_bounce(p->op, MK_ERR_RESOURCE_CONSTRAINT, "Offline storage is unavailable");
    mk_ack_hold_release(g_steal_pointer(&p->op->hold));
}

static gboolean store_retry(gpointer user_data)
{
    store_submit(pending_call(user_data));
    return G_SOURCE_REMOVE;
}

/* On the job's thread. */
static void store_done(const GError *error, gpointer user_data)
{
    StoreOp *op = pending_call(user_data);
    Offline *o = op->o;

    if (error) {
        mk_counter_add(o->store_failures, 1);
        if (offline_retry_next(op->attempt, o->retries) == OFFLINE_RETRY) {
            guint delay = offline_retry_delay_ms(op->attempt, o->retry_ms);
            op->attempt++;
            g_message("mod_offline: storing a message for %s failed (%s); retry %u in %u ms",
                      mk_jid_string(op->user), error->message, op->attempt, delay);
            offline_call_later(o, offline_job_context(op->job), delay, store_retry, store_cancel,
                               pending_new(op), pending_release);
            return;
        }
        g_warning("mod_offline: could not store a message from %s to %s after %u attempts (%s);"
                  " bounced to the sender",
                  op->sender, mk_jid_string(op->user), op->attempt + 1, error->message);
        store_bounce(op, MK_ERR_RESOURCE_CONSTRAINT, "Offline storage is unavailable");
        store_finish(op);
        return;
    }

    switch (op->result) {
    case OFFLINE_STORED:
        op->settled = TRUE;
        mk_counter_add(o->stored, 1);
        break;
    case OFFLINE_QUOTA:
        store_bounce(op, MK_ERR_SERVICE_UNAVAILABLE, "Offline storage is full");
        break;
    case OFFLINE_QUOTA_BYTES:
        mk_counter_add(o->over_bytes, 1);
        store_bounce(op, MK_ERR_SERVICE_UNAVAILABLE, "Offline storage is full");
        break;
    case OFFLINE_QUOTA_SENDER:
        /* The recipient's store has room, not for this sender: try later. */
        mk_counter_add(o->over_sender, 1);
        store_bounce(op, MK_ERR_RESOURCE_CONSTRAINT, "Too many offline messages from you");
        break;
    case OFFLINE_NO_ACCOUNT:
        store_bounce(op, MK_ERR_SERVICE_UNAVAILABLE, NULL);
        break;
    }
    g_autoptr(MkJid) user = mk_jid_ref(op->user);
    store_finish(op);
    /* The user may have come online while this was being stored, after
     * the delivery at its initial presence looked: deliver now. Queued
     * after this job, so it sees the new row. */
    if (op->result == OFFLINE_STORED)
        offline_deliver(o, user, NULL);
}

static void store_start(OfflineJob *job, gpointer data)
{
    StoreOp *op = data;
    op->job = job;
    store_submit(op);
}

void offline_store(Offline *o, MkStanza *st, MkJid *to)
{
    StoreOp *op = g_new0(StoreOp, 1);
    op->ref = 1;
    op->o = offline_ref(o);
    op->st = mk_stanza_ref(st);
    op->user = mk_jid_bare(to);
    MkJid *from = mk_stanza_from(st);
    op->sender = g_strdup(from ? mk_jid_string(from) : "");
    /* A message stamped before (re-routed by stream management) keeps its
     * original time. */
    MkXml *delay = mk_xml_child(mk_stanza_xml(st), "delay", NS_DELAY);
    const char *had = delay ? mk_xml_get_attr(delay, "stamp") : NULL;
    if (had) {
        op->stamp = g_strdup(had);
    } else {
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();
        op->stamp = offline_stamp(now);
    }
    op->hold = mk_stanza_hold_ack(st);
    op->xml = mk_xml_to_string(mk_stanza_xml(st), NULL);
    /* The queue's reference is dropped when the job finishes. */
    offline_queue_run(o->queue, mk_jid_string(op->user), store_start, op, store_op_unref);
}
