/* meerkatd: the XMPP server. */
#include "conffile.h"
#include "log.h"
#include "modcheck.h"
#include "server.h"
#include <locale.h>
#include <signal.h>

static char *opt_config;
static gboolean opt_check;
static gboolean opt_version;

static const GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config, "Configuration file", "FILE"},
    {"check-config", 0, 0, G_OPTION_ARG_NONE, &opt_check,
     "Validate the configuration (and every enabled module's keys) and exit", NULL},
    {"version", 'V', 0, G_OPTION_ARG_NONE, &opt_version, "Print the version and exit", NULL},
    {NULL},
};

int main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GOptionContext) ctx = g_option_context_new("- Meerkat XMPP server");

    setlocale(LC_ALL, "");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("meerkatd: %s\n", error->message);
        return 2;
    }
    if (opt_version) {
        g_print("meerkatd %s (module ABI %d.%d)\n", MK_VERSION_STRING, MK_ABI_MAJOR, MK_ABI_MINOR);
        return 0;
    }
    g_autofree char *path = opt_config ? opt_config : g_strdup(MK_SYSCONF_DIR "/meerkat.conf");
    opt_config = NULL;

    MkConfigData *cfg = mk_config_load(path, &error);
    if (!cfg) {
        g_printerr("meerkatd: %s\n", error->message);
        return 1;
    }
    mk_log_init(cfg->log_level);
    if (opt_check) {
        gboolean ok = mk_modules_check(cfg, &error);
        mk_config_free(cfg);
        if (!ok) {
            g_printerr("meerkatd: %s\n", error->message);
            return 1;
        }
        g_print("%s: configuration OK\n", path);
        return 0;
    }

    /* Writes to a vanished client must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    MkServer *srv = mk_server_new(cfg, &error);
    if (!srv) {
        g_critical("cannot start: %s", error->message);
        g_printerr("meerkatd: cannot start: %s\n", error->message);
        return 1;
    }
    g_message("meerkatd %s started", MK_VERSION_STRING);
    mk_server_run(srv);
    mk_server_free(srv);
    return 0;
}
