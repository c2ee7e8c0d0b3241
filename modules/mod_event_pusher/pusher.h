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
#include <string.h>

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

/* "chat_sent", ... (transfer none) */
const char *pusher_kind_name(PusherKind kind);
/* -1 when @name is none. */
int pusher_kind_from_name(const char *name);

/* An event's JSON (docs/mod_event_pusher.md has the schema), built by the
 * hook's worker in a buffer on its stack and copied into each backend's
 * queue: no allocation per event unless it outgrows @stack. */
typedef struct {
    char *str; /* @stack or the heap; not NUL-terminated */
    gsize len, cap;
    char stack[1024];
} PusherJson;

void pusher_json_init(PusherJson *j);
/* Frees what the buffer moved to the heap; @j is empty again. */
void pusher_json_clear(PusherJson *j);

/* A message event. @offline: -1 leaves the field out. Each builder
 * (re)starts @j. */
void pusher_json_message(PusherJson *j, PusherKind kind, const char *user, const char *from,
                         const char *to, const char *body, int offline);
void pusher_json_presence(PusherJson *j, const char *user, const char *from, gboolean available,
                          const char *show, const char *status);
/* login, logout. */
void pusher_json_session(PusherJson *j, PusherKind kind, const char *user, const char *from);
/* push: a notification for @node of @service (a virtual pubsub host);
 * @form (nullable) the enablement's publish-options form as XML text,
 * its fields become "options". */
void pusher_json_push(PusherJson *j, const char *user, const char *service, const char *node,
                      guint count, const char *sender, const char *body, const char *form);

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

/* The queue holds its events as records serialised into one byte buffer:
 * a worker copies an event's JSON in under the lock (no allocation per
 * event, nothing freed on another thread), and the backend's thread
 * takes the whole buffer by swapping it with its own. */
typedef struct PusherQueue PusherQueue;

/* One event in a taken buffer; the pointers are into it (transfer none). */
typedef struct {
    PusherKind kind;
    const char *user; /* the local account's bare JID, NUL-terminated */
    gsize user_len;
    const char *json; /* not NUL-terminated */
    gsize json_len;
} PusherRecord;

/* A growable byte buffer: the queue's records, a POST's body. Its
 * owner's thread; a plain struct rather than GByteArray, whose append
 * and resize calls cost more than the copies on this path. */
typedef struct {
    guint8 *data;
    gsize len, cap;
} PusherBuf;

/* Room for @n more bytes at data + len. */
static inline void pusher_buf_reserve(PusherBuf *b, gsize n)
{
    if (G_UNLIKELY(b->len + n > b->cap)) {
        b->cap = MAX(MAX(b->cap * 2, b->len + n), 4096);
        b->data = g_realloc(b->data, b->cap);
    }
}

static inline void pusher_buf_append(PusherBuf *b, const void *p, gsize n)
{
    pusher_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Reads the record at @p (in a taken buffer) into @rec; returns its size:
 * the next record starts there. */
gsize pusher_record_read(const guint8 *p, PusherRecord *rec);

/* @wake (nullable) is called outside the lock when the queue goes from
 * empty to not empty; the backend's thread drains it. */
PusherQueue *pusher_queue_new(MkModule *mod, const char *name, guint max, void (*wake)(gpointer),
                              gpointer wake_data);
void pusher_queue_free(PusherQueue *q);
/* TRUE when a push would be dropped now (a hint: no lock). */
gboolean pusher_queue_full(PusherQueue *q);
/* Counts an event dropped without being made (the queue was full). */
void pusher_queue_count_drop(PusherQueue *q);
/* Appends a copy of the event, or drops it (counted, logged at most
 * every 10 s) when the queue is full or closed. */
void pusher_queue_push(PusherQueue *q, PusherKind kind, const char *user, const char *json,
                       gsize json_len);
/* Moves every queued event to the end of @buf (an empty @buf is
 * swapped with the queue's: no copy) and returns how many. With @wait_us
 * > 0, first waits up to @wait_us until the queue holds @want events
 * (pushes wake the waiter only then: one switch of threads per batch,
 * not per event). One thread takes from a queue. */
guint pusher_queue_take(PusherQueue *q, PusherBuf *buf, guint want, gint64 wait_us);
/* The backend's thread: it holds @n taken events not yet done; they
 * count against the queue's bound (a swap takes everything at once). */
void pusher_queue_hold(PusherQueue *q, guint n);
/* Waits up to @wait_us for an event (none taken); TRUE when the queue
 * holds one and is not closed. */
gboolean pusher_queue_wait(PusherQueue *q, gint64 wait_us);
/* From now on pushes are dropped and waiting takes return at once. */
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
