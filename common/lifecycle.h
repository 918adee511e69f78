/* lifecycle: the service's libuv loop, SIGTERM/SIGINT handling and ordered
 * shutdown.
 *
 * Modules register shutdown stages in start-up order; on SIGTERM/SIGINT (or
 * lifecycle_stop()) the stages run one after the other in REVERSE order. A stage
 * may finish asynchronously (drain in-flight work, flush, close its handles) and
 * calls lifecycle_stage_done() when it has. If the whole shutdown takes longer
 * than the deadline, the process exits at once with LIFECYCLE_EXIT_DEADLINE and
 * a log line naming the stage that did not finish: work may still be blocked on
 * a worker thread, holding pointers into the service, so no destructor can run
 * safely (see lifecycle_set_exit_on_deadline()).
 * After the last stage the loop is stopped, the finalizers run, and the loop
 * must then hold no handle: uv_loop_close() == 0.
 */
#ifndef HIVE_LIFECYCLE_H
#define HIVE_LIFECYCLE_H

#include <stdbool.h>
#include <uv.h>

typedef struct lifecycle_s lifecycle_t;

/* The exit status of a shutdown that passed its deadline (sysexits' EX_TEMPFAIL:
 * the shutdown did not finish; a restart recovers). */
#define LIFECYCLE_EXIT_DEADLINE 75

/* A shutdown stage. Runs on the loop thread; must eventually call
 * lifecycle_stage_done(lc) exactly once (it may do so before returning). */
typedef void (*lifecycle_stage_fn)(lifecycle_t *lc, void *ctx);

/* Creates the loop and installs the signal watchers. `deadline_ms` bounds the
 * whole shutdown (0 selects 10000). Free with lifecycle_destroy(). */
lifecycle_t *lifecycle_create(unsigned deadline_ms);

/* The loop every module of the service runs on. */
uv_loop_t *lifecycle_loop(lifecycle_t *lc);

/* Registers a stage; `name` (a literal) appears in logs. Returns 0 or -1. */
int lifecycle_add_stage(lifecycle_t *lc, const char *name, lifecycle_stage_fn fn, void *ctx);

/* A finalizer runs after the loop has stopped (uv_run returned, so no libuv
 * callback is on the stack) and before uv_loop_close(), in reverse
 * registration order: the place for teardown that must run the loop itself,
 * such as h2o's context disposal. */
typedef void (*lifecycle_finalizer_fn)(void *ctx);

/* Registers a finalizer. Returns 0 or -1. */
int lifecycle_add_finalizer(lifecycle_t *lc, lifecycle_finalizer_fn fn, void *ctx);

/* Marks the running stage finished and starts the next one. */
void lifecycle_stage_done(lifecycle_t *lc);

/* Starts the shutdown as a signal would. `exit_code` is what lifecycle_run()
 * returns once shutdown completes cleanly (0 for a normal stop, non-zero when a
 * fatal error caused it). Calling it again only raises the exit code. */
void lifecycle_stop(lifecycle_t *lc, int exit_code);

/* By default (true) a shutdown that passes its deadline logs the stage that did
 * not finish and ends the process with _exit(LIFECYCLE_EXIT_DEADLINE), running
 * no destructor and no atexit handler. With false, the loop is stopped instead
 * and lifecycle_run() returns LIFECYCLE_EXIT_DEADLINE, leaving every handle as
 * it is: for tests whose stages own nothing that a worker thread still uses. */
void lifecycle_set_exit_on_deadline(lifecycle_t *lc, bool exit_on_deadline);

/* True once shutdown has begun: intake should stop. */
bool lifecycle_stopping(const lifecycle_t *lc);

/* Runs the loop until shutdown completes. Returns the exit code given to
 * lifecycle_stop() (0 after a signal), 1 when the loop still held handles
 * (they are logged), or LIFECYCLE_EXIT_DEADLINE when the deadline passed (only
 * with lifecycle_set_exit_on_deadline(lc, false); otherwise it does not return). */
int lifecycle_run(lifecycle_t *lc);

/* Frees the lifecycle. The loop is closed by lifecycle_run(). Accepts NULL. */
void lifecycle_destroy(lifecycle_t *lc);

#endif
