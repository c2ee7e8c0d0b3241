/* mod_version: Software Version (XEP-0092) of the server.
 *
 * The server's answer names Meerkat and its version. The operating system
 * is left out unless show_os is set, because it tells an attacker what to
 * aim at (XEP-0092 section 5). Queries to users go to their clients. */
#include <meerkat/module.h>
#include <sys/utsname.h>

#define NS_VERSION "jabber:iq:version"

typedef struct {
    char *os; /* "sysname release", or NULL when hidden */
} Version;

static void version_free(gpointer data)
{
    Version *v = data;
    g_free(v->os);
    g_free(v);
}

static MkResult on_version(MkIq *iq, gpointer user_data)
{
    Version *v = user_data;
    g_autoptr(MkXml) query = mk_xml_new("query", NS_VERSION);
    mk_xml_add_text(mk_xml_add_child(query, "name", NULL), "Meerkat", -1);
    mk_xml_add_text(mk_xml_add_child(query, "version", NULL), MK_VERSION_STRING, -1);
    if (v->os)
        mk_xml_add_text(mk_xml_add_child(query, "os", NULL), v->os, -1);
    mk_iq_reply(iq, g_steal_pointer(&query));
    return MK_HANDLED;
}

static gboolean version_start(MkModule *mod, GError **error)
{
    Version *v = g_new0(Version, 1);
    struct utsname un;
    /* Read once: the kernel does not change under a running server. */
    if (mk_config_get_bool(mod, "show_os") && uname(&un) == 0)
        v->os = g_strdup_printf("%s %s", un.sysname, un.release);
    mk_module_set_data(mod, v, version_free);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_VERSION, on_version, v, error))
        return FALSE;
    mk_disco_feature_add(mod, NS_VERSION);
    return TRUE;
}

static const MkConfigKey version_keys[] = {
    {"show_os", MK_CONFIG_BOOL, "false", 0, 0,
     "include the operating system (uname sysname and release) in the answer"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,       .name = "mod_version",  .version = "1.0",
    .config_keys = version_keys, .start = version_start,
};
