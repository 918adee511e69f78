/* Unit tests for qlearn.h, learn_table.h, learn_reward.h and the
 * Q-learning side of learn_policy.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learn_policy.h"
#include "learn_reward.h"
#include "qlearn.h"

#define EXPECT_NEAR(actual, expected, tol)                                                                   \
    do {                                                                                                     \
        double a_ = (actual), e_ = (expected);                                                               \
        if (!(fabs(a_ - e_) <= (tol))) {                                                                     \
            fail_msg("%s: expected %.17g (+-%g), got %.17g", #actual, e_, (double)(tol), a_);                \
        }                                                                                                    \
    } while (0)

static state_t make_state(const char *component, problem_kind_t kind, unsigned sev, unsigned load)
{
    state_t s;
    assert_int_equal(state_make(component, kind, sev, load, &s), 0);
    return s;
}

static qlearn_t *make_learner(double eps_start, double eps_min, double decay)
{
    qlearn_config_t cfg;
    qlearn_config_default(&cfg);
    cfg.epsilon_start = eps_start;
    cfg.epsilon_min = eps_min;
    cfg.epsilon_decay = decay;
    qlearn_t *q = qlearn_create(&cfg);
    assert_non_null(q);
    return q;
}

static void test_seed_defaults(void **unused)
{
    (void)unused;
    qlearn_config_t cfg;
    qlearn_config_default(&cfg);
    EXPECT_NEAR(cfg.learning_rate, 0.01, 0.0);
    EXPECT_NEAR(cfg.discount_factor, 0.95, 0.0);
    EXPECT_NEAR(cfg.epsilon_start, 0.1, 0.0); /* seed 000: EXPLORATION_RATE=0.1 */
    EXPECT_NEAR(cfg.epsilon_min, 0.01, 0.0);
    learn_reward_config_t r;
    learn_reward_config_default(&r);
    EXPECT_NEAR(r.min_improvement, 0.05, 0.0);
    assert_null(qlearn_config_check(&cfg));

    cfg.learning_rate = 0.0;
    assert_non_null(strstr(qlearn_config_check(&cfg), "learning_rate"));
    assert_null(qlearn_create(&cfg));
    qlearn_config_default(&cfg);
    cfg.epsilon_min = 0.5; /* above the start */
    assert_non_null(strstr(qlearn_config_check(&cfg), "epsilon_min"));
    qlearn_config_default(&cfg);
    cfg.discount_factor = 1.5;
    assert_non_null(strstr(qlearn_config_check(&cfg), "discount_factor"));
}

/* Q(s,a) += 0.01 * [r + 0.95 * max Q(s',.) - Q(s,a)], worked by hand. */
static void test_update_arithmetic(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.01, 0.999);
    state_t s = make_state("orchestrator", PROBLEM_LATENCY, 2, 1);
    state_t s2 = make_state("orchestrator", PROBLEM_LATENCY, 0, 1);
    double out;

    /* Terminal: 0 + 0.01 * (1 - 0) = 0.01, then 0.01 + 0.01 * (1 - 0.01) = 0.0199. */
    assert_int_equal(qlearn_update(q, &s, 21, 1.0, NULL, NULL, 0, &out), 0);
    EXPECT_NEAR(out, 0.01, 1e-15);
    assert_int_equal(qlearn_update(q, &s, 21, 1.0, NULL, NULL, 0, &out), 0);
    EXPECT_NEAR(out, 0.0199, 1e-15);

    /* Bootstrap: Q(s2, 29) = 0.5, Q(s2, 30) = -0.2; target 0.1 + 0.95 * 0.5 = 0.575;
     * 0.0199 + 0.01 * (0.575 - 0.0199) = 0.025451. */
    assert_int_equal(qlearn_load(q, s2.key, "heuristic_timeout_multiplier_up", 0.5, 7), 0);
    assert_int_equal(qlearn_load(q, s2.key, "heuristic_timeout_multiplier_down", -0.2, 3), 0);
    const uint16_t next[] = {29, 30};
    assert_int_equal(qlearn_update(q, &s, 21, 0.1, &s2, next, 2, &out), 0);
    EXPECT_NEAR(out, 0.025451, 1e-15);
    EXPECT_NEAR(qlearn_q(q, &s, 21), 0.025451, 1e-15);
    assert_int_equal(qlearn_visits(q, &s, 21), 3);

    /* Unvisited next actions count as initial_q (0): max(-0.2, 0) = 0,
     * so Q(s, 22) = 0.01 * (-0.4 + 0) = -0.004. */
    const uint16_t next2[] = {30, 31};
    assert_int_equal(qlearn_update(q, &s, 22, -0.4, &s2, next2, 2, &out), 0);
    EXPECT_NEAR(out, -0.004, 1e-15);

    /* Bad input changes nothing. */
    assert_int_equal(qlearn_update(q, &s, ACTION_COUNT, 1.0, NULL, NULL, 0, NULL), -EINVAL);
    assert_int_equal(qlearn_update(q, &s, 21, NAN, NULL, NULL, 0, NULL), -EINVAL);
    assert_int_equal(qlearn_update(q, &s, 21, 1.0, &s2, NULL, 0, NULL), -EINVAL);
    EXPECT_NEAR(qlearn_q(q, &s, 21), 0.025451, 1e-15);
    assert_int_equal(qlearn_visits(q, &s, 21), 3);
    qlearn_destroy(q);
}

/* A larger alpha and gamma = 0 make the rule visible in one step. */
static void test_update_with_custom_rates(void **unused)
{
    (void)unused;
    qlearn_config_t cfg;
    qlearn_config_default(&cfg);
    cfg.learning_rate = 0.5;
    cfg.discount_factor = 0.0;
    cfg.initial_q = 0.2;
    qlearn_t *q = qlearn_create(&cfg);
    assert_non_null(q);
    state_t s = make_state("c", PROBLEM_ERROR_RATE, 1, 0);
    const uint16_t next[] = {27};
    double out;
    EXPECT_NEAR(qlearn_q(q, &s, 27), 0.2, 0.0);
    /* 0.2 + 0.5 * (1 + 0 * 0.2 - 0.2) = 0.6 */
    assert_int_equal(qlearn_update(q, &s, 27, 1.0, &s, next, 1, &out), 0);
    EXPECT_NEAR(out, 0.6, 1e-15);
    qlearn_destroy(q);
}

static void test_epsilon_decay_and_floor(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.01, 0.5);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t actions[] = {20, 21, 29}; /* no NO_OP: every decision decays */
    learn_rng_t rng;
    learn_rng_seed(&rng, 7);
    const double expected[] = {0.3, 0.15, 0.075, 0.0375, 0.01875, 0.01, 0.01, 0.01};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        learn_decision_t d;
        assert_int_equal(qlearn_choose(q, &s, actions, 3, &rng, &d), 0);
        EXPECT_NEAR(d.epsilon, expected[i], 1e-15);
    }
    EXPECT_NEAR(qlearn_epsilon(q), 0.01, 0.0);
    assert_int_equal(qlearn_decisions(q), 8);
    qlearn_set_epsilon(q, 0.0001); /* a restore cannot go under the floor */
    EXPECT_NEAR(qlearn_epsilon(q), 0.01, 0.0);
    qlearn_set_epsilon(q, 0.2);
    EXPECT_NEAR(qlearn_epsilon(q), 0.2, 0.0);
    qlearn_destroy(q);

    /* The default schedule: 0.3 * 0.999^k, floored at 0.01. */
    q = make_learner(0.3, 0.01, 0.999);
    for (int k = 0; k < 5000; k++) {
        learn_decision_t d;
        assert_int_equal(qlearn_choose(q, &s, actions, 3, &rng, &d), 0);
        if (k == 1000) {
            EXPECT_NEAR(d.epsilon, 0.3 * pow(0.999, 1000), 1e-12);
        }
    }
    EXPECT_NEAR(qlearn_epsilon(q), 0.01, 0.0);
    qlearn_destroy(q);
}

/* With epsilon 0 the choice is the argmax, with propensity 1. */
static void test_greedy_picks_argmax(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.0, 0.0, 1.0);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    assert_int_equal(qlearn_load(q, s.key, "slo_latency_relax_10", 0.1, 5), 0);
    assert_int_equal(qlearn_load(q, s.key, "heuristic_retry_budget_down", 0.3, 5), 0);
    assert_int_equal(qlearn_load(q, s.key, "noop", -0.05, 5), 0);
    const uint16_t actions[] = {0, 21, 32, 29};
    learn_rng_t rng;
    learn_rng_seed(&rng, 11);
    for (int i = 0; i < 200; i++) {
        learn_decision_t d;
        assert_int_equal(qlearn_choose(q, &s, actions, 4, &rng, &d), 0);
        assert_string_equal(d.action_name, "heuristic_retry_budget_down");
        EXPECT_NEAR(d.propensity, 1.0, 0.0);
        EXPECT_NEAR(d.value, 0.3, 0.0);
        assert_int_equal(d.visits, 5);
        assert_false(d.explored);
    }
    qlearn_destroy(q);
}

/* Propensities sum to 1, split greedy ties, and match how often each action
 * is actually chosen. */
static void test_propensities_match_frequencies(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.3, 1.0); /* fixed epsilon 0.3 */
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    assert_int_equal(qlearn_load(q, s.key, "slo_latency_relax_10", 0.5, 1), 0);
    assert_int_equal(qlearn_load(q, s.key, "slo_latency_relax_20", 0.5, 1), 0);
    const uint16_t actions[] = {0, 21, 22, 29};
    double p[4];
    assert_int_equal(qlearn_probabilities(q, &s, actions, 4, p), 0);
    /* eps/4 = 0.075 for the others; 0.075 + 0.7/2 = 0.425 for the two tied greedy ones. */
    EXPECT_NEAR(p[0], 0.075, 1e-15);
    EXPECT_NEAR(p[1], 0.425, 1e-15);
    EXPECT_NEAR(p[2], 0.425, 1e-15);
    EXPECT_NEAR(p[3], 0.075, 1e-15);
    EXPECT_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 1e-15);

    learn_rng_t rng;
    learn_rng_seed(&rng, 2024);
    const int draws = 100000;
    int count[4] = {0};
    for (int i = 0; i < draws; i++) {
        learn_decision_t d;
        assert_int_equal(qlearn_choose(q, &s, actions, 4, &rng, &d), 0);
        size_t j = 0;
        while (actions[j] != d.action) {
            j++;
        }
        count[j]++;
        EXPECT_NEAR(d.propensity, p[j], 1e-15);
    }
    for (int j = 0; j < 4; j++) {
        /* 6 standard deviations of a binomial frequency at p = 0.425 is ~0.01. */
        EXPECT_NEAR((double)count[j] / draws, p[j], 0.01);
    }
    qlearn_destroy(q);
}

static void test_reward_formula(void **unused)
{
    (void)unused;
    /* Defaults: penalty 0.2, threshold 0.05. */
    EXPECT_NEAR(learn_reward_compute(NULL, 0.10, 0.3), 0.10 - 0.3 * 0.2, 1e-15);
    EXPECT_NEAR(learn_reward_compute(NULL, 0.05, 0.0), 0.05, 0.0);     /* at the threshold: counts */
    EXPECT_NEAR(learn_reward_compute(NULL, 0.0499, 0.0), 0.0, 0.0);    /* under: no improvement */
    EXPECT_NEAR(learn_reward_compute(NULL, 0.0499, 0.5), -0.1, 1e-15); /* ... but the risk still costs */
    EXPECT_NEAR(learn_reward_compute(NULL, -0.1, 0.5), -0.2, 1e-15);   /* regressions keep their sign */
    assert_true(learn_reward_is_success(NULL, 0.05));
    assert_false(learn_reward_is_success(NULL, 0.0499));

    learn_reward_config_t cfg = {.penalty_factor = 1.0, .min_improvement = 0.1};
    EXPECT_NEAR(learn_reward_compute(&cfg, 0.2, 0.15), 0.05, 1e-15);
    EXPECT_NEAR(learn_reward_compute(&cfg, 0.08, 0.15), -0.15, 1e-15);
    cfg.penalty_factor = -1.0;
    assert_non_null(strstr(learn_reward_config_check(&cfg), "penalty_factor"));
}

typedef struct {
    char key[STATE_KEY_MAX];
    char name[64];
    double value;
    uint64_t visits;
} saved_t;

/* What the shell does with MongoDB: iterate, store, load into a fresh learner. */
static void test_table_round_trip(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.01, 0.999);
    state_t a = make_state("orchestrator", PROBLEM_LATENCY, 2, 1);
    state_t b = make_state("consensus-engine", PROBLEM_CONSENSUS_ACCURACY, 1, 0);
    assert_int_equal(qlearn_update(q, &a, 21, 0.3, NULL, NULL, 0, NULL), 0);
    assert_int_equal(qlearn_update(q, &a, 21, 0.1, NULL, NULL, 0, NULL), 0);
    assert_int_equal(qlearn_update(q, &a, 35, -0.2, NULL, NULL, 0, NULL), 0);
    assert_int_equal(qlearn_update(q, &b, 5, 0.05, NULL, NULL, 0, NULL), 0);
    const learn_table_t *t = qlearn_table(q);
    assert_int_equal(learn_table_state_count(t), 2);
    assert_int_equal(learn_table_entry_count(t), 3);

    saved_t saved[8];
    size_t n = 0;
    learn_table_iter_t it;
    learn_table_entry_t e;
    learn_table_iter_init(&it, t);
    while (learn_table_iter_next(&it, &e)) {
        assert_true(n < 8);
        snprintf(saved[n].key, sizeof(saved[n].key), "%s", e.state_key);
        snprintf(saved[n].name, sizeof(saved[n].name), "%s", e.action_name);
        saved[n].value = e.value;
        saved[n].visits = e.visits;
        n++;
    }
    assert_int_equal(n, 3);
    /* Insertion order of states, id order of actions. */
    assert_string_equal(saved[0].key, a.key);
    assert_string_equal(saved[0].name, "slo_latency_relax_10");
    assert_int_equal(saved[0].visits, 2);
    assert_string_equal(saved[1].name, "policy_load_shedding_on");
    assert_string_equal(saved[2].key, b.key);
    assert_string_equal(saved[2].name, "weight_safety_up_5");

    qlearn_t *r = make_learner(0.3, 0.01, 0.999);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(qlearn_load(r, saved[i].key, saved[i].name, saved[i].value, saved[i].visits), 0);
    }
    for (uint16_t act = 0; act < ACTION_COUNT; act++) {
        EXPECT_NEAR(qlearn_q(r, &a, act), qlearn_q(q, &a, act), 0.0);
        EXPECT_NEAR(qlearn_q(r, &b, act), qlearn_q(q, &b, act), 0.0);
        assert_int_equal(qlearn_visits(r, &a, act), qlearn_visits(q, &a, act));
        assert_int_equal(qlearn_visits(r, &b, act), qlearn_visits(q, &b, act));
    }
    assert_int_equal(learn_table_entry_count(qlearn_table(r)), 3);

    /* A renamed or removed action is reported, not guessed. */
    assert_int_equal(qlearn_load(r, a.key, "slo_latency_relax_15", 0.1, 1), -ENOENT);
    assert_int_equal(qlearn_load(r, a.key, "noop", INFINITY, 1), -EINVAL);
    assert_int_equal(qlearn_load(r, "", "noop", 0.1, 1), -EINVAL);
    qlearn_destroy(q);
    qlearn_destroy(r);
}

/* Many states force the hash table to grow; nothing is lost. */
static void test_table_grows(void **unused)
{
    (void)unused;
    learn_table_t *t = learn_table_create(-1.0);
    assert_non_null(t);
    char key[STATE_KEY_MAX];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "svc%d|LATENCY|sev1|load0", i);
        assert_int_equal(learn_table_set(t, key, (uint16_t)(i % ACTION_COUNT), (double)i, (uint64_t)i), 0);
    }
    assert_int_equal(learn_table_state_count(t), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "svc%d|LATENCY|sev1|load0", i);
        EXPECT_NEAR(learn_table_value(t, key, (uint16_t)(i % ACTION_COUNT)), (double)i, 0.0);
        EXPECT_NEAR(learn_table_value(t, key, (uint16_t)((i + 1) % ACTION_COUNT)), -1.0, 0.0);
    }
    assert_null(learn_table_find(t, "absent"));
    learn_table_destroy(t);
    learn_table_destroy(NULL);
}

static void test_choose_rejects_bad_action_sets(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.01, 0.5);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    learn_rng_t rng;
    learn_rng_seed(&rng, 1);
    learn_decision_t d;
    const uint16_t dup[] = {21, 21};
    const uint16_t bad[] = {ACTION_COUNT};
    assert_int_equal(qlearn_choose(q, &s, dup, 2, &rng, &d), -EINVAL);
    assert_int_equal(qlearn_choose(q, &s, bad, 1, &rng, &d), -EINVAL);
    assert_int_equal(qlearn_choose(q, &s, dup, 0, &rng, &d), -EINVAL);
    EXPECT_NEAR(qlearn_epsilon(q), 0.3, 0.0); /* no decay for a refused decision */
    assert_int_equal(qlearn_decisions(q), 0);
    qlearn_destroy(q);
}

/* The policy interface over Q-learning: config string, decisions, rewards. */
static void test_policy_qlearning(void **unused)
{
    (void)unused;
    learn_policy_kind_t kind;
    assert_int_equal(learn_policy_kind_parse("qlearning", &kind), 0);
    assert_int_equal(kind, POLICY_QLEARNING);
    assert_int_equal(learn_policy_kind_parse("thompson", &kind), 0);
    assert_int_equal(kind, POLICY_THOMPSON);
    assert_int_equal(learn_policy_kind_parse("linucb", &kind), 0);
    assert_int_equal(kind, POLICY_LINUCB);
    assert_int_equal(learn_policy_kind_parse("sarsa", &kind), -EINVAL);
    assert_string_equal(learn_policy_kind_name(POLICY_LINUCB), "linucb");

    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.learning_rate = 0.5;
    learn_policy_t *p = learn_policy_create(&cfg);
    assert_non_null(p);
    assert_non_null(learn_policy_qlearn(p));
    assert_null(learn_policy_bandit(p));

    state_t s = make_state("orchestrator", PROBLEM_LATENCY, 2, 1);
    uint16_t ids[ACTION_COUNT];
    size_t n = learn_policy_actions(p, &s, ids);
    learn_rng_t rng;
    learn_rng_seed(&rng, 5);
    learn_decision_t d;
    assert_int_equal(learn_policy_choose(p, &s, &rng, &d), 0);
    assert_int_equal(d.n_actions, n);
    EXPECT_NEAR(d.epsilon, 0.1, 0.0);
    /* Nothing learned yet: all tied, propensity 1/n, the prior as expected improvement. */
    EXPECT_NEAR(d.propensity, 1.0 / (double)n, 1e-15);
    EXPECT_NEAR(d.expected_improvement, learn_action_get(d.action)->expected_improvement, 0.0);
    EXPECT_NEAR(d.risk, learn_action_get(d.action)->risk, 0.0);
    EXPECT_NEAR(d.confidence, 0.0, 0.0);

    /* A measured 12% improvement of slo_latency_relax_10 (risk 0.2):
     * reward 0.12 - 0.2 * 0.2 = 0.08; Q = 0.5 * 0.08 = 0.04. */
    uint16_t relax;
    assert_int_equal(learn_action_find("slo_latency_relax_10", &relax), 0);
    double r = learn_policy_reward(p, relax, true, 0.12);
    EXPECT_NEAR(r, 0.08, 1e-15);
    assert_int_equal(learn_policy_update(p, &s, relax, r), 0);
    assert_int_equal(learn_policy_observe(p, &s, relax, true, 0.12), 0);
    EXPECT_NEAR(qlearn_q(learn_policy_qlearn(p), &s, relax), 0.04, 1e-15);

    double probs[ACTION_COUNT];
    assert_int_equal(learn_policy_probabilities(p, &s, &rng, probs), 0);
    double sum = 0.0;
    for (size_t a = 0; a < ACTION_COUNT; a++) {
        sum += probs[a];
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
    uint16_t weight;
    assert_int_equal(learn_action_find("weight_safety_up_5", &weight), 0);
    EXPECT_NEAR(probs[weight], 0.0, 0.0); /* not applicable to a latency problem */
    EXPECT_NEAR(probs[relax],
                (1.0 - qlearn_epsilon(learn_policy_qlearn(p))) + qlearn_epsilon(learn_policy_qlearn(p)) / n,
                1e-12);

    /* Once observed, expected improvement = the observed mean, 0.12. */
    qlearn_set_epsilon(learn_policy_qlearn(p), 0.01);
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        assert_int_equal(learn_policy_choose(p, &s, &rng, &d), 0);
        if (d.action == relax) {
            seen = 1;
            EXPECT_NEAR(d.expected_improvement, 0.12, 1e-15);
            EXPECT_NEAR(d.confidence, 1.0 - 1.0 / sqrt(2.0), 1e-15);
        }
    }
    assert_true(seen);

    cfg.max_weight_adjustment = 0.5;
    assert_non_null(strstr(learn_policy_config_check(&cfg), "max_weight_adjustment"));
    assert_null(learn_policy_create(&cfg));
    learn_policy_destroy(p);
    learn_policy_destroy(NULL);
}

/* Issue 15 item 1: a failed, aborted or rejected experiment earns a negative
 * reward whatever its primary metric showed, so it never raises its action's
 * value; a success keeps the seed's improvement - risk * penalty. */
static void test_failed_experiment_never_raises_value(void **unused)
{
    (void)unused;
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.learning_rate = 0.5;
    learn_policy_t *p = learn_policy_create(&cfg);
    assert_non_null(p);
    state_t s = make_state("orchestrator", PROBLEM_LATENCY, 2, 1);
    const double gains[] = {0.08, 0.5, 0.05, 0.0, -0.02};
    for (uint16_t a = 0; a < ACTION_COUNT; a++) {
        for (size_t g = 0; g < sizeof(gains) / sizeof(gains[0]); g++) {
            double r = learn_policy_reward(p, a, false, gains[g]);
            if (!(r < 0.0)) {
                fail_msg("action %u, improvement %g, not a success: reward %g, expected < 0", a, gains[g], r);
            }
        }
    }
    /* An aborted experiment that showed +8 %: reward -(0.2 * 0.2) - 0.05. */
    uint16_t relax;
    assert_int_equal(learn_action_find("slo_latency_relax_10", &relax), 0);
    EXPECT_NEAR(learn_policy_reward(p, relax, false, 0.08), -0.04 - 0.05, 1e-15);
    EXPECT_NEAR(learn_policy_reward(p, relax, false, -0.1), -0.1 - 0.04 - 0.05, 1e-15);
    EXPECT_NEAR(learn_policy_reward(p, relax, true, 0.08), 0.08 - 0.04, 1e-15);
    /* "success" below the minimum gain is not a success. */
    assert_true(learn_policy_reward(p, relax, true, 0.01) < 0.0);
    double before = qlearn_q(learn_policy_qlearn(p), &s, relax);
    assert_int_equal(learn_policy_update(p, &s, relax, learn_policy_reward(p, relax, false, 0.08)), 0);
    assert_true(qlearn_q(learn_policy_qlearn(p), &s, relax) < before);
    EXPECT_NEAR(learn_reward_outcome(NULL, false, 0.3, 0.0), -0.05, 1e-15);
    learn_policy_destroy(p);
}

/* Issue 15 item 6: with alpha 0.01, an observed 10 % gain is reported as
 * 10 %, not as a Q shrunk towards it. Failures count as no gain. */
static void test_expected_improvement_is_the_observed_mean(void **unused)
{
    (void)unused;
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.epsilon_start = 0.0;
    cfg.qlearn.epsilon_min = 0.0;
    learn_policy_t *p = learn_policy_create(&cfg);
    assert_non_null(p);
    state_t s = make_state("orchestrator", PROBLEM_LATENCY, 2, 1);
    uint16_t relax;
    assert_int_equal(learn_action_find("slo_latency_relax_10", &relax), 0);
    assert_int_equal(learn_policy_update(p, &s, relax, learn_policy_reward(p, relax, true, 0.10)), 0);
    assert_int_equal(learn_policy_observe(p, &s, relax, true, 0.10), 0);
    learn_rng_t rng;
    learn_rng_seed(&rng, 3);
    learn_decision_t d;
    assert_int_equal(learn_policy_choose(p, &s, &rng, &d), 0); /* greedy: the only positive Q */
    assert_int_equal(d.action, relax);
    EXPECT_NEAR(d.expected_improvement, 0.10, 1e-15);
    assert_true(d.expected_improvement > learn_action_get(relax)->expected_improvement);
    /* An aborted one that showed +8 % adds no gain: mean (0.10 + 0) / 2. */
    assert_int_equal(learn_policy_observe(p, &s, relax, false, 0.08), 0);
    uint64_t n = 0;
    EXPECT_NEAR(learn_policy_observed(p, &s, relax, &n), 0.05, 1e-15);
    assert_int_equal(n, 2);
    /* The mean travels with the entry (export, import). */
    learn_policy_entry_t e;
    assert_int_equal(learn_policy_export(p, &s, relax, &e), 0);
    EXPECT_NEAR(e.improvement, 0.05, 1e-15);
    assert_int_equal(e.improvement_n, 2);
    learn_policy_t *fresh = learn_policy_create(&cfg);
    assert_int_equal(learn_policy_import(fresh, &e), 0);
    EXPECT_NEAR(learn_policy_observed(fresh, &s, relax, &n), 0.05, 1e-15);
    assert_int_equal(n, 2);
    learn_policy_destroy(fresh);
    learn_policy_destroy(p);
}

/* Issue 15 item 9: a NO_OP decision leaves epsilon where it was. */
static void test_noop_does_not_decay_epsilon(void **unused)
{
    (void)unused;
    qlearn_t *q = make_learner(0.3, 0.01, 0.5);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t only_noop[] = {ACTION_NOOP_ID};
    learn_rng_t rng;
    learn_rng_seed(&rng, 7);
    learn_decision_t d;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qlearn_choose(q, &s, only_noop, 1, &rng, &d), 0);
        assert_int_equal(d.action, ACTION_NOOP_ID);
    }
    EXPECT_NEAR(qlearn_epsilon(q), 0.3, 0.0);
    const uint16_t change[] = {21};
    assert_int_equal(qlearn_choose(q, &s, change, 1, &rng, &d), 0);
    EXPECT_NEAR(qlearn_epsilon(q), 0.15, 0.0);
    qlearn_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_defaults),
        cmocka_unit_test(test_update_arithmetic),
        cmocka_unit_test(test_update_with_custom_rates),
        cmocka_unit_test(test_epsilon_decay_and_floor),
        cmocka_unit_test(test_greedy_picks_argmax),
        cmocka_unit_test(test_propensities_match_frequencies),
        cmocka_unit_test(test_reward_formula),
        cmocka_unit_test(test_table_round_trip),
        cmocka_unit_test(test_table_grows),
        cmocka_unit_test(test_choose_rejects_bad_action_sets),
        cmocka_unit_test(test_policy_qlearning),
        cmocka_unit_test(test_failed_experiment_never_raises_value),
        cmocka_unit_test(test_expected_improvement_is_the_observed_mean),
        cmocka_unit_test(test_noop_does_not_decay_epsilon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
