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
    assert_true(hive_err_transient(HIVE_ENOMEM)); /* a good record is not dead-lettered for want of memory */
    assert_false(hive_err_transient(0));
    assert_false(hive_err_transient(-9999));
}

static void test_err_set(void **state)
{
    (void)state;
    char err[8];
    assert_int_equal(hive_err_set(err, sizeof(err), HIVE_EINVAL, "bad %s", "key"), HIVE_EINVAL);
    assert_string_equal(err, "bad key");
    assert_int_equal(hive_err_set(err, sizeof(err), HIVE_ETOOBIG, "%s", "much too long"), HIVE_ETOOBIG);
    assert_string_equal(err, "much to"); /* cut, NUL-terminated */
    assert_int_equal(hive_err_set(NULL, 0, HIVE_ENOTFOUND, "x"), HIVE_ENOTFOUND);
    assert_int_equal(hive_err_set(err, 0, 0, "y"), 0);
    assert_string_equal(err, "much to"); /* errlen 0: untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_distinct_and_negative),
        cmocka_unit_test(test_names_and_messages),
        cmocka_unit_test(test_transient_class),
        cmocka_unit_test(test_err_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
