/* meerkat-bench: latency histogram, /proc readings, SCRAM client. */
#include "bench.h"
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

guint64 now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (guint64)ts.tv_sec * 1000000u + (guint64)ts.tv_nsec / 1000u;
}

/* ---- histogram -------------------------------------------------------- */

static int hist_index(guint64 v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v); /* >= 6 */
    int shift = msb - 5;               /* keep 6 significant bits: 32..63 */
    int idx = shift * (HIST_SUB / 2) + (int)(v >> shift);
    return MIN(idx, HIST_BUCKETS - 1);
}

/* The smallest value of bucket @idx. */
static guint64 hist_value(int idx)
{
    if (idx < HIST_SUB)
        return (guint64)idx;
    int shift = idx / (HIST_SUB / 2) - 1;
    guint64 mant = (guint64)(idx - shift * (HIST_SUB / 2));
    return mant << shift;
}

void hist_add(Hist *h, guint64 us)
{
    h->count[hist_index(us)]++;
    h->total++;
    if (us > h->max)
        h->max = us;
}

guint64 hist_percentile(const Hist *h, double p)
{
    if (h->total == 0)
        return 0;
    guint64 want = (guint64)(p / 100.0 * (double)h->total + 0.5);
    if (want == 0)
        want = 1;
    guint64 seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return MIN(hist_value(i), h->max);
    }
    return h->max;
}

char *hist_serialize(const Hist *h)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "max:%" G_GUINT64_FORMAT, h->max);
    for (int i = 0; i < HIST_BUCKETS; i++)
        if (h->count[i])
            g_string_append_printf(s, " %d:%" G_GUINT64_FORMAT, i, h->count[i]);
    return g_string_free(s, FALSE);
}

void hist_merge_text(Hist *h, const char *text)
{
    g_auto(GStrv) parts = g_strsplit(text, " ", -1);
    for (int i = 0; parts[i]; i++) {
        char *colon = strchr(parts[i], ':');
        if (!colon)
            continue;
        guint64 n = g_ascii_strtoull(colon + 1, NULL, 10);
        if (g_str_has_prefix(parts[i], "max:")) {
            h->max = MAX(h->max, n);
            continue;
        }
        int idx = atoi(parts[i]);
        if (idx >= 0 && idx < HIST_BUCKETS) {
            h->count[idx] += n;
            h->total += n;
        }
    }
}

/* ---- /proc ------------------------------------------------------------ */

ProcSample proc_sample(const char *pids)
{
    ProcSample ps = {0};
    if (!pids || !*pids)
        return ps;
    long tick = sysconf(_SC_CLK_TCK);
    g_auto(GStrv) list = g_strsplit(pids, ",", -1);
    for (int i = 0; list[i]; i++) {
        if (!*list[i])
            continue;
        g_autofree char *stat_path = g_strdup_printf("/proc/%s/stat", list[i]);
        g_autofree char *status_path = g_strdup_printf("/proc/%s/status", list[i]);
        g_autofree char *stat = NULL, *status = NULL;
        if (!g_file_get_contents(stat_path, &stat, NULL, NULL) ||
            !g_file_get_contents(status_path, &status, NULL, NULL))
            continue;
        ps.alive++;
        /* Fields after the command name, which may hold spaces. */
        char *p = strrchr(stat, ')');
        if (p) {
            g_auto(GStrv) f = g_strsplit(p + 2, " ", -1);
            /* f[0] is field 3 (state); utime is field 14, stime 15. */
            if (g_strv_length(f) > 13)
                ps.cpu_s += (double)(g_ascii_strtoull(f[11], NULL, 10) +
                                     g_ascii_strtoull(f[12], NULL, 10)) /
                            (double)tick;
        }
        char *rss = strstr(status, "VmRSS:");
        if (rss)
            ps.rss_kib += g_ascii_strtoull(rss + 6, NULL, 10);
    }
    return ps;
}

/* ---- SCRAM-SHA-256 client --------------------------------------------- */

struct Scram {
    char *password;
    char *client_first_bare;
    char *client_first;
};

Scram *scram_new(const char *user, const char *password)
{
    Scram *s = g_new0(Scram, 1);
    guint8 rnd[18];
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    g_autofree char *nonce = g_base64_encode(rnd, sizeof rnd);
    /* Bench user names need no SCRAM escaping (no ',' or '='). */
    s->client_first_bare = g_strdup_printf("n=%s,r=%s", user, nonce);
    s->client_first = g_strconcat("n,,", s->client_first_bare, NULL);
    s->password = g_strdup(password);
    return s;
}

void scram_free(Scram *s)
{
    if (!s)
        return;
    g_free(s->password);
    g_free(s->client_first_bare);
    g_free(s->client_first);
    g_free(s);
}

const char *scram_client_first(Scram *s)
{
    return s->client_first;
}

/* A small cache of SaltedPassword by salt and iterations: servers that
 * share one salt among users (or reuse it between runs) cost the
 * generator one PBKDF2, not one per login. Per process, not thread-safe. */
static GHashTable *salted_cache;

char *scram_client_final(Scram *s, const char *server_first, gsize len)
{
    g_autofree char *sf = g_strndup(server_first, len);
    const char *r = NULL, *salt_b64 = NULL, *iter = NULL;
    g_auto(GStrv) attrs = g_strsplit(sf, ",", -1);
    for (int i = 0; attrs[i]; i++) {
        if (g_str_has_prefix(attrs[i], "r="))
            r = attrs[i] + 2;
        else if (g_str_has_prefix(attrs[i], "s="))
            salt_b64 = attrs[i] + 2;
        else if (g_str_has_prefix(attrs[i], "i="))
            iter = attrs[i] + 2;
    }
    if (!r || !salt_b64 || !iter)
        return NULL;
    guint iterations = (guint)atoi(iter);
    if (iterations == 0)
        return NULL;
    if (!salted_cache)
        salted_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autofree char *key = g_strdup_printf("%s/%u/%s", salt_b64, iterations, s->password);
    guint8 *salted = g_hash_table_lookup(salted_cache, key);
    if (!salted) {
        gsize salt_len = 0;
        g_autofree guchar *salt = g_base64_decode(salt_b64, &salt_len);
        salted = g_malloc(32);
        gnutls_datum_t k = {(unsigned char *)s->password, (unsigned)strlen(s->password)};
        gnutls_datum_t sd = {salt, (unsigned)salt_len};
        gnutls_pbkdf2(GNUTLS_MAC_SHA256, &k, &sd, iterations, salted, 32);
        if (g_hash_table_size(salted_cache) > 4096)
            g_hash_table_remove_all(salted_cache);
        g_hash_table_insert(salted_cache, g_steal_pointer(&key), salted);
    }
    guint8 client_key[32], stored_key[32], sig[32], proof[32];
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, 32, "Client Key", 10, client_key);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, client_key, 32, stored_key);
    g_autofree char *without_proof = g_strdup_printf("c=biws,r=%s", r);
    g_autofree char *auth_msg =
        g_strdup_printf("%s,%s,%s", s->client_first_bare, sf, without_proof);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, stored_key, 32, auth_msg, strlen(auth_msg), sig);
    for (int i = 0; i < 32; i++)
        proof[i] = client_key[i] ^ sig[i];
    g_autofree char *proof_b64 = g_base64_encode(proof, 32);
    return g_strdup_printf("%s,p=%s", without_proof, proof_b64);
}
