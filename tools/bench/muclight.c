/* meerkat-bench: the muclight scenario's stanzas (MongooseIM's MUC Light,
 * urn:xmpp:muclight:0). The rooms are benchroomK@muclight.DOMAIN (with
 * the users' prefix), made by their first occupant when it logs in; an
 * existing room answers conflict, which a second run ignores. */
#include "bench.h"

static int room_of(const BenchOpts *o, int user)
{
    return (user - o->first_user) / o->room_size;
}

gboolean muclight_is_creator(const BenchOpts *o, int user)
{
    return (user - o->first_user) % o->room_size == 0;
}

char *muclight_create(const BenchOpts *o, int user)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s,
                           "<iq type='set' id='mlc' to='%sroom%d@muclight.%s'>"
                           "<query xmlns='urn:xmpp:muclight:0#create'><occupants>",
                           o->prefix, room_of(o, user), o->domain);
    for (int u = user + 1; u < user + o->room_size; u++)
        g_string_append_printf(s, "<user affiliation='member'>%s%d@%s</user>", o->prefix, u,
                               o->domain);
    g_string_append(s, "</occupants></query></iq>");
    return g_string_free(s, FALSE);
}

char *muclight_message(const BenchOpts *o, int user, guint64 now_us, const char *pad)
{
    return g_strdup_printf("<message to='%sroom%d@muclight.%s' type='groupchat'>"
                           "<body>%" G_GUINT64_FORMAT "%s</body></message>",
                           o->prefix, room_of(o, user), o->domain, now_us, pad);
}
