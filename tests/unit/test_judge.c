/* Tests of experiment-manager/judge.c: the rules of one look. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hive_err.h"
#include "judge.h"

#define MIN_MS 60000LL

static judge_conf_t conf(void)
{
    judge_conf_t c;
    judge_conf_default(&c);
    c.step_min_ms = 10 * MIN_MS;
    c.min_samples = 5;
    c.max_empty = 3;
    return c;
}

/* An A/B test on latency_p95_ms: success when latency falls by 5 %,
 * abort when the candidate's error rate goes above 5 %. */
static judge_def_t def_of(judge_type_t type)
{
    judge_def_t d = {.type = type, .split = 0.1, .duration_ms = 120 * MIN_MS};
    d.criteria[0] = (judge_criterion_t){"relative_improvement", JUDGE_GE, 0.05};
    d.criteria[1] = (judge_criterion_t){"latency_p95_ms", JUDGE_LT, 0.0};
    d.ncriteria = 2;
    d.guardrails[0] = (judge_criterion_t){"error_rate", JUDGE_GT, 0.05};
    d.nguardrails = 1;
    return d;
}

/* n windows of a variant: latency around `lat` (deterministic spread), errors. */
static judge_obs_t obs(double n, double lat, double requests, double errors)
{
    judge_obs_t o = {.windows = n, .requests = requests, .errors = errors, .nm = 1};
    snprintf(o.names[0], sizeof(o.names[0]), "latency_p95_ms");
    o.m[0] = (stats_sample_t){n, lat, 25.0};
    return o;
}

static double lcg(void *rng)
{
    uint64_t *s = rng;
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((*s >> 11) + 0.5) / 9007199254740992.0;
}

static void test_setup_splits_then_better_candidate_accepted(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_AB);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 1000, NULL, NULL, &out);
    assert_true(out.assign && !out.finished);
    assert_true(fabs(out.fraction - 0.1) < 1e-12);
    assert_string_equal(out.rule, "setup");

    /* Too few windows: no test yet. */
    b = obs(3, 200, 27000, 30);
    k = obs(3, 150, 3000, 3);
    judge_look(&c, &d, &st, &b, &k, false, 2 * MIN_MS, NULL, NULL, &out);
    assert_false(out.finished);
    assert_false(out.an.tested);

    /* 200 -> 150 ms over 20 windows each: significant, criteria hold. */
    b = obs(20, 200, 180000, 200);
    k = obs(20, 150, 20000, 22);
    judge_look(&c, &d, &st, &b, &k, false, 3 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished);
    assert_int_equal(out.status, JUDGE_COMPLETED);
    assert_int_equal(out.decision, JUDGE_ACCEPT);
    assert_true(fabs(out.an.improvement - 0.25) < 1e-12);
    assert_true(out.an.avp < 0.05 && out.an.test.p_value < 0.05);
    assert_true(out.assign && out.fraction == 0); /* cleanup: back to the baseline */
    assert_int_equal(st.phase, JUDGE_DONE);
}

static void test_guardrail_aborts_naming_it(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_AB);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 1000, NULL, NULL, &out);
    b = obs(2, 200, 18000, 18);
    k = obs(2, 190, 2000, 240); /* 12 % errors */
    judge_look(&c, &d, &st, &b, &k, false, 2 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished && out.assign && out.fraction == 0);
    assert_int_equal(out.status, JUDGE_ABORTED);
    assert_int_equal(out.decision, JUDGE_REJECT);
    assert_string_equal(out.rule, "guardrail");
    assert_int_equal(out.nviolations, 1);
    assert_non_null(strstr(out.violations[0], "error_rate GT 0.05 (observed 0.12)"));
    assert_non_null(strstr(out.reason, "guardrail"));
}

static void test_no_data_is_not_a_pass(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_AB);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 1000, NULL, NULL, &out);
    for (int i = 1; i <= 2; i++) {
        judge_look(&c, &d, &st, &b, &k, false, 1000 + i * MIN_MS, NULL, NULL, &out);
        assert_true(out.no_data && !out.finished);
    }
    judge_look(&c, &d, &st, &b, &k, false, 1000 + 3 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished);
    assert_int_equal(out.status, JUDGE_FAILED);
    assert_int_equal(out.decision, JUDGE_INCONCLUSIVE);
    assert_string_equal(out.rule, "no_data");

    /* Configured to pause instead: paused, then running again with data. */
    c.fail_on_no_data = false;
    judge_state_init(&st);
    judge_look(&c, &d, &st, &b, &k, false, 1000, NULL, NULL, &out);
    for (int i = 1; i <= 3; i++) {
        judge_look(&c, &d, &st, &b, &k, false, 1000 + i * MIN_MS, NULL, NULL, &out);
    }
    assert_int_equal(st.phase, JUDGE_PAUSED);
    b = obs(1, 200, 900, 1);
    judge_look(&c, &d, &st, &b, &k, false, 1000 + 4 * MIN_MS, NULL, NULL, &out);
    assert_int_equal(st.phase, JUDGE_RUNNING);
}

static void test_srm_invalidates(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_AB);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 1000, NULL, NULL, &out);
    b = obs(20, 200, 50000, 50); /* 50/50 traffic against a 90/10 split */
    k = obs(20, 150, 50000, 50);
    judge_look(&c, &d, &st, &b, &k, false, 2 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished);
    assert_int_equal(out.status, JUDGE_FAILED);
    assert_string_equal(out.rule, "srm");
    assert_true(out.an.srm_p >= 0 && out.an.srm_p < 0.001);
}

static void test_canary_walks_steps_then_promotes(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_CANARY);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 0, NULL, NULL, &out);
    assert_true(fabs(out.fraction - 0.10) < 1e-12);
    /* Minimum time not reached: stays at 10 %. */
    b = obs(10, 200, 9000, 9);
    k = obs(10, 150, 1000, 1);
    judge_look(&c, &d, &st, &b, &k, false, 5 * MIN_MS, NULL, NULL, &out);
    assert_false(out.assign);
    /* Time and sample reached: 25 %, then 50 %. */
    b = obs(20, 200, 18000, 18);
    k = obs(20, 150, 2000, 2);
    judge_look(&c, &d, &st, &b, &k, false, 11 * MIN_MS, NULL, NULL, &out);
    assert_true(out.assign && fabs(out.fraction - 0.25) < 1e-12);
    b = obs(30, 200, 27000, 27);
    k = obs(30, 150, 3000, 3);
    judge_look(&c, &d, &st, &b, &k, false, 22 * MIN_MS, NULL, NULL, &out);
    assert_true(out.assign && fabs(out.fraction - 0.50) < 1e-12);
    /* The step before 100 % needs an accepted analysis: promoted. */
    b = obs(40, 200, 36000, 36);
    k = obs(40, 150, 4000, 4);
    judge_look(&c, &d, &st, &b, &k, false, 33 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished && out.final_on_candidate);
    assert_int_equal(out.decision, JUDGE_ACCEPT);
    assert_true(out.fraction == 1.0);
}

static void test_canary_rolls_back_when_worse(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_CANARY);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 0, NULL, NULL, &out);
    b = obs(20, 150, 18000, 18);
    k = obs(20, 200, 2000, 2);
    judge_look(&c, &d, &st, &b, &k, false, 11 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished && out.assign && out.fraction == 0 && !out.final_on_candidate);
    assert_int_equal(out.status, JUDGE_ABORTED);
    assert_int_equal(out.decision, JUDGE_REJECT);
}

static void test_duration_ends_inconclusive_and_abort(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_AB);
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 0, NULL, NULL, &out);
    b = obs(20, 200, 18000, 18); /* equal means */
    k = obs(20, 200, 2000, 2);
    judge_look(&c, &d, &st, &b, &k, false, 121 * MIN_MS, NULL, NULL, &out);
    assert_true(out.finished);
    assert_int_equal(out.decision, JUDGE_INCONCLUSIVE);
    assert_string_equal(out.rule, "duration");

    judge_state_init(&st);
    judge_look(&c, &d, &st, &b, &k, false, 0, NULL, NULL, &out);
    judge_look(&c, &d, &st, &b, &k, true, MIN_MS, NULL, NULL, &out);
    assert_int_equal(out.status, JUDGE_ABORTED);
    assert_string_equal(out.rule, "operator");
    /* A finished experiment does nothing more. */
    judge_look(&c, &d, &st, &b, &k, false, 2 * MIN_MS, NULL, NULL, &out);
    assert_false(out.finished || out.assign);
}

static void test_bandit_reallocates_with_floor(void **state)
{
    (void)state;
    judge_conf_t c = conf();
    judge_def_t d = def_of(JUDGE_BANDIT);
    d.ncriteria = 1;
    snprintf(d.criteria[0].metric, sizeof(d.criteria[0].metric), "latency_p95_ms");
    d.criteria[0].op = JUDGE_LT;
    judge_state_t st;
    judge_state_init(&st);
    judge_outcome_t out;
    uint64_t rng = 42;
    judge_obs_t b = obs(0, 0, 0, 0), k = obs(0, 0, 0, 0);
    judge_look(&c, &d, &st, &b, &k, false, 0, lcg, &rng, &out);
    /* Before the minimum sample: no re-allocation. */
    b = obs(3, 200, 2700, 3);
    k = obs(3, 198, 300, 0);
    judge_look(&c, &d, &st, &b, &k, false, MIN_MS, lcg, &rng, &out);
    assert_false(out.assign);
    /* A slightly better candidate (not yet significant) gets more traffic,
     * never more than 1 - floor. */
    c.alpha = 1e-12;
    b = obs(6, 200, 5400, 5);
    k = obs(6, 197, 600, 0);
    judge_look(&c, &d, &st, &b, &k, false, 2 * MIN_MS, lcg, &rng, &out);
    assert_true(out.assign && !out.finished);
    assert_true(out.fraction > 0.5 && out.fraction <= 0.95);
    /* Thompson alone: identical arms split evenly; a far better arm gets 1 - floor. */
    stats_sample_t x = {50, 100, 1}, y = {50, 50, 1};
    double f = judge_thompson(&x, &x, true, 0.05, 4000, lcg, &rng);
    assert_true(fabs(f - 0.5) < 0.05);
    assert_true(fabs(judge_thompson(&x, &y, true, 0.05, 4000, lcg, &rng) - 0.95) < 1e-12);
}

/* Thompson over k arms: a clearly best arm takes 1 - (k - 1) floor, every
 * other arm keeps its floor; equal arms split evenly; two arms agree with
 * judge_thompson draw for draw; bad arguments are refused. */
static void test_thompson_k_arms(void **state)
{
    (void)state;
    const stats_sample_t arms[] = {{100, 10, 4}, {100, 10.1, 4}, {100, 12, 4}, {100, 7, 4}};
    double sh[4], sum = 0;
    uint64_t rng = 7;
    assert_int_equal(judge_thompson_k(arms, 4, false, 0.05, 4000, lcg, &rng, sh), 0);
    for (size_t i = 0; i < 4; i++) {
        sum += sh[i];
        assert_true(sh[i] >= 0.05 - 1e-12);
    }
    assert_true(fabs(sum - 1) < 1e-12);
    assert_true(fabs(sh[2] - 0.85) < 1e-12); /* higher is better: arm 2 wins every draw */
    assert_true(fabs(sh[3] - 0.05) < 1e-12);
    assert_int_equal(judge_thompson_k(arms, 4, true, 0.1, 4000, lcg, &rng, sh), 0);
    assert_true(fabs(sh[3] - 0.7) < 1e-12); /* lower is better: arm 3 wins every draw */
    assert_true(fabs(sh[2] - 0.1) < 1e-12);

    const stats_sample_t same[] = {{40, 5, 1}, {40, 5, 1}, {40, 5, 1}};
    assert_int_equal(judge_thompson_k(same, 3, false, 0.0, 30000, lcg, &rng, sh), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_true(fabs(sh[i] - 1.0 / 3.0) < 0.02);
    }

    const stats_sample_t two[] = {{30, 10, 9}, {30, 10.5, 9}};
    uint64_t r1 = 99, r2 = 99;
    double f = judge_thompson(&two[0], &two[1], false, 0.05, 3000, lcg, &r1);
    assert_int_equal(judge_thompson_k(two, 2, false, 0.05, 3000, lcg, &r2, sh), 0);
    assert_true(fabs(sh[1] - f) < 1e-12);
    assert_true(fabs(sh[0] + sh[1] - 1) < 1e-12);

    assert_int_equal(judge_thompson_k(arms, 1, false, 0.05, 100, lcg, &rng, sh), HIVE_EINVAL);
    assert_int_equal(judge_thompson_k(arms, 4, false, 0.3, 100, lcg, &rng, sh), HIVE_EINVAL);
    assert_int_equal(judge_thompson_k(arms, 4, false, 0.05, 0, lcg, &rng, sh), HIVE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_splits_then_better_candidate_accepted),
        cmocka_unit_test(test_thompson_k_arms),
        cmocka_unit_test(test_guardrail_aborts_naming_it),
        cmocka_unit_test(test_no_data_is_not_a_pass),
        cmocka_unit_test(test_srm_invalidates),
        cmocka_unit_test(test_canary_walks_steps_then_promotes),
        cmocka_unit_test(test_canary_rolls_back_when_worse),
        cmocka_unit_test(test_duration_ends_inconclusive_and_abort),
        cmocka_unit_test(test_bandit_reallocates_with_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
