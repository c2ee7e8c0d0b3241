/* A fixed-size pool of threads running queued jobs in FIFO order: the
 * auth pool (SASL steps, account changes) and the storage pool.
 *
 * Why not GThreadPool: a hand-off is on every login's path, twice, and
 * GThreadPool's queue wakes a sleeping thread while still holding the
 * queue's lock, so the woken thread runs straight into that lock (three
 * to four futex calls per job instead of one). Here the wake-up comes
 * after the unlock, only when a thread is idle. Threads start on demand
 * (a process that never pushes, such as meerkatctl, starts none) and
 * stay until the pool is freed. */
#pragma once

#include <glib.h>

typedef struct MkJobPool MkJobPool;
/* Runs @job on a pool thread; the function owns @job from here on. */
typedef void (*MkJobPoolFunc)(gpointer job, gpointer pool_data);

/* @name: the threads' name (at most 15 characters shown by the kernel).
 * @max_threads >= 1. Returns: (transfer full). Any thread. */
MkJobPool *mk_job_pool_new(const char *name, guint max_threads, MkJobPoolFunc func,
                           gpointer pool_data);
/* Queues @job. Any thread until mk_job_pool_free begins; from then on
 * only the pool's own jobs may push (what they queue still runs). */
void mk_job_pool_push(MkJobPool *pool, gpointer job);
/* Jobs queued and not yet taken by a thread (metrics). Any thread. */
guint mk_job_pool_queued(MkJobPool *pool);
/* Runs everything queued, waits for the threads, frees the pool. Not
 * from a pool thread. NULL is allowed. */
void mk_job_pool_free(MkJobPool *pool);
