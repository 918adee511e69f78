#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "cli.h"

static void test_arguments(void **state)
{
    (void)state;
    const cli_spec_t spec = {.name = "x", .summary = "s"};
    char *none[] = {"x", NULL};
    char *ver[] = {"x", "--version", NULL};
    char *help[] = {"x", "--help", NULL};
    char *bad[] = {"x", "--frobnicate", NULL};
    assert_int_equal(cli_handle(&spec, 1, none), -1);
    assert_int_equal(cli_handle(&spec, 2, ver), 0);
    assert_int_equal(cli_handle(&spec, 2, help), 0);
    assert_int_equal(cli_handle(&spec, 2, bad), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_arguments)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
