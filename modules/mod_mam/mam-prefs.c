/* Archiving preferences (XEP-0313 section 6, XEP-0441): a default
 * (always, never, roster) and two lists of bare JIDs that override it.
 * Pure: parsing, serialising and the decision; storage is mam-db.c's. */
#include "mam.h"

static const char *const mode_names[] = {"always", "never", "roster"};

const char *mam_prefs_mode_name(MamPrefsMode mode)
{
    return mode_names[mode];
}

static gboolean mode_parse(const char *text, MamPrefsMode *out)
{
    for (guint i = 0; i < G_N_ELEMENTS(mode_names); i++)
        if (g_strcmp0(text, mode_names[i]) == 0) {
            *out = (MamPrefsMode)i;
            return TRUE;
        }
    return FALSE;
}

static GPtrArray *split(const char *joined)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) parts = g_strsplit(joined ? joined : "", "\n", -1);
    for (char **p = parts; *p; p++)
        if (**p)
            g_ptr_array_add(out, g_strdup(*p));
    return out;
}

/* A set of @jids' strings, borrowed: the array outlives it. */
static GHashTable *set_of(GPtrArray *jids)
{
    GHashTable *set = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < jids->len; i++)
        g_hash_table_add(set, jids->pdata[i]);
    return set;
}

/* (Re)builds the sets once the lists are final. */
static void index_lists(MamPrefs *p)
{
    g_clear_pointer(&p->always_set, g_hash_table_unref);
    g_clear_pointer(&p->never_set, g_hash_table_unref);
    p->always_set = set_of(p->always);
    p->never_set = set_of(p->never);
}

MamPrefs *mam_prefs_new(const char *mode, const char *always, const char *never)
{
    MamPrefs *p = g_new0(MamPrefs, 1);
    p->ref = 1;
    if (!mode_parse(mode, &p->mode))
        p->mode = MAM_PREFS_ALWAYS;
    p->always = split(always);
    p->never = split(never);
    index_lists(p);
    return p;
}

MamPrefs *mam_prefs_ref(MamPrefs *p)
{
    g_atomic_int_inc(&p->ref);
    return p;
}

/* Values are shared by the preferences cache across threads. */
void mam_prefs_unref(MamPrefs *p)
{
    if (!p || !g_atomic_int_dec_and_test(&p->ref))
        return;
    g_clear_pointer(&p->always_set, g_hash_table_unref);
    g_clear_pointer(&p->never_set, g_hash_table_unref);
    g_ptr_array_unref(p->always);
    g_ptr_array_unref(p->never);
    g_clear_pointer(&p->contacts, g_hash_table_unref);
    g_free(p);
}

/* JIDs cannot hold a newline, so a newline-separated list is unambiguous. */
char *mam_prefs_join(GPtrArray *jids)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < jids->len; i++) {
        if (i)
            g_string_append_c(s, '\n');
        g_string_append(s, jids->pdata[i]);
    }
    return g_string_free(s, FALSE);
}

/* The <jid/> children of @list into @out, as bare JIDs, without repeats. */
static gboolean parse_list(MkXml *list, GPtrArray *out, GError **error)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; list && i < mk_xml_child_count(list); i++) {
        MkXml *el = mk_xml_child_at(list, i);
        if (mk_xml_is_text(el) || !mk_xml_is(el, "jid", NS_MAM))
            continue;
        g_autofree char *text = mk_xml_text(el);
        g_autoptr(MkJid) jid = mk_jid_new(g_strstrip(text), NULL);
        if (!jid) {
            g_set_error(error, MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST,
                        "'%s' in <%s/> is not a JID", text, mk_xml_name(list));
            return FALSE;
        }
        if (out->len >= MAM_PREFS_MAX_JIDS) {
            g_set_error(error, MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST,
                        "at most %d JIDs in <%s/>", MAM_PREFS_MAX_JIDS, mk_xml_name(list));
            return FALSE;
        }
        if (!g_hash_table_contains(seen, mk_jid_bare_string(jid))) {
            char *bare = g_strdup(mk_jid_bare_string(jid));
            g_ptr_array_add(out, bare);
            g_hash_table_add(seen, bare);
        }
    }
    return TRUE;
}

MamPrefs *mam_prefs_parse(MkXml *prefs, GError **error)
{
    g_autoptr(MamPrefs) p = mam_prefs_new(NULL, NULL, NULL);
    const char *mode = mk_xml_get_attr(prefs, "default");
    if (!mode_parse(mode, &p->mode)) {
        g_set_error(error, MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST,
                    "'default' must be always, never or roster, not '%s'", mode ? mode : "");
        return NULL;
    }
    if (!parse_list(mk_xml_child(prefs, "always", NS_MAM), p->always, error) ||
        !parse_list(mk_xml_child(prefs, "never", NS_MAM), p->never, error))
        return NULL;
    /* A JID in both lists: never wins, the safer reading for privacy. */
    g_autoptr(GHashTable) never = set_of(p->never);
    for (guint i = p->always->len; i-- > 0;)
        if (g_hash_table_contains(never, p->always->pdata[i]))
            g_ptr_array_remove_index(p->always, i);
    index_lists(p);
    return g_steal_pointer(&p);
}

static void add_list(MkXml *parent, const char *name, GPtrArray *jids)
{
    MkXml *list = mk_xml_add_child(parent, name, NULL);
    for (guint i = 0; i < jids->len; i++)
        mk_xml_add_text(mk_xml_add_child(list, "jid", NULL), jids->pdata[i], -1);
}

MkXml *mam_prefs_to_xml(const MamPrefs *p)
{
    MkXml *prefs = mk_xml_new("prefs", NS_MAM);
    mk_xml_set_attr(prefs, "default", mam_prefs_mode_name(p->mode));
    add_list(prefs, "always", p->always);
    add_list(prefs, "never", p->never);
    return prefs;
}

gboolean mam_prefs_load_contacts(MamPrefs *p, MkModule *mod, MkDbConn *conn, MkJid *user,
                                 GError **error)
{
    if (p->mode != MAM_PREFS_ROSTER)
        return TRUE;
    g_autoptr(GPtrArray) jids = g_ptr_array_new();
    gboolean available;
    if (!mk_roster_contacts(mod, conn, user, jids, &available, error))
        return FALSE;
    p->contacts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < jids->len; i++)
        g_hash_table_add(p->contacts, jids->pdata[i]);
    return TRUE;
}

gboolean mam_prefs_archives(const MamPrefs *p, const char *with_bare)
{
    if (!p)
        return TRUE; /* no preferences stored: the server's default, always */
    if (g_hash_table_contains(p->never_set, with_bare))
        return FALSE;
    if (g_hash_table_contains(p->always_set, with_bare))
        return TRUE;
    switch (p->mode) {
    case MAM_PREFS_ALWAYS:
        return TRUE;
    case MAM_PREFS_NEVER:
        return FALSE;
    case MAM_PREFS_ROSTER:
        return p->contacts && g_hash_table_contains(p->contacts, with_bare);
    }
    return TRUE;
}
