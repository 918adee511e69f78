/* Unit tests of redis_sync and lock_sync without a Redis server: argument
 * checks, and a closed loopback port reported as unavailable (a reachable
 * Redis is tested in tests/integration/itest_sync.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hive_err.h"
#include "lock_sync.h"
#include "log.h"

/* A loopback port nobody listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_bad_options(void **state)
{
    (void)state;
    assert_null(redis_sync_create(NULL));
    assert_null(redis_sync_create(&(redis_sync_opts_t){.host = "", .port = 6379}));
    assert_null(redis_sync_create(&(redis_sync_opts_t){.host = "127.0.0.1", .port = 0}));
    assert_null(redis_sync_create(&(redis_sync_opts_t){.host = "127.0.0.1", .port = 70000}));
    redis_sync_destroy(NULL);
}

static void test_bad_arguments_never_touch_the_network(void **state)
{
    (void)state;
    redis_sync_t *s = redis_sync_create(&(redis_sync_opts_t){.host = "127.0.0.1", .port = closed_port()});
    assert_non_null(s);
    redisReply *r = (redisReply *)1;
    const char *argv[] = {"PING"};
    assert_int_equal(redis_sync_command(s, 0, argv, NULL, &r), HIVE_EINVAL);
    assert_int_equal(redis_sync_command(NULL, 1, argv, NULL, &r), HIVE_EINVAL);
    lock_t l;
    assert_int_equal(lock_init(&l, "itest-lock"), 0);
    assert_int_equal(lock_sync_acquire(s, &l, 0), HIVE_EINVAL); /* TTL 0 */
    lock_t bad = {.name = "", .token = ""};
    assert_int_equal(lock_sync_acquire(s, &bad, 1000), HIVE_EINVAL);
    assert_int_equal(lock_sync_extend(s, &bad, 1000), HIVE_EINVAL);
    assert_int_equal(lock_sync_release(s, &bad), HIVE_EINVAL);
    int64_t token = 77;
    assert_int_equal(lock_sync_fence(s, "", &token), HIVE_EINVAL);
    assert_int_equal(lock_sync_fence(s, "x", NULL), HIVE_EINVAL);
    assert_int_equal(token, 77);
    redis_sync_destroy(s);
}

/* Nobody listening: each call fails as unavailable (retry later), again and
 * again, and leaves its outputs alone. */
static void test_unreachable_is_unavailable(void **state)
{
    (void)state;
    log_init("test", LOG_ERROR + 1);
    redis_sync_t *s = redis_sync_create(&(redis_sync_opts_t){
        .host = "127.0.0.1", .port = closed_port(), .connect_timeout_ms = 500, .max_conns = 1});
    assert_non_null(s);
    lock_t l;
    assert_int_equal(lock_init(&l, "itest-lock"), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lock_sync_acquire(s, &l, 1000), HIVE_EUNAVAILABLE);
    }
    int64_t token = 77;
    assert_int_equal(lock_sync_fence(s, "x", &token), HIVE_EUNAVAILABLE);
    assert_int_equal(token, 77);
    redisReply *r = (redisReply *)1;
    const char *argv[] = {"PING"};
    assert_int_equal(redis_sync_command(s, 1, argv, NULL, &r), HIVE_EUNAVAILABLE);
    assert_null(r);
    assert_true(hive_err_transient(HIVE_EUNAVAILABLE));
    redis_sync_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_bad_arguments_never_touch_the_network),
        cmocka_unit_test(test_unreachable_is_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
