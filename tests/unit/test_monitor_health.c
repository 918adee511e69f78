#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "health.h"

static health_thresholds_t th;

static int setup(void **state)
{
    (void)state;
    health_thresholds_default(&th);
    return 0;
}

static health_run_t run_of(double p, double r, double f1)
{
    return (health_run_t){.found = true,
                          .has_precision = true,
                          .has_recall = true,
                          .has_f1 = true,
                          .precision = p,
                          .recall = r,
                          .f1 = f1};
}

static feedback_stats_t feedback_of(const double *ratings, size_t n)
{
    feedback_stats_t fb = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(feedback_stats_add(&fb, ratings[i]), 0);
    }
    return fb;
}

static void test_defaults_are_the_seeds(void **state)
{
    (void)state;
    assert_true(th.precision == 0.75 && th.recall == 0.70 && th.f1 == 0.72);
    assert_true(th.feedback_avg == 0.6 && th.aggregate == 0.65);
}

/* The seed's example report: f1 0.776, feedback 0.68 -> aggregate 0.7472, OK. */
static void test_seed_example_is_ok(void **state)
{
    (void)state;
    health_run_t run = run_of(0.812, 0.743, 0.776);
    const double r[] = {0.6, 0.7, 0.74};
    feedback_stats_t fb = feedback_of(r, 3);
    health_verdict_t v;
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_OK);
    assert_true(v.has_aggregate);
    assert_true(fabs(v.aggregate - (0.7 * 0.776 + 0.3 * 0.68)) < 1e-12);
    assert_int_equal(v.nreasons, 0);
    assert_string_equal(health_status_name(v.status), "OK");
}

static void test_each_threshold_degrades(void **state)
{
    (void)state;
    const double good[] = {0.9, 0.9};
    feedback_stats_t fb = feedback_of(good, 2);
    health_verdict_t v;
    health_run_t run = run_of(0.74, 0.9, 0.9);
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
    assert_int_equal(v.nreasons, 1);
    assert_string_equal(v.reasons[0], "precision 0.74 < 0.75");

    run = run_of(0.9, 0.69, 0.9);
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
    assert_string_equal(v.reasons[0], "recall 0.69 < 0.7");

    run = run_of(0.9, 0.9, 0.71);
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
    assert_string_equal(v.reasons[0], "f1_score 0.71 < 0.72");

    const double bad[] = {0.5, 0.55};
    fb = feedback_of(bad, 2);
    run = run_of(0.9, 0.9, 0.9);
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
    assert_string_equal(v.reasons[0], "feedback_avg 0.525 < 0.6");
    assert_true(v.has_aggregate); /* 0.63 + 0.1575 = 0.7875: passes */
    assert_int_equal(v.nreasons, 1);
}

/* Exactly at a threshold passes; the aggregate rule alone can degrade. */
static void test_boundaries_and_aggregate_alone(void **state)
{
    (void)state;
    const double at[] = {0.6};
    feedback_stats_t fb = feedback_of(at, 1);
    health_run_t run = run_of(0.75, 0.70, 0.72);
    health_verdict_t v;
    health_evaluate(&th, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_OK);

    /* with thresholds that let f1 0.6 and feedback 0.6 pass, aggregate 0.6 < 0.65 */
    health_thresholds_t loose = th;
    loose.f1 = 0.5;
    run = run_of(0.8, 0.8, 0.6);
    health_evaluate(&loose, &run, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
    assert_int_equal(v.nreasons, 1);
    assert_string_equal(v.reasons[0], "aggregate_score 0.6 < 0.65");
}

static void test_no_feedback_is_its_own_state(void **state)
{
    (void)state;
    feedback_stats_t none = {0};
    health_run_t run = run_of(0.9, 0.9, 0.9);
    health_verdict_t v;
    health_evaluate(&th, &run, &none, &v);
    assert_int_equal(v.status, HEALTH_NO_FEEDBACK);
    assert_false(v.has_aggregate);
    assert_string_equal(v.reasons[0], "no feedback in the window");
    /* a bad F1 is a degradation even without feedback */
    run = run_of(0.9, 0.9, 0.5);
    health_evaluate(&th, &run, &none, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
}

static void test_no_run_is_its_own_state(void **state)
{
    (void)state;
    const double good[] = {0.9};
    feedback_stats_t fb = feedback_of(good, 1);
    health_verdict_t v;
    health_run_t none = {0};
    health_evaluate(&th, &none, &fb, &v);
    assert_int_equal(v.status, HEALTH_NO_RUN);
    assert_string_equal(v.reasons[0], "no MLflow run");
    health_evaluate(&th, NULL, NULL, &v);
    assert_int_equal(v.status, HEALTH_NO_RUN);
    /* a run without recall cannot pass */
    health_run_t partial = run_of(0.9, 0.9, 0.9);
    partial.has_recall = false;
    health_evaluate(&th, &partial, &fb, &v);
    assert_int_equal(v.status, HEALTH_NO_RUN);
    /* ...but a low known metric still degrades */
    const double bad[] = {0.1};
    fb = feedback_of(bad, 1);
    health_evaluate(&th, &none, &fb, &v);
    assert_int_equal(v.status, HEALTH_DEGRADED);
}

static void test_feedback_split(void **state)
{
    (void)state;
    const double r[] = {1.0, 0.8, 0.61, 0.6, 0.5, 0.4, 0.39, 0.0};
    feedback_stats_t fb = feedback_of(r, 8);
    assert_int_equal(fb.count, 8);
    assert_int_equal(fb.positive, 3);
    assert_int_equal(fb.neutral, 3);
    assert_int_equal(fb.negative, 2);
    double avg;
    assert_true(feedback_stats_avg(&fb, &avg));
    assert_true(fabs(avg - 4.3 / 8) < 1e-12);
    assert_int_equal(feedback_stats_add(&fb, 1.5), -1);
    assert_int_equal(feedback_stats_add(&fb, NAN), -1);
    assert_int_equal(fb.count, 8);
    feedback_stats_t empty = {0};
    assert_false(feedback_stats_avg(&empty, &avg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_seeds),
        cmocka_unit_test(test_seed_example_is_ok),
        cmocka_unit_test(test_each_threshold_degrades),
        cmocka_unit_test(test_boundaries_and_aggregate_alone),
        cmocka_unit_test(test_no_feedback_is_its_own_state),
        cmocka_unit_test(test_no_run_is_its_own_state),
        cmocka_unit_test(test_feedback_split),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
