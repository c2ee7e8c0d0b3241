/* mod_pubsub storage: the schema. Statements live beside their use in
 * ps-ops.c, always with bound values, run on a storage thread.
 *
 * One step serves both drivers (the common subset of sqlite3 and
 * PostgreSQL). A PEP node names its account in (username, domain), so
 * removing the account removes its nodes, and with them their items,
 * subscriptions and affiliations (ON DELETE CASCADE); the service's nodes
 * leave those NULL. Items are ordered by a per-node sequence number, not
 * by a clock, so two publishes in one millisecond keep their order. */
#include "pubsub.h"

const MkMigration ps_migrations[] = {
    {NULL, 1,
     "CREATE TABLE pubsub_nodes ("
     " service TEXT NOT NULL,"
     " node TEXT NOT NULL,"
     " username TEXT,"
     " domain TEXT,"
     " config TEXT NOT NULL,"
     " PRIMARY KEY (service, node),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ");"
     "CREATE TABLE pubsub_affiliations ("
     " service TEXT NOT NULL,"
     " node TEXT NOT NULL,"
     " jid TEXT NOT NULL,"
     " affiliation TEXT NOT NULL,"
     " PRIMARY KEY (service, node, jid),"
     " FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE"
     ");"
     "CREATE TABLE pubsub_subscriptions ("
     " service TEXT NOT NULL,"
     " node TEXT NOT NULL,"
     " jid TEXT NOT NULL,"
     " subid TEXT NOT NULL,"
     " state TEXT NOT NULL,"
     " PRIMARY KEY (service, node, subid),"
     " FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE"
     ");"
     "CREATE INDEX pubsub_subscriptions_jid ON pubsub_subscriptions (jid);"
     "CREATE TABLE pubsub_items ("
     " service TEXT NOT NULL,"
     " node TEXT NOT NULL,"
     " item_id TEXT NOT NULL,"
     " seq BIGINT NOT NULL,"
     " publisher TEXT NOT NULL,"
     " payload TEXT NOT NULL,"
     " PRIMARY KEY (service, node, item_id),"
     " FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE"
     ");"
     "CREATE INDEX pubsub_items_seq ON pubsub_items (service, node, seq)"},
    /* Subscription options (deliver, expire, show-values) as "key=value"
     * lines; a node's purge_offline beside its configuration, indexed,
     * so that a user going offline costs one lookup that finds nothing
     * unless such a node holds its items. The UPDATE reads the setting
     * of existing nodes from their configuration (never the first line,
     * and values have their newlines escaped). */
    {NULL, 2,
     "ALTER TABLE pubsub_subscriptions ADD COLUMN options TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE pubsub_nodes ADD COLUMN purge_offline INTEGER NOT NULL DEFAULT 0;"
     "UPDATE pubsub_nodes SET purge_offline = 1 WHERE config LIKE '%\npurge_offline=1\n%';"
     "CREATE INDEX pubsub_nodes_purge_offline ON pubsub_nodes (purge_offline)"},
    MK_MIGRATIONS_END,
};
