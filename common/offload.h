/* offload: runs a blocking function on a libuv worker thread and calls back
 * on the loop thread.
 *
 * What a shell on the loop does to call MongoDB, encode with a registry, or
 * anything else that may block: the work function runs on the libuv thread
 * pool (uv_queue_work), then the done function runs on the loop thread with
 * the outcome. The job's memory is the module's; `arg` is the caller's.
 *
 *   offload_run(loop, read_from_mongo, answer_on_loop, job);
 */
#ifndef HIVE_OFFLOAD_H
#define HIVE_OFFLOAD_H

#include <uv.h>

/* Runs on a worker thread: may block, must not touch the loop. */
typedef void (*offload_work_fn)(void *arg);

/* Runs on the loop thread once the work is over. `status` is 0, or
 * HIVE_ECANCELED when the work never ran (cancelled before a worker took it,
 * e.g. at shutdown). */
typedef void (*offload_done_fn)(void *arg, int status);

/* Queues `work` and then `done` with `arg`. Returns 0, HIVE_EINVAL (no loop or
 * no function) or HIVE_ENOMEM; on failure neither function is ever called. */
int offload_run(uv_loop_t *loop, offload_work_fn work, offload_done_fn done, void *arg);

#endif
