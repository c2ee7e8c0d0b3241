/* Each user's privacy state in memory (lists, default list, the roster
 * they are evaluated against), and each session's active list.
 *
 * The filters run on every worker for every stanza to or from a local
 * account, so they never touch the database: a user's state lives in the
 * core's per-user cache (mk-usercache.h), loaded once through the user's
 * storage queue and replaced as a whole (an immutable PrivState) on
 * change. A stanza that needs a state still being loaded is held and
 * routed again when it arrives. */
#include "privacy.h"

/* Storage thread. */
static gboolean state_load(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                           gpointer user_data, GError **error)
{
    PrivState *st = NULL;
    if (!priv_db_load(conn, user, &st, error))
        return FALSE;
    *value = st;
    return TRUE;
}

/* A load failed: no list at all (failing open beats holding the user's
 * traffic forever) until the next lookup loads again. */
static gpointer state_fallback(const char *key, gpointer user_data)
{
    return priv_state_new();
}

const MkUserCacheClass priv_cache_class = {
    .load = state_load,
    .ref = (gpointer(*)(gpointer))priv_state_ref,
    .unref = (GDestroyNotify)priv_state_unref,
    .fallback = state_fallback,
    .flags = MK_USER_CACHE_SESSIONS,
};

PrivState *priv_cache_get(Privacy *p, MkJid *user, MkStanza *hold)
{
    return mk_user_cache_get(p->cache, mk_jid_bare_string(user), hold);
}

/* ---- active lists ---------------------------------------------------------- */

/* A session string (mk_session_set_string): the filters on other workers
 * read it, and it lasts as long as the session. */
char *priv_active_get(Privacy *p, MkSession *s)
{
    return mk_session_dup_string(s, p->mod);
}

void priv_active_set(Privacy *p, MkSession *s, const char *name)
{
    mk_session_set_string(s, p->mod, name);
}

gboolean priv_user_has_active(Privacy *p, MkJid *user)
{
    g_autoptr(GPtrArray) sessions = mk_session_list(user);
    for (guint i = 0; i < sessions->len; i++) {
        g_autofree char *name = mk_session_dup_string(g_ptr_array_index(sessions, i), p->mod);
        if (name)
            return TRUE;
    }
    return FALSE;
}

const PrivList *priv_effective_list(Privacy *p, PrivState *st, MkSession *s)
{
    g_autofree char *active = s ? priv_active_get(p, s) : NULL;
    const char *name = active ? active : st->default_name;
    return name ? g_hash_table_lookup(st->lists, name) : NULL;
}
