/* mod_roster internals: shared by the module's files, never installed.
 *
 * Files:
 *   roster-sm.c        the subscription state machine (RFC 6121 App. A), pure
 *   roster-db.c        storage: schema and the statements, storage thread
 *   roster-iq.c        jabber:iq:roster get/set
 *   roster-presence.c  subscription presence, probes, broadcast presence
 *   roster-preload.c   the roster read at authentication, and when it is stale
 *   roster-subs.c      the session's list of subscribers for later presence
 *   roster-limits.c    per-user caps: items, groups, lengths, size
 *   mod_roster.c       descriptor, start/stop, pushes, presence helpers */
#pragma once

#include <meerkat/module.h>

G_BEGIN_DECLS

#define NS_ROSTER "jabber:iq:roster"
#define NS_CLIENT "jabber:client"

/* ---- subscription state machine (roster-sm.c) ------------------------ */

/* Subscription bits: the user receives the contact's presence (TO) and/or
 * the contact receives the user's (FROM). */
enum {
    ROSTER_SUB_NONE = 0,
    ROSTER_SUB_TO = 1 << 0,
    ROSTER_SUB_FROM = 1 << 1,
    ROSTER_SUB_BOTH = ROSTER_SUB_TO | ROSTER_SUB_FROM,
};

/* One user's relation to one contact. */
typedef struct {
    guint sub;           /* ROSTER_SUB_* bits */
    gboolean ask;        /* Pending Out: the user asked, no answer yet */
    gboolean pending_in; /* Pending In: the contact asked, the user did not answer */
    gboolean approved;   /* pre-approved (RFC 6121 3.4) */
    gboolean in_roster;  /* the user sees it as a roster item */
} RosterState;

typedef enum {
    ROSTER_SUBSCRIBE,
    ROSTER_SUBSCRIBED,
    ROSTER_UNSUBSCRIBE,
    ROSTER_UNSUBSCRIBED,
} RosterPresType;

/* What the server must do after a transition. */
enum {
    /* Outbound: route the stamped stanza to the contact. Inbound: deliver
     * it to the user's available resources. */
    ROSTER_ACT_FORWARD = 1 << 0,
    /* Inbound subscribe already approved: answer subscribed for the user. */
    ROSTER_ACT_REPLY_SUBSCRIBED = 1 << 1,
    /* Send the user's available presence to the contact (it just became
     * a subscriber). */
    ROSTER_ACT_SEND_PRESENCE = 1 << 2,
    /* Send unavailable from the user's resources (it stopped being one). */
    ROSTER_ACT_SEND_UNAVAILABLE = 1 << 3,
    /* Inbound subscribe: keep the stanza for redelivery at login. */
    ROSTER_ACT_STORE_PENDING = 1 << 4,
};

/* Parses "subscribe"... Returns FALSE for any other type. Any thread. */
gboolean roster_pres_type_parse(const char *type, RosterPresType *out);
/* Applies a subscription stanza the user sends to the contact / the
 * contact sends to the user, updating @st; returns ROSTER_ACT_* bits.
 * Pure functions, any thread. */
guint roster_sm_outbound(RosterPresType type, RosterState *st);
guint roster_sm_inbound(RosterPresType type, RosterState *st);
/* TRUE when the two states look the same in a roster item (what a push
 * would show). */
gboolean roster_state_visible_equal(const RosterState *a, const RosterState *b);
/* "none", "to", "from", "both". (transfer none) */
const char *roster_sub_name(guint sub);
guint roster_sub_parse(const char *name);

/* ---- storage (roster-db.c) -------------------------------------------- */

typedef struct {
    char *contact; /* bare JID */
    char *name;    /* nullable */
    char **groups; /* NULL-terminated, sorted; never NULL */
    RosterState st;
    char *pending_xml; /* the stored subscribe stanza when st.pending_in */
} RosterItem;

RosterItem *roster_item_new(const char *contact);
void roster_item_free(RosterItem *item);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RosterItem, roster_item_free)

extern const MkMigration roster_migrations[];

/* All of these run inside an MkDbWork (storage thread). */

/* The row for @contact, or NULL in *@out when there is none. */
gboolean roster_db_load_item(MkDbConn *conn, MkJid *user, const char *contact, RosterItem **out,
                             GError **error);
/* Every row of the user's (also those not in the roster), sorted by
 * contact. (transfer full) array of RosterItem. */
gboolean roster_db_load_all(MkDbConn *conn, MkJid *user, GPtrArray **out, GError **error);
/* Writes @item (deletes the row when nothing is left of it: not in the
 * roster and no pending request); rewrites the groups when @groups. */
gboolean roster_db_save_item(MkDbConn *conn, MkJid *user, const RosterItem *item, gboolean groups,
                             GError **error);
gboolean roster_db_delete_item(MkDbConn *conn, MkJid *user, const char *contact, GError **error);
/* The current roster version (0 when the roster never changed). */
gboolean roster_db_version(MkDbConn *conn, MkJid *user, gint64 *ver, GError **error);
/* Increments the version and returns the new one. */
gboolean roster_db_bump_version(MkDbConn *conn, MkJid *user, gint64 *ver, GError **error);
/* TRUE in *@exists when @user is an account of the internal backend. */
gboolean roster_db_user_exists(MkDbConn *conn, MkJid *user, gboolean *exists, GError **error);

/* ---- the module instance (mod_roster.c) ------------------------------- */

/* Write counters for the roster read at authentication (roster-preload.c). */
#define ROSTER_STRIPES 64

typedef struct RosterPreload RosterPreload;

typedef struct {
    MkModule *mod;
    MkUserQueue *queue; /* the core's: per-user order of storage work */
    MkCounter *pushes;
    MkCounter *subscriptions;
    MkCounter *preloads_used;
    MkCounter *preloads_stale;
    MkCounter *subs_used;                /* broadcasts sent from the session's list */
    MkCounter *subs_stale;               /* broadcasts that read the roster again */
    gint push_id;                        /* atomic */
    gint writes_queued[ROSTER_STRIPES];  /* atomic */
    gint writes_running[ROSTER_STRIPES]; /* atomic */

    /* Per-user caps (roster-limits.c) and the requests they refused. */
    gint64 max_items, max_groups, max_text, max_bytes;
    MkCounter *limit_refusals;
} Roster;

/* Per-session state, in the session's slot. Session worker only. Kept
 * small: every idle session has one (flags in bits, the list of
 * subscribers NULL when there is none). */
typedef struct {
    guint announced : 1;     /* sent initial presence (and got probes sent) */
    guint preload_taken : 1; /* the session's preload was taken into @preload */
    guint subs_valid : 1;    /* @subs is the list of subscribers as of @subs_queued */
    guint broadcasts : 29;   /* broadcast ops of this session still in the user queue */
    gint subs_queued;        /* the stripe's writes_queued @subs is valid for */
    RosterPreload *preload;  /* until initial presence; nullable */
    char *subs;              /* roster-subs.c; nullable: no subscriber */
} RosterSlot;

/* The slot of @s, created on first use. Session worker. (transfer none) */
RosterSlot *roster_slot(Roster *r, MkSession *s);
/* Session flag (mk_session_set_flags): asked for the roster, so it gets
 * pushes. */
#define ROSTER_INTERESTED (1u << 0)
/* Marks @s as interested in roster pushes. Any thread. */
void roster_set_interested(Roster *r, MkSession *s);

/* Sends a push of @item (or of its removal) with version @ver to every
 * interested resource of @user. Any thread. */
void roster_push(Roster *r, MkJid *user, const RosterItem *item, gboolean removed, gint64 ver);
/* The roster service's read (roster-db.c). Storage thread. */
gboolean roster_db_contacts(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                            GError **error);
gboolean roster_db_relation(gpointer data, MkDbConn *conn, MkJid *user, const char *contact,
                            gboolean *from, GPtrArray *groups, GError **error);
gboolean roster_db_presence_subscribers(gpointer data, MkDbConn *conn, MkJid *user, GPtrArray *out,
                                        GError **error);
/* <item/> for @item; removal when @removed. (transfer full) */
MkXml *roster_item_xml(const RosterItem *item, gboolean removed);
/* The user's presence from each available resource to @to / unavailable
 * from each of them. Any thread. */
void roster_send_presence_to(MkJid *user, MkJid *to);
void roster_send_unavailable_to(MkJid *user, MkJid *to);
/* A presence of @type from @from to @to, routed. Any thread. */
void roster_route_presence(const char *type, MkJid *from, MkJid *to);

/* A roster set without an IQ (roster-admin.c): takes @want; @done and
 * @destroy run on the calling thread. Worker. */
void roster_set_item(Roster *r, MkJid *user, RosterItem *want, gboolean remove, MkRosterDone done,
                     gpointer data, GDestroyNotify destroy);
/* @user sends subscription presence @type to @contact, as from a client.
 * Worker. */
void roster_user_subscription(Roster *r, MkJid *user, MkJid *contact, RosterPresType type);
/* The managing service (roster-admin.c). Main thread, in start(). */
gboolean roster_admin_start(Roster *r, GError **error);

/* roster-iq.c, roster-presence.c, roster-preload.c: registration in start(). */
gboolean roster_iq_start(Roster *r, GError **error);
void roster_presence_start(Roster *r);
void roster_preload_start(Roster *r);

/* ---- the roster read at authentication (roster-preload.c) -------------- */

/* Every op that writes @user's roster rows calls begin when it is pushed
 * to the user's queue and end when it is freed (after its transaction).
 * Any thread. */
void roster_write_begin(Roster *r, MkJid *user);
void roster_write_end(Roster *r, MkJid *user);
/* The count of writes pushed for @user's stripe so far / TRUE while one
 * of them has not ended. Any thread. */
gint roster_writes_queued(Roster *r, MkJid *user);
gboolean roster_writes_running(Roster *r, MkJid *user);
/* The roster read for @s's account at authentication, when no write came
 * after it; NULL otherwise (read on the storage pool then). @purpose
 * names the user for the debug log. Session worker. (transfer none):
 * valid until roster_preload_drop or the session's end. */
const RosterPreload *roster_preload_get(Roster *r, MkSession *s, const char *purpose);
/* Frees it: after initial presence nothing else needs it. Session worker. */
void roster_preload_drop(Roster *r, MkSession *s);
void roster_preload_free(RosterPreload *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RosterPreload, roster_preload_free)
gint64 roster_preload_version(const RosterPreload *p);
/* The stripe's writes_queued the preload is valid for. */
gint roster_preload_queued(const RosterPreload *p);
/* (transfer none) every row, as roster_db_load_all. */
GPtrArray *roster_preload_items(const RosterPreload *p);

/* ---- per-user caps (roster-limits.c) ------------------------------------ */

/* What @item costs against max_bytes: its characters plus the markup of
 * a roster result. Pure, any thread. */
gint64 roster_item_cost(const RosterItem *item);
/* Whether @user may store @after in place of a row that cost
 * @before_cost (-1: a new row) under max_items and max_bytes. Storage
 * thread, inside the op's work. FALSE on a storage error; otherwise
 * *@refusal is NULL or the reason (static) to refuse with. */
gboolean roster_limits_allow(Roster *r, MkDbConn *conn, MkJid *user, gint64 before_cost,
                             const RosterItem *after, const char **refusal, GError **error);

/* ---- the session's list of subscribers (roster-subs.c) ------------------ */

/* Remembers the subscribers (items with ROSTER_SUB_FROM) among @items, a
 * roster read that saw every write of the user counted in @queued.
 * Session worker. */
void roster_subs_store(RosterSlot *slot, GPtrArray *items, gint queued);
/* TRUE when the slot's list is current (no roster write of the stripe
 * pushed since): then the slot's subs are the subscribers. Logs and
 * counts the outcome for @s. Session worker. */
gboolean roster_subs_current(Roster *r, RosterSlot *slot, MkSession *s);
/* Routes @stanza, from @from, to every subscriber in @subs. Any thread. */
void roster_subs_send(const char *subs, MkJid *from, MkStanza *stanza);

G_END_DECLS
