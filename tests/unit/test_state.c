/* Unit tests for state.h (insight -> state) and learn_action.h (catalogue). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "learn_action.h"
#include "state.h"

#define EXPECT_NEAR(actual, expected, tol)                                                                   \
    do {                                                                                                     \
        double a_ = (actual), e_ = (expected);                                                               \
        if (!(fabs(a_ - e_) <= (tol))) {                                                                     \
            fail_msg("%s: expected %.17g (+-%g), got %.17g", #actual, e_, (double)(tol), a_);                \
        }                                                                                                    \
    } while (0)

static unsigned severity_of(problem_kind_t kind, double current, double baseline)
{
    return state_severity_bucket(NULL, state_deviation(kind, current, baseline), PRIORITY_LOW);
}

static void test_key_format(void **unused)
{
    (void)unused;
    state_t s;
    assert_int_equal(state_make("orchestrator", PROBLEM_LATENCY, 2, 1, &s), 0);
    assert_string_equal(s.key, "orchestrator|LATENCY|sev2|load1");
    assert_int_equal(state_make("consensus-engine", PROBLEM_CONSENSUS_ACCURACY, 0, 2, &s), 0);
    assert_string_equal(s.key, "consensus-engine|CONSENSUS_ACCURACY|sev0|load2");
}

static void test_make_rejects_bad_parts(void **unused)
{
    (void)unused;
    state_t s;
    memset(&s, 0x5a, sizeof(s));
    char longname[STATE_COMPONENT_MAX + 1];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(state_make("", PROBLEM_LATENCY, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make(NULL, PROBLEM_LATENCY, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make("a|b", PROBLEM_LATENCY, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make("tab\there", PROBLEM_LATENCY, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make(longname, PROBLEM_LATENCY, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make("x", PROBLEM_COUNT, 0, 0, &s), -EINVAL);
    assert_int_equal(state_make("x", PROBLEM_LATENCY, STATE_SEVERITY_BUCKETS, 0, &s), -EINVAL);
    assert_int_equal(state_make("x", PROBLEM_LATENCY, 0, STATE_LOAD_BUCKETS, &s), -EINVAL);
    /* Out untouched on failure. */
    assert_int_equal((unsigned char)s.key[0], 0x5a);
    /* The longest allowed name works. */
    longname[STATE_COMPONENT_MAX - 1] = '\0';
    assert_int_equal(state_make(longname, PROBLEM_CONSENSUS_ACCURACY, 3, 2, &s), 0);
    assert_int_equal(strlen(s.key), STATE_COMPONENT_MAX - 1 + strlen("|CONSENSUS_ACCURACY|sev3|load2"));
}

/* Boundaries 0.05, 0.20, 0.50 belong to the upper bucket, in both directions. */
static void test_severity_boundaries(void **unused)
{
    (void)unused;
    assert_int_equal(severity_of(PROBLEM_LATENCY, 100.0, 100.0), 0);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 104.99, 100.0), 0);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 105.0, 100.0), 1);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 95.0, 100.0), 1);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 119.99, 100.0), 1);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 120.0, 100.0), 2);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 149.99, 100.0), 2);
    assert_int_equal(severity_of(PROBLEM_LATENCY, 150.0, 100.0), 3);
    assert_int_equal(severity_of(PROBLEM_ERROR_RATE, 0.05, 0.01), 3);
    assert_int_equal(severity_of(PROBLEM_CONSENSUS_ACCURACY, 0.85, 0.90), 1);
}

/* Availability and SLO compliance compare shortfalls: 99.9% -> 99% is 10x. */
static void test_severity_of_nines(void **unused)
{
    (void)unused;
    EXPECT_NEAR(state_deviation(PROBLEM_AVAILABILITY, 0.99, 0.999), 9.0, 1e-9);
    assert_int_equal(severity_of(PROBLEM_AVAILABILITY, 0.99, 0.999), 3);
    assert_int_equal(severity_of(PROBLEM_AVAILABILITY, 0.9989, 0.999), 1);
    assert_int_equal(severity_of(PROBLEM_SLO_COMPLIANCE, 0.998, 0.999), 3);
    assert_int_equal(severity_of(PROBLEM_SLO_COMPLIANCE, 0.9987, 0.999), 2);
    assert_int_equal(severity_of(PROBLEM_SLO_COMPLIANCE, 0.99899, 0.999), 0);
}

/* An undefined deviation falls back to the insight's priority. */
static void test_severity_falls_back_to_priority(void **unused)
{
    (void)unused;
    assert_true(isnan(state_deviation(PROBLEM_ERROR_RATE, 0.02, 0.0)));
    assert_true(isnan(state_deviation(PROBLEM_AVAILABILITY, 0.99, 1.0)));
    assert_true(isnan(state_deviation(PROBLEM_LATENCY, NAN, 100.0)));
    assert_int_equal(state_severity_bucket(NULL, NAN, PRIORITY_LOW), 0);
    assert_int_equal(state_severity_bucket(NULL, NAN, PRIORITY_MEDIUM), 1);
    assert_int_equal(state_severity_bucket(NULL, NAN, PRIORITY_HIGH), 2);
    assert_int_equal(state_severity_bucket(NULL, NAN, PRIORITY_CRITICAL), 3);
}

static void test_load_boundaries(void **unused)
{
    (void)unused;
    assert_int_equal(state_load_bucket(NULL, 0.0), 0);
    assert_int_equal(state_load_bucket(NULL, 1.49), 0);
    assert_int_equal(state_load_bucket(NULL, 1.5), 1);
    assert_int_equal(state_load_bucket(NULL, 2.99), 1);
    assert_int_equal(state_load_bucket(NULL, 3.0), 2);
    state_config_t cfg;
    state_config_default(&cfg);
    cfg.load_bounds[0] = 1000.0;
    cfg.load_bounds[1] = 5000.0;
    assert_int_equal(state_load_bucket(&cfg, 999.0), 0);
    assert_int_equal(state_load_bucket(&cfg, 1000.0), 1);
    assert_int_equal(state_load_bucket(&cfg, 5000.0), 2);
}

/* Load against the component's own baseline: the mean of its previous windows. */
static void test_load_ratio(void **unused)
{
    (void)unused;
    const double hist[] = {100.0, 120.0, 80.0, 100.0};
    assert_true(fabs(state_load_ratio(250.0, hist, 4) - 2.5) < 1e-12);
    assert_true(fabs(state_load_ratio(50.0, hist, 4) - 0.5) < 1e-12);
    assert_int_equal(state_load_bucket(NULL, state_load_ratio(250.0, hist, 4)), 1);
    assert_int_equal(state_load_bucket(NULL, state_load_ratio(400.0, hist, 4)), 2);
    assert_int_equal(state_load_bucket(NULL, state_load_ratio(100.0, hist, 4)), 0);
    /* A busy component at its usual rate is not loaded; a quiet one at 3x is. */
    const double busy[] = {5000.0, 5000.0, 5000.0}, quiet[] = {2.0, 2.0, 2.0};
    assert_int_equal(state_load_bucket(NULL, state_load_ratio(5000.0, busy, 3)), 0);
    assert_int_equal(state_load_bucket(NULL, state_load_ratio(6.0, quiet, 3)), 2);
    /* Unknown: too little history, a zero baseline, bad values. */
    assert_true(state_load_ratio(250.0, hist, STATE_LOAD_MIN_HISTORY - 1) == 0.0);
    assert_true(state_load_ratio(250.0, NULL, 4) == 0.0);
    const double zero[] = {0.0, 0.0, 0.0}, bad[] = {1.0, NAN, 1.0};
    assert_true(state_load_ratio(250.0, zero, 3) == 0.0);
    assert_true(state_load_ratio(250.0, bad, 3) == 0.0);
    assert_true(state_load_ratio(-1.0, hist, 4) == 0.0);
}

static void test_extract(void **unused)
{
    (void)unused;
    state_insight_t in = {.component = "orchestrator",
                          .problem = PROBLEM_LATENCY,
                          .priority = PRIORITY_HIGH,
                          .current_value = 1300.0,
                          .baseline_value = 1000.0,
                          .load = 2.0};
    state_t s;
    assert_int_equal(state_extract(NULL, &in, &s), 0);
    assert_string_equal(s.component, "orchestrator");
    assert_int_equal(s.problem, PROBLEM_LATENCY);
    assert_int_equal(s.severity, 2);
    assert_int_equal(s.load, 1);
    assert_string_equal(s.key, "orchestrator|LATENCY|sev2|load1");

    in.load = -1.0;
    assert_int_equal(state_extract(NULL, &in, &s), -EINVAL);
    in.load = NAN;
    assert_int_equal(state_extract(NULL, &in, &s), -EINVAL);
    in.load = 0.0;
    in.priority = PRIORITY_COUNT;
    assert_int_equal(state_extract(NULL, &in, &s), -EINVAL);
}

static void test_features(void **unused)
{
    (void)unused;
    state_t s;
    double x[STATE_FEATURES];
    assert_int_equal(state_make("c", PROBLEM_AVAILABILITY, 3, 1, &s), 0);
    state_features(&s, x);
    for (int i = 0; i < PROBLEM_COUNT; i++) {
        EXPECT_NEAR(x[i], i == PROBLEM_AVAILABILITY ? 1.0 : 0.0, 0.0);
    }
    EXPECT_NEAR(x[PROBLEM_COUNT], 1.0, 0.0);     /* severity 3 / 3 */
    EXPECT_NEAR(x[PROBLEM_COUNT + 1], 0.5, 0.0); /* load 1 / 2 */
    EXPECT_NEAR(x[PROBLEM_COUNT + 2], 1.0, 0.0); /* bias */
}

static void test_names_round_trip(void **unused)
{
    (void)unused;
    for (int i = 0; i < PROBLEM_COUNT; i++) {
        problem_kind_t k = PROBLEM_COUNT;
        assert_int_equal(state_problem_parse(state_problem_name((problem_kind_t)i), &k), 0);
        assert_int_equal(k, i);
    }
    problem_kind_t k;
    assert_int_equal(state_problem_parse("latency", &k), -EINVAL);
    priority_t p;
    assert_int_equal(state_priority_parse("CRITICAL", &p), 0);
    assert_int_equal(p, PRIORITY_CRITICAL);
    assert_int_equal(state_priority_parse("URGENT", &p), -EINVAL);
}

/* Ids are indexes, names are unique, persistable and findable, parameters
 * stay within the seed's bounds. */
static void test_catalogue_is_consistent(void **unused)
{
    (void)unused;
    unsigned per_type[5] = {0};
    for (uint16_t i = 0; i < ACTION_COUNT; i++) {
        const learn_action_t *a = learn_action_get(i);
        assert_non_null(a);
        assert_int_equal(a->id, i);
        for (const char *c = a->name; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
                fail_msg("action name %s: expected only [a-z0-9_], found '%c'", a->name, *c);
            }
        }
        uint16_t id = ACTION_COUNT;
        assert_int_equal(learn_action_find(a->name, &id), 0);
        assert_int_equal(id, i);
        if (!(a->risk >= 0.0 && a->risk <= 1.0)) {
            fail_msg("%s: expected risk in [0, 1], got %g", a->name, a->risk);
        }
        if (a->type == ACTION_WEIGHT_RECALIBRATION && !(fabs(a->param.weight.delta) <= 0.2)) {
            fail_msg("%s: expected |delta| <= 0.2 (MAX_WEIGHT_ADJUSTMENT), got %g", a->name,
                     a->param.weight.delta);
        }
        if (a->type == ACTION_SLO_ADJUSTMENT && !(fabs(a->param.slo.relative_change) <= 0.3)) {
            fail_msg("%s: expected |change| <= 0.3, got %g", a->name, a->param.slo.relative_change);
        }
        per_type[a->type]++;
    }
    assert_null(learn_action_get(ACTION_COUNT));
    assert_int_equal(learn_action_get(ACTION_NOOP_ID)->type, ACTION_NO_OP);
    assert_int_equal(per_type[ACTION_NO_OP], 1);
    assert_int_equal(per_type[ACTION_WEIGHT_RECALIBRATION], 20);
    assert_true(per_type[ACTION_SLO_ADJUSTMENT] > 0);
    assert_true(per_type[ACTION_HEURISTIC_UPDATE] > 0);
    assert_true(per_type[ACTION_POLICY_CHANGE] > 0);
    uint16_t id;
    assert_int_equal(learn_action_find("weight_safety_sideways", &id), -ENOENT);
    /* Lowering the safety weight is riskier than raising it. */
    uint16_t up, down;
    assert_int_equal(learn_action_find("weight_safety_up_10", &up), 0);
    assert_int_equal(learn_action_find("weight_safety_down_10", &down), 0);
    if (!(learn_action_get(down)->risk > 0.5 && learn_action_get(up)->risk < learn_action_get(down)->risk)) {
        fail_msg("expected safety down (%g) > 0.5 and > safety up (%g)", learn_action_get(down)->risk,
                 learn_action_get(up)->risk);
    }
}

static int contains(const uint16_t *ids, size_t n, const char *name)
{
    uint16_t id;
    if (learn_action_find(name, &id) < 0) {
        fail_msg("no action named %s", name);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

static size_t count_type(const uint16_t *ids, size_t n, action_type_t type)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += learn_action_get(ids[i])->type == type;
    }
    return c;
}

static void test_applicable_actions(void **unused)
{
    (void)unused;
    state_t s;
    uint16_t ids[ACTION_COUNT];
    size_t n;

    assert_int_equal(state_make("orchestrator", PROBLEM_LATENCY, 1, 0, &s), 0);
    n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
    assert_int_equal(ids[0], ACTION_NOOP_ID);
    assert_int_equal(count_type(ids, n, ACTION_WEIGHT_RECALIBRATION), 0);
    assert_true(contains(ids, n, "slo_latency_relax_10"));
    assert_false(contains(ids, n, "slo_availability_relax_10"));
    assert_true(contains(ids, n, "heuristic_timeout_multiplier_up"));
    assert_false(contains(ids, n, "policy_load_shedding_on")); /* load0 */
    assert_true(contains(ids, n, "policy_load_shedding_off"));

    assert_int_equal(state_make("orchestrator", PROBLEM_LATENCY, 1, 2, &s), 0);
    n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
    assert_true(contains(ids, n, "policy_load_shedding_on"));
    assert_false(contains(ids, n, "policy_load_shedding_off")); /* load2 */

    assert_int_equal(state_make("consensus-engine", PROBLEM_CONSENSUS_ACCURACY, 1, 0, &s), 0);
    n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
    assert_int_equal(count_type(ids, n, ACTION_SLO_ADJUSTMENT), 0);
    assert_int_equal(count_type(ids, n, ACTION_WEIGHT_RECALIBRATION), 18); /* safety down needs sev2 */
    assert_false(contains(ids, n, "weight_safety_down_5"));
    assert_int_equal(state_make("consensus-engine", PROBLEM_CONSENSUS_ACCURACY, 2, 0, &s), 0);
    n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
    assert_int_equal(count_type(ids, n, ACTION_WEIGHT_RECALIBRATION), 20);
    /* A smaller MAX_WEIGHT_ADJUSTMENT leaves the 0.10 moves out. */
    n = learn_action_applicable(&s, 0.05, ids, ACTION_COUNT);
    assert_int_equal(count_type(ids, n, ACTION_WEIGHT_RECALIBRATION), 10);
    assert_false(contains(ids, n, "weight_technical_up_10"));

    assert_int_equal(state_make("analyst", PROBLEM_OTHER, 3, 2, &s), 0);
    n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
    assert_int_equal(
        count_type(ids, n, ACTION_SLO_ADJUSTMENT) + count_type(ids, n, ACTION_WEIGHT_RECALIBRATION), 0);
    assert_int_equal(count_type(ids, n, ACTION_HEURISTIC_UPDATE), n - 1);

    /* Every problem has NO_OP plus at least one real action; a small cap truncates. */
    for (int k = 0; k < PROBLEM_COUNT; k++) {
        assert_int_equal(state_make("c", (problem_kind_t)k, 0, 0, &s), 0);
        n = learn_action_applicable(&s, 0.2, ids, ACTION_COUNT);
        if (n < 2) {
            fail_msg("%s: expected NO_OP and at least one action, got %zu", s.key, n);
        }
    }
    assert_int_equal(learn_action_applicable(&s, 0.2, ids, 1), 1);
}

/* Issue 15 item 3: the state after an experiment, from the stored degraded
 * window, is the one an insight about that window gets. */
static void test_state_from_observation(void **state)
{
    (void)state;
    state_t s, from_insight;
    /* latency 1300 ms against 1000: severity 0.3 -> sev2 (0.20 .. 0.50). */
    assert_int_equal(
        state_from_observation(NULL, "orchestrator", "latency_p95_ms", 0.3, PRIORITY_HIGH, 0, &s), 0);
    assert_string_equal(s.key, "orchestrator|LATENCY|sev2|load0");
    state_insight_t in = {.component = "orchestrator",
                          .problem = PROBLEM_LATENCY,
                          .priority = PRIORITY_HIGH,
                          .current_value = 1300,
                          .baseline_value = 1000};
    assert_int_equal(state_extract(NULL, &in, &from_insight), 0);
    assert_string_equal(s.key, from_insight.key);
    /* No severity stored: from the priority. */
    assert_int_equal(
        state_from_observation(NULL, "orchestrator", "error_rate", NAN, PRIORITY_CRITICAL, 0, &s), 0);
    assert_string_equal(s.key, "orchestrator|ERROR_RATE|sev3|load0");
    assert_int_equal(state_from_observation(NULL, "a|b", "error_rate", 0.3, PRIORITY_HIGH, 0, &s), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_make_rejects_bad_parts),
        cmocka_unit_test(test_severity_boundaries),
        cmocka_unit_test(test_severity_of_nines),
        cmocka_unit_test(test_severity_falls_back_to_priority),
        cmocka_unit_test(test_load_boundaries),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_catalogue_is_consistent),
        cmocka_unit_test(test_applicable_actions),
        cmocka_unit_test(test_state_from_observation),
        cmocka_unit_test(test_load_ratio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
