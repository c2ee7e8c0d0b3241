/* mod_blocking internals: shared by the module's files, never installed.
 *
 * Files:
 *   blocking-match.c   XEP-0191 section 4 JID matching, pure
 *   blocking-db.c      the table, and the class of the core's cache of lists
 *   blocking-iq.c      urn:xmpp:blocking get/set, pushes, presence on change
 *   mod_blocking.c     descriptor, start, enforcement hooks */
#pragma once

#include <meerkat/module.h>

G_BEGIN_DECLS

#define NS_BLOCKING        "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define NS_CLIENT          "jabber:client"

/* ---- JID matching (blocking-match.c) ----------------------------------- */

/* TRUE when the item JID (@inode, @idomain, @ires; node and resource
 * nullable) covers the JID (@node, @domain, @res) by the rules of
 * XEP-0191 section 4 / XEP-0016 2.1: full JID only itself, bare JID any
 * of its resources, domain/resource only itself, domain itself plus every
 * JID at it or at a subdomain of it. Pure, any thread. */
gboolean blocking_jid_match(const char *inode, const char *idomain, const char *ires,
                            const char *node, const char *domain, const char *res);
/* The same on prepared JIDs. */
gboolean blocking_item_matches(const MkJid *item, const MkJid *jid);
/* TRUE when an element of @list (MkJid*) matches @jid. */
gboolean blocking_list_matches(const GPtrArray *list, const MkJid *jid);

/* ---- the module instance (mod_blocking.c) ------------------------------- */

typedef struct {
    MkModule *mod;
    MkUserQueue *queue; /* the core's: per-user order of storage work */
    MkUserCache *cache; /* the core's: bare JID -> GPtrArray of MkJid* (blocking-db.c) */
    gint64 max_items;   /* longest block list; 0 = no limit */
    gint push_id;       /* atomic */
    MkCounter *blocked_in;
    MkCounter *blocked_out;
    MkCounter *pushes;
    MkCounter *loads;
} Blocking;

/* ---- storage and the cache (blocking-db.c) ------------------------------- */

/* The core's cache of block lists: values are (transfer full) arrays of
 * MkJid*, immutable once installed; user_data is the loads counter. */
extern const MkUserCacheClass blocking_cache_class;

/* Storage thread, inside an MkDbWork: @user's list, sorted.
 * (transfer full) array of MkJid*. */
gboolean blocking_db_load(MkDbConn *conn, MkJid *user, GPtrArray **out, GError **error);
extern const MkMigration blocking_migrations[];

/* ---- IQ (blocking-iq.c) ---------------------------------------------------- */

gboolean blocking_iq_start(Blocking *b, GError **error);

G_END_DECLS
