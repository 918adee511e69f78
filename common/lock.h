/* lock: distributed locks and fencing tokens on Redis (see redis.h).
 *
 * A lock is the key "lock:<name>" holding a random 128-bit token, set with
 * SET NX PX so it expires by itself if its holder dies, and released by a
 * script that deletes it only if it still holds our token.
 *
 * A lock alone can be held twice (a holder paused past the TTL still thinks
 * it holds it), so writes that change the Hive also take a fencing token,
 * INCR "fence:<name>", and write at the store with a compare-and-set
 * (store_cas_revision): the second holder's write is refused there.
 *
 * All calls run on the loop thread. A call that returns an error never calls
 * its callback; a call that returns 0 calls it exactly once.
 *
 * Errors are HIVE_E* codes (hive_err.h): the lock's own outcomes are
 * HIVE_EBUSY (held by another owner) and HIVE_ENOTHELD (our token is no
 * longer there); the others come from redis.h.
 */
#ifndef HIVE_LOCK_H
#define HIVE_LOCK_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

#define LOCK_TOKEN_LEN 32 /* hex digits: 128 bits */
#define LOCK_NAME_MAX 128 /* bytes, NUL included */

/* One owner's claim on a named lock: the name and this owner's token. */
typedef struct {
    char name[LOCK_NAME_MAX];
    char token[LOCK_TOKEN_LEN + 1];
} lock_t;

/* Fills `out` with LOCK_TOKEN_LEN random lower-case hex digits and a NUL,
 * from getrandom(2). Returns 0, or HIVE_EUNAVAILABLE when the kernel gives no randomness. */
int lock_token_generate(char out[LOCK_TOKEN_LEN + 1]);

/* Sets up `l` for `name` (1 to LOCK_NAME_MAX - 1 bytes, copied) with a fresh
 * token. Returns 0 or HIVE_EINVAL. */
int lock_init(lock_t *l, const char *name);

/* Outcome of lock_acquire / lock_extend / lock_release: 0, HIVE_EBUSY
 * (acquire: someone else holds it), HIVE_ENOTHELD (extend, release: our
 * token is no longer there) or another HIVE_E* code. */
typedef void (*lock_cb)(void *arg, int status);

/* Takes the lock for `ttl_ms` (> 0) if nobody holds it. */
int lock_acquire(redis_t *r, const lock_t *l, unsigned ttl_ms, lock_cb cb, void *arg);

/* Resets the TTL of a lock we still hold to `ttl_ms`. */
int lock_extend(redis_t *r, const lock_t *l, unsigned ttl_ms, lock_cb cb, void *arg);

/* Releases the lock if it still holds our token; another owner's lock is
 * left alone (HIVE_ENOTHELD). */
int lock_release(redis_t *r, const lock_t *l, lock_cb cb, void *arg);

/* Outcome of lock_fence: status 0 with the new token (> every token handed
 * out before for this name), or another HIVE_E* code with token 0. */
typedef void (*lock_fence_cb)(void *arg, int status, int64_t token);

/* Increments "fence:<name>" and hands the new value to `cb`. */
int lock_fence(redis_t *r, const char *name, lock_fence_cb cb, void *arg);

/* Exposed for tests: the command a lock call sends. argv points into the
 * struct itself, so build it where it is used and do not copy it. */
typedef struct {
    int argc;
    const char *argv[6];
    char key[LOCK_NAME_MAX + 8];
    char num[24];
} lock_cmd_t;

int lock_cmd_acquire(lock_cmd_t *c, const lock_t *l, unsigned ttl_ms);
int lock_cmd_extend(lock_cmd_t *c, const lock_t *l, unsigned ttl_ms);
int lock_cmd_release(lock_cmd_t *c, const lock_t *l);
int lock_cmd_fence(lock_cmd_t *c, const char *name);

#endif
