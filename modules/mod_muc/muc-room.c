/* Rooms: lookup, loading from the database, creation on the first join,
 * affiliations, hibernation and destruction. Everything here runs on the
 * room's owner worker. */
#include "muc.h"

static void occupant_free(gpointer data)
{
    MucOccupant *o = data;
    muc_joined_release(o->muc, o->bare);
    g_free(o->nick);
    mk_jid_unref(o->bare);
    g_ptr_array_unref(o->sessions);
    if (o->presence)
        mk_xml_unref(o->presence);
    g_free(o);
}

static void aff_item_free(gpointer data)
{
    MucAffItem *a = data;
    g_free(a->nick);
    g_free(a->reason);
    g_free(a);
}

static void history_free(gpointer data)
{
    MucHistory *h = data;
    mk_xml_unref(h->msg);
    mk_jid_unref(h->from);
    g_free(h);
}

/* A room with the service's defaults, not in the directory yet.
 * (transfer full) */
MucRoom *muc_room_new(Muc *muc, MkJid *jid)
{
    MucRoom *room = g_new0(MucRoom, 1);
    room->muc = muc;
    room->jid = mk_jid_bare(jid);
    room->key = g_strdup(mk_jid_bare_string(room->jid));
    room->cfg.title = g_strdup("");
    room->cfg.description = g_strdup("");
    room->cfg.public_room = TRUE;
    room->cfg.allow_invites = TRUE;
    room->cfg.allow_pm = TRUE;
    room->cfg.max_users = muc->max_users;
    room->cfg.history_length = MIN(muc->default_history, muc->max_history);
    room->affs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, aff_item_free);
    room->occupants = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, occupant_free);
    room->by_jid = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return room;
}

/* Frees @room (taken out of the directory already, or with it). */
void muc_room_free(MucRoom *room)
{
    g_queue_clear_full(&room->history, history_free);
    g_queue_clear_full(&room->pending, (GDestroyNotify)mk_stanza_unref);
    g_hash_table_destroy(room->by_jid);
    g_hash_table_destroy(room->occupants);
    g_hash_table_destroy(room->affs);
    muc_config_clear(&room->cfg);
    g_free(room->subject);
    g_free(room->subject_nick);
    mk_jid_unref(room->jid);
    g_free(room->key);
    g_free(room);
}

/* Publishes whether the room is listed in disco#items, and its name:
 * the service's disco reads this table, never the room. */
void muc_room_summary(MucRoom *room, gboolean gone)
{
    Muc *muc = room->muc;
    g_mutex_lock(&muc->lock);
    if (!gone && room->cfg.public_room && !room->locked)
        g_hash_table_replace(muc->listed, g_strdup(room->key), g_strdup(room->cfg.title));
    else
        g_hash_table_remove(muc->listed, room->key);
    g_mutex_unlock(&muc->lock);
}

typedef struct {
    Muc *muc;
    char *key, *bare;
} ForgetJob;

static void forget_job_free(gpointer data)
{
    ForgetJob *j = data;
    g_free(j->key);
    g_free(j->bare);
    g_free(j);
}

/* On a room's owner: the account @bare was removed; its affiliation
 * goes (a new account of the same name inherits nothing). */
static gboolean forget_run(gpointer data)
{
    ForgetJob *j = data;
    g_mutex_lock(&j->muc->lock);
    MucRoom *room = g_hash_table_lookup(j->muc->rooms, j->key);
    g_mutex_unlock(&j->muc->lock);
    if (room && !room->loading && g_hash_table_remove(room->affs, j->bare))
        muc_room_changed(room);
    return G_SOURCE_REMOVE;
}

static void forget_done(MkDbResult *res, const GError *error, gpointer data)
{
    (void)res;
    (void)data;
    if (error)
        g_warning("mod_muc: removing a removed account's affiliations: %s", error->message);
}

/* See muc.h. Any thread. */
GPtrArray *muc_room_keys(Muc *muc)
{
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    g_mutex_lock(&muc->lock);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, muc->rooms);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(keys, g_strdup(k));
    g_mutex_unlock(&muc->lock);
    return keys;
}

/* Hook remove_user: the account's affiliations go, in stored rooms and
 * in the rooms in memory (through their owners). */
MkResult muc_on_remove_user(MkHookCall *call, gpointer data)
{
    Muc *muc = data;
    MkJid *bare = mk_hook_call_from(call);
    if (!bare)
        return MK_PASS;
    mk_db_query(muc->mod, "DELETE FROM muc_affiliations WHERE jid = ?", forget_done, NULL,
                MK_DB_STR(mk_jid_bare_string(bare)));
    g_autoptr(GPtrArray) keys = muc_room_keys(muc);
    for (guint i = 0; i < keys->len; i++) {
        ForgetJob *j = g_new0(ForgetJob, 1);
        j->muc = muc;
        j->key = g_strdup(g_ptr_array_index(keys, i));
        j->bare = g_strdup(mk_jid_bare_string(bare));
        mk_owner_post(muc->mod, j->key, forget_run, j, forget_job_free);
    }
    return MK_PASS;
}

/* Counts a room of @bare's (nullable: nobody's) in or out. Any worker. */
void muc_creator_count(Muc *muc, const char *bare, int delta)
{
    if (!bare)
        return;
    g_mutex_lock(&muc->lock);
    int n = GPOINTER_TO_INT(g_hash_table_lookup(muc->created, bare)) + delta;
    if (n > 0)
        g_hash_table_replace(muc->created, g_strdup(bare), GINT_TO_POINTER(n));
    else
        g_hash_table_remove(muc->created, bare);
    g_mutex_unlock(&muc->lock);
}

gboolean muc_joined_take(Muc *muc, MkJid *bare)
{
    const char *key = mk_jid_bare_string(bare);
    g_mutex_lock(&muc->joined_lock);
    int n = GPOINTER_TO_INT(g_hash_table_lookup(muc->joined, key));
    gboolean ok = n < muc->max_joined;
    if (ok)
        g_hash_table_replace(muc->joined, g_strdup(key), GINT_TO_POINTER(n + 1));
    g_mutex_unlock(&muc->joined_lock);
    return ok;
}

void muc_joined_release(Muc *muc, MkJid *bare)
{
    const char *key = mk_jid_bare_string(bare);
    g_mutex_lock(&muc->joined_lock);
    int n = GPOINTER_TO_INT(g_hash_table_lookup(muc->joined, key)) - 1;
    if (n > 0)
        g_hash_table_replace(muc->joined, g_strdup(key), GINT_TO_POINTER(n));
    else
        g_hash_table_remove(muc->joined, key);
    g_mutex_unlock(&muc->joined_lock);
}

/* Counts a new room of @bare's in unless they have max_rooms_per_user. */
static gboolean creator_take(Muc *muc, const char *bare)
{
    g_mutex_lock(&muc->lock);
    int n = GPOINTER_TO_INT(g_hash_table_lookup(muc->created, bare));
    gboolean ok = n < muc->max_rooms_per_user;
    if (ok)
        g_hash_table_replace(muc->created, g_strdup(bare), GINT_TO_POINTER(n + 1));
    g_mutex_unlock(&muc->lock);
    return ok;
}

/* Takes @room out of the directory and frees it. */
static void room_forget(MucRoom *room)
{
    Muc *muc = room->muc;
    g_mutex_lock(&muc->lock);
    g_hash_table_remove(muc->rooms, room->key); /* frees */
    g_mutex_unlock(&muc->lock);
}

MucAff muc_room_aff(MucRoom *room, MkJid *real)
{
    MucAffItem *a = g_hash_table_lookup(room->affs, mk_jid_bare_string(real));
    return a ? a->aff : AFF_NONE;
}

void muc_room_set_aff(MucRoom *room, const char *bare, MucAff aff, const char *reason)
{
    if (aff == AFF_NONE) {
        g_hash_table_remove(room->affs, bare);
        return;
    }
    MucAffItem *a = g_hash_table_lookup(room->affs, bare);
    if (!a) {
        a = g_new0(MucAffItem, 1);
        g_hash_table_insert(room->affs, g_strdup(bare), a);
    }
    a->aff = aff;
    g_free(a->reason);
    a->reason = g_strdup(reason);
}

/* A snapshot of the occupants, for loops that remove some. (transfer
 * container) */
GPtrArray *muc_room_occupants(MucRoom *room)
{
    GPtrArray *all = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v))
        g_ptr_array_add(all, v);
    return all;
}

/* The first occupant of @real's bare JID, or NULL. */
MucOccupant *muc_room_occupant_by_bare(MucRoom *room, MkJid *real)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        MucOccupant *o = v;
        if (mk_jid_bare_equal(o->bare, real))
            return o;
    }
    return NULL;
}

/* The room's persistent state changed: written for a persistent room. */
void muc_room_changed(MucRoom *room)
{
    if (room->cfg.persistent && !room->locked)
        muc_db_save(room);
    else if (room->stored && !room->cfg.persistent)
        muc_db_delete(room);
}

typedef struct {
    Muc *muc;
    char *key;
} HibernateJob;

static void hibernate_job_free(gpointer data)
{
    HibernateJob *j = data;
    g_free(j->key);
    g_free(j);
}

static gboolean idle_enough(Muc *muc, MucRoom *room, gint64 now)
{
    return room->idle_since && now - room->idle_since >= muc->hibernate_after;
}

/* On the room's owner: the sweep found it idle long enough. Checked again
 * here, where the room's state is. */
static gboolean hibernate_run(gpointer data)
{
    HibernateJob *j = data;
    Muc *muc = j->muc;
    gint64 now = g_get_monotonic_time() / G_USEC_PER_SEC;
    g_mutex_lock(&muc->lock);
    MucRoom *room = g_hash_table_lookup(muc->rooms, j->key);
    if (room && !room->loading && g_hash_table_size(room->occupants) == 0 &&
        idle_enough(muc, room, now))
        g_hash_table_steal(muc->rooms, j->key);
    else
        room = NULL;
    g_mutex_unlock(&muc->lock);
    if (room) {
        mk_counter_add(muc->c_hibernated, 1);
        g_debug("mod_muc: room %s hibernates", room->key);
        char *history = muc_history_to_string(room);
        if (history)
            muc_db_save_history(room, history);
        muc_room_free(room);
    }
    return G_SOURCE_REMOVE;
}

/* Main thread, every few seconds: finds the rooms empty for
 * hibernate_after seconds and asks their owners to let them go. One
 * sweep rather than a timer per room: a worker's loop looks at every
 * source it has on each iteration, so 100,000 room timers made every
 * wake-up cost 100,000 checks. */
gboolean muc_hibernate_sweep(gpointer data)
{
    Muc *muc = data;
    gint64 now = g_get_monotonic_time() / G_USEC_PER_SEC;
    g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
    g_mutex_lock(&muc->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, muc->rooms);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (idle_enough(muc, v, now))
            g_ptr_array_add(keys, g_strdup(k));
    g_mutex_unlock(&muc->lock);
    for (guint i = 0; i < keys->len; i++) {
        HibernateJob *j = g_new0(HibernateJob, 1);
        j->muc = muc;
        j->key = g_strdup(g_ptr_array_index(keys, i));
        mk_owner_post(muc->mod, j->key, hibernate_run, j, hibernate_job_free);
    }
    return G_SOURCE_CONTINUE;
}

/* The last occupant left: a temporary room goes, a persistent one
 * hibernates after a while (its state is in the database). */
void muc_room_maybe_idle(MucRoom *room)
{
    if (g_hash_table_size(room->occupants) > 0 || room->loading)
        return;
    if (!room->cfg.persistent || room->locked) {
        if (room->stored)
            muc_db_delete(room);
        muc_room_summary(room, TRUE);
        mk_counter_add(room->muc->c_destroyed, 1);
        g_atomic_int_add(&room->muc->n_rooms, -1);
        muc_creator_count(room->muc, room->cfg.creator, -1);
        room_forget(room);
        return;
    }
    Muc *muc = room->muc;
    g_mutex_lock(&muc->lock);
    if (!room->idle_since)
        room->idle_since = MAX(g_get_monotonic_time() / G_USEC_PER_SEC, 1);
    g_mutex_unlock(&muc->lock);
}

/* Destroys the room (XEP-0045 10.9): occupants get unavailable presence
 * with <destroy/>, the database row and the archive go. */
void muc_room_destroy(MucRoom *room, const char *alt, const char *reason)
{
    g_autoptr(GPtrArray) all = muc_room_occupants(room);
    for (guint i = 0; i < all->len; i++) {
        MucOccupant *o = g_ptr_array_index(all, i);
        g_autoptr(MkXml) p = mk_xml_new("presence", "jabber:client");
        mk_xml_set_attr(p, "type", "unavailable");
        MkXml *x = mk_xml_add_child(p, "x", NS_MUC_USER);
        MkXml *item = mk_xml_add_child(x, "item", NULL);
        mk_xml_set_attr(item, "affiliation", "none");
        mk_xml_set_attr(item, "role", "none");
        MkXml *d = mk_xml_add_child(x, "destroy", NULL);
        if (alt)
            mk_xml_set_attr(d, "jid", alt);
        if (reason)
            mk_xml_add_text(mk_xml_add_child(d, "reason", NULL), reason, -1);
        muc_add_status(x, 110);
        g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
        muc_send_to_occupant(o, p, from);
    }
    if (room->stored || room->cfg.persistent)
        muc_db_delete(room);
    mk_archive_remove(room->muc->mod, room->jid);
    muc_room_summary(room, TRUE);
    mk_counter_add(room->muc->c_destroyed, 1);
    g_atomic_int_add(&room->muc->n_rooms, -1);
    muc_creator_count(room->muc, room->cfg.creator, -1);
    room_forget(room);
}

static gboolean is_join(MkStanza *st)
{
    return mk_stanza_kind(st) == MK_STANZA_PRESENCE && mk_stanza_type(st) == NULL &&
           mk_jid_resource(mk_stanza_to(st));
}

/* Handles @st for a loaded room. A room that does not exist (the load
 * found nothing) exists after a join that creates it. */
static void room_handle(MucRoom *room, MkStanza *st)
{
    switch (mk_stanza_kind(st)) {
    case MK_STANZA_PRESENCE:
        muc_presence(room, st);
        break;
    case MK_STANZA_MESSAGE:
        muc_message(room, st);
        break;
    case MK_STANZA_IQ:
        muc_room_iq(room, st);
        break;
    default:
        break;
    }
}

/* A room the database did not know: only a join creates it. */
static gboolean room_create(MucRoom *room, MkStanza *st)
{
    Muc *muc = room->muc;
    MkJid *from = mk_stanza_from(st);
    if (!is_join(st)) {
        if (mk_stanza_kind(st) != MK_STANZA_PRESENCE)
            muc_error(st, MK_ERR_ITEM_NOT_FOUND, NULL);
        else if (mk_stanza_type(st) == NULL)
            muc_error(st, MK_ERR_JID_MALFORMED, "a nickname is required");
        return FALSE;
    }
    if (!mk_module_serves_domain(muc->mod, mk_jid_domain(from))) {
        muc_error(st, MK_ERR_NOT_ALLOWED, "rooms are created by local users");
        return FALSE;
    }
    if (!g_atomic_int_get(&muc->counted)) {
        /* The limits count stored rooms, read right after the start. */
        muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "the service is starting");
        return FALSE;
    }
    if (g_atomic_int_add(&muc->n_rooms, 1) >= muc->max_rooms) {
        g_atomic_int_add(&muc->n_rooms, -1);
        mk_counter_add(muc->c_refused, 1);
        muc_error(st, MK_ERR_NOT_ALLOWED, "too many rooms on this service");
        return FALSE;
    }
    g_autoptr(MkJid) bare = mk_jid_bare(from);
    if (!creator_take(muc, mk_jid_string(bare))) {
        g_atomic_int_add(&muc->n_rooms, -1);
        mk_counter_add(muc->c_refused, 1);
        muc_error(st, MK_ERR_NOT_ALLOWED, "you have created too many rooms");
        return FALSE;
    }
    room->cfg.creator = g_strdup(mk_jid_string(bare));
    mk_counter_add(muc->c_created, 1);
    room->locked = TRUE;
    muc_room_set_aff(room, mk_jid_bare_string(from), AFF_OWNER, NULL);
    return TRUE;
}

/* The owner runs a stanza that arrived while the room was loading, or
 * right away. */
static void room_run(MucRoom *room, MkStanza *st, gboolean *exists)
{
    if (!*exists) {
        if (!room_create(room, st))
            return;
        *exists = TRUE;
    }
    room_handle(room, st);
}

/* Whether @room (maybe freed: not dereferenced) is still the room of
 * @key. */
static gboolean room_alive(Muc *muc, const char *key, MucRoom *room)
{
    g_mutex_lock(&muc->lock);
    gboolean alive = g_hash_table_lookup(muc->rooms, key) == room;
    g_mutex_unlock(&muc->lock);
    return alive;
}

/* Called by muc-db.c on the owner when the load finished: @found tells
 * whether the database had the room (its state is filled in then). */
void muc_room_loaded(MucRoom *room, gboolean found)
{
    Muc *muc = room->muc;
    room->loading = FALSE;
    if (found) {
        room->stored = TRUE;
        mk_counter_add(muc->c_woken, 1);
        g_debug("mod_muc: room %s loaded", room->key);
    }
    gboolean exists = found;
    g_autofree char *key = g_strdup(room->key);
    GQueue todo = room->pending;
    g_queue_init(&room->pending);
    MkStanza *st;
    gboolean alive = TRUE;
    while ((st = g_queue_pop_head(&todo))) {
        if (alive)
            room_run(room, st, &exists);
        else
            muc_dispatch(muc, st); /* the room went: a new one, or a new load */
        mk_stanza_unref(st);
        if (alive)
            alive = room_alive(muc, key, room);
    }
    if (!alive)
        return;
    if (!exists) {
        room_forget(room); /* nobody created it */
        return;
    }
    muc_room_maybe_idle(room);
}

/* Owner worker: the entry point of every stanza for a room. */
void muc_dispatch(Muc *muc, MkStanza *st)
{
    const char *key = mk_jid_bare_string(mk_stanza_to(st));
    g_mutex_lock(&muc->lock);
    MucRoom *room = g_hash_table_lookup(muc->rooms, key);
    if (!room) {
        /* An unavailable or an error to an unknown room needs no answer
         * and no load. */
        if (mk_stanza_kind(st) == MK_STANZA_PRESENCE && mk_stanza_type(st)) {
            g_mutex_unlock(&muc->lock);
            return;
        }
        /* Each unknown name costs a read: a flood of names is bounded. */
        if (g_atomic_int_get(&muc->n_loading) >= muc->max_loading) {
            g_mutex_unlock(&muc->lock);
            mk_counter_add(muc->c_limited, 1);
            muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "too many rooms are loading");
            return;
        }
        g_atomic_int_inc(&muc->n_loading);
        room = muc_room_new(muc, mk_stanza_to(st));
        room->loading = TRUE;
        g_hash_table_insert(muc->rooms, room->key, room);
        g_mutex_unlock(&muc->lock);
        g_queue_push_tail(&room->pending, mk_stanza_ref(st));
        muc_db_load(room);
        return;
    }
    room->idle_since = 0; /* in use; muc_room_maybe_idle() below says again */
    g_mutex_unlock(&muc->lock);
    if (room->loading) {
        if (room->pending.length >= muc->max_pending) {
            mk_counter_add(muc->c_limited, 1);
            muc_error(st, MK_ERR_RESOURCE_CONSTRAINT, "the room is loading");
            return;
        }
        g_queue_push_tail(&room->pending, mk_stanza_ref(st));
        return;
    }
    room_handle(room, st);
    /* The stanza may have freed the room: look again before idling. */
    if (room_alive(muc, key, room))
        muc_room_maybe_idle(room);
}
