/* mod_pubsub internals: shared by the module's files, never installed.
 *
 * Files:
 *   ps-config.c  node configuration: defaults, data forms, publish-options (pure)
 *   ps-subopts.c subscription options: the subscribe_options form (pure)
 *   ps-db.c      schema and statements (storage thread)
 *   ps-read.c    what the operations share: reads, access, notifications
 *   ps-ops.c     node and item operations, one transaction each (storage)
 *   ps-subs.c    subscription and affiliation operations (storage)
 *   ps-req.c     parsing requests, answering them, sending notifications
 *   ps-pep.c     PEP: accounts as services, caps-filtered notifications, disco
 *   ps-offline.c purge_offline: a publisher's items when it goes offline
 *   mod_pubsub.c descriptor, configuration, start
 *
 * One code path serves the service at pubsub.DOMAIN and every account's
 * PEP service: a request names its service (a JID) and a node, and runs
 * as one storage transaction on the module's user queue under the key
 * "SERVICE\nNODE", so the operations of one node happen in order while
 * different nodes proceed in parallel. Nothing of a node is kept in
 * memory between requests; docs/mod_pubsub.md says why. */
#pragma once

#include <meerkat/module.h>

G_BEGIN_DECLS

#define NS_PUBSUB        "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER  "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT  "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define NS_PUBSUB_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_PUBSUB_PUBOPT "http://jabber.org/protocol/pubsub#publish-options"
#define NS_PUBSUB_META   "http://jabber.org/protocol/pubsub#meta-data"
#define NS_PUBSUB_SUBOPT "http://jabber.org/protocol/pubsub#subscribe_options"
#define NS_XDATA         "jabber:x:data"
#define NS_SHIM          "http://jabber.org/protocol/shim"
#define NS_CLIENT        "jabber:client"
#define NS_DISCO_INFO    "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS   "http://jabber.org/protocol/disco#items"
#define NS_ADDRESS       "http://jabber.org/protocol/address"

/* ---- node configuration (ps-config.c) -------------------------------- */

typedef enum {
    PS_ACCESS_OPEN,
    PS_ACCESS_PRESENCE,
    PS_ACCESS_ROSTER,
    PS_ACCESS_WHITELIST,
    PS_ACCESS_AUTHORIZE
} PsAccess;
typedef enum { PS_PUBLISH_PUBLISHERS, PS_PUBLISH_SUBSCRIBERS, PS_PUBLISH_OPEN } PsPublish;
typedef enum { PS_SEND_NEVER, PS_SEND_ON_SUB, PS_SEND_ON_SUB_AND_PRESENCE } PsSendLast;

/* max_items meaning "as many as the service allows" (the form's "max"). */
#define PS_MAX_ITEMS_MAX (-1)

typedef struct {
    PsAccess access;
    PsPublish publish;
    gint64 max_items; /* PS_MAX_ITEMS_MAX or >= 0 */
    gboolean persist_items;
    gboolean deliver_payloads;
    gboolean deliver_notifications;
    gboolean notify_retract;
    gboolean notify_delete;
    gboolean notify_config;
    gboolean purge_offline;
    PsSendLast send_last;
    char *title;
    char *type;
    char *notification_type; /* "headline" or "normal" */
    char *itemreply;         /* "owner" or "publisher" */
    char **roster_groups;    /* roster access: groups allowed */
} PsConfig;

/* Defaults: the service's (open access) or a PEP node's (presence). */
PsConfig *ps_config_new(gboolean pep);
PsConfig *ps_config_copy(const PsConfig *c);
void ps_config_free(PsConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PsConfig, ps_config_free)

/* Storage form: "key=value" lines. (transfer full) */
char *ps_config_serialize(const PsConfig *c);
/* Reads what ps_config_serialize wrote over the defaults of @pep. */
PsConfig *ps_config_parse(const char *text, gboolean pep);

/* Applies the fields of @form (an <x xmlns='jabber:x:data'/> submit
 * form of FORM_TYPE node_config) to @c. FALSE with a reason in @why
 * (transfer full) when a field is unknown or a value is invalid, or
 * max_items exceeds @max_items_limit; then *@collections tells a
 * request for a collection node (XEP-0248), which has its own error. */
gboolean ps_config_apply_form(PsConfig *c, MkXml *form, gint64 max_items_limit, char **why,
                              gboolean *collections);
/* Whether each field of @form (publish-options) equals @c's value.
 * "max" as max_items matches PS_MAX_ITEMS_MAX. */
gboolean ps_config_matches(const PsConfig *c, MkXml *form);
/* The node_config form (type "form" to fill, "result" for meta-data).
 * (transfer full) */
MkXml *ps_config_form(const PsConfig *c, const char *form_type, const char *type);
/* The items a node keeps: max_items with "max" resolved. */
gint64 ps_config_item_limit(const PsConfig *c, gint64 max_items_limit);
const char *ps_access_name(PsAccess a);

/* A data form's field value. (transfer full) (nullable) */
char *ps_form_value(MkXml *form, const char *var);

/* ---- subscription options (ps-subopts.c) ----------------------------- */

/* pubsub#show-values as bits; a subscription without any gets all. */
enum {
    PS_SHOW_ONLINE = 1 << 0,
    PS_SHOW_CHAT = 1 << 1,
    PS_SHOW_AWAY = 1 << 2,
    PS_SHOW_XA = 1 << 3,
    PS_SHOW_DND = 1 << 4,
};

typedef struct {
    gboolean deliver; /* pubsub#deliver */
    gint64 expire;    /* pubsub#expire: unix ms, 0 = no lease */
    guint show;       /* pubsub#show-values: PS_SHOW_* bits, 0 = any */
} PsSubOpts;

void ps_subopts_init(PsSubOpts *o);
/* Storage form: "key=value" lines, "" for the defaults. (transfer full) */
char *ps_subopts_serialize(const PsSubOpts *o);
void ps_subopts_parse(const char *text, PsSubOpts *o);
/* Applies a submitted subscribe_options form. FALSE with @why (transfer
 * full) when a field is unknown or its value unsupported (section 6.3.5:
 * bad-request + invalid-options). */
gboolean ps_subopts_apply_form(PsSubOpts *o, MkXml *form, char **why);
/* The form of @o (type "form"). (transfer full) */
MkXml *ps_subopts_form(const PsSubOpts *o);
/* The PS_SHOW_* bit of an available presence's <show/> text (NULL:
 * plain available). */
guint ps_show_bit(const char *show);
/* Whether @o's lease ended at @now_ms. */
gboolean ps_subopts_expired(const PsSubOpts *o, gint64 now_ms);

/* ---- affiliations ---------------------------------------------------- */

typedef enum {
    PS_AFF_OUTCAST = -1,
    PS_AFF_NONE = 0,
    PS_AFF_MEMBER,
    PS_AFF_PUBLISH_ONLY,
    PS_AFF_PUBLISHER,
    PS_AFF_OWNER,
} PsAffiliation;

const char *ps_aff_name(PsAffiliation a);
gboolean ps_aff_parse(const char *name, PsAffiliation *out);

/* ---- requests (ps-req.c, ps-ops.c) ------------------------------------ */

typedef struct PubSub PubSub;

typedef enum {
    PS_OP_CREATE,
    PS_OP_CONFIGURE_GET,
    PS_OP_CONFIGURE_SET,
    PS_OP_DEFAULT,
    PS_OP_DELETE,
    PS_OP_PURGE,
    PS_OP_PUBLISH,
    PS_OP_RETRACT,
    PS_OP_ITEMS,
    PS_OP_SUBSCRIBE,
    PS_OP_UNSUBSCRIBE,
    PS_OP_OPTIONS_GET,
    PS_OP_OPTIONS_SET,
    PS_OP_SUBSCRIPTIONS,       /* the requester's own */
    PS_OP_AFFILIATIONS,        /* the requester's own */
    PS_OP_OWNER_SUBSCRIPTIONS, /* get */
    PS_OP_OWNER_SUBSCRIPTIONS_SET,
    PS_OP_OWNER_AFFILIATIONS,
    PS_OP_OWNER_AFFILIATIONS_SET,
    PS_OP_DISCO_INFO,
    PS_OP_DISCO_ITEMS,
    PS_OP_AUTHORIZE,   /* a subscription approval form in a message */
    PS_OP_DEFAULT_SUB, /* the default subscription options (section 6.4) */
} PsOp;

/* A notification to send once the transaction committed. */
typedef struct {
    char *to;          /* a subscriber's JID (bare or full), or a PEP contact's bare JID */
    gboolean pep_caps; /* PEP implicit: each available resource whose caps name node+notify */
    MkXml *message;    /* <message/> without 'to' */
    gint64 seq;        /* a publish's stored item version (PsReq.seq), 0 otherwise */
    /* A subscriber's: the subids it answers, each with its show-values
     * (GUINT_TO_POINTER of PS_SHOW_* bits, 0 = any); the worker picks
     * the resources by presence and adds <headers/> (nullable). */
    GPtrArray *subids;
    GPtrArray *shows;
} PsNote;

typedef struct {
    PubSub *ps;
    MkModule *mod;
    MkIq *iq;       /* PEP requests come as IQs; nullable */
    MkStanza *st;   /* the request */
    MkJid *service; /* the service's JID: pubsub.DOMAIN or an account's bare JID */
    gboolean pep;
    MkJid *from; /* the requester */
    MkJid *from_bare;
    PsOp op;
    char *node; /* nullable (service-level requests, instant nodes) */
    /* parameters */
    MkXml *el;   /* the action element (create, publish, ...) */
    MkXml *form; /* configure / publish-options / options form, nullable */
    MkXml *el2;  /* <configure/> beside <create/>; nullable */
    char *jid;   /* subscribe/unsubscribe/options jid */
    char *subid;
    char *item_id;
    GPtrArray *item_ids; /* items retrieval / retract: char* */
    gint64 max_items;    /* items retrieval, 0 = all */
    gboolean notify;     /* retract notify='true' */
    char *payload;       /* publish: the payload serialized */
    gsize payload_len;
    /* results, set on the storage thread */
    gboolean counted; /* holds one of the service's pending slots */
    gboolean failed;
    MkStanzaError err;
    const char *app;         /* pubsub#errors condition, nullable */
    const char *app_feature; /* <unsupported feature=/> */
    char *err_text;
    MkXml *result;       /* payload of the IQ result, nullable */
    GPtrArray *notes;    /* PsNote* */
    GPtrArray *reply_to; /* publish: XEP-0033 replyto JIDs of its notifications, nullable */
    gint64 seq;          /* publish: the stored item's version (pubsub_items.seq), 0 if none */
} PsReq;

void ps_req_free(PsReq *r);
/* Fails @r with @err and the pubsub#errors @app (nullable). */
void ps_req_fail(PsReq *r, MkStanzaError err, const char *app);

/* Handles a pubsub / disco IQ or an authorization message addressed to
 * @service. (transfer none) of everything. Worker. */
void ps_handle(PubSub *ps, MkModule *mod, MkIq *iq, MkStanza *st, MkJid *service, gboolean pep);

/* Storage thread: the request's work in its transaction. */
gboolean ps_ops_run(MkDbConn *conn, gpointer data, GError **error);
/* The subscription operations (ps-subs.c), run by ps_ops_run. */
gboolean ps_op_subscribe(MkDbConn *conn, PsReq *r, GError **error);
gboolean ps_op_unsubscribe(MkDbConn *conn, PsReq *r, GError **error);
gboolean ps_op_options(MkDbConn *conn, PsReq *r, GError **error);
gboolean ps_op_own(MkDbConn *conn, PsReq *r, GError **error);
gboolean ps_op_owner_lists(MkDbConn *conn, PsReq *r, GError **error);
gboolean ps_op_authorize(MkDbConn *conn, PsReq *r, GError **error);
/* The <default/> subscription options answer (of @r's node, nullable).
 * (transfer full) */
MkXml *ps_default_sub_result(PsReq *r);
gboolean ps_op_default_sub(MkDbConn *conn, PsReq *r, GError **error);

/* ---- shared by the operations (ps-read.c) ---------------------------- */

typedef struct {
    PsConfig *cfg; /* NULL: no such node */
} PsNode;

typedef struct {
    char *jid, *subid, *state;
    PsSubOpts opts;
} PsSub;

typedef enum { PS_GRANT_OK, PS_GRANT_PENDING, PS_GRANT_DENIED } PsGrant;

typedef MkXml *(*PsEventFunc)(PsReq *r, gpointer data);

typedef struct {
    const char *id;
    const char *payload;   /* NULL: without payload */
    const char *publisher; /* the item's 'publisher' attribute (itemreply), nullable */
} PsItemEvent;

void ps_node_clear(PsNode *n);
gboolean ps_load_node(MkDbConn *conn, PsReq *r, const char *node, PsNode *out, GError **error);
gboolean ps_load_aff(MkDbConn *conn, PsReq *r, const char *jid, PsAffiliation *out, GError **error);
void ps_sub_free(gpointer p);
GPtrArray *ps_load_subs(MkDbConn *conn, PsReq *r, const char *jid, GError **error);
gboolean ps_is_subscribed(MkDbConn *conn, PsReq *r, const char *bare, gboolean *yes,
                          GError **error);
gboolean ps_check_access(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsAffiliation aff,
                         gboolean subscribing, PsGrant *out, GError **error);
void ps_add_note(PsReq *r, const char *to, gboolean pep_caps, MkXml *message);
/* A subscriber's notification: @subs (PsSub*, transfer none) are the
 * subscriptions of one JID it answers. */
void ps_add_sub_note(PsReq *r, const char *to, MkXml *message, GPtrArray *subs);
/* Whether @who (a bare JID) may see @node of @cfg (disco, section 5):
 * the access decision without an error. */
gboolean ps_node_visible(MkDbConn *conn, PsReq *r, const char *node, const PsConfig *cfg,
                         const char *who, gboolean *yes, GError **error);
MkXml *ps_event_message(PsReq *r, const PsConfig *cfg, MkXml *event, GPtrArray *subids);
gboolean ps_notify_all(MkDbConn *conn, PsReq *r, const PsConfig *cfg, PsEventFunc make,
                       gpointer data, GError **error);
MkXml *ps_item_el(const char *id, const char *payload, const char *publisher);
/* The JIDs replies to the items of @cfg's node go to (pubsub#itemreply):
 * the publisher, or the node's owners. (transfer full) of strings */
GPtrArray *ps_reply_to(MkDbConn *conn, PsReq *r, const PsConfig *cfg, const char *publisher,
                       GError **error);
MkXml *ps_make_items_event(PsReq *r, gpointer data);
MkXml *ps_make_retract_event(PsReq *r, gpointer data);
MkXml *ps_make_simple_event(PsReq *r, gpointer data);
MkXml *ps_make_config_event(PsReq *r, gpointer data);
gboolean ps_last_item(MkDbConn *conn, PsReq *r, const char *node, char **id, char **payload,
                      GError **error);
gboolean ps_node_and_aff(MkDbConn *conn, PsReq *r, gboolean owner, PsNode *n, PsAffiliation *aff,
                         GError **error);

/* ---- storage (ps-db.c) ------------------------------------------------- */

extern const MkMigration ps_migrations[];

/* ---- the module ------------------------------------------------------- */

struct PubSub {
    MkModule *mod;
    MkUserQueue *queue;
    char *host;                    /* the service's domain, "" when not served */
    gint64 max_items;              /* what "max" means, and the bound of max_items */
    gint64 max_payload;            /* bytes of one item's payload */
    gint64 max_nodes;              /* nodes of one PEP account / of the service per creator */
    gint64 max_subscriptions;      /* subscriptions of one JID on one node */
    gint64 max_pending;            /* requests of one service waiting for storage */
    gint64 max_user_subscriptions; /* subscriptions of one bare JID, all nodes */
    GMutex pending_lock;
    GHashTable *pending; /* service JID -> count (GUINT_TO_POINTER) */
    /* Sessions whose last items are being read because their caps just
     * became known, or were a moment ago (ps-pep.c): full JID ->
     * PsCapsWait, so that an item is not sent both live and as a last
     * item. */
    GMutex caps_lock;
    GHashTable *caps_waits;
    gint caps_waiting; /* atomic: caps_waits' size, read without the lock */
    gint64 caps_swept; /* under caps_lock: the last expiry sweep */
    gboolean admins_only_create;
    char **admins; /* bare JIDs allowed to create nodes when admins_only_create */
    MkCounter *publishes;
    MkCounter *notifications;
    MkCounter *refusals;
    MkCounter *limit_refusals; /* refusals by a per-user limit */
    MkCounter *purged;         /* items purged when their publisher went offline */
};

/* The table of PubSub.caps_waits. (transfer full) */
GHashTable *ps_caps_waits_new(void);
/* PEP (ps-pep.c): IQs at accounts, caps-driven last items. Main thread. */
gboolean ps_pep_start(PubSub *ps, GError **error);
/* Account removal: its subscriptions and affiliations elsewhere. */
void ps_accounts_start(PubSub *ps);
/* purge_offline (ps-offline.c). Main thread, in start(). */
void ps_offline_start(PubSub *ps);
/* Sends the notes of a finished request (ps-req.c). Worker. */
void ps_send_notes(PubSub *ps, MkJid *service, const char *node, GPtrArray *notes);
void ps_note_free(gpointer p);
/* Sends @note (a PEP implicit notification) to each available resource
 * of note->to whose caps name @node's "+notify". Worker. */
void ps_pep_deliver(PubSub *ps, MkJid *service, const char *node, PsNote *note);

G_END_DECLS
