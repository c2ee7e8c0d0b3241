/* Reading meerkat.conf and conf.d/ into an immutable MkConfigData.
 *
 * Layout (GKeyFile syntax; lists are ;-separated):
 *
 *   [general]
 *   hosts = localhost;example.net     # domains of the host type "default"
 *   state_dir = /var/lib/meerkat      # sqlite file, generated certs
 *   module_dir = /usr/lib/.../modules # where mod_*.so are found
 *   conf_dir = conf.d                 # relative to the main file's folder
 *   workers = 0                       # 0 = number of cores
 *   log_level = info                  # error|warning|message|info|debug
 *   node = meerkat@localhost
 *   fd_reserve = 0                    # descriptors kept from new connections; 0 = auto
 *
 *   [host_type.NAME]                  # optional, for multi-tenant setups
 *   domains = a.example;b.example
 *
 *   [auth]
 *   password_format = scram           # scram | plain
 *   scram_iterations = 4096           # 4096..1000000
 *   mechanisms = PLAIN;SCRAM-SHA-1;SCRAM-SHA-256;SCRAM-SHA-1-PLUS;SCRAM-SHA-256-PLUS
 *   anonymous_hosts =                 # domains where ANONYMOUS is offered
 *   failures_per_stream = 5           # then policy-violation (RFC 6120 6.4.5)
 *   address_failures = 10             # failed logins per address before backoff; 0 = off
 *   account_failures = 5              # per account (see docs/security.md); 0 = off
 *   backoff_max = 300                 # seconds
 *   forget_after = 900                # seconds after the last failure
 *   throttle_loopback = false         # limit 127.0.0.0/8 and ::1 too
 *
 *   [storage]
 *   driver = sqlite3                  # sqlite3 | pgsql
 *   database = meerkat.db             # sqlite: file (relative to state_dir); pgsql: dbname
 *   host = 127.0.0.1
 *   port = 5432
 *   user = meerkat
 *   password =
 *   pool_size = 4
 *
 *   [listen.c2s]                      # any name after "listen."
 *   type = c2s                        # c2s (the only type for now)
 *   address = 127.0.0.1
 *   port = 5222
 *   tls = required                    # required | optional | none | direct
 *                                     # default: required, optional on loopback
 *   certfile = /etc/meerkat/cert.pem  # default: STATE_DIR/meerkat.crt (made on first run)
 *   keyfile = /etc/meerkat/key.pem
 *   max_stanza_size = 65536
 *   max_depth = 64
 *   idle_timeout = 600                # seconds without any input; 0 = never
 *   backlog = 1024
 *   preauth_timeout = 30              # seconds to authenticate after connecting; 0 = never
 *   tls_handshake_timeout = 10        # seconds; 0 = never
 *   max_preauth_per_address = 20      # unauthenticated connections; 0 = no cap
 *   scram_y_flag = tls13              # refuse | tls13 | accept (docs/configuration.md)
 *
 *   [listen.api]                      # type = http: REST routes of the modules
 *   type = http                       # keys: address port tls (none|direct) certfile
 *                                     # keyfile idle_timeout backlog max_body_size
 *                                     # max_headers max_connections metrics
 *                                     # metrics_user metrics_password_file modules
 *
 * conf.d/NAME.conf: each file NAME.conf enables module NAME and holds its
 * [NAME] section (and [NAME@HOSTTYPE] overrides). Files are read in sorted
 * order; unknown sections and keys are errors naming the file and key. */
#pragma once

#include "mk-core.h"

typedef enum {
    MK_TLS_REQUIRED,
    MK_TLS_OPTIONAL,
    MK_TLS_NONE,
    MK_TLS_DIRECT,
} MkTlsMode;

/* When a SCRAM client's 'y' flag is accepted although -PLUS was offered. */
typedef enum {
    MK_SCRAM_Y_REFUSE, /* never (RFC 5802 section 6) */
    MK_SCRAM_Y_TLS13,  /* over TLS 1.3, whose only binding is tls-exporter */
    MK_SCRAM_Y_ACCEPT, /* always */
} MkScramYFlag;

typedef struct {
    char *name; /* "c2s" of [listen.c2s] */
    char *type; /* "c2s" */
    char *address;
    guint16 port;
    MkTlsMode tls;
    char *certfile; /* absolute */
    char *keyfile;  /* absolute */
    gsize max_stanza_size;
    guint max_depth;
    guint idle_timeout; /* seconds; 0 = never */
    int backlog;
    guint preauth_timeout;         /* seconds; 0 = never */
    guint tls_handshake_timeout;   /* seconds; 0 = never */
    guint max_preauth_per_address; /* 0 = no cap */
    MkScramYFlag scram_y_flag;
    /* type = http (core/http.c) */
    gsize max_body_size;
    guint max_headers;
    guint max_connections;
    guint max_connections_per_address; /* 0 = no cap */
    gboolean metrics;                  /* serve GET /metrics */
    char *metrics_user;                /* nullable: no auth for /metrics */
    char *metrics_password_file;       /* absolute; nullable */
    char **modules;                    /* whose routes it serves; empty: every module's */
} MkListenConfig;

/* [cluster] (docs/clustering.md); absent: a single node. */
typedef struct {
    char *name;        /* this node's name, unique in the cluster */
    guint node_number; /* 0..255, also mod_mam's default ID node number */
    char *redis_host;
    guint16 redis_port;
    char *redis_password; /* "" = none */
    char *secret;         /* shared by the nodes: authenticates links */
    char *link_address;   /* where the node link listener binds */
    guint16 link_port;    /* 0 = any free port */
    char *link_advertise; /* the address peers dial; default link_address */
    /* Node links in TLS (core/link.c): each node's certificate and key,
     * and the CA that signed every node's; the secret still required. */
    gboolean link_tls;
    char *link_certfile, *link_keyfile, *link_cafile; /* absolute; NULL without TLS */
} MkClusterConfig;

typedef struct {
    char *name;     /* "default" for [general] hosts */
    char **domains; /* prepared (nameprep'd), NULL-terminated */
} MkHostTypeConfig;

typedef struct {
    char *name;     /* "mod_roster" */
    char *file;     /* absolute path of its conf.d file */
    GKeyFile *keys; /* the file's contents: [mod_roster], [mod_roster@HT] */
    char *checksum; /* SHA-256 of the file's bytes: a reload restarts the
                     * module when it changes */
} MkModuleConfig;

struct MkConfigData {
    char *main_file;  /* absolute */
    char *conf_dir;   /* absolute */
    char *state_dir;  /* absolute */
    char *module_dir; /* absolute */
    char *node;
    guint workers; /* resolved: never 0 */
    /* Bound resources of one account; a bind past it is refused. */
    guint max_sessions_per_account;
    GLogLevelFlags log_level;
    guint fd_reserve; /* 0 = auto */

    GPtrArray *host_types; /* of MkHostTypeConfig*; at least "default" */

    /* [auth] */
    gboolean password_plain;
    guint scram_iterations;
    char **mechanisms;
    char **anonymous_hosts;
    guint auth_failures_per_stream;
    guint auth_address_failures; /* 0 = no limit */
    guint auth_account_failures; /* 0 = no limit */
    guint auth_backoff_max;      /* seconds */
    guint auth_forget_after;     /* seconds */
    gboolean auth_throttle_loopback;

    /* [storage] */
    char *db_driver; /* "sqlite3" | "pgsql" */
    char *db_name;   /* sqlite: absolute path; pgsql: database name */
    char *db_host;
    guint16 db_port;
    char *db_user;
    char *db_password;
    guint db_pool_size;

    /* [metrics] */
    char *metrics_textfile;          /* nullable: absolute path */
    guint metrics_textfile_interval; /* seconds */

    GPtrArray *listeners;     /* of MkListenConfig* */
    GPtrArray *modules;       /* of MkModuleConfig*, sorted by name */
    MkClusterConfig *cluster; /* nullable: no [cluster], one node */
};

/* Reads @path and its conf.d. Main thread or any tool; no side effects
 * beyond reading files. Returns: (transfer full) or NULL with a
 * MK_CONFIG_ERROR whose message names the file, the key and the reason. */
MkConfigData *mk_config_load(const char *path, GError **error);
void mk_config_free(MkConfigData *cfg);
/* The GLogLevelFlags of "error" | "warning" | "message" | "info" | "debug"
 * (error includes critical); FALSE when @name is none of them. */
gboolean mk_config_parse_log_level(const char *name, GLogLevelFlags *out);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkConfigData, mk_config_free)

/* (transfer none) (nullable) */
const MkModuleConfig *mk_config_find_module(const MkConfigData *cfg, const char *name);

/* Validates the [NAME] / [NAME@HOSTTYPE] sections of @mc against the
 * module's declared @keys for @host_type and returns the resolved values
 * (key -> string, defaults filled in). Errors name file and key.
 * Returns: (transfer full) */
GHashTable *mk_config_module_values(const MkModuleConfig *mc, const MkConfigKey *keys,
                                    const char *host_type, GError **error);
