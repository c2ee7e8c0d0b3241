/* [metrics] textfile: the Prometheus text written to a file every
 * textfile_interval seconds and on SIGUSR1, for node_exporter's textfile
 * collector or anything else that reads files. Written to PATH.tmp and
 * renamed, so a reader never sees half a file. Main thread. */
#include "metrics-priv.h"
#include "server.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

struct MkMetricsTextfile {
    char *path;
    GSource *timer;
    gboolean failing; /* warned once until a write works again */
};

static gboolean write_all(int fd, const char *p, gsize len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= (gsize)n;
    }
    return TRUE;
}

static void textfile_write(MkServer *srv, struct MkMetricsTextfile *t)
{
    g_autoptr(GString) text = g_string_new(NULL);
    mk_metrics_render(srv->modules->metrics, text);
    g_autofree char *tmp = g_strconcat(t->path, ".tmp", NULL);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    gboolean ok = fd >= 0 && write_all(fd, text->str, text->len);
    int err = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = FALSE;
        err = errno;
    }
    if (ok && rename(tmp, t->path) != 0) {
        ok = FALSE;
        err = errno;
    }
    if (!ok) {
        if (fd >= 0)
            unlink(tmp);
        if (!t->failing)
            g_warning("metrics: cannot write %s: %s", t->path, g_strerror(err));
    } else if (t->failing) {
        g_message("metrics: %s written again", t->path);
    }
    t->failing = !ok;
}

static gboolean on_timer(gpointer data)
{
    MkServer *srv = data;
    textfile_write(srv, srv->modules->metrics->textfile);
    return G_SOURCE_CONTINUE;
}

/* See metrics-priv.h. Main thread. */
void mk_metrics_textfile_start(MkServer *srv)
{
    MkMetrics *m = srv->modules->metrics;
    if (!srv->config->metrics_textfile || m->textfile)
        return;
    struct MkMetricsTextfile *t = g_new0(struct MkMetricsTextfile, 1);
    t->path = g_strdup(srv->config->metrics_textfile);
    m->textfile = t;
    textfile_write(srv, t);
    t->timer = g_timeout_source_new_seconds(srv->config->metrics_textfile_interval);
    g_source_set_callback(t->timer, on_timer, srv, NULL);
    g_source_set_name(t->timer, "metrics textfile");
    g_source_attach(t->timer, NULL);
}

void mk_metrics_textfile_stop(MkServer *srv)
{
    MkMetrics *m = srv->modules->metrics;
    struct MkMetricsTextfile *t = g_steal_pointer(&m->textfile);
    if (!t)
        return;
    g_source_destroy(t->timer);
    g_source_unref(t->timer);
    g_free(t->path);
    g_free(t);
}

/* See metrics.h. Main thread. */
void mk_metrics_textfile_write(MkServer *srv)
{
    if (srv->modules && srv->modules->metrics->textfile)
        textfile_write(srv, srv->modules->metrics->textfile);
}
