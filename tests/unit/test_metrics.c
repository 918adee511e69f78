#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void test_counter_with_labels(void **state)
{
    (void)state;
    metrics_t *reg = metrics_create();
    metric_t *c = metrics_counter(reg, "hypotheses_generated_total", "Hypotheses generated", "type");
    assert_non_null(c);
    metric_add(c, 1, "WEIGHT_RECALIBRATION");
    metric_add(c, 2, "WEIGHT_RECALIBRATION");
    metric_add(c, 1, "SLO_ADJUSTMENT");
    metric_add(c, -5, "SLO_ADJUSTMENT"); /* counters never go down */
    assert_float_equal(metric_value(c, "WEIGHT_RECALIBRATION"), 3, 0);
    assert_float_equal(metric_value(c, "SLO_ADJUSTMENT"), 1, 0);
    assert_float_equal(metric_value(c, "POLICY_CHANGE"), 0, 0);
    char *text = metrics_render(reg, NULL);
    assert_non_null(strstr(text, "# TYPE hypotheses_generated_total counter\n"));
    assert_non_null(strstr(text, "hypotheses_generated_total{type=\"WEIGHT_RECALIBRATION\"} 3\n"));
    assert_non_null(strstr(text, "hypotheses_generated_total{type=\"SLO_ADJUSTMENT\"} 1\n"));
    free(text);
    metrics_destroy(reg);
}

static void test_gauge_unlabelled_zero_and_escape(void **state)
{
    (void)state;
    metrics_t *reg = metrics_create();
    metric_t *g = metrics_gauge(reg, "epsilon_value", "Exploration rate", NULL);
    metric_t *l = metrics_gauge(reg, "lag", "Lag", "topic");
    char *text = metrics_render(reg, NULL);
    assert_non_null(strstr(text, "epsilon_value 0\n"));
    free(text);
    metric_set(g, 0.25);
    metric_set(l, 7, "a\"b\\c\nd");
    text = metrics_render(reg, NULL);
    assert_non_null(strstr(text, "epsilon_value 0.25\n"));
    assert_non_null(strstr(text, "lag{topic=\"a\\\"b\\\\c\\nd\"} 7\n"));
    free(text);
    metrics_destroy(reg);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    metrics_t *reg = metrics_create();
    const double b[] = {0.1, 1, 10};
    metric_t *h = metrics_histogram(reg, "reward_distribution", "Rewards", NULL, b, 3);
    metric_observe(h, 0.05);
    metric_observe(h, 0.5);
    metric_observe(h, 0.7);
    metric_observe(h, 100);
    char *text = metrics_render(reg, NULL);
    assert_non_null(strstr(text, "reward_distribution_bucket{le=\"0.1\"} 1\n"));
    assert_non_null(strstr(text, "reward_distribution_bucket{le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "reward_distribution_bucket{le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "reward_distribution_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "reward_distribution_count 4\n"));
    assert_non_null(strstr(text, "reward_distribution_sum 101.25\n"));
    free(text);
    metrics_destroy(reg);
}

static void test_registration_rules(void **state)
{
    (void)state;
    metrics_t *reg = metrics_create();
    metric_t *a = metrics_counter(reg, "x_total", "x", NULL);
    assert_ptr_equal(metrics_counter(reg, "x_total", "x", NULL), a);
    assert_null(metrics_gauge(reg, "x_total", "x", NULL));
    assert_null(metrics_counter(reg, "bad-name", "x", NULL));
    assert_null(metrics_counter(reg, "y_total", "x", "a,b,c,d,e"));
    const double unsorted[] = {1, 0.5};
    assert_null(metrics_histogram(reg, "h", "h", NULL, unsorted, 2));
    metrics_destroy(reg);
    metrics_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_gauge_unlabelled_zero_and_escape),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_registration_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
