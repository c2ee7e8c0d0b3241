/* meerkatctl: account administration, directly on the database that the
 * configuration names. Safe while meerkatd runs: sqlite3 in WAL mode with
 * a busy timeout lets both write; PostgreSQL is shared anyway. What must
 * go through the server (removals that run hooks and end sessions, kicks,
 * messages, domains, status) uses its admin REST API when it runs
 * (meerkatctl-rest.c). */
#include "auth.h"
#include "conffile.h"
#include "db.h"
#include "meerkatctl-rest.h"
#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct Ctl Ctl;
typedef int (*CtlFunc)(Ctl *ctl, char **args);

typedef int (*CtlRestFunc)(CtlRest *rest, char **args);

typedef struct {
    const char *name;
    const char *alias; /* the ejabberdctl name, nullable */
    int n_args;
    const char *usage;
    CtlFunc run;          /* on the database; NULL: only through the server */
    CtlRestFunc run_rest; /* through the running server's API; nullable */
} CtlVerb;

/* --json: print the server's JSON answers as they are. */
static gboolean opt_json;
/* --offline: never ask the server, work on the database. */
static gboolean opt_offline;

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

/* ---- through the server's admin REST API ---- */

/* Sends one request and reports: @ok_text (a format with no arguments,
 * nullable) on success, the server's message on an error. */
static int rest_do(CtlRest *rest, const char *method, const char *path, JsonNode *body,
                   const char *ok_text, char **out)
{
    g_autofree char *json = body ? json_to_string(body, FALSE) : NULL;
    if (body)
        json_node_unref(body);
    guint status = 0;
    g_autofree char *resp = NULL;
    g_autoptr(GError) error = NULL;
    if (!ctl_rest_call(rest, method, path, json, &status, &resp, &error)) {
        fail("%s", error->message);
        return EXIT_FAIL;
    }
    if (status >= 300) {
        g_autoptr(JsonParser) parser = json_parser_new();
        const char *msg = NULL;
        if (json_parser_load_from_data(parser, resp, -1, NULL) &&
            JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
            msg = json_object_get_string_member_with_default(
                json_node_get_object(json_parser_get_root(parser)), "error", NULL);
        if (opt_json && *resp)
            printf("%s\n", resp);
        fail("server: %s (HTTP %u)", msg ? msg : "failed", status);
        return EXIT_FAIL;
    }
    if (opt_json)
        printf("%s\n", *resp ? resp : "{}");
    else if (ok_text)
        fprintf(stderr, "%s\n", ok_text);
    if (out)
        *out = g_steal_pointer(&resp);
    return EXIT_OK;
}

static JsonNode *object1(const char *k1, const char *v1, const char *k2, const char *v2,
                         const char *k3, const char *v3)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    const char *kv[] = {k1, v1, k2, v2, k3, v3};
    for (guint i = 0; i < 6 && kv[i]; i += 2) {
        json_builder_set_member_name(b, kv[i]);
        json_builder_add_string_value(b, kv[i + 1]);
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static int rest_unregister(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "users", args[1], args[0], NULL);
    g_autofree char *ok = g_strdup_printf("User %s@%s unregistered", args[0], args[1]);
    return rest_do(rest, "DELETE", path, NULL, ok, NULL);
}

static int rest_passwd(CtlRest *rest, char **args)
{
    g_autofree char *pw = password_arg(args[2]);
    if (!pw) {
        fail("no password on standard input");
        return EXIT_FAIL;
    }
    g_autofree char *path = ctl_rest_path(rest, "users", args[1], args[0], NULL);
    g_autofree char *ok = g_strdup_printf("Password of %s@%s changed", args[0], args[1]);
    return rest_do(rest, "PUT", path, object1("newpass", pw, NULL, NULL, NULL, NULL), ok, NULL);
}

static int rest_kick(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "sessions", args[1], args[0], args[2], NULL);
    g_autofree char *ok = g_strdup_printf("Session %s@%s/%s ended", args[0], args[1], args[2]);
    return rest_do(rest, "DELETE", path, NULL, ok, NULL);
}

/* Prints a JSON array of strings one a line. */
static void print_strings(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    if (!json_parser_load_from_data(parser, json, -1, NULL) ||
        !JSON_NODE_HOLDS_ARRAY(json_parser_get_root(parser)))
        return;
    JsonArray *a = json_node_get_array(json_parser_get_root(parser));
    for (guint i = 0; i < json_array_get_length(a); i++)
        printf("%s\n", json_array_get_string_element(a, i));
}

static int rest_sessions(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "sessions", args[0], NULL);
    g_autofree char *body = NULL;
    int rc = rest_do(rest, "GET", path, NULL, NULL, &body);
    if (rc == EXIT_OK && !opt_json)
        print_strings(body);
    return rc;
}

static int rest_send(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "messages", NULL);
    return rest_do(rest, "POST", path, object1("caller", args[0], "to", args[1], "body", args[2]),
                   "Message sent", NULL);
}

static int rest_add_domain(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "domains", args[0], NULL);
    g_autofree char *ok = g_strdup_printf("Domain %s added", args[0]);
    return rest_do(rest, "PUT", path, object1("host_type", args[1], NULL, NULL, NULL, NULL), ok,
                   NULL);
}

static int rest_remove_domain(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "domains", args[0], NULL);
    g_autofree char *ok = g_strdup_printf("Domain %s removed", args[0]);
    return rest_do(rest, "DELETE", path, object1("host_type", args[1], NULL, NULL, NULL, NULL), ok,
                   NULL);
}

static int rest_domain(CtlRest *rest, char **args)
{
    g_autofree char *path = ctl_rest_path(rest, "domains", args[0], NULL);
    g_autofree char *body = NULL;
    int rc = rest_do(rest, "GET", path, NULL, NULL, &body);
    g_autoptr(JsonParser) parser = json_parser_new();
    if (rc == EXIT_OK && !opt_json && json_parser_load_from_data(parser, body, -1, NULL) &&
        JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
        printf("%s host_type %s\n", args[0],
               json_object_get_string_member_with_default(
                   json_node_get_object(json_parser_get_root(parser)), "host_type", "?"));
    return rc;
}

/* Reached the server: say so (with --json as {"running": true, ...}). */
static int rest_status(CtlRest *rest, char **args)
{
    if (opt_json)
        printf("{\"running\":true,\"api\":\"%s\"}\n", ctl_rest_address(rest));
    else
        printf("meerkatd is running (admin API on %s)\n", ctl_rest_address(rest));
    return EXIT_OK;
}

static const CtlVerb verbs[] = {
    {"register", NULL, 3, "register USER DOMAIN PASSWORD", do_register, NULL},
    {"register-bulk", NULL, 4, "register-bulk PREFIX COUNT DOMAIN PASSWORD", do_register_bulk,
     NULL},
    {"unregister", NULL, 2, "unregister USER DOMAIN", do_unregister, rest_unregister},
    {"passwd", "change_password", 3, "passwd USER DOMAIN PASSWORD", do_passwd, rest_passwd},
    {"users", "registered_users", 1, "users DOMAIN", do_users, NULL},
    {"check_account", NULL, 2, "check_account USER DOMAIN", do_check_account, NULL},
    {"check_password", NULL, 3, "check_password USER DOMAIN PASSWORD", do_check_password, NULL},
    {"kick", "kick_session", 3, "kick USER DOMAIN RESOURCE", NULL, rest_kick},
    {"sessions", "connected_users", 1, "sessions DOMAIN", NULL, rest_sessions},
    {"send", "send_message", 3, "send FROM TO BODY", NULL, rest_send},
    {"add_domain", NULL, 2, "add_domain DOMAIN HOST_TYPE", NULL, rest_add_domain},
    {"remove_domain", NULL, 2, "remove_domain DOMAIN HOST_TYPE", NULL, rest_remove_domain},
    {"domain", NULL, 1, "domain DOMAIN", NULL, rest_domain},
    {"status", NULL, 0, "status", NULL, rest_status},
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
    "While meerkatd runs with its admin REST API (mod_rest_admin and a type = http\n"
    "listener in the configuration), unregister and passwd go through it (hooks\n"
    "run, sessions end), and these work only through it:\n"
    "  kick USER DOMAIN RESOURCE           end a session (stream error policy-violation)\n"
    "  sessions DOMAIN                     list the bound full JIDs of DOMAIN\n"
    "  send FROM TO BODY                   send a chat message as the local user FROM\n"
    "  add_domain DOMAIN HOST_TYPE         serve DOMAIN with HOST_TYPE, also after restarts\n"
    "  remove_domain DOMAIN HOST_TYPE      stop serving DOMAIN\n"
    "  domain DOMAIN                       show the host type serving DOMAIN\n"
    "  status                              exit 0 when meerkatd answers\n"
    "--json prints the server's JSON answers; --offline never asks the server.\n"
    "\n"
    "A PASSWORD of \"-\" is read from the first line of standard input.\n"
    "Passwords are stored as salted SCRAM keys (and in plain text too only with\n"
    "[auth] password_format = plain).\n"
    "\n"
    "Exit status: 0 success, 1 failure (message on standard error; the server's\n"
    "own message for its errors), 2 usage, 3 the server is not running (status and\n"
    "the commands that need it).";

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

#define EXIT_NOT_RUNNING 3

/* Runs @verb through the server when it answers: TRUE with *@rc set;
 * FALSE to go on with the database. */
static gboolean run_rest(const CtlVerb *verb, MkConfigData *cfg, char **args, int *rc)
{
    if (!verb->run_rest || opt_offline) {
        if (!verb->run) {
            fail("%s needs the running server (not with --offline)", verb->name);
            *rc = EXIT_USAGE;
            return TRUE;
        }
        return FALSE;
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(CtlRest) rest = ctl_rest_new(cfg, &error);
    if (rest && ctl_rest_running(rest)) {
        *rc = verb->run_rest(rest, args);
        return TRUE;
    }
    if (verb->run) {
        /* Removals on the database run no hooks and leave sessions. */
        if (rest && g_str_equal(verb->name, "unregister"))
            fail("note: meerkatd is not answering on %s; working on the database",
                 ctl_rest_address(rest));
        return FALSE;
    }
    if (opt_json)
        printf("{\"running\":false}\n");
    if (rest)
        fail("meerkatd is not running (no answer on %s)", ctl_rest_address(rest));
    else
        fail("%s needs the running server's admin API: %s", verb->name, error->message);
    *rc = EXIT_NOT_RUNNING;
    return TRUE;
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
    if (run_rest(verb, ctl.cfg, args + 1, &rc)) {
        mk_config_free(ctl.cfg);
        return rc;
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
        {"json", 'j', 0, G_OPTION_ARG_NONE, &opt_json, "Print the server's JSON answers", NULL},
        {"offline", 0, 0, G_OPTION_ARG_NONE, &opt_offline,
         "Work on the database, never through the server", NULL},
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
