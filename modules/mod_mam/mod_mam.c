/* mod_mam: Message Archive Management (XEP-0313) for 1:1 chats, with
 * stanza IDs (XEP-0359), preferences, retraction (XEP-0424) and
 * retention. Archiving is in mam-archive.c, the batched writer in
 * mam-writer.c, the IQs in mam-iq.c, SQL in mam-db.c; docs/mod_mam.md
 * is the operator's page. */
#include "mam.h"

#define NS_SID "urn:xmpp:sid:0"

/* ---- preferences cache --------------------------------------------------- */

/* Storage thread: a user's stored preferences, or the default. */
static gboolean prefs_load(MkDbConn *conn, const char *key, MkJid *user, gpointer *value,
                           gpointer user_data, GError **error)
{
    Mam *m = user_data;
    g_autoptr(MamPrefs) p = NULL;
    if (user && mk_jid_node(user) &&
        !mam_db_prefs_get(conn, mk_jid_node(user), mk_jid_domain(user), &p, error))
        return FALSE;
    if (!p)
        p = mam_prefs_new(NULL, NULL, NULL);
    if (user && !mam_prefs_load_contacts(p, m->mod, conn, user, error))
        return FALSE;
    *value = g_steal_pointer(&p);
    return TRUE;
}

static gpointer prefs_ref(gpointer value)
{
    return mam_prefs_ref(value);
}

/* A failed load archives by the server's default rather than hold the
 * user's messages until the database answers. */
static gpointer prefs_fallback(const char *key, gpointer user_data)
{
    return mam_prefs_new(NULL, NULL, NULL);
}

static const MkUserCacheClass prefs_class = {
    .load = prefs_load,
    .ref = prefs_ref,
    .unref = (GDestroyNotify)mam_prefs_unref,
    .fallback = prefs_fallback,
    .flags = MK_USER_CACHE_SESSIONS,
};

/* ---- timers ------------------------------------------------------------------ */

static gboolean on_flush(gpointer user_data)
{
    Mam *m = user_data;
    mam_writer_tick(m->writer);
    return G_SOURCE_CONTINUE;
}

typedef struct {
    Mam *m;
    guint64 deleted;
} PurgeOp;

static gboolean purge_work(MkDbConn *conn, gpointer data, GError **error)
{
    PurgeOp *op = data;
    gint64 cutoff = g_get_real_time() - op->m->max_age_days * 86400 * G_USEC_PER_SEC;
    return mam_db_purge(conn, mam_id_for_time(cutoff), op->m->purge_batch, &op->deleted, error);
}

static gboolean on_purge(gpointer user_data);

static void purge_done(const GError *error, gpointer data)
{
    PurgeOp *op = data;
    if (error) {
        g_warning("mod_mam: retention purge: %s", error->message);
        return;
    }
    mk_counter_add(op->m->purged, (gint64)op->deleted);
    /* A full batch: more is due; go on soon, one small batch at a time, so
     * that the purge never holds the database for long. */
    if (op->deleted >= op->m->purge_batch && mk_module_is_running(op->m->mod))
        mk_timer_post(op->m->mod, on_purge, op->m, NULL);
}

static gboolean on_purge(gpointer user_data)
{
    Mam *m = user_data;
    PurgeOp *op = g_new0(PurgeOp, 1);
    op->m = m;
    mk_db_transaction_run(m->mod, purge_work, purge_done, op, g_free);
    return G_SOURCE_CONTINUE;
}

/* ---- the module ---------------------------------------------------------------- */

static void mam_free(gpointer data)
{
    Mam *m = data;
    mam_archive_free(m);
    mam_writer_free(m->writer);
    g_free(m);
}

static gboolean mam_start(MkModule *mod, GError **error)
{
    Mam *m = g_new0(Mam, 1);
    m->mod = mod;
    gint64 node = mk_config_get_int(mod, "node"); /* -1: the cluster's [cluster] node_number */
    mam_id_gen_init(&m->ids, node < 0 ? mk_cluster_node_number() : (guint)node);
    m->max_result_limit = (guint)mk_config_get_int(mod, "max_result_limit");
    m->max_age_days = mk_config_get_int(mod, "max_age_days");
    m->purge_batch = (guint)mk_config_get_int(mod, "purge_batch");
    MamWriterCounters counters = {
        .written = mk_counter_new(mod, "written"),
        .batches = mk_counter_new(mod, "batches"),
        .failed_batches = mk_counter_new(mod, "failed_batches"),
        .dropped = mk_counter_new(mod, "dropped"),
    };
    m->writer = mam_writer_new(mod, (guint)mk_config_get_int(mod, "batch_size"),
                               (guint)mk_config_get_int(mod, "max_pending"), &counters);
    m->archived = mk_counter_new(mod, "archived");
    m->queries = mk_counter_new(mod, "queries");
    m->results = mk_counter_new(mod, "results");
    m->purged = mk_counter_new(mod, "purged");
    m->retractions = mk_counter_new(mod, "retractions");
    mk_module_set_data(mod, m, mam_free);

    m->queue = mk_user_queue_new(mod);
    m->prefs = mk_user_cache_new(mod, m->queue, &prefs_class,
                                 (guint)mk_config_get_int(mod, "prefs_idle_seconds"), m);
    if (!mam_iq_start(m, error) || !mam_rooms_start(m, error) || !mam_rest_start(m, error))
        return FALSE;
    mam_archive_start(m);
    mk_timer_add(mod, (guint)mk_config_get_int(mod, "flush_interval_ms"), on_flush, m);
    if (m->max_age_days > 0) {
        mk_timer_add(mod, 60 * 1000, on_purge, m);
        mk_timer_post(mod, on_purge, m, NULL);
    }
    mk_disco_account_feature_add(mod, NS_MAM);
    mk_disco_account_feature_add(mod, NS_MAM "#extended");
    mk_disco_account_feature_add(mod, NS_SID);
    mk_disco_feature_add(mod, NS_SID);
    return TRUE;
}

static void mam_stop(MkModule *mod)
{
    Mam *m = mk_module_get_data(mod);
    mam_writer_stop(m->writer);
}

static const MkConfigKey mam_keys[] = {
    {"batch_size", MK_CONFIG_INT, "30", 1, 1000, "rows written in one INSERT"},
    {"flush_interval_ms", MK_CONFIG_INT, "500", 10, 60000,
     "how long a row may wait for its batch to fill, in milliseconds"},
    {"max_pending", MK_CONFIG_INT, "100000", 100, 10000000,
     "rows queued for writing at most; beyond, messages are delivered but not archived "
     "(logged, metric mod_mam.dropped)"},
    {"max_result_limit", MK_CONFIG_INT, "50", 1, 1000,
     "largest page a query returns (and the page size when the client names none)"},
    {"node", MK_CONFIG_INT, "-1", -1, 255,
     "this node's number, the low byte of every archive ID (unique within a cluster); "
     "-1: [cluster] node_number (0 without a cluster)"},
    {"max_age_days", MK_CONFIG_INT, "0", 0, 36500,
     "delete archived messages older than this many days (0 = keep for ever)"},
    {"purge_batch", MK_CONFIG_INT, "1000", 10, 100000,
     "rows the retention purge deletes in one transaction"},
    {"prefs_idle_seconds", MK_CONFIG_INT, "600", 1, 86400,
     "how long an offline user's preferences stay in memory after use"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,        .name = "mod_mam",  .version = "1.0", .config_keys = mam_keys,
    .migrations = mam_migrations, .start = mam_start, .stop = mam_stop,
};
