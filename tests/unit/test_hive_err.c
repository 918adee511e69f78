/* Unit tests of hive_err: every code distinct, named, described and classed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "hive_err.h"

static const int codes[] = {
#define CODE(name, value, transient, msg) HIVE_##name,
    HIVE_ERRNO_MAP(CODE)
#undef CODE
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static void test_codes_distinct_and_negative(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < NCODES; j++) {
            assert_int_not_equal(codes[i], codes[j]);
        }
    }
}

static void test_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(hive_errname(0), "OK");
    assert_string_equal(hive_strerror(0), "ok");
    assert_string_equal(hive_errname(HIVE_ECONFLICT), "HIVE_ECONFLICT");
    assert_string_equal(hive_errname(HIVE_EBADMSG), "HIVE_EBADMSG");
    assert_string_equal(hive_errname(-9999), "HIVE_E?");
    assert_string_equal(hive_strerror(-9999), "unknown error");
    for (size_t i = 0; i < NCODES; i++) {
        assert_true(strncmp(hive_errname(codes[i]), "HIVE_E", 6) == 0);
        assert_string_not_equal(hive_strerror(codes[i]), "unknown error");
    }
}

static void test_transient_class(void **state)
{
    (void)state;
    assert_true(hive_err_transient(HIVE_EUNAVAILABLE));
    assert_true(hive_err_transient(HIVE_ETIMEDOUT));
    assert_false(hive_err_transient(HIVE_EREJECTED));
    assert_false(hive_err_transient(HIVE_EBADMSG));
    assert_false(hive_err_transient(0));
    assert_false(hive_err_transient(-9999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_distinct_and_negative),
        cmocka_unit_test(test_names_and_messages),
        cmocka_unit_test(test_transient_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
