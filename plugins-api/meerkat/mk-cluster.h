#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The cluster this node belongs to (docs/clustering.md). */

/* This node's number in its cluster ([cluster] node_number, 0..255), 0
 * for a node without [cluster]. Unique per node: modules put it into
 * identifiers that must not collide across nodes (mod_mam's archive
 * IDs). Any thread. Since ABI 2.1. */
MK_API guint mk_cluster_node_number(void);

/* Whether this node is one of a cluster: other nodes may then change
 * shared data (a user's roster, say) behind this node's back, so a
 * module must not trust a cache that only local writes invalidate.
 * Any thread. Since ABI 2.1. */
MK_API gboolean mk_cluster_active(void);

/* Homes (docs/clustering.md, Rooms): state kept in memory under a key (a
 * MUC room's bare JID) lives on one node, claimed in Redis by the first
 * node that needs it and claimed again by the next one after its node
 * died. Call it for each stanza addressed to the key: TRUE means the key
 * is homed here (handle @stanza now); FALSE means the cluster took
 * @stanza: it went over the node link to the key's home (one hop, in
 * order per sender), where it is routed again (mk_router_send) and
 * reaches the same module, or it waits here, in order, until Redis
 * answered and is then routed again on this node or sent to the home
 * node. A stanza whose home cannot be reached for 10 s bounces with
 * remote-server-timeout. Without [cluster]: TRUE (one pointer test).
 * Any thread. (transfer none) Since ABI 2.3. */
MK_API gboolean mk_cluster_home_take(const char *key, MkStanza *stanza);
/* The node that homes @key as far as this node knows (NULL: not known,
 * or no cluster). Any thread. Returns: (transfer full) (nullable).
 * Since ABI 2.3. */
MK_API char *mk_cluster_home_node(const char *key);
/* Whether @node (a name from mk_cluster_home_node) is this node or one
 * whose link is up; TRUE for anything without a cluster. Any thread.
 * Since ABI 2.3. */
MK_API gboolean mk_cluster_node_reachable(const char *node);

G_END_DECLS
