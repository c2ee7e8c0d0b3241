/* mod_global_distrib: one domain served by several regions (clusters),
 * docs/mod_global_distrib.md. Internal header of the module.
 *
 * Threads: hook handlers run on workers and post to the module's own
 * thread ("mk-gdistrib", one GMainContext), which owns everything below
 * that is not marked otherwise: the Redis connections, the mapping
 * cache, the waiting stanzas and the inter-region links. */
#pragma once

#include <meerkat/module.h>
#include <hiredis/async.h>
#include "gd-cache.h"

typedef struct Gd Gd;
typedef struct GdRemote GdRemote;

/* A stanza on its way through the module. */
typedef struct {
    MkStanza *stanza;
    int hops;         /* inter-region links it crossed already */
    char *origin;     /* the region it entered by (NULL: this one) */
    int retries;      /* bounce retries spent */
    gint64 queued_at; /* monotonic µs, when it entered a remote's queue */
    gboolean fanout;  /* delivered here already: copies to the account's other regions */
} GdItem;

GdItem *gd_item_new(MkStanza *stanza, int hops);
void gd_item_free(gpointer item);

/* The metrics of one remote region. */
typedef struct {
    MkCounter *out, *in, *link_errors, *reconnects;
    MkHistogram *queue_time;
} GdRegionMetrics;

/* (transfer none) never NULL. Any thread. */
GdRegionMetrics *gd_region_metrics(Gd *gd, const char *region);

/* Config and state of one instance. */
struct Gd {
    MkModule *mod;
    char *global_host, *local_host;
    char *redis_host, *redis_password;
    int redis_port;
    char *secret;
    char *listen_address, *advertise;
    int listen_port;
    gint64 expire_after, refresh_after; /* seconds */
    int hop_limit;
    guint queue_max;
    gint64 queue_timeout_us;
    guint bounce_interval_ms, bounce_retries;

    /* Metrics (any thread). Per remote region: @regions, built in
     * start() from the regions key (others count as "other"). */
    MkCounter *c_hits, *c_misses, *c_queue_full, *c_hop_limit, *c_unreachable, *c_bounced, *c_local;
    MkCounter *c_copies, *c_copies_dropped;
    MkGauge *g_queued, *g_links_up;
    GHashTable *regions; /* name → GdRegionMetrics, read-only once started */

    /* Service domains (rooms, components; gd-services.c), read-only once
     * started: served here (advertised in Redis), or served by another
     * region (claimed here with mk_route_register and forwarded). */
    char **services, **remote_services;
    /* REST admin (gd-rest.c), read-only once started. */
    char *rest_prefix, *rest_admin_user, *rest_admin_password;

    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;

    /* Inbox from workers: under @lock. */
    GMutex lock;
    GQueue inbox;
    gboolean scheduled, stopping;

    /* Module thread only. */
    redisAsyncContext *cmd, *sub;
    GSource *redis_retry;
    gboolean redis_warned;
    GdCache *cache;
    GHashTable *local_jids; /* full JIDs bound on this node */
    GHashTable *waits;      /* bare JID → GdWait: stanzas waiting, in order */
    GHashTable *remotes;    /* region → GdRemote */
    GPtrArray *inbound;     /* accepted links (GdInbound) */
    int listen_fd;
    GSource *listen_src, *refresh_src;

    /* Accounts known, until the time (monotonic µs) they map to, to be
     * bound in this region only: workers skip posting their copies and
     * carbons (gd-fanout.c). Under @solo_lock; any thread. */
    GMutex solo_lock;
    GHashTable *solo;
    gint64 solo_lifetime;
    guint solo_max;

    MkLinkAuth *link_auth;   /* name, secret, TLS of the links (module thread) */
    guint pool;              /* connections per remote region */
    MkCounter *c_refused[6]; /* links refused, by MkLinkError */
};

/* gd-redis.c (module thread) */
void gd_redis_connect(Gd *gd);
void gd_redis_close(Gd *gd);
gboolean gd_redis_up(Gd *gd);
void gd_redis_bind(Gd *gd, const char *full, const char *bare);
void gd_redis_unbind(Gd *gd, const char *full, const char *bare, gboolean bare_too);
void gd_redis_refresh(Gd *gd, gboolean all);
/* Reads the records of @keys (NULL-terminated "j:JID" / "h:BARE");
 * @done gets the values in order (NULL entries: none), or NULL when
 * Redis is not there. */
typedef void (*GdValuesFunc)(Gd *gd, char **values, gpointer data);
void gd_redis_get(Gd *gd, const char *const *keys, GdValuesFunc done, gpointer data,
                  GDestroyNotify destroy);
/* The endpoints ("ADDRESS:PORT") region @host advertises now. */
void gd_redis_endpoints(Gd *gd, const char *host, GdValuesFunc done, gpointer data,
                        GDestroyNotify destroy);

/* mod_global_distrib.c (module thread) */
void gd_route(Gd *gd, GdItem *item);
/* Routes @stanza on the worker that owns its recipient: as arrived over
 * links after @hops (from @origin), or @here (mk_router_send_here). */
void gd_handoff(Gd *gd, MkStanza *stanza, int hops, const char *origin, gboolean here);
/* A stanza that cannot leave (no region, link lost): here after all. */
void gd_deliver_here(Gd *gd, GdItem *item);
/* A link delivered @st from region @origin after @hops links. */
void gd_received(Gd *gd, MkStanza *st, const char *origin, int hops, const char *peer);
void gd_invalidate(Gd *gd, const char *jid);

/* gd-link.c (module thread; gd_links_listen on the main thread at start) */
gboolean gd_links_listen(Gd *gd, GError **error);
void gd_links_close(Gd *gd);
void gd_link_send(Gd *gd, const char *host, GdItem *item);

/* mod_global_distrib.c: takes @st (from a hook or a route, on a worker)
 * to be looked up and sent on; FALSE once the module is stopping. */
gboolean gd_take(Gd *gd, MkStanza *st);

/* gd-services.c. Main thread, in start(): reads `services` and
 * `remote_services`, claims the remote ones. */
gboolean gd_services_start(Gd *gd, GError **error);
/* Whether @domain is a service domain of this region / of another
 * region. Any thread. */
gboolean gd_service_local(Gd *gd, const char *domain);
gboolean gd_service_remote(Gd *gd, const char *domain);
/* Module thread: this region's service records, written or pushed back
 * (with Redis up); removed at shutdown. */
void gd_services_refresh(Gd *gd, gboolean all);
void gd_services_unbind(Gd *gd);

/* gd-redis.c: every region that advertised, each followed by its live
 * endpoints (space-separated), as flat values. Module thread. */
void gd_redis_regions(Gd *gd, GdValuesFunc done, gpointer data, GDestroyNotify destroy);

/* gd-link.c: the link to region @host ("up", "connecting", "down" or
 * "none") and the stanzas waiting for it. Module thread. */
const char *gd_link_state(Gd *gd, const char *host, guint *queued);

/* gd-rest.c. Main thread, in start(): GET PREFIX/global-distrib/regions. */
gboolean gd_rest_start(Gd *gd, GError **error);
/* Module thread: answers @req (transfer full) with the regions. */
void gd_rest_answer(Gd *gd, MkHttpRequest *req);
/* mod_global_distrib.c. Worker: hands @req (transfer none) to the module
 * thread for gd_rest_answer; FALSE once stopping. */
gboolean gd_rest_post(Gd *gd, MkHttpRequest *req);

/* gd-fanout.c: an account bound in several regions at once
 * (docs/mod_global_distrib.md, "A user in several regions"). */
#define GD_NS "urn:meerkat:global-distrib"
/* Whether @st (to a bare JID here) is one whose copies go to the
 * account's other regions: messages but groupchat and errors, and
 * availability presence. Any thread. */
gboolean gd_fanout_kind(MkStanza *st);
/* @st with the copy marker added (@mark) or removed. (transfer full) */
MkStanza *gd_fanout_marked(MkStanza *st, gboolean mark);
gboolean gd_fanout_is_copy(MkStanza *st);
/* Module thread, with Redis up: the account's set of regions
 * (gd:r:BARE) gets or loses this region. */
void gd_fanout_bind(Gd *gd, const char *bare);
void gd_fanout_unbind(Gd *gd, const char *bare);
/* Any thread: whether @bare is known to be bound in this region only
 * (its copies and carbons need not be posted to the module thread). */
gboolean gd_solo_known(Gd *gd, const char *bare);
/* Module thread: what the last look-up of @bare's region set said
 * (@regions space-separated; NULL: unknown); or forget it. */
void gd_solo_learn(Gd *gd, const char *bare, const char *regions);
void gd_solo_forget(Gd *gd, const char *bare);
/* Module thread: @done gets one value, the regions of @bare
 * space-separated (NULL entries: none, or Redis is not there). */
void gd_fanout_get(Gd *gd, const char *bare, GdValuesFunc done, gpointer data,
                   GDestroyNotify destroy);

/* gd-carbons.c. Any thread: the carbon of @st for the account's other
 * regions, from its bare JID to itself: <sent/> when @sent (@st is from
 * one of the account's resources), else <received/> (@st is for one of
 * its full JIDs). NULL when @st takes no carbon or is not the global
 * host's. (transfer full) */
MkStanza *gd_carbon_for(Gd *gd, MkStanza *st, gboolean sent);
