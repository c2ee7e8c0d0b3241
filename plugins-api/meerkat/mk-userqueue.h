#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>
#include <meerkat/mk-db.h>

G_BEGIN_DECLS
/* Per-user serial storage work.
 *
 * Jobs of mk_db_transaction_run() run in parallel on the storage pool and
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
 * module stops. What is waiting first gets up to 3 seconds to run, so
 * that a graceful stop keeps the writes asked for before it (operations
 * go on from the threads that pushed them, which outlive the module's
 * stop; one pushed from the main thread waits for the deadline). Then an
 * operation that is running completes as usual;
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

/* Runs @work in a transaction on a storage thread (as mk_db_transaction_run)
 * once every operation pushed earlier under @key completed; then @done
 * (nullable) on the calling thread with the error, if any; then @destroy
 * (nullable) on @user_data. @key is copied. Any thread that runs a
 * thread-default main context (a worker or the main thread); never calls
 * @done before returning. */
MK_API void mk_user_queue_push(MkUserQueue *queue, const char *key, MkDbWork work,
                               MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy);

/* As mk_user_queue_push, in the same order with the key's other
 * operations, for @work that only reads: the key's own writes pushed
 * earlier have committed when it runs, and it neither waits for other
 * users' writes nor holds them up. Its statements may see different
 * snapshots of other users' data. */
MK_API void mk_user_queue_push_reads(MkUserQueue *queue, const char *key, MkDbWork work,
                                     MkDbWorkDone done, gpointer user_data, GDestroyNotify destroy);

/* Jobs of several steps. Since ABI 2.
 *
 * Some work of a key takes several storage round trips before the key's
 * next operation may start: a store retried with back-off, a fetch then
 * a delete (mod_offline), an archive batch written then acknowledged
 * (MAM), a room's state read then changed (MUC). Such a job holds the key
 * from its start until it calls mk_user_job_finish(); in between it makes
 * its own calls (mk_db_transaction_run, timers) and they complete on the
 * job's thread as usual. Jobs and operations of one key run in the order
 * they were pushed. */
typedef struct MkUserJob MkUserJob;
typedef void (*MkUserJobFunc)(MkUserJob *job, gpointer user_data);

/* Runs @start(job, @user_data) on the calling thread once every earlier
 * operation and job of @key completed (directly from this call when none
 * is running). The key's next operation waits until the job calls
 * mk_user_job_finish(); then @destroy (nullable) frees @user_data. When
 * the module stops before the job started, @start is not called and
 * @destroy runs on the calling thread (or the main thread at shutdown).
 * Any thread that runs a thread-default main context. */
MK_API void mk_user_queue_run(MkUserQueue *queue, const char *key, MkUserJobFunc start,
                              gpointer user_data, GDestroyNotify destroy);

/* Ends @job: its @destroy runs and the key's next operation starts (on its
 * own thread). Exactly once per job, also when the job's work could not
 * complete. Any thread. */
MK_API void mk_user_job_finish(MkUserJob *job);

G_END_DECLS
