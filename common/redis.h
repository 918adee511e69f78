/* redis: one asynchronous Redis connection on the service's libuv loop.
 *
 * hiredis's async API drives the socket through a uv_poll_t; nothing here
 * blocks the loop (host names are resolved with uv_getaddrinfo). The client
 * connects at creation and, whenever the connection fails or drops,
 * reconnects with exponential backoff and jitter until redis_close(). A
 * command that Redis does not answer within the command timeout fails with
 * HIVE_ETIMEDOUT and the connection is dropped and re-established, because
 * the replies behind it would be stuck as well.
 *
 * Everything here runs on the loop thread. Redis holds locks and caches only
 * (DESIGN.md), so commands are not retried: a failed command is reported to
 * its callback and the caller decides.
 *
 * Errors are HIVE_E* codes (hive_err.h): HIVE_EUNAVAILABLE (not connected),
 * HIVE_ETIMEDOUT, HIVE_EREJECTED (Redis answered with an error reply),
 * HIVE_EPROTO (unexpected reply), HIVE_EINVAL, HIVE_ENOMEM, HIVE_ECANCELED
 * (the client is closing).
 */
#ifndef HIVE_REDIS_H
#define HIVE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hive_err.h"
#include "metrics.h"

typedef struct redis_s redis_t;

/* Connection settings; zero fields take the defaults shown. */
typedef struct {
    const char *host;            /* "127.0.0.1"; a name or an IPv4/IPv6 address (REDIS_HOST) */
    int port;                    /* 6379 (REDIS_PORT) */
    unsigned connect_timeout_ms; /* 2000 */
    unsigned command_timeout_ms; /* 2000 */
    unsigned backoff_min_ms;     /* 100: first reconnect delay */
    unsigned backoff_max_ms;     /* 10000: cap of the reconnect delay */
    metrics_t *metrics;          /* where the gauge redis_up goes; may be NULL */
} redis_opts_t;

/* Creates the client on `loop` and starts connecting; `opts` (NULL for all
 * defaults) is copied. Returns NULL on bad options or out of memory. Free
 * with redis_close(). */
redis_t *redis_create(uv_loop_t *loop, const redis_opts_t *opts);

/* True while the connection is established (for /ready). */
bool redis_connected(const redis_t *r);

/* A command's outcome: status 0 with Redis's reply, HIVE_EREJECTED with the
 * error reply (reply->str holds Redis's message), or another HIVE_E* code
 * with reply NULL. The reply is freed after the callback returns. */
typedef void (*redis_reply_cb)(void *arg, int status, const redisReply *reply);

/* Sends one command given as argc arguments (argvlen may be NULL for
 * NUL-terminated strings; the arguments are copied). Returns 0 and calls
 * cb(arg, ...) exactly once later, or returns HIVE_EUNAVAILABLE (not
 * connected), HIVE_EINVAL or HIVE_ENOMEM and never calls cb. */
int redis_command(redis_t *r, redis_reply_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen);

/* Closes the client: stops reconnecting, drops the connection (pending
 * commands complete with HIVE_ECANCELED), closes every uv handle, then calls
 * done(arg) on the loop and frees `r`. Finish your own in-flight commands
 * first if their outcome matters. `r` must not be used after this call;
 * `done` may be NULL. Accepts NULL (then done is called at once). */
void redis_close(redis_t *r, void (*done)(void *arg), void *arg);

/* Exposed for tests: the delay before reconnect attempt number `attempt`
 * (0 for the first), "equal jitter": the cap min_ms * 2^attempt, bounded by
 * max_ms, is halved and the other half is random (`rnd`), so the result lies
 * in [cap/2, cap]. */
unsigned redis_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms, uint32_t rnd);

#endif
