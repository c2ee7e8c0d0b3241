/* mod_private: Private XML Storage (XEP-0049, jabber:iq:private).
 *
 * A user stores XML fragments on the server, one slot per namespace of
 * the fragment's root element; a set with several children stores each
 * namespace (children in the same namespace are kept together, XEP-0049
 * section 2.3). Only the account itself reads or writes (forbidden for
 * anyone else). Reserved namespaces (jabber:..., http://jabber.org/...,
 * vcard-temp) get not-acceptable, the optional behaviour of the XEP, so
 * the store is never mistaken for the real protocols. Rows reference the
 * account and go with it.
 *
 * Caps: max_size bytes per set (not-acceptable, the value is beyond what
 * the server takes) and max_total_size bytes per user over every
 * namespace (policy-violation, a per-user quota); docs/security.md. */
#include <meerkat/module.h>

#include <string.h>

#define NS_PRIVATE "jabber:iq:private"

static const MkMigration private_migrations[] = {
    /* The common subset of sqlite3 and PostgreSQL: one step for both. */
    {NULL, 1,
     "CREATE TABLE private_storage ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " namespace TEXT NOT NULL,"
     " xml TEXT NOT NULL,"
     " PRIMARY KEY (username, domain, namespace),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

typedef struct {
    gint64 max_size;
    gint64 max_total;
    MkCounter *refusals;
    MkCounter *sets;
    MkCounter *gets;
} Private;

/* XEP-0049 section 2.3: namespaces reserved for the protocol itself. */
static gboolean reserved_ns(const char *ns)
{
    return !ns || !*ns || g_str_has_prefix(ns, "jabber:") ||
           g_str_has_prefix(ns, "http://jabber.org/") || g_str_equal(ns, "vcard-temp");
}

/* The element children of the query. (transfer container) */
static GPtrArray *query_children(MkXml *query)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < mk_xml_child_count(query); i++) {
        MkXml *c = mk_xml_child_at(query, i);
        if (!mk_xml_is_text(c))
            g_ptr_array_add(out, c);
    }
    return out;
}

/* ---- get ------------------------------------------------------------------ */

typedef struct {
    MkIq *iq;
    MkXml *asked; /* the empty element of the request */
} GetOp;

static void got(MkDbResult *res, const GError *error, gpointer data)
{
    GetOp *op = data;
    g_autoptr(MkXml) query = NULL;
    if (error) {
        g_warning("mod_private: reading %s: %s", mk_jid_bare_string(mk_iq_from(op->iq)),
                  error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        goto out;
    }
    if (mk_db_result_rows(res) > 0) {
        g_autoptr(GError) perr = NULL;
        g_autofree char *doc = g_strconcat("<query xmlns='" NS_PRIVATE "'>",
                                           mk_db_result_get_string(res, 0, 0), "</query>", NULL);
        query = mk_xml_parse(doc, -1, &perr);
        if (!query)
            g_warning("mod_private: stored XML unreadable: %s", perr->message);
    }
    if (!query) {
        /* Nothing stored: the request's empty element comes back. */
        query = mk_xml_new("query", NS_PRIVATE);
        mk_xml_append(query, mk_xml_copy(op->asked));
    }
    mk_iq_reply(op->iq, g_steal_pointer(&query));
out:
    mk_iq_unref(op->iq);
    mk_xml_unref(op->asked);
    g_free(op);
}

static MkResult on_get(MkIq *iq, gpointer user_data)
{
    Private *p = user_data;
    g_autoptr(MkJid) account = mk_iq_own_account(iq);
    if (!account)
        return MK_HANDLED; /* answered forbidden */
    g_autoptr(GPtrArray) children = query_children(mk_iq_payload(iq));
    if (children->len == 0) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "name the namespace to read");
        return MK_HANDLED;
    }
    if (children->len > 1) {
        /* "A client MUST NOT query for more than one namespace." */
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "one namespace per get");
        return MK_HANDLED;
    }
    MkXml *asked = children->pdata[0];
    if (reserved_ns(mk_xml_ns(asked))) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "reserved namespace");
        return MK_HANDLED;
    }
    mk_counter_add(p->gets, 1);
    GetOp *op = g_new0(GetOp, 1);
    op->iq = mk_iq_ref(iq);
    op->asked = mk_xml_new(mk_xml_name(asked), mk_xml_ns(asked));
    mk_db_query(mk_iq_module(iq),
                "SELECT xml FROM private_storage WHERE username = ? AND domain = ?"
                " AND namespace = ?",
                got, op, MK_DB_STR(mk_jid_node(account)), MK_DB_STR(mk_jid_domain(account)),
                MK_DB_STR(mk_xml_ns(asked)));
    return MK_HANDLED;
}

/* ---- set ------------------------------------------------------------------ */

typedef struct {
    gint64 max_total;    /* copied: the module's data may go before the op */
    MkCounter *refusals; /* counters outlive the module */
    MkIq *iq;
    MkJid *account;
    GPtrArray *ns;  /* char*, in the order first seen */
    GPtrArray *xml; /* char*, the serialized children per namespace */
    gboolean over;  /* the user's total would exceed max_total_size */
} SetOp;

static void set_op_free(gpointer data)
{
    SetOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->account);
    g_ptr_array_unref(op->ns);
    g_ptr_array_unref(op->xml);
    g_free(op);
}

/* The bytes @op->account would store after @op: what the other
 * namespaces hold plus the new fragments. Storage thread. */
static gboolean total_after(MkDbConn *conn, SetOp *op, gint64 *total, GError **error)
{
    gboolean pg = g_strcmp0(mk_db_conn_driver(conn), "pgsql") == 0;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        pg ? "SELECT namespace, octet_length(namespace) + octet_length(xml) FROM private_storage"
             " WHERE username = ? AND domain = ?"
           : "SELECT namespace, length(CAST(namespace AS BLOB)) + length(CAST(xml AS BLOB))"
             " FROM private_storage WHERE username = ? AND domain = ?",
        MK_DB_STR(mk_jid_node(op->account)), MK_DB_STR(mk_jid_domain(op->account)));
    if (!r)
        return FALSE;
    *total = 0;
    for (guint i = 0; i < mk_db_result_rows(r); i++) {
        const char *ns = mk_db_result_get_string(r, i, 0);
        gboolean replaced = FALSE;
        for (guint j = 0; j < op->ns->len && !replaced; j++)
            replaced = g_str_equal(op->ns->pdata[j], ns);
        if (!replaced)
            *total += mk_db_result_get_int(r, i, 1);
    }
    for (guint j = 0; j < op->ns->len; j++)
        *total += strlen(op->ns->pdata[j]) + strlen(op->xml->pdata[j]);
    return TRUE;
}

/* Storage thread, inside BEGIN. */
static gboolean set_work(MkDbConn *conn, gpointer data, GError **error)
{
    SetOp *op = data;
    gint64 total = 0;
    if (!total_after(conn, op, &total, error))
        return FALSE;
    if (total > op->max_total) {
        op->over = TRUE;
        return TRUE;
    }
    for (guint i = 0; i < op->ns->len; i++) {
        g_autoptr(MkDbResult) r = mk_db_conn_query(
            conn, error,
            "INSERT INTO private_storage (username, domain, namespace, xml) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (username, domain, namespace) DO UPDATE SET xml = excluded.xml",
            MK_DB_STR(mk_jid_node(op->account)), MK_DB_STR(mk_jid_domain(op->account)),
            MK_DB_STR(op->ns->pdata[i]), MK_DB_STR(op->xml->pdata[i]));
        if (!r)
            return FALSE;
    }
    return TRUE;
}

static void set_done(const GError *error, gpointer data)
{
    SetOp *op = data;
    if (error) {
        g_warning("mod_private: storing for %s: %s", mk_jid_string(op->account), error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->over) {
        mk_counter_add(op->refusals, 1);
        g_info("mod_private: %s: over max_total_size (%" G_GINT64_FORMAT " bytes)",
               mk_jid_string(op->account), op->max_total);
        mk_iq_reply_error(op->iq, MK_ERR_POLICY_VIOLATION, "private storage quota exceeded");
        return;
    }
    mk_iq_reply(op->iq, NULL);
}

static MkResult on_set(MkIq *iq, gpointer user_data)
{
    Private *p = user_data;
    g_autoptr(MkJid) account = mk_iq_own_account(iq);
    if (!account)
        return MK_HANDLED; /* answered forbidden */
    g_autoptr(GPtrArray) children = query_children(mk_iq_payload(iq));
    if (children->len == 0) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "nothing to store");
        return MK_HANDLED;
    }
    SetOp *op = g_new0(SetOp, 1);
    op->ns = g_ptr_array_new_with_free_func(g_free);
    op->xml = g_ptr_array_new_with_free_func(g_free);
    gsize total = 0;
    for (guint i = 0; i < children->len; i++) {
        MkXml *c = children->pdata[i];
        const char *ns = mk_xml_ns(c);
        if (reserved_ns(ns)) {
            set_op_free(op);
            mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "reserved namespace");
            return MK_HANDLED;
        }
        /* Declare the namespace on the root so each fragment stands alone. */
        g_autofree char *text = mk_xml_to_string(c, NULL);
        total += strlen(text);
        guint j = 0;
        while (j < op->ns->len && !g_str_equal(op->ns->pdata[j], ns))
            j++;
        if (j == op->ns->len) {
            g_ptr_array_add(op->ns, g_strdup(ns));
            g_ptr_array_add(op->xml, g_steal_pointer(&text));
        } else {
            char *joined = g_strconcat(op->xml->pdata[j], text, NULL);
            g_free(op->xml->pdata[j]);
            op->xml->pdata[j] = joined;
        }
    }
    if (p->max_size > 0 && total > (gsize)p->max_size) {
        mk_counter_add(p->refusals, 1);
        set_op_free(op);
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "private data too large");
        return MK_HANDLED;
    }
    mk_counter_add(p->sets, 1);
    op->max_total = p->max_total;
    op->refusals = p->refusals;
    op->iq = mk_iq_ref(iq);
    op->account = g_steal_pointer(&account);
    mk_db_transaction_run(mk_iq_module(iq), set_work, set_done, op, set_op_free);
    return MK_HANDLED;
}

static gboolean private_start(MkModule *mod, GError **error)
{
    Private *p = g_new0(Private, 1);
    p->max_size = mk_config_get_int(mod, "max_size");
    p->max_total = mk_config_get_int(mod, "max_total_size");
    p->refusals = mk_counter_new(mod, "limit_refusals");
    p->sets = mk_counter_new(mod, "sets");
    p->gets = mk_counter_new(mod, "gets");
    mk_module_set_data(mod, p, g_free);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_PRIVATE, on_get, p, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_PRIVATE, on_set, p, error))
        return FALSE;
    return TRUE;
}

static const MkConfigKey private_keys[] = {
    {"max_size", MK_CONFIG_INT, "65536", 0, 16777216,
     "largest set accepted, in bytes of XML (0 = only the stanza size limit)"},
    {"max_total_size", MK_CONFIG_INT, "1048576", 1024, 1073741824,
     "bytes a user may store over all namespaces"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_private",
    .version = "1.0",
    .config_keys = private_keys,
    .migrations = private_migrations,
    .start = private_start,
};
