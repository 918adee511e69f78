/* lock_sync: the lock and fencing calls of lock.h in blocking form, for worker
 * threads (a pipeline transform that must take the lock, fence and write
 * inside its transaction). Same keys, tokens and scripts as lock.h (the
 * commands come from its lock_cmd_* builders), so a lock taken here excludes
 * one taken through lock.h and the other way round.
 *
 * Each call blocks the calling thread until Redis answers or the client's
 * command timeout passes (redis_sync.h). Thread-safe; never call from the loop
 * thread. Return 0 or a hive_err.h code:
 *   HIVE_EBUSY      acquire: another owner holds the lock
 *   HIVE_ENOTHELD   extend, release: our token is no longer there
 *   HIVE_EUNAVAILABLE, HIVE_ETIMEDOUT   Redis unreachable or slow: retry later
 *   HIVE_EREJECTED, HIVE_EPROTO         Redis refused the command or answered oddly
 *   HIVE_EINVAL     a bad lock, name or TTL
 */
#ifndef HIVE_LOCK_SYNC_H
#define HIVE_LOCK_SYNC_H

#include <stdint.h>

#include "lock.h"
#include "redis_sync.h"

/* Takes the lock for `ttl_ms` (> 0) if nobody holds it. */
int lock_sync_acquire(redis_sync_t *s, const lock_t *l, unsigned ttl_ms);

/* Resets the TTL of a lock we still hold to `ttl_ms`. */
int lock_sync_extend(redis_sync_t *s, const lock_t *l, unsigned ttl_ms);

/* Releases the lock if it still holds our token. */
int lock_sync_release(redis_sync_t *s, const lock_t *l);

/* Increments "fence:<name>" and sets *out_token to the new value (greater than
 * every token handed out before for this name); untouched on failure. */
int lock_sync_fence(redis_sync_t *s, const char *name, int64_t *out_token);

#endif
