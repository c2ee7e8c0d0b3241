/* The urn:xmpp:mam:2 IQs of an account: archive queries (XEP-0313
 * section 4) with their form, the archive's first and last message
 * (metadata), and the preferences (section 6). Only the account itself
 * may ask (forbidden otherwise). A query first waits for the writer to
 * have written the archive's queued rows (read-your-writes), then reads
 * one page on the storage pool; the results go to the asking resource
 * before the IQ result that closes them, both routed from the same
 * worker, so they arrive in that order. */
#include "mam.h"

#define NS_DATA    "jabber:x:data"
#define NS_RSM     "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY   "urn:xmpp:delay"

/* A query of a user's archive (an MkIq) or of a room's (the request
 * stanza the room module handed over through the archive service). */
typedef struct {
    Mam *m;
    MkIq *iq;           /* (nullable) a user archive's query */
    MkStanza *req;      /* (nullable) a room archive's query */
    MamArchive archive; /* borrowed from owner */
    MkJid *owner;       /* the archive's bare JID: the account or the room */
    MkJid *requester;   /* where the results go */
    MamQuery *q;
    MamPage *page;
    gboolean unknown_id; /* a bound names no message of the archive */
} QueryOp;

static void query_op_free(gpointer data)
{
    QueryOp *op = data;
    g_clear_pointer(&op->iq, mk_iq_unref);
    g_clear_pointer(&op->req, mk_stanza_unref);
    mk_jid_unref(op->owner);
    mk_jid_unref(op->requester);
    mam_query_free(op->q);
    mam_page_free(op->page);
    g_free(op);
}

static MamArchive user_archive(MkJid *owner)
{
    return (MamArchive){NULL, (char *)mk_jid_node(owner), (char *)mk_jid_domain(owner)};
}

/* ---- results ------------------------------------------------------------- */

static char *stamp_of(guint64 id)
{
    g_autoptr(GDateTime) when = g_date_time_new_from_unix_utc(0);
    g_autoptr(GDateTime) at = g_date_time_add(when, mam_id_time_us(id));
    return mk_xep82_format(at);
}

/* <message><result queryid id><forwarded><delay/>STORED</forwarded></result>
 * </message> to @to from the archive's JID. A user's copy gets its
 * owner's <stanza-id/> back when it was stored without (mam-archive.c).
 * (transfer full) (nullable): NULL when the stored XML cannot be read
 * (logged). */
static MkStanza *result_stanza(MkJid *archive_jid, gboolean user, MkJid *to, const char *query_id,
                               guint64 id, const char *stored)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) inner = mk_xml_parse(stored, -1, &error);
    if (!inner) {
        char text[MAM_ID_TEXT_LEN + 1];
        mam_id_format(id, text);
        g_warning("mod_mam: archived message %s of %s is unreadable: %s", text,
                  mk_jid_string(archive_jid), error->message);
        return NULL;
    }
    char text[MAM_ID_TEXT_LEN + 1];
    mam_id_format(id, text);
    g_autofree char *stamp = stamp_of(id);
    g_autoptr(MkXml) msg = mk_xml_new("message", "jabber:client");
    MkXml *result = mk_xml_add_child(msg, "result", NS_MAM);
    if (query_id)
        mk_xml_set_attr(result, "queryid", query_id);
    mk_xml_set_attr(result, "id", text);
    MkXml *fwd = mk_xml_add_child(result, "forwarded", NS_FORWARD);
    mk_xml_set_attr(mk_xml_add_child(fwd, "delay", NS_DELAY), "stamp", stamp);
    if (user && !mam_xml_has_tag(inner, mk_jid_bare_string(archive_jid))) {
        MkXml *tagged = mam_xml_set_tag(inner, mk_jid_bare_string(archive_jid), id);
        mk_xml_unref(inner);
        inner = tagged;
    }
    mk_xml_append(fwd, g_steal_pointer(&inner));
    return mk_stanza_new_addressed(msg, archive_jid, to);
}

static void add_text_child(MkXml *parent, const char *name, const char *text)
{
    mk_xml_add_text(mk_xml_add_child(parent, name, NULL), text, -1);
}

/* The <fin/> that closes a page (XEP-0313 4.3, XEP-0059 2). */
static MkXml *fin_of(const MamPage *page)
{
    MkXml *fin = mk_xml_new("fin", NS_MAM);
    if (page->complete)
        mk_xml_set_attr(fin, "complete", "true");
    MkXml *set = mk_xml_add_child(fin, "set", NS_RSM);
    if (page->ids->len) {
        char first[MAM_ID_TEXT_LEN + 1], last[MAM_ID_TEXT_LEN + 1];
        mam_id_format(g_array_index(page->ids, guint64, 0), first);
        mam_id_format(g_array_index(page->ids, guint64, page->ids->len - 1), last);
        MkXml *f = mk_xml_add_child(set, "first", NULL);
        mk_xml_add_text(f, first, -1);
        if (page->first_index >= 0) {
            char index[24];
            g_snprintf(index, sizeof index, "%" G_GINT64_FORMAT, page->first_index);
            mk_xml_set_attr(f, "index", index);
        }
        add_text_child(set, "last", last);
    }
    if (page->count >= 0) {
        char count[24];
        g_snprintf(count, sizeof count, "%" G_GINT64_FORMAT, page->count);
        add_text_child(set, "count", count);
    }
    return fin;
}

/* Answers the query: an IQ result with @payload (transfer full). */
static void op_reply(QueryOp *op, MkXml *payload)
{
    if (op->iq) {
        mk_iq_reply(op->iq, payload);
        return;
    }
    g_autoptr(MkXml) owned = payload;
    g_autoptr(MkXml) iq = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(iq, "type", "result");
    if (mk_stanza_id(op->req))
        mk_xml_set_attr(iq, "id", mk_stanza_id(op->req));
    mk_xml_append(iq, g_steal_pointer(&owned));
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(iq, op->owner, op->requester);
    mk_router_send(st);
}

static void op_error(QueryOp *op, MkStanzaError cond, const char *text)
{
    if (op->iq) {
        mk_iq_reply_error(op->iq, cond, text);
        return;
    }
    g_autoptr(MkStanza) err = mk_stanza_new_error_reply(op->req, cond, text);
    if (err)
        mk_router_send(err);
}

/* ---- queries --------------------------------------------------------------- */

static gboolean check_id(MkDbConn *conn, QueryOp *op, gboolean given, guint64 id, GError **error)
{
    gboolean found = TRUE;
    if (given && !mam_db_has_id(conn, &op->archive, id, &found, error))
        return FALSE;
    if (!found)
        op->unknown_id = TRUE;
    return TRUE;
}

/* Storage thread. */
static gboolean query_work(MkDbConn *conn, gpointer data, GError **error)
{
    QueryOp *op = data;
    MamQuery *q = op->q;
    if (!check_id(conn, op, q->has_after_id, q->after_id, error) ||
        !check_id(conn, op, q->has_before_id, q->before_id, error) ||
        !check_id(conn, op, q->has_rsm_after, q->rsm_after, error) ||
        !check_id(conn, op, q->has_rsm_before, q->rsm_before, error))
        return FALSE;
    if (op->unknown_id)
        return TRUE;
    op->page = mam_db_page(conn, &op->archive, q, error);
    return op->page != NULL;
}

/* The asking worker. */
static void query_done(const GError *error, gpointer data)
{
    QueryOp *op = data;
    if (error) {
        g_warning("mod_mam: querying the archive of %s: %s", mk_jid_string(op->owner),
                  error->message);
        op_error(op, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->unknown_id) {
        op_error(op, MK_ERR_ITEM_NOT_FOUND, "no message of the archive has that ID");
        return;
    }
    MamPage *page = op->page;
    MkJid *to = op->requester;
    for (guint k = 0; k < page->ids->len; k++) {
        guint i = op->q->flip ? page->ids->len - 1 - k : k;
        g_autoptr(MkStanza) st =
            result_stanza(op->owner, op->archive.room == NULL, to, op->q->query_id,
                          g_array_index(page->ids, guint64, i), page->xml->pdata[i]);
        if (st)
            mk_router_send(st);
    }
    mk_counter_add(op->m->results, page->ids->len);
    op_reply(op, fin_of(page));
}

static void query_synced(gpointer data)
{
    QueryOp *op = data;
    mk_user_queue_push_reads(op->m->queue, mk_jid_string(op->owner), query_work, query_done, op,
                             query_op_free);
}

static void reply_form(MkIq *iq)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},    {"end", "text-single"},
        {"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "text-multi"},
    };
    g_autoptr(MkXml) query = mk_xml_new("query", NS_MAM);
    MkXml *x = mk_xml_add_child(query, "x", NS_DATA);
    mk_xml_set_attr(x, "type", "form");
    MkXml *ft = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(ft, "var", "FORM_TYPE");
    mk_xml_set_attr(ft, "type", "hidden");
    add_text_child(ft, "value", NS_MAM);
    for (guint i = 0; i < G_N_ELEMENTS(fields); i++) {
        MkXml *f = mk_xml_add_child(x, "field", NULL);
        mk_xml_set_attr(f, "var", fields[i][0]);
        mk_xml_set_attr(f, "type", fields[i][1]);
    }
    mk_iq_reply(iq, g_steal_pointer(&query));
}

/* Parses @payload and runs the query of @op once the writer caught up. */
static void query_start(QueryOp *op, MkXml *payload)
{
    g_autoptr(GError) error = NULL;
    op->q = mam_query_parse(payload, op->m->max_result_limit, &error);
    if (!op->q) {
        op_error(op, MK_ERR_BAD_REQUEST, error->message);
        query_op_free(op);
        return;
    }
    mk_counter_add(op->m->queries, 1);
    mam_writer_sync(op->m->writer, &op->archive, query_synced, op);
}

static void query(Mam *m, MkIq *iq, MkJid *owner)
{
    QueryOp *op = g_new0(QueryOp, 1);
    op->m = m;
    op->iq = mk_iq_ref(iq);
    op->owner = mk_jid_ref(owner);
    op->requester = mk_jid_ref(mk_iq_from(iq));
    op->archive = user_archive(op->owner);
    query_start(op, mk_iq_payload(iq));
}

void mam_query_room(Mam *m, MkJid *room, MkStanza *iq)
{
    QueryOp *op = g_new0(QueryOp, 1);
    op->m = m;
    op->req = mk_stanza_ref(iq);
    op->owner = mk_jid_bare(room);
    op->requester = mk_jid_ref(mk_stanza_from(iq));
    op->archive = (MamArchive){(char *)mk_jid_string(op->owner), NULL, NULL};
    MkXml *payload = mk_xml_child(mk_stanza_xml(iq), "query", NS_MAM);
    if (!payload || g_strcmp0(mk_stanza_type(iq), "set") != 0) {
        op_error(op, MK_ERR_BAD_REQUEST, "an archive query is an iq of type set");
        query_op_free(op);
        return;
    }
    query_start(op, payload);
}

/* ---- metadata: the archive's first and last message ------------------------ */

typedef struct {
    Mam *m;
    MkIq *iq;
    MkJid *owner;
    guint64 first, last; /* 0 when the archive is empty */
} MetaOp;

static void meta_op_free(gpointer data)
{
    MetaOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->owner);
    g_free(op);
}

static gboolean meta_work(MkDbConn *conn, gpointer data, GError **error)
{
    MetaOp *op = data;
    MamArchive a = user_archive(op->owner);
    return mam_db_bounds(conn, &a, &op->first, &op->last, error);
}

static void add_bound(MkXml *meta, const char *name, guint64 id)
{
    char text[MAM_ID_TEXT_LEN + 1];
    mam_id_format(id, text);
    g_autofree char *stamp = stamp_of(id);
    MkXml *el = mk_xml_add_child(meta, name, NULL);
    mk_xml_set_attr(el, "id", text);
    mk_xml_set_attr(el, "timestamp", stamp);
}

static void meta_done(const GError *error, gpointer data)
{
    MetaOp *op = data;
    if (error) {
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    g_autoptr(MkXml) meta = mk_xml_new("metadata", NS_MAM);
    if (op->first) {
        add_bound(meta, "start", op->first);
        add_bound(meta, "end", op->last);
    }
    mk_iq_reply(op->iq, g_steal_pointer(&meta));
}

static void meta_synced(gpointer data)
{
    MetaOp *op = data;
    mk_user_queue_push_reads(op->m->queue, mk_jid_string(op->owner), meta_work, meta_done, op,
                             meta_op_free);
}

/* ---- preferences ------------------------------------------------------------ */

typedef struct {
    Mam *m;
    MkIq *iq;
    MkJid *owner;
    MamPrefs *prefs; /* read, or to write */
} PrefsOp;

static void prefs_op_free(gpointer data)
{
    PrefsOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->owner);
    mam_prefs_unref(op->prefs);
    g_free(op);
}

static gboolean prefs_read(MkDbConn *conn, gpointer data, GError **error)
{
    PrefsOp *op = data;
    return mam_db_prefs_get(conn, mk_jid_node(op->owner), mk_jid_domain(op->owner), &op->prefs,
                            error);
}

/* Stored, then (roster mode) completed with the roster's contacts so
 * that the value the cache gets next is whole. */
static gboolean prefs_write(MkDbConn *conn, gpointer data, GError **error)
{
    PrefsOp *op = data;
    return mam_db_prefs_set(conn, mk_jid_node(op->owner), mk_jid_domain(op->owner), op->prefs,
                            error) &&
           mam_prefs_load_contacts(op->prefs, op->m->mod, conn, op->owner, error);
}

static void prefs_done(const GError *error, gpointer data)
{
    PrefsOp *op = data;
    if (error) {
        g_warning("mod_mam: preferences of %s: %s", mk_jid_string(op->owner), error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (!op->prefs)
        op->prefs = mam_prefs_new(NULL, NULL, NULL); /* nothing stored: the default */
    else if (mk_iq_type(op->iq) == MK_IQ_SET)
        mk_user_cache_set(op->m->prefs, mk_jid_string(op->owner), mam_prefs_ref(op->prefs));
    mk_iq_reply(op->iq, mam_prefs_to_xml(op->prefs));
}

static void prefs(Mam *m, MkIq *iq, MkJid *owner)
{
    PrefsOp *op = g_new0(PrefsOp, 1);
    op->m = m;
    op->iq = mk_iq_ref(iq);
    op->owner = mk_jid_ref(owner);
    if (mk_iq_type(iq) == MK_IQ_GET) {
        mk_user_queue_push_reads(m->queue, mk_jid_string(owner), prefs_read, prefs_done, op,
                                 prefs_op_free);
        return;
    }
    g_autoptr(GError) error = NULL;
    op->prefs = mam_prefs_parse(mk_iq_payload(iq), &error);
    if (!op->prefs) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, error->message);
        prefs_op_free(op);
        return;
    }
    mk_user_queue_push(m->queue, mk_jid_string(owner), prefs_write, prefs_done, op, prefs_op_free);
}

/* ---- dispatch ---------------------------------------------------------------- */

static MkResult on_mam(MkIq *iq, gpointer user_data)
{
    Mam *m = mk_module_get_data(user_data);
    MkXml *payload = mk_iq_payload(iq);
    const char *name = mk_xml_name(payload);
    /* XEP-0313 4: only the archive's owner reads a user archive; anyone
     * else is answered forbidden by the core. */
    g_autoptr(MkJid) owner = mk_iq_own_account(iq);
    if (!owner)
        return MK_HANDLED;
    gboolean set = mk_iq_type(iq) == MK_IQ_SET;
    if (g_str_equal(name, "query")) {
        if (set)
            query(m, iq, owner);
        else
            reply_form(iq);
    } else if (g_str_equal(name, "prefs")) {
        prefs(m, iq, owner);
    } else if (g_str_equal(name, "metadata") && !set) {
        MetaOp *op = g_new0(MetaOp, 1);
        op->m = m;
        op->iq = mk_iq_ref(iq);
        op->owner = mk_jid_ref(owner);
        MamArchive a = user_archive(owner);
        mam_writer_sync(m->writer, &a, meta_synced, op);
    } else {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "unknown request");
    }
    return MK_HANDLED;
}

gboolean mam_iq_start(Mam *m, GError **error)
{
    return mk_iq_register(m->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_MAM, on_mam, m->mod, error) &&
           mk_iq_register(m->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_MAM, on_mam, m->mod, error);
}
