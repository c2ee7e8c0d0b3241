/* Core-internal umbrella: the public module API plus core-only types.
 * Never installed; modules cannot include it. */
#pragma once

#define MK_COMPILATION 1
#include <config.h> /* autoconf */
#include <meerkat/mk-version.h>
#include <meerkat/mk-types.h>
#include <meerkat/mk-xml.h>
#include <meerkat/mk-jid.h>
#include <meerkat/mk-stanza.h>
#include <meerkat/mk-config.h>
#include <meerkat/mk-db.h>
#include <meerkat/mk-moddesc.h>
#include <meerkat/mk-hooks.h>
#include <meerkat/mk-iq.h>
#include <meerkat/mk-session.h>
#include <meerkat/mk-router.h>
#include <meerkat/mk-disco.h>
#include <meerkat/mk-timer.h>
#include <meerkat/mk-metrics.h>
#include <meerkat/mk-stream.h>
#include <meerkat/mk-account.h>
#include <meerkat/mk-userqueue.h>
#include <meerkat/mk-usercache.h>
#include <meerkat/mk-archive.h>
#include <meerkat/mk-roster.h>
#include <meerkat/mk-xep82.h>
#include <meerkat/mk-server.h>
#include <meerkat/mk-fanout.h>
#include <meerkat/mk-http.h>
#include <meerkat/mk-domains.h>
#include <meerkat/mk-cluster.h>
#include <meerkat/mk-owner.h>
#include <meerkat/mk-caps.h>

typedef struct MkServer MkServer;
typedef struct MkWorker MkWorker;
typedef struct MkWorkers MkWorkers;
typedef struct MkConn MkConn;
typedef struct MkDb MkDb;
typedef struct MkModules MkModules;
typedef struct MkConfigData MkConfigData;
typedef struct MkHosts MkHosts;
typedef struct MkSm MkSm;

/* g_str_hash of @s, but never 0 (a cached 0 would mean "not made"). */
static inline guint mk_str_hash_nonzero(const char *s)
{
    guint h = g_str_hash(s);
    return h ? h : 1;
}
/* mk_str_hash_nonzero of @jid's bare JID, made once per JID and kept in
 * it: the session table's shard and its table's bucket both come from it
 * (sm.c), so a copy routed to a long-lived JID hashes nothing. Any
 * thread. */
guint mk_jid_bare_hash(const MkJid *jid);

/* Error domains of core subsystems that modules never see (MK_DB_ERROR
 * and MK_MODULE_ERROR are public: mk-db.h, mk-moddesc.h). */
#define MK_CONFIG_ERROR (mk_config_error_quark())
#define MK_AUTH_ERROR   (mk_auth_error_quark())
GQuark mk_config_error_quark(void);
GQuark mk_auth_error_quark(void);

typedef enum {
    MK_CONFIG_ERROR_PARSE, /* syntax */
    MK_CONFIG_ERROR_KEY,   /* unknown key / missing required key */
    MK_CONFIG_ERROR_VALUE, /* wrong type or out of bounds */
    MK_CONFIG_ERROR_FILE,  /* cannot read */
} MkConfigErrorCode;

typedef enum {
    MK_AUTH_ERROR_NO_USER,
    MK_AUTH_ERROR_EXISTS,
    MK_AUTH_ERROR_INVALID, /* bad username/domain/password */
} MkAuthErrorCode;
