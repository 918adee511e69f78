/* Unit tests of common/lock: tokens and the exact commands sent; no server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lock.h"

#define NTOKENS 2000

static int cmp_tokens(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* 32 lower-case hex digits, and no two alike over a few thousand draws. */
static void test_tokens_are_128_bit_hex_and_distinct(void **state)
{
    (void)state;
    static char tokens[NTOKENS][LOCK_TOKEN_LEN + 1];
    for (int i = 0; i < NTOKENS; i++) {
        memset(tokens[i], 'x', sizeof(tokens[i]));
        assert_int_equal(lock_token_generate(tokens[i]), 0);
        assert_int_equal(strlen(tokens[i]), LOCK_TOKEN_LEN);
        size_t hex = strspn(tokens[i], "0123456789abcdef");
        if (hex != LOCK_TOKEN_LEN) {
            fail_msg("token \"%s\": expected %d hex digits, got a non-hex at %zu", tokens[i], LOCK_TOKEN_LEN,
                     hex);
        }
    }
    qsort(tokens, NTOKENS, sizeof(tokens[0]), cmp_tokens);
    for (int i = 1; i < NTOKENS; i++) {
        if (strcmp(tokens[i - 1], tokens[i]) == 0) {
            fail_msg("expected distinct tokens, got \"%s\" twice", tokens[i]);
        }
    }
}

static void test_init_validates_the_name(void **state)
{
    (void)state;
    lock_t a, b;
    char longname[LOCK_NAME_MAX + 1];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[LOCK_NAME_MAX] = '\0';
    assert_int_equal(lock_init(&a, ""), HIVE_EINVAL);
    assert_int_equal(lock_init(&a, NULL), HIVE_EINVAL);
    assert_int_equal(lock_init(&a, longname), HIVE_EINVAL);
    assert_int_equal(lock_init(&a, "weights:consensus"), 0);
    assert_int_equal(lock_init(&b, "weights:consensus"), 0);
    assert_string_equal(a.name, "weights:consensus");
    assert_string_not_equal(a.token, b.token);
}

static void assert_argv(const lock_cmd_t *c, int argc, const char **want)
{
    assert_int_equal(c->argc, argc);
    for (int i = 0; i < argc; i++) {
        assert_string_equal(c->argv[i], want[i]);
    }
}

/* The wire contract: SET NX PX to take, a compare-and-delete script to
 * release, a compare-and-pexpire script to extend, INCR for fencing. */
static void test_commands(void **state)
{
    (void)state;
    lock_t l;
    lock_cmd_t c;
    assert_int_equal(lock_init(&l, "slo:api"), 0);

    assert_int_equal(lock_cmd_acquire(&c, &l, 30000), 0);
    assert_argv(&c, 6, (const char *[]){"SET", "lock:slo:api", l.token, "NX", "PX", "30000"});
    assert_int_equal(lock_cmd_acquire(&c, &l, 0), HIVE_EINVAL);

    assert_int_equal(lock_cmd_release(&c, &l), 0);
    assert_argv(
        &c, 5,
        (const char *[]){"EVAL",
                         "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) "
                         "else return 0 end",
                         "1", "lock:slo:api", l.token});

    assert_int_equal(lock_cmd_extend(&c, &l, 5000), 0);
    assert_int_equal(c.argc, 6);
    assert_string_equal(c.argv[0], "EVAL");
    assert_non_null(strstr(c.argv[1], "redis.call('get',KEYS[1])==ARGV[1]"));
    assert_non_null(strstr(c.argv[1], "pexpire"));
    assert_string_equal(c.argv[3], "lock:slo:api");
    assert_string_equal(c.argv[4], l.token);
    assert_string_equal(c.argv[5], "5000");

    assert_int_equal(lock_cmd_fence(&c, "slo:api"), 0);
    assert_argv(&c, 2, (const char *[]){"INCR", "fence:slo:api"});
    assert_int_equal(lock_cmd_fence(&c, ""), HIVE_EINVAL);

    lock_t broken = l;
    broken.token[5] = '\0';
    assert_int_equal(lock_cmd_release(&c, &broken), HIVE_EINVAL);
}

/* Calls that fail synchronously never call back. */
static int called;

static void on_lock(void *arg, int status)
{
    (void)arg;
    (void)status;
    called++;
}

static void test_bad_calls_fail_without_callback(void **state)
{
    (void)state;
    lock_t l;
    lock_init(&l, "x");
    called = 0;
    assert_int_equal(lock_acquire(NULL, &l, 1000, on_lock, NULL), HIVE_EINVAL);
    assert_int_equal(lock_acquire(NULL, &l, 1000, NULL, NULL), HIVE_EINVAL);
    assert_int_equal(lock_release(NULL, &l, on_lock, NULL), HIVE_EINVAL);
    assert_int_equal(called, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_are_128_bit_hex_and_distinct),
        cmocka_unit_test(test_init_validates_the_name),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_bad_calls_fail_without_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
