/* Entity capabilities recorded on sessions (mk-caps.h).
 *
 * A record is immutable and reference-counted; the session points to the
 * current one. One lock guards the swap and the reference taken by a
 * reader: it is held for a pointer and a counter, and caps change about
 * once per login. */
#include "modules-priv.h"
#include "sm.h"

#include <string.h>

struct MkCapsRecord {
    gint ref;
    char *ver;
    GHashTable *features; /* char* -> itself */
};

static GMutex caps_lock; /* a lock, not state: guards MkSession.caps */

static MkCapsRecord *record_ref(MkCapsRecord *r)
{
    g_atomic_int_inc(&r->ref);
    return r;
}

/* See sm.h. Any thread. */
void mk_caps_record_unref(MkCapsRecord *r)
{
    if (!r || !g_atomic_int_dec_and_test(&r->ref))
        return;
    g_free(r->ver);
    g_hash_table_destroy(r->features);
    g_free(r);
}

static MkCapsRecord *current(MkSession *s)
{
    g_mutex_lock(&caps_lock);
    MkCapsRecord *r = s->caps ? record_ref(s->caps) : NULL;
    g_mutex_unlock(&caps_lock);
    return r;
}

/* Public module API (mk-caps.h). Any thread. */
gboolean mk_session_set_caps(MkSession *s, const char *ver, const char *const *features)
{
    g_return_val_if_fail(s != NULL, FALSE);
    MkCapsRecord *r = NULL;
    if (features) {
        r = g_new0(MkCapsRecord, 1);
        r->ref = 1;
        r->ver = g_strdup(ver ? ver : "");
        r->features = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        for (guint i = 0; features[i]; i++)
            g_hash_table_add(r->features, g_strdup(features[i]));
    }
    g_mutex_lock(&caps_lock);
    MkCapsRecord *old = s->caps;
    gboolean changed = (old == NULL) != (r == NULL) || (old && g_strcmp0(old->ver, r->ver) != 0);
    s->caps = r;
    g_mutex_unlock(&caps_lock);
    mk_caps_record_unref(old);
    return changed;
}

/* Public module API (mk-caps.h). Any thread. */
gboolean mk_session_has_feature(MkSession *s, const char *feature)
{
    g_return_val_if_fail(s != NULL && feature != NULL, FALSE);
    if (!g_atomic_pointer_get(&s->caps))
        return FALSE;
    MkCapsRecord *r = current(s);
    gboolean has = r && g_hash_table_contains(r->features, feature);
    mk_caps_record_unref(r);
    return has;
}

/* Public module API (mk-caps.h). (transfer full) (nullable) Any thread. */
char **mk_session_features(MkSession *s)
{
    g_return_val_if_fail(s != NULL, NULL);
    MkCapsRecord *r = current(s);
    if (!r)
        return NULL;
    guint n = 0;
    gpointer *keys = g_hash_table_get_keys_as_array(r->features, &n);
    char **out = g_new0(char *, n + 1);
    for (guint i = 0; i < n; i++)
        out[i] = g_strdup(keys[i]);
    g_free(keys);
    mk_caps_record_unref(r);
    return out;
}
