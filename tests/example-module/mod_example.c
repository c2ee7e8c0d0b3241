/* mod_example: the smallest useful Meerkat module, built out of tree
 * against the installed headers (see Makefile and docs/modules.md).
 *
 * It answers <iq type='get' to='DOMAIN'><echo xmlns='urn:example:echo'>
 * ...</echo></iq> with a copy of the payload, marked with the configured
 * tag, and counts what it echoed. */
#include <meerkat/module.h>

#define NS_ECHO "urn:example:echo"

typedef struct {
    char *tag; /* mod_example.tag */
    MkCounter *echoes;
} Example;

static void example_free(gpointer data)
{
    Example *ex = data;
    g_free(ex->tag);
    g_free(ex);
}

/* Runs on the worker that routed the IQ: answer at once, nothing blocks. */
static MkResult echo_iq(MkIq *iq, gpointer user_data)
{
    Example *ex = user_data;
    g_autoptr(MkXml) reply = mk_xml_copy(mk_iq_payload(iq));
    if (ex->tag && *ex->tag)
        mk_xml_set_attr(reply, "tag", ex->tag);
    mk_counter_add(ex->echoes, 1);
    mk_iq_reply(iq, g_steal_pointer(&reply)); /* takes ownership */
    return MK_HANDLED;
}

/* Main thread, once per host type. Everything registered here is removed
 * by the core when the module stops or when start fails. */
static gboolean example_start(MkModule *mod, GError **error)
{
    Example *ex = g_new0(Example, 1);
    ex->tag = g_strdup(mk_config_get_string(mod, "tag"));
    ex->echoes = mk_metrics_counter(mod, "echoes");
    mk_module_set_data(mod, ex, example_free);

    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_ECHO, echo_iq, ex, error))
        return FALSE;
    mk_disco_add_feature(mod, NS_ECHO);
    return TRUE;
}

static const MkConfigKey example_keys[] = {
    {"tag", MK_CONFIG_STRING, "echo", 0, 0, "attribute value added to every echoed payload"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,       .name = "mod_example",  .version = "1.0",
    .config_keys = example_keys, .start = example_start,
};
