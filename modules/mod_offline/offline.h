/* mod_offline internals: shared by the module's files, never installed.
 *
 * Files:
 *   offline-policy.c   what is stored, retry back-off, timestamps; pure
 *   offline-db.c       the schema and the statements (storage thread)
 *   offline-store.c    the store job: quota, retries, bounces
 *   offline-deliver.c  the delivery job: fetch, hand to the session, delete
 *   mod_offline.c      descriptor, start, hooks, per-session slot */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define NS_CLIENT     "jabber:client"
#define NS_DELAY      "urn:xmpp:delay"
#define NS_HINTS      "urn:xmpp:hints"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* ---- policy (offline-policy.c): pure, any thread ----------------------- */

typedef enum {
    /* Not for offline storage: the core decides (it bounces
     * service-unavailable, or drops a headline). */
    OFFLINE_PASS,
    /* Nothing worth keeping (a standalone chat state): dropped quietly. */
    OFFLINE_DROP,
    OFFLINE_STORE,
} OfflineAction;

/* What to do with a message of @type (NULL = normal) that found no
 * resource. @no_store: it carries the XEP-0334 <no-store/> hint;
 * @has_content: it has anything but chat states (XEP-0085 says a server
 * should not store standalone chat state notifications); @groupchat: a
 * room's groupchat message is stored (store_groupchat). */
OfflineAction offline_classify(const char *type, gboolean no_store, gboolean has_content,
                               gboolean groupchat);

typedef enum {
    OFFLINE_RETRY,
    OFFLINE_GIVE_UP,
} OfflineRetry;

/* After attempt number @attempt (0 = the first try) failed: retry while
 * fewer than @retries retries were made. */
OfflineRetry offline_retry_next(guint attempt, guint retries);
/* The wait before retry number @attempt + 1: @base_ms doubled each time,
 * at most 30 s. */
guint offline_retry_delay_ms(guint attempt, guint base_ms);

/* ---- the rest needs the server API ------------------------------------- */

#ifndef OFFLINE_PURE

#include <meerkat/module.h>

/* The module instance. */
/* Caps of one user's store (the configuration's max_* keys). Bytes are
 * those of the stored XML as the database's LENGTH() counts them. */
typedef struct {
    gint64 messages;
    gint64 bytes;
    gint64 sender_messages; /* per sender's bare JID */
    gint64 sender_bytes;
} OfflineLimits;

typedef struct {
    MkModule *mod;
    /* The core's: one user's stores and deliveries run one at a time, as
     * jobs of several steps (retries, fetch then delete), so messages are
     * stored in the order they came and never handed out twice. */
    MkUserQueue *queue;
    OfflineLimits limits;
    guint retries;
    guint retry_ms;
    gboolean store_groupchat;
    MkCounter *stored;
    MkCounter *delivered;
    MkCounter *bounced;
    MkCounter *dropped;
    MkCounter *store_failures;
    MkCounter *over_bytes;  /* bounced: the user's store is over max_bytes */
    MkCounter *over_sender; /* bounced: the sender's share is used up */
} Offline;

/* ---- storage (offline-db.c): inside MkDbWork, storage thread ---------- */

extern const MkMigration offline_migrations[];

typedef enum {
    OFFLINE_STORED,
    OFFLINE_NO_ACCOUNT,
    OFFLINE_QUOTA,        /* max_messages */
    OFFLINE_QUOTA_BYTES,  /* max_bytes */
    OFFLINE_QUOTA_SENDER, /* max_sender_messages or max_sender_bytes */
} OfflineStoreResult;

/* Stores one message for @node@@domain unless the account does not exist
 * or the message would take the store, or @sender's share of it, past
 * @limits. */
gboolean offline_db_store(MkDbConn *conn, const char *node, const char *domain,
                          const OfflineLimits *limits, const char *sender, const char *stamp,
                          const char *xml, OfflineStoreResult *result, GError **error);
/* Deletes the rows whose ids are in @ids (gint64). */
gboolean offline_db_delete(MkDbConn *conn, GArray *ids, GError **error);
/* The SELECT of a user's messages, oldest first: id, stamp, xml. Bind
 * username and domain. */
#define OFFLINE_SQL_FETCH                                                                          \
    "SELECT id, stamp, xml FROM offline_messages WHERE username = ? AND domain = ? ORDER BY id"

/* ---- jobs ------------------------------------------------------------- */

/* Queues storage of @st (a message for the local account @to). Replies
 * with an error to the sender when it cannot be stored. Any thread. */
void offline_store(Offline *o, MkStanza *st, MkJid *to);
/* Queues delivery of @user's stored messages to @target (or, when NULL,
 * to one of the user's available resources with a non-negative priority,
 * if there is one by then). Any thread. */
void offline_deliver(Offline *o, MkJid *user, MkSession *target);

#endif

G_END_DECLS
