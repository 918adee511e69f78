#include "lock_sync.h"

#include "hive_err.h"

#include <string.h>

/* Sends a lock_cmd_t built by lock.c and returns the reply (0) or the error. */
static int run(redis_sync_t *s, const lock_cmd_t *c, redisReply **out)
{
    int rc = redis_sync_command(s, c->argc, c->argv, NULL, out);
    if (rc == HIVE_EREJECTED) {
        freeReplyObject(*out);
        *out = NULL;
    }
    return rc;
}

int lock_sync_acquire(redis_sync_t *s, const lock_t *l, unsigned ttl_ms)
{
    lock_cmd_t c;
    redisReply *r;
    if (lock_cmd_acquire(&c, l, ttl_ms) != 0) {
        return HIVE_EINVAL;
    }
    int rc = run(s, &c, &r);
    if (rc != 0) {
        return rc;
    }
    /* SET NX answers +OK when it set the key, nil when someone holds it. */
    if (r->type == REDIS_REPLY_NIL) {
        rc = HIVE_EBUSY;
    } else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0) {
        rc = HIVE_EPROTO;
    }
    freeReplyObject(r);
    return rc;
}

/* The guarded scripts answer 1 (done) or 0 (not our token). */
static int guarded(redis_sync_t *s, const lock_cmd_t *c)
{
    redisReply *r;
    int rc = run(s, c, &r);
    if (rc != 0) {
        return rc;
    }
    rc = r->type != REDIS_REPLY_INTEGER ? HIVE_EPROTO : r->integer == 1 ? 0 : HIVE_ENOTHELD;
    freeReplyObject(r);
    return rc;
}

int lock_sync_extend(redis_sync_t *s, const lock_t *l, unsigned ttl_ms)
{
    lock_cmd_t c;
    if (lock_cmd_extend(&c, l, ttl_ms) != 0) {
        return HIVE_EINVAL;
    }
    return guarded(s, &c);
}

int lock_sync_release(redis_sync_t *s, const lock_t *l)
{
    lock_cmd_t c;
    if (lock_cmd_release(&c, l) != 0) {
        return HIVE_EINVAL;
    }
    return guarded(s, &c);
}

int lock_sync_fence(redis_sync_t *s, const char *name, int64_t *out_token)
{
    lock_cmd_t c;
    redisReply *r;
    if (!out_token || lock_cmd_fence(&c, name) != 0) {
        return HIVE_EINVAL;
    }
    int rc = run(s, &c, &r);
    if (rc != 0) {
        return rc;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out_token = r->integer;
    } else {
        rc = HIVE_EPROTO;
    }
    freeReplyObject(r);
    return rc;
}
