#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static double rate;
static long port;
static bool flag;
static char *uri, *policy;

static const config_item_t items[] = {
    {"T_LEARNING_RATE", CONFIG_DOUBLE, "0.01", 0.0, 1.0, NULL, &rate, "alpha"},
    {"T_HTTP_PORT", CONFIG_INT, "8000", 1, 65535, NULL, &port, "port"},
    {"T_FLAG", CONFIG_BOOL, "false", 0, 0, NULL, &flag, "flag"},
    {"T_URI", CONFIG_STRING, "mongodb://127.0.0.1", 0, 0, NULL, &uri, "uri"},
    {"T_POLICY", CONFIG_ENUM, "qlearning", 0, 0, "qlearning|thompson|linucb", &policy, "policy"},
};
#define N (sizeof(items) / sizeof(items[0]))

static int reset(void **state)
{
    (void)state;
    const char *names[] = {"T_LEARNING_RATE", "T_HTTP_PORT", "T_FLAG", "T_URI", "T_POLICY"};
    for (size_t i = 0; i < N; i++) {
        unsetenv(names[i]);
    }
    config_free(items, N);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(config_load(items, N, err, sizeof(err)), 0);
    assert_float_equal(rate, 0.01, 1e-12);
    assert_int_equal(port, 8000);
    assert_false(flag);
    assert_string_equal(uri, "mongodb://127.0.0.1");
    assert_string_equal(policy, "qlearning");
}

static void test_environment_overrides(void **state)
{
    (void)state;
    char err[256];
    setenv("T_LEARNING_RATE", "0.5", 1);
    setenv("T_HTTP_PORT", "9001", 1);
    setenv("T_FLAG", "yes", 1);
    setenv("T_POLICY", "linucb", 1);
    assert_int_equal(config_load(items, N, err, sizeof(err)), 0);
    assert_float_equal(rate, 0.5, 1e-12);
    assert_int_equal(port, 9001);
    assert_true(flag);
    assert_string_equal(policy, "linucb");
}

/* Each bad value fails naming the variable and the accepted range. */
static void expect_error(const char *name, const char *value, const char *fragment)
{
    char err[256] = "";
    setenv(name, value, 1);
    assert_int_equal(config_load(items, N, err, sizeof(err)), -1);
    assert_non_null(strstr(err, name));
    assert_non_null(strstr(err, fragment));
    unsetenv(name);
}

static void test_invalid_values(void **state)
{
    (void)state;
    expect_error("T_LEARNING_RATE", "1.5", "[0, 1]");
    expect_error("T_LEARNING_RATE", "abc", "a number in [0, 1]");
    expect_error("T_LEARNING_RATE", "nan", "[0, 1]");
    expect_error("T_HTTP_PORT", "0", "[1, 65535]");
    expect_error("T_HTTP_PORT", "80x", "an integer");
    expect_error("T_FLAG", "maybe", "true or false");
    expect_error("T_URI", "", "non-empty");
    expect_error("T_POLICY", "greedy", "qlearning|thompson|linucb");
    expect_error("T_POLICY", "thompso", "one of");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, reset, reset),
        cmocka_unit_test_setup_teardown(test_environment_overrides, reset, reset),
        cmocka_unit_test_setup_teardown(test_invalid_values, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
