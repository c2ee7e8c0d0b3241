/* The batched archive writer.
 *
 * Archiving a message must cost the routing worker little: the row is
 * appended to its archive's group in one of a fixed number of shards (an
 * archive always goes to the same shard and group, so its rows keep their
 * order) under that shard's lock. One flush at a time takes every shard's
 * rows and writes them in one transaction, archive after archive, as
 * multi-row INSERTs (mam-db.c chooses their sizes): it starts when one archive has
 * batch_size rows queued, when the flush timer finds rows waiting, or
 * when a query needs them. What a row costs the database is mostly the
 * index pages it dirties, each written once per transaction: with an
 * archive's rows together in a transaction, its rows share their index
 * leaves, so more rows per archive per transaction cost fewer page
 * writes per row (docs/benchmarks.md). While a flush runs, rows gather
 * for the next one (sqlite takes one writer at a time anyway). A flush that fails puts its rows
 * back in front and is tried again after a growing pause; rows beyond max_pending are refused with
 * a log line and a metric. A query first waits until its archive's rows added before it are written
 * (mam_writer_sync), so a client always finds what it just sent. docs/mod_mam.md has the
 * guarantees. */
#include "mam.h"

#define N_SHARDS       16
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   30000

typedef struct {
    gint64 target; /* the shard's row count this waiter waits for */
    GMainContext *ctx;
    MamSynced done;
    gpointer user_data;
} Waiter;

typedef struct {
    GMutex lock;
    /* MamArchive* (borrowed from the group's first row) -> GPtrArray* of
     * MamRow*, oldest first. */
    GHashTable *pending;
    guint n_pending; /* rows in pending */
    gboolean full;   /* a group holds batch_size rows */
    gint64 added;    /* rows ever added */
    gint64 settled;  /* rows whose write was attempted to the end */
    GSList *waiters; /* of Waiter*, any order */
} Shard;

struct MamWriter {
    MkModule *mod;
    guint batch_size;
    gint max_pending;
    gint queued;  /* rows not yet written, atomic */
    gint stopped; /* atomic */
    /* The flush: one at a time (flush_lock guards these). */
    GMutex flush_lock;
    gboolean in_flight;
    guint failures;     /* consecutive */
    gint64 retry_at_us; /* no new attempt before (monotonic) */
    MamWriterCounters counters;
    Shard shards[N_SHARDS];
};

typedef struct {
    MamWriter *w;
    GHashTable *rows[N_SHARDS]; /* owned shards' groups; NULL where a shard had none */
    gint64 end[N_SHARDS];       /* each shard's 'added' when its rows were taken */
    guint n;
    gboolean separate; /* stop()'s last flush: not the one in flight */
} Flush;

/* Copies @src after *@at. Returns: the copy, or NULL for NULL. */
static char *put(char **at, const char *src)
{
    if (!src)
        return NULL;
    char *out = *at;
    size_t n = strlen(src) + 1;
    memcpy(out, src, n);
    *at += n;
    return out;
}

MamRow *mam_row_new(const char *room, const char *username, const char *domain, guint64 id,
                    const char *with_bare, const char *with_resource, const char *from_bare,
                    const char *origin_id, char *xml)
{
    const char *strs[] = {room, username, domain, with_bare, with_resource, from_bare, origin_id};
    size_t size = sizeof(MamRow);
    for (guint i = 0; i < G_N_ELEMENTS(strs); i++)
        size += strs[i] ? strlen(strs[i]) + 1 : 0;
    MamRow *row = g_malloc(size);
    char *at = (char *)(row + 1);
    row->archive.room = put(&at, room);
    row->archive.username = put(&at, username);
    row->archive.domain = put(&at, domain);
    row->number = 0;
    row->id = id;
    row->with_bare = put(&at, with_bare);
    row->with_resource = put(&at, with_resource);
    row->from_bare = put(&at, from_bare);
    row->origin_id = put(&at, origin_id);
    row->xml = xml;
    return row;
}

void mam_row_free(MamRow *row)
{
    if (!row)
        return;
    g_ref_string_release(row->xml);
    g_free(row);
}

char *mam_xml_text(MkXml *xml)
{
    g_autoptr(GString) text = g_string_sized_new(512);
    mk_xml_write(xml, NULL, text);
    return g_ref_string_new_len(text->str, (gssize)text->len);
}

static guint archive_hash(gconstpointer key)
{
    const MamArchive *a = key;
    return a->room ? g_str_hash(a->room) : g_str_hash(a->username) * 31 + g_str_hash(a->domain);
}

static gboolean archive_equal(gconstpointer x, gconstpointer y)
{
    const MamArchive *a = x, *b = y;
    if (a->room || b->room)
        return g_strcmp0(a->room, b->room) == 0;
    return g_str_equal(a->username, b->username) && g_str_equal(a->domain, b->domain);
}

static Shard *shard_of(MamWriter *w, const MamArchive *a)
{
    return &w->shards[archive_hash(a) % N_SHARDS];
}

static GHashTable *groups_new(void)
{
    return g_hash_table_new_full(archive_hash, archive_equal, NULL,
                                 (GDestroyNotify)g_ptr_array_unref);
}

/* Puts @rows (transfer full) in front of its archive's group in @groups. */
static void groups_put_front(GHashTable *groups, GPtrArray *rows)
{
    MamRow *first = rows->pdata[0];
    GPtrArray *later = NULL;
    if (g_hash_table_steal_extended(groups, &first->archive, NULL, (gpointer *)&later))
        g_ptr_array_extend_and_steal(rows, later);
    /* The key is the group's first row's: it lives as long as the group. */
    g_hash_table_insert(groups, &first->archive, rows);
}

MamWriter *mam_writer_new(MkModule *mod, guint batch_size, guint max_pending,
                          const MamWriterCounters *counters)
{
    MamWriter *w = g_new0(MamWriter, 1);
    w->mod = mod;
    w->batch_size = MAX(batch_size, 1);
    w->max_pending = (gint)MIN(max_pending, G_MAXINT);
    w->counters = *counters;
    g_mutex_init(&w->flush_lock);
    for (guint i = 0; i < N_SHARDS; i++) {
        g_mutex_init(&w->shards[i].lock);
        w->shards[i].pending = groups_new();
    }
    return w;
}

/* Frees what is left; the module's data destroy, once nothing is in flight. */
void mam_writer_free(MamWriter *w)
{
    if (!w)
        return;
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        if (s->n_pending)
            g_warning("mod_mam: %u messages were never archived", s->n_pending);
        g_hash_table_unref(s->pending);
        g_slist_free_full(s->waiters, g_free);
        g_mutex_clear(&s->lock);
    }
    g_mutex_clear(&w->flush_lock);
    g_free(w);
}

/* ---- waiters --------------------------------------------------------------- */

static gboolean wake(gpointer data)
{
    Waiter *wt = data;
    wt->done(wt->user_data);
    return G_SOURCE_REMOVE;
}

static void waiter_free(gpointer data)
{
    Waiter *wt = data;
    g_main_context_unref(wt->ctx);
    g_free(wt);
}

/* Takes the waiters of @s that wait for no more than @upto. Shard locked. */
static GSList *take_waiters(Shard *s, gint64 upto, GSList *ready)
{
    GSList *keep = NULL;
    for (GSList *l = s->waiters; l; l = l->next) {
        Waiter *wt = l->data;
        if (wt->target <= upto)
            ready = g_slist_prepend(ready, wt);
        else
            keep = g_slist_prepend(keep, wt);
    }
    g_slist_free(s->waiters);
    s->waiters = keep;
    return ready;
}

static void run_waiters(GSList *ready)
{
    for (GSList *l = ready; l; l = l->next) {
        Waiter *wt = l->data;
        g_main_context_invoke_full(wt->ctx, G_PRIORITY_DEFAULT, wake, wt, waiter_free);
    }
    g_slist_free(ready);
}

/* ---- a flush ----------------------------------------------------------------- */

static void flush_free(gpointer data)
{
    Flush *f = data;
    for (guint i = 0; i < N_SHARDS; i++)
        if (f->rows[i])
            g_hash_table_unref(f->rows[i]);
    g_free(f);
}

/* On a storage thread: every archive's rows, one archive after the
 * other. An archive's number (a user's or a room's) is looked up (or
 * created) once per archive per flush; for a user that lookup is also
 * the check that the account still exists: the rows of a removed
 * account are dropped here. */
static gboolean flush_work(MkDbConn *conn, gpointer data, GError **error)
{
    Flush *f = data;
    g_autoptr(GPtrArray) rows = g_ptr_array_sized_new(f->n);
    for (guint i = 0; i < N_SHARDS; i++) {
        if (!f->rows[i])
            continue;
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, f->rows[i]);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
            GPtrArray *group = value;
            MamRow *first = group->pdata[0];
            gint64 number;
            if (first->archive.room
                    ? !mam_db_room_number(conn, first->archive.room, &number, error)
                    : !mam_db_archive_number(conn, first->archive.username, first->archive.domain,
                                             TRUE, &number, error))
                return FALSE;
            if (number == 0)
                continue; /* the account is gone */
            for (guint k = 0; k < group->len; k++)
                ((MamRow *)group->pdata[k])->number = number;
            g_ptr_array_extend(rows, group, NULL, NULL);
        }
    }
    return mam_db_insert(conn, rows, f->w->batch_size, error);
}

static void flush_start(MamWriter *w, gboolean separate);

/* Whether a flush is due: an archive's batch is queued, or rows a waiter
 * needs. */
static gboolean flush_due(MamWriter *w)
{
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        g_mutex_lock(&s->lock);
        gboolean needed = s->full || (s->waiters && s->n_pending);
        g_mutex_unlock(&s->lock);
        if (needed)
            return TRUE;
    }
    return FALSE;
}

static void flush_done(const GError *error, gpointer data)
{
    Flush *f = data;
    MamWriter *w = f->w;
    GSList *ready = NULL;

    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        if (!f->rows[i])
            continue;
        g_mutex_lock(&s->lock);
        if (error) {
            /* Back to the front of their groups, in order, for the next
             * attempt (which the retry pause, not a full group, starts). */
            GHashTableIter it;
            gpointer value;
            g_hash_table_iter_init(&it, f->rows[i]);
            while (g_hash_table_iter_next(&it, NULL, &value)) {
                GPtrArray *group = value;
                s->n_pending += group->len;
                g_hash_table_iter_steal(&it);
                groups_put_front(s->pending, group);
                s->full |= group->len >= w->batch_size;
            }
        } else {
            s->settled = MAX(s->settled, f->end[i]);
        }
        /* After a failure, queries waiting for these rows go ahead: they
         * read what the database has rather than wait for it to return. */
        ready = take_waiters(s, error ? f->end[i] : s->settled, ready);
        g_mutex_unlock(&s->lock);
    }

    g_mutex_lock(&w->flush_lock);
    if (!f->separate)
        w->in_flight = FALSE;
    if (error) {
        w->failures++;
        guint pause = MIN(RETRY_FIRST_MS << MIN(w->failures - 1, 10u), RETRY_MAX_MS);
        w->retry_at_us = g_get_monotonic_time() + (gint64)pause * 1000;
        if (w->failures == 1 || w->failures % 10 == 0)
            g_warning("mod_mam: writing %u archived messages failed (attempt %u, retrying in "
                      "%u ms): %s",
                      f->n, w->failures, pause, error->message);
        mk_counter_add(w->counters.failed_batches, 1);
    } else {
        w->failures = 0;
        w->retry_at_us = 0;
        g_atomic_int_add(&w->queued, -(gint)f->n);
        mk_counter_add(w->counters.written, f->n);
        mk_counter_add(w->counters.batches, 1);
    }
    g_mutex_unlock(&w->flush_lock);
    run_waiters(ready);
    /* What gathered meanwhile goes at once when it is a batch or needed. */
    if (!error && flush_due(w))
        flush_start(w, FALSE);
}

/* Takes every shard's rows and writes them. Without @separate, only when
 * no flush is in flight and the retry pause is over. No shard locked. */
static void flush_start(MamWriter *w, gboolean separate)
{
    g_mutex_lock(&w->flush_lock);
    if (!separate && (w->in_flight || g_get_monotonic_time() < w->retry_at_us)) {
        g_mutex_unlock(&w->flush_lock);
        return;
    }
    if (!separate)
        w->in_flight = TRUE;
    g_mutex_unlock(&w->flush_lock);

    Flush *f = g_new0(Flush, 1);
    f->w = w;
    f->separate = separate;
    for (guint i = 0; i < N_SHARDS; i++) {
        Shard *s = &w->shards[i];
        g_mutex_lock(&s->lock);
        if (s->n_pending) {
            f->rows[i] = g_steal_pointer(&s->pending);
            s->pending = groups_new();
            f->n += s->n_pending;
            s->n_pending = 0;
            s->full = FALSE;
        }
        f->end[i] = s->added;
        g_mutex_unlock(&s->lock);
    }
    if (f->n == 0) {
        if (!separate) {
            g_mutex_lock(&w->flush_lock);
            w->in_flight = FALSE;
            g_mutex_unlock(&w->flush_lock);
        }
        flush_free(f);
        return;
    }
    mk_db_transaction_run(w->mod, flush_work, flush_done, f, flush_free);
}

/* ---- the writer's API ---------------------------------------------------- */

gboolean mam_writer_add(MamWriter *w, MamRow *row)
{
    gint queued = g_atomic_int_add(&w->queued, 1);
    if (queued >= w->max_pending) {
        g_atomic_int_add(&w->queued, -1);
        mk_counter_add(w->counters.dropped, 1);
        /* One line per thousand refused rows: the metric has the count. */
        if (mk_counter_get(w->counters.dropped) % 1000 == 1)
            g_warning("mod_mam: the archive queue is full (max_pending = %d): a message to "
                      "%s was delivered but not archived",
                      w->max_pending,
                      row->archive.room ? row->archive.room : row->archive.username);
        mam_row_free(row);
        return FALSE;
    }
    Shard *s = shard_of(w, &row->archive);
    g_mutex_lock(&s->lock);
    GPtrArray *group = g_hash_table_lookup(s->pending, &row->archive);
    if (group) {
        g_ptr_array_add(group, row);
    } else {
        group = g_ptr_array_new_with_free_func((GDestroyNotify)mam_row_free);
        g_ptr_array_add(group, row);
        g_hash_table_insert(s->pending, &row->archive, group);
    }
    gboolean full = group->len >= w->batch_size;
    s->full |= full;
    s->n_pending++;
    s->added++;
    g_mutex_unlock(&s->lock);
    /* After stop() the flush timer is gone: a late row is written at once. */
    if (g_atomic_int_get(&w->stopped))
        flush_start(w, TRUE);
    else if (full)
        flush_start(w, FALSE);
    return TRUE;
}

void mam_writer_sync(MamWriter *w, const MamArchive *a, MamSynced done, gpointer user_data)
{
    Shard *s = shard_of(w, a);
    g_mutex_lock(&s->lock);
    if (s->settled == s->added) {
        g_mutex_unlock(&s->lock);
        done(user_data);
        return;
    }
    Waiter *wt = g_new0(Waiter, 1);
    wt->target = s->added;
    wt->ctx = g_main_context_ref_thread_default();
    wt->done = done;
    wt->user_data = user_data;
    s->waiters = g_slist_prepend(s->waiters, wt);
    g_mutex_unlock(&s->lock);
    /* Now, not at the next tick: a client waits. When a flush is in
     * flight, its completion starts the next one for this waiter. */
    flush_start(w, FALSE);
}

/* The flush timer's work: whatever waits. Main thread. */
void mam_writer_tick(MamWriter *w)
{
    if (g_atomic_int_get(&w->queued) > 0)
        flush_start(w, FALSE);
}

/* At stop: every pending row goes to the storage pool, which the core
 * drains before the process exits, so SIGTERM loses nothing queued. */
void mam_writer_stop(MamWriter *w)
{
    g_atomic_int_set(&w->stopped, TRUE);
    flush_start(w, TRUE);
}

gint mam_writer_queued(MamWriter *w)
{
    return g_atomic_int_get(&w->queued);
}
