/* meerkat-bench: the muc scenario. Users form rooms of --occupants
 * (user u is in room (u - first) / N of its process's share, which holds
 * whole rooms). The room's first user joins, creates it and accepts the
 * instant configuration (XEP-0045 10.1.2); then the others join. In the
 * measured window the occupants take turns sending groupchat messages,
 * --msg-rate per second over all processes; every copy an occupant
 * receives counts as a delivered message, its latency taken from the
 * send time in the body. */
#define _GNU_SOURCE
#include "bench.h"
#include <stdio.h>
#include <string.h>

typedef enum { M_NONE, M_JOINING, M_CONFIGURING, M_JOINED } MucState;

struct BenchMuc {
    BenchWorker *w;
    const BenchOpts *o;
    int n;
    MucState *st;
    gboolean *ready_room; /* by room index within the share */
    int joined;
    int cursor;
    guint64 next_send_us;
};

static int room_of(BenchMuc *m, int idx)
{
    return idx / m->o->occupants;
}

static void join(BenchMuc *m, int idx)
{
    char buf[512];
    int user = bench_user(m->w, idx);
    int n = snprintf(buf, sizeof buf,
                     "<presence to='benchroom%d@%s/u%d'><x xmlns='http://jabber.org/protocol/muc'>"
                     "<history maxstanzas='0'/></x></presence>",
                     (user - m->o->first_user) / m->o->occupants, m->o->muc_service, user);
    m->st[idx] = M_JOINING;
    bench_send(m->w, idx, buf, (gsize)n);
}

BenchMuc *bench_muc_new(BenchWorker *w, const BenchOpts *o, int n)
{
    BenchMuc *m = g_new0(BenchMuc, 1);
    m->w = w;
    m->o = o;
    m->n = n;
    m->st = g_new0(MucState, MAX(n, 1));
    m->ready_room = g_new0(gboolean, n / MAX(o->occupants, 1) + 1);
    return m;
}

void bench_muc_free(BenchMuc *m)
{
    if (!m)
        return;
    g_free(m->st);
    g_free(m->ready_room);
    g_free(m);
}

/* A client is online: the room's first user creates it, the others join
 * once it is configured. */
void bench_muc_logged_in(BenchMuc *m, int idx)
{
    if (idx % m->o->occupants == 0 || m->ready_room[room_of(m, idx)])
        join(m, idx);
}

static gboolean has(const char *el, gsize len, const char *needle)
{
    return memmem(el, len, needle, strlen(needle)) != NULL;
}

static void room_ready(BenchMuc *m, int room)
{
    m->ready_room[room] = TRUE;
    for (int i = room * m->o->occupants; i < MIN(m->n, (room + 1) * m->o->occupants); i++)
        if (m->st[i] == M_NONE && bench_online(m->w, i))
            join(m, i);
}

/* A top-level element @el for online client @idx. */
void bench_muc_element(BenchMuc *m, int idx, const char *local, const char *el, gsize len)
{
    if (g_str_equal(local, "presence")) {
        if (m->st[idx] == M_JOINING &&
            (has(el, len, "type='error'") || has(el, len, "type=\"error\""))) {
            g_printerr("bench: u%d could not join: %.*s\n", bench_user(m->w, idx),
                       (int)MIN(len, 400), el);
            m->st[idx] = M_NONE;
            return;
        }
        if (m->st[idx] != M_JOINING ||
            !(has(el, len, "code='110'") || has(el, len, "code=\"110\"")))
            return;
        if (has(el, len, "code='201'") || has(el, len, "code=\"201\"")) {
            char buf[512];
            int user = bench_user(m->w, idx);
            int n = snprintf(buf, sizeof buf,
                             "<iq type='set' id='mc' to='benchroom%d@%s'><query xmlns='"
                             "http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data'"
                             " type='submit'/></query></iq>",
                             (user - m->o->first_user) / m->o->occupants, m->o->muc_service);
            m->st[idx] = M_CONFIGURING;
            bench_send(m->w, idx, buf, (gsize)n);
            return;
        }
        m->st[idx] = M_JOINED;
        m->joined++;
        if (idx % m->o->occupants == 0)
            room_ready(m, room_of(m, idx)); /* the room existed already */
        return;
    }
    if (g_str_equal(local, "iq")) {
        if (m->st[idx] == M_CONFIGURING && has(el, len, "id='mc'")) {
            if (!has(el, len, "type='result'") && !has(el, len, "type=\"result\"")) {
                g_printerr("bench: configuring a room failed: %.*s\n", (int)MIN(len, 300), el);
                return;
            }
            m->st[idx] = M_JOINED;
            m->joined++;
            room_ready(m, room_of(m, idx));
        }
        return;
    }
    if (!g_str_equal(local, "message") || !bench_measuring(m->w))
        return;
    const char *b = memmem(el, len, "<body>", 6);
    if (!b)
        return;
    guint64 sent_at = g_ascii_strtoull(b + 6, NULL, 10);
    guint64 now = now_us();
    WorkerStats *s = bench_stats(m->w);
    s->received++;
    hist_add(&s->hist, now >= sent_at ? now - sent_at : 0);
}

/* Every online client of the share has joined its room. */
gboolean bench_muc_ready(BenchMuc *m)
{
    int online = 0;
    for (int i = 0; i < m->n; i++)
        online += bench_online(m->w, i);
    return m->joined >= online;
}

void bench_muc_start(BenchMuc *m)
{
    m->next_send_us = now_us();
}

/* The measured traffic: occupants take turns, paced to the rate. */
void bench_muc_tick(BenchMuc *m, const char *pad)
{
    if (!bench_running(m->w) || m->o->msg_rate <= 0 || m->joined == 0)
        return;
    guint64 now = now_us();
    guint64 step = (guint64)(1e6 / (m->o->msg_rate / m->o->procs));
    int budget = 1000;
    while (m->next_send_us <= now && budget-- > 0) {
        m->next_send_us += MAX(step, 1);
        for (int tries = 0; tries < m->n; tries++) {
            int i = m->cursor;
            m->cursor = (m->cursor + 1) % m->n;
            if (m->st[i] != M_JOINED || !bench_online(m->w, i))
                continue;
            char buf[4096];
            int user = bench_user(m->w, i);
            int n =
                snprintf(buf, sizeof buf,
                         "<message to='benchroom%d@%s' type='groupchat'><body>%" G_GUINT64_FORMAT
                         "%s</body></message>",
                         (user - m->o->first_user) / m->o->occupants, m->o->muc_service, now, pad);
            bench_send(m->w, i, buf, (gsize)MIN(n, (int)sizeof buf - 1));
            bench_stats(m->w)->sent++;
            break;
        }
    }
    if (now > m->next_send_us + 1000000)
        m->next_send_us = now; /* cannot keep up: no backlog */
}
