/* mod_time: Entity Time (XEP-0202) of the server: its UTC time and its
 * offset from UTC (the local time zone of the process). Queries to users
 * go to their clients. */
#include <meerkat/module.h>

#define NS_TIME "urn:xmpp:time"

/* The XEP-0082 zone offset "+hh:mm"/"-hh:mm" of @now. (transfer full) */
static char *zone_offset(GDateTime *now)
{
    gint64 off = g_date_time_get_utc_offset(now) / G_USEC_PER_SEC / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    return g_strdup_printf("%c%02d:%02d", sign, (int)(off / 60), (int)(off % 60));
}

static MkResult on_time(MkIq *iq, gpointer user_data)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *tzo = zone_offset(now);
    g_autofree char *utc_text = mk_xep82_format(now);

    g_autoptr(MkXml) time = mk_xml_new("time", NS_TIME);
    mk_xml_add_text(mk_xml_add_child(time, "tzo", NULL), tzo, -1);
    mk_xml_add_text(mk_xml_add_child(time, "utc", NULL), utc_text, -1);
    mk_iq_reply(iq, g_steal_pointer(&time));
    return MK_HANDLED;
}

static gboolean time_start(MkModule *mod, GError **error)
{
    if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, NS_TIME, on_time, NULL, error))
        return FALSE;
    mk_disco_feature_add(mod, NS_TIME);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_time",
    .version = "1.0",
    .start = time_start,
};
