/* Integration tests of common/redis and common/lock against the local stack's
 * Redis (REDIS_HOST/REDIS_PORT, default 127.0.0.1:6379). Every outcome comes
 * through the libuv loop; a blocking hiredis connection is used only as an
 * independent observer (GET, PTTL, CLIENT KILL). Keys are itest:<pid>:* and
 * are deleted at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"

static char prefix[64];
static redisContext *observer;

static const char *redis_host(void)
{
    const char *h = getenv("REDIS_HOST");
    return h && h[0] ? h : "127.0.0.1";
}

static int redis_port(void)
{
    const char *p = getenv("REDIS_PORT");
    return p && p[0] ? atoi(p) : 6379;
}

static void name_of(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s:%s", prefix, what);
}

static int setup(void **state)
{
    (void)state;
    snprintf(prefix, sizeof(prefix), "itest:%ld", (long)getpid());
    observer = redisConnect(redis_host(), redis_port());
    if (!observer || observer->err) {
        fprintf(stderr, "observer connect: %s\n", observer ? observer->errstr : "out of memory");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    redisReply *keys = redisCommand(observer, "KEYS *%s:*", prefix);
    for (size_t i = 0; keys && i < keys->elements; i++) {
        freeReplyObject(redisCommand(observer, "DEL %s", keys->element[i]->str));
    }
    freeReplyObject(keys);
    redisFree(observer);
    return 0;
}

/* The observer's view of a key: its string value, or "" when it is absent. */
static const char *peek(const char *key, char *buf, size_t len)
{
    redisReply *rep = redisCommand(observer, "GET %s", key);
    snprintf(buf, len, "%s", rep && rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return buf;
}

/* ------------------------------------------------- running the loop in steps */

typedef struct {
    uv_loop_t loop;
    redis_t *r;
    metrics_t *m;
    bool closed;
} env_t;

static void on_guard(uv_timer_t *t)
{
    (void)t; /* only wakes UV_RUN_ONCE up */
}

/* Runs the loop until *flag is set or `timeout_ms` pass. A guard timer keeps
 * UV_RUN_ONCE from sleeping past the deadline. */
static bool run_until(env_t *e, const bool *flag, unsigned timeout_ms)
{
    uv_timer_t guard;
    uv_update_time(&e->loop);
    uv_timer_init(&e->loop, &guard);
    uv_timer_start(&guard, on_guard, timeout_ms, 0);
    uint64_t deadline = uv_now(&e->loop) + timeout_ms;
    while (!*flag && uv_now(&e->loop) < deadline) {
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT); /* let the guard's close complete */
    return *flag;
}

static void sleep_ms(env_t *e, unsigned ms)
{
    bool never = false;
    run_until(e, &never, ms);
}

static bool wait_connected(env_t *e, unsigned timeout_ms)
{
    uv_update_time(&e->loop);
    uint64_t deadline = uv_now(&e->loop) + timeout_ms;
    while (!redis_connected(e->r) && uv_now(&e->loop) < deadline) {
        sleep_ms(e, 10);
    }
    return redis_connected(e->r);
}

static void env_open(env_t *e, const redis_opts_t *extra)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->m = metrics_create();
    redis_opts_t o = extra ? *extra : (redis_opts_t){0};
    o.host = redis_host();
    o.port = redis_port();
    o.metrics = e->m;
    o.backoff_min_ms = o.backoff_min_ms ? o.backoff_min_ms : 20;
    o.backoff_max_ms = o.backoff_max_ms ? o.backoff_max_ms : 200;
    e->r = redis_create(&e->loop, &o);
    assert_non_null(e->r);
    if (!wait_connected(e, 3000)) {
        fail_msg("expected a connection to %s:%d within 3 s, got none", o.host, o.port);
    }
}

static void on_closed(void *arg)
{
    ((env_t *)arg)->closed = true;
}

static void env_close(env_t *e)
{
    redis_close(e->r, on_closed, e);
    assert_true(run_until(e, &e->closed, 2000));
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    metrics_destroy(e->m);
}

static double redis_up(env_t *e)
{
    return metric_value(metrics_gauge(e->m, "redis_up", "", NULL));
}

/* One lock call's outcome. */
typedef struct {
    bool done;
    int status;
    int64_t token;
} result_t;

static void on_lock(void *arg, int status)
{
    result_t *res = arg;
    res->done = true;
    res->status = status;
}

static void on_fence(void *arg, int status, int64_t token)
{
    result_t *res = arg;
    res->done = true;
    res->status = status;
    res->token = token;
}

static void on_reply(void *arg, int status, const redisReply *reply)
{
    result_t *res = arg;
    res->done = true;
    res->status = status;
    res->token = status == 0 && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
}

/* Calls `call` (one of the lock functions with its arguments, a result_t
 * pointer last), runs the loop until it answers and checks the status. */
#define expect_lock(e, want, call)                                                                           \
    do {                                                                                                     \
        result_t res_ = {0};                                                                                 \
        int rc_ = call;                                                                                      \
        if (rc_ != 0) {                                                                                      \
            fail_msg("%s: expected the call to start, got %s", #call, hive_errname(rc_));                    \
        }                                                                                                    \
        if (!run_until((e), &res_.done, 3000)) {                                                             \
            fail_msg("%s: expected a callback within 3 s, got none", #call);                                 \
        }                                                                                                    \
        if (res_.status != (want)) {                                                                         \
            fail_msg("%s: expected %s, got %s", #call, hive_errname(want), hive_errname(res_.status));       \
        }                                                                                                    \
    } while (0)

/* ------------------------------------------------------------------- tests */

/* Acquire, a second owner is refused, the wrong token releases nothing, the
 * right one does, and then the second owner gets it. */
static void test_lock_acquire_busy_release(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, NULL);
    assert_float_equal(redis_up(&e), 1, 0);
    char name[96], key[128], seen[64];
    name_of(name, sizeof(name), "weights");
    snprintf(key, sizeof(key), "lock:%s", name);
    lock_t a, b;
    assert_int_equal(lock_init(&a, name), 0);
    assert_int_equal(lock_init(&b, name), 0);

    expect_lock(&e, 0, lock_acquire(e.r, &a, 10000, on_lock, &res_));
    assert_string_equal(peek(key, seen, sizeof(seen)), a.token);
    expect_lock(&e, HIVE_EBUSY, lock_acquire(e.r, &b, 10000, on_lock, &res_));
    expect_lock(&e, HIVE_ENOTHELD, lock_release(e.r, &b, on_lock, &res_));
    assert_string_equal(peek(key, seen, sizeof(seen)), a.token); /* still a's */
    expect_lock(&e, 0, lock_release(e.r, &a, on_lock, &res_));
    assert_string_equal(peek(key, seen, sizeof(seen)), "");
    expect_lock(&e, 0, lock_acquire(e.r, &b, 10000, on_lock, &res_));
    expect_lock(&e, HIVE_ENOTHELD, lock_release(e.r, &a, on_lock, &res_));
    expect_lock(&e, 0, lock_release(e.r, &b, on_lock, &res_));
    env_close(&e);
}

/* A lock whose holder never releases it frees itself after its TTL; the old
 * holder's late release then deletes nothing. Extending keeps it alive. */
static void test_lock_ttl_expiry_and_extend(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, NULL);
    char name[96];
    name_of(name, sizeof(name), "ttl");
    lock_t a, b;
    lock_init(&a, name);
    lock_init(&b, name);

    expect_lock(&e, 0, lock_acquire(e.r, &a, 200, on_lock, &res_));
    expect_lock(&e, HIVE_EBUSY, lock_acquire(e.r, &b, 200, on_lock, &res_));
    sleep_ms(&e, 400);
    expect_lock(&e, 0, lock_acquire(e.r, &b, 300, on_lock, &res_));
    expect_lock(&e, HIVE_ENOTHELD, lock_release(e.r, &a, on_lock, &res_));
    expect_lock(&e, HIVE_ENOTHELD, lock_extend(e.r, &a, 5000, on_lock, &res_));
    expect_lock(&e, 0, lock_extend(e.r, &b, 5000, on_lock, &res_));
    char key[128];
    snprintf(key, sizeof(key), "lock:%s", name);
    redisReply *pttl = redisCommand(observer, "PTTL %s", key);
    assert_non_null(pttl);
    if (pttl->type != REDIS_REPLY_INTEGER || pttl->integer <= 3000) {
        fail_msg("PTTL %s after extending to 5000 ms: expected > 3000, got %lld", key,
                 pttl->type == REDIS_REPLY_INTEGER ? pttl->integer : -99);
    }
    freeReplyObject(pttl);
    sleep_ms(&e, 500); /* past the original 300 ms */
    expect_lock(&e, HIVE_EBUSY, lock_acquire(e.r, &a, 200, on_lock, &res_));
    expect_lock(&e, 0, lock_release(e.r, &b, on_lock, &res_));
    env_close(&e);
}

/* Fencing tokens strictly increase, also when several are in flight at once. */
static void test_fencing_tokens_increase(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, NULL);
    char name[96];
    name_of(name, sizeof(name), "weights");
    int64_t last = 0;
    for (int i = 0; i < 5; i++) {
        result_t res = {0};
        assert_int_equal(lock_fence(e.r, name, on_fence, &res), 0);
        assert_true(run_until(&e, &res.done, 3000));
        assert_int_equal(res.status, 0);
        if (res.token <= last) {
            fail_msg("fence %d: expected a token > %ld, got %ld", i, (long)last, (long)res.token);
        }
        last = res.token;
    }
    result_t many[10] = {{0}};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(lock_fence(e.r, name, on_fence, &many[i]), 0);
    }
    assert_true(run_until(&e, &many[9].done, 3000));
    for (int i = 0; i < 10; i++) {
        assert_true(many[i].done);
        assert_int_equal(many[i].status, 0);
        if (many[i].token <= last) {
            fail_msg("pipelined fence %d: expected a token > %ld, got %ld", i, (long)last,
                     (long)many[i].token);
        }
        last = many[i].token;
    }
    env_close(&e);
}

/* A call that cannot start returns an error and never calls back. */
static void test_sync_failure_never_calls_back(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    redis_t *r = redis_create(&loop, &(redis_opts_t){.host = "127.0.0.1", .port = 1});
    lock_t l;
    lock_init(&l, "x");
    result_t res = {0};
    assert_int_equal(lock_acquire(r, &l, 1000, on_lock, &res), HIVE_EUNAVAILABLE);
    assert_int_equal(lock_fence(r, "x", on_fence, &res), HIVE_EUNAVAILABLE);
    redis_close(r, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_false(res.done);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The server drops our connection (CLIENT KILL from the observer): redis_up
 * goes to 0, the client reconnects by itself (after at least 150 ms here, half
 * the first backoff) and commands work again. */
static void test_reconnects_after_kill(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, &(redis_opts_t){.backoff_min_ms = 300, .backoff_max_ms = 300});
    result_t id = {0};
    const char *argv[] = {"CLIENT", "ID"};
    assert_int_equal(redis_command(e.r, on_reply, &id, 2, argv, NULL), 0);
    assert_true(run_until(&e, &id.done, 3000));
    assert_int_equal(id.status, 0);
    assert_true(id.token > 0);

    freeReplyObject(redisCommand(observer, "CLIENT KILL ID %lld", (long long)id.token));
    bool down = false;
    for (int i = 0; i < 200 && !down; i++) {
        sleep_ms(&e, 5);
        down = !redis_connected(e.r);
    }
    if (!down) {
        fail_msg("expected the client to notice the kill within 1 s, got still connected");
    }
    assert_float_equal(redis_up(&e), 0, 0);
    const char *ping[] = {"PING"};
    result_t refused = {0};
    assert_int_equal(redis_command(e.r, on_reply, &refused, 1, ping, NULL), HIVE_EUNAVAILABLE);
    if (!wait_connected(&e, 3000)) {
        fail_msg("expected a reconnection within 3 s, got none");
    }
    assert_float_equal(redis_up(&e), 1, 0);
    result_t again = {0};
    assert_int_equal(redis_command(e.r, on_reply, &again, 2, argv, NULL), 0);
    assert_true(run_until(&e, &again.done, 3000));
    assert_int_equal(again.status, 0);
    if (again.token == id.token) {
        fail_msg("expected a new connection id, got the old one %ld", (long)id.token);
    }
    env_close(&e);
}

/* A command Redis holds (BLPOP on an empty list blocks our connection only)
 * times out, the command queued behind it too, and the client reconnects. */
static void test_command_timeout_reconnects(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, &(redis_opts_t){.command_timeout_ms = 300});
    char list[96];
    name_of(list, sizeof(list), "empty-list");
    const char *blpop[] = {"BLPOP", list, "5"};
    const char *ping[] = {"PING"};
    result_t blocked = {0}, behind = {0};
    assert_int_equal(redis_command(e.r, on_reply, &blocked, 3, blpop, NULL), 0);
    assert_int_equal(redis_command(e.r, on_reply, &behind, 1, ping, NULL), 0);
    assert_true(run_until(&e, &behind.done, 3000));
    assert_true(blocked.done);
    assert_string_equal(hive_errname(blocked.status), "HIVE_ETIMEDOUT");
    assert_string_equal(hive_errname(behind.status), "HIVE_ETIMEDOUT");
    if (!wait_connected(&e, 3000)) {
        fail_msg("expected a reconnection within 3 s, got none");
    }
    result_t ok = {0};
    assert_int_equal(redis_command(e.r, on_reply, &ok, 1, ping, NULL), 0);
    assert_true(run_until(&e, &ok.done, 3000));
    assert_int_equal(ok.status, 0);
    env_close(&e);
}

/* Closing with a command in flight: it completes with HIVE_ECANCELED, then
 * done is called and the loop has no handle left. */
static void test_close_cancels_pending(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, NULL);
    char list[96];
    name_of(list, sizeof(list), "empty-list");
    const char *blpop[] = {"BLPOP", list, "5"};
    result_t blocked = {0};
    assert_int_equal(redis_command(e.r, on_reply, &blocked, 3, blpop, NULL), 0);
    sleep_ms(&e, 50);
    env_close(&e);
    assert_true(blocked.done);
    assert_string_equal(hive_errname(blocked.status), "HIVE_ECANCELED");
}

/* A host name is resolved off the loop and each of its addresses tried:
 * "localhost" may give ::1 first while Redis listens on 127.0.0.1 only. */
static void test_connects_by_name(void **state)
{
    (void)state;
    if (strcmp(redis_host(), "127.0.0.1") != 0) {
        skip();
    }
    env_t e;
    memset(&e, 0, sizeof(e));
    assert_int_equal(uv_loop_init(&e.loop), 0);
    e.m = metrics_create();
    e.r = redis_create(&e.loop,
                       &(redis_opts_t){.host = "localhost", .port = redis_port(), .backoff_min_ms = 20});
    assert_non_null(e.r);
    if (!wait_connected(&e, 3000)) {
        fail_msg("expected a connection to localhost:%d within 3 s, got none", redis_port());
    }
    env_close(&e);
}

/* An error reply reaches the caller as HIVE_EREJECTED with Redis's message. */
static void on_error_reply(void *arg, int status, const redisReply *reply)
{
    result_t *res = arg;
    res->done = true;
    res->status = status;
    res->token = status == HIVE_EREJECTED && reply && strstr(reply->str, "unknown command") ? 1 : 0;
}

static void test_error_reply(void **state)
{
    (void)state;
    env_t e;
    env_open(&e, NULL);
    const char *argv[] = {"NOSUCHCOMMAND"};
    result_t res = {0};
    assert_int_equal(redis_command(e.r, on_error_reply, &res, 1, argv, NULL), 0);
    assert_true(run_until(&e, &res.done, 3000));
    assert_string_equal(hive_errname(res.status), "HIVE_EREJECTED");
    assert_int_equal(res.token, 1);
    assert_true(redis_connected(e.r)); /* an error reply is not a broken connection */
    env_close(&e);
}

int main(void)
{
    log_init("itest_redis", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_acquire_busy_release),
        cmocka_unit_test(test_lock_ttl_expiry_and_extend),
        cmocka_unit_test(test_fencing_tokens_increase),
        cmocka_unit_test(test_sync_failure_never_calls_back),
        cmocka_unit_test(test_reconnects_after_kill),
        cmocka_unit_test(test_command_timeout_reconnects),
        cmocka_unit_test(test_close_cancels_pending),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_connects_by_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
