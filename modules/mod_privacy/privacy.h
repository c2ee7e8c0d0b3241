/* mod_privacy internals: shared by the module's files, never installed.
 *
 * Files:
 *   privacy-eval.c    list items and their evaluation (XEP-0016 2.1-2.2), pure
 *   privacy-db.c      schema and statements (storage thread)
 *   privacy-cache.c   the class of the core's cache of each user's lists,
 *                     default list and roster; the active list of each session
 *   privacy-iq.c      jabber:iq:privacy get/set, pushes
 *   mod_privacy.c     descriptor, start, enforcement hooks */
#pragma once

#include <meerkat/module.h>

G_BEGIN_DECLS

#define NS_PRIVACY "jabber:iq:privacy"
#define NS_CLIENT  "jabber:client"

/* ---- items and evaluation (privacy-eval.c) ------------------------------ */

typedef enum {
    PRIV_TYPE_NONE, /* fall-through */
    PRIV_TYPE_JID,
    PRIV_TYPE_GROUP,
    PRIV_TYPE_SUBSCRIPTION,
} PrivType;

/* Stanza kinds an item covers; an item with none covers every stanza,
 * both directions (XEP-0016 2.1 and "Blocking All Communication"). */
enum {
    PRIV_MESSAGE = 1 << 0,
    PRIV_IQ = 1 << 1,
    PRIV_PRESENCE_IN = 1 << 2,
    PRIV_PRESENCE_OUT = 1 << 3,
};

/* Subscription bits, as mod_roster stores them by name. */
enum {
    PRIV_SUB_NONE = 0,
    PRIV_SUB_TO = 1 << 0,
    PRIV_SUB_FROM = 1 << 1,
    PRIV_SUB_BOTH = PRIV_SUB_TO | PRIV_SUB_FROM,
};

typedef struct {
    guint32 order;
    PrivType type;
    char *value;               /* as given (prepared for jid items) */
    char *node, *domain, *res; /* jid items: the prepared parts, nullable */
    guint sub;                 /* subscription items */
    gboolean allow;
    guint kinds; /* PRIV_* bits, 0 = everything */
} PrivItem;

void priv_item_free(PrivItem *item);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PrivItem, priv_item_free)

/* The other party of a stanza, as the user's roster sees it. */
typedef struct {
    const char *node, *domain, *res;
    guint sub;                 /* PRIV_SUB_* */
    const char *const *groups; /* nullable, NULL-terminated */
} PrivPeer;

/* What the stanza is, from the user's side. @kind is one PRIV_* bit, or 0
 * for stanzas only items without children cover (subscription presence
 * and probes inbound; messages, IQs and subscriptions outbound). */
/* TRUE when @items (PrivItem*, sorted by order) let the stanza through:
 * the first matching item decides; none matching allows (2.2 rule 7).
 * Pure, any thread. */
gboolean priv_items_allow(const GPtrArray *items, guint kind, const PrivPeer *peer);
/* "none"/"to"/"from"/"both" -> PRIV_SUB_*, -1 for anything else. */
int priv_sub_parse(const char *name);
const char *priv_sub_name(guint sub);
/* The XEP-0191 / XEP-0016 2.1 JID rule. Pure. */
gboolean priv_jid_match(const char *inode, const char *idomain, const char *ires, const char *node,
                        const char *domain, const char *res);

/* ---- a user's state (privacy-db.c) -------------------------------------- */

typedef struct {
    char *name;
    GPtrArray *items; /* PrivItem*, sorted by order */
} PrivList;

typedef struct {
    guint sub;
    char **groups; /* never NULL */
} PrivContact;

/* Everything the filters need about one user; immutable once published. */
typedef struct {
    gint ref;
    char *default_name; /* nullable */
    GHashTable *lists;  /* name -> PrivList* */
    GHashTable *roster; /* contact bare JID -> PrivContact* */
    GHashTable *groups; /* group names of the roster (set) */
    gint64 roster_ver;  /* mod_roster's version of that roster; -1: unknown */
} PrivState;

/* An empty state: no lists, no roster. (transfer full) */
PrivState *priv_state_new(void);
PrivState *priv_state_ref(PrivState *st);
void priv_state_unref(PrivState *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PrivState, priv_state_unref)
void priv_list_free(PrivList *l);

extern const MkMigration privacy_migrations[];

/* Storage thread, inside an MkDbWork. */
gboolean priv_db_load(MkDbConn *conn, MkJid *user, PrivState **out, GError **error);
/* As priv_db_load, but the roster of @roster_from (nullable) is shared
 * rather than read again when mod_roster's version of it is still the
 * same: on a 10k-item roster the read was most of a privacy set's cost. */
gboolean priv_db_load_lists(MkDbConn *conn, MkJid *user, PrivState *roster_from, PrivState **out,
                            GError **error);
/* Replaces (or creates) list @name with @items (PrivItem*). */
gboolean priv_db_save_list(MkDbConn *conn, MkJid *user, const char *name, GPtrArray *items,
                           GError **error);
gboolean priv_db_delete_list(MkDbConn *conn, MkJid *user, const char *name, GError **error);
/* Sets (or with NULL clears) the default list. */
gboolean priv_db_set_default(MkDbConn *conn, MkJid *user, const char *name, GError **error);

/* ---- the module instance (mod_privacy.c) --------------------------------- */

typedef struct {
    MkModule *mod;
    MkUserQueue *queue; /* the core's: per-user order of storage work */
    MkUserCache *cache; /* the core's: bare JID -> PrivState* (privacy-cache.c) */
    gint64 max_items;
    gint64 max_lists;
    gint push_id; /* atomic */
    MkCounter *denied_in;
    MkCounter *denied_out;
    MkCounter *pushes;
    MkCounter *limit_refusals; /* sets refused by max_lists or max_items */
} Privacy;

/* ---- the cache (privacy-cache.c) ----------------------------------------- */

/* The core's cache of user states (PrivState*); user_data unused. */
extern const MkUserCacheClass priv_cache_class;
/* @user's state (transfer full), or NULL while it loads: then @hold (when
 * not NULL) is routed again once it is there. Any thread. */
PrivState *priv_cache_get(Privacy *p, MkJid *user, MkStanza *hold);

/* The active list of @s (transfer full) (nullable). Any thread. */
char *priv_active_get(Privacy *p, MkSession *s);
/* Sets or (NULL) clears it. Any thread. */
void priv_active_set(Privacy *p, MkSession *s, const char *name);
/* TRUE when some session of @user has an active list. Any thread. */
gboolean priv_user_has_active(Privacy *p, MkJid *user);
/* The list that applies to @s (active, else default), or NULL. (transfer none) */
const PrivList *priv_effective_list(Privacy *p, PrivState *st, MkSession *s);

/* ---- IQ (privacy-iq.c) ------------------------------------------------------ */

gboolean priv_iq_start(Privacy *p, GError **error);

G_END_DECLS
