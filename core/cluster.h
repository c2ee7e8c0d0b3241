/* The cluster: several meerkatd nodes serving one set of domains
 * (docs/clustering.md). Redis holds membership (a heartbeat key per node)
 * and the session table (bare JID -> resource -> record); every node keeps
 * a stand-in MkSession for each session of the other nodes in its own
 * table, kept current through Redis pub/sub, and sends stanzas for them
 * over a node link (core/cluster-link.c).
 *
 * Threads: the cluster runs on its own thread ("mk-cluster") with its own
 * GMainContext: the Redis connections and the link sockets live there.
 * Workers call the mk_cluster_session_* notifications (a queue push) and
 * mk_cluster_forward (a write under the peer link's lock). */
#pragma once

#include "conffile.h"
#include "mk-core.h"
#include "worker.h"

typedef struct MkCluster MkCluster;
struct MkC2sServer;

/* What a stand-in knows of its session. Immutable once made, but for
 * @presence, parsed into MkSession.last_presence on first use (under
 * the session's shard lock, sm.c). */
typedef struct MkRemoteSession {
    char *node;
    guint64 id;
    GHashTable *flags; /* module name -> GUINT_TO_POINTER(flags), nullable */
    char *presence;    /* XML of the last presence, nullable */
} MkRemoteSession;

void mk_remote_session_free(MkRemoteSession *r);

/* A client resumed, on this node, a session @previd that is not here;
 * if the id names another node, that node ends it (mk_c2s_sm_release).
 * @cl nullable (no cluster: nothing). Any thread. */
void mk_cluster_resumed_elsewhere(MkCluster *cl, const char *previd, const char *bare, guint32 h);
/* The c2s server whose resumable sessions other nodes may release. */
void mk_cluster_set_c2s(MkCluster *cl, struct MkC2sServer *cs);

/* Starts the cluster thread for @cfg: link listener bound, Redis connected
 * in the background (a Redis not yet running is retried). NULL with
 * @error when the link listener cannot bind. Main thread. */
MkCluster *mk_cluster_start(MkServer *srv, const MkClusterConfig *cfg, GError **error);
/* Leaves the cluster: the node's key and what is left of its sessions
 * removed from Redis (waits up to 2 s), links closed, thread joined.
 * Main thread, after every stream ended, before the workers stop. */
void mk_cluster_stop(MkCluster *cl);

/* From the session table (sm.c) about local sessions; any thread. */
void mk_cluster_session_bound(MkCluster *cl, MkSession *s);
void mk_cluster_session_changed(MkCluster *cl, MkSession *s);
void mk_cluster_session_unbound(MkCluster *cl, MkSession *s);

/* Sends @st to the stand-in @proxy's node; when it cannot go there, the
 * router's fallback for a session that went away. Any thread. */
void mk_cluster_forward(MkCluster *cl, MkSession *proxy, MkStanza *st);
/* Whether stanzas can go to @node now (its link is up). @cl nullable.
 * Any thread. */
gboolean mk_cluster_reachable(MkCluster *cl, const char *node);
/* Asks the stand-in's node to close its session with @stream_error. */
void mk_cluster_close_remote(MkCluster *cl, MkSession *proxy, const char *stream_error);

/* Runs @func(@data) on @worker once Redis confirmed the writes of every
 * session event queued before this call (a bind's record), or at once
 * when Redis is away, or after 2 s. @free_func frees @data if the
 * worker stops first. Any thread. */
void mk_cluster_when_written(MkCluster *cl, MkWorker *worker, MkJobFunc func, gpointer data,
                             GDestroyNotify free_func);
/* The router found no session for message @st: TRUE when the cluster
 * takes it to look for sessions in Redis that this node has not heard
 * of yet, and routes it again (mk_router_message_rechecked) on the
 * account's worker; FALSE (no cluster, Redis away): go on. Any thread. */
gboolean mk_cluster_offline_recheck(MkCluster *cl, MkStanza *st);

/* ---- between cluster.c and cluster-link.c ---------------------------- */

typedef struct MkLinks MkLinks;

/* Link frame types (docs/clustering.md, Node links). The first three are
 * the handshake's, sent and read by core/link.c (MK_LINK_FRAME_*). */
enum {
    MK_LINK_HELLO = 1,   /* acceptor -> dialer: name, nonce */
    MK_LINK_AUTH = 2,    /* dialer -> acceptor: name, HMAC(secret, nonce . name), nonce */
    MK_LINK_OK = 3,      /* acceptor -> dialer: HMAC(secret, nonce' . name) */
    MK_LINK_STANZA = 4,  /* target full JID, NUL, stanza XML */
    MK_LINK_CLOSE = 5,   /* target full JID, NUL, session id, NUL, stream error */
    MK_LINK_RELEASE = 6, /* resumption id, NUL, bare JID, NUL, h */
};

/* Cluster thread: the listener on @address:@port (0 = any); TLS when
 * @certfile is set (core/link.c, mk_link_auth_new). */
MkLinks *mk_links_new(MkCluster *cl, GMainContext *ctx, const char *address, guint16 port,
                      const char *name, const char *secret, const char *certfile,
                      const char *keyfile, const char *cafile, GError **error);
guint16 mk_links_port(MkLinks *links);
/* Cluster thread: a peer seen in Redis at @host:@port; dialled if new or moved. */
void mk_links_peer_seen(MkLinks *links, const char *node, const char *host, guint16 port);
/* Cluster thread: forget a peer (it left or died). */
void mk_links_peer_gone(MkLinks *links, const char *node);
/* Whether the link to @node is up (authenticated). Any thread. */
gboolean mk_links_peer_up(MkLinks *links, const char *node);
/* Queues a frame for @node: FALSE when there is no live link. Any thread. */
gboolean mk_links_send(MkLinks *links, const char *node, guint8 type, const char *a, const char *b,
                       const char *c);
/* Peers whose dialled link is up. Any thread. */
guint mk_links_count_up(MkLinks *links);
/* Cluster thread, at stop. */
void mk_links_free(MkLinks *links);

/* cluster.c, on the cluster thread: a stanza (transfer none) for the
 * local session @target (full JID) with id @id came in. */
void mk_cluster_link_stanza(MkCluster *cl, const char *target, guint64 id, MkXml *stanza);
/* cluster.c, on the cluster thread: another frame came in from @node. */
void mk_cluster_link_frame(MkCluster *cl, const char *node, guint8 type, const char *data,
                           gsize len);
/* cluster.c, cluster thread: a peer's link was refused (a MkLinkError
 * code): counted by reason. */
void mk_cluster_link_refused(MkCluster *cl, int reason);
