/* Events and their JSON (docs/mod_event_pusher.md has the schema), and
 * the per-backend filter. */
#include "pusher.h"
#include <string.h>

static const char *const kind_names[PUSHER_N_KINDS] = {
    "chat_sent", "chat_received", "groupchat_sent", "groupchat_received",
    "presence",  "login",         "logout",         "push",
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
    static const char hex[] = "0123456789abcdef";
    g_string_append_c(out, '"');
    const char *run = s; /* characters that need no escape, appended at once */
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        g_string_append_len(out, run, p - run);
        run = p + 1;
        if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            g_string_append_len(out, esc, sizeof esc);
        } else {
            char esc[2] = {'\\', (char)c};
            g_string_append_len(out, esc, sizeof esc);
        }
    }
    g_string_append(out, run);
    g_string_append_c(out, '"');
}

static void json_field(GString *out, const char *key, const char *value)
{
    if (!value)
        return;
    g_string_append_c(out, ',');
    json_string(out, key);
    g_string_append_c(out, ':');
    json_string(out, value);
}

static GString *event_begin(PusherKind kind, const char *user, const char *from)
{
    /* Built here and copied into the event's one block: what other
     * threads free is one allocation; this buffer goes back at once, on
     * this thread. (No thread-local buffer: a module is unloaded while
     * the workers live on.) */
    GString *out = g_string_sized_new(512);
    g_string_append(out, "{\"event\":");
    json_string(out, kind_names[kind]);
    json_field(out, "user", user);
    json_field(out, "from", from);
    return out;
}

/* Appends a non-negative integer: printf's machinery costs more than the
 * rest of the event on the stanza path. */
static void append_uint(GString *out, guint64 v)
{
    char buf[24];
    int i = sizeof buf;
    do
        buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i > 0);
    g_string_append_len(out, buf + i, (gssize)sizeof buf - i);
}

/* The event: its struct, @user and the JSON in one block. */
static PusherEvent *event_seal(PusherKind kind, const char *user, GString *out)
{
    g_string_append(out, ",\"timestamp\":");
    append_uint(out, (guint64)(g_get_real_time() / 1000));
    g_string_append_c(out, '}');
    gsize ulen = strlen(user);
    PusherEvent *ev = g_malloc(sizeof *ev + ulen + 1 + out->len + 1);
    ev->ref = 1;
    ev->kind = kind;
    ev->user = (char *)(ev + 1);
    memcpy(ev->user, user, ulen + 1);
    const char *at = strchr(ev->user, '@');
    ev->domain = at ? at + 1 : ev->user;
    ev->json = ev->user + ulen + 1;
    memcpy(ev->json, out->str, out->len + 1);
    ev->json_len = out->len;
    g_string_free(out, TRUE);
    return ev;
}

PusherEvent *pusher_event_message(PusherKind kind, const char *user, const char *from,
                                  const char *to, const char *body, int offline)
{
    GString *out = event_begin(kind, user, from);
    json_field(out, "to", to);
    json_field(out, "body", body);
    if (offline >= 0)
        g_string_append(out, offline ? ",\"offline\":true" : ",\"offline\":false");
    return event_seal(kind, user, out);
}

PusherEvent *pusher_event_presence(const char *user, const char *from, gboolean available,
                                   const char *show, const char *status)
{
    GString *out = event_begin(PUSHER_PRESENCE, user, from);
    g_string_append(out, available ? ",\"available\":true" : ",\"available\":false");
    json_field(out, "show", show);
    json_field(out, "status", status);
    return event_seal(PUSHER_PRESENCE, user, out);
}

PusherEvent *pusher_event_session(PusherKind kind, const char *user, const char *from)
{
    GString *out = event_begin(kind, user, from);
    return event_seal(kind, user, out);
}

/* The fields of a stored publish-options form as a JSON object, FORM_TYPE
 * left out; a field of several values keeps its first. */
static void json_form(GString *out, const char *form)
{
    g_autoptr(MkXml) x = form ? mk_xml_parse(form, -1, NULL) : NULL;
    g_string_append(out, ",\"options\":{");
    gboolean first = TRUE;
    for (guint i = 0; x && i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        const char *var = mk_xml_is_text(f) ? NULL : mk_xml_get_attr(f, "var");
        if (!var || !mk_xml_is(f, "field", NULL) || g_str_equal(var, "FORM_TYPE"))
            continue;
        g_autofree char *value = mk_xml_child_text(f, "value", NULL);
        if (!first)
            g_string_append_c(out, ',');
        first = FALSE;
        json_string(out, var);
        g_string_append_c(out, ':');
        json_string(out, value ? value : "");
    }
    g_string_append_c(out, '}');
}

PusherEvent *pusher_event_push(const char *user, const char *service, const char *node, guint count,
                               const char *sender, const char *body, const char *form)
{
    GString *out = event_begin(PUSHER_PUSH, user, NULL);
    json_field(out, "service", service);
    json_field(out, "node", node);
    g_string_append(out, ",\"message_count\":");
    append_uint(out, count);
    json_field(out, "last_message_sender", sender);
    json_field(out, "last_message_body", body);
    json_form(out, form);
    return event_seal(PUSHER_PUSH, user, out);
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
    g_free(ev); /* user and json are in the same block */
}

gboolean pusher_filter_match(const PusherFilter *f, PusherKind kind, const char *domain,
                             gboolean offline)
{
    if (!(f->kinds & (1u << kind)))
        return FALSE;
    if (f->only_offline && (kind == PUSHER_CHAT_RECEIVED || kind == PUSHER_GROUPCHAT_RECEIVED) &&
        !offline)
        return FALSE;
    if (f->domains && f->domains[0] && !g_strv_contains((const char *const *)f->domains, domain))
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
                        " groupchat_received, presence, login, logout, push)",
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
