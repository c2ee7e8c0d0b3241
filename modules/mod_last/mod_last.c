/* mod_last: Last Activity (XEP-0012, jabber:iq:last).
 *
 * - To the server: its uptime in seconds.
 * - To a user's bare JID: 0 while the user has an available resource,
 *   otherwise the seconds since the last logout and the status text of
 *   the last unavailable presence. Only the user and contacts subscribed
 *   to the user's presence may ask (XEP-0012 section 3: forbidden for
 *   anybody else); the subscription is read from mod_roster's tables, so
 *   without mod_roster only the user itself is answered. A user who never
 *   logged out gets item-not-found.
 * - To a full JID the core routes the query to the client.
 *
 * The time and status are written when a session ends (session_closed)
 * and when a session sends unavailable presence while staying connected.
 * Rows reference the account and go with it. */
#include <meerkat/module.h>

#define NS_LAST "jabber:iq:last"

static const MkMigration last_migrations[] = {
    /* The common subset of sqlite3 and PostgreSQL: one step for both. */
    {NULL, 1,
     "CREATE TABLE last_activity ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " seconds BIGINT NOT NULL," /* Unix time of the logout */
     " status TEXT,"
     " PRIMARY KEY (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

typedef struct {
    MkCounter *queries;
} Last;

/* Per session: the status text of its last unavailable presence. */
typedef struct {
    char *status;
} LastSlot;

static void slot_free(gpointer data)
{
    LastSlot *slot = data;
    g_free(slot->status);
    g_free(slot);
}

/* ---- recording ------------------------------------------------------------ */

static void stored(MkDbResult *res, const GError *error, gpointer data)
{
    char *who = data;
    if (error)
        g_warning("mod_last: storing the last activity of %s: %s", who, error->message);
    g_free(who);
}

static void record(MkModule *mod, MkSession *s, const char *status)
{
    MkJid *jid = mk_session_jid(s);
    mk_db_query(mod,
                "INSERT INTO last_activity (username, domain, seconds, status) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (username, domain) DO UPDATE SET seconds = excluded.seconds,"
                " status = excluded.status",
                stored, g_strdup(mk_jid_bare_string(jid)), MK_DB_STR(mk_jid_node(jid)),
                MK_DB_STR(mk_jid_domain(jid)), MK_DB_INT(g_get_real_time() / G_USEC_PER_SEC),
                status ? MK_DB_STR(status) : MK_DB_NULL);
}

/* The session's worker: an unavailable broadcast presence, sent by the
 * client or by the core when the stream ends. */
static MkResult on_broadcast(MkHookCall *call, gpointer user_data)
{
    MkModule *mod = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || g_strcmp0(mk_stanza_type(st), "unavailable") != 0)
        return MK_PASS;
    LastSlot *slot = mk_session_get_slot(s, mod);
    if (!slot) {
        slot = g_new0(LastSlot, 1);
        mk_session_set_slot(s, mod, slot, slot_free);
    }
    /* The core's own unavailable (the stream ended while available) has no
     * status: then the last one has none either. */
    g_free(slot->status);
    slot->status = mk_xml_child_text(mk_stanza_xml(st), "status", NULL);
    record(mod, s, slot->status);
    return MK_PASS;
}

static MkResult on_closed(MkHookCall *call, gpointer user_data)
{
    MkModule *mod = user_data;
    MkSession *s = mk_hook_call_session(call);
    if (!s)
        return MK_PASS;
    LastSlot *slot = mk_session_get_slot(s, mod);
    record(mod, s, slot ? slot->status : NULL);
    return MK_PASS;
}

/* ---- queries -------------------------------------------------------------- */

static MkResult server_last(MkIq *iq, gpointer user_data)
{
    Last *l = user_data;
    mk_counter_add(l->queries, 1);
    g_autoptr(MkXml) query = mk_xml_new("query", NS_LAST);
    g_autofree char *secs = g_strdup_printf("%" G_GINT64_FORMAT, mk_server_uptime());
    mk_xml_set_attr(query, "seconds", secs);
    mk_iq_reply(iq, g_steal_pointer(&query));
    return MK_HANDLED;
}

static gboolean has_available(MkJid *account)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(account);
    for (guint i = 0; i < sessions->len; i++) {
        if (mk_session_is_available(sessions->pdata[i]))
            return TRUE;
    }
    return FALSE;
}

typedef struct {
    MkIq *iq;
    MkJid *account;
} AccountOp;

static void account_op_free(AccountOp *op)
{
    mk_iq_unref(op->iq);
    mk_jid_unref(op->account);
    g_free(op);
}

static void got_last(MkDbResult *res, const GError *error, gpointer data)
{
    AccountOp *op = data;
    if (error) {
        g_warning("mod_last: reading %s: %s", mk_jid_string(op->account), error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    } else if (has_available(op->account)) {
        /* Checked again now: the user may have come online meanwhile. */
        g_autoptr(MkXml) query = mk_xml_new("query", NS_LAST);
        mk_xml_set_attr(query, "seconds", "0");
        mk_iq_reply(op->iq, g_steal_pointer(&query));
    } else if (mk_db_result_rows(res) == 0) {
        mk_iq_reply_error(op->iq, MK_ERR_ITEM_NOT_FOUND, NULL);
    } else {
        gint64 then = mk_db_result_get_int(res, 0, 0);
        gint64 ago = MAX(0, g_get_real_time() / G_USEC_PER_SEC - then);
        g_autoptr(MkXml) query = mk_xml_new("query", NS_LAST);
        g_autofree char *secs = g_strdup_printf("%" G_GINT64_FORMAT, ago);
        mk_xml_set_attr(query, "seconds", secs);
        const char *status = mk_db_result_get_string(res, 0, 1);
        if (status && *status)
            mk_xml_add_text(query, status, -1);
        mk_iq_reply(op->iq, g_steal_pointer(&query));
    }
    account_op_free(op);
}

static void answer(AccountOp *op)
{
    if (has_available(op->account)) {
        g_autoptr(MkXml) query = mk_xml_new("query", NS_LAST);
        mk_xml_set_attr(query, "seconds", "0");
        mk_iq_reply(op->iq, g_steal_pointer(&query));
        account_op_free(op);
        return;
    }
    mk_db_query(mk_iq_module(op->iq),
                "SELECT seconds, status FROM last_activity WHERE username = ? AND domain = ?",
                got_last, op, MK_DB_STR(mk_jid_node(op->account)),
                MK_DB_STR(mk_jid_domain(op->account)));
}

static void got_subscription(MkDbResult *res, const GError *error, gpointer data)
{
    AccountOp *op = data;
    const char *sub =
        !error && mk_db_result_rows(res) > 0 ? mk_db_result_get_string(res, 0, 0) : NULL;
    /* No roster table (mod_roster not loaded) reads as "not subscribed". */
    if (g_strcmp0(sub, "from") != 0 && g_strcmp0(sub, "both") != 0) {
        mk_iq_reply_error(op->iq, MK_ERR_FORBIDDEN, NULL);
        account_op_free(op);
        return;
    }
    answer(op);
}

static MkResult account_last(MkIq *iq, gpointer user_data)
{
    Last *l = user_data;
    MkJid *from = mk_iq_from(iq);
    MkJid *to = mk_iq_to(iq);
    mk_counter_add(l->queries, 1);
    AccountOp *op = g_new0(AccountOp, 1);
    op->iq = mk_iq_ref(iq);
    op->account = mk_jid_bare(to && mk_jid_node(to) ? to : from);
    if (mk_jid_bare_equal(op->account, from)) {
        answer(op);
        return MK_HANDLED;
    }
    /* Is the asker subscribed to the user's presence? */
    mk_db_query(mk_iq_module(iq),
                "SELECT subscription FROM roster_items WHERE username = ? AND domain = ?"
                " AND contact = ? AND in_roster = 1",
                got_subscription, op, MK_DB_STR(mk_jid_node(op->account)),
                MK_DB_STR(mk_jid_domain(op->account)), MK_DB_STR(mk_jid_bare_string(from)));
    return MK_HANDLED;
}

static gboolean last_start(MkModule *mod, GError **error)
{
    Last *l = g_new0(Last, 1);
    l->queries = mk_counter_new(mod, "queries");
    mk_module_set_data(mod, l, g_free);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_LAST, server_last, l, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_LAST, account_last, l, error))
        return FALSE;
    /* Low priority: an observer of what the roster module let through. */
    mk_hook_add(mod, MK_HOOK_PRESENCE_BROADCAST, 10, on_broadcast, mod);
    mk_hook_add(mod, MK_HOOK_SESSION_CLOSED, 10, on_closed, mod);
    mk_disco_feature_add(mod, NS_LAST);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,         .name = "mod_last",  .version = "1.0",
    .migrations = last_migrations, .start = last_start,
};
