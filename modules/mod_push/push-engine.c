/* The XEP-0357 engine: enable/disable, the messages worth a
 * notification, publishing to the app server through the router, and
 * what the app server's errors do. docs/mod_push.md tells the rules. */
#include "push.h"
#include <string.h>

struct PushEngine {
    MkModule *mod;
    char *prefix; /* of the module's config keys */
    gint64 max_enablements;
    gint64 max_errors;
    gboolean include_body;
    guint timeout_ms;
    /* Messages notified since the account last bound a session: the
     * summary's message-count. Kept in memory (a restart counts from 0
     * again), taken by any worker. */
    GMutex lock;
    GHashTable *counts; /* bare JID string -> count */
    MkUserQueue *queue; /* the core's: one account's error counting in order */
    MkCounter *enabled, *disabled, *over_limit;
    MkCounter *published, *failed, *timeouts, *removed;
    char **virtual_hosts; /* nullable: set before any traffic, read-only after */
    PushVirtualFunc virtual_func;
    gpointer virtual_data;
    MkCounter *virtual_count;
};

#define SQL_SELECT_ALL                                                                             \
    "SELECT resource, service, node, form FROM push_enablements"                                   \
    " WHERE username = ? AND domain = ?"
#define SQL_SELECT_RESOURCE SQL_SELECT_ALL " AND resource = ?"

/* ---- enable / disable -------------------------------------------------- */

typedef struct {
    PushEngine *e;
    MkIq *iq;
    MkJid *account;
    char *resource;
    PushRequest *req;
    gboolean over_limit;
} PushOp;

static void push_op_free(gpointer data)
{
    PushOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->account);
    g_free(op->resource);
    push_request_free(op->req);
    g_free(op);
}

/* Storage thread, inside BEGIN. */
static gboolean enable_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    PushOp *op = user_data;
    const char *node = mk_jid_node(op->account), *domain = mk_jid_domain(op->account);
    PushRequest *r = op->req;
    /* Enabling the same service and node again replaces the row: it
     * does not count against the limit. */
    g_autoptr(MkDbResult) n = mk_db_conn_query(
        conn, error,
        "SELECT COUNT(*) FROM push_enablements WHERE username = ? AND domain = ?"
        " AND NOT (service = ? AND node = ?)",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(r->service), MK_DB_STR(r->node));
    if (!n)
        return FALSE;
    if (mk_db_result_get_int(n, 0, 0) >= op->e->max_enablements) {
        op->over_limit = TRUE;
        return TRUE;
    }
    g_autoptr(MkDbResult) up = mk_db_conn_query(
        conn, error,
        "INSERT INTO push_enablements (username, domain, resource, service, node, form, errors)"
        " VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (username, domain, service, node) DO UPDATE"
        " SET resource = excluded.resource, form = excluded.form, errors = 0",
        MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(op->resource), MK_DB_STR(r->service),
        MK_DB_STR(r->node), r->form ? MK_DB_STR(r->form) : MK_DB_NULL);
    return up != NULL;
}

static gboolean disable_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    PushOp *op = user_data;
    PushRequest *r = op->req;
    const char *node = mk_jid_node(op->account), *domain = mk_jid_domain(op->account);
    g_autoptr(MkDbResult) res =
        r->node ? mk_db_conn_query(conn, error,
                                   "DELETE FROM push_enablements WHERE username = ? AND domain = ?"
                                   " AND service = ? AND node = ?",
                                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(r->service),
                                   MK_DB_STR(r->node))
                : mk_db_conn_query(conn, error,
                                   "DELETE FROM push_enablements WHERE username = ? AND domain = ?"
                                   " AND service = ?",
                                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_STR(r->service));
    return res != NULL;
}

/* The worker that took the IQ. */
static void op_done(const GError *error, gpointer user_data)
{
    PushOp *op = user_data;
    PushEngine *e = op->e;
    if (error) {
        g_warning("%s: storing a push %s for %s: %s", mk_module_name(e->mod),
                  op->req->enable ? "enablement" : "disablement", mk_jid_string(op->account),
                  error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->over_limit) {
        mk_counter_add(e->over_limit, 1);
        g_info("%s: %s has %" G_GINT64_FORMAT " push enablements already", mk_module_name(e->mod),
               mk_jid_string(op->account), e->max_enablements);
        mk_iq_reply_error(op->iq, MK_ERR_RESOURCE_CONSTRAINT, "too many push enablements");
        return;
    }
    mk_counter_add(op->req->enable ? e->enabled : e->disabled, 1);
    mk_iq_reply(op->iq, NULL);
}

static MkResult on_push_iq(MkIq *iq, gpointer user_data)
{
    PushEngine *e = user_data;
    g_autoptr(MkJid) account = mk_iq_own_account(iq);
    if (!account)
        return MK_HANDLED; /* answered forbidden */
    const char *why = NULL;
    PushRequest *req = push_request_parse(mk_iq_payload(iq), &why);
    if (!req) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, why);
        return MK_HANDLED;
    }
    PushOp *op = g_new0(PushOp, 1);
    op->e = e;
    op->iq = mk_iq_ref(iq);
    op->account = g_steal_pointer(&account);
    op->resource = g_strdup(mk_jid_resource(mk_iq_from(iq)) ? mk_jid_resource(mk_iq_from(iq)) : "");
    op->req = req;
    mk_db_transaction_run(e->mod, req->enable ? enable_work : disable_work, op_done, op,
                          push_op_free);
    return MK_HANDLED;
}

/* ---- app server answers ------------------------------------------------ */

/* One notification in flight to one enablement. */
typedef struct {
    PushEngine *e;
    char *username, *domain, *service, *node;
    char *condition;
    gboolean removed;
} PushPub;

static void push_pub_free(gpointer data)
{
    PushPub *p = data;
    g_free(p->username);
    g_free(p->domain);
    g_free(p->service);
    g_free(p->node);
    g_free(p->condition);
    g_free(p);
}

/* Storage thread: one more error in a row; the row goes at max_errors. */
static gboolean error_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    PushPub *p = user_data;
#define PUB_KEY                                                                                    \
    MK_DB_STR(p->username), MK_DB_STR(p->domain), MK_DB_STR(p->service), MK_DB_STR(p->node)
    g_autoptr(MkDbResult) up = mk_db_conn_query(
        conn, error,
        "UPDATE push_enablements SET errors = errors + 1 WHERE username = ? AND domain = ?"
        " AND service = ? AND node = ?",
        PUB_KEY);
    if (!up)
        return FALSE;
    g_autoptr(MkDbResult) del = mk_db_conn_query(
        conn, error,
        "DELETE FROM push_enablements WHERE username = ? AND domain = ? AND service = ?"
        " AND node = ? AND errors >= ?",
        PUB_KEY, MK_DB_INT(p->e->max_errors));
    if (!del)
        return FALSE;
    p->removed = mk_db_result_affected(del) > 0;
    return TRUE;
}

static void error_done(const GError *error, gpointer user_data)
{
    PushPub *p = user_data;
    if (error) {
        g_warning("%s: counting an app server error: %s", mk_module_name(p->e->mod),
                  error->message);
        return;
    }
    if (p->removed) {
        mk_counter_add(p->e->removed, 1);
        g_message("%s: push to %s node %s for %s@%s disabled after %" G_GINT64_FORMAT
                  " errors in a row (last: %s)",
                  mk_module_name(p->e->mod), p->service, p->node, p->username, p->domain,
                  p->e->max_errors, p->condition);
    }
}

/* Storage thread: a success ends a run of errors. */
static gboolean reset_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    PushPub *p = user_data;
    g_autoptr(MkDbResult) up =
        mk_db_conn_query(conn, error,
                         "UPDATE push_enablements SET errors = 0 WHERE username = ? AND domain = ?"
                         " AND service = ? AND node = ? AND errors > 0",
                         PUB_KEY);
    return up != NULL;
}

static void reset_done(const GError *error, gpointer user_data)
{
    PushPub *p = user_data;
    if (error)
        g_warning("%s: resetting an error count: %s", mk_module_name(p->e->mod), error->message);
}

/* Counting and resetting errors run on the account's user queue, in the
 * order the answers came: a success between two errors must reset the
 * count before the second one counts. (transfer full) of @p. */
static void pub_queue(PushPub *p, MkDbWork work, MkDbWorkDone done)
{
    g_autofree char *key = g_strconcat(p->username, "@", p->domain, NULL);
    mk_user_queue_push(p->e->queue, key, work, done, p, push_pub_free);
}

static PushPub *pub_copy(PushPub *p, const char *condition)
{
    PushPub *q = g_new0(PushPub, 1);
    q->e = p->e;
    q->username = g_strdup(p->username);
    q->domain = g_strdup(p->domain);
    q->service = g_strdup(p->service);
    q->node = g_strdup(p->node);
    q->condition = g_strdup(condition);
    return q;
}

/* The worker that published. @response (transfer none) (nullable): timeout. */
static void on_response(MkStanza *response, gpointer user_data)
{
    PushPub *p = user_data;
    PushEngine *e = p->e;
    if (!response) {
        mk_counter_add(e->timeouts, 1);
        return;
    }
    if (g_strcmp0(mk_stanza_type(response), "result") == 0) {
        mk_counter_add(e->published, 1);
        if (mk_module_is_running(e->mod))
            pub_queue(pub_copy(p, NULL), reset_work, reset_done);
        return;
    }
    mk_counter_add(e->failed, 1);
    const char *cond = push_error_condition(mk_stanza_xml(response));
    g_info("%s: app server %s answered %s for %s@%s", mk_module_name(e->mod), p->service,
           cond ? cond : "an error", p->username, p->domain);
    /* XEP-0357 section 8: the node is gone or refuses us; other errors
     * (wait, internal) may pass. */
    if (!mk_module_is_running(e->mod) ||
        (g_strcmp0(cond, "item-not-found") != 0 && g_strcmp0(cond, "not-authorized") != 0))
        return;
    pub_queue(pub_copy(p, cond), error_work, error_done);
}

/* ---- notifications ---------------------------------------------------- */

typedef struct {
    PushEngine *e;
    char *username, *domain, *account, *resource;
    PushSummary sum;
    char *sender, *body;
    GPtrArray *rows; /* service, node, form (nullable): 3 strings per enablement */
} PushJob;

static void push_job_free(gpointer data)
{
    PushJob *j = data;
    g_free(j->username);
    g_free(j->domain);
    g_free(j->account);
    g_free(j->resource);
    g_free(j->sender);
    g_free(j->body);
    if (j->rows)
        g_ptr_array_unref(j->rows);
    g_free(j);
}

/* Storage thread: the enablements to notify. */
static gboolean read_work(MkDbConn *conn, gpointer user_data, GError **error)
{
    PushJob *j = user_data;
    g_autoptr(MkDbResult) res =
        j->resource ? mk_db_conn_query(conn, error, SQL_SELECT_RESOURCE, MK_DB_STR(j->username),
                                       MK_DB_STR(j->domain), MK_DB_STR(j->resource))
                    : mk_db_conn_query(conn, error, SQL_SELECT_ALL, MK_DB_STR(j->username),
                                       MK_DB_STR(j->domain));
    if (!res)
        return FALSE;
    j->rows = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < mk_db_result_rows(res); i++)
        for (guint c = 1; c <= 3; c++)
            g_ptr_array_add(j->rows, g_strdup(mk_db_result_get_string(res, i, c)));
    return TRUE;
}

/* Whether @service (a stored app server JID) is on a virtual pubsub host. */
static gboolean is_virtual(PushEngine *e, const char *service)
{
    if (!e->virtual_hosts)
        return FALSE;
    g_autoptr(MkJid) jid = mk_jid_new(service, NULL);
    return jid && g_strv_contains((const char *const *)e->virtual_hosts, mk_jid_domain(jid));
}

/* The calling worker: publishes to each enablement read. */
static void read_done(const GError *error, gpointer user_data)
{
    PushJob *j = user_data;
    PushEngine *e = j->e;
    if (error) {
        if (!g_error_matches(error, mk_user_queue_error_quark(), MK_USER_QUEUE_ERROR_STOPPED))
            g_warning("%s: reading the push enablements of %s: %s", mk_module_name(e->mod),
                      j->account, error->message);
        return;
    }
    for (guint i = 0; mk_module_is_running(e->mod) && i + 2 < j->rows->len; i += 3) {
        const char *service = g_ptr_array_index(j->rows, i);
        const char *node = g_ptr_array_index(j->rows, i + 1);
        const char *form = g_ptr_array_index(j->rows, i + 2);
        if (is_virtual(e, service)) {
            mk_counter_add(e->virtual_count, 1);
            e->virtual_func(j->account, service, node, &j->sum, form, e->virtual_data);
            continue;
        }
        g_autoptr(MkXml) xml = push_publish_new(j->account, service, node, &j->sum, form);
        g_autoptr(MkStanza) st = mk_stanza_new(xml, NULL);
        if (!st)
            continue; /* a stored service JID no longer valid */
        PushPub *p = g_new0(PushPub, 1);
        p->e = e;
        p->username = g_strdup(j->username);
        p->domain = g_strdup(j->domain);
        p->service = g_strdup(service);
        p->node = g_strdup(node);
        mk_iq_send(e->mod, st, e->timeout_ms, on_response, p, push_pub_free);
    }
}

/* @msg reached @account while it cannot read it: notify the
 * enablements of @resource (the device whose session is detached), or
 * all of them when NULL (no session at all). The reads run on the
 * account's user queue, so notifications leave in the order the
 * messages came and message-count only grows. */
static void notify(PushEngine *e, MkJid *account, const char *resource, MkStanza *msg)
{
    PushJob *j = g_new0(PushJob, 1);
    j->e = e;
    j->username = g_strdup(mk_jid_node(account));
    j->domain = g_strdup(mk_jid_domain(account));
    j->account = g_strdup(mk_jid_bare_string(account));
    j->resource = g_strdup(resource);
    MkJid *from = mk_stanza_from(msg);
    j->sender = from ? g_strdup(mk_jid_string(from)) : NULL;
    j->body = e->include_body ? mk_xml_child_text(mk_stanza_xml(msg), "body", NULL) : NULL;
    j->sum.sender = j->sender;
    j->sum.body = j->body;
    /* Counted and queued under the lock: two workers notifying the same
     * account queue in the order of their counts. */
    g_mutex_lock(&e->lock);
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(e->counts, j->account)) + 1;
    g_hash_table_insert(e->counts, g_strdup(j->account), GUINT_TO_POINTER(n));
    j->sum.count = n;
    mk_user_queue_push_reads(e->queue, j->account, read_work, read_done, j, push_job_free);
    g_mutex_unlock(&e->lock);
}

/* A message the core moves again (a detached session that ended, see
 * docs/stream-management.md) carries our own domain's delay: it was
 * notified when it first reached the detached session. */
static gboolean moved_again(MkXml *msg, MkJid *account)
{
    for (guint i = 0; i < mk_xml_child_count(msg); i++) {
        MkXml *c = mk_xml_child_at(msg, i);
        if (!mk_xml_is_text(c) && mk_xml_is(c, "delay", "urn:xmpp:delay") &&
            g_strcmp0(mk_xml_get_attr(c, "from"), mk_jid_domain(account)) == 0)
            return TRUE;
    }
    return FALSE;
}

/* offline_message, before any module stores it: the account has no
 * session that takes messages. Group chat too: a room that sends to an
 * account with no session is one of persistent membership (MUC Light),
 * whose members want to hear of it; a MUC room only sends to occupants'
 * sessions. Runs on the routing worker. */
static MkResult on_offline(MkHookCall *call, gpointer user_data)
{
    PushEngine *e = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = st ? mk_stanza_to(st) : NULL;
    if (!to || !mk_jid_node(to) || mk_stanza_kind(st) != MK_STANZA_MESSAGE ||
        !push_message_wanted(mk_stanza_xml(st), TRUE) || moved_again(mk_stanza_xml(st), to))
        return MK_PASS;
    notify(e, to, NULL, st);
    return MK_PASS;
}

/* user_receive_packet: a stanza for a session; only detached ones
 * (XEP-0198) interest us. The session's worker. */
static MkResult on_receive(MkHookCall *call, gpointer user_data)
{
    PushEngine *e = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st || !mk_session_is_detached(s) || mk_stanza_kind(st) != MK_STANZA_MESSAGE ||
        !push_message_wanted(mk_stanza_xml(st), TRUE))
        return MK_PASS;
    MkJid *jid = mk_session_jid(s);
    notify(e, jid, mk_jid_resource(jid), st);
    return MK_PASS;
}

/* The user is back: the count starts again. */
static MkResult on_session(MkHookCall *call, gpointer user_data)
{
    PushEngine *e = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkJid *jid = s ? mk_session_jid(s) : mk_hook_call_from(call);
    if (!jid)
        return MK_PASS;
    g_mutex_lock(&e->lock);
    g_hash_table_remove(e->counts, mk_jid_bare_string(jid));
    g_mutex_unlock(&e->lock);
    return MK_PASS;
}

/* ---- start ------------------------------------------------------------ */

static gint64 key_int(PushEngine *e, const char *name)
{
    g_autofree char *key = g_strconcat(e->prefix, name, NULL);
    return mk_config_get_int(e->mod, key);
}

void push_engine_free(PushEngine *e)
{
    if (!e)
        return;
    g_hash_table_unref(e->counts);
    g_strfreev(e->virtual_hosts);
    g_mutex_clear(&e->lock);
    g_free(e->prefix);
    g_free(e);
}

static MkCounter *counter(PushEngine *e, const char *name)
{
    g_autofree char *n = g_strconcat(e->prefix, name, NULL);
    return mk_counter_new(e->mod, n);
}

void push_engine_set_virtual(PushEngine *e, const char *const *hosts, PushVirtualFunc func,
                             gpointer data)
{
    g_strfreev(e->virtual_hosts);
    e->virtual_hosts = g_strdupv((char **)hosts);
    e->virtual_func = func;
    e->virtual_data = data;
    if (!e->virtual_count)
        e->virtual_count = counter(e, "virtual");
}

/* Main thread, in start(). (transfer full) (nullable) */
PushEngine *push_engine_start(MkModule *mod, const char *prefix, GError **error)
{
    PushEngine *e = g_new0(PushEngine, 1);
    e->mod = mod;
    e->prefix = g_strdup(prefix);
    e->max_enablements = key_int(e, "max_enablements");
    e->max_errors = key_int(e, "max_errors");
    e->timeout_ms = (guint)key_int(e, "publish_timeout_ms");
    g_autofree char *body_key = g_strconcat(prefix, "include_body", NULL);
    e->include_body = mk_config_get_bool(mod, body_key);
    g_mutex_init(&e->lock);
    e->counts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    e->queue = mk_user_queue_new(mod);
    e->enabled = counter(e, "enabled");
    e->disabled = counter(e, "disabled");
    e->over_limit = counter(e, "over_limit");
    e->published = counter(e, "published");
    e->failed = counter(e, "publish_errors");
    e->timeouts = counter(e, "publish_timeouts");
    e->removed = counter(e, "removed_after_errors");
    if (!mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_PUSH, on_push_iq, e, error)) {
        push_engine_free(e);
        return NULL;
    }
    mk_disco_account_feature_add(mod, NS_PUSH);
    /* Above mod_offline (50), which consumes the message. */
    mk_hook_add(mod, MK_HOOK_OFFLINE_MESSAGE, 90, on_offline, e);
    mk_hook_add(mod, MK_HOOK_USER_RECEIVE_PACKET, -50, on_receive, e);
    mk_hook_add(mod, MK_HOOK_SESSION_OPENED, 0, on_session, e);
    mk_hook_add(mod, MK_HOOK_SESSION_RESUMED, 0, on_session, e);
    mk_hook_add(mod, MK_HOOK_REMOVE_USER, 0, on_session, e);
    return e;
}
