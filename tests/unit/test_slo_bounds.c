/* slo bounds: the slo-adjuster's clamps, checks and error budget (seed 000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "rules.h"

/* |a - b| <= eps, in double precision. */
#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static const slo_bounds_t *B = &slo_bounds_default;

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(slo_param_index("latency_ms"), SLO_LATENCY);
    assert_int_equal(slo_param_index("latency_p95_ms"), SLO_LATENCY);
    assert_int_equal(slo_param_index("availability"), SLO_AVAILABILITY);
    assert_int_equal(slo_param_index("error_rate"), SLO_ERROR_RATE);
    assert_int_equal(slo_param_index("throughput"), -1);
    assert_int_equal(slo_param_index(NULL), -1);
    assert_true(slo_bounds_valid(B));
    slo_bounds_t bad = *B;
    bad.availability_lo = 0.99999;
    assert_false(slo_bounds_valid(&bad));
}

/* The seed's example: current 1000 ms, the latency stays in [700, 1300]. */
static void test_latency_clamp(void **state)
{
    (void)state;
    double cur[SLO_N] = {1000, 0.99, 0.01}, out[SLO_N];
    slo_clamps_t c;
    double prop[SLO_N] = {500, 0.99, 0.01};
    assert_int_equal(slo_clamp(cur, prop, B, out, &c), 1);
    assert_true(c.clamped[SLO_LATENCY]);
    assert_false(c.clamped[SLO_AVAILABILITY]);
    assert_near(out[SLO_LATENCY], 700, 1e-9);
    assert_near(c.proposed[SLO_LATENCY], 500, 0);
    assert_near(c.lo[SLO_LATENCY], 700, 1e-9);
    assert_near(c.hi[SLO_LATENCY], 1300, 1e-9);
    prop[SLO_LATENCY] = 2000;
    assert_int_equal(slo_clamp(cur, prop, B, out, &c), 1);
    assert_near(out[SLO_LATENCY], 1300, 1e-9);
    /* Never beyond what ServiceSLO carries. */
    double big[SLO_N] = {3000000, 0.99, 0.01}, prop_big[SLO_N] = {3900000, 0.99, 0.01};
    assert_int_equal(slo_clamp(big, prop_big, B, out, &c), 1);
    assert_near(out[SLO_LATENCY], SLO_LATENCY_MAX_MS, 0);
    assert_int_equal(slo_validate(big, out, B, NULL, 0), 0);
    prop[SLO_LATENCY] = 900; /* RELATIVE -0.10: inside, unchanged */
    assert_int_equal(slo_clamp(cur, prop, B, out, &c), 0);
    assert_near(out[SLO_LATENCY], 900, 0);
    assert_int_equal(slo_validate(cur, out, B, NULL, 0), 0);
}

static void test_ranges_clamp(void **state)
{
    (void)state;
    double cur[SLO_N] = {1000, 0.99, 0.01}, out[SLO_N];
    slo_clamps_t c;
    double prop[SLO_N] = {1000, 0.99999, 0.5};
    assert_int_equal(slo_clamp(cur, prop, B, out, &c), 2);
    assert_near(out[SLO_AVAILABILITY], 0.9999, 0);
    assert_near(out[SLO_ERROR_RATE], 0.10, 0);
    assert_true(c.clamped[SLO_AVAILABILITY] && c.clamped[SLO_ERROR_RATE]);
    double prop2[SLO_N] = {1000, 0.5, 0.0};
    assert_int_equal(slo_clamp(cur, prop2, B, out, NULL), 2);
    assert_near(out[SLO_AVAILABILITY], 0.95, 0);
    assert_near(out[SLO_ERROR_RATE], 0.001, 0);
    /* The bounds themselves are inside. */
    double edge[SLO_N] = {700, 0.95, 0.001};
    assert_int_equal(slo_clamp(cur, edge, B, out, NULL), 0);
}

static void test_clamp_refuses_nonfinite(void **state)
{
    (void)state;
    double cur[SLO_N] = {1000, 0.99, 0.01}, out[SLO_N];
    double prop[SLO_N] = {NAN, 0.99, 0.01};
    assert_int_equal(slo_clamp(cur, prop, B, out, NULL), -1);
    double prop2[SLO_N] = {1000, INFINITY, 0.01};
    assert_int_equal(slo_clamp(cur, prop2, B, out, NULL), -1);
    double zero[SLO_N] = {0, 0.99, 0.01};
    assert_int_equal(slo_clamp(zero, prop2, B, out, NULL), -1);
}

static void test_validate(void **state)
{
    (void)state;
    double cur[SLO_N] = {1000, 0.99, 0.01};
    char why[128];
    double ok[SLO_N] = {1300, 0.9999, 0.10};
    assert_int_equal(slo_validate(cur, ok, B, why, sizeof(why)), 0);
    double lat[SLO_N] = {1301, 0.99, 0.01};
    assert_int_equal(slo_validate(cur, lat, B, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "latency_ms"));
    double av[SLO_N] = {1000, 0.94, 0.01};
    assert_int_equal(slo_validate(cur, av, B, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "availability"));
    double er[SLO_N] = {1000, 0.99, 0.0009};
    assert_int_equal(slo_validate(cur, er, B, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "error_rate"));
}

/* Whatever is proposed, the clamped SLO passes validate_slo_adjustment. */
static void test_clamp_then_validate_property(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int k = 0; k < 100000; k++) {
        double cur[SLO_N], prop[SLO_N], out[SLO_N];
        double u[6];
        for (int i = 0; i < 6; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u[i] = (double)(x >> 11) / 9007199254740992.0;
        }
        cur[SLO_LATENCY] = 1 + u[0] * 10000;
        cur[SLO_AVAILABILITY] = 0.9 + u[1] * 0.1;
        cur[SLO_ERROR_RATE] = u[2] * 0.2;
        prop[SLO_LATENCY] = cur[SLO_LATENCY] * (u[3] * 3 - 1);
        prop[SLO_AVAILABILITY] = u[4];
        prop[SLO_ERROR_RATE] = u[5] * 0.3;
        assert_true(slo_clamp(cur, prop, B, out, NULL) >= 0);
        assert_int_equal(slo_validate(cur, out, B, NULL, 0), 0);
    }
}

static void test_budget(void **state)
{
    (void)state;
    char why[256];
    /* No traffic: the whole budget. */
    slo_budget_t s = slo_error_budget(0, 0, 0.99);
    assert_near(s.remaining, 1.0, 0);
    assert_int_equal(slo_budget_check(&s, B, why, sizeof(why)), 0);
    /* 10000 requests at 99 %: 100 errors allowed; 85 spent leaves 15 %. */
    s = slo_error_budget(10000, 85, 0.99);
    assert_near(s.allowed, 100, 1e-9);
    assert_near(s.remaining, 0.15, 1e-9);
    assert_int_equal(slo_budget_check(&s, B, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "15.0%"));
    assert_non_null(strstr(why, "85 errors of 10000 requests"));
    /* 80 spent leaves exactly 20 %: allowed. */
    s = slo_error_budget(10000, 80, 0.99);
    assert_near(s.remaining, 0.20, 1e-9);
    assert_int_equal(slo_budget_check(&s, B, why, sizeof(why)), 0);
    /* Overspent: 0, never negative. */
    s = slo_error_budget(10000, 500, 0.99);
    assert_near(s.remaining, 0, 0);
    assert_int_equal(slo_budget_check(&s, B, why, sizeof(why)), -1);
    /* A target of 1 allows no errors. */
    s = slo_error_budget(100, 1, 1.0);
    assert_near(s.remaining, 0, 0);
    s = slo_error_budget(100, 0, 1.0);
    assert_near(s.remaining, 1, 0);
}

static void test_policy_limit(void **state)
{
    (void)state;
    double v;
    assert_int_equal(policy_limit(10, 12, 0.3, &v), 0);
    assert_near(v, 12, 0);
    assert_int_equal(policy_limit(10, 20, 0.3, &v), 1);
    assert_near(v, 13, 1e-12);
    assert_int_equal(policy_limit(-10, -20, 0.3, &v), 1);
    assert_near(v, -13, 1e-12);
    assert_int_equal(policy_limit(-10, 5, 0.3, &v), 1);
    assert_near(v, -7, 1e-12);
    assert_int_equal(policy_limit(0, 5, 0.3, &v), 0);
    assert_near(v, 5, 0);
    assert_int_equal(policy_limit(1, NAN, 0.3, &v), -1);
    assert_int_equal(policy_limit(INFINITY, 1, 0.3, &v), -1);
}

/* Burn-rate rules: every alert threshold stays reachable (<= 1). */
static void test_rules(void **state)
{
    (void)state;
    assert_near(slo_rules_capped_factor(14.4, 0.999), 14.4, 0);
    assert_near(slo_rules_capped_factor(14.4, 0.95), 14.4, 0);
    assert_near(slo_rules_capped_factor(14.4, 0.9), 10, 1e-9);
    assert_near(slo_rules_capped_factor(1, 0.5), 1, 0);
    for (double a = 0.5; a < 1; a += 0.01) {
        for (int i = 0; i < SLO_RULES_ALERTS; i++) {
            assert_true(slo_rules_capped_factor(slo_rules_factor[i], a) * (1 - a) <= 1 + 1e-12);
        }
    }
    char *y = NULL;
    size_t n = 0;
    assert_int_equal(slo_rules_yaml("orchestrator-dynamic", 0.999, &y, &n), 0);
    assert_int_equal(strlen(y), n);
    assert_non_null(strstr(y, "record: slo:sli_error:ratio_rate5m"));
    assert_non_null(strstr(y, "record: slo:sli_error:ratio_rate3d"));
    assert_non_null(strstr(y, "job=\"orchestrator-dynamic\""));
    /* 14.4 x 0.001 on 1h and 5m; 1 x 0.001 on 3d and 6h. */
    assert_non_null(strstr(y, "ratio_rate1h{slo_service=\"orchestrator-dynamic\"} > 0.0144 and"));
    assert_non_null(strstr(y, "ratio_rate6h{slo_service=\"orchestrator-dynamic\"} > 0.001'"));
    free(y);
    assert_int_equal(slo_rules_yaml("bad name", 0.999, &y, NULL), -1);
    assert_int_equal(slo_rules_yaml("svc", 1.0, &y, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),        cmocka_unit_test(test_latency_clamp),
        cmocka_unit_test(test_ranges_clamp), cmocka_unit_test(test_clamp_refuses_nonfinite),
        cmocka_unit_test(test_validate),     cmocka_unit_test(test_clamp_then_validate_property),
        cmocka_unit_test(test_budget),       cmocka_unit_test(test_policy_limit),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
