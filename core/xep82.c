/* XEP-0082 stamps for modules (mk-xep82.h). */
#include "mk-core.h"

#include <string.h>

/* Public module API (mk-xep82.h). (transfer full) Any thread. */
char *mk_xep82_format(GDateTime *when)
{
    g_return_val_if_fail(when != NULL, NULL);
    g_autoptr(GDateTime) utc = g_date_time_to_utc(when);
    g_autofree char *base = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%S");
    return g_strdup_printf("%s.%03dZ", base, g_date_time_get_microsecond(utc) / 1000);
}

static gboolean digits(const char *p, guint n)
{
    for (guint i = 0; i < n; i++)
        if (!g_ascii_isdigit(p[i]))
            return FALSE;
    return TRUE;
}

/* Public module API (mk-xep82.h). (transfer full) (nullable) Any thread.
 * The shape is checked here; GLib's ISO 8601 parser, which also takes
 * week dates, ordinal dates and the basic format, then does the
 * arithmetic and range checks. */
GDateTime *mk_xep82_parse(const char *text)
{
    if (!text || strlen(text) < 20)
        return NULL;
    const char *p = text;
    if (!digits(p, 4) || p[4] != '-' || !digits(p + 5, 2) || p[7] != '-' || !digits(p + 8, 2) ||
        p[10] != 'T' || !digits(p + 11, 2) || p[13] != ':' || !digits(p + 14, 2) || p[16] != ':' ||
        !digits(p + 17, 2))
        return NULL;
    p += 19;
    if (*p == '.') {
        p++;
        if (!g_ascii_isdigit(*p))
            return NULL;
        while (g_ascii_isdigit(*p))
            p++;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (!digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2))
            return NULL;
        p += 6;
    } else {
        return NULL;
    }
    if (*p)
        return NULL;
    return g_date_time_new_from_iso8601(text, NULL);
}
