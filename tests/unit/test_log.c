#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Captures one log line written by `fn` and parses it as JSON. */
static json_t *capture(void (*fn)(void))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    log_set_stream(f);
    fn();
    log_set_stream(NULL);
    fclose(f);
    json_error_t err;
    json_t *j = len ? json_loadb(buf, len, 0, &err) : NULL;
    free(buf);
    return j;
}

static void write_escaped(void)
{
    log_info("hello \"world\"\n", "optimization_id", "opt-1", "path", "a\\b\x01", "absent", NULL);
}

static void test_fields_are_valid_json(void **state)
{
    (void)state;
    log_init("optimizer", LOG_INFO);
    json_t *j = capture(write_escaped);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "optimizer");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "hello \"world\"\n");
    assert_string_equal(json_string_value(json_object_get(j, "optimization_id")), "opt-1");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "a\\b\x01");
    assert_true(json_is_null(json_object_get(j, "absent")));
    assert_non_null(json_string_value(json_object_get(j, "ts")));
    json_decref(j);
}

static void write_debug(void)
{
    log_debug("hidden");
}

static void test_level_filter(void **state)
{
    (void)state;
    log_init("t", LOG_INFO);
    assert_null(capture(write_debug));
    log_init("t", LOG_DEBUG);
    json_t *j = capture(write_debug);
    assert_non_null(j);
    json_decref(j);
}

static char big[10000];
static void write_long(void)
{
    log_warn("long", "small", "kept", "big", big);
}

static void test_overlong_field_dropped_line_valid(void **state)
{
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    log_init("t", LOG_INFO);
    json_t *j = capture(write_long);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "small")), "kept");
    assert_null(json_object_get(j, "big"));
    json_decref(j);
}

static void test_level_parse(void **state)
{
    (void)state;
    log_level_t l;
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("loud", &l), -1);
    assert_string_equal(log_level_name(LOG_ERROR), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_are_valid_json),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_overlong_field_dropped_line_valid),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
