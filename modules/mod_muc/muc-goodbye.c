/* The module stops (unloaded, restarted by a reload, or the server shuts
 * down): every room in memory tells its occupants that it goes away
 * (XEP-0045 status 332), and a persistent room writes its discussion
 * history, read back when the room next wakes (docs/mod_muc.md,
 * "Discussion history"). The core runs this while the client streams are
 * still open and waits for the owners to have done it. */
#include "muc.h"

typedef struct {
    Muc *muc;
    char *key;
} GoodbyeJob;

static void goodbye_job_free(gpointer data)
{
    GoodbyeJob *j = data;
    g_free(j->key);
    g_free(j);
}

/* Each session of @o gets its own unavailable presence with 110 and 332:
 * every occupant leaves, so telling each about the others would only
 * multiply the stanzas by the room's size. */
static void tell_occupant(MucRoom *room, MucOccupant *o)
{
    g_autoptr(MkXml) p = mk_xml_new("presence", "jabber:client");
    mk_xml_set_attr(p, "type", "unavailable");
    MkXml *x = mk_xml_add_child(p, "x", NS_MUC_USER);
    MkXml *item = mk_xml_add_child(x, "item", NULL);
    mk_xml_set_attr(item, "affiliation", muc_aff_name(muc_room_aff(room, o->bare)));
    mk_xml_set_attr(item, "role", "none");
    muc_add_status(x, 110);
    muc_add_status(x, 332);
    g_autoptr(MkJid) from = mk_jid_with_resource(room->jid, o->nick, NULL);
    muc_send_to_occupant(o, p, from);
}

/* On the room's owner. */
static gboolean goodbye_run(gpointer data)
{
    GoodbyeJob *j = data;
    Muc *muc = j->muc;
    g_mutex_lock(&muc->lock);
    MucRoom *room = g_hash_table_lookup(muc->rooms, j->key);
    g_mutex_unlock(&muc->lock);
    if (!room || room->loading)
        return G_SOURCE_REMOVE;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, room->occupants);
    while (g_hash_table_iter_next(&it, NULL, &v))
        tell_occupant(room, v);
    g_hash_table_remove_all(room->by_jid);
    g_hash_table_remove_all(room->occupants);
    /* Queued behind the room's own writes (its row may not be there
     * yet); the core drains the queue before the module stops. */
    if (room->cfg.persistent && !room->locked && room->stored)
        muc_db_save_history(room, muc_history_to_string(room));
    return G_SOURCE_REMOVE;
}

/* See muc.h. Main thread. */
void muc_on_stopping(MkModule *mod, gpointer data)
{
    Muc *muc = data;
    g_autoptr(GPtrArray) keys = muc_room_keys(muc);
    for (guint i = 0; i < keys->len; i++) {
        GoodbyeJob *j = g_new0(GoodbyeJob, 1);
        j->muc = muc;
        j->key = g_strdup(g_ptr_array_index(keys, i));
        mk_owner_post(mod, j->key, goodbye_run, j, goodbye_job_free);
    }
    g_debug("mod_muc: %u rooms say goodbye", keys->len);
}
