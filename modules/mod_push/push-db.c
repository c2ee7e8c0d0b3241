/* The push enablements table. One row per (account, app server, node):
 * the resource that enabled it (its notifications are for that device),
 * the publish-options form as the client sent it, and the app server's
 * errors in a row. Rows reference the account, so removing it removes
 * them. The same SQL serves sqlite3 and PostgreSQL; IF NOT EXISTS because
 * mod_push and mod_event_pusher each ship it (only one runs at a time,
 * but a site may switch from one to the other). */
#include "push.h"

const MkMigration push_migrations[] = {
    {NULL, 1,
     "CREATE TABLE IF NOT EXISTS push_enablements ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " resource TEXT NOT NULL,"
     " service TEXT NOT NULL,"
     " node TEXT NOT NULL,"
     " form TEXT,"
     " errors INTEGER NOT NULL DEFAULT 0,"
     " PRIMARY KEY (username, domain, service, node),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};
