/* mod_muc_light: requests that change a room (create, destroy,
 * configuration, affiliations). Each one is parsed on the worker, then
 * runs as one operation on the module's user queue under the room's JID,
 * so that the changes of one room apply one at a time, in order; the
 * operation reads the room from storage, checks the rules, writes, and
 * its completion installs the new room in the cache, notifies the
 * occupants and answers. */
#include "muclight.h"

#include <string.h>

#define VERSION_CHARS 12
#define ROOM_ID_CHARS 16

typedef enum {
    OP_CREATE,
    OP_DESTROY,
    OP_CONFIG,
    OP_AFFS,
} OpKind;

typedef struct {
    MucLight *ml;
    OpKind kind;
    MkStanza *iq;
    MkJid *room;
    char *actor;         /* the sender's bare JID */
    gboolean at_service; /* a create sent to the service: the ID is ours */
    char *roomname;      /* configuration given, NULL = not given */
    char *subject;
    GPtrArray *req; /* MlChange* */
    /* Set by the work. */
    gboolean failed;
    MkStanzaError error;
    char *error_text;
    MlRoom *before;
    MlRoom *after;
    GPtrArray *changes; /* MlChange*, what notifications list */
} Op;

static void op_free(gpointer data)
{
    Op *op = data;
    if (op->iq)
        mk_stanza_unref(op->iq);
    mk_jid_unref(op->room);
    g_free(op->actor);
    g_free(op->roomname);
    g_free(op->subject);
    if (op->req)
        g_ptr_array_unref(op->req);
    g_free(op->error_text);
    ml_room_unref(op->before);
    ml_room_unref(op->after);
    if (op->changes)
        g_ptr_array_unref(op->changes);
    g_free(op);
}

/* @iq (nullable): the request, answered at the end; NULL for a change
 * the server makes itself (then @actor says whose it is). */
static Op *op_new_full(MucLight *ml, OpKind kind, MkStanza *iq, MkJid *room, const char *actor)
{
    Op *op = g_new0(Op, 1);
    op->ml = ml;
    op->kind = kind;
    op->iq = iq ? mk_stanza_ref(iq) : NULL;
    op->room = mk_jid_bare(room);
    op->actor = g_strdup(actor ? actor : mk_jid_bare_string(mk_stanza_from(iq)));
    return op;
}

static Op *op_new(MucLight *ml, OpKind kind, MkStanza *iq, MkJid *room)
{
    return op_new_full(ml, kind, iq, room, NULL);
}

static gboolean fail(Op *op, MkStanzaError cond, const char *text)
{
    op->failed = TRUE;
    op->error = cond;
    op->error_text = g_strdup(text);
    return TRUE; /* the transaction commits nothing */
}

/* ---- parsing (the worker) ---------------------------------------------- */

/* Reads roomname/subject children of @el into @op. FALSE: bad-request. */
static gboolean parse_config(MucLight *ml, MkXml *el, Op *op, const char **why)
{
    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *f = mk_xml_child_at(el, i);
        if (mk_xml_is_text(f))
            continue;
        const char *name = mk_xml_name(f);
        char **slot;
        gint64 max;
        if (strcmp(name, "roomname") == 0) {
            slot = &op->roomname;
            max = ml->max_roomname;
        } else if (strcmp(name, "subject") == 0) {
            slot = &op->subject;
            max = ml->max_subject;
        } else {
            *why = "Unknown configuration field";
            return FALSE;
        }
        if (*slot) {
            *why = "A configuration field is given twice";
            return FALSE;
        }
        *slot = mk_xml_text(f);
        if ((gint64)g_utf8_strlen(*slot, -1) > max) {
            *why = "A configuration field is too long";
            return FALSE;
        }
    }
    return TRUE;
}

/* Reads <user affiliation='...'>bare JID</user> items of @el into @op->req.
 * FALSE: bad-request. */
static gboolean parse_users(MkXml *el, Op *op, const char **why)
{
    op->req = g_ptr_array_new_with_free_func(ml_change_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < mk_xml_child_count(el); i++) {
        MkXml *u = mk_xml_child_at(el, i);
        if (mk_xml_is_text(u))
            continue;
        MlAff aff;
        if (!mk_xml_is(u, "user", NULL) || !ml_aff_parse(mk_xml_get_attr(u, "affiliation"), &aff)) {
            *why = "Items are <user affiliation='owner|member|none'>JID</user>";
            return FALSE;
        }
        g_autofree char *text = mk_xml_text(u);
        g_autoptr(MkJid) jid = mk_jid_new(g_strstrip(text), NULL);
        if (!jid || !mk_jid_node(jid) || !mk_jid_is_bare(jid)) {
            *why = "A user is not a bare JID";
            return FALSE;
        }
        MlChange *c = ml_change_new(mk_jid_bare_string(jid), aff);
        g_ptr_array_add(op->req, c);
        if (!g_hash_table_add(seen, c->jid)) {
            *why = "A user is listed twice";
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- the work (storage thread) ----------------------------------------- */

/* Drops from @op->req the newcomers who blocked the room or the actor:
 * the protocol skips them without an error. */
static gboolean skip_blocking(MkDbConn *conn, Op *op, const MlRoom *before, GError **error)
{
    if (!op->ml->blocking)
        return TRUE;
    for (guint i = op->req->len; i-- > 0;) {
        MlChange *c = g_ptr_array_index(op->req, i);
        if (c->aff == ML_NONE || ml_room_aff(before, c->jid) != ML_NONE)
            continue;
        g_autoptr(MkJid) user = mk_jid_new(c->jid, NULL);
        gboolean blocks = FALSE;
        if (!user || !mk_module_serves_domain(op->ml->mod, mk_jid_domain(user)))
            continue;
        if (!ml_db_blocks(conn, user, mk_jid_string(op->room), op->actor, &blocks, error))
            return FALSE;
        if (blocks)
            g_ptr_array_remove_index(op->req, i);
    }
    return TRUE;
}

/* The per-user and per-room limits for @after. TRUE with @op failed when
 * one is exceeded. */
static gboolean over_limits(MkDbConn *conn, Op *op, const MlRoom *before, const MlRoom *after,
                            gboolean *over, GError **error)
{
    MucLight *ml = op->ml;
    *over = FALSE;
    if ((gint64)after->users->len > ml->max_occupants) {
        mk_counter_add(ml->refused_occupants, 1);
        fail(op, MK_ERR_NOT_ALLOWED, "The room would have too many occupants");
        *over = TRUE;
        return TRUE;
    }
    for (guint i = 0; i < after->users->len; i++) {
        const MlUser *u = g_ptr_array_index(after->users, i);
        if (ml_room_aff(before, u->jid) != ML_NONE)
            continue;
        gint64 n = ml_db_count_rooms(conn, u->jid, error);
        if (n < 0)
            return FALSE;
        if (n >= ml->rooms_per_user) {
            mk_counter_add(ml->refused_rooms_per_user, 1);
            g_autofree char *text = g_strdup_printf("%s is in too many rooms", u->jid);
            fail(op, MK_ERR_NOT_ALLOWED, text);
            *over = TRUE;
            return TRUE;
        }
    }
    return TRUE;
}

static gboolean work_create(MkDbConn *conn, Op *op, GError **error)
{
    if (op->before->exists)
        return fail(op, MK_ERR_CONFLICT, NULL);
    if (!skip_blocking(conn, op, op->before, error))
        return FALSE;
    MlRoom *r = op->after = ml_room_new();
    r->exists = TRUE;
    r->version = ml_random_id(VERSION_CHARS);
    r->roomname = g_strdup(op->roomname ? op->roomname : "Untitled");
    r->subject = g_strdup(op->subject ? op->subject : "");
    gboolean owner_named = FALSE;
    for (guint i = 0; i < op->req->len; i++) {
        MlChange *c = g_ptr_array_index(op->req, i);
        ml_room_set_aff(r, c->jid, c->aff);
        owner_named |= c->aff == ML_OWNER;
    }
    ml_room_set_aff(r, op->actor, owner_named ? ML_MEMBER : ML_OWNER);
    gboolean over;
    if (!over_limits(conn, op, op->before, r, &over, error))
        return FALSE;
    if (over)
        return TRUE;
    return ml_db_write_room(conn, mk_jid_string(op->room), op->before, r, error);
}

static gboolean work_destroy(MkDbConn *conn, Op *op, GError **error)
{
    MlAff aff = ml_room_aff(op->before, op->actor);
    if (!op->before->exists || aff == ML_NONE)
        return fail(op, MK_ERR_ITEM_NOT_FOUND, NULL);
    if (aff != ML_OWNER)
        return fail(op, MK_ERR_NOT_ALLOWED, "Only the owner destroys a room");
    op->after = ml_room_new();
    return ml_db_write_room(conn, mk_jid_string(op->room), op->before, op->after, error);
}

static gboolean work_config(MkDbConn *conn, Op *op, GError **error)
{
    MlAff aff = ml_room_aff(op->before, op->actor);
    if (!op->before->exists || aff == ML_NONE)
        return fail(op, MK_ERR_ITEM_NOT_FOUND, NULL);
    /* Members may change the subject; the rest is the owner's. */
    if (aff != ML_OWNER && !op->ml->all_can_configure && op->roomname)
        return fail(op, MK_ERR_NOT_ALLOWED, "Only the owner changes the configuration");
    MlRoom *r = op->after = ml_room_copy(op->before);
    if (op->roomname) {
        g_free(r->roomname);
        r->roomname = g_strdup(op->roomname);
    }
    if (op->subject) {
        g_free(r->subject);
        r->subject = g_strdup(op->subject);
    }
    g_free(r->version);
    r->version = ml_random_id(VERSION_CHARS);
    return ml_db_write_room(conn, mk_jid_string(op->room), op->before, r, error);
}

static gboolean work_affs(MkDbConn *conn, Op *op, GError **error)
{
    if (!op->before->exists || ml_room_aff(op->before, op->actor) == ML_NONE)
        return fail(op, MK_ERR_ITEM_NOT_FOUND, NULL);
    if (!skip_blocking(conn, op, op->before, error))
        return FALSE;
    MlRoom *after = NULL;
    switch (
        ml_apply_changes(op->before, op->actor, op->req, &op->ml->rules, &after, &op->changes)) {
    case ML_BAD_REQUEST:
        return fail(op, MK_ERR_BAD_REQUEST, "Every change must change an affiliation; one owner");
    case ML_NOT_ALLOWED:
        return fail(op, MK_ERR_NOT_ALLOWED, NULL);
    case ML_OK:
        break;
    }
    op->after = after;
    if (!op->changes->len)
        return TRUE; /* everyone added had blocked us: nothing changes */
    if (!after->users->len) {
        after->exists = FALSE; /* the last occupant left: the room goes */
    } else {
        g_free(after->version);
        after->version = ml_random_id(VERSION_CHARS);
    }
    gboolean over;
    if (!over_limits(conn, op, op->before, after, &over, error))
        return FALSE;
    if (over)
        return TRUE;
    return ml_db_write_room(conn, mk_jid_string(op->room), op->before, after, error);
}

static gboolean op_work(MkDbConn *conn, gpointer data, GError **error)
{
    Op *op = data;
    op->before = ml_db_read_room(conn, mk_jid_string(op->room), error);
    if (!op->before)
        return FALSE;
    switch (op->kind) {
    case OP_CREATE:
        return work_create(conn, op, error);
    case OP_DESTROY:
        return work_destroy(conn, op, error);
    case OP_CONFIG:
        return work_config(conn, op, error);
    case OP_AFFS:
        return work_affs(conn, op, error);
    }
    return FALSE;
}

/* ---- notifications and the answer (the worker) ------------------------- */

static void add_user(MkXml *x, const char *jid, MlAff aff)
{
    MkXml *u = mk_xml_add_child(x, "user", NULL);
    mk_xml_set_attr(u, "affiliation", ml_aff_name(aff));
    mk_xml_add_text(u, jid, -1);
}

static void add_text_child(MkXml *x, const char *name, const char *text)
{
    MkXml *c = mk_xml_add_child(x, name, NULL);
    if (text && *text)
        mk_xml_add_text(c, text, -1);
}

/* Sends @msg (transfer full) from the room to @to, a bare JID. */
static void send_one(Op *op, const char *to, MkXml *msg)
{
    g_autoptr(MkXml) owned = msg;
    mk_xml_add_child(owned, "body", NULL);
    g_autoptr(MkJid) jid = mk_jid_new(to, NULL);
    if (!jid)
        return;
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(owned, op->room, jid);
    mk_router_send(st);
}

/* Sends @msg (transfer full) from the room to each of @jids (char*), one
 * serialisation for all. */
static void send_many(Op *op, GPtrArray *jids, MkXml *msg)
{
    g_autoptr(MkXml) owned = msg;
    if (!jids->len)
        return;
    mk_xml_add_child(owned, "body", NULL);
    g_autoptr(GPtrArray) to = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
    for (guint i = 0; i < jids->len; i++) {
        MkJid *j = mk_jid_new(g_ptr_array_index(jids, i), NULL);
        if (j)
            g_ptr_array_add(to, j);
    }
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(owned, op->room, NULL);
    mk_fanout_send(st, (MkJid *const *)to->pdata, to->len);
    mk_counter_add(op->ml->copies, to->len);
}

/* Archives @x (transfer full), an affiliation change, as the room's
 * event: from the room's bare JID, with the version, no prev-version. */
static void archive_event(Op *op, MkXml *x, const char *id)
{
    g_autoptr(MkXml) msg = ml_notification(id);
    mk_xml_append(msg, x);
    mk_xml_add_child(msg, "body", NULL);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(msg, op->room, NULL);
    g_autoptr(MkJid) actor = mk_jid_new(op->actor, NULL);
    g_autofree char *sid = mk_archive_store(op->ml->mod, op->room, st, "", actor);
}

static const char *notification_id(Op *op)
{
    return op->iq ? mk_stanza_id(op->iq) : NULL;
}

/* The answer to the request, if a client made it. */
static void answer(Op *op, gboolean ok, MkStanzaError cond, const char *text)
{
    if (!op->iq)
        return;
    if (ok)
        ml_reply(op->iq, NULL);
    else
        ml_reply_error(op->iq, cond, text);
}

static void notify_create(Op *op)
{
    const char *id = notification_id(op);
    const MlRoom *r = op->after;
    /* Each occupant gets only its own affiliation (no prev-version). */
    for (guint i = 0; i < r->users->len; i++) {
        const MlUser *u = g_ptr_array_index(r->users, i);
        g_autoptr(MkXml) msg = ml_notification(id);
        MkXml *x = mk_xml_add_child(msg, "x", NS_ML_AFFS);
        add_text_child(x, "version", r->version);
        add_user(x, u->jid, u->aff);
        send_one(op, u->jid, g_steal_pointer(&msg));
    }
    MkXml *x = mk_xml_new("x", NS_ML_AFFS);
    add_text_child(x, "version", r->version);
    for (guint i = 0; i < r->users->len; i++) {
        const MlUser *u = g_ptr_array_index(r->users, i);
        add_user(x, u->jid, u->aff);
    }
    archive_event(op, x, id);
}

static void notify_destroy(Op *op)
{
    const char *id = notification_id(op);
    for (guint i = 0; i < op->before->users->len; i++) {
        const MlUser *u = g_ptr_array_index(op->before->users, i);
        g_autoptr(MkXml) msg = ml_notification(id);
        MkXml *x = mk_xml_add_child(msg, "x", NS_ML_AFFS);
        add_user(x, u->jid, ML_NONE);
        mk_xml_add_child(msg, "x", NS_ML_DESTROY);
        send_one(op, u->jid, g_steal_pointer(&msg));
    }
    mk_archive_remove(op->ml->mod, op->room);
}

static void notify_config(Op *op)
{
    g_autoptr(MkXml) msg = ml_notification(notification_id(op));
    MkXml *x = mk_xml_add_child(msg, "x", NS_ML_CONFIG);
    add_text_child(x, "prev-version", op->before->version);
    add_text_child(x, "version", op->after->version);
    if (op->roomname)
        add_text_child(x, "roomname", op->after->roomname);
    if (op->subject)
        add_text_child(x, "subject", op->after->subject);
    g_autoptr(GPtrArray) to = g_ptr_array_new();
    for (guint i = 0; i < op->after->users->len; i++)
        g_ptr_array_add(to, ((MlUser *)g_ptr_array_index(op->after->users, i))->jid);
    send_many(op, to, g_steal_pointer(&msg));
}

static void notify_affs(Op *op)
{
    const char *id = notification_id(op);
    const MlRoom *before = op->before, *after = op->after;
    g_autoptr(GPtrArray) staying = g_ptr_array_new();
    /* Removed users: only their own 'none', no version. */
    for (guint i = 0; i < op->changes->len; i++) {
        MlChange *c = g_ptr_array_index(op->changes, i);
        if (c->aff != ML_NONE)
            continue;
        g_autoptr(MkXml) msg = ml_notification(id);
        MkXml *x = mk_xml_add_child(msg, "x", NS_ML_AFFS);
        add_user(x, c->jid, ML_NONE);
        send_one(op, c->jid, g_steal_pointer(&msg));
    }
    if (!after->exists) {
        mk_archive_remove(op->ml->mod, op->room);
        return;
    }
    /* Newcomers: their own affiliation and the version. */
    for (guint i = 0; i < after->users->len; i++) {
        const MlUser *u = g_ptr_array_index(after->users, i);
        if (ml_room_aff(before, u->jid) != ML_NONE) {
            g_ptr_array_add(staying, u->jid);
            continue;
        }
        g_autoptr(MkXml) msg = ml_notification(id);
        MkXml *x = mk_xml_add_child(msg, "x", NS_ML_AFFS);
        add_text_child(x, "version", after->version);
        add_user(x, u->jid, u->aff);
        send_one(op, u->jid, g_steal_pointer(&msg));
    }
    /* Everyone who stays: the whole change, both versions. */
    g_autoptr(MkXml) msg = ml_notification(id);
    MkXml *x = mk_xml_add_child(msg, "x", NS_ML_AFFS);
    add_text_child(x, "prev-version", before->version);
    add_text_child(x, "version", after->version);
    MkXml *arch = mk_xml_new("x", NS_ML_AFFS);
    add_text_child(arch, "version", after->version);
    for (guint i = 0; i < op->changes->len; i++) {
        MlChange *c = g_ptr_array_index(op->changes, i);
        add_user(x, c->jid, c->aff);
        add_user(arch, c->jid, c->aff);
    }
    send_many(op, staying, g_steal_pointer(&msg));
    archive_event(op, arch, id);
}

static void op_done(const GError *error, gpointer data)
{
    Op *op = data;
    MucLight *ml = op->ml;
    if (error) {
        g_warning("mod_muc_light: room %s: %s", mk_jid_string(op->room), error->message);
        answer(op, FALSE, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (op->failed) {
        answer(op, FALSE, op->error, op->error_text);
        return;
    }
    if (op->kind == OP_AFFS && !op->changes->len) {
        answer(op, TRUE, 0, NULL);
        return;
    }
    /* The cache follows storage in write order: this runs in the room's
     * queue order. */
    ml_room_prepare(op->after);
    mk_user_cache_set(ml->cache, mk_jid_string(op->room), ml_room_ref(op->after));
    if (!mk_module_is_running(ml->mod)) {
        answer(op, TRUE, 0, NULL);
        return;
    }
    /* Notifications go out before the answer (the protocol asks it). */
    switch (op->kind) {
    case OP_CREATE:
        mk_counter_add(ml->created, 1);
        notify_create(op);
        break;
    case OP_DESTROY:
        mk_counter_add(ml->destroyed, 1);
        notify_destroy(op);
        break;
    case OP_CONFIG:
        notify_config(op);
        break;
    case OP_AFFS:
        if (!op->after->exists)
            mk_counter_add(ml->destroyed, 1);
        notify_affs(op);
        break;
    }
    answer(op, TRUE, 0, NULL);
}

static void push(Op *op)
{
    mk_user_queue_push(op->ml->queue, mk_jid_string(op->room), op_work, op_done, op, op_free);
}

/* ---- entry points (the route, on the sender's worker) ------------------ */

void ml_create(MucLight *ml, MkStanza *iq, MkXml *query)
{
    MkJid *to = mk_stanza_to(iq);
    g_autoptr(MkJid) room = NULL;
    gboolean at_service = !mk_jid_node(to);
    if (at_service) {
        g_autofree char *id = ml_random_id(ROOM_ID_CHARS);
        room = mk_jid_new_from_parts(id, mk_jid_domain(to), NULL, NULL);
    } else {
        if ((gint64)g_utf8_strlen(mk_jid_node(to), -1) > ml->max_room_id) {
            ml_reply_error(iq, MK_ERR_BAD_REQUEST, "The room ID is too long");
            return;
        }
        room = mk_jid_bare(to);
    }
    Op *op = op_new(ml, OP_CREATE, iq, room);
    op->at_service = at_service;
    const char *why = NULL;
    MkXml *config = mk_xml_child(query, "configuration", NULL);
    MkXml *occupants = mk_xml_child(query, "occupants", NULL);
    gboolean ok = (!config || parse_config(ml, config, op, &why));
    if (ok && occupants) {
        ok = parse_users(occupants, op, &why);
    } else if (ok) {
        op->req = g_ptr_array_new_with_free_func(ml_change_free);
    }
    guint owners = 0;
    for (guint i = 0; ok && i < op->req->len; i++) {
        MlChange *c = g_ptr_array_index(op->req, i);
        if (c->aff == ML_NONE || strcmp(c->jid, op->actor) == 0) {
            why = "The list holds members and at most one owner, not the creator";
            ok = FALSE;
        }
        owners += c->aff == ML_OWNER;
    }
    if (ok && owners > 1) {
        why = "At most one owner";
        ok = FALSE;
    }
    if (!ok) {
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, why);
        op_free(op);
        return;
    }
    push(op);
}

void ml_destroy(MucLight *ml, MkStanza *iq)
{
    push(op_new(ml, OP_DESTROY, iq, mk_stanza_to(iq)));
}

void ml_config_set(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room)
{
    if (!room->exists || ml_room_aff(room, mk_jid_bare_string(mk_stanza_from(iq))) == ML_NONE) {
        ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
        return;
    }
    Op *op = op_new(ml, OP_CONFIG, iq, mk_stanza_to(iq));
    const char *why = "Nothing to change";
    if (!parse_config(ml, query, op, &why) || (!op->roomname && !op->subject)) {
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, why);
        op_free(op);
        return;
    }
    push(op);
}

void ml_affs_set(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room)
{
    if (!room->exists || ml_room_aff(room, mk_jid_bare_string(mk_stanza_from(iq))) == ML_NONE) {
        ml_reply_error(iq, MK_ERR_ITEM_NOT_FOUND, NULL);
        return;
    }
    Op *op = op_new(ml, OP_AFFS, iq, mk_stanza_to(iq));
    const char *why = "Nothing to change";
    if (!parse_users(query, op, &why) || !op->req->len) {
        ml_reply_error(iq, MK_ERR_BAD_REQUEST, why);
        op_free(op);
        return;
    }
    push(op);
}

void ml_leave(MucLight *ml, MkJid *room, const char *user)
{
    Op *op = op_new_full(ml, OP_AFFS, NULL, room, user);
    op->req = g_ptr_array_new_with_free_func(ml_change_free);
    g_ptr_array_add(op->req, ml_change_new(user, ML_NONE));
    push(op);
}
