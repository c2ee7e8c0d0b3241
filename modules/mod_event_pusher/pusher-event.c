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

/* ---- the JSON buffer: on the worker's stack ------------------------------ */

void pusher_json_init(PusherJson *j)
{
    j->str = j->stack;
    j->len = 0;
    j->cap = sizeof j->stack;
}

void pusher_json_clear(PusherJson *j)
{
    if (j->str != j->stack)
        g_free(j->str);
    pusher_json_init(j);
}

/* Room for @n more bytes: a long body moves the text to the heap (the
 * common event fits the stack buffer and costs no allocation). */
static void reserve(PusherJson *j, gsize n)
{
    if (j->len + n <= j->cap)
        return;
    gsize cap = MAX(j->cap * 2, j->len + n);
    if (j->str == j->stack) {
        j->str = g_malloc(cap);
        memcpy(j->str, j->stack, j->len);
    } else {
        j->str = g_realloc(j->str, cap);
    }
    j->cap = cap;
}

static inline void put(PusherJson *j, const char *s, gsize n)
{
    reserve(j, n);
    memcpy(j->str + j->len, s, n);
    j->len += n;
}

static inline void put_c(PusherJson *j, char c)
{
    reserve(j, 1);
    j->str[j->len++] = c;
}

#define PUT_LIT(j, lit) put((j), "" lit, sizeof(lit) - 1)

/* TRUE when one of the 8 bytes of @v is a quote, a backslash or a
 * control character (word-at-a-time tests: exact for "any byte").
 * Scanning a body byte by byte was the largest cost of an event. */
static inline gboolean special8(guint64 v)
{
    const guint64 ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    guint64 q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return ((((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & highs) != 0;
}

/* A JSON string: quotes, backslashes and control characters escaped; the
 * text is UTF-8 already (it came from XML). */
static void json_string(PusherJson *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    gsize n = strlen(s), run = 0, i = 0;
    reserve(j, n + 2);
    put_c(j, '"');
    while (i < n) {
        if (i + 8 <= n) {
            guint64 v;
            memcpy(&v, s + i, 8);
            if (!special8(v)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20) {
            i++;
            continue;
        }
        put(j, s + run, i - run); /* the characters that need no escape, at once */
        if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(j, esc, sizeof esc);
        } else {
            char esc[2] = {'\\', (char)c};
            put(j, esc, sizeof esc);
        }
        run = ++i;
    }
    put(j, s + run, n - run);
    put_c(j, '"');
}

/* ,"KEY":"VALUE" with @key a literal that needs no escape. */
#define FIELD(j, key, value) json_field((j), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (value))

static void json_field(PusherJson *j, const char *key, gsize key_len, const char *value)
{
    if (!value)
        return;
    put(j, key, key_len);
    json_string(j, value);
}

static void event_begin(PusherJson *j, PusherKind kind, const char *user, const char *from)
{
    pusher_json_init(j);
    PUT_LIT(j, "{\"event\":\"");
    put(j, kind_names[kind], strlen(kind_names[kind])); /* plain names */
    put_c(j, '"');
    FIELD(j, "user", user);
    FIELD(j, "from", from);
}

/* Appends a non-negative integer: printf's machinery costs more than the
 * rest of the event on the stanza path. */
static void append_uint(PusherJson *j, guint64 v)
{
    char buf[24];
    int i = sizeof buf;
    do
        buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i > 0);
    put(j, buf + i, sizeof buf - (gsize)i);
}

static void event_seal(PusherJson *j)
{
    PUT_LIT(j, ",\"timestamp\":");
    append_uint(j, (guint64)(g_get_real_time() / 1000));
    put_c(j, '}');
}

void pusher_json_message(PusherJson *j, PusherKind kind, const char *user, const char *from,
                         const char *to, const char *body, int offline)
{
    event_begin(j, kind, user, from);
    FIELD(j, "to", to);
    FIELD(j, "body", body);
    if (offline > 0)
        PUT_LIT(j, ",\"offline\":true");
    else if (offline == 0)
        PUT_LIT(j, ",\"offline\":false");
    event_seal(j);
}

void pusher_json_presence(PusherJson *j, const char *user, const char *from, gboolean available,
                          const char *show, const char *status)
{
    event_begin(j, PUSHER_PRESENCE, user, from);
    if (available)
        PUT_LIT(j, ",\"available\":true");
    else
        PUT_LIT(j, ",\"available\":false");
    FIELD(j, "show", show);
    FIELD(j, "status", status);
    event_seal(j);
}

void pusher_json_session(PusherJson *j, PusherKind kind, const char *user, const char *from)
{
    event_begin(j, kind, user, from);
    event_seal(j);
}

/* The fields of a stored publish-options form as a JSON object, FORM_TYPE
 * left out; a field of several values keeps its first. */
static void json_form(PusherJson *j, const char *form)
{
    g_autoptr(MkXml) x = form ? mk_xml_parse(form, -1, NULL) : NULL;
    PUT_LIT(j, ",\"options\":{");
    gboolean first = TRUE;
    for (guint i = 0; x && i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        const char *var = mk_xml_is_text(f) ? NULL : mk_xml_get_attr(f, "var");
        if (!var || !mk_xml_is(f, "field", NULL) || g_str_equal(var, "FORM_TYPE"))
            continue;
        g_autofree char *value = mk_xml_child_text(f, "value", NULL);
        if (!first)
            put_c(j, ',');
        first = FALSE;
        json_string(j, var);
        put_c(j, ':');
        json_string(j, value ? value : "");
    }
    put_c(j, '}');
}

void pusher_json_push(PusherJson *j, const char *user, const char *service, const char *node,
                      guint count, const char *sender, const char *body, const char *form)
{
    event_begin(j, PUSHER_PUSH, user, NULL);
    FIELD(j, "service", service);
    FIELD(j, "node", node);
    PUT_LIT(j, ",\"message_count\":");
    append_uint(j, count);
    FIELD(j, "last_message_sender", sender);
    FIELD(j, "last_message_body", body);
    json_form(j, form);
    event_seal(j);
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
