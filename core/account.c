/* Accounts for modules (mk-account.h): the auth backend's register,
 * password change and removal, run on the auth thread pool (key
 * derivation is deliberately slow and libdbi blocks), with the completion
 * back on the caller's thread. */
#include "auth.h"
#include "authguard.h"
#include "db.h"
#include "modules.h"
#include "server.h"
#include "worker.h"
#include <gio/gio.h>
#include <gnutls/gnutls.h>
#include <string.h>

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-account-error-quark, mk_account_error)
/* clang-format on */

typedef enum {
    ACCOUNT_REGISTER,
    ACCOUNT_SET_PASSWORD,
    ACCOUNT_REMOVE,
    ACCOUNT_CHECK,
} AccountOp;

typedef struct {
    MkPoolJob job; /* first: the auth pool calls job.run */
    AccountOp op;
    char *username, *domain, *password;
    MkWorker *worker;  /* the caller's worker, or NULL ... */
    GMainContext *ctx; /* ... then its thread-default context */
    MkAccountDone done;
    gpointer user_data;
    GDestroyNotify destroy;
    MkModule *mod; /* reference: keeps the module's data alive */
    GError *error;
    MkAddrKey peer; /* ACCOUNT_CHECK: whom the login limits count */
} AccountJob;

static void job_free(gpointer data)
{
    AccountJob *job = data;
    if (job->destroy)
        job->destroy(job->user_data);
    if (job->password) {
        gnutls_memset(job->password, 0, strlen(job->password));
        g_free(job->password);
    }
    g_free(job->username);
    g_free(job->domain);
    g_clear_error(&job->error);
    if (job->ctx)
        g_main_context_unref(job->ctx);
    mk_module_unref(job->mod); /* last: may free the data @destroy used */
    g_free(job);
}

/* The public error domain: the auth codes, anything else FAILED. */
static void to_account_error(GError **error)
{
    GError *e = *error;
    if (!e || e->domain == MK_ACCOUNT_ERROR)
        return;
    int code = MK_ACCOUNT_ERROR_FAILED;
    if (e->domain == MK_AUTH_ERROR) {
        switch ((MkAuthErrorCode)e->code) {
        case MK_AUTH_ERROR_NO_USER:
            code = MK_ACCOUNT_ERROR_NO_USER;
            break;
        case MK_AUTH_ERROR_EXISTS:
            code = MK_ACCOUNT_ERROR_EXISTS;
            break;
        case MK_AUTH_ERROR_INVALID:
            code = MK_ACCOUNT_ERROR_INVALID;
            break;
        }
    }
    e->domain = MK_ACCOUNT_ERROR;
    e->code = code;
}

/* On the caller's thread: the remove_user hook after a removal, then the
 * module's callback. */
static void job_complete(gpointer data)
{
    AccountJob *job = data;
    MkServer *srv = mk_server_get();
    if (!job->error && job->op == ACCOUNT_REMOVE && srv) {
        g_autoptr(MkJid) bare = mk_jid_new_from_parts(job->username, job->domain, NULL, NULL);
        if (bare) {
            MkHookCall call = {.domain = job->domain, .from = bare};
            mk_hooks_run(srv->modules, MK_HOOK_REMOVE_USER, &call);
            mk_hook_call_clear(&call);
        }
    }
    if (job->done)
        job->done(job->error, job->user_data);
    job_free(job);
}

static gboolean job_complete_source(gpointer data)
{
    job_complete(data);
    return G_SOURCE_REMOVE;
}

/* Sends @job back to its caller's thread, where job_complete runs. */
static void job_return(AccountJob *job)
{
    if (job->worker) {
        mk_worker_post(job->worker, job_complete, job, job_free);
        return;
    }
    /* An idle source, not g_main_context_invoke: see db-async.c. */
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, job_complete_source, job, NULL);
    g_source_attach(src, job->ctx);
    g_source_unref(src);
}

/* On the auth pool. */
static void job_run(gpointer data)
{
    AccountJob *job = data;
    MkServer *srv = mk_server_get();
    MkDbConn *conn = mk_db_acquire(srv->db, &job->error);
    if (conn) {
        MkConfigData *cfg = srv->config;
        switch (job->op) {
        case ACCOUNT_REGISTER:
            mk_auth_register(conn, job->username, job->domain, job->password, cfg->password_plain,
                             cfg->scram_iterations, &job->error);
            break;
        case ACCOUNT_SET_PASSWORD:
            mk_auth_set_password(conn, job->username, job->domain, job->password,
                                 cfg->password_plain, cfg->scram_iterations, &job->error);
            break;
        case ACCOUNT_REMOVE:
            mk_auth_unregister(conn, job->username, job->domain, &job->error);
            break;
        case ACCOUNT_CHECK: {
            MkAuthGuard *guard = mk_server_auth_guard(srv);
            if (guard && !mk_auth_guard_address_ok(guard, &job->peer)) {
                g_set_error_literal(&job->error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_THROTTLED,
                                    "too many failed logins from this address; try later");
                break;
            }
            g_autoptr(GError) local = NULL;
            g_autoptr(MkCredentials) creds = mk_auth_get(conn, job->username, job->domain, &local);
            if (local && !g_error_matches(local, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER) &&
                !g_error_matches(local, MK_AUTH_ERROR, MK_AUTH_ERROR_INVALID)) {
                job->error = g_steal_pointer(&local);
                break;
            }
            const char *account = creds ? creds->username : job->username;
            if (guard && !mk_auth_guard_account_ok(guard, &job->peer, account, job->domain)) {
                g_set_error_literal(&job->error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_THROTTLED,
                                    "too many failed logins for this account; try later");
                break;
            }
            /* An unknown user costs what a wrong password costs. */
            guint dummy = cfg->password_plain ? MK_AUTH_DUMMY_PLAIN : cfg->scram_iterations;
            if (!mk_auth_check_password(creds, job->password, dummy)) {
                g_set_error_literal(&job->error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_NOT_AUTHORIZED,
                                    "not authorized");
                if (guard)
                    mk_auth_guard_failed(guard, &job->peer, account, job->domain);
            } else if (guard) {
                mk_auth_guard_succeeded(guard, &job->peer, account, job->domain);
            }
            break;
        }
        }
        mk_db_release(srv->db, conn);
    }
    to_account_error(&job->error);
    job_return(job);
}

static void account_submit(MkModule *mod, AccountOp op, const char *username, const char *domain,
                           const char *password, const MkAddrKey *peer, MkAccountDone done,
                           gpointer user_data, GDestroyNotify destroy)
{
    MkServer *srv = mk_server_get();
    AccountJob *job = g_new0(AccountJob, 1);
    job->job.run = job_run;
    job->op = op;
    job->username = g_strdup(username);
    job->domain = g_strdup(domain);
    job->password = g_strdup(password);
    job->done = done;
    job->user_data = user_data;
    job->destroy = destroy;
    job->mod = mk_module_ref(mod);
    if (peer)
        job->peer = *peer;
    job->worker = mk_worker_self();
    if (!job->worker)
        job->ctx = g_main_context_ref_thread_default();
    if (!username || !domain || !mk_module_serves_domain(mod, domain)) {
        g_set_error(&job->error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_INVALID,
                    "%s is not a domain of host type %s", domain ? domain : "(null)",
                    mk_module_host_type(mod));
        /* Still asynchronous: callers never see @done run inside the call. */
        job_return(job);
        return;
    }
    if (!mk_server_auth_push(srv, &job->job)) {
        /* Shutdown began: the pool is drained and takes nothing more. */
        g_set_error_literal(&job->error, MK_ACCOUNT_ERROR, MK_ACCOUNT_ERROR_FAILED,
                            "the server is shutting down");
        job_return(job);
    }
}

/* Public module API (mk-account.h). Any thread with a Meerkat main context. */
void mk_account_register(MkModule *mod, const char *username, const char *domain,
                         const char *password, MkAccountDone done, gpointer user_data,
                         GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && password != NULL);
    account_submit(mod, ACCOUNT_REGISTER, username, domain, password, NULL, done, user_data,
                   destroy);
}

/* Public module API (mk-account.h). */
void mk_account_set_password(MkModule *mod, const char *username, const char *domain,
                             const char *password, MkAccountDone done, gpointer user_data,
                             GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && password != NULL);
    account_submit(mod, ACCOUNT_SET_PASSWORD, username, domain, password, NULL, done, user_data,
                   destroy);
}

/* Public module API (mk-account.h). */
void mk_account_remove(MkModule *mod, const char *username, const char *domain, MkAccountDone done,
                       gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL);
    account_submit(mod, ACCOUNT_REMOVE, username, domain, NULL, NULL, done, user_data, destroy);
}

/* Public module API (mk-account.h, Since ABI 2.1). */
void mk_account_check_password(MkModule *mod, const char *username, const char *domain,
                               const char *password, const char *peer, MkAccountDone done,
                               gpointer user_data, GDestroyNotify destroy)
{
    g_return_if_fail(mod != NULL && password != NULL);
    MkAddrKey key;
    mk_addr_key_from_string(&key, peer);
    account_submit(mod, ACCOUNT_CHECK, username, domain, password, &key, done, user_data, destroy);
}
