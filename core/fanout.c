/* One stanza to many recipients with one serialisation (mk-fanout.h).
 * Why and the measurements: docs/architecture.md, "Fan-out". */
#include "fanout.h"
#include "router.h"
#include "sm.h"
#include "worker.h"
#include "xmlstream.h"

#include <string.h>

#define NS_CLIENT "jabber:client"

struct MkWire {
    gint ref;
    gboolean whole; /* the bytes carry their 'to' (mk_wire_new_whole) */
    gsize split;    /* bytes of "<name" (and its xmlns): 'to' goes here */
    gsize len;
    char bytes[];
};

MkWire *mk_wire_new(const MkXml *xml)
{
    g_return_val_if_fail(xml != NULL && !mk_xml_is_text(xml), NULL);
    GString *out = g_string_sized_new(512);
    mk_xml_write(xml, NS_CLIENT, out);
    MkWire *w = g_malloc(sizeof(MkWire) + out->len + 1);
    w->ref = 1;
    w->whole = FALSE;
    w->len = out->len;
    memcpy(w->bytes, out->str, out->len + 1);
    g_string_free(out, TRUE);
    /* mk_xml_write starts with '<', the name, then a space or the end of
     * the start tag: the attributes may go in order after the name. */
    w->split = 1 + strlen(mk_xml_name(xml));
    return w;
}

/* See fanout.h. Any thread. */
MkWire *mk_wire_new_whole(const char *bytes, gsize len)
{
    g_return_val_if_fail(bytes != NULL && len > 1 && bytes[0] == '<', NULL);
    MkWire *w = g_malloc(sizeof(MkWire) + len + 1);
    w->ref = 1;
    w->whole = TRUE;
    w->len = len;
    memcpy(w->bytes, bytes, len);
    w->bytes[len] = '\0';
    /* The element's name ends at the first space, '/' or '>'. */
    w->split = 1 + strcspn(w->bytes + 1, " \t\r\n/>");
    return w;
}

const char *mk_wire_bytes(const MkWire *w, gsize *len)
{
    *len = w->len;
    return w->bytes;
}

gsize mk_wire_name(const MkWire *w, const char **name)
{
    *name = w->bytes + 1;
    return w->split - 1;
}

MkWire *mk_wire_ref(MkWire *w)
{
    g_atomic_int_inc(&w->ref);
    return w;
}

void mk_wire_unref(MkWire *w)
{
    if (w && g_atomic_int_dec_and_test(&w->ref))
        g_free(w);
}

gsize mk_wire_len(const MkWire *w)
{
    return w->len;
}

void mk_wire_write(const MkWire *w, const MkJid *to, GString *out)
{
    if (w->whole) {
        g_string_append_len(out, w->bytes, (gssize)w->len);
        return;
    }
    const char *t = to ? mk_jid_string(to) : NULL;
    if (!t || t[strcspn(t, "&<>'\"")]) {
        g_string_append_len(out, w->bytes, w->split);
        if (t) {
            g_string_append(out, " to='");
            mk_xml_append_attr_value(out, t);
            g_string_append_c(out, '\'');
        }
        g_string_append_len(out, w->bytes + w->split, w->len - w->split);
        return;
    }
    /* Nothing to escape (nearly every JID): the three pieces copied into
     * place, one resize, instead of three appends and an escaping pass
     * per copy. */
    static const char open_to[] = " to='";
    gsize tl = strlen(t), at = out->len;
    g_string_set_size(out, at + w->len + tl + sizeof open_to);
    char *p = out->str + at;
    memcpy(p, w->bytes, w->split);
    p += w->split;
    memcpy(p, open_to, sizeof open_to - 1);
    p += sizeof open_to - 1;
    memcpy(p, t, tl);
    p += tl;
    *p++ = '\'';
    memcpy(p, w->bytes + w->split, w->len - w->split);
}

/* The copies of one fan-out for the sessions of one other worker: they
 * travel in one mailbox post instead of one post (and two allocations)
 * each. */
typedef struct {
    MkSession *s; /* reference */
    MkStanza *st; /* reference */
} FanoutCopy;

typedef struct {
    MkWorker *w;
    guint n;
    guint cap;
    FanoutCopy *copies;
} FanoutBatch;

/* The first batches live in the sink itself: one per other worker, and a
 * server has few. */
#define SINK_BATCHES 8

typedef struct {
    MkRouteSink base;
    MkWorker *self; /* nullable: not called on a worker */
    FanoutBatch batches[SINK_BATCHES];
    guint n_batches;
    GArray *more; /* FanoutBatch, past SINK_BATCHES workers; nullable */
} FanoutSink;

static void batch_free(gpointer p)
{
    FanoutBatch *b = p;
    for (guint i = 0; i < b->n; i++) {
        mk_session_unref(b->copies[i].s);
        mk_stanza_unref(b->copies[i].st);
    }
    g_free(b->copies);
    g_free(b);
}

/* On the sessions' worker: each copy as mk_session_send would deliver it. */
static void batch_run(gpointer p)
{
    FanoutBatch *b = p;
    /* Looked up here, not by the poster: the batch may wait in the
     * mailbox, and the lookups are valid within one run only. */
    MkDomainHooks dh = {0};
    for (guint i = 0; i < b->n; i++)
        mk_session_deliver_cached(b->copies[i].s, b->copies[i].st, &dh);
    mk_domain_hooks_clear(&dh);
    batch_free(b);
}

static FanoutBatch *sink_batch(FanoutSink *k, MkWorker *w)
{
    for (guint i = 0; i < k->n_batches; i++)
        if (k->batches[i].w == w)
            return &k->batches[i];
    if (k->n_batches < SINK_BATCHES) {
        FanoutBatch *b = &k->batches[k->n_batches++];
        *b = (FanoutBatch){.w = w};
        return b;
    }
    if (!k->more)
        k->more = g_array_new(FALSE, TRUE, sizeof(FanoutBatch));
    for (guint i = 0; i < k->more->len; i++)
        if (g_array_index(k->more, FanoutBatch, i).w == w)
            return &g_array_index(k->more, FanoutBatch, i);
    FanoutBatch b = {.w = w};
    g_array_append_val(k->more, b);
    return &g_array_index(k->more, FanoutBatch, k->more->len - 1);
}

/* MkRouteSink: a copy for a local session. Its own worker's sessions
 * take it now (as mk_session_send does); others' are gathered. */
static void sink_deliver(MkRouteSink *sink, MkSession *s, MkStanza *st)
{
    FanoutSink *k = (FanoutSink *)sink;
    if (s->worker == k->self) {
        mk_session_deliver_cached(s, st, k->base.hooks);
        return;
    }
    FanoutBatch *b = sink_batch(k, s->worker);
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->copies = g_renew(FanoutCopy, b->copies, b->cap);
    }
    b->copies[b->n++] = (FanoutCopy){mk_session_ref(s), mk_stanza_ref(st)};
}

/* Posts each gathered batch to its worker, in the order of the workers'
 * first copies. */
static void sink_flush_one(FanoutBatch *b)
{
    if (!b->n)
        return;
    FanoutBatch *job = g_memdup2(b, sizeof *b);
    mk_worker_post(b->w, batch_run, job, batch_free);
}

static void sink_flush(FanoutSink *k)
{
    for (guint i = 0; i < k->n_batches; i++)
        sink_flush_one(&k->batches[i]);
    for (guint i = 0; k->more && i < k->more->len; i++)
        sink_flush_one(&g_array_index(k->more, FanoutBatch, i));
    if (k->more)
        g_array_free(k->more, TRUE);
}

/* Public module API (mk-fanout.h). Any thread. */
void mk_fanout_send(MkStanza *stanza, MkJid *const *recipients, guint n_recipients)
{
    g_return_if_fail(stanza != NULL && (recipients != NULL || n_recipients == 0));
    if (!n_recipients)
        return;
    MkXml *xml = mk_stanza_xml(stanza);
    MkJid *from = mk_stanza_from(stanza);
    /* The shared part: the stanza without 'to', serialised once. */
    g_autoptr(MkXml) base = NULL;
    if (mk_xml_get_attr(xml, "to")) {
        static const char *const names[] = {"to"};
        static const char *const values[] = {NULL};
        base = mk_xml_copy_shallow_set(xml, names, values, 1);
    } else {
        base = mk_xml_ref(xml);
    }
    g_autoptr(MkWire) wire = mk_wire_new(base);
    /* The copies mostly go to one domain: its host and hook lookups are
     * made once, not per copy (modules.h, MkDomainHooks). */
    MkDomainHooks dh = {0};
    FanoutSink sink = {.base.deliver = sink_deliver, .base.hooks = &dh, .self = mk_worker_self()};
    /* The first copy tells whether all can share @base; then the others
     * are made from it without testing @base's attributes again. */
    g_autoptr(MkStanza) first = mk_stanza_new_wire_copy(base, from, recipients[0], wire);
    mk_router_route_to(first, NULL, &sink.base);
    for (guint i = 1; i < n_recipients; i++) {
        g_autoptr(MkStanza) copy = mk_stanza_wire_shares(first)
                                       ? mk_stanza_new_wire_sibling(first, recipients[i])
                                       : mk_stanza_new_wire_copy(base, from, recipients[i], wire);
        mk_router_route_to(copy, NULL, &sink.base);
    }
    sink_flush(&sink);
    mk_domain_hooks_clear(&dh);
}
