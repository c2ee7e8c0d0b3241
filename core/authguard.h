/* Limits on password guessing and on unauthenticated connections, shared
 * by every worker (docs/security.md, "Authentication and connections"):
 *
 * - per address (an IPv4 address, or the /64 of an IPv6 one): after
 *   address_failures failed logins, each further failure doubles a
 *   backoff (1 s, 2 s, ... up to backoff_max) during which logins from
 *   the address fail at once, without a database read or a hash;
 * - per account: after account_failures failed logins (from anywhere),
 *   the same backoff for the account, but only against addresses that
 *   have failed logins of their own on record: an address with a clean
 *   record still gets its attempt, so that an attacker cannot lock the
 *   owner out;
 * - per address, at most a given number of unauthenticated connections
 *   at a time.
 *
 * Failures are forgotten some time after the last one (forget_after).
 * While no address or account has failures on record, the checks cost an
 * atomic read each: the success path of a login does no lookup beyond
 * the count of unauthenticated connections.
 *
 * Every function is callable from any thread. */
#pragma once

#include "mk-core.h"
#include <sys/socket.h>

/* An address as the limits see it: IPv4, or the first 64 bits of IPv6
 * (one site's or one host's prefix). */
typedef struct {
    guint8 family; /* 0: none (unknown peer: never limited), 4 or 6 */
    guint8 loopback;
    guint8 bytes[8];
} MkAddrKey;

/* From the peer address accept() gave. @ss may be NULL (unknown). */
void mk_addr_key_from_sockaddr(MkAddrKey *key, const struct sockaddr_storage *ss);
/* From a textual address ("127.0.0.1", "::1"); family 0 (never limited)
 * when @peer (nullable) is not an IP address. */
void mk_addr_key_from_string(MkAddrKey *key, const char *peer);

typedef struct {
    guint address_failures; /* before an address's backoff; 0 = no limit */
    guint account_failures; /* before an account's backoff; 0 = no limit */
    guint backoff_max;      /* seconds, the cap of a backoff */
    guint forget_after;     /* seconds after the last failure */
    gboolean exempt_loopback;
} MkAuthGuardConfig;

typedef struct MkAuthGuard MkAuthGuard;

/* Counters the guard keeps (read by the metrics dump). */
typedef struct {
    gint64 failures;          /* failed logins recorded */
    gint64 throttled_address; /* attempts refused: address in backoff */
    gint64 throttled_account; /* attempts refused: account in backoff */
    gint64 preauth_refused;   /* connections refused: per-address cap */
    gint64 log_suppressed;    /* failure log lines left out */
    gint64 table_full;        /* failures not recorded: tables full */
} MkAuthGuardStats;

/* Returns: (transfer full). */
MkAuthGuard *mk_auth_guard_new(const MkAuthGuardConfig *cfg);
void mk_auth_guard_free(MkAuthGuard *g);
void mk_auth_guard_stats(MkAuthGuard *g, MkAuthGuardStats *out);

/* TRUE when @addr may try a login now; FALSE (counted) while it is in
 * backoff. */
gboolean mk_auth_guard_address_ok(MkAuthGuard *g, const MkAddrKey *addr);
/* TRUE when @account@@domain may be tried from @addr now (see above).
 * @account: the prepared username, or the name as given for unknown
 * accounts. */
gboolean mk_auth_guard_account_ok(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                                  const char *domain);
/* A wrong password or unknown user from @addr for @account (nullable:
 * no name was given). */
void mk_auth_guard_failed(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                          const char *domain);
/* A login succeeded: the address's and the account's failures are
 * forgiven (a lookup only while some are on record). */
void mk_auth_guard_succeeded(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                             const char *domain);

/* An unauthenticated connection from @addr begins: FALSE (counted, and
 * not entered) when @cap (0: none) are open already. Every TRUE is
 * balanced by one mk_auth_guard_preauth_leave. */
gboolean mk_auth_guard_preauth_enter(MkAuthGuard *g, const MkAddrKey *addr, guint cap);
void mk_auth_guard_preauth_leave(MkAuthGuard *g, const MkAddrKey *addr);

/* Whether a failure may be logged now: at most a burst of 20 lines, then
 * 5 a second. @suppressed: lines left out since the last one logged (to
 * say so in it). */
gboolean mk_auth_guard_log_ok(MkAuthGuard *g, guint64 *suppressed);
