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
    /* XEP-0198 resumption on another node (core/cluster-resume.c). */
    MK_LINK_RESUME_ASK = 7,   /* request id, NUL, resumption id, NUL, bare JID TAB h */
    MK_LINK_RESUME_STATE = 8, /* request id, NUL, header ("" = not here), NUL, body */
    MK_LINK_RESUME_DONE = 9,  /* resumption id, NUL, bare JID, NUL, "1" taken / "0" not */
    /* A stanza as its recipient's stream gets it (replaces STANZA on the
     * chat path): target full JID, NUL, from, NUL, to ("" = none), NUL,
     * the element serialised for jabber:client (the receiver writes it
     * out as it is, parsing it only if something asks for the tree). */
    MK_LINK_WIRE = 10,
    /* Far from the others: frame types added by other work come first. */
    MK_LINK_HOMED = 32, /* key, NUL, hops, NUL, stanza XML (cluster-home.c) */
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
/* Queues a MK_LINK_WIRE frame for @node (@xml need not end in NUL):
 * FALSE when there is no live link. Any thread. */
gboolean mk_links_send_wire(MkLinks *links, const char *node, const char *target, const char *from,
                            const char *to, const char *xml, gsize xml_len);
/* Peers whose dialled link is up. Any thread. */
guint mk_links_count_up(MkLinks *links);
/* Cluster thread, at stop. */
void mk_links_free(MkLinks *links);

/* cluster.c, on the cluster thread: a stanza (transfer none) for the
 * local session @target (full JID) with id @id came in. */
void mk_cluster_link_stanza(MkCluster *cl, const char *target, guint64 id, MkXml *stanza);
/* cluster.c, on the cluster thread: a MK_LINK_WIRE frame's fields
 * (transfer none; @xml is @xml_len bytes, not NUL-terminated). */
void mk_cluster_link_wire(MkCluster *cl, const char *target, const char *from, const char *to,
                          const char *xml, gsize xml_len);
/* cluster.c, on the cluster thread: another frame came in from @node. */
void mk_cluster_link_frame(MkCluster *cl, const char *node, guint8 type, const char *data,
                           gsize len);

/* ---- XEP-0198 resumption on another node (cluster-resume.c) ---------- */

/* What a session's node hands over when its client resumes elsewhere
 * (docs/clustering.md, Resumption on another node). */
typedef struct {
    char *full; /* the session's full JID */
    guint32 h_in, h_out;
    guint timeout; /* the session's resumption timeout, s */
    int priority;
    gboolean available;
    char *flags;         /* "module=flags,...", as in the session record */
    char *presence;      /* last broadcast presence (XML), nullable */
    GPtrArray *directed; /* char*: full JIDs it sent directed presence to */
    GPtrArray *queue;    /* char*: unacknowledged stanzas (XML), oldest first */
    GArray *stamps;      /* gint64 per queued stanza: when it was first sent */
} MkMovedSession;

MkMovedSession *mk_moved_session_new(void);
void mk_moved_session_free(MkMovedSession *ms);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MkMovedSession, mk_moved_session_free)

/* On the asking node's worker: @ms (transfer full) is the session, or
 * NULL when its node does not have it, is unreachable or did not answer
 * in time. */
typedef void (*MkResumeFetched)(MkMovedSession *ms, const char *node, gpointer data);

/* Asks the node named by @previd ("NODE~...") for the session; @func
 * runs once on @worker (mk_worker_self()). FALSE (nothing will run) when
 * @previd names no other node or its link is down. Any worker. */
gboolean mk_cluster_resume_fetch(MkCluster *cl, const char *previd, const char *bare, guint32 h,
                                 MkResumeFetched func, gpointer data, GDestroyNotify free_func);
/* This node's session @previd went on on @node: later requests for it
 * are pointed there for @timeout seconds. Any thread. */
void mk_cluster_resume_moved(MkCluster *cl, const char *previd, const char *node, guint timeout);
/* The resuming node says whether it took the session @previd of @node
 * (its record is in Redis) or gave up. Any thread. */
void mk_cluster_resume_done(MkCluster *cl, const char *node, const char *previd, const char *bare,
                            gboolean taken);
/* The session's node answers request @reqid of @node: @ms NULL = not
 * here. Any thread. (A node that let the session go answers with a hint,
 * header "" and the node it went to, and the asker asks there.) */
void mk_cluster_resume_answer(MkCluster *cl, const char *node, const char *reqid,
                              const MkMovedSession *ms);
/* The session's node, between its answer and the resuming node's
 * DONE: a stanza (serialised in jabber:client) for the moved session
 * @full goes on to @node. FALSE: the link is down. Any thread. */
gboolean mk_cluster_resume_forward(MkCluster *cl, const char *node, const char *full,
                                   const char *xml, gsize len);
/* The resuming node: stanzas forwarded for @full that came before its
 * session was registered, oldest first (transfer full; NULL: none), and
 * the waiting list is closed. Any thread. */
GQueue *mk_cluster_resume_arrived(MkCluster *cl, const char *full);
/* cluster.c: a RESUME_* frame from @node (cluster thread, c2s_lock held). */
void mk_cluster_resume_frame(MkCluster *cl, struct MkC2sServer *cs, const char *node, guint8 type,
                             const char *data, gsize len);
/* cluster.c: a stanza for @full, which has no local session: TRUE when a
 * resumption waits for it and took it (cluster thread). */
gboolean mk_cluster_resume_hold(MkCluster *cl, const char *full, MkXml *stanza);

/* ---- between cluster.c and cluster-home.c (homes of keys) -------------- */

typedef struct MkHomes MkHomes;
struct redisAsyncContext;

/* Main thread, at start and (after the cluster thread ended) at stop. */
MkHomes *mk_homes_new(MkCluster *cl, MkServer *srv);
void mk_homes_free(MkHomes *hs);
/* Cluster thread: claims still unknown asked again, late ones bounced. */
void mk_homes_tick(MkHomes *hs);
/* Cluster thread: drops @node's claims in Redis (@self: even while its
 * heartbeat lives). */
void mk_homes_reap(MkHomes *hs, const char *node, gboolean self);
/* Cluster thread: Redis (re)connected, after this node's leftovers were
 * reaped: its homes are claimed again. */
void mk_homes_redis_up(MkHomes *hs);
/* Cluster thread: @node left or died. */
void mk_homes_node_gone(MkHomes *hs, const char *node);
/* Cluster thread: a HOMED frame from @node. */
void mk_homes_frame(MkHomes *hs, const char *node, const char *data, gsize len);

/* cluster.c for cluster-home.c. mk_cluster_cmd: a command on the command
 * connection (FALSE: Redis away); its callback (NULL: none) calls
 * mk_cluster_reply_seen when ac->data is set. Cluster thread. */
gboolean mk_cluster_cmd(MkCluster *cl, void (*cb)(struct redisAsyncContext *, void *, void *),
                        void *priv, const char *fmt, ...);
void mk_cluster_reply_seen(MkCluster *cl, void *reply);
/* Any thread: set at start, then read only. */
const char *mk_cluster_name(MkCluster *cl);
GMainContext *mk_cluster_context(MkCluster *cl);
MkLinks *mk_cluster_links(MkCluster *cl);
MkHomes *mk_cluster_homes(MkCluster *cl);
/* The worker that handles @key's cluster work (a stable hash). */
MkWorker *mk_cluster_worker_for(MkCluster *cl, const char *key);

/* cluster.c, cluster thread: a peer's link was refused (a MkLinkError
 * code): counted by reason. */
void mk_cluster_link_refused(MkCluster *cl, int reason);
