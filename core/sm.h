/* The session manager: bound sessions of this node, by bare JID.
 *
 * Single node: an in-process table sharded by bare JID (a mutex per
 * shard), behind MkSmBackend so that a cluster backend (Redis) can
 * implement the same operations later. Sessions themselves belong to the
 * worker that owns their stream; other threads only read their routing
 * state (priority, availability, last presence) under the shard lock and
 * send to them through mk_session_send (a mailbox post). */
#pragma once

#include "mk-core.h"
#include "modules.h"
#include "worker.h"

/* How a session reaches its client: c2s today; BOSH and WebSocket later;
 * unit tests plug in a recorder. Both run on the owner worker only. */
typedef struct {
    /* Writes a stanza that passed user_receive_packet. */
    void (*deliver)(MkSession *s, MkStanza *st);
    /* Ends the stream with a stream error (or cleanly when NULL). */
    void (*close)(MkSession *s, const char *stream_error);
    /* Writes a stream-level element (no hooks). NULL: not supported. */
    void (*write_xml)(MkSession *s, MkXml *el);
} MkSessionTransport;

struct MkSession {
    gint ref;
    MkJid *jid;       /* full, immutable */
    MkWorker *worker; /* owner, immutable */
    guint64 id;       /* node-unique */
    const MkSessionTransport *transport;
    gpointer transport_data; /* owner worker only; NULL once the stream ended */
    /* Routing state: written by the owner under the shard lock. */
    int priority;
    gboolean available;        /* sent available broadcast presence */
    gint64 available_since_us; /* wall clock of the last unavailable -> available */
    MkStanza *last_presence;
    gint64 last_input_us; /* monotonic; atomic-ish (gint64 store on x86-64) */
    gint detached;        /* atomic: XEP-0198, the connection is gone, resumption awaited */
    gint bound;           /* atomic: in the session table (mk_sm_register .. unregister) */
    /* Owner worker only. */
    GHashTable *slots;           /* MkModule* -> SessionSlot* */
    GHashTable *directed;        /* full JID string -> MkJid*: directed presence sent */
    struct MkPreloads *preloads; /* auth_preload's results, until taken */
    /* Any thread, under the session's shard lock. */
    GArray *shared; /* SessionShared: mk_session_set_flags/_string */
    /* Cluster (core/cluster.h): non-NULL when this is the local stand-in
     * of a session on another node; immutable. */
    struct MkRemoteSession *remote;
    /* Any thread, under caps.c's lock: XEP-0115 caps (mk-caps.h). */
    struct MkCapsRecord *caps;
};

typedef struct MkCapsRecord MkCapsRecord;
/* Drops a reference on a caps record (caps.c). Any thread. */
void mk_caps_record_unref(MkCapsRecord *r);

MkSm *mk_sm_new(void);
void mk_sm_free(MkSm *sm);

/* Creates a session for @jid on @w, reached through @transport with
 * @data (the transport's own object). Returns: (transfer full). */
MkSession *mk_session_new(MkJid *jid, MkWorker *w, const MkSessionTransport *transport,
                          gpointer data);
/* Gives @s what auth_preload read for its account. (transfer full) of
 * @preloads (nullable). Owner worker, before the session is used. */
void mk_session_set_preloads(MkSession *s, struct MkPreloads *preloads);
/* Runs user_receive_packet and hands @st to the transport. Owner worker. */
void mk_session_deliver_local(MkSession *s, MkStanza *st);
/* The same with the hook lookups of @dh (nullable; modules.h), reused
 * across a run of copies. Owner worker. */
void mk_session_deliver_cached(MkSession *s, MkStanza *st, MkDomainHooks *dh);

/* Adds @s. When a session with the same full JID exists, it is removed
 * from the table and returned (transfer full) so the caller can close it
 * with a conflict error. Any thread. */
MkSession *mk_sm_register(MkSm *sm, MkSession *s);
/* Like mk_sm_register, but refuses (FALSE, nothing changed) when the
 * account already has @max sessions and @s would not replace one of the
 * same full JID. @old: (out) (transfer full) (nullable) as returned by
 * mk_sm_register. Any thread. */
gboolean mk_sm_register_limited(MkSm *sm, MkSession *s, guint max, MkSession **old);
/* Removes @s if present. Any thread. */
void mk_sm_unregister(MkSm *sm, MkSession *s);
/* (transfer full) (nullable) The session bound to full JID @jid. */
MkSession *mk_sm_find(MkSm *sm, MkJid *jid);
/* (transfer full) sessions of @bare; element free = mk_session_unref. */
GPtrArray *mk_sm_sessions(MkSm *sm, MkJid *bare);
/* The sessions of @bare that take a message sent to the bare JID
 * (RFC 6121 8.5.2.1.1): available, priority >= 0, and of the highest
 * such priority unless @every. Chosen under the lock that availability
 * changes take; *@chosen_us is ordered with their stamps: a session whose
 * mk_session_available_since_us is <= it was in the choice, one whose
 * stamp is later was not (c2s-sm.c relies on it when a detached session's
 * queue is routed again). (transfer full) Any thread. */
GPtrArray *mk_sm_bare_targets(MkSm *sm, MkJid *bare, gboolean every, gint64 *chosen_us);
/* The @chosen_us of the bare-JID choice that routed @st (0: none). Set by
 * the router before delivery; read by the receiving stream. Any thread. */
void mk_stanza_set_chosen_us(MkStanza *st, gint64 chosen_us);
gint64 mk_stanza_chosen_us(const MkStanza *st);
/* Updates the routing state of @s from a broadcast presence. */
void mk_sm_set_presence(MkSm *sm, MkSession *s, MkStanza *presence, gboolean available,
                        int priority);
guint mk_sm_count(MkSm *sm);
/* Whether @s is available with a non-negative priority and has been
 * since @since_us (wall clock) or earlier: then it received what was
 * routed to the account's bare JID at that time. Any thread. */
gboolean mk_sm_available_since(MkSm *sm, MkSession *s, gint64 since_us);

/* ---- cluster (core/cluster*.c; docs/clustering.md) ------------------- */

struct MkCluster;
struct MkRemoteSession;

/* Lets @sm tell @cl about local sessions (bind, presence, flags, end).
 * Main thread, before any session binds or after all ended. */
void mk_sm_set_cluster(MkSm *sm, struct MkCluster *cl);
/* (transfer none) (nullable) Any thread. */
struct MkCluster *mk_sm_get_cluster(MkSm *sm);
/* Adds or replaces @proxy, the stand-in of a session of another node
 * (@proxy->remote set), in the table; its same-node predecessor of the
 * same full JID goes. Not counted in mk_sm_count. Any thread. */
void mk_sm_put_remote(MkSm *sm, MkSession *proxy);
/* Removes the stand-in for @full of node @node (and id @id, 0 = any).
 * Any thread. */
void mk_sm_drop_remote(MkSm *sm, MkJid *full, const char *node, guint64 id);
/* Removes every stand-in of @node (NULL: of every node). Any thread. */
void mk_sm_drop_node(MkSm *sm, const char *node);
/* Removes the stand-ins of @node whose session id is not in @keep (a
 * set of guint64*). Returns how many went. Any thread. */
guint mk_sm_prune_node(MkSm *sm, const char *node, GHashTable *keep);
/* (transfer full) The local session bound to @full, never a stand-in. */
MkSession *mk_sm_find_local(MkSm *sm, MkJid *full);
/* (transfer full) every local session; element free = mk_session_unref. */
GPtrArray *mk_sm_local_sessions(MkSm *sm);
/* mk_session_new for a stand-in: @remote (transfer full) is the cluster's. */
MkSession *mk_session_new_remote(MkJid *jid, struct MkRemoteSession *remote, int priority,
                                 gboolean available, gint64 since_us, MkStanza *last_presence);
/* Wall clock of @s's last unavailable -> available. Any thread. */
gint64 mk_session_available_since_us(MkSession *s);
/* "mod_a=1,mod_b=3": the non-zero mk_session_set_flags of @s by module
 * name, for the cluster's session record. (transfer full) Any thread. */
char *mk_session_flags_text(MkSession *s);
