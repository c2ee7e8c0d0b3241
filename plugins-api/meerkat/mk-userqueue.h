#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>
#include <meerkat/mk-db.h>

G_BEGIN_DECLS
/* Per-user serial storage work. Since ABI 1.2.
 *
 * Jobs of mk_db_transaction() run in parallel on the storage pool and
 * complete in any order. When one user's operations must be written and
 * announced in the order they were asked for (an available presence
 * overtaken by the unavailable that followed it would leave a contact
 * seeing the user online; a block overtaken by the unblock that followed
 * it would leave the contact blocked), push them on a user queue under
 * one key, normally the user's bare JID: operations of one key run one
 * at a time, each starting after the previous one's @done returned, while
 * operations of different keys run in parallel.
 *
 * The queue belongs to the module instance: the core closes it when the
 * module stops. An operation that is running then completes as usual;
 * one still waiting is not run, and its @done gets
 * MK_USER_QUEUE_ERROR_STOPPED on its own thread (possibly before the
 * running one's @done), then its @destroy. A push after the stop is
 * answered the same way. So every @destroy runs, and every IQ a @done
 * would answer gets an answer. */

typedef struct MkUserQueue MkUserQueue;

#define MK_USER_QUEUE_ERROR (mk_user_queue_error_quark())
MK_API GQuark mk_user_queue_error_quark(void);

typedef enum {
    MK_USER_QUEUE_ERROR_STOPPED, /* the module stopped before the operation started */
} MkUserQueueErrorCode;

/* A new queue for @mod's instance. Returns: (transfer none) a handle the
 * core owns, valid as long as @mod is; NULL outside a running instance.
 * Main thread, in start(). */
MK_API MkUserQueue *mk_user_queue_new(MkModule *mod);

/* Runs @work in a transaction on a storage thread (as mk_db_transaction)
 * once every operation pushed earlier under @key completed; then @done
 * (nullable) on the calling thread with the error, if any; then @destroy
 * (nullable) on @user_data. @key is copied. Any thread that runs a
 * thread-default main context (a worker or the main thread); never calls
 * @done before returning. */
MK_API void mk_user_queue_push(MkUserQueue *queue, const char *key, MkDbWork work,
                               MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy);

/* As mk_user_queue_push, in the same order with the key's other
 * operations, for @work that only reads. It runs without a write
 * transaction: on sqlite3 in one deferred transaction (the reads share
 * one snapshot and take the file locks once, and the operation neither
 * waits for the write lock nor holds it up for other users' writes),
 * on PostgreSQL statement by statement (the statements need not see the
 * same snapshot). The key's own writes pushed earlier have committed
 * when it runs, as with mk_user_queue_push. Since ABI 1.3. */
MK_API void mk_user_queue_push_reads(MkUserQueue *queue, const char *key, MkDbWork work,
                                     MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy);

G_END_DECLS
