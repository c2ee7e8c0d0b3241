/* mod_muc_light: answers that only read. Room reads come from the cache
 * (the caller got the room); blocking lists and a user's rooms come from
 * storage. */
#include "muclight.h"

#include <string.h>

#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_RSM         "http://jabber.org/protocol/rsm"

/* TRUE when the request's <version/> is the room's: the answer is then
 * empty (the client is up to date). */
static gboolean up_to_date(MkXml *query, const MlRoom *room)
{
    g_autofree char *v = mk_xml_child_text(query, "version", NULL);
    return v && room->version && strcmp(v, room->version) == 0;
}

static gboolean may_read(MkStanza *iq, const MlRoom *room)
{
    if (room->exists && ml_room_aff(room, mk_jid_bare_string(mk_stanza_from(iq))) != ML_NONE)
        return TRUE;
    ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
    return FALSE;
}

static void add_text_child(MkXml *x, const char *name, const char *text)
{
    MkXml *c = mk_xml_add_child(x, name, NULL);
    if (text && *text)
        mk_xml_add_text(c, text, -1);
}

static void add_config(MkXml *x, const MlRoom *room)
{
    add_text_child(x, "roomname", room->roomname);
    add_text_child(x, "subject", room->subject);
}

static void add_users(MkXml *x, const MlRoom *room)
{
    for (guint i = 0; i < room->users->len; i++) {
        const MlUser *u = g_ptr_array_index(room->users, i);
        MkXml *el = mk_xml_add_child(x, "user", NULL);
        mk_xml_set_attr(el, "affiliation", ml_aff_name(u->aff));
        mk_xml_add_text(el, u->jid, -1);
    }
}

void ml_config_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room)
{
    (void)ml;
    if (!may_read(iq, room))
        return;
    if (up_to_date(query, room)) {
        ml_reply(iq, NULL);
        return;
    }
    g_autoptr(MkXml) q = mk_xml_new("query", NS_ML_CONFIG);
    add_text_child(q, "version", room->version);
    add_config(q, room);
    ml_reply(iq, g_steal_pointer(&q));
}

void ml_affs_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room)
{
    (void)ml;
    if (!may_read(iq, room))
        return;
    if (up_to_date(query, room)) {
        ml_reply(iq, NULL);
        return;
    }
    g_autoptr(MkXml) q = mk_xml_new("query", NS_ML_AFFS);
    add_text_child(q, "version", room->version);
    add_users(q, room);
    ml_reply(iq, g_steal_pointer(&q));
}

void ml_info_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room)
{
    (void)ml;
    if (!may_read(iq, room))
        return;
    if (up_to_date(query, room)) {
        ml_reply(iq, NULL);
        return;
    }
    g_autoptr(MkXml) q = mk_xml_new("query", NS_ML_INFO);
    add_text_child(q, "version", room->version);
    add_config(mk_xml_add_child(q, "configuration", NULL), room);
    add_users(mk_xml_add_child(q, "occupants", NULL), room);
    ml_reply(iq, g_steal_pointer(&q));
}

/* ---- blocking lists ---------------------------------------------------- */

static void blocking_got(MkDbResult *res, const GError *error, gpointer data)
{
    g_autoptr(MkStanza) iq = data;
    if (error) {
        ml_reply_error(iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    g_autoptr(MkXml) q = mk_xml_new("query", NS_ML_BLOCKING);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        MkXml *el = mk_xml_add_child(q, mk_db_result_get_int(res, i, 0) ? "user" : "room", NULL);
        mk_xml_set_attr(el, "action", "deny");
        mk_xml_add_text(el, mk_db_result_get_string(res, i, 1), -1);
    }
    ml_reply(iq, g_steal_pointer(&q));
}

void ml_blocking_get(MucLight *ml, MkStanza *iq)
{
    MkJid *from = mk_stanza_from(iq);
    mk_db_query(ml->mod,
                "SELECT kind, who FROM muclight_blocking WHERE username = ? AND domain = ?"
                " ORDER BY kind, who",
                blocking_got, mk_stanza_ref(iq), MK_DB_STR(mk_jid_node(from)),
                MK_DB_STR(mk_jid_domain(from)));
}

typedef struct {
    gint kind; /* 0 room, 1 user */
    gboolean deny;
    char *who;
} BlockItem;

typedef struct {
    MucLight *ml;
    MkStanza *iq;
    GArray *items; /* BlockItem */
    gboolean over;
} BlockOp;

static void block_op_free(gpointer data)
{
    BlockOp *op = data;
    for (guint i = 0; i < op->items->len; i++)
        g_free(g_array_index(op->items, BlockItem, i).who);
    g_array_unref(op->items);
    mk_stanza_unref(op->iq);
    g_free(op);
}

static gboolean block_work(MkDbConn *conn, gpointer data, GError **error)
{
    BlockOp *op = data;
    MkJid *from = mk_stanza_from(op->iq);
    const char *node = mk_jid_node(from), *domain = mk_jid_domain(from);
    for (guint i = 0; i < op->items->len; i++) {
        BlockItem *it = &g_array_index(op->items, BlockItem, i);
        g_autoptr(MkDbResult) res = NULL;
        if (it->deny)
            res = mk_db_conn_query(conn, error,
                                   "INSERT INTO muclight_blocking (username, domain, kind, who)"
                                   " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_INT(it->kind),
                                   MK_DB_STR(it->who));
        else
            res = mk_db_conn_query(conn, error,
                                   "DELETE FROM muclight_blocking WHERE username = ? AND"
                                   " domain = ? AND kind = ? AND who = ?",
                                   MK_DB_STR(node), MK_DB_STR(domain), MK_DB_INT(it->kind),
                                   MK_DB_STR(it->who));
        if (!res)
            return FALSE;
    }
    g_autoptr(MkDbResult) n = mk_db_conn_query(
        conn, error, "SELECT COUNT(*) FROM muclight_blocking WHERE username = ? AND domain = ?",
        MK_DB_STR(node), MK_DB_STR(domain));
    if (!n)
        return FALSE;
    if (mk_db_result_get_int(n, 0, 0) > op->ml->max_blocking) {
        op->over = TRUE;
        g_set_error_literal(error, MK_DB_ERROR, MK_DB_ERROR_QUERY, "over the limit");
        return FALSE; /* rolls the whole request back */
    }
    return TRUE;
}

static void block_done(const GError *error, gpointer data)
{
    BlockOp *op = data;
    if (op->over)
        ml_reply_error(op->iq, MK_ERR_NOT_ALLOWED, "The blocking list is full");
    else if (error)
        ml_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    else
        ml_reply(op->iq, NULL);
}

void ml_blocking_set(MucLight *ml, MkStanza *iq, MkXml *query)
{
    BlockOp *op = g_new0(BlockOp, 1);
    op->ml = ml;
    op->iq = mk_stanza_ref(iq);
    op->items = g_array_new(FALSE, TRUE, sizeof(BlockItem));
    for (guint i = 0; i < mk_xml_child_count(query); i++) {
        MkXml *el = mk_xml_child_at(query, i);
        if (mk_xml_is_text(el))
            continue;
        const char *action = mk_xml_get_attr(el, "action");
        gboolean room = mk_xml_is(el, "room", NULL), user = mk_xml_is(el, "user", NULL);
        g_autofree char *text = mk_xml_text(el);
        g_autoptr(MkJid) jid = mk_jid_new(g_strstrip(text), NULL);
        if ((!room && !user) || !jid || !mk_jid_node(jid) || !mk_jid_is_bare(jid) ||
            (g_strcmp0(action, "deny") != 0 && g_strcmp0(action, "allow") != 0)) {
            ml_reply_error(iq, MK_ERR_BAD_REQUEST,
                           "Items are <room|user action='deny|allow'>bare JID</...>");
            block_op_free(op);
            return;
        }
        BlockItem it = {user ? 1 : 0, g_str_equal(action, "deny"),
                        g_strdup(mk_jid_bare_string(jid))};
        g_array_append_val(op->items, it);
    }
    if (!op->items->len) {
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, "Nothing to change");
        block_op_free(op);
        return;
    }
    mk_user_queue_push(ml->queue, mk_jid_bare_string(mk_stanza_from(iq)), block_work, block_done,
                       op, block_op_free);
}

/* ---- the user's rooms (disco#items at the service) ---------------------- */

/* The page a disco#items request asks for with XEP-0059. */
typedef struct {
    gint64 max;   /* -1: all */
    char *after;  /* (nullable) the page after this room */
    char *before; /* (nullable) the page before this room; "" the last page */
    gint64 index; /* -1: not given */
} Rsm;

static void rsm_clear(Rsm *r)
{
    g_free(r->after);
    g_free(r->before);
}

static gboolean parse_count(const char *text, gint64 *out)
{
    char *end = NULL;
    if (!text || !*text)
        return FALSE;
    gint64 v = g_ascii_strtoll(text, &end, 10);
    if (*end || v < 0)
        return FALSE;
    *out = v;
    return TRUE;
}

/* FALSE: a malformed <set/> (bad-request). */
static gboolean rsm_of(MkStanza *iq, Rsm *r)
{
    MkXml *q = mk_xml_child(mk_stanza_xml(iq), "query", NS_DISCO_ITEMS);
    MkXml *set = q ? mk_xml_child(q, "set", NS_RSM) : NULL;
    *r = (Rsm){.max = -1, .index = -1};
    if (!set)
        return TRUE;
    g_autofree char *m = mk_xml_child_text(set, "max", NULL);
    g_autofree char *i = mk_xml_child_text(set, "index", NULL);
    if ((m && !parse_count(m, &r->max)) || (i && !parse_count(i, &r->index)))
        return FALSE;
    r->after = mk_xml_child_text(set, "after", NULL);
    MkXml *before = mk_xml_child(set, "before", NULL);
    if (before)
        r->before = mk_xml_text(before);
    /* One way to say where the page starts. */
    return (r->after != NULL) + (r->before != NULL) + (r->index >= 0) <= 1;
}

/* The position of @room in @rooms (sorted), or -1. */
static gint64 find_room(GPtrArray *rooms, const char *room)
{
    for (guint i = 0; i < rooms->len; i++)
        if (strcmp(g_ptr_array_index(rooms, i), room) == 0)
            return i;
    return -1;
}

static void rooms_got(MkDbResult *res, const GError *error, gpointer data)
{
    g_autoptr(MkStanza) iq = data;
    if (error) {
        ml_reply_error(iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    Rsm rsm;
    if (!rsm_of(iq, &rsm)) {
        rsm_clear(&rsm);
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, "A bad <set/>");
        return;
    }
    /* This service's rooms of the user, in JID order (row numbers). */
    const char *service = mk_jid_domain(mk_stanza_to(iq));
    g_autoptr(GPtrArray) rooms = g_ptr_array_new();
    g_autoptr(GArray) rows = g_array_new(FALSE, FALSE, sizeof(guint));
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        const char *room = mk_db_result_get_string(res, i, 0);
        const char *at = strchr(room, '@');
        if (!at || strcmp(at + 1, service) != 0)
            continue; /* a room of another service of this host type */
        g_ptr_array_add(rooms, (gpointer)room);
        g_array_append_val(rows, i);
    }
    gint64 count = rooms->len;
    gint64 max = rsm.max >= 0 ? rsm.max : count;
    gint64 from = 0;
    if (rsm.after || (rsm.before && *rsm.before)) {
        gint64 at = find_room(rooms, rsm.after ? rsm.after : rsm.before);
        if (at < 0) {
            rsm_clear(&rsm);
            ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, "No such room in the list");
            return;
        }
        from = rsm.after ? at + 1 : MAX(at - max, 0);
        if (rsm.before)
            max = MIN(max, at); /* the rooms before @at, not past it */
    } else if (rsm.before) {
        from = MAX(count - max, 0); /* an empty <before/>: the last page */
    } else if (rsm.index >= 0) {
        from = MIN(rsm.index, count);
    }
    gint64 to = MIN(from + max, count);
    g_autoptr(MkXml) q = mk_xml_new("query", NS_DISCO_ITEMS);
    for (gint64 i = from; i < to; i++) {
        guint row = g_array_index(rows, guint, i);
        MkXml *item = mk_xml_add_child(q, "item", NULL);
        mk_xml_set_attr(item, "jid", g_ptr_array_index(rooms, i));
        mk_xml_set_attr(item, "name", mk_db_result_get_string(res, row, 1));
        mk_xml_set_attr(item, "version", mk_db_result_get_string(res, row, 2));
    }
    if (rsm.max >= 0 || rsm.after || rsm.before || rsm.index >= 0) {
        MkXml *set = mk_xml_add_child(q, "set", NS_RSM);
        if (to > from) {
            MkXml *f = mk_xml_add_child(set, "first", NULL);
            g_autofree char *idx = g_strdup_printf("%" G_GINT64_FORMAT, from);
            mk_xml_set_attr(f, "index", idx);
            mk_xml_add_text(f, g_ptr_array_index(rooms, from), -1);
            mk_xml_add_text(mk_xml_add_child(set, "last", NULL), g_ptr_array_index(rooms, to - 1),
                            -1);
        }
        g_autofree char *n = g_strdup_printf("%" G_GINT64_FORMAT, count);
        mk_xml_add_text(mk_xml_add_child(set, "count", NULL), n, -1);
    }
    rsm_clear(&rsm);
    ml_reply(iq, g_steal_pointer(&q));
}

void ml_disco_items(MucLight *ml, MkStanza *iq)
{
    mk_db_query(ml->mod,
                "SELECT r.room, r.roomname, r.version FROM muclight_occupants o"
                " JOIN muclight_rooms r ON r.room = o.room WHERE o.jid = ? ORDER BY r.room",
                rooms_got, mk_stanza_ref(iq), MK_DB_STR(mk_jid_bare_string(mk_stanza_from(iq))));
}
