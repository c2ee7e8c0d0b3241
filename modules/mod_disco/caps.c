/* XEP-0115 section 5.1: S = each identity as category/type/lang/name<
 * sorted by category, type and lang, then each feature var< sorted by
 * octets; ver = base64(SHA-1(S)). The server has no extended forms. */
#include "caps.h"
#include <string.h>

typedef struct {
    const char *category, *type, *name;
} Identity;

static int cmp_identity(gconstpointer a, gconstpointer b)
{
    const Identity *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    if (!c)
        c = strcmp(x->type, y->type);
    /* No xml:lang here; the name breaks ties so the order is total. */
    if (!c)
        c = strcmp(x->name, y->name);
    return c;
}

static int cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* See caps.h. (transfer full) */
char *disco_caps_ver(const char *const *identities, const char *const *features)
{
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(Identity));
    for (guint i = 0; identities && identities[i] && identities[i + 1] && identities[i + 2];
         i += 3) {
        Identity id = {identities[i], identities[i + 1], identities[i + 2]};
        g_array_append_val(ids, id);
    }
    g_array_sort(ids, cmp_identity);
    g_autoptr(GPtrArray) vars = g_ptr_array_new();
    for (guint i = 0; features && features[i]; i++)
        g_ptr_array_add(vars, (gpointer)features[i]);
    g_ptr_array_sort(vars, cmp_str);

    g_autoptr(GString) s = g_string_new(NULL);
    for (guint i = 0; i < ids->len; i++) {
        const Identity *id = &g_array_index(ids, Identity, i);
        g_string_append_printf(s, "%s/%s//%s<", id->category, id->type, id->name);
    }
    for (guint i = 0; i < vars->len; i++)
        g_string_append_printf(s, "%s<", (const char *)vars->pdata[i]);

    guint8 digest[20];
    gsize len = sizeof digest;
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA1);
    g_checksum_update(sum, (const guchar *)s->str, (gssize)s->len);
    g_checksum_get_digest(sum, digest, &len);
    return g_base64_encode(digest, len);
}
