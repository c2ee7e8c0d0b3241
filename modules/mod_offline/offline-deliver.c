/* The delivery job: a user's stored messages, oldest first, to the
 * resource that sent initial presence (XEP-0160 section 2, step 5), each
 * with an XEP-0203 <delay/> saying when the server took it; then their
 * rows are deleted. Rows go only after their stanza was handed to the
 * session (mk_session_send), so a failure in between delivers twice
 * rather than never. Failed storage calls are retried with the store's
 * back-off; a fetch that keeps failing leaves the messages for the next
 * initial presence. */
#include "offline.h"

typedef struct {
    gint64 id;
    char *stamp;
    char *xml;
} Row;

typedef struct {
    Offline *o;
    MkUserJob *job;
    MkJid *user; /* bare */
    MkSession *target;
    GPtrArray *rows; /* Row*, filled by the fetch */
    GArray *ids;     /* gint64 rows handed out, to delete */
    gboolean deleting;
    guint attempt;
    gboolean retry_waiting; /* a retry timer is pending */
} DeliverOp;

static void row_free(gpointer data)
{
    Row *row = data;
    g_free(row->stamp);
    g_free(row->xml);
    g_free(row);
}

/* The job's data: freed when the job finished, or when the module
 * stopped before it started. */
static void deliver_op_free(gpointer data)
{
    DeliverOp *op = data;
    mk_jid_unref(op->user);
    if (op->target)
        mk_session_unref(op->target);
    g_ptr_array_unref(op->rows);
    g_array_unref(op->ids);
    g_free(op);
}

/* A resource that may take the user's messages now: available with a
 * non-negative priority (XEP-0160 section 2), still in the session table.
 * @preferred when it qualifies, else any that does. (transfer full)
 * (nullable) */
static MkSession *pick_target(MkJid *user, MkSession *preferred)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    MkSession *any = NULL;
    for (guint i = 0; i < sessions->len; i++) {
        MkSession *s = g_ptr_array_index(sessions, i);
        if (!mk_session_is_available(s) || mk_session_priority(s) < 0)
            continue;
        if (s == preferred)
            return mk_session_ref(s);
        if (!any)
            any = s;
    }
    return any ? mk_session_ref(any) : NULL;
}

/* Ends the job: @op is freed. */
static void deliver_finish(DeliverOp *op)
{
    mk_user_job_finish(op->job);
}

static gboolean fetch_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    DeliverOp *op = user_data;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, OFFLINE_SQL_FETCH, MK_DB_STR(mk_jid_node(op->user)),
                         MK_DB_STR(mk_jid_domain(op->user)));
    if (!r)
        return FALSE;
    g_ptr_array_set_size(op->rows, 0);
    for (guint i = 0; i < mk_db_result_rows(r); i++) {
        Row *row = g_new0(Row, 1);
        row->id = mk_db_result_get_int(r, i, 0);
        row->stamp = g_strdup(mk_db_result_get_string(r, i, 1));
        row->xml = g_strdup(mk_db_result_get_string(r, i, 2));
        g_ptr_array_add(op->rows, row);
    }
    return TRUE;
}

static gboolean delete_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    DeliverOp *op = user_data;
    return offline_db_delete(conn, op->ids, error);
}

static void step_done(const GError *error, gpointer user_data);

static void step_submit(DeliverOp *op)
{
    mk_db_transaction_run(op->o->mod, op->deleting ? delete_work : fetch_work, step_done, op, NULL);
}

static gboolean step_retry(gpointer user_data)
{
    DeliverOp *op = user_data;
    op->retry_waiting = FALSE;
    step_submit(op);
    return G_SOURCE_REMOVE;
}

/* The retry timer ended: after step_retry, or because the module stopped
 * first; then the rows stay stored (or, when they were being deleted,
 * are delivered again). */
static void step_retry_ended(gpointer user_data)
{
    DeliverOp *op = user_data;
    if (op->retry_waiting)
        deliver_finish(op);
}

/* The stored stanza with the XEP-0203 delay. (transfer full) (nullable) */
static MkStanza *delayed_stanza(const Row *row, const char *domain)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) xml = mk_xml_parse(row->xml, -1, &error);
    if (!xml || !mk_xml_is(xml, "message", NS_CLIENT)) {
        g_warning("mod_offline: dropping unreadable stored message %" G_GINT64_FORMAT ": %s",
                  row->id, error ? error->message : "not a message");
        return NULL;
    }
    /* Exactly one delay: a message that was stamped before (stream
     * management re-routed it, or it was stored and moved before) keeps
     * its original one. */
    if (!mk_xml_child(xml, "delay", NS_DELAY)) {
        MkXml *delay = mk_xml_add_child(xml, "delay", NS_DELAY);
        mk_xml_set_attr(delay, "from", domain);
        mk_xml_set_attr(delay, "stamp", row->stamp);
        mk_xml_add_text(delay, "Offline Storage", -1);
    }
    MkStanza *st = mk_stanza_new(xml, &error);
    if (!st)
        g_warning("mod_offline: dropping stored message %" G_GINT64_FORMAT ": %s", row->id,
                  error->message);
    return st;
}

/* Hands the fetched rows to the target, in order, and notes their ids. */
static void hand_out(DeliverOp *op)
{
    g_autoptr(MkSession) target = pick_target(op->user, op->target);
    if (!target)
        return; /* everybody went away meanwhile: the rows wait */
    for (guint i = 0; i < op->rows->len; i++) {
        const Row *row = g_ptr_array_index(op->rows, i);
        g_autoptr(MkStanza) st = delayed_stanza(row, mk_jid_domain(op->user));
        if (st) {
            mk_session_send(target, st);
            mk_counter_add(op->o->delivered, 1);
        }
        g_array_append_val(op->ids, row->id);
    }
}

/* On the job's thread. */
static void step_done(const GError *error, gpointer user_data)
{
    DeliverOp *op = user_data;
    Offline *o = op->o;

    if (error) {
        if (offline_retry_next(op->attempt, o->retries) == OFFLINE_RETRY) {
            guint delay = offline_retry_delay_ms(op->attempt, o->retry_ms);
            op->attempt++;
            g_message("mod_offline: %s the messages of %s failed (%s); retry %u in %u ms",
                      op->deleting ? "deleting" : "fetching", mk_jid_string(op->user),
                      error->message, op->attempt, delay);
            op->retry_waiting = TRUE;
            mk_timer_add_full(o->mod, delay, step_retry, op, step_retry_ended);
            return;
        }
        g_warning("mod_offline: gave up %s the messages of %s: %s%s",
                  op->deleting ? "deleting" : "fetching", mk_jid_string(op->user), error->message,
                  op->deleting ? " (they will be delivered again)" : " (they stay stored)");
        deliver_finish(op);
        return;
    }
    if (!op->deleting) {
        hand_out(op);
        if (op->ids->len == 0) {
            deliver_finish(op);
            return;
        }
        op->deleting = TRUE;
        op->attempt = 0;
        step_submit(op);
        return;
    }
    deliver_finish(op);
}

static void deliver_start(MkUserJob *job, gpointer data)
{
    DeliverOp *op = data;
    op->job = job;
    /* Who takes them is decided now, after earlier stores finished. */
    MkSession *target = pick_target(op->user, op->target);
    if (op->target)
        mk_session_unref(op->target);
    op->target = target;
    if (!target) {
        deliver_finish(op);
        return;
    }
    step_submit(op);
}

void offline_deliver(Offline *o, MkJid *user, MkSession *target)
{
    g_autoptr(MkJid) bare = mk_jid_bare(user);
    if (!target) {
        /* Called after every store: cheap when nobody is online. */
        g_autoptr(MkSession) any = pick_target(bare, NULL);
        if (!any)
            return;
    }
    DeliverOp *op = g_new0(DeliverOp, 1);
    op->o = o;
    op->user = g_steal_pointer(&bare);
    op->target = target ? mk_session_ref(target) : NULL;
    op->rows = g_ptr_array_new_with_free_func(row_free);
    op->ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    mk_user_queue_run(o->queue, mk_jid_string(op->user), deliver_start, op, deliver_op_free);
}
