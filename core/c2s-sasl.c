/* STARTTLS and SASL on client streams (RFC 6120 5 and 6): which
 * mechanisms a stream offers, the steps, and their hand-off to the auth
 * pool. A step that reads the account runs there with the connection's
 * input paused; its result comes back through the worker's mailbox. The
 * others (SCRAM's final message) run on the worker. */
#include "c2s-priv.h"
#include "metrics.h"
#include "listener.h"
#include "log.h"
#include "modules.h"
#include "preload.h"
#include "scram-server.h"
#include "server.h"
#include "tls.h"
#include <string.h>

gboolean c2s_mech_allowed(MkC2s *c, const char *mech)
{
    MkConfigData *cfg = c->cs->srv->config;
    gboolean tls = mk_conn_is_tls(c->conn);

    if (g_str_equal(mech, "ANONYMOUS"))
        return cfg->anonymous_hosts &&
               g_strv_contains((const char *const *)cfg->anonymous_hosts, c->domain);
    if (!g_strv_contains((const char *const *)cfg->mechanisms, mech))
        return FALSE;
    if (g_str_has_suffix(mech, "-PLUS"))
        return tls && mk_conn_channel_binding_type(c->conn) != NULL;
    return mk_sasl_supports(c->cs->sasl, mech);
}

void c2s_starttls(MkC2s *c)
{
    if (mk_conn_is_tls(c->conn) || !c->listen->creds || c->listen->lc.tls == MK_TLS_NONE ||
        c->username) {
        c2s_write(c, "<failure xmlns='" NS_TLS "'/>");
        c2s_close(c, NULL);
        return;
    }
    c2s_write(c, "<proceed xmlns='" NS_TLS "'/>");
    c->state = C2S_TLS;
    c->tls_started_us = g_get_monotonic_time();
    c->restart = TRUE;
    mk_conn_start_tls(c->conn, c->listen->creds);
}

typedef struct {
    MkPoolJob job;
    MkC2s *c; /* ref held; touched only on its worker */
    MkSaslSession *ss;
    char *input;
    MkSaslResult result;
    MkPreloads *preloads; /* auth_preload's, when the account is known */
} SaslJob;

/* The reason of a failure at info level, at a bounded rate (a guessing
 * client must not flood the log); lines left out are counted in the next
 * one and in the metric core.auth.log_suppressed. */
static void log_failure(MkC2s *c, const char *condition, const char *reason)
{
    guint64 suppressed;
    if (!mk_auth_guard_log_ok(c->cs->guard, &suppressed))
        return;
    if (suppressed)
        C2S_LOG(c, G_LOG_LEVEL_INFO,
                "authentication failed: %s (%s) [%" G_GUINT64_FORMAT
                " failure lines suppressed before this one]",
                condition, reason, suppressed);
    else
        C2S_LOG(c, G_LOG_LEVEL_INFO, "authentication failed: %s (%s)", condition, reason);
}

/* A SASL <failure/>. The stream's failures are counted: at the
 * failures_per_stream-th the stream ends with policy-violation (RFC 6120
 * 6.4.5). */
static void sasl_failure(MkC2s *c, const char *condition, const char *reason)
{
    mk_metrics_auth(c->sasl ? mk_sasl_session_mechanism(c->sasl) : NULL, FALSE);
    log_failure(c, condition, reason);
    g_autofree char *msg =
        g_strdup_printf("<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
    c2s_write(c, msg);
    g_clear_pointer(&c->sasl, mk_sasl_session_free);
    g_clear_pointer(&c->preloads, mk_preloads_free);
    if (++c->sasl_failures >= c->cs->srv->config->auth_failures_per_stream) {
        __atomic_add_fetch(&c->cs->stream_failure_closes, 1, __ATOMIC_RELAXED);
        c2s_close(c, "policy-violation");
    }
}

/* Answers the client with the outcome of a step. On the worker, after
 * the auth pool or directly (mk_sasl_step_blocks). */
static void sasl_deliver(MkC2s *c, MkSaslResult *r)
{
    switch (r->status) {
    case MK_SASL_CONTINUE: {
        g_autofree char *msg = g_strdup_printf("<challenge xmlns='" NS_SASL "'>%s</challenge>",
                                               r->out_b64 ? r->out_b64 : "=");
        c2s_write(c, msg);
        break;
    }
    case MK_SASL_SUCCESS: {
        g_autofree char *msg =
            r->out_b64 ? g_strdup_printf("<success xmlns='" NS_SASL "'>%s</success>", r->out_b64)
                       : g_strdup("<success xmlns='" NS_SASL "'/>");
        c->username = g_steal_pointer(&r->username);
        mk_metrics_auth(r->mechanism, TRUE);
        g_clear_pointer(&c->sasl, mk_sasl_session_free);
        c2s_limits_leave(c);
        c2s_write(c, msg);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "authenticated as %s@%s (%s)", c->username, c->domain,
                r->mechanism ? r->mechanism : "?");
        /* The client restarts the stream now (RFC 6120 6.4.6). From
         * inside the parser's callback this takes effect once the
         * current input has been handed over. */
        mk_xml_stream_reset(c->xs);
        c->state = C2S_WAIT_STREAM;
        c->header_sent = FALSE;
        break;
    }
    case MK_SASL_FAILURE:
        sasl_failure(c, r->condition, r->reason ? r->reason : "no reason given");
        break;
    }
}

static void sasl_job_done(gpointer data)
{
    SaslJob *job = data;
    MkC2s *c = job->c;

    c->sasl_busy = FALSE;
    if (c->state != C2S_CLOSING) {
        if (job->preloads) {
            mk_preloads_free(c->preloads);
            c->preloads = g_steal_pointer(&job->preloads);
        }
        /* What the client pipelined after this step (XEP-0305): parsed
         * once the answer is out, on the restarted stream after a
         * success. */
        g_autoptr(GBytes) rest = mk_xml_stream_take_rest(c->xs);
        mk_conn_pause(c->conn, FALSE);
        sasl_deliver(c, &job->result);
        gsize len = 0;
        const char *bytes = rest ? g_bytes_get_data(rest, &len) : NULL;
        if (len && c->state != C2S_CLOSING)
            c2s_feed(c, bytes, len);
    }
    mk_preloads_free(job->preloads);
    mk_sasl_result_clear(&job->result);
    g_free(job->input);
    c2s_unref(c);
    g_free(job);
}

static void sasl_job_free(gpointer data)
{
    /* The worker stopped before the result could be delivered. */
    SaslJob *job = data;
    mk_preloads_free(job->preloads);
    mk_sasl_result_clear(&job->result);
    g_free(job->input);
    g_free(job);
}

/* The step, then auth_preload, on one connection. */
static gboolean sasl_job_reads(MkDbConn *conn, gpointer data, GError **error)
{
    SaslJob *job = data;
    mk_sasl_session_set_conn(job->ss, conn);
    mk_sasl_step(job->ss, job->input, &job->result);
    mk_sasl_session_set_conn(job->ss, NULL);
    /* Modules read what the session will need at once in this job, not in
     * one more hand-off to the storage pool after bind (auth_preload). */
    const char *account =
        job->result.status != MK_SASL_FAILURE ? mk_sasl_session_account(job->ss) : NULL;
    if (account)
        job->preloads = mk_preloads_run(job->c->cs->srv, conn, account, job->c->domain);
    return TRUE;
}

/* Runs on the auth pool. */
static void sasl_job_run(gpointer data)
{
    SaslJob *job = data;
    MkServer *srv = job->c->cs->srv;
    g_autoptr(GError) error = NULL;
    MkDbConn *conn;
    /* With preloads, the credentials and the modules' reads share one
     * connection and (sqlite) one set of file locks. */
    if (!mk_preloads_wanted(srv, job->c->domain)) {
        /* The step takes a connection itself. */
        mk_sasl_step(job->ss, job->input, &job->result);
    } else if (!(conn = mk_db_acquire(srv->db, &error))) {
        g_warning("SASL: cannot reach the database: %s", error->message);
        job->result.status = MK_SASL_FAILURE;
        job->result.condition = "temporary-auth-failure";
    } else {
        mk_db_conn_reads(conn, sasl_job_reads, job, NULL);
        mk_db_release(srv->db, conn);
    }
    mk_worker_post(job->c->worker, sasl_job_done, job, sasl_job_free);
}

/* Runs a step: on the auth pool when it may block (reading the
 * account), otherwise here, which saves SCRAM's client-final message a
 * thread hand-off. */
static void sasl_step(MkC2s *c, const char *input)
{
    if (!mk_sasl_step_blocks(c->sasl)) {
        MkSaslResult r;
        mk_sasl_step(c->sasl, input, &r);
        sasl_deliver(c, &r);
        mk_sasl_result_clear(&r);
        return;
    }
    SaslJob *job = g_new0(SaslJob, 1);
    job->job.run = sasl_job_run;
    job->c = c2s_ref(c);
    job->ss = c->sasl;
    job->input = g_strdup(input);
    if (!mk_server_auth_push(c->cs->srv, &job->job)) {
        /* Shutdown began (the auth pool is drained): this stream is about
         * to be closed with system-shutdown (RFC 6120 4.9.3.22) anyway;
         * close it now rather than leave the client waiting. */
        c2s_close(c, "system-shutdown");
        sasl_job_free(job);
        c2s_unref(c); /* the job's */
        return;
    }
    /* Only this worker delivers the result, after this returns. Bytes
     * after this element wait for it (sasl_job_done). */
    c->sasl_busy = TRUE;
    /* Only when the client did pipeline: a hand-over costs a parser
     * primed anew for the next bytes (~11k instructions). */
    if (mk_xml_stream_has_more_input(c->xs))
        mk_xml_stream_hand_over(c->xs);
    mk_conn_pause(c->conn, TRUE);
}

/* Whether the features of this stream listed a -PLUS mechanism: then a
 * SCRAM client's 'y' flag (it could bind but believes we cannot) is a
 * downgrade, refused unless the listener's scram_y_flag says otherwise. */
static gboolean plus_offered(MkC2s *c)
{
    for (char **m = c->cs->srv->config->mechanisms; m && *m; m++)
        if (g_str_has_suffix(*m, "-PLUS") && c2s_mech_allowed(c, *m))
            return TRUE;
    return FALSE;
}

static int cmp_strv(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* XEP-0474's input: the mechanisms the features listed, sorted, joined
 * by 0x1E; then 0x1F and the binding types offered (XEP-0440), likewise.
 * Returns: (transfer full). */
static GString *advertised(MkC2s *c, const char *cb_type)
{
    g_autoptr(GPtrArray) mechs = g_ptr_array_new();
    for (char **m = c->cs->srv->config->mechanisms; m && *m; m++)
        if (!g_str_equal(*m, "ANONYMOUS") && c2s_mech_allowed(c, *m))
            g_ptr_array_add(mechs, *m);
    if (c2s_mech_allowed(c, "ANONYMOUS"))
        g_ptr_array_add(mechs, (gpointer) "ANONYMOUS");
    g_ptr_array_sort(mechs, cmp_strv);
    GString *s = g_string_sized_new(128);
    for (guint i = 0; i < mechs->len; i++) {
        if (i)
            g_string_append_c(s, 0x1e);
        g_string_append(s, g_ptr_array_index(mechs, i));
    }
    if (cb_type) {
        g_string_append_c(s, 0x1f);
        g_string_append(s, cb_type);
    }
    return s;
}

/* The h= value for @mech on this stream, computed once per
 * configuration and kind of stream. Returns: (transfer full) (nullable) */
static char *ssdp(MkC2s *c, const char *mech)
{
    MkC2sServer *cs = c->cs;
    const char *cb_type = mk_conn_channel_binding_type(c->conn);
    guint cb = !cb_type ? 0 : g_str_equal(cb_type, "tls-unique") ? 1 : 2;
    guint anon = c2s_mech_allowed(c, "ANONYMOUS");
    guint sha1 = g_str_has_prefix(mech, "SCRAM-SHA-1");
    g_mutex_lock(&cs->ssdp_lock);
    if (cs->ssdp_config != cs->srv->config) {
        for (guint i = 0; i < G_N_ELEMENTS(cs->ssdp); i++)
            for (guint j = 0; j < 2; j++)
                for (guint k = 0; k < 2; k++)
                    g_clear_pointer(&cs->ssdp[i][j][k], g_free);
        cs->ssdp_config = cs->srv->config;
    }
    char **slot = &cs->ssdp[cb][anon][sha1];
    if (!*slot) {
        g_autoptr(GString) adv = advertised(c, cb_type);
        *slot = mk_scram_ssdp_hash(sha1 ? MK_SCRAM_SHA1 : MK_SCRAM_SHA256, adv->str, adv->len);
    }
    char *value = g_strdup(*slot); /* another worker may replace it after a reload */
    g_mutex_unlock(&cs->ssdp_lock);
    return value;
}

/* The listener's scram_y_flag for this stream's binding type. */
static gboolean accept_y(MkC2s *c, const char *cb_type)
{
    switch (c->listen->lc.scram_y_flag) {
    case MK_SCRAM_Y_ACCEPT:
        return TRUE;
    case MK_SCRAM_Y_TLS13:
        return g_strcmp0(cb_type, "tls-exporter") == 0;
    case MK_SCRAM_Y_REFUSE:
    default:
        return FALSE;
    }
}

static void handle_auth(MkC2s *c, MkXml *el)
{
    const char *mech = mk_xml_get_attr(el, "mechanism");

    if (c->username) {
        c2s_close(c, "policy-violation");
        return;
    }
    if (!mk_conn_is_tls(c->conn) && c->listen->lc.tls == MK_TLS_REQUIRED) {
        sasl_failure(c, "encryption-required", "<auth/> before STARTTLS");
        return;
    }
    if (c->sasl || c->sasl_busy) {
        c2s_close(c, "policy-violation");
        return;
    }
    if (!mech || !c2s_mech_allowed(c, mech)) {
        sasl_failure(c, "invalid-mechanism", "mechanism not offered on this stream");
        return;
    }
    g_autoptr(GBytes) cb = NULL;
    const char *cb_type = NULL;
    if (mk_conn_is_tls(c->conn) && plus_offered(c)) {
        cb_type = mk_conn_channel_binding_type(c->conn);
        cb = cb_type ? mk_conn_channel_binding(c->conn, cb_type) : NULL;
    }
    c->sasl = mk_sasl_session_new(c->cs->sasl, mech, c->domain, cb_type, cb);
    if (!c->sasl) {
        sasl_failure(c, "invalid-mechanism", "mechanism not supported");
        return;
    }
    mk_sasl_session_set_peer(c->sasl, &c->addr);
    if (g_str_has_prefix(mech, "SCRAM-")) {
        g_autofree char *h = ssdp(c, mech);
        mk_sasl_session_set_scram_policy(c->sasl, accept_y(c, cb_type), h);
    }
    g_autofree char *text = mk_xml_text(el);
    sasl_step(c, g_strstrip(text));
}

void c2s_sasl_element(MkC2s *c, MkXml *el)
{
    const char *name = mk_xml_name(el);
    if (g_str_equal(name, "auth")) {
        handle_auth(c, el);
    } else if (g_str_equal(name, "response") && c->sasl && !c->sasl_busy) {
        g_autofree char *text = mk_xml_text(el);
        sasl_step(c, g_strstrip(text));
    } else if (g_str_equal(name, "abort") && c->sasl && !c->sasl_busy) {
        sasl_failure(c, "aborted", "aborted by the client");
    } else {
        c2s_close(c, "policy-violation");
    }
}

/* ---- limits (docs/security.md) ----------------------------------------- */

/* The core's counters for the metrics dump. Any thread. */
static void limits_metrics(GString *out, gpointer data)
{
    MkC2sServer *cs = data;
    MkAuthGuardStats st;
    mk_auth_guard_stats(cs->guard, &st);
    gint64 refused, dropped;
    mk_listener_fd_stats(&refused, &dropped);
    const struct {
        const char *name;
        gint64 value;
    } rows[] = {
        {"auth.failures", st.failures},
        {"auth.throttled_address", st.throttled_address},
        {"auth.throttled_account", st.throttled_account},
        {"auth.stream_failure_closes",
         __atomic_load_n(&cs->stream_failure_closes, __ATOMIC_RELAXED)},
        {"auth.log_suppressed", st.log_suppressed},
        {"auth.guard_table_full", st.table_full},
        {"c2s.preauth_refused", st.preauth_refused},
        {"c2s.preauth_timeouts", __atomic_load_n(&cs->preauth_timeouts, __ATOMIC_RELAXED)},
        {"c2s.tls_handshake_timeouts", __atomic_load_n(&cs->tls_timeouts, __ATOMIC_RELAXED)},
        {"c2s.fd_reserve_refused", refused},
        {"c2s.fd_limit_dropped", dropped},
    };
    for (guint i = 0; i < G_N_ELEMENTS(rows); i++)
        g_string_append_printf(out, "core.%s %" G_GINT64_FORMAT "\n", rows[i].name, rows[i].value);
}

void c2s_limits_init(MkC2sServer *cs)
{
    MkConfigData *cfg = cs->srv->config;
    MkAuthGuardConfig gc = {
        .address_failures = cfg->auth_address_failures,
        .account_failures = cfg->auth_account_failures,
        .backoff_max = cfg->auth_backoff_max,
        .forget_after = cfg->auth_forget_after,
        .exempt_loopback = !cfg->auth_throttle_loopback,
    };
    cs->guard = mk_auth_guard_new(&gc);
    g_mutex_init(&cs->ssdp_lock);
    mk_sasl_set_guard(cs->sasl, cs->guard);
    if (cs->srv->modules)
        mk_metrics_set_core_source(cs->srv->modules, limits_metrics, cs);
}

void c2s_limits_free(MkC2sServer *cs)
{
    for (guint i = 0; i < G_N_ELEMENTS(cs->ssdp); i++)
        for (guint j = 0; j < 2; j++)
            for (guint k = 0; k < 2; k++)
                g_free(cs->ssdp[i][j][k]);
    g_mutex_clear(&cs->ssdp_lock);
    mk_sasl_set_guard(cs->sasl, NULL);
    g_clear_pointer(&cs->guard, mk_auth_guard_free);
}

gboolean c2s_limits_accept(MkC2s *c, const struct sockaddr_storage *peer)
{
    mk_addr_key_from_sockaddr(&c->addr, peer);
    if (!mk_auth_guard_preauth_enter(c->cs->guard, &c->addr, c->listen->lc.max_preauth_per_address))
        return FALSE;
    c->preauth_counted = TRUE;
    return TRUE;
}

void c2s_limits_leave(MkC2s *c)
{
    if (!c->preauth_counted)
        return;
    c->preauth_counted = FALSE;
    mk_auth_guard_preauth_leave(c->cs->guard, &c->addr);
}

gboolean c2s_limits_sweep(MkC2s *c, gint64 now)
{
    const MkListenConfig *lc = &c->listen->lc;
    if (c->state == C2S_TLS && c->tls_started_us && lc->tls_handshake_timeout &&
        now - c->tls_started_us > (gint64)lc->tls_handshake_timeout * G_USEC_PER_SEC) {
        __atomic_add_fetch(&c->cs->tls_timeouts, 1, __ATOMIC_RELAXED);
        C2S_LOG(c, G_LOG_LEVEL_DEBUG, "TLS handshake timed out");
        c2s_close(c, NULL); /* nothing can be said on a half-made session */
        return TRUE;
    }
    if (!c->username && lc->preauth_timeout &&
        now - c->created_us > (gint64)lc->preauth_timeout * G_USEC_PER_SEC) {
        __atomic_add_fetch(&c->cs->preauth_timeouts, 1, __ATOMIC_RELAXED);
        C2S_LOG(c, G_LOG_LEVEL_DEBUG, "not authenticated within %u s", lc->preauth_timeout);
        c2s_close(c, c->state == C2S_TLS ? NULL : "connection-timeout");
        return TRUE;
    }
    return FALSE;
}

/* See c2s.h. */
MkAuthGuard *mk_c2s_server_guard(MkC2sServer *cs)
{
    return cs ? cs->guard : NULL;
}
