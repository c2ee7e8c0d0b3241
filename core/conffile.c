/* Reading meerkat.conf and conf.d/ (see conffile.h for the layout).
 *
 * Strict on purpose: an unknown section or key, a value of the wrong type
 * or out of range stops start-up with "FILE: [section] key: reason", so a
 * typo never silently falls back to a default. */
#include "conffile.h"
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-config-error-quark, mk_config_error)
/* clang-format on */

#define DEFAULT_STATE_DIR  "/var/lib/meerkat"
#define DEFAULT_MECHANISMS "PLAIN;SCRAM-SHA-1;SCRAM-SHA-256;SCRAM-SHA-1-PLUS;SCRAM-SHA-256-PLUS"

static const char *const known_mechanisms[] = {
    "PLAIN",     "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS",
    "ANONYMOUS", NULL,
};

static const char *const general_keys[] = {
    "hosts",    "state_dir",  "module_dir",
    "conf_dir", "workers",    "log_level",
    "node",     "fd_reserve", "max_sessions_per_account",
    NULL,
};
static const char *const host_type_keys[] = {"domains", NULL};
static const char *const auth_keys[] = {
    "password_format",
    "scram_iterations",
    "mechanisms",
    "anonymous_hosts",
    "failures_per_stream",
    "address_failures",
    "account_failures",
    "backoff_max",
    "forget_after",
    "throttle_loopback",
    NULL,
};
static const char *const cluster_keys[] = {
    "name",         "node_number", "redis_host",     "redis_port", "redis_password", "secret",
    "link_address", "link_port",   "link_advertise", "link_tls",   "link_certfile",  "link_keyfile",
    "link_cafile",  NULL,
};
static const char *const storage_keys[] = {
    "driver", "database", "host", "port", "user", "password", "pool_size", NULL,
};
static const char *const metrics_keys[] = {"textfile", "textfile_interval", NULL};
static const char *const listen_keys[] = {
    "type",
    "address",
    "port",
    "tls",
    "certfile",
    "keyfile",
    "max_stanza_size",
    "max_depth",
    "idle_timeout",
    "backlog",
    "preauth_timeout",
    "tls_handshake_timeout",
    "max_preauth_per_address",
    "scram_y_flag",
    NULL,
};
/* [listen.NAME] of type http: the keys above that apply, and its own. */
static const char *const http_listen_keys[] = {
    "type",
    "address",
    "port",
    "tls",
    "certfile",
    "keyfile",
    "idle_timeout",
    "backlog",
    "max_body_size",
    "max_headers",
    "max_connections",
    "max_connections_per_address",
    "metrics",
    "metrics_user",
    "metrics_password_file",
    "modules",
    NULL,
};

/* "FILE: [section] key: reason"; @key may be NULL. */
G_GNUC_PRINTF(6, 7)
static void cfg_error(GError **error, MkConfigErrorCode code, const char *file, const char *group,
                      const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *reason = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (group && key)
        g_set_error(error, MK_CONFIG_ERROR, code, "%s: [%s] %s: %s", file, group, key, reason);
    else if (group)
        g_set_error(error, MK_CONFIG_ERROR, code, "%s: [%s]: %s", file, group, reason);
    else
        g_set_error(error, MK_CONFIG_ERROR, code, "%s: %s", file, reason);
}

/* Every key of @group must be in @allowed. */
static gboolean check_keys(const char *file, GKeyFile *kf, const char *group,
                           const char *const *allowed, GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
    for (char **k = keys; k && *k; k++) {
        if (!g_strv_contains(allowed, *k)) {
            cfg_error(error, MK_CONFIG_ERROR_KEY, file, group, *k, "unknown key");
            return FALSE;
        }
    }
    return TRUE;
}

/* The value of @key stripped of surrounding blanks, or NULL when unset.
 * (transfer full) */
static char *get_raw(GKeyFile *kf, const char *group, const char *key)
{
    if (!g_key_file_has_key(kf, group, key, NULL))
        return NULL;
    char *v = g_key_file_get_string(kf, group, key, NULL);
    if (!v) /* invalid escape: keep the literal text */
        v = g_key_file_get_value(kf, group, key, NULL);
    return v ? g_strstrip(v) : NULL;
}

static char *get_string(GKeyFile *kf, const char *group, const char *key, const char *def)
{
    char *v = get_raw(kf, group, key);
    return v ? v : g_strdup(def);
}

/* Splits a ;-separated list, dropping blanks and empty items. */
static char **split_list(const char *text)
{
    GPtrArray *out = g_ptr_array_new();
    g_auto(GStrv) parts = g_strsplit(text ? text : "", ";", -1);
    for (char **p = parts; *p; p++) {
        g_strstrip(*p);
        if (**p)
            g_ptr_array_add(out, g_strdup(*p));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

static char **get_list(GKeyFile *kf, const char *group, const char *key, const char *def)
{
    g_autofree char *v = get_raw(kf, group, key);
    return split_list(v ? v : def);
}

static gboolean parse_int(const char *text, gint64 min, gint64 max, gint64 *out)
{
    return text && g_ascii_string_to_signed(text, 10, min, max, out, NULL);
}

static gboolean get_int(const char *file, GKeyFile *kf, const char *group, const char *key,
                        gint64 def, gint64 min, gint64 max, gint64 *out, GError **error)
{
    g_autofree char *v = get_raw(kf, group, key);
    if (!v) {
        *out = def;
        return TRUE;
    }
    gint64 n;
    if (!g_ascii_string_to_signed(v, 10, G_MININT64, G_MAXINT64, &n, NULL)) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, file, group, key, "\"%s\" is not an integer", v);
        return FALSE;
    }
    if (n < min || n > max) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, file, group, key,
                  "%" G_GINT64_FORMAT " is out of range (%" G_GINT64_FORMAT "..%" G_GINT64_FORMAT
                  ")",
                  n, min, max);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

/* Index of the value of @key in @choices, or @def when unset. */
static gboolean get_choice(const char *file, GKeyFile *kf, const char *group, const char *key,
                           const char *const *choices, int def, int *out, GError **error)
{
    g_autofree char *v = get_raw(kf, group, key);
    if (!v) {
        *out = def;
        return TRUE;
    }
    for (int i = 0; choices[i]; i++) {
        if (g_str_equal(v, choices[i])) {
            *out = i;
            return TRUE;
        }
    }
    g_autofree char *list = g_strjoinv(" | ", (char **)choices);
    cfg_error(error, MK_CONFIG_ERROR_VALUE, file, group, key, "\"%s\" is not one of %s", v, list);
    return FALSE;
}

/* @path made absolute against @base. (transfer full) */
static char *resolve_path(const char *base, const char *path)
{
    if (g_path_is_absolute(path))
        return g_canonicalize_filename(path, NULL);
    return g_canonicalize_filename(path, base);
}

/* A domain in its prepared (nameprep/IDNA, lowercased) form. */
static char *prepare_domain(const char *file, const char *group, const char *key, const char *d,
                            GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, d, NULL, &local);
    if (!jid) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, file, group, key,
                  "\"%s\" is not a valid domain%s%s", d, local ? ": " : "",
                  local ? local->message : "");
        return NULL;
    }
    return g_strdup(mk_jid_domain(jid));
}

/* Prepares every domain of @list in place, refusing duplicates across
 * host types (@seen: domain -> host type name). */
static gboolean prepare_domains(const char *file, const char *group, const char *key, char **list,
                                const char *host_type, GHashTable *seen, GError **error)
{
    for (char **d = list; d && *d; d++) {
        char *p = prepare_domain(file, group, key, *d, error);
        if (!p)
            return FALSE;
        g_free(*d);
        *d = p;
        const char *other = g_hash_table_lookup(seen, p);
        if (other) {
            cfg_error(error, MK_CONFIG_ERROR_VALUE, file, group, key,
                      "domain %s is already served by host type %s", p, other);
            return FALSE;
        }
        g_hash_table_insert(seen, p, (gpointer)host_type);
    }
    return TRUE;
}

static gboolean valid_name(const char *s)
{
    if (!s || !*s)
        return FALSE;
    for (; *s; s++)
        if (!g_ascii_isalnum(*s) && *s != '_' && *s != '-')
            return FALSE;
    return TRUE;
}

static void host_type_free(MkHostTypeConfig *ht)
{
    g_free(ht->name);
    g_strfreev(ht->domains);
    g_free(ht);
}

static void listen_free(MkListenConfig *lc)
{
    g_free(lc->name);
    g_free(lc->type);
    g_free(lc->metrics_user);
    g_free(lc->metrics_password_file);
    g_strfreev(lc->modules);
    g_free(lc->address);
    g_free(lc->certfile);
    g_free(lc->keyfile);
    g_free(lc);
}

static void module_config_free(MkModuleConfig *mc)
{
    g_free(mc->name);
    g_free(mc->file);
    g_free(mc->checksum);
    if (mc->keys)
        g_key_file_unref(mc->keys);
    g_free(mc);
}

/* (transfer full) A config with every default, before any file is read. */
static MkConfigData *config_new(void)
{
    MkConfigData *cfg = g_new0(MkConfigData, 1);
    cfg->host_types = g_ptr_array_new_with_free_func((GDestroyNotify)host_type_free);
    cfg->listeners = g_ptr_array_new_with_free_func((GDestroyNotify)listen_free);
    cfg->modules = g_ptr_array_new_with_free_func((GDestroyNotify)module_config_free);
    return cfg;
}

/* Frees @cfg and everything it holds. NULL is fine. Any thread. */
void mk_config_free(MkConfigData *cfg)
{
    if (!cfg)
        return;
    g_free(cfg->main_file);
    g_free(cfg->conf_dir);
    g_free(cfg->state_dir);
    g_free(cfg->module_dir);
    g_free(cfg->node);
    g_ptr_array_unref(cfg->host_types);
    g_strfreev(cfg->mechanisms);
    g_strfreev(cfg->anonymous_hosts);
    g_free(cfg->db_driver);
    g_free(cfg->db_name);
    g_free(cfg->db_host);
    g_free(cfg->db_user);
    g_free(cfg->db_password);
    g_free(cfg->metrics_textfile);
    g_ptr_array_unref(cfg->listeners);
    g_ptr_array_unref(cfg->modules);
    if (cfg->cluster) {
        g_free(cfg->cluster->name);
        g_free(cfg->cluster->redis_host);
        g_free(cfg->cluster->redis_password);
        g_free(cfg->cluster->secret);
        g_free(cfg->cluster->link_address);
        g_free(cfg->cluster->link_advertise);
        g_free(cfg->cluster->link_certfile);
        g_free(cfg->cluster->link_keyfile);
        g_free(cfg->cluster->link_cafile);
        g_free(cfg->cluster);
    }
    g_free(cfg);
}

/* See conffile.h. */
gboolean mk_config_parse_log_level(const char *name, GLogLevelFlags *out)
{
    static const struct {
        const char *name;
        GLogLevelFlags level;
    } levels[] = {
        {"error", G_LOG_LEVEL_CRITICAL},  {"critical", G_LOG_LEVEL_CRITICAL},
        {"warning", G_LOG_LEVEL_WARNING}, {"message", G_LOG_LEVEL_MESSAGE},
        {"info", G_LOG_LEVEL_INFO},       {"debug", G_LOG_LEVEL_DEBUG},
    };
    for (gsize i = 0; name && i < G_N_ELEMENTS(levels); i++) {
        if (g_ascii_strcasecmp(name, levels[i].name) == 0) {
            *out = levels[i].level;
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean load_general(MkConfigData *cfg, GKeyFile *kf, const char *dir, GHashTable *seen,
                             GError **error)
{
    const char *f = cfg->main_file, *g = "general";
    if (g_key_file_has_group(kf, g) && !check_keys(f, kf, g, general_keys, error))
        return FALSE;

    MkHostTypeConfig *ht = g_new0(MkHostTypeConfig, 1);
    ht->name = g_strdup("default");
    ht->domains = get_list(kf, g, "hosts", "localhost");
    g_ptr_array_add(cfg->host_types, ht);
    if (!prepare_domains(f, g, "hosts", ht->domains, ht->name, seen, error))
        return FALSE;

    g_autofree char *state = get_string(kf, g, "state_dir", DEFAULT_STATE_DIR);
    g_autofree char *mdir = get_string(kf, g, "module_dir", MK_MODULE_DIR);
    g_autofree char *cdir = get_string(kf, g, "conf_dir", "conf.d");
    if (!*state || !*mdir || !*cdir) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g,
                  !*state  ? "state_dir"
                  : !*mdir ? "module_dir"
                           : "conf_dir",
                  "must not be empty");
        return FALSE;
    }
    cfg->state_dir = resolve_path(dir, state);
    cfg->module_dir = resolve_path(dir, mdir);
    cfg->conf_dir = resolve_path(dir, cdir);

    gint64 workers;
    if (!get_int(f, kf, g, "workers", 0, 0, 1024, &workers, error))
        return FALSE;
    cfg->workers = workers ? (guint)workers : g_get_num_processors();
    gint64 reserve;
    if (!get_int(f, kf, g, "fd_reserve", 0, 0, 1000000, &reserve, error))
        return FALSE;
    cfg->fd_reserve = (guint)reserve;
    gint64 per_account;
    if (!get_int(f, kf, g, "max_sessions_per_account", 10, 1, 100000, &per_account, error))
        return FALSE;
    cfg->max_sessions_per_account = (guint)per_account;

    g_autofree char *level = get_string(kf, g, "log_level", "info");
    if (!mk_config_parse_log_level(level, &cfg->log_level)) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "log_level",
                  "\"%s\" is not one of error | warning | message | info | debug", level);
        return FALSE;
    }
    cfg->node = get_string(kf, g, "node", "meerkat@localhost");
    if (!*cfg->node) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "node", "must not be empty");
        return FALSE;
    }
    return TRUE;
}

static gboolean load_host_type(MkConfigData *cfg, GKeyFile *kf, const char *group, GHashTable *seen,
                               GError **error)
{
    const char *f = cfg->main_file;
    const char *name = group + strlen("host_type.");
    if (!valid_name(name) || g_str_equal(name, "default")) {
        cfg_error(error, MK_CONFIG_ERROR_KEY, f, group, NULL,
                  "a host type name is letters, digits, '_' and '-', and not \"default\" "
                  "(that one is [general] hosts)");
        return FALSE;
    }
    if (!check_keys(f, kf, group, host_type_keys, error))
        return FALSE;
    MkHostTypeConfig *ht = g_new0(MkHostTypeConfig, 1);
    ht->name = g_strdup(name);
    ht->domains = get_list(kf, group, "domains", "");
    g_ptr_array_add(cfg->host_types, ht);
    return prepare_domains(f, group, "domains", ht->domains, ht->name, seen, error);
}

static gboolean load_auth(MkConfigData *cfg, GKeyFile *kf, GHashTable *seen, GError **error)
{
    const char *f = cfg->main_file, *g = "auth";
    if (g_key_file_has_group(kf, g) && !check_keys(f, kf, g, auth_keys, error))
        return FALSE;
    static const char *const formats[] = {"scram", "plain", NULL};
    int format;
    if (!get_choice(f, kf, g, "password_format", formats, 0, &format, error))
        return FALSE;
    cfg->password_plain = format == 1;
    gint64 iters;
    if (!get_int(f, kf, g, "scram_iterations", 4096, 4096, 1000000, &iters, error))
        return FALSE;
    cfg->scram_iterations = (guint)iters;

    cfg->mechanisms = get_list(kf, g, "mechanisms", DEFAULT_MECHANISMS);
    for (char **m = cfg->mechanisms; *m; m++) {
        if (!g_strv_contains(known_mechanisms, *m)) {
            g_autofree char *list = g_strjoinv(" ", (char **)known_mechanisms);
            cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "mechanisms",
                      "unknown mechanism \"%s\" (known: %s)", *m, list);
            return FALSE;
        }
    }
    /* Limits on guessing (docs/security.md). */
    gint64 per_stream, addr_fail, acct_fail, backoff, forget;
    static const char *const bools[] = {"false", "true", NULL};
    int loopback;
    if (!get_int(f, kf, g, "failures_per_stream", 5, 1, 100, &per_stream, error) ||
        !get_int(f, kf, g, "address_failures", 10, 0, 1000000, &addr_fail, error) ||
        !get_int(f, kf, g, "account_failures", 5, 0, 1000000, &acct_fail, error) ||
        !get_int(f, kf, g, "backoff_max", 300, 1, 86400, &backoff, error) ||
        !get_int(f, kf, g, "forget_after", 900, 60, 7 * 86400, &forget, error) ||
        !get_choice(f, kf, g, "throttle_loopback", bools, 0, &loopback, error))
        return FALSE;
    cfg->auth_failures_per_stream = (guint)per_stream;
    cfg->auth_address_failures = (guint)addr_fail;
    cfg->auth_account_failures = (guint)acct_fail;
    cfg->auth_backoff_max = (guint)backoff;
    cfg->auth_forget_after = (guint)forget;
    cfg->auth_throttle_loopback = loopback == 1;

    cfg->anonymous_hosts = get_list(kf, g, "anonymous_hosts", "");
    for (char **d = cfg->anonymous_hosts; *d; d++) {
        char *p = prepare_domain(f, g, "anonymous_hosts", *d, error);
        if (!p)
            return FALSE;
        g_free(*d);
        *d = p;
        if (!g_hash_table_contains(seen, p)) {
            cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "anonymous_hosts",
                      "%s is not a served domain", p);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean load_storage(MkConfigData *cfg, GKeyFile *kf, GError **error)
{
    const char *f = cfg->main_file, *g = "storage";
    if (g_key_file_has_group(kf, g) && !check_keys(f, kf, g, storage_keys, error))
        return FALSE;
    static const char *const drivers[] = {"sqlite3", "pgsql", NULL};
    int driver;
    if (!get_choice(f, kf, g, "driver", drivers, 0, &driver, error))
        return FALSE;
    cfg->db_driver = g_strdup(drivers[driver]);
    gboolean sqlite = driver == 0;

    g_autofree char *db = get_string(kf, g, "database", sqlite ? "meerkat.db" : "meerkat");
    if (!*db) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "database", "must not be empty");
        return FALSE;
    }
    cfg->db_name = sqlite ? resolve_path(cfg->state_dir, db) : g_strdup(db);
    cfg->db_host = get_string(kf, g, "host", "127.0.0.1");
    gint64 port, pool;
    if (!get_int(f, kf, g, "port", 5432, 1, 65535, &port, error) ||
        !get_int(f, kf, g, "pool_size", 4, 1, 256, &pool, error))
        return FALSE;
    cfg->db_port = (guint16)port;
    cfg->db_pool_size = (guint)pool;
    cfg->db_user = get_string(kf, g, "user", "meerkat");
    cfg->db_password = get_string(kf, g, "password", "");
    return TRUE;
}

/* [metrics]: the Prometheus textfile (docs/metrics.md). */
static gboolean load_metrics(MkConfigData *cfg, GKeyFile *kf, GError **error)
{
    const char *f = cfg->main_file, *g = "metrics";
    if (g_key_file_has_group(kf, g) && !check_keys(f, kf, g, metrics_keys, error))
        return FALSE;
    g_autofree char *path = get_string(kf, g, "textfile", "");
    gint64 interval;
    if (!get_int(f, kf, g, "textfile_interval", 15, 1, 86400, &interval, error))
        return FALSE;
    cfg->metrics_textfile = *path ? resolve_path(cfg->state_dir, path) : NULL;
    cfg->metrics_textfile_interval = (guint)interval;
    return TRUE;
}

/* [cluster]: only when present (docs/clustering.md). */
static gboolean load_cluster(MkConfigData *cfg, GKeyFile *kf, GError **error)
{
    const char *f = cfg->main_file, *g = "cluster";
    if (!g_key_file_has_group(kf, g))
        return TRUE;
    if (!check_keys(f, kf, g, cluster_keys, error))
        return FALSE;
    MkClusterConfig *cc = cfg->cluster = g_new0(MkClusterConfig, 1);
    cc->name = get_string(kf, g, "name", "");
    cc->secret = get_string(kf, g, "secret", "");
    if (!*cc->name || strchr(cc->name, '\t') || strchr(cc->name, '/')) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "name",
                  "a cluster node needs a name (no tab, no '/')");
        return FALSE;
    }
    if (strlen(cc->secret) < 16) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, "secret",
                  "the cluster secret must be at least 16 characters");
        return FALSE;
    }
    gint64 num, rport, lport;
    if (!get_int(f, kf, g, "node_number", 0, 0, 255, &num, error) ||
        !get_int(f, kf, g, "redis_port", 6379, 1, 65535, &rport, error) ||
        !get_int(f, kf, g, "link_port", 5290, 0, 65535, &lport, error))
        return FALSE;
    cc->node_number = (guint)num;
    cc->redis_port = (guint16)rport;
    cc->link_port = (guint16)lport;
    cc->redis_host = get_string(kf, g, "redis_host", "127.0.0.1");
    cc->redis_password = get_string(kf, g, "redis_password", "");
    cc->link_address = get_string(kf, g, "link_address", "127.0.0.1");
    cc->link_advertise = get_string(kf, g, "link_advertise", cc->link_address);
    static const char *const onoff[] = {"false", "true", NULL};
    int tls;
    if (!get_choice(f, kf, g, "link_tls", onoff, 0, &tls, error))
        return FALSE;
    cc->link_tls = tls == 1;
    if (cc->link_tls) {
        static const char *const files[] = {"link_certfile", "link_keyfile", "link_cafile"};
        char **dest[] = {&cc->link_certfile, &cc->link_keyfile, &cc->link_cafile};
        for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
            g_autofree char *v = get_raw(kf, g, files[i]);
            if (!v || !*v) {
                cfg_error(error, MK_CONFIG_ERROR_VALUE, f, g, files[i],
                          "link_tls = true needs link_certfile, link_keyfile and link_cafile");
                return FALSE;
            }
            *dest[i] = resolve_path(cfg->state_dir, v);
        }
    }
    return TRUE;
}

/* TRUE for 127.0.0.0/8, ::1 and "localhost". */
static gboolean is_loopback(const char *address)
{
    if (g_ascii_strcasecmp(address, "localhost") == 0)
        return TRUE;
    g_autoptr(GInetAddress) a = g_inet_address_new_from_string(address);
    return a && g_inet_address_get_is_loopback(a);
}

/* Refuses a second listener on @lc's fixed address and port. */
static gboolean check_port_free(MkConfigData *cfg, const char *group, MkListenConfig *lc,
                                GError **error)
{
    /* Port 0 means "any free port" (tests); only fixed ports can clash. */
    for (guint i = 0; lc->port && i + 1 < cfg->listeners->len; i++) {
        MkListenConfig *o = g_ptr_array_index(cfg->listeners, i);
        if (o->port == lc->port && g_ascii_strcasecmp(o->address, lc->address) == 0) {
            cfg_error(error, MK_CONFIG_ERROR_VALUE, cfg->main_file, group, "port",
                      "%s:%u is used by [listen.%s] already", lc->address, lc->port, o->name);
            return FALSE;
        }
    }
    return TRUE;
}

/* The keys of a `type = http` listener (core/http.c, docs/configuration.md). */
static gboolean load_http_listener(MkConfigData *cfg, GKeyFile *kf, const char *group,
                                   MkListenConfig *lc, GError **error)
{
    const char *f = cfg->main_file;
    lc->address = get_string(kf, group, "address", "127.0.0.1");
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(lc->address);
    if (!ia && g_ascii_strcasecmp(lc->address, "localhost") != 0) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, group, "address",
                  "\"%s\" is not an IP address (nor localhost)", lc->address);
        return FALSE;
    }
    /* HTTP has no STARTTLS: plain, or HTTPS from the first byte. */
    static const char *const modes[] = {"none", "direct", NULL};
    int tls;
    if (!get_choice(f, kf, group, "tls", modes, is_loopback(lc->address) ? 0 : 1, &tls, error))
        return FALSE;
    lc->tls = tls == 1 ? MK_TLS_DIRECT : MK_TLS_NONE;
    gint64 port, idle, backlog, body, headers, conns, per_addr;
    static const char *const bools[] = {"false", "true", NULL};
    int metrics;
    if (!get_int(f, kf, group, "port", 8088, 0, 65535, &port, error) ||
        !get_int(f, kf, group, "idle_timeout", 30, 1, 3600, &idle, error) ||
        !get_int(f, kf, group, "backlog", 1024, 1, 65535, &backlog, error) ||
        !get_int(f, kf, group, "max_body_size", 1024 * 1024, 1024, 64 * 1024 * 1024, &body,
                 error) ||
        !get_int(f, kf, group, "max_headers", 64, 4, 1000, &headers, error) ||
        !get_int(f, kf, group, "max_connections", 256, 1, 100000, &conns, error) ||
        !get_int(f, kf, group, "max_connections_per_address", 64, 0, 100000, &per_addr, error) ||
        !get_choice(f, kf, group, "metrics", bools, 0, &metrics, error))
        return FALSE;
    lc->port = (guint16)port;
    lc->idle_timeout = (guint)idle;
    lc->backlog = (int)backlog;
    lc->max_body_size = (gsize)body;
    lc->max_headers = (guint)headers;
    lc->max_connections = (guint)conns;
    lc->max_connections_per_address = (guint)per_addr;
    lc->metrics = metrics == 1;
    lc->modules = get_list(kf, group, "modules", "");
    lc->metrics_user = get_raw(kf, group, "metrics_user");
    g_autofree char *pwfile = get_raw(kf, group, "metrics_password_file");
    if (pwfile && *pwfile)
        lc->metrics_password_file = resolve_path(cfg->state_dir, pwfile);
    if (lc->metrics_user && *lc->metrics_user && !lc->metrics_password_file) {
        cfg_error(error, MK_CONFIG_ERROR_KEY, f, group, "metrics_password_file",
                  "metrics_user needs a password file");
        return FALSE;
    }
    g_autofree char *cert = get_raw(kf, group, "certfile");
    g_autofree char *key = get_raw(kf, group, "keyfile");
    lc->certfile = cert && *cert ? resolve_path(cfg->state_dir, cert)
                                 : g_build_filename(cfg->state_dir, "meerkat.crt", NULL);
    lc->keyfile = key && *key ? resolve_path(cfg->state_dir, key)
                              : g_build_filename(cfg->state_dir, "meerkat.key", NULL);
    return check_port_free(cfg, group, lc, error);
}

static gboolean load_listener(MkConfigData *cfg, GKeyFile *kf, const char *group, GError **error)
{
    const char *f = cfg->main_file;
    const char *name = group + strlen("listen.");
    if (!valid_name(name)) {
        cfg_error(error, MK_CONFIG_ERROR_KEY, f, group, NULL,
                  "a listener name is letters, digits, '_' and '-'");
        return FALSE;
    }
    static const char *const types[] = {"c2s", "http", NULL};
    int type;
    if (!get_choice(f, kf, group, "type", types, 0, &type, error))
        return FALSE;
    if (!check_keys(f, kf, group, type == 1 ? http_listen_keys : listen_keys, error))
        return FALSE;

    MkListenConfig *lc = g_new0(MkListenConfig, 1);
    g_ptr_array_add(cfg->listeners, lc);
    lc->name = g_strdup(name);
    lc->type = g_strdup(types[type]);
    if (type == 1)
        return load_http_listener(cfg, kf, group, lc, error);

    lc->address = get_string(kf, group, "address", "127.0.0.1");
    g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(lc->address);
    if (!ia && g_ascii_strcasecmp(lc->address, "localhost") != 0) {
        cfg_error(error, MK_CONFIG_ERROR_VALUE, f, group, "address",
                  "\"%s\" is not an IP address (nor localhost)", lc->address);
        return FALSE;
    }

    static const char *const modes[] = {"required", "optional", "none", "direct", NULL};
    G_STATIC_ASSERT(MK_TLS_REQUIRED == 0 && MK_TLS_OPTIONAL == 1 && MK_TLS_NONE == 2 &&
                    MK_TLS_DIRECT == 3);
    int tls;
    if (!get_choice(f, kf, group, "tls", modes,
                    is_loopback(lc->address) ? MK_TLS_OPTIONAL : MK_TLS_REQUIRED, &tls, error))
        return FALSE;
    lc->tls = (MkTlsMode)tls;

    gint64 port, stanza, depth, idle, backlog, preauth, handshake, per_addr;
    if (!get_int(f, kf, group, "port", lc->tls == MK_TLS_DIRECT ? 5223 : 5222, 0, 65535, &port,
                 error) ||
        !get_int(f, kf, group, "max_stanza_size", 65536, 1024, 64 * 1024 * 1024, &stanza, error) ||
        !get_int(f, kf, group, "max_depth", 64, 4, 1024, &depth, error) ||
        !get_int(f, kf, group, "idle_timeout", 600, 0, 7 * 24 * 3600, &idle, error) ||
        !get_int(f, kf, group, "backlog", 1024, 1, 65535, &backlog, error) ||
        !get_int(f, kf, group, "preauth_timeout", 30, 0, 3600, &preauth, error) ||
        !get_int(f, kf, group, "tls_handshake_timeout", 10, 0, 600, &handshake, error) ||
        !get_int(f, kf, group, "max_preauth_per_address", 20, 0, 1000000, &per_addr, error))
        return FALSE;
    lc->preauth_timeout = (guint)preauth;
    lc->tls_handshake_timeout = (guint)handshake;
    lc->max_preauth_per_address = (guint)per_addr;
    static const char *const y_flags[] = {"refuse", "tls13", "accept", NULL};
    G_STATIC_ASSERT(MK_SCRAM_Y_REFUSE == 0 && MK_SCRAM_Y_TLS13 == 1 && MK_SCRAM_Y_ACCEPT == 2);
    int y_flag;
    if (!get_choice(f, kf, group, "scram_y_flag", y_flags, MK_SCRAM_Y_TLS13, &y_flag, error))
        return FALSE;
    lc->scram_y_flag = (MkScramYFlag)y_flag;
    lc->port = (guint16)port;
    lc->max_stanza_size = (gsize)stanza;
    lc->max_depth = (guint)depth;
    lc->idle_timeout = (guint)idle;
    lc->backlog = (int)backlog;

    g_autofree char *cert = get_raw(kf, group, "certfile");
    g_autofree char *key = get_raw(kf, group, "keyfile");
    lc->certfile = cert && *cert ? resolve_path(cfg->state_dir, cert)
                                 : g_build_filename(cfg->state_dir, "meerkat.crt", NULL);
    lc->keyfile = key && *key ? resolve_path(cfg->state_dir, key)
                              : g_build_filename(cfg->state_dir, "meerkat.key", NULL);

    return check_port_free(cfg, group, lc, error);
}

static int cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static gboolean host_type_known(const MkConfigData *cfg, const char *name)
{
    for (guint i = 0; i < cfg->host_types->len; i++) {
        MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        if (g_str_equal(ht->name, name))
            return TRUE;
    }
    return FALSE;
}

/* conf.d/NAME.conf: enables module NAME; only [NAME] and [NAME@HOSTTYPE]
 * sections. Keys are checked later against the module's declaration. */
static gboolean load_module_file(MkConfigData *cfg, const char *path, const char *name,
                                 GError **error)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    g_autoptr(GError) local = NULL;
    if (!g_file_get_contents(path, &text, &len, &local)) {
        cfg_error(error, MK_CONFIG_ERROR_FILE, path, NULL, NULL, "%s", local->message);
        return FALSE;
    }
    if (!valid_name(name)) {
        cfg_error(error, MK_CONFIG_ERROR_FILE, path, NULL, NULL,
                  "a module name is letters, digits, '_' and '-'");
        return FALSE;
    }
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &local)) {
        cfg_error(error, MK_CONFIG_ERROR_PARSE, path, NULL, NULL, "%s", local->message);
        return FALSE;
    }
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (char **gp = groups; *gp; gp++) {
        const char *at = strchr(*gp, '@');
        gsize n = at ? (gsize)(at - *gp) : strlen(*gp);
        if (n != strlen(name) || strncmp(*gp, name, n) != 0) {
            cfg_error(error, MK_CONFIG_ERROR_KEY, path, *gp, NULL,
                      "unknown section (this file configures %s: use [%s] or [%s@HOSTTYPE])", name,
                      name, name);
            return FALSE;
        }
        if (at && !host_type_known(cfg, at + 1)) {
            cfg_error(error, MK_CONFIG_ERROR_KEY, path, *gp, NULL, "unknown host type \"%s\"",
                      at + 1);
            return FALSE;
        }
    }
    MkModuleConfig *mc = g_new0(MkModuleConfig, 1);
    mc->name = g_strdup(name);
    mc->file = g_strdup(path);
    mc->keys = g_steal_pointer(&kf);
    mc->checksum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)text, len);
    g_ptr_array_add(cfg->modules, mc);
    return TRUE;
}

static gboolean load_conf_dir(MkConfigData *cfg, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GDir) dir = g_dir_open(cfg->conf_dir, 0, &local);
    if (!dir) {
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return TRUE; /* no conf.d: no modules */
        cfg_error(error, MK_CONFIG_ERROR_FILE, cfg->conf_dir, NULL, NULL, "%s", local->message);
        return FALSE;
    }
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *entry;
    while ((entry = g_dir_read_name(dir)))
        if (entry[0] != '.' && g_str_has_suffix(entry, ".conf"))
            g_ptr_array_add(names, g_strdup(entry));
    g_ptr_array_sort(names, cmp_str);
    for (guint i = 0; i < names->len; i++) {
        const char *file = g_ptr_array_index(names, i);
        g_autofree char *path = g_build_filename(cfg->conf_dir, file, NULL);
        /* Subdirectories (conf.d/available/) are not configuration; a
         * dangling symlink is an error, reported by the read. */
        if (g_file_test(path, G_FILE_TEST_IS_DIR))
            continue;
        g_autofree char *name = g_strndup(file, strlen(file) - strlen(".conf"));
        if (!load_module_file(cfg, path, name, error))
            return FALSE;
    }
    return TRUE;
}

/* Reads @path and its conf.d. (transfer full) or NULL with a
 * MK_CONFIG_ERROR naming file, section, key and reason. Any thread; reads
 * files only. */
MkConfigData *mk_config_load(const char *path, GError **error)
{
    g_return_val_if_fail(path != NULL, NULL);
    g_autoptr(MkConfigData) cfg = config_new();
    g_autofree char *cwd = g_get_current_dir();
    cfg->main_file = resolve_path(cwd, path);
    g_autofree char *dir = g_path_get_dirname(cfg->main_file);

    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    if (!g_key_file_load_from_file(kf, cfg->main_file, G_KEY_FILE_NONE, &local)) {
        gboolean io = local->domain == G_FILE_ERROR;
        cfg_error(error, io ? MK_CONFIG_ERROR_FILE : MK_CONFIG_ERROR_PARSE, cfg->main_file, NULL,
                  NULL, "%s", local->message);
        return NULL;
    }

    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        if (!g_str_equal(*g, "general") && !g_str_equal(*g, "auth") &&
            !g_str_equal(*g, "storage") && !g_str_equal(*g, "metrics") &&
            !g_str_equal(*g, "cluster") && !g_str_has_prefix(*g, "host_type.") &&
            !g_str_has_prefix(*g, "listen.")) {
            cfg_error(error, MK_CONFIG_ERROR_KEY, cfg->main_file, *g, NULL,
                      "unknown section (expected general, auth, storage, metrics, host_type.NAME, "
                      "listen.NAME)");
            return NULL;
        }
    }

    /* domain -> host type name, to refuse a domain served twice. */
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    if (!load_general(cfg, kf, dir, seen, error))
        return NULL;
    for (char **g = groups; *g; g++)
        if (g_str_has_prefix(*g, "host_type.") && !load_host_type(cfg, kf, *g, seen, error))
            return NULL;
    if (!load_auth(cfg, kf, seen, error) || !load_storage(cfg, kf, error) ||
        !load_cluster(cfg, kf, error))
        return NULL;
    if (!load_metrics(cfg, kf, error))
        return NULL;
    for (char **g = groups; *g; g++)
        if (g_str_has_prefix(*g, "listen.") && !load_listener(cfg, kf, *g, error))
            return NULL;
    if (!load_conf_dir(cfg, error))
        return NULL;
    return g_steal_pointer(&cfg);
}

/* The conf.d entry of module @name. (transfer none) (nullable) Any thread. */
const MkModuleConfig *mk_config_find_module(const MkConfigData *cfg, const char *name)
{
    g_return_val_if_fail(cfg != NULL && name != NULL, NULL);
    for (guint i = 0; i < cfg->modules->len; i++) {
        const MkModuleConfig *mc = g_ptr_array_index(cfg->modules, i);
        if (g_str_equal(mc->name, name))
            return mc;
    }
    return NULL;
}

static const MkConfigKey *find_key(const MkConfigKey *keys, const char *name)
{
    for (const MkConfigKey *k = keys; k && k->name; k++)
        if (g_str_equal(k->name, name))
            return k;
    return NULL;
}

/* Checks @value against @k's type and bounds; the reason when it fails.
 * (transfer full) (nullable) */
static char *check_value(const MkConfigKey *k, const char *value)
{
    switch (k->type) {
    case MK_CONFIG_BOOL:
        if (g_str_equal(value, "true") || g_str_equal(value, "false"))
            return NULL;
        return g_strdup_printf("\"%s\" is not true or false", value);
    case MK_CONFIG_INT: {
        gboolean bounded = k->min != 0 || k->max != 0;
        gint64 n;
        if (!parse_int(value, G_MININT64, G_MAXINT64, &n))
            return g_strdup_printf("\"%s\" is not an integer", value);
        if (bounded && (n < k->min || n > k->max))
            return g_strdup_printf("%" G_GINT64_FORMAT " is out of range (%" G_GINT64_FORMAT
                                   "..%" G_GINT64_FORMAT ")",
                                   n, k->min, k->max);
        return NULL;
    }
    case MK_CONFIG_STRING:
    case MK_CONFIG_STRV:
        return NULL;
    }
    return g_strdup("unknown key type in the module's declaration");
}

/* Reads @group of @mc into @values, checking every key. */
static gboolean read_module_group(const MkModuleConfig *mc, const MkConfigKey *keys,
                                  const char *group, GHashTable *values, GError **error)
{
    if (!g_key_file_has_group(mc->keys, group))
        return TRUE;
    g_auto(GStrv) names = g_key_file_get_keys(mc->keys, group, NULL, NULL);
    for (char **n = names; n && *n; n++) {
        const MkConfigKey *k = find_key(keys, *n);
        if (!k) {
            cfg_error(error, MK_CONFIG_ERROR_KEY, mc->file, group, *n, "unknown key");
            return FALSE;
        }
        char *v = get_raw(mc->keys, group, *n);
        g_autofree char *reason = check_value(k, v);
        if (reason) {
            cfg_error(error, MK_CONFIG_ERROR_VALUE, mc->file, group, *n, "%s", reason);
            g_free(v);
            return FALSE;
        }
        g_hash_table_replace(values, g_strdup(*n), v);
    }
    return TRUE;
}

/* See conffile.h. (transfer full) key -> value strings; keys without a
 * value and without a default are absent. Any thread. */
GHashTable *mk_config_module_values(const MkModuleConfig *mc, const MkConfigKey *keys,
                                    const char *host_type, GError **error)
{
    g_return_val_if_fail(mc != NULL, NULL);
    g_autoptr(GHashTable) values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    /* The module's own defaults must hold too: a broken declaration is
     * reported at start, not when a value is first read. */
    for (const MkConfigKey *k = keys; k && k->name; k++) {
        if (!k->default_value)
            continue;
        g_autofree char *reason = check_value(k, k->default_value);
        if (reason) {
            g_set_error(error, MK_CONFIG_ERROR, MK_CONFIG_ERROR_VALUE, "%s: default of key %s: %s",
                        mc->name, k->name, reason);
            return NULL;
        }
        g_hash_table_replace(values, g_strdup(k->name), g_strdup(k->default_value));
    }
    if (!read_module_group(mc, keys, mc->name, values, error))
        return NULL;
    if (host_type) {
        g_autofree char *group = g_strdup_printf("%s@%s", mc->name, host_type);
        if (!read_module_group(mc, keys, group, values, error))
            return NULL;
    }
    return g_steal_pointer(&values);
}
