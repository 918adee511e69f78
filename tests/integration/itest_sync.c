/* Integration tests of the blocking forms for worker threads (redis_sync,
 * lock_sync, httpc_sync) against the local stack's Redis (REDIS_HOST/REDIS_PORT,
 * default 127.0.0.1:6379) and MLflow (MLFLOW_TRACKING_URI, default
 * http://127.0.0.1:5000). Every call runs on a libuv worker thread
 * (uv_queue_work), as a pipeline transform would; a separate hiredis connection
 * observes Redis. Keys are itest-sync:<pid>:* and are deleted at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hive_err.h"
#include "httpc_sync.h"
#include "lock_sync.h"

#define WORKERS 4

static char prefix[64];
static redisContext *observer;
static redis_sync_t *client;

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

static int setup(void **state)
{
    (void)state;
    snprintf(prefix, sizeof(prefix), "itest-sync:%ld", (long)getpid());
    observer = redisConnect(redis_host(), redis_port());
    client =
        redis_sync_create(&(redis_sync_opts_t){.host = redis_host(), .port = redis_port(), .max_conns = 2});
    return observer && !observer->err && client ? 0 : -1;
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
    redis_sync_destroy(client);
    return 0;
}

/* Runs fn(arg) on WORKERS libuv worker threads at once and waits for all. */
typedef struct {
    uv_work_t req;
    int index;
    int rc[8];
    int64_t token;
    long http_code;
    char body[64];
    uv_thread_t thread;
} job_t;

static void run_on_workers(uv_work_cb fn, job_t *jobs, int n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (int i = 0; i < n; i++) {
        jobs[i].index = i;
        assert_int_equal(uv_queue_work(&loop, &jobs[i].req, fn, NULL), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static lock_t shared_lock;

/* Each worker tries the same lock; the one that gets it fences, extends and releases. */
static void contend(uv_work_t *req)
{
    job_t *j = (job_t *)req;
    j->thread = uv_thread_self();
    j->rc[0] = lock_sync_acquire(client, &shared_lock, 30000);
    if (j->rc[0] == 0) {
        j->rc[1] = lock_sync_fence(client, shared_lock.name, &j->token);
        j->rc[2] = lock_sync_extend(client, &shared_lock, 60000);
    }
}

static void test_lock_from_worker_threads(void **state)
{
    (void)state;
    char name[96];
    snprintf(name, sizeof(name), "%s:weights", prefix);
    assert_int_equal(lock_init(&shared_lock, name), 0);
    job_t jobs[WORKERS] = {0};
    uv_thread_t self = uv_thread_self();
    run_on_workers(contend, jobs, WORKERS);
    int winners = 0, busy = 0;
    for (int i = 0; i < WORKERS; i++) {
        assert_false(uv_thread_equal(&jobs[i].thread, &self)); /* really off the calling thread */
        if (jobs[i].rc[0] == 0) {
            winners++;
            assert_int_equal(jobs[i].rc[1], 0);
            assert_true(jobs[i].token >= 1);
            assert_int_equal(jobs[i].rc[2], 0);
        } else {
            assert_int_equal(jobs[i].rc[0], HIVE_EBUSY);
            busy++;
        }
    }
    assert_int_equal(winners, 1);
    assert_int_equal(busy, WORKERS - 1);

    /* Redis holds our token under lock:<name> with the extended TTL. */
    redisReply *r = redisCommand(observer, "GET lock:%s", name);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, shared_lock.token);
    freeReplyObject(r);
    r = redisCommand(observer, "PTTL lock:%s", name);
    assert_true(r->integer > 30000 && r->integer <= 60000);
    freeReplyObject(r);

    /* Another owner's token can neither extend nor release it. */
    lock_t other;
    assert_int_equal(lock_init(&other, name), 0);
    assert_int_equal(lock_sync_extend(client, &other, 1000), HIVE_ENOTHELD);
    assert_int_equal(lock_sync_release(client, &other), HIVE_ENOTHELD);
    assert_int_equal(lock_sync_release(client, &shared_lock), 0);
    assert_int_equal(lock_sync_release(client, &shared_lock), HIVE_ENOTHELD);
    r = redisCommand(observer, "EXISTS lock:%s", name);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* Free again: the other owner takes it. */
    assert_int_equal(lock_sync_acquire(client, &other, 1000), 0);
    assert_int_equal(lock_sync_release(client, &other), 0);
}

static void fence_many(uv_work_t *req)
{
    job_t *j = (job_t *)req;
    char name[96];
    snprintf(name, sizeof(name), "%s:fence", prefix);
    int64_t last = 0;
    for (int i = 0; i < 8; i++) {
        int64_t t = 0;
        j->rc[i] = lock_sync_fence(client, name, &t);
        if (j->rc[i] == 0 && t <= last) {
            j->rc[i] = -999; /* tokens must grow for each caller */
        }
        last = t;
    }
}

/* 4 workers x 8 fences on 2 connections: 32 distinct, increasing tokens. */
static void test_fence_tokens_grow_across_threads(void **state)
{
    (void)state;
    job_t jobs[WORKERS] = {0};
    run_on_workers(fence_many, jobs, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        for (int k = 0; k < 8; k++) {
            assert_int_equal(jobs[i].rc[k], 0);
        }
    }
    redisReply *r = redisCommand(observer, "GET fence:%s:fence", prefix);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(atoll(r->str), WORKERS * 8);
    freeReplyObject(r);
}

/* A command Redis refuses comes back as HIVE_EREJECTED with Redis's message. */
static void test_error_reply_is_rejected(void **state)
{
    (void)state;
    char key[96];
    snprintf(key, sizeof(key), "%s:text", prefix);
    freeReplyObject(redisCommand(observer, "SET %s abc", key));
    const char *argv[] = {"INCR", key};
    redisReply *r = NULL;
    assert_int_equal(redis_sync_command(client, 2, argv, NULL, &r), HIVE_EREJECTED);
    assert_non_null(r);
    assert_non_null(strstr(r->str, "not an integer"));
    freeReplyObject(r);
    /* The connection is still usable. */
    const char *ping[] = {"PING"};
    assert_int_equal(redis_sync_command(client, 1, ping, NULL, &r), 0);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
}

static void call_mlflow(uv_work_t *req)
{
    job_t *j = (job_t *)req;
    const char *base = getenv("MLFLOW_TRACKING_URI");
    char url[256];
    snprintf(url, sizeof(url), "%s/health", base && base[0] ? base : "http://127.0.0.1:5000");
    char *body = NULL;
    size_t len = 0;
    char err[256];
    j->rc[0] =
        httpc_sync_request("GET", url, NULL, NULL, 0, 10000, &j->http_code, &body, &len, err, sizeof(err));
    if (j->rc[0] == 0) {
        snprintf(j->body, sizeof(j->body), "%.*s", (int)len, body);
        free(body);
    } else {
        snprintf(j->body, sizeof(j->body), "%.60s", err);
    }
}

/* MLflow's /health answers 200 "OK" to requests made from worker threads. */
static void test_http_from_worker_threads(void **state)
{
    (void)state;
    job_t jobs[WORKERS] = {0};
    run_on_workers(call_mlflow, jobs, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        if (jobs[i].rc[0] != 0) {
            fail_msg("worker %d: %s (%s)", i, hive_errname(jobs[i].rc[0]), jobs[i].body);
        }
        assert_int_equal(jobs[i].http_code, 200);
        assert_string_equal(jobs[i].body, "OK");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_from_worker_threads),
        cmocka_unit_test(test_fence_tokens_grow_across_threads),
        cmocka_unit_test(test_error_reply_is_rejected),
        cmocka_unit_test(test_http_from_worker_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
