#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "degradation.h"

static const degradation_thresholds_t th = DEGRADATION_THRESHOLDS_DEFAULT;

static telemetry_view_t healthy(void)
{
    return (telemetry_view_t){"orchestrator", 1000, 61000, 0.999, 250.0, 0.001};
}

static void test_healthy_window(void **state)
{
    (void)state;
    telemetry_view_t t = healthy();
    degradation_t d;
    assert_int_equal(degradation_detect(&th, &t, &d), 0);
}

/* Exactly at the thresholds is not degraded; just past them is. */
static void test_threshold_boundaries(void **state)
{
    (void)state;
    degradation_t d;
    telemetry_view_t t = healthy();
    t.slo_compliance = 0.99;
    t.latency_p95_ms = 1000.0;
    t.error_rate = 0.01;
    assert_int_equal(degradation_detect(&th, &t, &d), 0);

    t = healthy();
    t.latency_p95_ms = 1000.5;
    assert_int_equal(degradation_detect(&th, &t, &d), 1);
    assert_int_equal(d.flags, DEGRADATION_LATENCY);
    assert_string_equal(d.metric, "latency_p95_ms");
    assert_string_equal(d.priority, "HIGH");

    t = healthy();
    t.error_rate = 0.011;
    assert_int_equal(degradation_detect(&th, &t, &d), 1);
    assert_int_equal(d.flags, DEGRADATION_ERROR_RATE);

    t = healthy();
    t.slo_compliance = 0.985;
    assert_int_equal(degradation_detect(&th, &t, &d), 1);
    assert_int_equal(d.flags, DEGRADATION_SLO);
    assert_float_equal(d.baseline_value, 0.99, 1e-12);
}

static void test_worst_violation_and_priority(void **state)
{
    (void)state;
    degradation_t d;
    telemetry_view_t t = healthy();
    t.latency_p95_ms = 1500; /* severity 0.5 */
    t.error_rate = 0.04;     /* severity 3.0: the worst */
    assert_int_equal(degradation_detect(&th, &t, &d), 1);
    assert_int_equal(d.flags, DEGRADATION_LATENCY | DEGRADATION_ERROR_RATE);
    assert_string_equal(d.metric, "error_rate");
    assert_float_equal(d.current_value, 0.04, 1e-12);
    assert_float_equal(d.severity, 3.0, 1e-9);
    assert_string_equal(d.priority, "CRITICAL");
    assert_string_equal(d.violations, "latency_p95_ms,error_rate");

    t = healthy();
    t.latency_p95_ms = 2100; /* one rule, more than twice the limit */
    assert_int_equal(degradation_detect(&th, &t, &d), 1);
    assert_string_equal(d.priority, "CRITICAL");
}

/* The insight id depends on service and window only, so a replay of the same
 * window yields the same id, and another window another id. */
static void test_insight_id_is_stable(void **state)
{
    (void)state;
    degradation_t a, b, c;
    telemetry_view_t t = healthy();
    t.error_rate = 0.5;
    assert_int_equal(degradation_detect(&th, &t, &a), 1);
    t.error_rate = 0.7;
    assert_int_equal(degradation_detect(&th, &t, &b), 1);
    assert_string_equal(a.insight_id, b.insight_id);
    assert_int_equal(strlen(a.insight_id), 20);
    t.window_start_ms += 60000;
    t.window_end_ms += 60000;
    assert_int_equal(degradation_detect(&th, &t, &c), 1);
    assert_string_not_equal(a.insight_id, c.insight_id);
}

static void test_invalid_input(void **state)
{
    (void)state;
    degradation_t d;
    telemetry_view_t t = healthy();
    t.latency_p95_ms = NAN;
    assert_int_equal(degradation_detect(&th, &t, &d), -1);
    t = healthy();
    t.window_end_ms = t.window_start_ms - 1;
    assert_int_equal(degradation_detect(&th, &t, &d), -1);
    t = healthy();
    t.service = NULL;
    assert_int_equal(degradation_detect(&th, &t, &d), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_window),
        cmocka_unit_test(test_threshold_boundaries),
        cmocka_unit_test(test_worst_violation_and_priority),
        cmocka_unit_test(test_insight_id_is_stable),
        cmocka_unit_test(test_invalid_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
