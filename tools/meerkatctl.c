/* meerkatctl: account administration, directly on the database that the
 * configuration names. Safe while meerkatd runs: sqlite3 in WAL mode with
 * a busy timeout lets both write; PostgreSQL is shared anyway. */
#include "auth.h"
#include "conffile.h"
#include "db.h"
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct Ctl Ctl;
typedef int (*CtlFunc)(Ctl *ctl, char **args);

typedef struct {
    const char *name;
    const char *alias; /* the ejabberdctl name, nullable */
    int n_args;
    const char *usage;
    CtlFunc run;
} CtlVerb;

struct Ctl {
    MkConfigData *cfg;
    MkDb *db;
    MkDbConn *conn;
};

#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

static void fail(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "meerkatctl: %s\n", msg);
}

/* A password argument of "-" is read from the first line of stdin, so it
 * need not appear in the process list. */
static char *password_arg(const char *arg)
{
    if (!g_str_equal(arg, "-"))
        return g_strdup(arg);
    char buf[4096];
    if (!fgets(buf, sizeof buf, stdin))
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return g_strdup(buf);
}

static int report(gboolean ok, GError *error)
{
    if (ok)
        return EXIT_OK;
    fail("%s", error ? error->message : "failed");
    return EXIT_FAIL;
}

static int do_register(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *pw = password_arg(args[2]);
    if (!pw) {
        fail("no password on standard input");
        return EXIT_FAIL;
    }
    gboolean ok = mk_auth_register(ctl->conn, args[0], args[1], pw, ctl->cfg->password_plain,
                                   ctl->cfg->scram_iterations, &error);
    if (ok)
        fprintf(stderr, "User %s@%s successfully registered\n", args[0], args[1]);
    return report(ok, error);
}

/* One batch of register-bulk: accounts [from, to) in one transaction. */
typedef struct {
    Ctl *ctl;
    const char *prefix, *domain, *password;
    guint64 from, to;
    guint64 created, existed;
} BulkBatch;

static gboolean bulk_batch(MkDbConn *conn, gpointer user_data, GError **error)
{
    BulkBatch *b = user_data;
    for (guint64 i = b->from; i < b->to; i++) {
        g_autofree char *user = g_strdup_printf("%s%" G_GUINT64_FORMAT, b->prefix, i);
        GError *err = NULL;
        if (mk_auth_register(conn, user, b->domain, b->password, b->ctl->cfg->password_plain,
                             b->ctl->cfg->scram_iterations, &err)) {
            b->created++;
        } else if (g_error_matches(err, MK_AUTH_ERROR, MK_AUTH_ERROR_EXISTS)) {
            /* Idempotent: a re-run completes an interrupted one. */
            g_clear_error(&err);
            b->existed++;
        } else {
            g_propagate_error(error, err);
            return FALSE;
        }
    }
    return TRUE;
}

/* register-bulk PREFIX COUNT DOMAIN PASSWORD: accounts PREFIX0 ..
 * PREFIX<COUNT-1>, all with the same password (test and load-test
 * accounts), 500 to a transaction, existing ones left alone. */
static int do_register_bulk(Ctl *ctl, char **args)
{
    char *end = NULL;
    guint64 count = g_ascii_strtoull(args[1], &end, 10);
    if (!*args[1] || *end || count == 0 || count > 10000000) {
        fail("COUNT must be a number from 1 to 10000000");
        return EXIT_USAGE;
    }
    g_autofree char *pw = password_arg(args[3]);
    if (!pw) {
        fail("no password on standard input");
        return EXIT_FAIL;
    }
    BulkBatch b = {.ctl = ctl, .prefix = args[0], .domain = args[2], .password = pw};
    for (guint64 from = 0; from < count; from += 500) {
        g_autoptr(GError) error = NULL;
        b.from = from;
        b.to = MIN(count, from + 500);
        if (!mk_db_conn_transaction(ctl->conn, bulk_batch, &b, &error)) {
            fail("%s (accounts from %s%" G_GUINT64_FORMAT " not created)", error->message, args[0],
                 from);
            return EXIT_FAIL;
        }
    }
    fprintf(stderr, "%" G_GUINT64_FORMAT " accounts created, %" G_GUINT64_FORMAT " existed\n",
            b.created, b.existed);
    return EXIT_OK;
}

static int do_unregister(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    gboolean ok = mk_auth_unregister(ctl->conn, args[0], args[1], &error);
    if (ok)
        fprintf(stderr, "User %s@%s unregistered\n", args[0], args[1]);
    return report(ok, error);
}

static int do_passwd(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *pw = password_arg(args[2]);
    if (!pw) {
        fail("no password on standard input");
        return EXIT_FAIL;
    }
    gboolean ok = mk_auth_set_password(ctl->conn, args[0], args[1], pw, ctl->cfg->password_plain,
                                       ctl->cfg->scram_iterations, &error);
    if (ok)
        fprintf(stderr, "Password of %s@%s changed\n", args[0], args[1]);
    return report(ok, error);
}

static int do_users(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) users = mk_auth_users(ctl->conn, args[0], &error);
    if (!users)
        return report(FALSE, error);
    for (guint i = 0; users[i]; i++)
        printf("%s\n", users[i]);
    return EXIT_OK;
}

static int do_check_account(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkCredentials) c = mk_auth_get(ctl->conn, args[0], args[1], &error);
    return report(c != NULL, error);
}

static int do_check_password(Ctl *ctl, char **args)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *pw = password_arg(args[2]);
    if (!pw) {
        fail("no password on standard input");
        return EXIT_FAIL;
    }
    g_autoptr(MkCredentials) c = mk_auth_get(ctl->conn, args[0], args[1], &error);
    if (!c && !g_error_matches(error, MK_AUTH_ERROR, MK_AUTH_ERROR_NO_USER))
        return report(FALSE, error);
    if (!mk_auth_check_password(
            c, pw, ctl->cfg->password_plain ? MK_AUTH_DUMMY_PLAIN : ctl->cfg->scram_iterations)) {
        fail("wrong user or password");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static const CtlVerb verbs[] = {
    {"register", NULL, 3, "register USER DOMAIN PASSWORD", do_register},
    {"register-bulk", NULL, 4, "register-bulk PREFIX COUNT DOMAIN PASSWORD", do_register_bulk},
    {"unregister", NULL, 2, "unregister USER DOMAIN", do_unregister},
    {"passwd", "change_password", 3, "passwd USER DOMAIN PASSWORD", do_passwd},
    {"users", "registered_users", 1, "users DOMAIN", do_users},
    {"check_account", NULL, 2, "check_account USER DOMAIN", do_check_account},
    {"check_password", NULL, 3, "check_password USER DOMAIN PASSWORD", do_check_password},
};

static const char *help_text =
    "Commands (they work directly on the database named by the configuration,\n"
    "also while meerkatd runs; DOMAIN must be served by the configuration):\n"
    "  register USER DOMAIN PASSWORD       create an account\n"
    "  register-bulk PREFIX COUNT DOMAIN PASSWORD\n"
    "                                      create PREFIX0 .. PREFIX<COUNT-1> with one\n"
    "                                      password (load tests); existing ones are kept\n"
    "  unregister USER DOMAIN              delete an account and all its data\n"
    "  passwd USER DOMAIN PASSWORD         set a new password (alias: change_password)\n"
    "  users DOMAIN                        list the accounts of DOMAIN, one a line\n"
    "                                      (alias: registered_users)\n"
    "  check_account USER DOMAIN           exit 0 when the account exists\n"
    "  check_password USER DOMAIN PASSWORD exit 0 when the password is right\n"
    "\n"
    "A PASSWORD of \"-\" is read from the first line of standard input.\n"
    "Passwords are stored as salted SCRAM keys (and in plain text too only with\n"
    "[auth] password_format = plain).\n"
    "\n"
    "Exit status: 0 success, 1 failure (message on standard error), 2 usage.";

static const CtlVerb *find_verb(const char *name)
{
    for (gsize i = 0; i < G_N_ELEMENTS(verbs); i++)
        if (g_str_equal(verbs[i].name, name) ||
            (verbs[i].alias && g_str_equal(verbs[i].alias, name)))
            return &verbs[i];
    return NULL;
}

/* Whether @domain (as typed) is one of the configured domains, of any
 * host type, comparing prepared forms. */
static gboolean domain_served(const MkConfigData *cfg, const char *domain)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, domain, NULL, NULL);
    if (!jid)
        return FALSE;
    const char *prepped = mk_jid_domain(jid);
    for (guint i = 0; cfg->host_types && i < cfg->host_types->len; i++) {
        const MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        for (guint j = 0; ht->domains && ht->domains[j]; j++)
            if (g_ascii_strcasecmp(ht->domains[j], prepped) == 0)
                return TRUE;
    }
    return FALSE;
}

static int run(const char *config, char **args)
{
    const CtlVerb *verb = find_verb(args[0]);
    g_autoptr(GError) error = NULL;
    Ctl ctl = {0};
    int rc = EXIT_FAIL;

    ctl.cfg = mk_config_load(config, &error);
    if (!ctl.cfg) {
        fail("%s", error->message);
        return EXIT_FAIL;
    }
    /* The domain is the second argument, the first for `users`, the
     * third for `register-bulk`. */
    const char *domain = verb->n_args == 1 ? args[1] : verb->n_args == 4 ? args[3] : args[2];
    if (!domain_served(ctl.cfg, domain)) {
        fail("%s is not served by this server", domain);
        goto out;
    }
    ctl.db = mk_db_open(ctl.cfg, &error);
    if (!ctl.db || !mk_db_migrate(ctl.db, "core", mk_core_migrations, &error)) {
        fail("%s", error->message);
        goto out;
    }
    ctl.conn = mk_db_acquire(ctl.db, &error);
    if (!ctl.conn) {
        fail("%s", error->message);
        goto out;
    }
    rc = verb->run(&ctl, args + 1);

out:
    if (ctl.conn)
        mk_db_release(ctl.db, ctl.conn);
    mk_db_close(ctl.db);
    mk_config_free(ctl.cfg);
    return rc;
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    g_autofree char *config = NULL;
    g_autoptr(GError) error = NULL;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
         "Configuration file (default: " MK_SYSCONF_DIR "/meerkat.conf)", "CONFIG"},
        {NULL},
    };
    g_autoptr(GOptionContext) opts = g_option_context_new("COMMAND ARGUMENTS...");
    g_option_context_set_summary(opts, "Administer the accounts of a Meerkat XMPP server.");
    g_option_context_set_description(opts, help_text);
    g_option_context_add_main_entries(opts, entries, NULL);
    /* Options end at the command: a password may start with '-'. */
    g_option_context_set_strict_posix(opts, TRUE);
    if (!g_option_context_parse(opts, &argc, &argv, &error)) {
        fail("%s (see --help)", error->message);
        return EXIT_USAGE;
    }
    if (argc < 2) {
        fail("no command given (see --help)");
        return EXIT_USAGE;
    }
    const CtlVerb *verb = find_verb(argv[1]);
    if (!verb) {
        fail("unknown command \"%s\" (see --help)", argv[1]);
        return EXIT_USAGE;
    }
    if (argc - 2 != verb->n_args) {
        fail("usage: meerkatctl [-c CONFIG] %s", verb->usage);
        return EXIT_USAGE;
    }
    return run(config ? config : MK_SYSCONF_DIR "/meerkat.conf", argv + 1);
}
