/* mod_example: a small complete Meerkat module, built out of tree
 * against the installed headers (see Makefile and docs/modules.md).
 *
 * It answers <iq type='get' to='DOMAIN'><echo xmlns='urn:example:echo'>
 * ...</echo></iq> with a copy of the payload, marked with the configured
 * tag, and counts what it echoed. The answer is written a moment later,
 * from a call deferred on the same worker: the shape of every module
 * that answers after asynchronous work (a storage job, an IQ of its own). */
#include <meerkat/module.h>

#define NS_ECHO "urn:example:echo"

typedef struct {
    char *tag; /* mod_example.tag */
    MkCounter *echoes;
} Example;

/* One request waiting for its answer. */
typedef struct {
    Example *ex; /* no reference needed: the core keeps it while this waits */
    MkIq *iq;    /* ref: answered later */
} Echo;

static void example_free(gpointer data)
{
    Example *ex = data;
    g_free(ex->tag);
    g_free(ex);
}

/* The worker that received the IQ, after its handler returned. */
static gboolean echo_later(gpointer data)
{
    Echo *e = data;
    g_autoptr(MkXml) reply = mk_xml_copy(mk_iq_payload(e->iq));
    if (e->ex->tag && *e->ex->tag)
        mk_xml_set_attr(reply, "tag", e->ex->tag);
    mk_counter_add(e->ex->echoes, 1);
    mk_iq_reply(e->iq, g_steal_pointer(&reply)); /* takes ownership */
    return G_SOURCE_REMOVE;
}

/* Runs exactly once: after echo_later, or instead of it when the module
 * stopped first (an IQ dropped unanswered gets an error from the core). */
static void echo_free(gpointer data)
{
    Echo *e = data;
    mk_iq_unref(e->iq);
    g_free(e);
}

/* Runs on the worker that routed the IQ: nothing here may block. */
static MkResult echo_iq(MkIq *iq, gpointer user_data)
{
    Echo *e = g_new0(Echo, 1);
    e->ex = user_data;
    e->iq = mk_iq_ref(iq);
    mk_timer_post(mk_iq_module(iq), echo_later, e, echo_free);
    return MK_HANDLED;
}

/* Main thread, once per host type. Everything registered here is removed
 * by the core when the module stops or when start fails; the data goes
 * with example_free once nothing of the module is in flight any more. */
static gboolean example_start(MkModule *mod, GError **error)
{
    Example *ex = g_new0(Example, 1);
    ex->tag = g_strdup(mk_config_get_string(mod, "tag"));
    ex->echoes = mk_counter_new(mod, "echoes");
    mk_module_set_data(mod, ex, example_free);

    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_ECHO, echo_iq, ex, error))
        return FALSE;
    mk_disco_feature_add(mod, NS_ECHO);
    return TRUE;
}

static const MkConfigKey example_keys[] = {
    {"tag", MK_CONFIG_STRING, "echo", 0, 0, "attribute value added to every echoed payload"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,       .name = "mod_example",  .version = "2.0",
    .config_keys = example_keys, .start = example_start,
};
