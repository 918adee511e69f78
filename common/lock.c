#include "lock.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Deletes KEYS[1] only while it holds our token ARGV[1]: a plain DEL could
 * remove a lock that expired and was taken by someone else. */
static const char release_script[] = "if redis.call('get',KEYS[1])==ARGV[1] then "
                                     "return redis.call('del',KEYS[1]) else return 0 end";

/* Same guard for renewing the TTL (ARGV[2] milliseconds). */
static const char extend_script[] = "if redis.call('get',KEYS[1])==ARGV[1] then "
                                    "return redis.call('pexpire',KEYS[1],ARGV[2]) else return 0 end";

int lock_token_generate(char out[LOCK_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[LOCK_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n <= 0) {
            return HIVE_EUNAVAILABLE;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 0xf];
    }
    out[LOCK_TOKEN_LEN] = '\0';
    return 0;
}

static bool valid_name(const char *name)
{
    return name && name[0] && strlen(name) < LOCK_NAME_MAX;
}

int lock_init(lock_t *l, const char *name)
{
    if (!l || !valid_name(name)) {
        return HIVE_EINVAL;
    }
    snprintf(l->name, sizeof(l->name), "%s", name);
    return lock_token_generate(l->token);
}

/* ---------------------------------------------------------------- commands */

static bool valid_lock(const lock_t *l)
{
    return l && valid_name(l->name) && strlen(l->token) == LOCK_TOKEN_LEN;
}

int lock_cmd_acquire(lock_cmd_t *c, const lock_t *l, unsigned ttl_ms)
{
    if (!valid_lock(l) || ttl_ms == 0) {
        return HIVE_EINVAL;
    }
    snprintf(c->key, sizeof(c->key), "lock:%s", l->name);
    snprintf(c->num, sizeof(c->num), "%u", ttl_ms);
    c->argc = 6;
    c->argv[0] = "SET";
    c->argv[1] = c->key;
    c->argv[2] = l->token;
    c->argv[3] = "NX";
    c->argv[4] = "PX";
    c->argv[5] = c->num;
    return 0;
}

int lock_cmd_extend(lock_cmd_t *c, const lock_t *l, unsigned ttl_ms)
{
    if (!valid_lock(l) || ttl_ms == 0) {
        return HIVE_EINVAL;
    }
    snprintf(c->key, sizeof(c->key), "lock:%s", l->name);
    snprintf(c->num, sizeof(c->num), "%u", ttl_ms);
    c->argc = 6;
    c->argv[0] = "EVAL";
    c->argv[1] = extend_script;
    c->argv[2] = "1";
    c->argv[3] = c->key;
    c->argv[4] = l->token;
    c->argv[5] = c->num;
    return 0;
}

int lock_cmd_release(lock_cmd_t *c, const lock_t *l)
{
    if (!valid_lock(l)) {
        return HIVE_EINVAL;
    }
    snprintf(c->key, sizeof(c->key), "lock:%s", l->name);
    c->argc = 5;
    c->argv[0] = "EVAL";
    c->argv[1] = release_script;
    c->argv[2] = "1";
    c->argv[3] = c->key;
    c->argv[4] = l->token;
    return 0;
}

int lock_cmd_fence(lock_cmd_t *c, const char *name)
{
    if (!valid_name(name)) {
        return HIVE_EINVAL;
    }
    snprintf(c->key, sizeof(c->key), "fence:%s", name);
    c->argc = 2;
    c->argv[0] = "INCR";
    c->argv[1] = c->key;
    return 0;
}

/* ------------------------------------------------------------------ calls */

typedef enum { OP_ACQUIRE, OP_GUARDED, OP_FENCE } op_kind_t;

/* What a call waits for: its kind and its caller's callback. */
typedef struct {
    op_kind_t kind;
    lock_cb cb;
    lock_fence_cb fence_cb;
    void *arg;
} op_t;

/* Turns Redis's answer into the caller's outcome. SET NX answers +OK or nil;
 * the guarded scripts answer 1 (done) or 0 (not our token); INCR an integer. */
static void on_reply(void *arg, int status, const redisReply *reply)
{
    op_t *op = arg;
    int64_t token = 0;
    if (status == 0) {
        switch (op->kind) {
        case OP_ACQUIRE:
            if (reply->type == REDIS_REPLY_NIL) {
                status = HIVE_EBUSY;
            } else if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0) {
                status = HIVE_EPROTO;
            }
            break;
        case OP_GUARDED:
            if (reply->type != REDIS_REPLY_INTEGER) {
                status = HIVE_EPROTO;
            } else if (reply->integer != 1) {
                status = HIVE_ENOTHELD;
            }
            break;
        case OP_FENCE:
            if (reply->type != REDIS_REPLY_INTEGER) {
                status = HIVE_EPROTO;
            } else {
                token = reply->integer;
            }
            break;
        }
    }
    if (op->kind == OP_FENCE) {
        op->fence_cb(op->arg, status, token);
    } else {
        op->cb(op->arg, status);
    }
    free(op);
}

static int send_cmd(redis_t *r, lock_cmd_t *c, op_kind_t kind, lock_cb cb, lock_fence_cb fence_cb, void *arg)
{
    op_t *op = malloc(sizeof(*op));
    if (!op) {
        return HIVE_ENOMEM;
    }
    *op = (op_t){.kind = kind, .cb = cb, .fence_cb = fence_cb, .arg = arg};
    int rc = redis_command(r, on_reply, op, c->argc, c->argv, NULL);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

int lock_acquire(redis_t *r, const lock_t *l, unsigned ttl_ms, lock_cb cb, void *arg)
{
    lock_cmd_t c;
    if (!cb) {
        return HIVE_EINVAL;
    }
    int rc = lock_cmd_acquire(&c, l, ttl_ms);
    return rc ? rc : send_cmd(r, &c, OP_ACQUIRE, cb, NULL, arg);
}

int lock_extend(redis_t *r, const lock_t *l, unsigned ttl_ms, lock_cb cb, void *arg)
{
    lock_cmd_t c;
    if (!cb) {
        return HIVE_EINVAL;
    }
    int rc = lock_cmd_extend(&c, l, ttl_ms);
    return rc ? rc : send_cmd(r, &c, OP_GUARDED, cb, NULL, arg);
}

int lock_release(redis_t *r, const lock_t *l, lock_cb cb, void *arg)
{
    lock_cmd_t c;
    if (!cb) {
        return HIVE_EINVAL;
    }
    int rc = lock_cmd_release(&c, l);
    return rc ? rc : send_cmd(r, &c, OP_GUARDED, cb, NULL, arg);
}

int lock_fence(redis_t *r, const char *name, lock_fence_cb cb, void *arg)
{
    lock_cmd_t c;
    if (!cb) {
        return HIVE_EINVAL;
    }
    int rc = lock_cmd_fence(&c, name);
    return rc ? rc : send_cmd(r, &c, OP_FENCE, NULL, cb, arg);
}
