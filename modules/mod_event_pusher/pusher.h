/* mod_event_pusher internals: shared by the module's files, never installed.
 *
 * Files:
 *   pusher-event.c    events, their JSON, the per-backend filter; pure
 *   pusher-queue.c    the bounded queue between the hooks and a backend
 *   pusher-http.c     backend "http": libsoup 3 on a thread of its own
 *   pusher-rabbit.c   backend "rabbit": librabbitmq on a thread of its own
 *   mod_event_pusher.c  descriptor, hooks, start/stop
 * The "push" backend is mod_push's engine (modules/mod_push/push.h). */
#pragma once

#include <meerkat/module.h>

G_BEGIN_DECLS

/* ---- events (pusher-event.c): pure, any thread ------------------------ */

typedef enum {
    PUSHER_CHAT_SENT,
    PUSHER_CHAT_RECEIVED,
    PUSHER_GROUPCHAT_SENT,
    PUSHER_GROUPCHAT_RECEIVED,
    PUSHER_PRESENCE,
    PUSHER_LOGIN,
    PUSHER_LOGOUT,
    PUSHER_PUSH, /* a notification to a virtual pubsub host (docs/mod_push.md) */
    PUSHER_N_KINDS,
} PusherKind;

/* An event, immutable once made, shared by the backends' queues: its
 * JSON is built at once, for all backends (docs/mod_event_pusher.md has
 * the schema); the struct, @user and @json are one allocation. */
typedef struct {
    gint ref;
    PusherKind kind;
    char *user;         /* the local account's bare JID the event is about */
    const char *domain; /* in @user */
    char *json;
    gsize json_len;
} PusherEvent;

/* "chat_sent", ... (transfer none) */
const char *pusher_kind_name(PusherKind kind);
/* -1 when @name is none. */
int pusher_kind_from_name(const char *name);

/* A message event. @offline: -1 leaves the field out. (transfer full) */
PusherEvent *pusher_event_message(PusherKind kind, const char *user, const char *from,
                                  const char *to, const char *body, int offline);
PusherEvent *pusher_event_presence(const char *user, const char *from, gboolean available,
                                   const char *show, const char *status);
/* login, logout. */
PusherEvent *pusher_event_session(PusherKind kind, const char *user, const char *from);
/* push: a notification for @node of @service (a virtual pubsub host);
 * @form (nullable) the enablement's publish-options form as XML text,
 * its fields become "options". */
PusherEvent *pusher_event_push(const char *user, const char *service, const char *node, guint count,
                               const char *sender, const char *body, const char *form);
PusherEvent *pusher_event_ref(PusherEvent *ev);
void pusher_event_unref(PusherEvent *ev);

/* What one backend wants. */
typedef struct {
    guint kinds;           /* bit (1 << PusherKind) */
    gboolean only_offline; /* *_received only when the user had no active session */
    char **domains;        /* NULL or empty: all */
} PusherFilter;

/* @offline: only read for *_received kinds. */
gboolean pusher_filter_match(const PusherFilter *f, PusherKind kind, const char *domain,
                             gboolean offline);
/* Reads "<prefix>events", "<prefix>only_offline", "<prefix>domains".
 * FALSE with @error naming a bad event name. */
gboolean pusher_filter_init(PusherFilter *f, MkModule *mod, const char *prefix, GError **error);
void pusher_filter_clear(PusherFilter *f);

/* ---- the queue (pusher-queue.c): any thread --------------------------- */

typedef struct PusherQueue PusherQueue;

/* @wake (nullable) is called outside the lock when the queue goes from
 * empty to not empty; the backend's thread drains it. */
PusherQueue *pusher_queue_new(MkModule *mod, const char *name, guint max, void (*wake)(gpointer),
                              gpointer wake_data);
void pusher_queue_free(PusherQueue *q);
/* TRUE when a push would be dropped now (a hint: no lock). */
gboolean pusher_queue_full(PusherQueue *q);
/* Counts an event dropped without being made (the queue was full). */
void pusher_queue_count_drop(PusherQueue *q);
/* Appends a reference to @ev, or drops it (counted, logged at most every
 * 10 s) when the queue is full or closed. */
void pusher_queue_push(PusherQueue *q, PusherEvent *ev);
/* Puts @ev back at the head (a failed send to retry first). (transfer full) */
void pusher_queue_push_head(PusherQueue *q, PusherEvent *ev);
/* The oldest event, (transfer full), or NULL: at once when @wait_us is 0,
 * else after waiting up to @wait_us for one. */
PusherEvent *pusher_queue_pop(PusherQueue *q, gint64 wait_us);
/* Appends up to @max of the oldest events to @out (transfer full each)
 * and returns how many. With @wait_us > 0, first waits up to @wait_us
 * until the queue holds @want events (pushes wake the waiter only then:
 * one switch of threads per batch, not per event). One thread pops a
 * queue. */
guint pusher_queue_pop_many(PusherQueue *q, GPtrArray *out, guint max, guint want, gint64 wait_us);
/* From now on pushes are dropped and waiting pops return NULL. */
void pusher_queue_close(PusherQueue *q);
gboolean pusher_queue_closed(PusherQueue *q);
guint pusher_queue_length(PusherQueue *q);

/* ---- backends ---------------------------------------------------------- */

typedef struct PusherBackend PusherBackend;
struct PusherBackend {
    const char *name;
    PusherFilter filter;
    PusherQueue *queue;
    /* Stops the backend's thread (main thread, in stop()) and frees. */
    void (*stop)(PusherBackend *b);
    void (*free)(PusherBackend *b);
};

PusherBackend *pusher_http_new(MkModule *mod, GError **error);
PusherBackend *pusher_rabbit_new(MkModule *mod, GError **error);

G_END_DECLS
