/* jabber:iq:roster get and set (RFC 6121 section 2) with versioning
 * (RFC 6121 2.6, XEP-0237).
 *
 * Versions are a per-user counter stored with the roster. A get carrying
 * the current version gets an empty result; any other version gets the
 * whole roster (the server keeps no history to send deltas from). */
#include "roster.h"

#include <string.h>

/* ---- get ----------------------------------------------------------------- */

typedef struct {
    Roster *r;
    MkIq *iq;
    MkJid *user;
    char *client_ver; /* nullable */
    gboolean unchanged;
    gint64 ver;
    GPtrArray *items;
} GetOp;

static void get_op_free(gpointer data)
{
    GetOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->user);
    g_free(op->client_ver);
    if (op->items)
        g_ptr_array_unref(op->items);
    g_free(op);
}

static gboolean get_work(MkDbConn *conn, gpointer data, GError **error)
{
    GetOp *op = data;
    if (!roster_db_version(conn, op->user, &op->ver, error))
        return FALSE;
    if (op->client_ver) {
        g_autofree char *cur = g_strdup_printf("%" G_GINT64_FORMAT, op->ver);
        if (g_str_equal(cur, op->client_ver)) {
            op->unchanged = TRUE;
            return TRUE;
        }
    }
    return roster_db_load_all(conn, op->user, &op->items, error);
}

/* The result for a client at version @client_ver (nullable) when the
 * roster is at @ver with @items. */
static void reply_roster(MkIq *iq, const char *client_ver, gint64 ver, GPtrArray *items)
{
    g_autofree char *ver_s = g_strdup_printf("%" G_GINT64_FORMAT, ver);
    if (client_ver && g_str_equal(client_ver, ver_s)) {
        /* RFC 6121 2.6.3: nothing changed since the client's version. */
        mk_iq_reply(iq, NULL);
        return;
    }
    g_autoptr(MkXml) query = mk_xml_new("query", NS_ROSTER);
    mk_xml_set_attr(query, "ver", ver_s);
    for (guint i = 0; i < items->len; i++) {
        RosterItem *item = g_ptr_array_index(items, i);
        if (item->st.in_roster)
            mk_xml_append(query, roster_item_xml(item, FALSE));
    }
    mk_iq_reply(iq, g_steal_pointer(&query));
}

static void get_done(const GError *error, gpointer data)
{
    GetOp *op = data;
    if (error) {
        g_warning("mod_roster: reading the roster of %s: %s", mk_jid_string(op->user),
                  error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->unchanged) {
        mk_iq_reply(op->iq, NULL);
        return;
    }
    reply_roster(op->iq, NULL, op->ver, op->items);
}

static MkResult roster_get(MkIq *iq, gpointer user_data)
{
    Roster *r = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    /* From now on this resource gets pushes (RFC 6121 2.1.6). */
    MkSession *s = mk_iq_session(iq);
    if (s)
        roster_set_interested(r, s);
    const char *client_ver = mk_xml_get_attr(mk_iq_payload(iq), "ver");
    const RosterPreload *p = s ? roster_preload_get(r, s, "roster get") : NULL;
    if (p) {
        reply_roster(iq, client_ver, roster_preload_version(p), roster_preload_items(p));
        return MK_HANDLED;
    }

    GetOp *op = g_new0(GetOp, 1);
    op->r = r;
    op->iq = mk_iq_ref(iq);
    op->user = g_steal_pointer(&user);
    if (client_ver && *client_ver)
        op->client_ver = g_strdup(client_ver);
    mk_user_queue_push_reads(r->queue, mk_jid_string(op->user), get_work, get_done, op,
                             get_op_free);
    return MK_HANDLED;
}

/* ---- set ----------------------------------------------------------------- */

typedef struct {
    Roster *r;
    MkIq *iq;
    MkJid *user;
    RosterItem *want; /* contact, name, groups as requested */
    gboolean remove;
    /* Results. */
    RosterItem *cur; /* before a removal, after an update */
    gboolean not_found;
    const char *refusal; /* a cap refused it (roster-limits.c) */
    gint64 ver;
    /* Without an IQ (roster-admin.c): the caller's completion. */
    MkRosterDone done;
    gpointer done_data;
    GDestroyNotify done_destroy;
} SetOp;

static void set_op_free(gpointer data)
{
    SetOp *op = data;
    roster_write_end(op->r, op->user); /* its transaction is over */
    if (op->done_destroy)
        op->done_destroy(op->done_data);
    if (op->iq)
        mk_iq_unref(op->iq);
    mk_jid_unref(op->user);
    roster_item_free(op->want);
    roster_item_free(op->cur);
    g_free(op);
}

static gboolean set_work(MkDbConn *conn, gpointer data, GError **error)
{
    SetOp *op = data;
    if (!roster_db_load_item(conn, op->user, op->want->contact, &op->cur, error))
        return FALSE;

    if (op->remove) {
        if (!op->cur || !op->cur->st.in_roster) {
            op->not_found = TRUE;
            return TRUE;
        }
        return roster_db_delete_item(conn, op->user, op->want->contact, error) &&
               roster_db_bump_version(conn, op->user, &op->ver, error);
    }

    /* The item as it will be, beside the row it replaces: the caps
     * compare the two. */
    g_autoptr(RosterItem) old = g_steal_pointer(&op->cur);
    op->cur = roster_item_new(op->want->contact);
    if (old) {
        op->cur->st = old->st;
        op->cur->pending_xml = g_strdup(old->pending_xml);
    }
    op->cur->name = g_strdup(op->want->name);
    g_strfreev(op->cur->groups);
    op->cur->groups = g_strdupv(op->want->groups);
    op->cur->st.in_roster = TRUE;
    if (!roster_limits_allow(op->r, conn, op->user, old ? roster_item_cost(old) : -1, op->cur,
                             &op->refusal, error))
        return FALSE;
    if (op->refusal)
        return TRUE;
    return roster_db_save_item(conn, op->user, op->cur, TRUE, error) &&
           roster_db_bump_version(conn, op->user, &op->ver, error);
}

/* Answers the IQ, or tells the caller without one (roster-admin.c). */
static void set_fail(SetOp *op, MkStanzaError cond, MkRosterErrorCode code, const char *text)
{
    if (op->iq) {
        mk_iq_reply_error(op->iq, cond, text);
    } else if (op->done) {
        g_autoptr(GError) e = g_error_new_literal(MK_ROSTER_ERROR, code, text ? text : "failed");
        op->done(e, op->done_data);
    }
}

static void set_done(const GError *error, gpointer data)
{
    SetOp *op = data;
    if (error) {
        g_warning("mod_roster: updating the roster of %s: %s", mk_jid_string(op->user),
                  error->message);
        set_fail(op, MK_ERR_INTERNAL_SERVER_ERROR, MK_ROSTER_ERROR_FAILED, NULL);
        return;
    }
    if (op->not_found) {
        set_fail(op, MK_ERR_ITEM_NOT_FOUND, MK_ROSTER_ERROR_NOT_FOUND, "no such item");
        return;
    }
    if (op->refusal) {
        /* A local policy, not a shortage that waiting would cure. */
        set_fail(op, MK_ERR_POLICY_VIOLATION, MK_ROSTER_ERROR_REFUSED, op->refusal);
        return;
    }
    roster_push(op->r, op->user, op->cur, op->remove, op->ver);

    if (op->remove) {
        /* RFC 6121 2.5.2: removing an item ends the subscriptions both
         * ways and cancels pending requests. */
        const RosterState *st = &op->cur->st;
        g_autoptr(MkJid) contact = mk_jid_new(op->cur->contact, NULL);
        if (contact) {
            if ((st->sub & ROSTER_SUB_TO) || st->ask)
                roster_route_presence("unsubscribe", op->user, contact);
            if ((st->sub & ROSTER_SUB_FROM) || st->pending_in || st->approved)
                roster_route_presence("unsubscribed", op->user, contact);
            if (st->sub & ROSTER_SUB_FROM)
                roster_send_unavailable_to(op->user, contact);
        }
    }
    if (op->iq)
        mk_iq_reply(op->iq, NULL);
    else if (op->done)
        op->done(NULL, op->done_data);
}

static int compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks the request as RFC 6121 2.3.3 requires and fills @want.
 * FALSE after answering the error. */
static gboolean parse_set(Roster *r, MkIq *iq, RosterItem **want, gboolean *remove)
{
    MkXml *query = mk_iq_payload(iq);
    MkXml *item = NULL;
    guint items = 0;
    for (guint i = 0; i < mk_xml_child_count(query); i++) {
        MkXml *c = mk_xml_child_at(query, i);
        if (!mk_xml_is_text(c) && g_str_equal(mk_xml_name(c), "item")) {
            item = c;
            items++;
        }
    }
    if (items != 1) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "a roster set carries exactly one item");
        return FALSE;
    }
    const char *jid_s = mk_xml_get_attr(item, "jid");
    g_autoptr(MkJid) jid = jid_s ? mk_jid_new(jid_s, NULL) : NULL;
    if (!jid) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "the item needs a valid 'jid'");
        return FALSE;
    }
    *remove = g_strcmp0(mk_xml_get_attr(item, "subscription"), "remove") == 0;

    const char *name = mk_xml_get_attr(item, "name");
    if (name && strlen(name) > (gsize)r->max_text) {
        mk_counter_add(r->limit_refusals, 1);
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "the name is too long");
        return FALSE;
    }
    g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < mk_xml_child_count(item); i++) {
        MkXml *c = mk_xml_child_at(item, i);
        if (mk_xml_is_text(c) || !g_str_equal(mk_xml_name(c), "group"))
            continue;
        g_autofree char *g = mk_xml_text(c);
        if (!g || !*g) {
            mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "a group name is empty");
            return FALSE;
        }
        if (strlen(g) > (gsize)r->max_text) {
            mk_counter_add(r->limit_refusals, 1);
            mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "a group name is too long");
            return FALSE;
        }
        if (groups->len >= (guint)r->max_groups) {
            /* RFC 6121 2.3.3 names not-acceptable for values beyond a
             * server's limits. */
            mk_counter_add(r->limit_refusals, 1);
            mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "too many groups");
            return FALSE;
        }
        if (g_hash_table_contains(seen, g)) {
            mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "a group is listed twice");
            return FALSE;
        }
        g_hash_table_add(seen, g);
        g_ptr_array_add(groups, g_steal_pointer(&g));
    }
    g_ptr_array_sort(groups, compare_strings);
    g_ptr_array_add(groups, NULL);

    RosterItem *w = roster_item_new(mk_jid_string(jid));
    w->name = name && *name ? g_strdup(name) : NULL;
    g_strfreev(w->groups);
    w->groups = (char **)g_ptr_array_free(g_steal_pointer(&groups), FALSE);
    *want = w;
    return TRUE;
}

static MkResult roster_set(MkIq *iq, gpointer user_data)
{
    Roster *r = user_data;
    g_autoptr(MkJid) user = mk_iq_own_account(iq);
    if (!user)
        return MK_HANDLED; /* answered forbidden */
    RosterItem *want = NULL;
    gboolean remove = FALSE;
    if (!parse_set(r, iq, &want, &remove))
        return MK_HANDLED;

    SetOp *op = g_new0(SetOp, 1);
    op->r = r;
    op->iq = mk_iq_ref(iq);
    op->user = g_steal_pointer(&user);
    op->want = want;
    op->remove = remove;
    roster_write_begin(r, op->user);
    mk_user_queue_push(r->queue, mk_jid_string(op->user), set_work, set_done, op, set_op_free);
    return MK_HANDLED;
}

void roster_set_item(Roster *r, MkJid *user, RosterItem *want, gboolean remove, MkRosterDone done,
                     gpointer data, GDestroyNotify destroy)
{
    SetOp *op = g_new0(SetOp, 1);
    op->r = r;
    op->user = mk_jid_bare(user);
    op->want = want;
    op->remove = remove;
    op->done = done;
    op->done_data = data;
    op->done_destroy = destroy;
    roster_write_begin(r, op->user);
    mk_user_queue_push(r->queue, mk_jid_string(op->user), set_work, set_done, op, set_op_free);
}

gboolean roster_iq_start(Roster *r, GError **error)
{
    return mk_iq_register(r->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_ROSTER, roster_get, r,
                          error) &&
           mk_iq_register(r->mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_ROSTER, roster_set, r, error);
}
