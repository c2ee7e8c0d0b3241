/* Typed module configuration: the values of a module instance, parsed
 * once from the validated strings when the instance starts, read by
 * mk_config_get_* from any thread (they never change while it runs). */
#include "modules-priv.h"
#include "modules.h"

typedef struct {
    MkConfigType type;
    gboolean b;
    gint64 i;
    char *s;
    char **v;
} MkConfValue;

static void value_free(gpointer data)
{
    MkConfValue *cv = data;
    g_free(cv->s);
    g_strfreev(cv->v);
    g_free(cv);
}

static char **split_list(const char *text)
{
    GPtrArray *out = g_ptr_array_new();
    g_auto(GStrv) parts = g_strsplit(text, ";", -1);
    for (char **p = parts; *p; p++) {
        g_strstrip(*p);
        if (**p)
            g_ptr_array_add(out, g_strdup(*p));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

/* See modules-priv.h. (transfer full) Main thread. */
GHashTable *mk_modconfig_parse(const MkConfigKey *keys, GHashTable *strings)
{
    GHashTable *values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, value_free);
    for (const MkConfigKey *k = keys; k && k->name; k++) {
        const char *text = g_hash_table_lookup(strings, k->name);
        MkConfValue *cv = g_new0(MkConfValue, 1);
        cv->type = k->type;
        if (text) {
            switch (k->type) {
            case MK_CONFIG_BOOL:
                cv->b = g_str_equal(text, "true");
                break;
            case MK_CONFIG_INT:
                /* Validated by mk_config_module_values already. */
                g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64, &cv->i, NULL);
                break;
            case MK_CONFIG_STRING:
                cv->s = g_strdup(text);
                break;
            case MK_CONFIG_STRV:
                cv->v = split_list(text);
                break;
            }
        } else if (k->type == MK_CONFIG_STRV) {
            cv->v = g_new0(char *, 1); /* unset list: empty, never NULL */
        }
        g_hash_table_insert(values, g_strdup(k->name), cv);
    }
    return values;
}

static MkConfValue *lookup(MkModule *mod, const char *key, MkConfigType type)
{
    g_return_val_if_fail(mod != NULL && key != NULL, NULL);
    MkConfValue *cv = g_hash_table_lookup(mod->values, key);
    if (!cv) {
        g_warning("module %s reads key %s, which it does not declare", mod->name, key);
        return NULL;
    }
    if (cv->type != type) {
        g_warning("module %s reads key %s with the wrong type", mod->name, key);
        return NULL;
    }
    return cv;
}

/* Public module API (mk-config.h). Any thread. */
gboolean mk_config_get_bool(MkModule *mod, const char *key)
{
    MkConfValue *cv = lookup(mod, key, MK_CONFIG_BOOL);
    return cv ? cv->b : FALSE;
}

/* Public module API. Any thread. */
gint64 mk_config_get_int(MkModule *mod, const char *key)
{
    MkConfValue *cv = lookup(mod, key, MK_CONFIG_INT);
    return cv ? cv->i : 0;
}

/* Public module API. (transfer none) (nullable: unset without default).
 * Any thread. */
const char *mk_config_get_string(MkModule *mod, const char *key)
{
    MkConfValue *cv = lookup(mod, key, MK_CONFIG_STRING);
    return cv ? cv->s : NULL;
}

/* Public module API. (transfer none) never NULL for a declared key (an
 * unset list is empty). Any thread. */
const char *const *mk_config_get_strv(MkModule *mod, const char *key)
{
    MkConfValue *cv = lookup(mod, key, MK_CONFIG_STRV);
    return cv ? (const char *const *)cv->v : NULL;
}
