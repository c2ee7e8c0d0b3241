/* See authguard.h.
 *
 * Two tables: addresses (sharded, since every connection counts itself
 * in and out while unauthenticated) and accounts (one lock: only failed
 * logins touch it). Each is bounded; when one is full, expired entries
 * go, and if none has expired a new failure is not recorded (counted as
 * table_full) rather than evicting one on record. */
#include "authguard.h"

#include <gio/gio.h>
#include <netinet/in.h>
#include <string.h>

#define ADDR_SHARDS      16
#define MAX_ADDR_ENTRIES (65536 / ADDR_SHARDS) /* per shard */
#define MAX_ACCOUNTS     65536
#define LOG_BURST        20
#define LOG_PER_SECOND   5
#define BACKOFF_FIRST_US G_USEC_PER_SEC

typedef struct {
    MkAddrKey key;
    guint preauth;     /* unauthenticated connections open now */
    guint failures;    /* on record */
    gint64 last_us;    /* monotonic time of the last failure */
    gint64 blocked_us; /* no attempt before this */
} AddrEntry;

typedef struct {
    guint failures;
    gint64 last_us;
    gint64 blocked_us;
} AccountEntry;

typedef struct {
    GMutex lock;
    GHashTable *map; /* MkAddrKey* (in the entry) -> AddrEntry* */
} AddrShard;

struct MkAuthGuard {
    MkAuthGuardConfig cfg;
    AddrShard shards[ADDR_SHARDS];
    GMutex account_lock;
    GHashTable *accounts;   /* "user@domain" -> AccountEntry* */
    gint failing_addrs;     /* atomic: address entries with failures > 0 */
    gint failing_accounts;  /* atomic: entries in accounts */
    MkAuthGuardStats stats; /* atomic members */
    GMutex log_lock;
    gint64 log_tokens_at; /* monotonic time the bucket was filled up to */
    double log_tokens;
    guint64 log_suppressed;
};

void mk_addr_key_from_sockaddr(MkAddrKey *key, const struct sockaddr_storage *ss)
{
    memset(key, 0, sizeof *key);
    if (!ss)
        return;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        key->family = 4;
        memcpy(key->bytes, &sin->sin_addr, 4);
        key->loopback = key->bytes[0] == 127;
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            key->family = 4;
            memcpy(key->bytes, sin6->sin6_addr.s6_addr + 12, 4);
            key->loopback = key->bytes[0] == 127;
        } else {
            key->family = 6;
            memcpy(key->bytes, sin6->sin6_addr.s6_addr, 8);
            key->loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
        }
    }
}

void mk_addr_key_from_string(MkAddrKey *key, const char *peer)
{
    struct sockaddr_storage ss;
    g_autoptr(GInetAddress) ia = peer ? g_inet_address_new_from_string(peer) : NULL;
    g_autoptr(GSocketAddress) sa = ia ? g_inet_socket_address_new(ia, 0) : NULL;
    gboolean ok = sa && g_socket_address_to_native(sa, &ss, sizeof ss, NULL);
    mk_addr_key_from_sockaddr(key, ok ? &ss : NULL);
}

static guint addr_hash(gconstpointer p)
{
    const MkAddrKey *k = p;
    guint64 v;
    memcpy(&v, k->bytes, 8);
    v ^= (guint64)k->family << 56;
    v *= G_GUINT64_CONSTANT(0x9E3779B97F4A7C15);
    return (guint)(v >> 32);
}

static gboolean addr_equal(gconstpointer a, gconstpointer b)
{
    const MkAddrKey *x = a, *y = b;
    return x->family == y->family && memcmp(x->bytes, y->bytes, 8) == 0;
}

/* Whether @k is subject to the limits at all. */
static gboolean limited(MkAuthGuard *g, const MkAddrKey *k)
{
    return k && k->family != 0 && !(k->loopback && g->cfg.exempt_loopback);
}

static AddrShard *shard_of(MkAuthGuard *g, const MkAddrKey *k)
{
    return &g->shards[addr_hash(k) % ADDR_SHARDS];
}

static void stat_add(gint64 *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

MkAuthGuard *mk_auth_guard_new(const MkAuthGuardConfig *cfg)
{
    MkAuthGuard *g = g_new0(MkAuthGuard, 1);
    g->cfg = *cfg;
    if (!g->cfg.backoff_max)
        g->cfg.backoff_max = 1;
    if (!g->cfg.forget_after)
        g->cfg.forget_after = 600;
    for (guint i = 0; i < ADDR_SHARDS; i++) {
        g_mutex_init(&g->shards[i].lock);
        g->shards[i].map = g_hash_table_new_full(addr_hash, addr_equal, NULL, g_free);
    }
    g_mutex_init(&g->account_lock);
    g->accounts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_mutex_init(&g->log_lock);
    g->log_tokens = LOG_BURST;
    g->log_tokens_at = g_get_monotonic_time();
    return g;
}

void mk_auth_guard_free(MkAuthGuard *g)
{
    if (!g)
        return;
    for (guint i = 0; i < ADDR_SHARDS; i++) {
        g_hash_table_destroy(g->shards[i].map);
        g_mutex_clear(&g->shards[i].lock);
    }
    g_hash_table_destroy(g->accounts);
    g_mutex_clear(&g->account_lock);
    g_mutex_clear(&g->log_lock);
    g_free(g);
}

void mk_auth_guard_stats(MkAuthGuard *g, MkAuthGuardStats *out)
{
    gint64 *src = (gint64 *)&g->stats, *dst = (gint64 *)out;
    for (guint i = 0; i < sizeof *out / sizeof(gint64); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* The backoff after @failures, @free of them allowed: 0, then 1 s
 * doubling per failure up to backoff_max. */
static gint64 backoff_us(MkAuthGuard *g, guint failures, guint free)
{
    if (failures < free)
        return 0;
    guint shift = MIN(failures - free, 30u);
    gint64 us = BACKOFF_FIRST_US << shift;
    return MIN(us, (gint64)g->cfg.backoff_max * G_USEC_PER_SEC);
}

static gboolean forgotten(MkAuthGuard *g, gint64 last_us, gint64 now)
{
    return now - last_us > (gint64)g->cfg.forget_after * G_USEC_PER_SEC;
}

/* An address entry whose failures are forgotten: cleared; dropped when
 * nothing else holds it. Under the shard's lock. Returns: TRUE when
 * @e was freed. */
static gboolean addr_expire(MkAuthGuard *g, AddrShard *sh, AddrEntry *e, gint64 now)
{
    if (e->failures && forgotten(g, e->last_us, now)) {
        e->failures = 0;
        e->blocked_us = 0;
        g_atomic_int_add(&g->failing_addrs, -1);
    }
    if (!e->failures && !e->preauth) {
        g_hash_table_remove(sh->map, &e->key);
        return TRUE;
    }
    return FALSE;
}

/* Room for one more entry in @sh: drops expired ones when full. */
static gboolean addr_room(MkAuthGuard *g, AddrShard *sh, gint64 now)
{
    if (g_hash_table_size(sh->map) < MAX_ADDR_ENTRIES)
        return TRUE;
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, sh->map);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        AddrEntry *e = v;
        if (e->failures && forgotten(g, e->last_us, now)) {
            e->failures = 0;
            g_atomic_int_add(&g->failing_addrs, -1);
        }
        if (!e->failures && !e->preauth)
            g_hash_table_iter_remove(&it);
    }
    return g_hash_table_size(sh->map) < MAX_ADDR_ENTRIES;
}

static AddrEntry *addr_get(MkAuthGuard *g, AddrShard *sh, const MkAddrKey *k, gint64 now)
{
    AddrEntry *e = g_hash_table_lookup(sh->map, k);
    if (e || !addr_room(g, sh, now))
        return e;
    e = g_new0(AddrEntry, 1);
    e->key = *k;
    g_hash_table_insert(sh->map, &e->key, e);
    return e;
}

gboolean mk_auth_guard_address_ok(MkAuthGuard *g, const MkAddrKey *addr)
{
    if (!g || !g->cfg.address_failures || !limited(g, addr) ||
        g_atomic_int_get(&g->failing_addrs) == 0)
        return TRUE;
    gint64 now = g_get_monotonic_time();
    AddrShard *sh = shard_of(g, addr);
    g_mutex_lock(&sh->lock);
    AddrEntry *e = g_hash_table_lookup(sh->map, addr);
    gboolean ok = !e || addr_expire(g, sh, e, now) || now >= e->blocked_us;
    g_mutex_unlock(&sh->lock);
    if (!ok)
        stat_add(&g->stats.throttled_address);
    return ok;
}

/* Whether @addr has failures on record. */
static gboolean addr_failing(MkAuthGuard *g, const MkAddrKey *addr)
{
    if (g_atomic_int_get(&g->failing_addrs) == 0)
        return FALSE;
    AddrShard *sh = shard_of(g, addr);
    g_mutex_lock(&sh->lock);
    AddrEntry *e = g_hash_table_lookup(sh->map, addr);
    gboolean failing = e && e->failures > 0;
    g_mutex_unlock(&sh->lock);
    return failing;
}

static char *account_key(const char *account, const char *domain)
{
    return g_strconcat(account, "@", domain ? domain : "", NULL);
}

gboolean mk_auth_guard_account_ok(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                                  const char *domain)
{
    if (!g || !g->cfg.account_failures || !account || !limited(g, addr) ||
        g_atomic_int_get(&g->failing_accounts) == 0)
        return TRUE;
    gint64 now = g_get_monotonic_time();
    g_autofree char *key = account_key(account, domain);
    g_mutex_lock(&g->account_lock);
    AccountEntry *e = g_hash_table_lookup(g->accounts, key);
    gboolean blocked = e && !forgotten(g, e->last_us, now) && now < e->blocked_us;
    g_mutex_unlock(&g->account_lock);
    /* An address with a clean record still gets its attempt. */
    if (blocked && addr_failing(g, addr)) {
        stat_add(&g->stats.throttled_account);
        return FALSE;
    }
    return TRUE;
}

static void account_failed(MkAuthGuard *g, const char *account, const char *domain, gint64 now)
{
    g_autofree char *key = account_key(account, domain);
    g_mutex_lock(&g->account_lock);
    AccountEntry *e = g_hash_table_lookup(g->accounts, key);
    if (!e && g_hash_table_size(g->accounts) >= MAX_ACCOUNTS) {
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, g->accounts);
        while (g_hash_table_iter_next(&it, NULL, &v))
            if (forgotten(g, ((AccountEntry *)v)->last_us, now))
                g_hash_table_iter_remove(&it);
        g_atomic_int_set(&g->failing_accounts, (gint)g_hash_table_size(g->accounts));
    }
    if (!e && g_hash_table_size(g->accounts) < MAX_ACCOUNTS) {
        e = g_new0(AccountEntry, 1);
        g_hash_table_insert(g->accounts, g_steal_pointer(&key), e);
        g_atomic_int_inc(&g->failing_accounts);
    }
    if (e) {
        if (forgotten(g, e->last_us, now))
            e->failures = 0;
        e->failures++;
        e->last_us = now;
        e->blocked_us = now + backoff_us(g, e->failures, g->cfg.account_failures);
    } else {
        stat_add(&g->stats.table_full);
    }
    g_mutex_unlock(&g->account_lock);
}

void mk_auth_guard_failed(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                          const char *domain)
{
    if (!g)
        return;
    stat_add(&g->stats.failures);
    if (!limited(g, addr))
        return;
    gint64 now = g_get_monotonic_time();
    /* Addresses' failures are on record for the account rule too. */
    if (g->cfg.address_failures || g->cfg.account_failures) {
        AddrShard *sh = shard_of(g, addr);
        g_mutex_lock(&sh->lock);
        AddrEntry *e = addr_get(g, sh, addr, now);
        if (e) {
            if (e->failures && forgotten(g, e->last_us, now)) {
                e->failures = 0;
                g_atomic_int_add(&g->failing_addrs, -1);
            }
            if (e->failures++ == 0)
                g_atomic_int_inc(&g->failing_addrs);
            e->last_us = now;
            if (g->cfg.address_failures)
                e->blocked_us = now + backoff_us(g, e->failures, g->cfg.address_failures);
        } else {
            stat_add(&g->stats.table_full);
        }
        g_mutex_unlock(&sh->lock);
    }
    if (g->cfg.account_failures && account)
        account_failed(g, account, domain, now);
}

void mk_auth_guard_succeeded(MkAuthGuard *g, const MkAddrKey *addr, const char *account,
                             const char *domain)
{
    if (!g || !limited(g, addr))
        return;
    if (g_atomic_int_get(&g->failing_addrs) > 0) {
        AddrShard *sh = shard_of(g, addr);
        g_mutex_lock(&sh->lock);
        AddrEntry *e = g_hash_table_lookup(sh->map, addr);
        if (e && e->failures) {
            e->failures = 0;
            e->blocked_us = 0;
            g_atomic_int_add(&g->failing_addrs, -1);
            if (!e->preauth)
                g_hash_table_remove(sh->map, addr);
        }
        g_mutex_unlock(&sh->lock);
    }
    if (account && g_atomic_int_get(&g->failing_accounts) > 0) {
        g_autofree char *key = account_key(account, domain);
        g_mutex_lock(&g->account_lock);
        if (g_hash_table_remove(g->accounts, key))
            g_atomic_int_add(&g->failing_accounts, -1);
        g_mutex_unlock(&g->account_lock);
    }
}

gboolean mk_auth_guard_preauth_enter(MkAuthGuard *g, const MkAddrKey *addr, guint cap)
{
    if (!g || !cap || !limited(g, addr))
        return TRUE;
    gint64 now = g_get_monotonic_time();
    AddrShard *sh = shard_of(g, addr);
    g_mutex_lock(&sh->lock);
    AddrEntry *e = addr_get(g, sh, addr, now);
    gboolean ok = e && e->preauth < cap;
    if (ok)
        e->preauth++;
    g_mutex_unlock(&sh->lock);
    if (!ok)
        stat_add(&g->stats.preauth_refused);
    return ok;
}

void mk_auth_guard_preauth_leave(MkAuthGuard *g, const MkAddrKey *addr)
{
    if (!g || !limited(g, addr))
        return;
    AddrShard *sh = shard_of(g, addr);
    g_mutex_lock(&sh->lock);
    AddrEntry *e = g_hash_table_lookup(sh->map, addr);
    if (e && e->preauth > 0 && --e->preauth == 0)
        addr_expire(g, sh, e, g_get_monotonic_time());
    g_mutex_unlock(&sh->lock);
}

gboolean mk_auth_guard_log_ok(MkAuthGuard *g, guint64 *suppressed)
{
    *suppressed = 0;
    if (!g)
        return TRUE;
    gint64 now = g_get_monotonic_time();
    g_mutex_lock(&g->log_lock);
    g->log_tokens += (double)(now - g->log_tokens_at) * LOG_PER_SECOND / G_USEC_PER_SEC;
    g->log_tokens = MIN(g->log_tokens, (double)LOG_BURST);
    g->log_tokens_at = now;
    gboolean ok = g->log_tokens >= 1.0;
    if (ok) {
        g->log_tokens -= 1.0;
        *suppressed = g->log_suppressed;
        g->log_suppressed = 0;
    } else {
        g->log_suppressed++;
    }
    g_mutex_unlock(&g->log_lock);
    if (!ok)
        stat_add(&g->stats.log_suppressed);
    return ok;
}
