/* Logging: one structured-log writer for the whole process.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) records go to the
 * journal with their fields (MK_PEER, MK_JID included); otherwise each
 * record is one line on stderr:
 *
 *   2024-05-01T12:00:00.123 WARNING meerkat: [192.0.2.1 juliet@localhost] text
 *
 * The threshold is ours, not G_MESSAGES_DEBUG's: debug records show only
 * with log_level = debug. */
#include "log.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The threshold as a GLogLevelFlags bit; lower bits are more severe. Read
 * by every thread, written by the main thread. */
static gint threshold = G_LOG_LEVEL_INFO;
static gboolean to_journal;
static GMutex write_lock;

static gboolean level_enabled(GLogLevelFlags level)
{
    guint bit = level & G_LOG_LEVEL_MASK;
    /* Lowest set bit: a record carries one level. */
    bit &= -bit;
    return bit != 0 && bit <= (guint)g_atomic_int_get(&threshold);
}

static const char *level_name(GLogLevelFlags level)
{
    if (level & G_LOG_LEVEL_ERROR)
        return "ERROR";
    if (level & G_LOG_LEVEL_CRITICAL)
        return "CRITICAL";
    if (level & G_LOG_LEVEL_WARNING)
        return "WARNING";
    if (level & G_LOG_LEVEL_MESSAGE)
        return "MESSAGE";
    if (level & G_LOG_LEVEL_INFO)
        return "INFO";
    return "DEBUG";
}

/* syslog priority of @level, as journald expects in PRIORITY. */
static const char *level_priority(GLogLevelFlags level)
{
    if (level & G_LOG_LEVEL_ERROR)
        return "3";
    if (level & G_LOG_LEVEL_CRITICAL)
        return "2";
    if (level & G_LOG_LEVEL_WARNING)
        return "4";
    if (level & G_LOG_LEVEL_MESSAGE)
        return "5";
    if (level & G_LOG_LEVEL_INFO)
        return "6";
    return "7";
}

static const char *field_string(const GLogField *f)
{
    return f->length < 0 ? f->value : NULL;
}

static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                               gpointer user_data)
{
    /* Fatal levels always pass: they abort right after. */
    if (!(level & G_LOG_FLAG_FATAL) && !(level & G_LOG_LEVEL_ERROR) && !level_enabled(level))
        return G_LOG_WRITER_HANDLED;
    if (to_journal)
        return g_log_writer_journald(level, fields, n_fields, user_data);

    const char *domain = NULL, *message = NULL, *peer = NULL, *jid = NULL;
    gsize message_len = 0;
    for (gsize i = 0; i < n_fields; i++) {
        const GLogField *f = &fields[i];
        if (g_str_equal(f->key, "GLIB_DOMAIN"))
            domain = field_string(f);
        else if (g_str_equal(f->key, "MK_PEER"))
            peer = field_string(f);
        else if (g_str_equal(f->key, "MK_JID"))
            jid = field_string(f);
        else if (g_str_equal(f->key, "MESSAGE")) {
            message = f->value;
            message_len = f->length < 0 ? strlen(message) : (gsize)f->length;
        }
    }

    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
    GString *line = g_string_sized_new(128 + message_len);
    g_string_append_printf(line, "%s.%03d %s %s: ", stamp, g_date_time_get_microsecond(now) / 1000,
                           level_name(level), domain ? domain : "meerkat");
    if (peer || jid) {
        g_string_append_c(line, '[');
        if (peer)
            g_string_append(line, peer);
        if (peer && jid)
            g_string_append_c(line, ' ');
        if (jid)
            g_string_append(line, jid);
        g_string_append(line, "] ");
    }
    if (message)
        g_string_append_len(line, message, (gssize)message_len);
    g_string_append_c(line, '\n');

    /* One write per record, serialised: lines of two threads never mix. */
    g_mutex_lock(&write_lock);
    fwrite(line->str, 1, line->len, stderr);
    fflush(stderr);
    g_mutex_unlock(&write_lock);
    g_string_free(line, TRUE);
    return G_LOG_WRITER_HANDLED;
}

/* Installs the writer (once per process; later calls only change the
 * threshold) with @level as the least severe level shown. Main thread. */
void mk_log_init(GLogLevelFlags level)
{
    static gsize once;
    mk_log_set_threshold(level);
    if (g_once_init_enter(&once)) {
        to_journal = g_getenv("JOURNAL_STREAM") && g_log_writer_is_journald(fileno(stderr));
        g_log_set_writer_func(writer, NULL, NULL);
        g_once_init_leave(&once, 1);
    }
}

/* Changes the threshold (SIGHUP may). Any thread. */
void mk_log_set_threshold(GLogLevelFlags level)
{
    guint bit = level & G_LOG_LEVEL_MASK;
    /* The least severe level named in @level is the threshold. */
    guint top = G_LOG_LEVEL_ERROR;
    for (guint b = G_LOG_LEVEL_ERROR; b <= G_LOG_LEVEL_DEBUG; b <<= 1)
        if (bit & b)
            top = b;
    g_atomic_int_set(&threshold, (gint)top);
}

/* Logs @format with the connection fields MK_PEER and MK_JID (both
 * nullable). Any thread. */
void mk_log_conn(GLogLevelFlags level, const char *peer, const char *jid, const char *format, ...)
{
    if (!level_enabled(level) && !(level & G_LOG_LEVEL_ERROR))
        return;
    va_list ap;
    va_start(ap, format);
    g_autofree char *message = g_strdup_vprintf(format, ap);
    va_end(ap);

    GLogField fields[6];
    gsize n = 0;
    fields[n++] = (GLogField){"GLIB_DOMAIN", "meerkat", -1};
    fields[n++] = (GLogField){"PRIORITY", level_priority(level), -1};
    fields[n++] = (GLogField){"MESSAGE", message, -1};
    if (peer)
        fields[n++] = (GLogField){"MK_PEER", peer, -1};
    if (jid)
        fields[n++] = (GLogField){"MK_JID", jid, -1};
    g_log_structured_array(level, fields, n);
}
