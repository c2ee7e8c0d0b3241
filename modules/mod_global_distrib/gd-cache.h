/* The mapping cache of mod_global_distrib (gd-cache.c): pure data, GLib
 * only, used by one thread. */
#pragma once

#include <glib.h>

typedef struct GdCache GdCache;

/* gd-cache.c: a bounded map JID → region (NULL: "nobody", a negative
 * entry) with a lifetime per entry; the oldest entry goes when full.
 * Pure data, one thread. */
GdCache *gd_cache_new(guint max_entries, gint64 lifetime_us);
void gd_cache_free(GdCache *c);
/* TRUE on a hit; *@host (transfer none, nullable) is valid until the
 * next change of the cache. */
gboolean gd_cache_get(GdCache *c, const char *jid, gint64 now, const char **host);
void gd_cache_put(GdCache *c, const char *jid, const char *host, gint64 now);
/* As put, with its own lifetime (the origin of a received stanza). */
void gd_cache_put_for(GdCache *c, const char *jid, const char *host, gint64 now,
                      gint64 lifetime_us);
void gd_cache_drop(GdCache *c, const char *jid);
guint gd_cache_size(GdCache *c);
