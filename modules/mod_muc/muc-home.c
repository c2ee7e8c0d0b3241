/* Rooms in a cluster (docs/clustering.md, Rooms): each room lives on one
 * node, its home (mk_cluster_home_take). This file remembers which local
 * users joined rooms homed elsewhere, so that when such a home dies they
 * learn they are out (unavailable with 110 and 332, as when the service
 * shuts down), and, on a room's home, removes the occupants whose node
 * died (their sessions are gone from the table). Without a cluster none of
 * this runs. */
#include "muc.h"

#define AWAY_MAX 100000 /* joins to rooms of other nodes remembered at most */

typedef struct {
    char *home;          /* nullable: not known when the join went out */
    GHashTable *by_real; /* real full JID -> room/nick JID string */
} Away;

static void away_free(gpointer p)
{
    Away *a = p;
    g_free(a->home);
    g_hash_table_destroy(a->by_real);
    g_free(a);
}

void muc_home_init(Muc *muc)
{
    g_mutex_init(&muc->away_lock);
    muc->away = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, away_free);
}

void muc_home_clear(Muc *muc)
{
    g_hash_table_destroy(muc->away);
    g_mutex_clear(&muc->away_lock);
}

/* A presence of @real to @key (homed elsewhere) went out: a join is
 * remembered, a leave forgotten. */
static void note_presence(Muc *muc, const char *key, MkStanza *st)
{
    MkJid *real = mk_stanza_from(st);
    MkJid *to = mk_stanza_to(st);
    const char *type = mk_stanza_type(st);
    if (!real || !to || (type && !g_str_equal(type, "unavailable")))
        return;
    g_autofree char *home = mk_cluster_home_node(key);
    g_mutex_lock(&muc->away_lock);
    Away *a = g_hash_table_lookup(muc->away, key);
    if (type) {
        if (a && g_hash_table_remove(a->by_real, mk_jid_string(real))) {
            muc->n_away--;
            if (!g_hash_table_size(a->by_real))
                g_hash_table_remove(muc->away, key);
        }
    } else if (mk_jid_resource(to) && (a || muc->n_away < AWAY_MAX)) {
        if (!a) {
            a = g_new0(Away, 1);
            a->by_real = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
            g_hash_table_insert(muc->away, g_strdup(key), a);
        }
        if (home) {
            g_free(a->home);
            a->home = g_steal_pointer(&home);
        }
        if (!g_hash_table_contains(a->by_real, mk_jid_string(real)))
            muc->n_away++;
        g_hash_table_replace(a->by_real, g_strdup(mk_jid_string(real)),
                             g_strdup(mk_jid_string(to)));
    }
    g_mutex_unlock(&muc->away_lock);
}

/* See muc.h. Any worker. */
gboolean muc_home_take(Muc *muc, const char *key, MkStanza *st)
{
    if (mk_cluster_home_take(key, st))
        return TRUE;
    if (mk_stanza_kind(st) == MK_STANZA_PRESENCE)
        note_presence(muc, key, st);
    return FALSE;
}

/* The users who were in a room of a dead node are told they are out. */
static void tell_away(Muc *muc)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free); /* real, nick JID pairs */
    g_mutex_lock(&muc->away_lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, muc->away);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Away *a = v;
        g_autofree char *now = a->home ? NULL : mk_cluster_home_node(k);
        const char *home = a->home ? a->home : now;
        if (home && mk_cluster_node_reachable(home))
            continue;
        GHashTableIter jt;
        gpointer real, nick;
        g_hash_table_iter_init(&jt, a->by_real);
        while (g_hash_table_iter_next(&jt, &real, &nick)) {
            g_ptr_array_add(out, g_strdup(real));
            g_ptr_array_add(out, g_strdup(nick));
        }
        muc->n_away -= (gint)g_hash_table_size(a->by_real);
        g_hash_table_iter_remove(&it);
    }
    g_mutex_unlock(&muc->away_lock);
    for (guint i = 0; i + 1 < out->len; i += 2) {
        g_autoptr(MkJid) to = mk_jid_new(g_ptr_array_index(out, i), NULL);
        g_autoptr(MkJid) from = mk_jid_new(g_ptr_array_index(out, i + 1), NULL);
        if (!to || !from)
            continue;
        g_autoptr(MkXml) p = mk_xml_new("presence", NS_CLIENT);
        mk_xml_set_attr(p, "type", "unavailable");
        MkXml *x = mk_xml_add_child(p, "x", NS_MUC_USER);
        MkXml *item = mk_xml_add_child(x, "item", NULL);
        mk_xml_set_attr(item, "affiliation", "none");
        mk_xml_set_attr(item, "role", "none");
        muc_add_status(x, 110);
        muc_add_status(x, 332);
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(p, from, to);
        mk_router_send(st);
    }
    if (out->len)
        g_message("mod_muc: %u users were in rooms of a node that died", out->len / 2);
}

typedef struct {
    Muc *muc;
    char *key;
} SweepJob;

static void sweep_job_free(gpointer data)
{
    SweepJob *j = data;
    g_free(j->key);
    g_free(j);
}

static gboolean has_session(MkJid *real)
{
    g_autoptr(MkJid) bare = mk_jid_bare(real);
    g_autoptr(GPtrArray) all = mk_session_list(bare);
    for (guint i = 0; i < all->len; i++)
        if (mk_jid_equal(mk_session_jid(g_ptr_array_index(all, i)), real))
            return TRUE;
    return FALSE;
}

/* On the room's owner: every occupant session that no node holds any
 * more leaves, as if it had sent unavailable. */
static gboolean sweep_run(gpointer data)
{
    SweepJob *j = data;
    Muc *muc = j->muc;
    g_mutex_lock(&muc->lock);
    MucRoom *room = g_hash_table_lookup(muc->rooms, j->key);
    g_mutex_unlock(&muc->lock);
    if (!room || room->loading)
        return G_SOURCE_REMOVE;
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func((GDestroyNotify)mk_jid_unref);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, room->by_jid);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        MkJid *real = mk_jid_new(k, NULL);
        if (real && !has_session(real))
            g_ptr_array_add(gone, real);
        else if (real)
            mk_jid_unref(real);
    }
    for (guint i = 0; i < gone->len; i++) {
        g_autoptr(MkXml) p = mk_xml_new("presence", NS_CLIENT);
        mk_xml_set_attr(p, "type", "unavailable");
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(p, g_ptr_array_index(gone, i), room->jid);
        muc_dispatch(muc, st);
    }
    return G_SOURCE_REMOVE;
}

/* Hook cluster_node_gone. A worker. */
MkResult muc_on_node_gone(MkHookCall *call, gpointer data)
{
    (void)call;
    Muc *muc = data;
    tell_away(muc);
    g_autoptr(GPtrArray) keys = muc_room_keys(muc);
    for (guint i = 0; i < keys->len; i++) {
        SweepJob *j = g_new0(SweepJob, 1);
        j->muc = muc;
        j->key = g_strdup(g_ptr_array_index(keys, i));
        mk_owner_post(muc->mod, j->key, sweep_run, j, sweep_job_free);
    }
    return MK_PASS;
}
