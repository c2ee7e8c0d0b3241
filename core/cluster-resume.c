/* XEP-0198 resumption on another node of the cluster: the protocol on
 * the node links (docs/clustering.md, Resumption on another node).
 *
 *   B (where the client resumes)          A (the session's node)
 *   RESUME_ASK(req, previd, bare h)  ->
 *                                    <-   RESUME_STATE(req, header, body)
 *                                    <-   STANZA ... (forwarded meanwhile)
 *   RESUME_DONE(previd, bare, 1|0)   ->   (after B's record is in Redis)
 *
 * This file carries the frames and keeps two small tables: the requests
 * B waits for (answered or timed out once), and per full JID the
 * stanzas A forwarded before B's session was registered. The session
 * work itself is in c2s-sm.c, on the sessions' workers.
 *
 * Threads: frames arrive on the cluster thread; the rest is called from
 * workers. Both tables are under one mutex (a resumption is rare). */
#include "cluster.h"
#include "c2s-sm.h"
#include "worker.h"
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASK_TIMEOUT_MS 5000 /* A's answer, else item-not-found */

#define MAX_HOPS 3 /* "moved to" hints followed for one request */

typedef struct {
    MkWorker *worker;
    MkResumeFetched func;
    gpointer data;
    GDestroyNotify free;
    char *node;
    char *previd, *bare_h; /* to ask again where a hint points */
    guint hops;
    GSource *timer; /* on @worker */
} Ask;

/* Where a session that moved away went: previd -> MovedTo. */
typedef struct {
    char *node;
    gint64 until_us; /* monotonic: its resumption timeout */
} MovedTo;

static void moved_to_free(gpointer p)
{
    MovedTo *m = p;
    g_free(m->node);
    g_free(m);
}

static GMutex lock;
static GHashTable *asks;     /* request id -> Ask* */
static GHashTable *arriving; /* full JID -> GQueue of MkStanza* */
static GHashTable *moved;    /* previd -> MovedTo* */

static void tables_init(void)
{
    if (!asks) {
        asks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        arriving = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        moved = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, moved_to_free);
    }
}

void mk_moved_session_free(MkMovedSession *ms)
{
    if (!ms)
        return;
    g_free(ms->full);
    g_free(ms->flags);
    g_free(ms->presence);
    if (ms->directed)
        g_ptr_array_unref(ms->directed);
    if (ms->queue)
        g_ptr_array_unref(ms->queue);
    if (ms->stamps)
        g_array_unref(ms->stamps);
    g_free(ms);
}

static MkMovedSession *moved_new(void)
{
    MkMovedSession *ms = g_new0(MkMovedSession, 1);
    ms->directed = g_ptr_array_new_with_free_func(g_free);
    ms->queue = g_ptr_array_new_with_free_func(g_free);
    ms->stamps = g_array_new(FALSE, FALSE, sizeof(gint64));
    return ms;
}

/* ---- encoding ---------------------------------------------------------- */

/* Header: FULL \t H_IN \t H_OUT \t TIMEOUT \t PRIORITY \t AVAILABLE \t FLAGS.
 * Body: items "KIND LEN STAMP\n" + LEN bytes; KIND P (presence),
 * D (directed JID), Q (queued stanza). Lengths make any byte safe. */
static void body_item(GString *out, char kind, const char *text, gint64 stamp)
{
    gsize len = strlen(text);
    g_string_append_printf(out, "%c %" G_GSIZE_FORMAT " %" G_GINT64_FORMAT "\n", kind, len, stamp);
    g_string_append_len(out, text, (gssize)len);
}

static MkMovedSession *decode(const char *header, const char *body, gsize body_len)
{
    g_auto(GStrv) f = g_strsplit(header, "\t", 7);
    if (g_strv_length(f) != 7)
        return NULL;
    MkMovedSession *ms = moved_new();
    ms->full = g_strdup(f[0]);
    ms->h_in = (guint32)g_ascii_strtoull(f[1], NULL, 10);
    ms->h_out = (guint32)g_ascii_strtoull(f[2], NULL, 10);
    ms->timeout = (guint)g_ascii_strtoull(f[3], NULL, 10);
    ms->priority = atoi(f[4]);
    ms->available = g_str_equal(f[5], "1");
    ms->flags = g_strdup(f[6]);
    const char *p = body, *end = body + body_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (gsize)(end - p));
        if (!nl)
            goto bad;
        g_autofree char *line = g_strndup(p, (gsize)(nl - p));
        char kind = 0;
        guint64 len = 0;
        gint64 stamp = 0;
        if (sscanf(line, "%c %" G_GUINT64_FORMAT " %" G_GINT64_FORMAT, &kind, &len, &stamp) != 3 ||
            len > (guint64)(end - nl - 1))
            goto bad;
        char *text = g_strndup(nl + 1, (gsize)len);
        p = nl + 1 + len;
        if (kind == 'P') {
            g_free(ms->presence);
            ms->presence = text;
        } else if (kind == 'D') {
            g_ptr_array_add(ms->directed, text);
        } else if (kind == 'Q') {
            g_ptr_array_add(ms->queue, text);
            g_array_append_val(ms->stamps, stamp);
        } else {
            g_free(text);
            goto bad;
        }
    }
    return ms;
bad:
    mk_moved_session_free(ms);
    return NULL;
}

/* ---- the resuming node (B) --------------------------------------------- */

typedef struct {
    Ask *ask;
    MkMovedSession *ms;
} Fetched;

static void ask_free(Ask *a)
{
    if (a->timer) {
        g_source_destroy(a->timer);
        g_source_unref(a->timer);
    }
    if (a->free)
        a->free(a->data);
    g_free(a->node);
    g_free(a->previd);
    g_free(a->bare_h);
    g_free(a);
}

static void fetched_free(gpointer p)
{
    Fetched *f = p;
    ask_free(f->ask);
    mk_moved_session_free(f->ms);
    g_free(f);
}

/* On the asking worker: the answer, once. */
static void fetched_run(gpointer p)
{
    Fetched *f = p;
    Ask *a = f->ask;
    a->func(g_steal_pointer(&f->ms), a->node, a->data);
    a->free = NULL; /* func took @data */
    fetched_free(f);
}

/* Takes request @reqid out of the table (NULL: answered or timed out). */
static Ask *ask_take(const char *reqid)
{
    g_mutex_lock(&lock);
    tables_init();
    Ask *a = g_hash_table_lookup(asks, reqid);
    if (a)
        g_hash_table_remove(asks, reqid);
    g_mutex_unlock(&lock);
    return a;
}

static void ask_post(Ask *a, MkMovedSession *ms)
{
    Fetched *f = g_new0(Fetched, 1);
    f->ask = a;
    f->ms = ms;
    mk_worker_post(a->worker, fetched_run, f, fetched_free);
}

/* On the asking worker: A did not answer in time. */
static gboolean ask_timeout(gpointer p)
{
    const char *reqid = p;
    Ask *a = ask_take(reqid);
    if (a) {
        g_warning("cluster: node %s did not answer a resumption within %d ms", a->node,
                  ASK_TIMEOUT_MS);
        g_clear_pointer(&a->timer, g_source_unref); /* the return value destroys it */
        ask_post(a, NULL);
    }
    return G_SOURCE_REMOVE;
}

void mk_cluster_resume_moved(MkCluster *cl, const char *previd, const char *node, guint timeout)
{
    (void)cl;
    MovedTo *m = g_new0(MovedTo, 1);
    m->node = g_strdup(node);
    m->until_us = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
    g_mutex_lock(&lock);
    tables_init();
    /* Forgotten after their timeout; pruned as new ones come. */
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, moved);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((MovedTo *)v)->until_us < g_get_monotonic_time())
            g_hash_table_iter_remove(&it);
    g_hash_table_replace(moved, g_strdup(previd), m);
    g_mutex_unlock(&lock);
}

/* Where the session @previd went from here (transfer full), or NULL. */
static char *moved_lookup(const char *previd)
{
    char *node = NULL;
    g_mutex_lock(&lock);
    tables_init();
    MovedTo *m = g_hash_table_lookup(moved, previd);
    if (m && m->until_us >= g_get_monotonic_time())
        node = g_strdup(m->node);
    g_mutex_unlock(&lock);
    return node;
}

gboolean mk_cluster_resume_fetch(MkCluster *cl, const char *previd, const char *bare, guint32 h,
                                 MkResumeFetched func, gpointer data, GDestroyNotify free_func)
{
    const char *tilde = cl && previd && bare ? strchr(previd, '~') : NULL;
    if (!tilde)
        return FALSE;
    g_autofree char *node = g_strndup(previd, (gsize)(tilde - previd));
    if (g_str_equal(node, mk_cluster_name(cl))) {
        /* Ours once, resumed elsewhere since: ask where it went. */
        g_free(node);
        node = moved_lookup(previd);
    }
    if (!node || g_str_equal(node, mk_cluster_name(cl)) ||
        !mk_links_peer_up(mk_cluster_links(cl), node))
        return FALSE;
    guint8 rnd[12];
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    g_autofree char *reqid = g_base64_encode(rnd, sizeof rnd);
    Ask *a = g_new0(Ask, 1);
    a->worker = mk_worker_self();
    a->func = func;
    a->data = data;
    a->free = free_func;
    a->node = g_strdup(node);
    a->previd = g_strdup(previd);
    a->bare_h = g_strdup_printf("%s\t%u", bare, h);
    a->timer = g_timeout_source_new(ASK_TIMEOUT_MS);
    g_source_set_callback(a->timer, ask_timeout, g_strdup(reqid), g_free);
    g_mutex_lock(&lock);
    tables_init();
    g_hash_table_insert(asks, g_strdup(reqid), a);
    g_mutex_unlock(&lock);
    g_source_attach(a->timer, mk_worker_context(a->worker));
    if (!mk_links_send(mk_cluster_links(cl), node, MK_LINK_RESUME_ASK, reqid, previd, a->bare_h)) {
        a = ask_take(reqid);
        if (a) {
            a->free = NULL; /* the caller keeps @data: FALSE */
            ask_free(a);
        }
        return FALSE;
    }
    return TRUE;
}

void mk_cluster_resume_done(MkCluster *cl, const char *node, const char *previd, const char *bare,
                            gboolean taken)
{
    if (!mk_links_send(mk_cluster_links(cl), node, MK_LINK_RESUME_DONE, previd, bare,
                       taken ? "1" : "0"))
        g_message("cluster: cannot tell %s that %s was resumed here", node, bare);
}

GQueue *mk_cluster_resume_arrived(MkCluster *cl, const char *full)
{
    (void)cl;
    g_mutex_lock(&lock);
    tables_init();
    gpointer key = NULL, q = NULL;
    if (g_hash_table_steal_extended(arriving, full, &key, &q))
        g_free(key);
    g_mutex_unlock(&lock);
    return q;
}

gboolean mk_cluster_resume_hold(MkCluster *cl, const char *full, MkXml *stanza)
{
    (void)cl;
    gboolean held = FALSE;
    g_mutex_lock(&lock);
    GQueue *q = arriving ? g_hash_table_lookup(arriving, full) : NULL;
    if (q) {
        MkStanza *st = mk_stanza_new(stanza, NULL);
        if (st)
            g_queue_push_tail(q, st);
        held = TRUE;
    }
    g_mutex_unlock(&lock);
    return held;
}

/* STATE(req, header, body) from A, on the cluster thread: the waiting
 * list for the session's JID opens before the answer goes to the worker,
 * so that the stanzas A forwards next (same link, in order) wait for it. */
static void on_state(MkCluster *cl, const char *reqid, const char *header, const char *body,
                     gsize body_len)
{
    if (!*header && body_len) {
        /* "Not here, it moved to NODE": ask there, same request (it stays
         * in the table, its timer running). */
        g_autofree char *hint = g_strndup(body, body_len);
        g_autofree char *previd = NULL, *bare_h = NULL;
        g_mutex_lock(&lock);
        Ask *w = g_hash_table_lookup(asks, reqid);
        if (w && w->hops < MAX_HOPS && !g_str_equal(hint, mk_cluster_name(cl))) {
            g_free(w->node);
            w->node = g_strdup(hint);
            w->hops++;
            previd = g_strdup(w->previd);
            bare_h = g_strdup(w->bare_h);
        }
        g_mutex_unlock(&lock);
        if (previd &&
            mk_links_send(mk_cluster_links(cl), hint, MK_LINK_RESUME_ASK, reqid, previd, bare_h))
            return;
    }
    Ask *a = ask_take(reqid);
    if (!a)
        return; /* timed out: A's session ends there on its own timer */
    MkMovedSession *ms = *header ? decode(header, body, body_len) : NULL;
    if (*header && !ms)
        g_warning("cluster: unreadable session state from %s", a->node);
    if (ms) {
        g_mutex_lock(&lock);
        if (!g_hash_table_contains(arriving, ms->full))
            g_hash_table_insert(arriving, g_strdup(ms->full), g_queue_new());
        g_mutex_unlock(&lock);
    }
    if (a->timer) {
        g_source_destroy(a->timer);
        g_clear_pointer(&a->timer, g_source_unref);
    }
    ask_post(a, ms);
}

/* ---- the session's node (A) ------------------------------------------- */

void mk_cluster_resume_answer(MkCluster *cl, const char *node, const char *reqid,
                              const MkMovedSession *ms)
{
    if (!ms) {
        mk_links_send(mk_cluster_links(cl), node, MK_LINK_RESUME_STATE, reqid, "", "");
        return;
    }
    g_autofree char *header =
        g_strdup_printf("%s\t%u\t%u\t%u\t%d\t%d\t%s", ms->full, ms->h_in, ms->h_out, ms->timeout,
                        ms->priority, ms->available ? 1 : 0, ms->flags ? ms->flags : "");
    GString *body = g_string_sized_new(1024);
    if (ms->presence)
        body_item(body, 'P', ms->presence, 0);
    for (guint i = 0; i < ms->directed->len; i++)
        body_item(body, 'D', g_ptr_array_index(ms->directed, i), 0);
    for (guint i = 0; i < ms->queue->len; i++)
        body_item(body, 'Q', g_ptr_array_index(ms->queue, i), g_array_index(ms->stamps, gint64, i));
    if (!mk_links_send(mk_cluster_links(cl), node, MK_LINK_RESUME_STATE, reqid, header, body->str))
        g_message("cluster: could not answer %s's resumption of %s", node, ms->full);
    g_string_free(body, TRUE);
}

gboolean mk_cluster_resume_forward(MkCluster *cl, const char *node, const char *full,
                                   const char *xml, gsize len)
{
    g_autofree char *copy = g_strndup(xml, len);
    return mk_links_send(mk_cluster_links(cl), node, MK_LINK_STANZA, full, "0", copy);
}

MkMovedSession *mk_moved_session_new(void)
{
    return moved_new();
}

/* ---- frames -------------------------------------------------------------- */

void mk_cluster_resume_frame(MkCluster *cl, MkC2sServer *cs, const char *node, guint8 type,
                             const char *data, gsize len)
{
    const char *end = data + len;
    const char *nul1 = memchr(data, 0, len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (gsize)(end - nul1 - 1)) : NULL;
    if (!nul2)
        return;
    g_autofree char *a = g_strndup(data, (gsize)(nul1 - data));
    g_autofree char *b = g_strndup(nul1 + 1, (gsize)(nul2 - nul1 - 1));
    const char *c = nul2 + 1;
    gsize clen = (gsize)(end - c);
    switch (type) {
    case MK_LINK_RESUME_ASK: {
        g_autofree char *rest = g_strndup(c, clen);
        char *tab = strrchr(rest, '\t');
        if (!tab)
            return;
        *tab = 0;
        g_autofree char *went = moved_lookup(b);
        if (went && !g_str_equal(went, node))
            mk_links_send(mk_cluster_links(cl), node, MK_LINK_RESUME_STATE, a, "", went);
        else
            mk_c2s_sm_move_out(cs, node, a, b, rest, (guint32)g_ascii_strtoull(tab + 1, NULL, 10));
        break;
    }
    case MK_LINK_RESUME_STATE:
        on_state(cl, a, b, c, clen);
        break;
    case MK_LINK_RESUME_DONE:
        mk_c2s_sm_move_done(cs, a, b, clen == 1 && c[0] == '1');
        break;
    default:
        break;
    }
}
