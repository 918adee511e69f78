/* apply: the appliers' adjustment modes and impact-watch decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>

#include "apply.h"

static void test_modes(void **state)
{
    (void)state;
    apply_mode_t m = APPLY_DELTA;
    assert_int_equal(apply_mode_parse("RELATIVE", &m), 0);
    assert_int_equal(m, APPLY_RELATIVE);
    assert_int_equal(apply_mode_parse("relative", &m), -1);
    assert_int_equal(m, APPLY_RELATIVE);
    assert_float_equal(apply_adjust(0.2, APPLY_DELTA, 0.05), 0.25, 1e-15);
    assert_float_equal(apply_adjust(1000, APPLY_RELATIVE, -0.1), 900, 1e-9);
    assert_float_equal(apply_adjust(0.2, APPLY_ABSOLUTE, 0.3), 0.3, 0);
    assert_string_equal(apply_mode_name(APPLY_DELTA), "DELTA");
}

static void test_watch(void **state)
{
    (void)state;
    apply_watch_t w = {.baseline = 0.01,
                       .higher_is_worse = true,
                       .threshold = 0.2,
                       .min_scale = 1e-3,
                       .applied_at_ms = 1000,
                       .until_ms = 61000};
    double worse = -1;
    assert_int_equal(apply_watch_decide(&w, NULL, 2000, &worse), APPLY_WATCH_KEEP);
    assert_float_equal(worse, 0, 0);
    /* measured before the change: ignored */
    apply_obs_t before = {.value = 0.5, .window_end_ms = 900};
    assert_int_equal(apply_watch_decide(&w, &before, 2000, NULL), APPLY_WATCH_KEEP);
    /* 20 % worse is at the threshold, not beyond */
    apply_obs_t at = {.value = 0.012, .window_end_ms = 5000};
    assert_int_equal(apply_watch_decide(&w, &at, 6000, NULL), APPLY_WATCH_KEEP);
    apply_obs_t bad = {.value = 0.05, .window_end_ms = 5000};
    assert_int_equal(apply_watch_decide(&w, &bad, 6000, &worse), APPLY_WATCH_ROLLBACK);
    assert_float_equal(worse, 4.0, 1e-9);
    /* after the window: a late observation no longer counts; the watch ends */
    apply_obs_t late = {.value = 0.05, .window_end_ms = 70000};
    assert_int_equal(apply_watch_decide(&w, &late, 71000, NULL), APPLY_WATCH_EXPIRED);
    /* lower is worse for availability */
    w = (apply_watch_t){.baseline = 0.999,
                        .higher_is_worse = false,
                        .threshold = 0.001,
                        .min_scale = 1e-3,
                        .applied_at_ms = 0,
                        .until_ms = 10};
    apply_obs_t down = {.value = 0.99, .window_end_ms = 5};
    assert_int_equal(apply_watch_decide(&w, &down, 6, NULL), APPLY_WATCH_ROLLBACK);
    apply_obs_t up = {.value = 1.0, .window_end_ms = 5};
    assert_int_equal(apply_watch_decide(&w, &up, 6, NULL), APPLY_WATCH_KEEP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_watch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
