/* mod_muc_light internals: shared by the module's files, never installed.
 *
 * Files:
 *   muclight-room.c   room values and the affiliation rules; pure
 *   muclight-db.c     the schema and the statements (storage thread)
 *   muclight-ops.c    changes of a room: create, destroy, configuration,
 *                     affiliations; their notifications
 *   muclight-read.c   reads: configuration, affiliations, info, blocking
 *                     lists, disco
 *   muclight-rest-routes.c  the REST endpoints (admin and client)
 *   muclight-rest.c   REST requests carried out as stanzas, their answers
 *   mod_muc_light.c   descriptor, start, the route, groupchat messages */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define NS_ML          "urn:xmpp:muclight:0"
#define NS_ML_CREATE   NS_ML "#create"
#define NS_ML_DESTROY  NS_ML "#destroy"
#define NS_ML_CONFIG   NS_ML "#configuration"
#define NS_ML_AFFS     NS_ML "#affiliations"
#define NS_ML_INFO     NS_ML "#info"
#define NS_ML_BLOCKING NS_ML "#blocking"
#define NS_CLIENT      "jabber:client"

/* ---- room values (muclight-room.c): pure, any thread ------------------ */

typedef enum {
    ML_NONE = 0,
    ML_MEMBER = 1,
    ML_OWNER = 2,
} MlAff;

typedef struct {
    char *jid; /* a prepared bare JID */
    MlAff aff;
} MlUser;

/* A room as stored: immutable once built, shared by reference (the cache
 * hands it to every worker). */
typedef struct {
    gint ref;
    gboolean exists;
    gboolean failed; /* the cache's fallback after a failed load */
    char *version;
    char *roomname;
    char *subject;
    GPtrArray *users; /* MlUser*, sorted by jid */
    /* (nullable) The users as prepared MkJid*, in the same order, built
     * once per value for the fan-out (ml_room_prepare). */
    GPtrArray *recipients;
} MlRoom;

MlRoom *ml_room_new(void);
MlRoom *ml_room_ref(MlRoom *r);
void ml_room_unref(MlRoom *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MlRoom, ml_room_unref)
/* A copy with its own user list, to build a changed room. (transfer full) */
MlRoom *ml_room_copy(const MlRoom *r);
/* @jid's affiliation in @r (ML_NONE when absent). */
MlAff ml_room_aff(const MlRoom *r, const char *jid);
/* Sets @jid's affiliation (ML_NONE removes), keeping the list sorted. */
void ml_room_set_aff(MlRoom *r, const char *jid, MlAff aff);
/* The owner's JID or NULL. (transfer none) */
const char *ml_room_owner(const MlRoom *r);

gboolean ml_aff_parse(const char *text, MlAff *aff);
const char *ml_aff_name(MlAff aff);

/* A new random version string / room ID. (transfer full) */
char *ml_random_id(guint chars);

/* One affiliation change of a request (or one it implies). */
typedef struct {
    char *jid;
    MlAff aff;
} MlChange;

void ml_change_free(gpointer c);
MlChange *ml_change_new(const char *jid, MlAff aff);

/* What a request may do (the module's configuration). */
typedef struct {
    gboolean all_can_invite;
    gboolean promote_on_owner_leave;
} MlRules;

/* The result of a rule check: OK or the stanza error condition's name. */
typedef enum {
    ML_OK = 0,
    ML_BAD_REQUEST,
    ML_NOT_ALLOWED,
} MlVerdict;

/* Applies @req (MlChange*, JIDs unique, already validated) made by @actor
 * (an occupant of @before) to @before: checks the rules of the protocol
 * (meaningful changes, one owner, what members may do), moves the owner
 * role, promotes a member when the owner leaves (@rules), and returns
 * the new room in @after and every change made (the request's plus the
 * implied ones) in @changes. (transfer full) of the outputs, set only on
 * ML_OK. */
MlVerdict ml_apply_changes(const MlRoom *before, const char *actor, GPtrArray *req,
                           const MlRules *rules, MlRoom **after, GPtrArray **changes);

/* ---- the rest needs the server API ------------------------------------- */

#ifndef ML_PURE

#include <meerkat/module.h>

typedef struct {
    MkModule *mod;
    char **services;    /* the service domains, one per served domain */
    MkUserQueue *queue; /* keyed by room JID (changes) or user JID (blocking) */
    MkUserCache *cache; /* room JID -> MlRoom */
    gint64 rooms_per_user;
    gint64 max_occupants;
    gint64 max_roomname;
    gint64 max_room_id;
    gint64 max_subject;
    gint64 max_blocking;
    gboolean blocking;
    gboolean all_can_configure;
    MlRules rules;
    MkCounter *created;
    MkCounter *destroyed;
    MkCounter *messages;
    MkCounter *copies;
    MkCounter *refused_rooms_per_user;
    MkCounter *refused_occupants;
    MkCounter *loads;
    MkCounter *rest_requests;
    MkCounter *rest_timeouts;
    /* REST (muclight-rest.c). */
    char *rest_prefix;
    char *rest_admin_user;
    char *rest_admin_password; /* NULL: the admin endpoints answer 403 */
} MucLight;

/* ---- storage (muclight-db.c): storage thread -------------------------- */

extern const MkMigration ml_migrations[];

/* @room's stored state (exists = FALSE when there is none). (transfer
 * full) (nullable) NULL with @error on a storage failure. */
MlRoom *ml_db_read_room(MkDbConn *conn, const char *room, GError **error);
/* Writes @after over @before for @room (rows of changed users, the
 * room's row; deletes all when @after does not exist). */
gboolean ml_db_write_room(MkDbConn *conn, const char *room, const MlRoom *before,
                          const MlRoom *after, GError **error);
/* Rooms @jid occupies; -1 on error. */
gint64 ml_db_count_rooms(MkDbConn *conn, const char *jid, GError **error);
/* Whether local user @jid blocked @room or @actor (MUC Light blocking). */
gboolean ml_db_blocks(MkDbConn *conn, MkJid *user, const char *room, const char *actor,
                      gboolean *blocks, GError **error);
gboolean ml_db_room_exists(MkDbConn *conn, const char *room, gboolean *exists, GError **error);

/* ---- the route's handlers --------------------------------------------- */

/* Builds @r's recipients before it is shared. Any thread. */
void ml_room_prepare(MlRoom *r);

/* Stanza helpers (mod_muc_light.c). */
void ml_reply_error(MkStanza *st, MkStanzaError cond, const char *text);
/* An IQ result to @iq from its 'to', with @payload (transfer full,
 * nullable). */
void ml_reply(MkStanza *iq, MkXml *payload);
/* The room's value from the cache, or NULL while it loads (then @st is
 * held and routed again). (transfer full) */
MlRoom *ml_room_get(MucLight *ml, MkJid *room, MkStanza *st);
/* <message type=groupchat from=@room id=@id><body/></message> to fill
 * in. (transfer full) */
MkXml *ml_notification(const char *id);

/* muclight-ops.c: IQ set requests that change a room. */
void ml_create(MucLight *ml, MkStanza *iq, MkXml *query);
void ml_destroy(MucLight *ml, MkStanza *iq);
void ml_config_set(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room);
void ml_affs_set(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room);
/* @user (a bare JID) leaves @room as if it had asked: for an account
 * that was removed. Any thread with a main context. */
void ml_leave(MucLight *ml, MkJid *room, const char *user);

/* muclight-read.c */
void ml_config_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room);
void ml_affs_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room);
void ml_info_get(MucLight *ml, MkStanza *iq, MkXml *query, MlRoom *room);
void ml_blocking_get(MucLight *ml, MkStanza *iq);
void ml_blocking_set(MucLight *ml, MkStanza *iq, MkXml *query);
void ml_disco_items(MucLight *ml, MkStanza *iq);

/* muclight-rest-routes.c: the REST endpoints. Main thread. */
gboolean ml_rest_start(MucLight *ml, GError **error);

/* muclight-rest.c: REST requests carried out as stanzas of the acting
 * user (a local bare JID), answered when the room answers. @req is
 * (transfer none); each answers it exactly once. Worker. */
void ml_rest_create(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *owner, MkJid *room,
                    const char *name, const char *subject);
void ml_rest_affiliation(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *actor,
                         MkJid *room, MkJid *user, MlAff aff);
void ml_rest_message(MucLight *ml, MkHttpRequest *req, gboolean admin, MkJid *from, MkJid *room,
                     const char *body);
void ml_rest_destroy(MucLight *ml, MkHttpRequest *req, MkJid *owner, MkJid *room);
void ml_rest_config(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room, const char *name,
                    const char *subject);
void ml_rest_details(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room);
/* The room's archive; @user (nullable: the admin) must be an occupant. */
void ml_rest_archive(MucLight *ml, MkHttpRequest *req, MkJid *user, MkJid *room, gint64 before_us,
                     gint64 limit);
/* An instance starts / stops: pending requests of a stopping one are
 * answered 503. Main thread. */
void ml_rest_open(MucLight *ml);
void ml_rest_stop(MucLight *ml);
/* The answer to @st (an IQ or a message a REST request made): answers
 * the HTTP request and returns TRUE, or FALSE when @st came from XMPP.
 * @payload (transfer none, nullable) is the result's. Any thread. */
gboolean ml_rest_take(MkStanza *st, MkXml *payload, gboolean failed, MkStanzaError cond,
                      const char *text);
/* A groupchat message @st went out (@archive_id, nullable); as above. */
gboolean ml_rest_sent(MkStanza *st, const char *archive_id);

#endif

G_END_DECLS
