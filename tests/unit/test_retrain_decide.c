/* The retrainer's pure decisions: the cooldown and the comparison of a
 * candidate with the production version (decide.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <string.h>

#include "decide.h"

/* seed 001's validator, seed 003's thresholds */
static const decide_thresholds_t th = {0.60, 0.60, 0.65, 0.75, 0.70, 0.72};

static decide_metrics_t all4(double p, double r, double f1, double acc)
{
    return (decide_metrics_t){p, r, f1, acc, true, true, true, true};
}

static void better_candidate_is_promoted(void **state)
{
    (void)state;
    decide_metrics_t c = all4(0.90, 0.88, 0.89, 0.90);
    decide_verdict_t v;
    decide_compare(&c, true, 0.70, &th, true, &v);
    assert_true(v.passes_minimums);
    assert_true(v.beats_baseline);
    assert_true(v.promote);
    assert_non_null(strstr(v.reason, "new_f1 0.8900 > baseline_f1 0.7000 ok"));
}

static void equal_f1_is_not_better(void **state)
{
    (void)state;
    decide_metrics_t c = all4(0.90, 0.88, 0.80, 0.90);
    decide_verdict_t v;
    decide_compare(&c, true, 0.80, &th, true, &v);
    assert_true(v.passes_minimums);
    assert_false(v.beats_baseline);
    assert_false(v.promote);
    assert_non_null(strstr(v.reason, "FAILS"));
}

static void each_minimum_is_checked(void **state)
{
    (void)state;
    decide_verdict_t v;
    /* seed 003's precision 0.75 (above the validator's 0.60) */
    decide_metrics_t c = all4(0.74, 0.90, 0.90, 0.90);
    decide_compare(&c, false, 0, &th, true, &v);
    assert_false(v.passes_minimums);
    assert_false(v.promote);
    assert_non_null(strstr(v.reason, "precision 0.7400 >= 0.75 FAILS"));
    /* seed 003's recall 0.70 */
    c = all4(0.90, 0.69, 0.90, 0.90);
    decide_compare(&c, false, 0, &th, true, &v);
    assert_false(v.passes_minimums);
    /* seed 003's F1 0.72 */
    c = all4(0.90, 0.90, 0.71, 0.90);
    decide_compare(&c, false, 0, &th, true, &v);
    assert_false(v.passes_minimums);
    /* seed 001's accuracy 0.65 */
    c = all4(0.90, 0.90, 0.90, 0.64);
    decide_compare(&c, false, 0, &th, true, &v);
    assert_false(v.passes_minimums);
    assert_non_null(strstr(v.reason, "validator accuracy 0.6400 >= 0.65 FAILS"));
    /* exactly at the minimums passes */
    c = all4(0.75, 0.70, 0.72, 0.65);
    decide_compare(&c, false, 0, &th, true, &v);
    assert_true(v.passes_minimums);
    assert_true(v.promote);
}

static void missing_metric_fails(void **state)
{
    (void)state;
    decide_metrics_t c = all4(0.90, 0.90, 0.90, 0.90);
    c.has_accuracy = false;
    decide_verdict_t v;
    decide_compare(&c, false, 0, &th, true, &v);
    assert_false(v.passes_minimums);
    assert_non_null(strstr(v.reason, "validator accuracy missing"));
}

static void no_baseline_any_valid_candidate_wins(void **state)
{
    (void)state;
    decide_metrics_t c = all4(0.80, 0.80, 0.80, 0.80);
    decide_verdict_t v;
    decide_compare(&c, false, 0.99, &th, true, &v);
    assert_true(v.beats_baseline);
    assert_true(v.promote);
    assert_non_null(strstr(v.reason, "no production version"));
}

static void promotion_not_asked(void **state)
{
    (void)state;
    decide_metrics_t c = all4(0.90, 0.90, 0.90, 0.90);
    decide_verdict_t v;
    decide_compare(&c, true, 0.5, &th, false, &v);
    assert_true(v.passes_minimums);
    assert_true(v.beats_baseline);
    assert_false(v.promote);
    assert_non_null(strstr(v.reason, "promotion not asked for"));
}

static void cooldown_window(void **state)
{
    (void)state;
    const int64_t h = 3600000;
    assert_false(decide_in_cooldown(0, 100 * h, 24, false));          /* never retrained */
    assert_true(decide_in_cooldown(100 * h, 100 * h + 1, 24, false)); /* just started */
    assert_true(decide_in_cooldown(100 * h, 124 * h - 1, 24, false));
    assert_false(decide_in_cooldown(100 * h, 124 * h, 24, false));    /* the window has passed */
    assert_false(decide_in_cooldown(100 * h, 101 * h, 24, true));     /* --force */
    assert_false(decide_in_cooldown(100 * h, 100 * h + 1, 0, false)); /* no cooldown */
}

static void step_names_round_trip(void **state)
{
    (void)state;
    for (int s = 0; s < STEP_COUNT; s++) {
        assert_int_equal(decide_step_parse(decide_step_name((decide_step_t)s)), s);
    }
    assert_int_equal(decide_step_parse("canary"), -1);
    assert_int_equal(decide_step_parse(NULL), -1);
    assert_string_equal(decide_step_name(STEP_MONITOR), "monitor");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(better_candidate_is_promoted),
        cmocka_unit_test(equal_f1_is_not_better),
        cmocka_unit_test(each_minimum_is_checked),
        cmocka_unit_test(missing_metric_fails),
        cmocka_unit_test(no_baseline_any_valid_candidate_wins),
        cmocka_unit_test(promotion_not_asked),
        cmocka_unit_test(cooldown_window),
        cmocka_unit_test(step_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
