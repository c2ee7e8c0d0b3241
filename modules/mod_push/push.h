/* XEP-0357 push notifications: the engine shared by mod_push and by
 * mod_event_pusher's "push" backend (both link these files; only one of
 * the two may run on a host type, see docs/mod_push.md).
 *
 * Files:
 *   push-form.c    the protocol's XML: enable/disable requests, the
 *                  notification IQ, error conditions; pure
 *   push-db.c      the schema (a migration each module ships)
 *   push-engine.c  IQ handlers, hooks, publishing, app server errors */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define NS_PUSH         "urn:xmpp:push:0"
#define NS_PUSH_SUMMARY "urn:xmpp:push:summary"
#define NS_PUBSUB       "http://jabber.org/protocol/pubsub"
#define NS_PUBLISH_OPTS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_XDATA        "jabber:x:data"

#include <meerkat/module.h>

/* ---- the protocol (push-form.c): pure, any thread ---------------------- */

/* What a client asked in an <enable/> or <disable/>. */
typedef struct {
    gboolean enable;
    char *service; /* the app server's JID, as prepared */
    char *node;    /* nullable for disable: every node of the service */
    char *form;    /* the publish-options form as XML, nullable */
} PushRequest;

void push_request_free(PushRequest *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PushRequest, push_request_free)

/* Reads @payload (the IQ's child). NULL with a bad-request reason in
 * @why (static text) when the request is malformed. (transfer full) */
PushRequest *push_request_parse(MkXml *payload, const char **why);

/* The summary of XEP-0357 section 7. @body (nullable) is left out when
 * NULL. */
typedef struct {
    guint count;
    const char *sender;
    const char *body;
} PushSummary;

/* The publish IQ (without an id: mk_iq_send gives one) from @account to
 * @service: <pubsub><publish node><item><notification> with the summary,
 * then <publish-options> holding @form (XML text, nullable). (transfer full) */
MkXml *push_publish_new(const char *account, const char *service, const char *node,
                        const PushSummary *sum, const char *form);

/* The first stanza error condition of an IQ error response ("item-not-found"),
 * or NULL. (transfer none) */
const char *push_error_condition(MkXml *response);

/* Whether a message is worth a notification: a body that is not blank, and of type chat,
 * normal or (when @groupchat_ok) groupchat; never an error or headline. */
gboolean push_message_wanted(MkXml *msg, gboolean groupchat_ok);

/* ---- the schema (push-db.c) ------------------------------------------- */

extern const MkMigration push_migrations[];

/* ---- the engine (push-engine.c) --------------------------------------- */

typedef struct PushEngine PushEngine;

/* Starts the engine on @mod: registers the IQ handler, the account
 * feature, hooks and counters; reads its keys as @prefix + name
 * ("max_enablements" or "push_max_enablements"). Main thread, in start();
 * the caller keeps it with its module data and frees it in that data's
 * destroy (push_engine_free). */
PushEngine *push_engine_start(MkModule *mod, const char *prefix, GError **error);
void push_engine_free(PushEngine *e);

/* A notification for an enablement whose app server is on a virtual
 * pubsub host: handed to the embedding module instead of published.
 * @form: the publish-options form as stored (XML text, nullable). The
 * worker that read the enablements; everything (transfer none). */
typedef void (*PushVirtualFunc)(const char *account, const char *service, const char *node,
                                const PushSummary *sum, const char *form, gpointer data);

/* From now on, notifications to an app server whose domain is one of
 * @hosts go to @func and never through the router: no IQ, so no app
 * server error either. Main thread, in start(), before any traffic. */
void push_engine_set_virtual(PushEngine *e, const char *const *hosts, PushVirtualFunc func,
                             gpointer data);

/* The keys the engine reads, without prefix, for a module's key table. */
/* clang-format off */
#define PUSH_CONFIG_KEYS(P)                                                                        \
    {P "max_enablements", MK_CONFIG_INT, "10", 1, 1000,                                            \
     "push enablements (app server and node) per account; more get resource-constraint"},          \
    {P "include_body", MK_CONFIG_BOOL, "true", 0, 0,                                               \
     "send the last message's body to the app server (last-message-body)"},                        \
    {P "max_errors", MK_CONFIG_INT, "3", 1, 1000,                                                  \
     "item-not-found or not-authorized answers in a row before an enablement is removed"},         \
    {P "publish_timeout_ms", MK_CONFIG_INT, "15000", 100, 600000,                                  \
     "how long to wait for the app server's answer to a notification"}
/* clang-format on */

G_END_DECLS
