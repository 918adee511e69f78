/* redis_sync: a blocking Redis client for worker threads.
 *
 * redis.h runs on the loop thread and answers through callbacks; a pipeline
 * transform (kafka.h) runs on a worker thread and must finish before it
 * returns. This client serves the second kind of caller: each call blocks the
 * calling thread until Redis answers or a timeout passes, with hiredis'
 * synchronous API on a small pool of connections (one per concurrent caller,
 * up to `max_conns`; further callers wait for a free one). A connection that
 * fails or times out is dropped and the next call opens a new one.
 *
 * Thread-safe. Never call it from the loop thread: it would stall the loop for
 * up to the timeouts. Errors are hive_err.h codes.
 */
#ifndef HIVE_REDIS_SYNC_H
#define HIVE_REDIS_SYNC_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct redis_sync_s redis_sync_t;

typedef struct {
    const char *host;            /* "127.0.0.1"; a name or an address (REDIS_HOST) */
    int port;                    /* 6379 (REDIS_PORT) */
    unsigned connect_timeout_ms; /* 0 selects 2000 */
    unsigned command_timeout_ms; /* each command, send to answer; 0 selects 2000 */
    unsigned max_conns;          /* open connections at most; 0 selects 4 */
} redis_sync_opts_t;

/* Creates the client; connects lazily, on the first command. `opts` is copied.
 * Returns NULL for bad options or out of memory. Free with redis_sync_destroy(). */
redis_sync_t *redis_sync_create(const redis_sync_opts_t *opts);

/* Closes the connections and frees the client. No call may be in progress.
 * Accepts NULL. */
void redis_sync_destroy(redis_sync_t *s);

/* Sends one command (argv[i] of argvlen[i] bytes; argvlen NULL: NUL-terminated
 * strings) and waits for the answer. Returns 0 with *out_reply set (free with
 * freeReplyObject), HIVE_EREJECTED when Redis answered an error (the reply is
 * given too, its str says why), HIVE_EUNAVAILABLE when Redis cannot be reached
 * or the connection broke, HIVE_ETIMEDOUT when no answer came within the
 * command timeout, HIVE_EINVAL or HIVE_ENOMEM. *out_reply is NULL on failure
 * other than HIVE_EREJECTED. */
int redis_sync_command(redis_sync_t *s, int argc, const char *const *argv, const size_t *argvlen,
                       redisReply **out_reply);

#endif
