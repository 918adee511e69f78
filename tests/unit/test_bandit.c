/* Unit tests for bandit.h (Thompson sampling, LinUCB), learn_ope.h (IPS,
 * SNIPS) and the bandit side of learn_policy.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "bandit.h"
#include "learn_ope.h"
#include "learn_policy.h"

#define EXPECT_NEAR(actual, expected, tol)                                                                   \
    do {                                                                                                     \
        double a_ = (actual), e_ = (expected);                                                               \
        if (!(fabs(a_ - e_) <= (tol))) {                                                                     \
            fail_msg("%s: expected %.17g (+-%g), got %.17g", #actual, e_, (double)(tol), a_);                \
        }                                                                                                    \
    } while (0)

#define D BANDIT_DIM

static state_t make_state(const char *component, problem_kind_t kind, unsigned sev, unsigned load)
{
    state_t s;
    assert_int_equal(state_make(component, kind, sev, load, &s), 0);
    return s;
}

static bandit_t *make_bandit(bandit_kind_t kind, unsigned draws)
{
    bandit_config_t cfg;
    bandit_config_default(&cfg);
    cfg.propensity_draws = draws;
    bandit_t *b = bandit_create(kind, &cfg);
    assert_non_null(b);
    return b;
}

static size_t index_of(const uint16_t *actions, size_t n, uint16_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (actions[i] == id) {
            return i;
        }
    }
    fail_msg("action %u not in the set", id);
    return 0;
}

/* prior N(0, 0.1^2), noise 0.1, rewards 0.2 and 0.4: precision 100 + 2 * 100
 * = 300, mean (2 * 0.3 * 100) / 300 = 0.2, sd 1/sqrt(300). */
static void test_thompson_posterior(void **unused)
{
    (void)unused;
    bandit_t *b = make_bandit(BANDIT_THOMPSON, 64);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    double mean, sd;
    uint64_t n;
    assert_int_equal(bandit_posterior(b, &s, 21, &mean, &sd, &n), 0);
    EXPECT_NEAR(mean, 0.0, 0.0);
    EXPECT_NEAR(sd, 0.1, 1e-15);
    assert_int_equal(n, 0);
    assert_int_equal(bandit_update(b, &s, 21, 0.2), 0);
    assert_int_equal(bandit_update(b, &s, 21, 0.4), 0);
    assert_int_equal(bandit_posterior(b, &s, 21, &mean, &sd, &n), 0);
    EXPECT_NEAR(mean, 0.2, 1e-15);
    EXPECT_NEAR(sd, 1.0 / sqrt(300.0), 1e-15);
    assert_int_equal(n, 2);
    /* The table holds (mean reward, n) and reloads into the same posterior. */
    EXPECT_NEAR(learn_table_value(bandit_table(b), s.key, 21), 0.3, 1e-15);
    bandit_t *r = make_bandit(BANDIT_THOMPSON, 64);
    assert_int_equal(bandit_load(r, s.key, "slo_latency_relax_10", 0.3, 2), 0);
    assert_int_equal(bandit_posterior(r, &s, 21, &mean, &sd, &n), 0);
    EXPECT_NEAR(mean, 0.2, 1e-15);
    bandit_destroy(r);
    bandit_destroy(b);
}

/* Probabilities sum to 1 and match the frequency of the actual choices; the
 * propensity each decision records matches them too. */
static void test_thompson_propensities(void **unused)
{
    (void)unused;
    bandit_t *est = make_bandit(BANDIT_THOMPSON, 100000);
    bandit_t *run = make_bandit(BANDIT_THOMPSON, 256);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t actions[] = {0, 21, 29};
    const double means[] = {0.1, 0.12, 0.0};
    for (int i = 0; i < 3; i++) {
        const char *name = learn_action_get(actions[i])->name;
        assert_int_equal(bandit_load(est, s.key, name, means[i], 2), 0);
        assert_int_equal(bandit_load(run, s.key, name, means[i], 2), 0);
    }
    learn_rng_t rng;
    learn_rng_seed(&rng, 99);
    double p[3];
    assert_int_equal(bandit_probabilities(est, &s, actions, 3, &rng, p), 0);
    EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6); /* by quadrature: exact to 1e-6 */
    if (!(p[1] > p[0] && p[0] > p[2] && p[2] > 0.0)) {
        fail_msg("expected p(21) > p(noop) > p(29) > 0, got %g %g %g", p[1], p[0], p[2]);
    }

    const int draws = 20000;
    int count[3] = {0};
    double prop_sum[3] = {0};
    for (int i = 0; i < draws; i++) {
        learn_decision_t d;
        assert_int_equal(bandit_choose(run, &s, actions, 3, &rng, &d), 0);
        size_t j = index_of(actions, 3, d.action);
        count[j]++;
        prop_sum[j] += d.propensity;
        if (!(d.propensity > 0.0 && d.propensity <= 1.0)) {
            fail_msg("expected a propensity in (0, 1], got %g", d.propensity);
        }
    }
    for (int j = 0; j < 3; j++) {
        EXPECT_NEAR((double)count[j] / draws, p[j], 0.02);
        EXPECT_NEAR(prop_sum[j] / count[j], p[j], 0.02);
    }
    bandit_destroy(est);
    bandit_destroy(run);
}

/* A stationary 3-action problem: rewards N(mu, 0.05^2), mu = 0.05, 0.10, 0.02. */
static double draw_reward(learn_rng_t *env, size_t arm, const double *mu)
{
    return mu[arm] + 0.05 * learn_rng_gaussian(env);
}

static double late_best_share(bandit_kind_t kind, uint64_t seed, int steps)
{
    bandit_t *b = make_bandit(kind, 32);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t actions[] = {0, 21, 29};
    const double mu[] = {0.05, 0.10, 0.02};
    learn_rng_t rng, env;
    learn_rng_seed(&rng, seed);
    learn_rng_seed(&env, seed + 1000);
    int best = 0;
    for (int t = 0; t < steps; t++) {
        learn_decision_t d;
        assert_int_equal(bandit_choose(b, &s, actions, 3, &rng, &d), 0);
        size_t j = index_of(actions, 3, d.action);
        assert_int_equal(bandit_update(b, &s, d.action, draw_reward(&env, j, mu)), 0);
        if (t >= steps - 500) {
            best += j == 1;
        }
    }
    bandit_destroy(b);
    return best / 500.0;
}

static void test_thompson_converges(void **unused)
{
    (void)unused;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        double share = late_best_share(BANDIT_THOMPSON, seed, 2000);
        if (share < 0.9) {
            fail_msg(
                "seed %lu: expected the best action in >= 90%% of the last 500 of 2000 steps, got %.1f%%",
                (unsigned long)seed, 100.0 * share);
        }
    }
}

static void test_linucb_converges(void **unused)
{
    (void)unused;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        double share = late_best_share(BANDIT_LINUCB, seed, 2000);
        if (share < 0.9) {
            fail_msg(
                "seed %lu: expected the best action in >= 90%% of the last 500 of 2000 steps, got %.1f%%",
                (unsigned long)seed, 100.0 * share);
        }
    }
}

/* LinUCB is contextual: two problem kinds with different best actions, learnt
 * through the one-hot features of one shared model per action. */
static void test_linucb_is_contextual(void **unused)
{
    (void)unused;
    bandit_t *b = make_bandit(BANDIT_LINUCB, 1);
    state_t st[2] = {make_state("a", PROBLEM_LATENCY, 2, 1), make_state("b", PROBLEM_ERROR_RATE, 2, 1)};
    const uint16_t actions[] = {0, 29, 31};
    const double mu[2][3] = {{0.0, 0.10, 0.03}, {0.0, 0.02, 0.09}};
    learn_rng_t rng, env;
    learn_rng_seed(&rng, 3);
    learn_rng_seed(&env, 4);
    int best[2] = {0, 0};
    for (int t = 0; t < 4000; t++) {
        int k = (int)learn_rng_below(&env, 2);
        learn_decision_t d;
        assert_int_equal(bandit_choose(b, &st[k], actions, 3, &rng, &d), 0);
        size_t j = index_of(actions, 3, d.action);
        assert_int_equal(bandit_update(b, &st[k], d.action, draw_reward(&env, j, mu[k])), 0);
        if (t >= 3000) {
            best[k] += (k == 0 && j == 1) || (k == 1 && j == 2);
        }
    }
    /* About 500 late visits per state. */
    if (best[0] < 450 || best[1] < 450) {
        fail_msg("expected the per-state best action in ~all late decisions, got %d and %d", best[0],
                 best[1]);
    }
    bandit_destroy(b);
}

/* Direct inverse, written independently of bandit.c (Gauss-Jordan, no pivot
 * needed for a symmetric positive definite matrix). */
static void direct_inverse(const double *A, double *out)
{
    double a[D][2 * D];
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < 2 * D; j++) {
            a[i][j] = j < D ? A[i * D + j] : (j - D == i);
        }
    }
    for (int c = 0; c < D; c++) {
        double piv = a[c][c];
        for (int j = 0; j < 2 * D; j++) {
            a[c][j] /= piv;
        }
        for (int r = 0; r < D; r++) {
            if (r != c) {
                double f = a[r][c];
                for (int j = 0; j < 2 * D; j++) {
                    a[r][j] -= f * a[c][j];
                }
            }
        }
    }
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            out[i * D + j] = a[i][D + j];
        }
    }
}

static void test_sherman_morrison(void **unused)
{
    (void)unused;
    bandit_t *b = make_bandit(BANDIT_LINUCB, 1);
    double A[D * D], Ainv[D * D], bv[D], direct[D * D];
    uint64_t n;

    /* One update with x = e_LATENCY + e_bias (severity 0, load 0): A = I + x x^T,
     * A^-1 = I - x x^T / 3, so A^-1[0][0] = 2/3 and A^-1[0][bias] = -1/3. */
    state_t s0 = make_state("c", PROBLEM_LATENCY, 0, 0);
    assert_int_equal(bandit_update(b, &s0, 21, 0.5), 0);
    assert_int_equal(bandit_linucb_model(b, 21, A, Ainv, bv, &n), 0);
    assert_int_equal(n, 1);
    EXPECT_NEAR(A[0], 2.0, 0.0);
    EXPECT_NEAR(Ainv[0], 2.0 / 3.0, 1e-15);
    EXPECT_NEAR(Ainv[D - 1], -1.0 / 3.0, 1e-15);
    EXPECT_NEAR(Ainv[1 * D + 1], 1.0, 0.0);
    EXPECT_NEAR(bv[0], 0.5, 0.0);
    EXPECT_NEAR(bv[D - 1], 0.5, 0.0);

    /* Many updates over varied states: the Sherman-Morrison A^-1 equals the direct inverse. */
    learn_rng_t rng;
    learn_rng_seed(&rng, 77);
    for (int t = 0; t < 200; t++) {
        state_t s = make_state("c", (problem_kind_t)learn_rng_below(&rng, PROBLEM_COUNT),
                               (unsigned)learn_rng_below(&rng, STATE_SEVERITY_BUCKETS),
                               (unsigned)learn_rng_below(&rng, STATE_LOAD_BUCKETS));
        assert_int_equal(bandit_update(b, &s, 21, learn_rng_gaussian(&rng)), 0);
    }
    assert_int_equal(bandit_linucb_model(b, 21, A, Ainv, bv, &n), 0);
    assert_int_equal(n, 201);
    direct_inverse(A, direct);
    for (int i = 0; i < D * D; i++) {
        EXPECT_NEAR(Ainv[i], direct[i], 1e-10);
    }
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            double dot = 0.0;
            for (int k = 0; k < D; k++) {
                dot += A[i * D + k] * Ainv[k * D + j];
            }
            EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-10);
        }
    }

    /* Persisted (A, b, n) reloads into the same model; a singular A is refused. */
    bandit_t *r = make_bandit(BANDIT_LINUCB, 1);
    assert_int_equal(bandit_linucb_load(r, 21, A, bv, n), 0);
    double Ainv2[D * D];
    assert_int_equal(bandit_linucb_model(r, 21, NULL, Ainv2, NULL, NULL), 0);
    for (int i = 0; i < D * D; i++) {
        EXPECT_NEAR(Ainv2[i], direct[i], 1e-10);
    }
    double zero[D * D] = {0};
    assert_int_equal(bandit_linucb_load(r, 21, zero, bv, 0), -EINVAL);
    A[1] += 1.0; /* no longer symmetric */
    assert_int_equal(bandit_linucb_load(r, 21, A, bv, n), -EINVAL);
    assert_int_equal(bandit_linucb_load(r, ACTION_COUNT, direct, bv, n), -EINVAL);
    bandit_destroy(r);
    bandit_destroy(b);
}

/* Deterministic up to ties: untrained, every action ties (1/n); trained, the
 * argmax alone has propensity 1. */
static void test_linucb_propensity(void **unused)
{
    (void)unused;
    bandit_t *b = make_bandit(BANDIT_LINUCB, 1);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t actions[] = {0, 21, 29, 31};
    learn_rng_t rng;
    learn_rng_seed(&rng, 8);
    int count[4] = {0};
    for (int i = 0; i < 8000; i++) {
        learn_decision_t d;
        assert_int_equal(bandit_choose(b, &s, actions, 4, &rng, &d), 0);
        EXPECT_NEAR(d.propensity, 0.25, 0.0);
        count[index_of(actions, 4, d.action)]++;
    }
    for (int j = 0; j < 4; j++) {
        EXPECT_NEAR(count[j] / 8000.0, 0.25, 0.03);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(bandit_update(b, &s, 29, 0.2), 0);
        assert_int_equal(bandit_update(b, &s, 0, 0.0), 0);
        assert_int_equal(bandit_update(b, &s, 21, 0.0), 0);
        assert_int_equal(bandit_update(b, &s, 31, 0.0), 0);
    }
    double p[4];
    assert_int_equal(bandit_probabilities(b, &s, actions, 4, NULL, p), 0);
    EXPECT_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 0.0);
    EXPECT_NEAR(p[2], 1.0, 0.0);
    learn_decision_t d;
    assert_int_equal(bandit_choose(b, &s, actions, 4, &rng, &d), 0);
    assert_int_equal(d.action, 29);
    EXPECT_NEAR(d.propensity, 1.0, 0.0);
    if (!(d.confidence > 0.5 && d.confidence < 1.0)) {
        fail_msg("expected confidence in (0.5, 1) after 20 updates, got %g", d.confidence);
    }
    bandit_destroy(b);
}

/* Target: pi(0) = 0.1, pi(1) = 0.8, pi(2) = 0.1, whatever the state. */
static double fixed_target(void *ctx, const state_t *s, uint16_t action)
{
    (void)ctx;
    (void)s;
    return action == 1 ? 0.8 : 0.1;
}

static double null_target(void *ctx, const state_t *s, uint16_t action)
{
    (void)ctx;
    (void)s;
    (void)action;
    return 0.0;
}

static void test_ips_snips(void **unused)
{
    (void)unused;
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    learn_ope_record_t log[4] = {
        {.state = s, .action = 1, .propensity = 0.5, .reward = 1.0},  /* w = 1.6 */
        {.state = s, .action = 2, .propensity = 0.25, .reward = 0.5}, /* w = 0.4 */
        {.state = s, .action = 1, .propensity = 0.8, .reward = 0.2},  /* w = 1.0 */
        {.state = s, .action = 0, .propensity = 0.5, .reward = -0.4}, /* w = 0.2 */
    };
    learn_ope_result_t r;
    assert_int_equal(learn_ope_evaluate(log, 4, fixed_target, NULL, &r), 0);
    /* sum w r = 1.6 + 0.2 + 0.2 - 0.08 = 1.92; sum w = 3.2; sum w^2 = 3.76. */
    assert_int_equal(r.n, 4);
    EXPECT_NEAR(r.ips, 0.48, 1e-15);
    EXPECT_NEAR(r.snips, 0.6, 1e-15);
    EXPECT_NEAR(r.ess, 3.2 * 3.2 / 3.76, 1e-12);
    EXPECT_NEAR(r.max_weight, 1.6, 1e-15);

    assert_int_equal(learn_ope_evaluate(log, 4, null_target, NULL, &r), 0);
    EXPECT_NEAR(r.ips, 0.0, 0.0);
    EXPECT_NEAR(r.snips, 0.0, 0.0);
    EXPECT_NEAR(r.ess, 0.0, 0.0);

    log[2].propensity = 0.0;
    assert_int_equal(learn_ope_evaluate(log, 4, fixed_target, NULL, &r), -EINVAL);
    log[2].propensity = 1.2;
    assert_int_equal(learn_ope_evaluate(log, 4, fixed_target, NULL, &r), -EINVAL);
    assert_int_equal(learn_ope_evaluate(log, 0, fixed_target, NULL, &r), -EINVAL);
}

/* IPS on a log of a uniform random policy recovers a greedy policy's value. */
static double greedy_target(void *ctx, const state_t *s, uint16_t action)
{
    (void)ctx;
    (void)s;
    return action == 29 ? 1.0 : 0.0;
}

static void test_ips_is_unbiased(void **unused)
{
    (void)unused;
    enum { N = 30000 };
    static learn_ope_record_t log[N];
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t actions[] = {0, 21, 29};
    const double mu[] = {0.0, 0.04, 0.09};
    learn_rng_t rng;
    learn_rng_seed(&rng, 12);
    for (int i = 0; i < N; i++) {
        size_t j = (size_t)learn_rng_below(&rng, 3);
        log[i] = (learn_ope_record_t){
            .state = s, .action = actions[j], .propensity = 1.0 / 3.0, .reward = draw_reward(&rng, j, mu)};
    }
    learn_ope_result_t r;
    assert_int_equal(learn_ope_evaluate(log, N, greedy_target, NULL, &r), 0);
    EXPECT_NEAR(r.ips, 0.09, 0.01);
    EXPECT_NEAR(r.snips, 0.09, 0.005);
    EXPECT_NEAR(r.ess, N / 3.0, N * 0.02);
}

/* learn_policy_evaluate on a uniform log: uniform's weights are all 1, the
 * greedy target keeps only the records of the best action (weight n), the
 * current epsilon-greedy one weighs them 1 - eps + eps/n times n. */
static void test_policy_evaluate(void **unused)
{
    (void)unused;
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.epsilon_start = 0.2;
    cfg.qlearn.epsilon_min = 0.01;
    learn_policy_t *p = learn_policy_create(&cfg);
    assert_non_null(p);
    state_t s = make_state("consensus-engine", PROBLEM_LATENCY, 2, 1);
    uint16_t ids[ACTION_COUNT];
    size_t n = learn_policy_actions(p, &s, ids);
    assert_true(n >= 3);
    uint16_t best = ids[1];
    assert_int_equal(learn_policy_update(p, &s, best, 1.0), 0);
    learn_ope_record_t log[6];
    double rewards[6] = {0.5, -0.2, 0.8, 0.1, 0.3, -0.6};
    uint16_t acts[6] = {best, ids[0], best, ids[2], ids[0], best};
    for (int i = 0; i < 6; i++) {
        log[i] = (learn_ope_record_t){
            .state = s, .action = acts[i], .propensity = 1.0 / (double)n, .reward = rewards[i]};
    }
    learn_rng_t rng;
    learn_rng_seed(&rng, 3);
    learn_ope_result_t r[LEARN_EVAL_COUNT];
    assert_int_equal(learn_policy_evaluate(p, log, 6, &rng, r), 0);
    double mean = (0.5 - 0.2 + 0.8 + 0.1 + 0.3 - 0.6) / 6.0;
    EXPECT_NEAR(r[LEARN_EVAL_UNIFORM].ips, mean, 1e-12);
    EXPECT_NEAR(r[LEARN_EVAL_UNIFORM].snips, mean, 1e-12);
    EXPECT_NEAR(r[LEARN_EVAL_UNIFORM].ess, 6.0, 1e-9);
    double best_sum = 0.5 + 0.8 - 0.6;
    EXPECT_NEAR(r[LEARN_EVAL_GREEDY].ips, (double)n * best_sum / 6.0, 1e-12);
    EXPECT_NEAR(r[LEARN_EVAL_GREEDY].snips, best_sum / 3.0, 1e-12);
    EXPECT_NEAR(r[LEARN_EVAL_GREEDY].ess, 3.0, 1e-9);
    double eps = 0.2, pb = 1.0 - eps + eps / (double)n, po = eps / (double)n;
    double wb = pb * (double)n, wo = po * (double)n;
    EXPECT_NEAR(r[LEARN_EVAL_CURRENT].ips, (wb * best_sum + wo * (-0.2 + 0.1 + 0.3)) / 6.0, 1e-9);
    EXPECT_NEAR(r[LEARN_EVAL_CURRENT].snips, (wb * best_sum + wo * (-0.2 + 0.1 + 0.3)) / (3 * wb + 3 * wo),
                1e-9);
    assert_string_equal(learn_eval_target_name(LEARN_EVAL_GREEDY), "greedy");
    log[2].propensity = 0.0;
    assert_int_equal(learn_policy_evaluate(p, log, 6, &rng, r), -EINVAL);
    learn_policy_destroy(p);
}

/* Both bandits behind the policy interface, chosen by config string. */
static void test_policy_bandits(void **unused)
{
    (void)unused;
    const char *names[] = {"thompson", "linucb"};
    for (int k = 0; k < 2; k++) {
        learn_policy_kind_t kind;
        assert_int_equal(learn_policy_kind_parse(names[k], &kind), 0);
        learn_policy_config_t cfg;
        learn_policy_config_default(&cfg, kind);
        learn_policy_t *p = learn_policy_create(&cfg);
        assert_non_null(p);
        assert_null(learn_policy_qlearn(p));
        assert_non_null(learn_policy_bandit(p));
        state_t s = make_state("consensus-engine", PROBLEM_CONSENSUS_ACCURACY, 2, 0);
        uint16_t ids[ACTION_COUNT];
        size_t n = learn_policy_actions(p, &s, ids);
        learn_rng_t rng;
        learn_rng_seed(&rng, 21);
        learn_decision_t d;
        assert_int_equal(learn_policy_choose(p, &s, &rng, &d), 0);
        assert_int_equal(d.n_actions, n);
        EXPECT_NEAR(d.epsilon, 0.0, 0.0);
        if (!(d.propensity > 0.0 && d.propensity <= 1.0)) {
            fail_msg("%s: expected a propensity in (0, 1], got %g", names[k], d.propensity);
        }
        EXPECT_NEAR(d.expected_improvement, learn_action_get(d.action)->expected_improvement, 0.0);
        double r = learn_policy_reward(p, d.action, true, 0.2);
        assert_int_equal(learn_policy_update(p, &s, d.action, r), 0);
        assert_int_equal(learn_policy_choose(p, &s, &rng, &d), 0);
        double probs[ACTION_COUNT], sum = 0.0;
        assert_int_equal(learn_policy_probabilities(p, &s, &rng, probs), 0);
        for (size_t a = 0; a < ACTION_COUNT; a++) {
            sum += probs[a];
        }
        EXPECT_NEAR(sum, 1.0, 1e-6); /* Thompson's by quadrature: exact to 1e-6 */
        learn_policy_destroy(p);
    }
    bandit_config_t bad;
    bandit_config_default(&bad);
    bad.noise_sd = 0.0;
    assert_non_null(strstr(bandit_config_check(&bad), "noise_sd"));
    assert_null(bandit_create(BANDIT_THOMPSON, &bad));
}

/* Issue 15 item 11: the logged Thompson propensity is the true probability
 * of the chosen arm: the two-arm closed form to 1e-6, the frequency of the
 * choices over many rounds, and no smoothing pulling a dominant arm down. */
static void test_thompson_propensity_is_unbiased(void **unused)
{
    (void)unused;
    bandit_t *b = make_bandit(BANDIT_THOMPSON, 256);
    state_t s = make_state("c", PROBLEM_LATENCY, 1, 1);
    const uint16_t two[] = {21, 29};
    assert_int_equal(bandit_load(b, s.key, learn_action_get(21)->name, 0.12, 3), 0);
    assert_int_equal(bandit_load(b, s.key, learn_action_get(29)->name, 0.02, 40), 0);
    double m21, s21, m29, s29, p[ACTION_COUNT];
    uint64_t n;
    assert_int_equal(bandit_posterior(b, &s, 21, &m21, &s21, &n), 0);
    assert_int_equal(bandit_posterior(b, &s, 29, &m29, &s29, &n), 0);
    double exact = 0.5 * erfc(-(m21 - m29) / sqrt(2.0 * (s21 * s21 + s29 * s29)));
    assert_int_equal(bandit_probabilities(b, &s, two, 2, NULL, p), 0);
    EXPECT_NEAR(p[0], exact, 1e-6);
    EXPECT_NEAR(p[0] + p[1], 1.0, 1e-6);
    assert_true(exact > 0.9); /* a dominant arm: add-one smoothing would have logged ~0.89 */

    /* Five arms, one dominant: the logged propensity is the frequency with
     * which it is actually chosen. */
    const uint16_t five[] = {0, 20, 21, 29, 30};
    const double means[] = {0.0, 0.02, 0.15, 0.03, 0.01};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bandit_load(b, s.key, learn_action_get(five[i])->name, means[i], 8), 0);
    }
    assert_int_equal(bandit_probabilities(b, &s, five, 5, NULL, p), 0);
    double sum = 0.0;
    for (int i = 0; i < 5; i++) {
        sum += p[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    learn_rng_t rng;
    learn_rng_seed(&rng, 11);
    const int rounds = 200000;
    int wins[5] = {0};
    for (int r = 0; r < rounds; r++) {
        learn_decision_t d;
        assert_int_equal(bandit_choose(b, &s, five, 5, &rng, &d), 0);
        size_t j = index_of(five, 5, d.action);
        wins[j]++;
        EXPECT_NEAR(d.propensity, p[j], 1e-12); /* the chosen arm's, every time */
    }
    for (int j = 0; j < 5; j++) {
        /* 200000 rounds: sd of a frequency <= 0.0012; 5 sd. */
        EXPECT_NEAR((double)wins[j] / rounds, p[j], 0.006);
    }
    assert_true(p[2] > 0.9);
    bandit_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thompson_propensity_is_unbiased),
        cmocka_unit_test(test_thompson_posterior),
        cmocka_unit_test(test_thompson_propensities),
        cmocka_unit_test(test_thompson_converges),
        cmocka_unit_test(test_linucb_converges),
        cmocka_unit_test(test_linucb_is_contextual),
        cmocka_unit_test(test_sherman_morrison),
        cmocka_unit_test(test_linucb_propensity),
        cmocka_unit_test(test_ips_snips),
        cmocka_unit_test(test_ips_is_unbiased),
        cmocka_unit_test(test_policy_bandits),
        cmocka_unit_test(test_policy_evaluate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
