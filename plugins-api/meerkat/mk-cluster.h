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

G_END_DECLS
