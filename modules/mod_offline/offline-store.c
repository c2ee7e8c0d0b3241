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
    Offline *o;
    MkUserJob *job;
    MkStanza *st;
    MkJid *user; /* bare */
    char *sender;
    char *stamp;
    char *xml;
    guint attempt;
    OfflineStoreResult result;
    gboolean settled;       /* stored or bounced */
    gboolean retry_waiting; /* a retry timer is pending */
    MkAckHold *hold;        /* the sender's XEP-0198 acknowledgement, until settled */
} StoreOp;

/* The job's data: freed when the job finished, or when the module
 * stopped before it started. */
static void store_op_free(gpointer data)
{
    StoreOp *op = data;
    /* Only a stop frees an op that is neither stored nor bounced (it
     * waited in the queue). */
    if (!op->settled)
        g_warning("mod_offline: stopping before the message from %s to %s could be stored",
                  op->sender, mk_jid_string(op->user));
    /* At a stop the sender's stream is gone or going: nothing counts it. */
    mk_ack_hold_release(g_steal_pointer(&op->hold));
    mk_stanza_unref(op->st);
    mk_jid_unref(op->user);
    g_free(op->sender);
    g_free(op->stamp);
    g_free(op->xml);
    g_free(op);
}

/* Ends the job: @op is freed. */
static void store_finish(StoreOp *op)
{
    /* Stored (committed) or answered: the sender's <a/> may count it. */
    mk_ack_hold_release(g_steal_pointer(&op->hold));
    mk_user_job_finish(op->job);
}

static void store_bounce(StoreOp *op, MkStanzaError cond, const char *text)
{
    op->settled = TRUE;
    g_autoptr(MkStanza) err = mk_stanza_new_error_reply(op->st, cond, text);
    if (err)
        mk_router_send(err);
    mk_counter_add(op->o->bounced, 1);
}

static gboolean store_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    StoreOp *op = user_data;
    return offline_db_store(conn, mk_jid_node(op->user), mk_jid_domain(op->user), &op->o->limits,
                            op->sender, op->stamp, op->xml, &op->result, error);
}

static void store_done(const GError *error, gpointer user_data);

static void store_submit(StoreOp *op)
{
    mk_db_transaction_run(op->o->mod, store_work, store_done, op, NULL);
}

static gboolean store_retry(gpointer user_data)
{
    StoreOp *op = user_data;
    op->retry_waiting = FALSE;
    store_submit(op);
    return G_SOURCE_REMOVE;
}

/* The retry timer ended: after store_retry, or because the module stopped
 * first (then on the main thread; the job waits for nothing else), and
 * the sender hears of it. */
static void store_retry_ended(gpointer user_data)
{
    StoreOp *op = user_data;
    if (!op->retry_waiting)
        return;
    g_warning("mod_offline: stopping before the message from %s to %s could be stored;"
              " bounced to the sender",
              op->sender, mk_jid_string(op->user));
    store_bounce(op, MK_ERR_RESOURCE_CONSTRAINT, "Offline storage is unavailable");
    store_finish(op);
}

/* On the job's thread. */
static void store_done(const GError *error, gpointer user_data)
{
    StoreOp *op = user_data;
    Offline *o = op->o;

    if (error) {
        mk_counter_add(o->store_failures, 1);
        if (offline_retry_next(op->attempt, o->retries) == OFFLINE_RETRY) {
            guint delay = offline_retry_delay_ms(op->attempt, o->retry_ms);
            op->attempt++;
            g_message("mod_offline: storing a message for %s failed (%s); retry %u in %u ms",
                      mk_jid_string(op->user), error->message, op->attempt, delay);
            op->retry_waiting = TRUE;
            mk_timer_add_full(o->mod, delay, store_retry, op, store_retry_ended);
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
    gboolean stored = op->result == OFFLINE_STORED;
    store_finish(op);
    /* The user may have come online while this was being stored, after
     * the delivery at its initial presence looked: deliver now. Queued
     * after this job, so it sees the new row. */
    if (stored)
        offline_deliver(o, user, NULL);
}

static void store_start(MkUserJob *job, gpointer data)
{
    StoreOp *op = data;
    op->job = job;
    store_submit(op);
}

void offline_store(Offline *o, MkStanza *st, MkJid *to)
{
    StoreOp *op = g_new0(StoreOp, 1);
    op->o = o;
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
        op->stamp = mk_xep82_format(now);
    }
    op->hold = mk_stanza_hold_ack(st);
    op->xml = mk_xml_to_string(mk_stanza_xml(st), NULL);
    mk_user_queue_run(o->queue, mk_jid_string(op->user), store_start, op, store_op_free);
}
