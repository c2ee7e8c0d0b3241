/* Service discovery registries: what each host type's running modules
 * advertise. mod_disco reads them; the snapshot holds sorted, unique
 * copies so a read is one lookup and one copy. */
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"
#include <string.h>

static gboolean add_check(MkModule *mod, const char *what)
{
    if (mod->live)
        return TRUE;
    g_warning("module %s: %s outside a running instance ignored", mod->name, what);
    return FALSE;
}

/* Public module API (mk-disco.h). Main thread, in start(). */
void mk_disco_feature_add(MkModule *mod, const char *var)
{
    g_return_if_fail(mod != NULL && var != NULL);
    if (!add_check(mod, "mk_disco_feature_add"))
        return;
    g_ptr_array_add(mod->features, g_strdup(var));
    mk_modules_publish(mod->mods);
}

/* Public module API (mk-disco.h). Main thread, in start(). */
void mk_disco_account_feature_add(MkModule *mod, const char *var)
{
    g_return_if_fail(mod != NULL && var != NULL);
    if (!add_check(mod, "mk_disco_account_feature_add"))
        return;
    g_ptr_array_add(mod->acct_features, g_strdup(var));
    mk_modules_publish(mod->mods);
}

/* Public module API. @name may be NULL (stored as ""). Main thread. */
void mk_disco_identity_add(MkModule *mod, const char *category, const char *type, const char *name)
{
    g_return_if_fail(mod != NULL && category != NULL && type != NULL);
    if (!add_check(mod, "mk_disco_identity_add"))
        return;
    g_ptr_array_add(mod->identities, g_strdup(category));
    g_ptr_array_add(mod->identities, g_strdup(type));
    g_ptr_array_add(mod->identities, g_strdup(name ? name : ""));
    mk_modules_publish(mod->mods);
}

/* Public module API. @name may be NULL (stored as ""). Main thread. */
void mk_disco_item_add(MkModule *mod, const char *jid, const char *name)
{
    g_return_if_fail(mod != NULL && jid != NULL);
    if (!add_check(mod, "mk_disco_item_add"))
        return;
    g_ptr_array_add(mod->items, g_strdup(jid));
    g_ptr_array_add(mod->items, g_strdup(name ? name : ""));
    mk_modules_publish(mod->mods);
}

/* Compares two groups of @user_data consecutive strings. */
static int cmp_group(gconstpointer a, gconstpointer b, gpointer user_data)
{
    guint n = GPOINTER_TO_UINT(user_data);
    char *const *x = a, *const *y = b;
    for (guint i = 0; i < n; i++) {
        int c = strcmp(x[i], y[i]);
        if (c)
            return c;
    }
    return 0;
}

/* Sorted, de-duplicated copy of @list taken as groups of @n strings.
 * (transfer full) NULL-terminated. */
static char **sorted_groups(GPtrArray *list, guint n)
{
    guint groups = list->len / n;
    g_qsort_with_data(list->pdata, (gint)groups, sizeof(char *) * n, cmp_group,
                      GUINT_TO_POINTER(n));
    GPtrArray *out = g_ptr_array_new();
    for (guint g = 0; g < groups; g++) {
        char **cur = (char **)list->pdata + g * n;
        if (g > 0 && cmp_group(cur - n, cur, GUINT_TO_POINTER(n)) == 0)
            continue;
        for (guint i = 0; i < n; i++)
            g_ptr_array_add(out, g_strdup(cur[i]));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

/* Fills @hr's disco lists from the records of all its instances (the
 * arrays borrow the modules' strings and are reordered here). Main
 * thread, snapshot build. */
void mk_disco_build(MkHostReg *hr, GPtrArray *features, GPtrArray *identities, GPtrArray *items,
                    GPtrArray *acct_features)
{
    hr->features = sorted_groups(features, 1);
    hr->acct_features = sorted_groups(acct_features, 1);
    hr->identities = sorted_groups(identities, 3);
    hr->items = sorted_groups(items, 2);
}

static char **copy_for(const char *domain, gsize offset)
{
    MkHostReg *hr = mk_modules_host_reg(mk_modules_get(), domain);
    char **list = hr ? G_STRUCT_MEMBER(char **, hr, offset) : NULL;
    return list ? g_strdupv(list) : g_new0(char *, 1);
}

/* Public module API. (transfer full) Any thread. */
char **mk_disco_features(const char *domain)
{
    return copy_for(domain, G_STRUCT_OFFSET(MkHostReg, features));
}

/* Public module API. (transfer full) groups of 3. Any thread. */
char **mk_disco_identities(const char *domain)
{
    return copy_for(domain, G_STRUCT_OFFSET(MkHostReg, identities));
}

/* Public module API. (transfer full) groups of 2. Any thread. */
char **mk_disco_items(const char *domain)
{
    return copy_for(domain, G_STRUCT_OFFSET(MkHostReg, items));
}

/* Public module API. (transfer full) Any thread. */
char **mk_disco_account_features(const char *domain)
{
    return copy_for(domain, G_STRUCT_OFFSET(MkHostReg, acct_features));
}

/* ---- entities at accounts (mk-disco.h) over the service registry ---- */

#define ACCOUNT_SERVICE "disco-account"

gboolean mk_disco_account_register(MkModule *mod, const MkDiscoAccountFuncs *funcs, gpointer data,
                                   GError **error)
{
    return mk_service_provide(mod, ACCOUNT_SERVICE, funcs, data, error);
}

gboolean mk_disco_account_query(MkModule *caller, MkIq *iq, MkJid *account)
{
    g_return_val_if_fail(caller && iq && account, FALSE);
    MkServiceReg reg;
    if (!mk_service_enter(caller->mods, caller->host_type, ACCOUNT_SERVICE, &reg))
        return FALSE;
    ((const MkDiscoAccountFuncs *)reg.funcs)->query(reg.data, iq, account);
    mk_service_leave(&reg);
    return TRUE;
}
