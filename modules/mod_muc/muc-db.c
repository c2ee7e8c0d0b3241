/* Storage of persistent rooms: the room's configuration and subject in
 * muc_rooms, its affiliations in muc_affiliations. Writes of one room go
 * through the module's user queue under the room's key, so they commit
 * in the order the owner made them and a load after a hibernation sees
 * the last one. */
#include "muc.h"

const MkMigration muc_migrations[] = {
    {NULL, 1,
     "CREATE TABLE muc_rooms ("
     " service TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " config TEXT NOT NULL,"
     " subject TEXT,"
     " subject_nick TEXT,"
     " PRIMARY KEY (service, name)"
     ");"
     "CREATE TABLE muc_affiliations ("
     " service TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " jid TEXT NOT NULL,"
     " affiliation TEXT NOT NULL,"
     " nick TEXT,"
     " reason TEXT,"
     " PRIMARY KEY (service, name, jid),"
     " FOREIGN KEY (service, name) REFERENCES muc_rooms (service, name) ON DELETE CASCADE"
     ")"},
    /* The discussion history of a hibernated room (cleared on wake-up). */
    {NULL, 2, "ALTER TABLE muc_rooms ADD COLUMN history TEXT"},
    MK_MIGRATIONS_END,
};

/* Saving. */

typedef struct {
    char *service, *name, *config, *subject, *subject_nick;
    GPtrArray *affs; /* groups of 4 strings: jid, affiliation, nick, reason */
} SaveOp;

static void save_op_free(gpointer data)
{
    SaveOp *op = data;
    g_free(op->service);
    g_free(op->name);
    g_free(op->config);
    g_free(op->subject);
    g_free(op->subject_nick);
    if (op->affs)
        g_ptr_array_unref(op->affs);
    g_free(op);
}

static SaveOp *save_op_new(MucRoom *room)
{
    SaveOp *op = g_new0(SaveOp, 1);
    op->service = g_strdup(mk_jid_domain(room->jid));
    op->name = g_strdup(mk_jid_node(room->jid));
    return op;
}

static gboolean save_work(MkDbConn *conn, gpointer data, GError **error)
{
    SaveOp *op = data;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error,
                         "INSERT INTO muc_rooms (service, name, config, subject, subject_nick)"
                         " VALUES (?, ?, ?, ?, ?) ON CONFLICT (service, name) DO UPDATE SET"
                         " config = excluded.config, subject = excluded.subject,"
                         " subject_nick = excluded.subject_nick",
                         MK_DB_STR(op->service), MK_DB_STR(op->name), MK_DB_STR(op->config),
                         op->subject ? MK_DB_STR(op->subject) : MK_DB_NULL,
                         op->subject_nick ? MK_DB_STR(op->subject_nick) : MK_DB_NULL);
    if (!r)
        return FALSE;
    g_autoptr(MkDbResult) d =
        mk_db_conn_query(conn, error, "DELETE FROM muc_affiliations WHERE service = ? AND name = ?",
                         MK_DB_STR(op->service), MK_DB_STR(op->name));
    if (!d)
        return FALSE;
    for (guint i = 0; i + 3 < op->affs->len; i += 4) {
        const char *nick = g_ptr_array_index(op->affs, i + 2);
        const char *reason = g_ptr_array_index(op->affs, i + 3);
        g_autoptr(MkDbResult) a = mk_db_conn_query(
            conn, error,
            "INSERT INTO muc_affiliations (service, name, jid, affiliation, nick, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            MK_DB_STR(op->service), MK_DB_STR(op->name), MK_DB_STR(g_ptr_array_index(op->affs, i)),
            MK_DB_STR(g_ptr_array_index(op->affs, i + 1)), nick ? MK_DB_STR(nick) : MK_DB_NULL,
            reason ? MK_DB_STR(reason) : MK_DB_NULL);
        if (!a)
            return FALSE;
    }
    return TRUE;
}

static void write_done(const GError *error, gpointer data)
{
    SaveOp *op = data;
    if (error && !g_error_matches(error, MK_USER_QUEUE_ERROR, MK_USER_QUEUE_ERROR_STOPPED))
        g_warning("mod_muc: storing room %s@%s: %s", op->name, op->service, error->message);
}

/* Writes the room's configuration, subject and affiliations. Owner. */
void muc_db_save(MucRoom *room)
{
    SaveOp *op = save_op_new(room);
    op->config = muc_config_to_string(&room->cfg);
    op->subject = g_strdup(room->subject);
    op->subject_nick = g_strdup(room->subject_nick);
    op->affs = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, room->affs);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        MucAffItem *a = v;
        g_ptr_array_add(op->affs, g_strdup(k));
        g_ptr_array_add(op->affs, g_strdup(muc_aff_name(a->aff)));
        g_ptr_array_add(op->affs, g_strdup(a->nick));
        g_ptr_array_add(op->affs, g_strdup(a->reason));
    }
    room->stored = TRUE;
    mk_user_queue_push(room->muc->queue, room->key, save_work, write_done, op, save_op_free);
}

static gboolean delete_work(MkDbConn *conn, gpointer data, GError **error)
{
    SaveOp *op = data;
    g_autoptr(MkDbResult) a =
        mk_db_conn_query(conn, error, "DELETE FROM muc_affiliations WHERE service = ? AND name = ?",
                         MK_DB_STR(op->service), MK_DB_STR(op->name));
    if (!a)
        return FALSE;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error, "DELETE FROM muc_rooms WHERE service = ? AND name = ?",
                         MK_DB_STR(op->service), MK_DB_STR(op->name));
    return r != NULL;
}

/* Removes the room's rows. Owner. */
void muc_db_delete(MucRoom *room)
{
    room->stored = FALSE;
    mk_user_queue_push(room->muc->queue, room->key, delete_work, write_done, save_op_new(room),
                       save_op_free);
}

typedef struct {
    char *service, *name, *history; /* history NULL: clear it */
    Muc *muc;
    char *key; /* write-through: the room, looked up again when done */
} HistoryOp;

static void history_op_free(gpointer data)
{
    HistoryOp *op = data;
    g_free(op->service);
    g_free(op->name);
    g_free(op->history);
    g_free(op->key);
    g_free(op);
}

static gboolean history_work(MkDbConn *conn, gpointer data, GError **error)
{
    HistoryOp *op = data;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error, "UPDATE muc_rooms SET history = ? WHERE service = ? AND name = ?",
        op->history ? MK_DB_STR(op->history) : MK_DB_NULL, MK_DB_STR(op->service),
        MK_DB_STR(op->name));
    return r != NULL;
}

static void history_done(const GError *error, gpointer data)
{
    HistoryOp *op = data;
    if (error && !g_error_matches(error, MK_USER_QUEUE_ERROR, MK_USER_QUEUE_ERROR_STOPPED))
        g_warning("mod_muc: storing the history of %s@%s: %s", op->name, op->service,
                  error->message);
}

static HistoryOp *history_op_new(MucRoom *room, char *text)
{
    HistoryOp *op = g_new0(HistoryOp, 1);
    op->service = g_strdup(mk_jid_domain(room->jid));
    op->name = g_strdup(mk_jid_node(room->jid));
    op->history = text;
    return op;
}

/* Stores the room's discussion history (@text, nullable: none) for its
 * next wake-up. Owner. */
void muc_db_save_history(MucRoom *room, char *text)
{
    mk_user_queue_push(room->muc->queue, room->key, history_work, history_done,
                       history_op_new(room, text), history_op_free);
}

static void history_through_push(MucRoom *room);

/* A write-through finished: the changes made meanwhile go in one more
 * write. On the room's owner, which is where the push ran. */
static void history_through_done(const GError *error, gpointer data)
{
    HistoryOp *op = data;
    history_done(error, data);
    if (!mk_module_is_running(op->muc->mod))
        return;
    g_mutex_lock(&op->muc->lock);
    MucRoom *room = g_hash_table_lookup(op->muc->rooms, op->key);
    g_mutex_unlock(&op->muc->lock);
    if (!room) /* hibernated or destroyed: that path wrote or deleted it */
        return;
    room->history_writing = FALSE;
    if (room->history_dirty)
        history_through_push(room);
}

static void history_through_push(MucRoom *room)
{
    HistoryOp *op = history_op_new(room, muc_history_to_string(room));
    op->muc = room->muc;
    op->key = g_strdup(room->key);
    room->history_writing = TRUE;
    room->history_dirty = FALSE;
    mk_user_queue_push(room->muc->queue, room->key, history_work, history_through_done, op,
                       history_op_free);
}

/* See muc.h. Owner. */
void muc_db_history_changed(MucRoom *room)
{
    if (!mk_cluster_active() || !room->cfg.persistent || room->locked || !room->stored)
        return;
    if (room->history_writing)
        room->history_dirty = TRUE;
    else
        history_through_push(room);
}

/* Loading. */

typedef struct {
    Muc *muc;
    MucRoom *room; /* compared with the directory's entry on completion */
    char *key, *service, *name;
    char *config, *subject, *subject_nick, *history;
    gboolean found;
    GPtrArray *affs; /* as SaveOp's */
} LoadOp;

static void load_op_free(gpointer data)
{
    LoadOp *op = data;
    g_free(op->key);
    g_free(op->service);
    g_free(op->name);
    g_free(op->config);
    g_free(op->subject);
    g_free(op->subject_nick);
    g_free(op->history);
    g_ptr_array_unref(op->affs);
    g_free(op);
}

static gboolean load_work(MkDbConn *conn, gpointer data, GError **error)
{
    LoadOp *op = data;
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, error,
                         "SELECT config, subject, subject_nick, history FROM muc_rooms"
                         " WHERE service = ? AND name = ?",
                         MK_DB_STR(op->service), MK_DB_STR(op->name));
    if (!r)
        return FALSE;
    if (mk_db_result_rows(r) == 0)
        return TRUE;
    op->found = TRUE;
    op->config = g_strdup(mk_db_result_get_string(r, 0, 0));
    op->subject = g_strdup(mk_db_result_get_string(r, 0, 1));
    op->subject_nick = g_strdup(mk_db_result_get_string(r, 0, 2));
    op->history = g_strdup(mk_db_result_get_string(r, 0, 3));
    g_autoptr(MkDbResult) a = mk_db_conn_query(conn, error,
                                               "SELECT jid, affiliation, nick, reason FROM "
                                               "muc_affiliations WHERE service = ? AND name = ?",
                                               MK_DB_STR(op->service), MK_DB_STR(op->name));
    if (!a)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(a); i++)
        for (guint c = 0; c < 4; c++)
            g_ptr_array_add(op->affs, g_strdup(mk_db_result_get_string(a, i, c)));
    return TRUE;
}

static void load_done(const GError *error, gpointer data)
{
    LoadOp *op = data;
    Muc *muc = op->muc;
    g_atomic_int_add(&muc->n_loading, -1);
    if (!mk_module_is_running(muc->mod))
        return;
    g_mutex_lock(&muc->lock);
    gboolean alive = g_hash_table_lookup(muc->rooms, op->key) == op->room;
    g_mutex_unlock(&muc->lock);
    if (!alive)
        return;
    MucRoom *room = op->room;
    if (error) {
        g_warning("mod_muc: loading room %s: %s", op->key, error->message);
        MkStanza *st;
        while ((st = g_queue_pop_head(&room->pending))) {
            muc_error(st, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
            mk_stanza_unref(st);
        }
        room->loading = FALSE;
        g_mutex_lock(&muc->lock);
        g_hash_table_remove(muc->rooms, op->key);
        g_mutex_unlock(&muc->lock);
        return;
    }
    if (op->found) {
        muc_config_from_string(&room->cfg, op->config);
        room->subject = g_steal_pointer(&op->subject);
        room->subject_nick = g_steal_pointer(&op->subject_nick);
        if (op->history) {
            /* In memory from now on; cleared in the database so that a
             * restart never brings back an older history. In a cluster
             * the row follows every change instead (it is what a
             * survivor reloads if this node is killed), so it stays. */
            muc_history_from_string(room, op->history);
            if (!mk_cluster_active())
                muc_db_save_history(room, NULL);
        }
        for (guint i = 0; i + 3 < op->affs->len; i += 4) {
            MucAff aff;
            if (!muc_aff_parse(g_ptr_array_index(op->affs, i + 1), &aff))
                continue;
            muc_room_set_aff(room, g_ptr_array_index(op->affs, i), aff,
                             g_ptr_array_index(op->affs, i + 3));
            MucAffItem *a = g_hash_table_lookup(room->affs, g_ptr_array_index(op->affs, i));
            if (a)
                a->nick = g_strdup(g_ptr_array_index(op->affs, i + 2));
        }
    }
    muc_room_loaded(room, op->found);
}

/* Reads the room from the database, then muc_room_loaded(). Owner. */
void muc_db_load(MucRoom *room)
{
    LoadOp *op = g_new0(LoadOp, 1);
    op->muc = room->muc;
    op->room = room;
    op->key = g_strdup(room->key);
    op->service = g_strdup(mk_jid_domain(room->jid));
    op->name = g_strdup(mk_jid_node(room->jid));
    op->affs = g_ptr_array_new_with_free_func(g_free);
    mk_user_queue_push_reads(room->muc->queue, room->key, load_work, load_done, op, load_op_free);
}

/* At start: how many rooms the database holds (the max_rooms limit) and
 * which of them are public (disco#items without waking them). */
static void count_done(MkDbResult *res, const GError *error, gpointer data)
{
    Muc *muc = data;
    if (error) {
        g_warning("mod_muc: counting rooms: %s", error->message);
        g_atomic_int_set(&muc->counted, 1); /* rather than refusing for ever */
        return;
    }
    gint n = 0;
    g_mutex_lock(&muc->lock);
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        gboolean ours = FALSE;
        for (guint s = 0; s < muc->services->len; s++)
            ours |= g_strcmp0(((MucService *)g_ptr_array_index(muc->services, s))->service,
                              mk_db_result_get_string(res, i, 0)) == 0;
        if (!ours)
            continue; /* another host type's service */
        n++;
        MucConfig cfg = {0};
        muc_config_from_string(&cfg, mk_db_result_get_string(res, i, 2));
        if (cfg.creator) {
            int c = GPOINTER_TO_INT(g_hash_table_lookup(muc->created, cfg.creator));
            g_hash_table_replace(muc->created, g_strdup(cfg.creator), GINT_TO_POINTER(c + 1));
        }
        if (cfg.public_room) {
            g_autofree char *key = g_strdup_printf("%s@%s", mk_db_result_get_string(res, i, 1),
                                                   mk_db_result_get_string(res, i, 0));
            g_hash_table_replace(muc->listed, g_steal_pointer(&key), g_strdup(cfg.title));
        }
        muc_config_clear(&cfg);
    }
    g_mutex_unlock(&muc->lock);
    g_atomic_int_add(&muc->n_rooms, n);
    g_atomic_int_set(&muc->counted, 1);
    g_debug("mod_muc: %d stored rooms counted", n);
}

void muc_db_count(Muc *muc)
{
    mk_db_query(muc->mod, "SELECT service, name, config FROM muc_rooms", count_done, muc);
}
