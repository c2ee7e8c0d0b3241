/* STARTTLS and SASL on client streams (RFC 6120 5 and 6): which
 * mechanisms a stream offers, the steps, and their hand-off to the auth
 * pool. A step that reads the account runs there with the connection's
 * input paused; its result comes back through the worker's mailbox. The
 * others (SCRAM's final message) run on the worker. */
#include "c2s-priv.h"
#include "log.h"
#include "preload.h"
#include "server.h"
#include "tls.h"

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

static void sasl_failure(MkC2s *c, const char *condition)
{
    g_autofree char *msg =
        g_strdup_printf("<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
    c2s_write(c, msg);
    g_clear_pointer(&c->sasl, mk_sasl_session_free);
    g_clear_pointer(&c->preloads, mk_preloads_free);
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
        g_clear_pointer(&c->sasl, mk_sasl_session_free);
        c2s_write(c, msg);
        C2S_LOG(c, G_LOG_LEVEL_INFO, "authenticated as %s@%s", c->username, c->domain);
        /* The client restarts the stream now (RFC 6120 6.4.6). From
         * inside the parser's callback this takes effect once the
         * current input has been handed over. */
        mk_xml_stream_reset(c->xs);
        c->state = C2S_WAIT_STREAM;
        c->header_sent = FALSE;
        break;
    }
    case MK_SASL_FAILURE:
        C2S_LOG(c, G_LOG_LEVEL_INFO, "authentication failed: %s", r->condition);
        sasl_failure(c, r->condition);
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
        mk_conn_pause(c->conn, FALSE);
        sasl_deliver(c, &job->result);
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
    /* Only this worker delivers the result, after this returns. */
    c->sasl_busy = TRUE;
    mk_conn_pause(c->conn, TRUE);
}

/* Whether the features of this stream listed a -PLUS mechanism: then a
 * SCRAM client's 'y' flag (it could bind but believes we cannot) is a
 * downgrade and refused. */
static gboolean plus_offered(MkC2s *c)
{
    for (char **m = c->cs->srv->config->mechanisms; m && *m; m++)
        if (g_str_has_suffix(*m, "-PLUS") && c2s_mech_allowed(c, *m))
            return TRUE;
    return FALSE;
}

static void handle_auth(MkC2s *c, MkXml *el)
{
    const char *mech = mk_xml_get_attr(el, "mechanism");

    if (c->username) {
        c2s_close(c, "policy-violation");
        return;
    }
    if (!mk_conn_is_tls(c->conn) && c->listen->lc.tls == MK_TLS_REQUIRED) {
        sasl_failure(c, "encryption-required");
        return;
    }
    if (c->sasl || c->sasl_busy) {
        c2s_close(c, "policy-violation");
        return;
    }
    if (!mech || !c2s_mech_allowed(c, mech)) {
        sasl_failure(c, "invalid-mechanism");
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
        sasl_failure(c, "invalid-mechanism");
        return;
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
        sasl_failure(c, "aborted");
    } else {
        c2s_close(c, "policy-violation");
    }
}
