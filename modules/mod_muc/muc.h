/* mod_muc: Multi-User Chat (XEP-0045) on conference.DOMAIN.
 *
 * Each room is owned by one worker (mk-owner.h, keyed by the room's bare
 * JID): the route handler posts every stanza for a room there, and only
 * that worker reads or changes the room. The directory (name -> room) is
 * shared under a lock; it holds pointers only. See docs/mod_muc.md. */
#pragma once

#include <meerkat/module.h>

#define NS_MUC         "http://jabber.org/protocol/muc"
#define NS_MUC_USER    "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN   "http://jabber.org/protocol/muc#admin"
#define NS_MUC_OWNER   "http://jabber.org/protocol/muc#owner"
#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_DATA        "jabber:x:data"
#define NS_DELAY       "urn:xmpp:delay"
#define NS_PING        "urn:xmpp:ping"
#define NS_MAM         "urn:xmpp:mam:2"
#define NS_SID         "urn:xmpp:sid:0"
#define NS_STANZAS     "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_CLIENT      "jabber:client"

typedef struct Muc Muc;
typedef struct MucRoom MucRoom;

typedef enum { AFF_OUTCAST = -1, AFF_NONE = 0, AFF_MEMBER, AFF_ADMIN, AFF_OWNER } MucAff;
typedef enum { ROLE_NONE = 0, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR } MucRole;

typedef struct {
    char *title;
    char *description;
    char *password; /* nullable: none */
    char *creator;  /* nullable: the bare JID that created the room (max_rooms_per_user) */
    gboolean persistent, public_room, members_only, moderated, password_protected;
    gboolean non_anonymous; /* whois anyone */
    gboolean allow_invites, change_subject, logging, allow_pm;
    gint64 max_users, history_length;
} MucConfig;

typedef struct {
    MucAff aff;
    char *nick;   /* nullable: a reserved nick */
    char *reason; /* nullable */
} MucAffItem;

typedef struct {
    Muc *muc;
    char *nick;
    MkJid *bare;         /* the real bare JID */
    GPtrArray *sessions; /* MkJid*: the real full JIDs joined under this nick */
    MucRole role;
    MkXml *presence; /* (nullable) the last presence, as sent by the user */
} MucOccupant;

typedef struct {
    MkXml *msg;  /* as broadcast, without from and to */
    MkJid *from; /* room/nick */
    gint64 stamp_us;
    gsize chars;
} MucHistory;

struct MucRoom {
    Muc *muc;
    char *key;  /* room bare JID string */
    MkJid *jid; /* bare */
    MucConfig cfg;
    gboolean locked;  /* created, not yet configured (XEP-0045 10.1) */
    gboolean loading; /* waiting for the database */
    gboolean stored;  /* has a row in the database */
    /* Cluster write-through of the history (muc_db_history_changed):
     * a write in flight, and a change since it was taken. Owner. */
    gboolean history_writing, history_dirty;
    char *subject, *subject_nick;
    GHashTable *affs;      /* bare JID string -> MucAffItem* */
    GHashTable *occupants; /* nick -> MucOccupant* */
    GHashTable *by_jid;    /* full real JID string -> MucOccupant* (no ref) */
    GQueue history;        /* MucHistory* */
    GQueue pending;        /* MkStanza* waiting for the load */
    gint64 idle_since;     /* monotonic s the room is empty since, 0: in use; under
                            * muc->lock (read by the sweep) */
};

typedef struct {
    char *service; /* conference.localhost */
    char *host;    /* localhost */
} MucService;

struct Muc {
    MkModule *mod;
    GPtrArray *services; /* MucService* */
    GMutex lock;         /* guards @rooms (the table, not the rooms) */
    GHashTable *rooms;   /* key -> MucRoom* */
    GHashTable *listed;  /* key -> title: public rooms for disco#items */
    gint n_rooms;        /* rooms that exist (live or in the database); atomic */
    GHashTable *created; /* creator's bare JID -> rooms of theirs that exist; under @lock */
    gint counted;        /* the stored rooms were counted (start-up); atomic */
    gint64 max_rooms_per_user;
    GMutex joined_lock;    /* guards @joined (taken inside @lock, never around it) */
    GHashTable *joined;    /* real bare JID -> occupants it is in all rooms */
    gint64 max_joined;     /* max_joined_rooms */
    gboolean enforce_nick; /* enforce_reserved_nick */
    MkUserQueue *queue;    /* storage work per room, in order */
    gint64 max_rooms, max_room_name, max_nick, max_history, hibernate_after, max_users;
    gint64 default_history;
    gint64 max_affs;   /* affiliations per room */
    guint max_pending; /* stanzas waiting for a room's load */
    gint n_loading;    /* rooms being read from the database; atomic */
    gint max_loading;
    gboolean default_persistent, default_public;
    MkCounter *c_created, *c_destroyed, *c_refused, *c_hibernated, *c_woken, *c_messages, *c_joins,
        *c_limited, *c_join_limited;
    char *rest_prefix; /* the admin REST endpoints' path prefix */
    char *rest_admin_user;
    char *rest_admin_password; /* NULL: the admin endpoints answer 403 */
    /* Cluster (muc-home.c): joins of local users to rooms homed elsewhere. */
    GMutex away_lock;
    GHashTable *away; /* room key -> Away*; under @away_lock */
    gint n_away;      /* joins in @away; under @away_lock */
};

/* muc-room.c: room lifetime and dispatch. Owner worker only. */
void muc_dispatch(Muc *muc, MkStanza *st);
MucRoom *muc_room_new(Muc *muc, MkJid *jid);
void muc_room_free(MucRoom *room);
void muc_room_loaded(MucRoom *room, gboolean found);
void muc_room_destroy(MucRoom *room, const char *alt, const char *reason);
void muc_room_maybe_idle(MucRoom *room);
MucAff muc_room_aff(MucRoom *room, MkJid *real);
void muc_room_set_aff(MucRoom *room, const char *bare, MucAff aff, const char *reason);
MucOccupant *muc_room_occupant_by_bare(MucRoom *room, MkJid *real);
GPtrArray *muc_room_occupants(MucRoom *room);
void muc_room_changed(MucRoom *room);
void muc_room_summary(MucRoom *room, gboolean gone);
void muc_creator_count(Muc *muc, const char *bare, int delta);
/* Counts an occupant of @bare's in unless they are in max_joined_rooms
 * rooms already (FALSE); muc_joined_release counts one out. Any worker. */
gboolean muc_joined_take(Muc *muc, MkJid *bare);
void muc_joined_release(Muc *muc, MkJid *bare);
gboolean muc_hibernate_sweep(gpointer data);
MkResult muc_on_remove_user(MkHookCall *call, gpointer data);
/* The keys of the rooms in memory now, to post work to each room's owner.
 * (transfer full) Any thread. */
GPtrArray *muc_room_keys(Muc *muc);

/* muc-presence.c */
void muc_presence(MucRoom *room, MkStanza *st);
MkXml *muc_presence_item(MucRoom *room, MucOccupant *o, MucOccupant *to, gboolean leave);
void muc_presence_broadcast(MucRoom *room, MucOccupant *o, gboolean leave, const int *codes,
                            MkXml *extra);
void muc_occupant_remove(MucRoom *room, MucOccupant *o, const int *codes, const char *reason,
                         MucOccupant *actor);
MucRole muc_default_role(MucRoom *room, MucAff aff);

/* muc-message.c */
void muc_message(MucRoom *room, MkStanza *st);
void muc_fanout(MucRoom *room, MkXml *msg, MkJid *from);
void muc_send_to_occupant(MucOccupant *o, MkXml *xml, MkJid *from);
void muc_status_message(MucRoom *room, const int *codes);
char *muc_history_to_string(MucRoom *room);
void muc_history_from_string(MucRoom *room, const char *text);

/* muc-iq.c: admin, owner, disco, ping, MAM at the room. */
void muc_room_iq(MucRoom *room, MkStanza *st);
void muc_service_iq(Muc *muc, MkStanza *st);
MkXml *muc_form_field(MkXml *form, const char *var, const char *type, const char *label,
                      const char *value);

/* muc-goodbye.c: the module stops: occupants get 332, persistent rooms
 * write their history. Main thread (mk_module_on_stopping). */
void muc_on_stopping(MkModule *mod, gpointer data);

/* muc-rest.c: the admin REST endpoints (PREFIX/mucs/...). */
gboolean muc_rest_start(Muc *muc, GError **error);
/* Answers the requests of @muc still waiting for a room (503). Main
 * thread, when the module stops. */
void muc_rest_stop(Muc *muc);

/* muc-db.c */
extern const MkMigration muc_migrations[];
void muc_db_load(MucRoom *room);
void muc_db_save(MucRoom *room);
void muc_db_delete(MucRoom *room);
void muc_db_save_history(MucRoom *room, char *text);
/* In a cluster, stores a persistent room's history after each change
 * (at most one write in flight, the next one takes every change made
 * meanwhile), so that a survivor that re-homes the room after its home
 * was killed gets it back. Nothing without [cluster]. Owner. */
void muc_db_history_changed(MucRoom *room);
void muc_db_count(Muc *muc);

/* muc-home.c: rooms homed on one node of a cluster (docs/clustering.md). */
void muc_home_init(Muc *muc);
void muc_home_clear(Muc *muc);
/* TRUE: the room @key lives here, handle @st; FALSE: the cluster took it
 * (to the room's node, or held until Redis says where). Any worker. */
gboolean muc_home_take(Muc *muc, const char *key, MkStanza *st);
/* Hook cluster_node_gone. */
MkResult muc_on_node_gone(MkHookCall *call, gpointer data);

/* muc-config.c: pure. */
char *muc_config_to_string(const MucConfig *cfg);
void muc_config_from_string(MucConfig *cfg, const char *text);
void muc_config_clear(MucConfig *cfg);
void muc_config_copy(MucConfig *dst, const MucConfig *src);
MkXml *muc_config_form(const MucConfig *c);
gboolean muc_config_apply_form(MucConfig *cfg, MkXml *x, gint64 max_users, gint64 max_history,
                               const char **why);

/* helpers (mod_muc.c) */
const char *muc_aff_name(MucAff aff);
const char *muc_role_name(MucRole role);
gboolean muc_aff_parse(const char *s, MucAff *out);
gboolean muc_role_parse(const char *s, MucRole *out);
void muc_error(MkStanza *st, MkStanzaError cond, const char *text);
void muc_add_status(MkXml *x, int code);
