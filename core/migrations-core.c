/* The core's schema: the accounts of the internal auth backend. Module
 * tables reference users(username, domain) ON DELETE CASCADE, so removing
 * an account removes its data. One step serves both drivers: the SQL is
 * the common subset of sqlite3 and PostgreSQL. */
#include "db.h"

/* Salt and keys are base64; iterations and keys follow RFC 5802/7677;
 * plain_password is set only with password_format = plain; created_at is
 * seconds since the epoch (integers read the same on every driver). */
const MkMigration mk_core_migrations[] = {
    {NULL, 1,
     "CREATE TABLE users ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " salt TEXT NOT NULL,"
     " iterations INTEGER NOT NULL,"
     " stored_key_sha1 TEXT NOT NULL,"
     " server_key_sha1 TEXT NOT NULL,"
     " stored_key_sha256 TEXT NOT NULL,"
     " server_key_sha256 TEXT NOT NULL,"
     " plain_password TEXT,"
     " created_at BIGINT NOT NULL,"
     " PRIMARY KEY (username, domain)"
     ");"
     /* Listing a domain's accounts; the primary key starts with username. */
     "CREATE INDEX users_domain ON users (domain, username)"},
    /* Domains added at run time (mk_domain_add_stored), served again
     * after a restart; the configuration's hosts are not here. */
    {NULL, 2,
     "CREATE TABLE domains ("
     " domain TEXT NOT NULL PRIMARY KEY,"
     " host_type TEXT NOT NULL,"
     " added_at BIGINT NOT NULL"
     ")"},
    MK_MIGRATIONS_END,
};
