/* Events and their JSON (docs/mod_event_pusher.md has the schema), and
 * the per-backend filter. */
#include "pusher.h"
#include <string.h>

static const char *const kind_names[PUSHER_N_KINDS] = {
    "chat_sent", "chat_received", "groupchat_sent", "groupchat_received",
    "presence",  "login",         "logout",
};

const char *pusher_kind_name(PusherKind kind)
{
    return kind_names[kind];
}

int pusher_kind_from_name(const char *name)
{
    for (int i = 0; i < PUSHER_N_KINDS; i++)
        if (g_strcmp0(kind_names[i], name) == 0)
            return i;
    return -1;
}

/* A JSON string: quotes, backslashes and control characters escaped; the
 * text is UTF-8 already (it came from XML). */
static void json_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            g_string_append_c(out, '\\'), g_string_append_c(out, (char)c);
        else if (c < 0x20)
            g_string_append_printf(out, "\\u%04x", c);
        else
            g_string_append_c(out, (char)c);
    }
    g_string_append_c(out, '"');
}

static void json_field(GString *out, const char *key, const char *value)
{
    if (!value)
        return;
    g_string_append_printf(out, ",\"%s\":", key);
    json_string(out, value);
}

void pusher_event_seal(PusherEvent *ev)
{
    GString *out = g_string_sized_new(160);
    g_string_append(out, "{\"event\":");
    json_string(out, kind_names[ev->kind]);
    json_field(out, "user", ev->user);
    json_field(out, "from", ev->from);
    json_field(out, "to", ev->to);
    json_field(out, "body", ev->body);
    switch (ev->kind) {
    case PUSHER_CHAT_RECEIVED:
    case PUSHER_GROUPCHAT_RECEIVED:
        g_string_append_printf(out, ",\"offline\":%s", ev->offline ? "true" : "false");
        break;
    case PUSHER_PRESENCE:
        g_string_append_printf(out, ",\"available\":%s", ev->available ? "true" : "false");
        json_field(out, "show", ev->show);
        json_field(out, "status", ev->status);
        break;
    default:
        break;
    }
    g_string_append_printf(out, ",\"timestamp\":%" G_GINT64_FORMAT "}", ev->time_ms);
    g_free(ev->json);
    ev->json = g_string_free(out, FALSE);
}

PusherEvent *pusher_event_new(PusherKind kind, char *user, char *from, char *to, char *body)
{
    PusherEvent *ev = g_new0(PusherEvent, 1);
    ev->ref = 1;
    ev->kind = kind;
    ev->user = user;
    const char *at = user ? strchr(user, '@') : NULL;
    ev->domain = g_strdup(at ? at + 1 : user);
    ev->from = from;
    ev->to = to;
    ev->body = body;
    ev->time_ms = g_get_real_time() / 1000;
    pusher_event_seal(ev);
    return ev;
}

PusherEvent *pusher_event_ref(PusherEvent *ev)
{
    g_atomic_int_inc(&ev->ref);
    return ev;
}

void pusher_event_unref(PusherEvent *ev)
{
    if (!ev || !g_atomic_int_dec_and_test(&ev->ref))
        return;
    g_free(ev->user);
    g_free(ev->domain);
    g_free(ev->from);
    g_free(ev->to);
    g_free(ev->body);
    g_free(ev->show);
    g_free(ev->status);
    g_free(ev->json);
    g_free(ev);
}

gboolean pusher_filter_match(const PusherFilter *f, const PusherEvent *ev)
{
    if (!(f->kinds & (1u << ev->kind)))
        return FALSE;
    if (f->only_offline &&
        (ev->kind == PUSHER_CHAT_RECEIVED || ev->kind == PUSHER_GROUPCHAT_RECEIVED) && !ev->offline)
        return FALSE;
    if (f->domains && f->domains[0] &&
        !g_strv_contains((const char *const *)f->domains, ev->domain))
        return FALSE;
    return TRUE;
}

gboolean pusher_filter_init(PusherFilter *f, MkModule *mod, const char *prefix, GError **error)
{
    g_autofree char *k_events = g_strconcat(prefix, "events", NULL);
    g_autofree char *k_offline = g_strconcat(prefix, "only_offline", NULL);
    g_autofree char *k_domains = g_strconcat(prefix, "domains", NULL);
    const char *const *events = mk_config_get_strv(mod, k_events);
    memset(f, 0, sizeof *f);
    for (guint i = 0; events && events[i]; i++) {
        g_autofree char *name = g_strstrip(g_strdup(events[i]));
        if (!*name)
            continue;
        int k = pusher_kind_from_name(name);
        if (k < 0) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "%s: unknown event \"%s\" (chat_sent, chat_received, groupchat_sent,"
                        " groupchat_received, presence, login, logout)",
                        k_events, name);
            return FALSE;
        }
        f->kinds |= 1u << k;
    }
    f->only_offline = mk_config_get_bool(mod, k_offline);
    f->domains = g_strdupv((char **)mk_config_get_strv(mod, k_domains));
    return TRUE;
}

void pusher_filter_clear(PusherFilter *f)
{
    g_clear_pointer(&f->domains, g_strfreev);
}
