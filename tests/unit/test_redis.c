/* Unit tests of common/redis: backoff and the client's life
 * against a port where nothing listens (loopback only, no Redis needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"

/* Every delay lies in [cap/2, cap], cap = min(max, min * 2^attempt), for the
 * extreme and some ordinary random values, including huge attempt counts. */
static void test_backoff_bounds(void **state)
{
    (void)state;
    const uint32_t rnds[] = {0, 1, 2, 12345, 0x7fffffff, 0xfffffffe, 0xffffffff};
    const unsigned mins[] = {1, 100, 250};
    const unsigned maxs[] = {100, 10000, 60000};
    for (size_t a = 0; a < 3; a++) {
        for (size_t b = 0; b < 3; b++) {
            unsigned min = mins[a], max = maxs[b] < mins[a] ? mins[a] : maxs[b];
            for (unsigned attempt = 0; attempt < 200; attempt++) {
                unsigned long long cap = min;
                for (unsigned i = 0; i < attempt && cap < max; i++) {
                    cap *= 2;
                }
                if (cap > max) {
                    cap = max;
                }
                for (size_t k = 0; k < sizeof(rnds) / sizeof(rnds[0]); k++) {
                    unsigned d = redis_backoff_ms(attempt, min, max, rnds[k]);
                    if (d < cap / 2 || d > cap) {
                        fail_msg("attempt %u min %u max %u rnd %u: expected %llu..%llu, got %u", attempt, min,
                                 max, rnds[k], cap / 2, cap, d);
                    }
                }
            }
        }
    }
    /* The first retry is quick, a long outage is capped, jitter spreads. */
    assert_true(redis_backoff_ms(0, 100, 10000, 0xffffffff) <= 100);
    assert_true(redis_backoff_ms(1000, 100, 10000, 0) >= 5000);
    assert_true(redis_backoff_ms(1000, 100, 10000, 0xffffffff) <= 10000);
    assert_int_not_equal(redis_backoff_ms(5, 100, 10000, 0), redis_backoff_ms(5, 100, 10000, 1000));
    /* Degenerate settings still give a delay within max. */
    assert_true(redis_backoff_ms(3, 0, 0, 7) <= 1);
    assert_true(redis_backoff_ms(3, 500, 100, 7) <= 500);
}

typedef struct {
    redis_t *r;
    uv_timer_t timer;
    int replies, closed;
} ctx_t;

static void on_reply(void *arg, int status, const redisReply *reply)
{
    ctx_t *c = arg;
    (void)status;
    (void)reply;
    c->replies++;
}

static void on_closed(void *arg)
{
    ctx_t *c = arg;
    c->closed++;
}

static void on_check(uv_timer_t *t)
{
    ctx_t *c = t->data;
    /* Retried a few times by now, never connected. */
    assert_false(redis_connected(c->r));
    const char *argv[] = {"PING"};
    assert_int_equal(redis_command(c->r, on_reply, c, 1, argv, NULL), HIVE_EUNAVAILABLE);
    redis_close(c->r, on_closed, c);
    uv_close((uv_handle_t *)t, NULL);
}

/* No server: the client keeps retrying without blocking, refuses commands
 * synchronously (no callback), reports redis_up 0, and closes every handle. */
static void test_unreachable_server_then_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    ctx_t c = {0};
    metrics_t *m = metrics_create();
    assert_int_equal(uv_loop_init(&loop), 0);
    redis_opts_t o = {
        .host = "127.0.0.1", .port = 1, .backoff_min_ms = 10, .backoff_max_ms = 40, .metrics = m};
    c.r = redis_create(&loop, &o);
    assert_non_null(c.r);
    uv_timer_init(&loop, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, on_check, 200, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.closed, 1);
    assert_int_equal(c.replies, 0);
    metric_t *up = metrics_gauge(m, "redis_up", "", NULL);
    assert_float_equal(metric_value(up), 0, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    metrics_destroy(m);
}

/* Closing at once, while the first attempt is under way, is clean too. */
static void test_close_right_after_create(void **state)
{
    (void)state;
    uv_loop_t loop;
    ctx_t c = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    redis_opts_t o = {.host = "localhost", .port = 1};
    redis_t *r = redis_create(&loop, &o);
    assert_non_null(r);
    redis_close(r, on_closed, &c);
    assert_int_equal(c.closed, 0); /* done comes from the loop, not from inside redis_close */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_null(redis_create(&loop, &(redis_opts_t){.port = 70000}));
}

int main(void)
{
    log_init("test_redis", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_unreachable_server_then_close),
        cmocka_unit_test(test_close_right_after_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
