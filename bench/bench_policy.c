/* bench_policy: speed and regret of the optimizer's learning policies.
 *
 * For each policy ("qlearning", the seed's epsilon-greedy baseline, then
 * "thompson" and "linucb", all with their default configs) it runs
 * DECISIONS decisions on a simulated environment for each of SEEDS seeds and
 * prints decisions per second and the p50 / p99 latency of learn_policy_choose
 * (clock_gettime around every call), and the cumulative pseudo-regret.
 *
 * The environment: 12 states (LATENCY, ERROR_RATE, AVAILABILITY,
 * CONSENSUS_ACCURACY x sev1..sev3, load1), each with the actions the catalogue
 * makes applicable. Pulling action a in state s yields an improvement
 * N(mu(s,a), 0.05^2), with mu(s,a) = w[kind][a] + u[a] * sev/3 drawn once per
 * seed (w ~ U(-0.02, 0.12), u ~ U(-0.06, 0.06)); NO_OP always yields 0. The
 * reward is the seed's: learn_reward_compute(improvement, risk) with the default
 * penalty 0.2 and threshold 0.05. The regret of a decision is the expected
 * reward of the best action of the state minus that of the chosen one, both
 * computed in closed form, so it measures the policy and not the noise.
 *
 *   bench_policy [--json] [--decisions N] [--seeds K]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "learn_policy.h"

#define NSTATES 12
#define NOISE_SD 0.05

typedef struct {
    state_t states[NSTATES];
    uint16_t actions[NSTATES][ACTION_COUNT];
    size_t nactions[NSTATES];
    double mu[NSTATES][ACTION_COUNT];       /* mean improvement */
    double expected[NSTATES][ACTION_COUNT]; /* expected reward */
    double best[NSTATES];
} env_t;

typedef struct {
    const char *name;
    double dps, p50_us, p99_us;
    double regret_mean, regret_sd;
    double best_share; /* share of optimal decisions in the last 10% */
} result_t;

static double phi(double z)
{
    return exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
}

static double Phi(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

/* E[reward] for improvement ~ N(mu, sd^2): the term is X above the threshold,
 * min(X, 0) below it (learn_reward.h). */
static double expected_reward(const learn_reward_config_t *rc, double mu, double sd, double risk)
{
    double term;
    if (sd == 0.0) {
        term = mu >= rc->min_improvement ? mu : fmin(mu, 0.0);
    } else {
        double a = (rc->min_improvement - mu) / sd, b = -mu / sd;
        term = mu * (1.0 - Phi(a)) + sd * phi(a) + mu * Phi(b) - sd * phi(b);
    }
    return term - risk * rc->penalty_factor;
}

static void env_init(env_t *env, uint64_t seed, const learn_policy_t *p)
{
    static const problem_kind_t kinds[4] = {PROBLEM_LATENCY, PROBLEM_ERROR_RATE, PROBLEM_AVAILABILITY,
                                            PROBLEM_CONSENSUS_ACCURACY};
    learn_rng_t rng;
    learn_rng_seed(&rng, seed ^ 0xe17e17e17ULL);
    double w[4][ACTION_COUNT], u[ACTION_COUNT];
    for (int k = 0; k < 4; k++) {
        for (int a = 0; a < ACTION_COUNT; a++) {
            w[k][a] = -0.02 + 0.14 * learn_rng_uniform(&rng);
        }
    }
    for (int a = 0; a < ACTION_COUNT; a++) {
        u[a] = -0.06 + 0.12 * learn_rng_uniform(&rng);
    }
    learn_reward_config_t rc;
    learn_reward_config_default(&rc);
    for (int i = 0; i < NSTATES; i++) {
        int k = i / 3;
        unsigned sev = (unsigned)(i % 3) + 1;
        state_make("svc", kinds[k], sev, 1, &env->states[i]);
        env->nactions[i] = learn_policy_actions(p, &env->states[i], env->actions[i]);
        env->best[i] = -INFINITY;
        for (size_t j = 0; j < env->nactions[i]; j++) {
            uint16_t a = env->actions[i][j];
            bool noop = a == ACTION_NOOP_ID;
            env->mu[i][a] = noop ? 0.0 : w[k][a] + u[a] * sev / 3.0;
            env->expected[i][a] =
                expected_reward(&rc, env->mu[i][a], noop ? 0.0 : NOISE_SD, learn_action_get(a)->risk);
            env->best[i] = fmax(env->best[i], env->expected[i][a]);
        }
    }
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_policy(learn_policy_kind_t kind, long decisions, int seeds, result_t *out)
{
    size_t nlat = (size_t)decisions * (size_t)seeds;
    double *lat = malloc(nlat * sizeof(*lat));
    if (lat == NULL) {
        return -1;
    }
    double total_ns = 0.0, sum = 0.0, sum2 = 0.0, best_share = 0.0;
    size_t li = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        learn_policy_config_t cfg;
        learn_policy_config_default(&cfg, kind);
        learn_policy_t *p = learn_policy_create(&cfg);
        if (p == NULL) {
            free(lat);
            return -1;
        }
        env_t env;
        env_init(&env, (uint64_t)seed, p);
        learn_rng_t prng, erng;
        learn_rng_seed(&prng, (uint64_t)seed * 7919);
        learn_rng_seed(&erng, (uint64_t)seed * 104729);
        double regret = 0.0;
        long late = 0, late_best = 0;
        for (long t = 0; t < decisions; t++) {
            int i = (int)learn_rng_below(&erng, NSTATES);
            const state_t *s = &env.states[i];
            learn_decision_t d;
            double t0 = now_ns();
            int rc = learn_policy_choose(p, s, &prng, &d);
            double dt = now_ns() - t0;
            if (rc < 0) {
                fprintf(stderr, "learn_policy_choose failed: %d\n", rc);
                exit(1);
            }
            lat[li++] = dt;
            total_ns += dt;
            double gap = env.best[i] - env.expected[i][d.action];
            regret += gap;
            if (t >= decisions - decisions / 10) {
                late++;
                late_best += gap <= 1e-12;
            }
            double improvement =
                d.action == ACTION_NOOP_ID ? 0.0 : env.mu[i][d.action] + NOISE_SD * learn_rng_gaussian(&erng);
            double reward =
                d.action == ACTION_NOOP_ID ? 0.0 : learn_policy_reward(p, d.action, true, improvement);
            learn_policy_update(p, s, d.action, reward);
        }
        sum += regret;
        sum2 += regret * regret;
        best_share += late > 0 ? (double)late_best / (double)late : 0.0;
        learn_policy_destroy(p);
    }
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    out->name = learn_policy_kind_name(kind);
    out->dps = (double)nlat / (total_ns * 1e-9);
    out->p50_us = lat[nlat / 2] / 1e3;
    out->p99_us = lat[(size_t)((double)nlat * 0.99)] / 1e3;
    out->regret_mean = sum / seeds;
    out->regret_sd = seeds > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / seeds) / (seeds - 1))) : 0.0;
    out->best_share = best_share / seeds;
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    int json = 0, seeds = 5;
    long decisions = 100000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--decisions") == 0 && i + 1 < argc) {
            decisions = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            seeds = (int)strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--json] [--decisions N] [--seeds K]\n", argv[0]);
            return 2;
        }
    }
    if (decisions < 10 || seeds < 1) {
        fprintf(stderr, "--decisions must be >= 10 and --seeds >= 1\n");
        return 2;
    }

    const learn_policy_kind_t kinds[] = {POLICY_QLEARNING, POLICY_THOMPSON, POLICY_LINUCB};
    result_t res[3];
    for (int k = 0; k < 3; k++) {
        if (run_policy(kinds[k], decisions, seeds, &res[k]) < 0) {
            fprintf(stderr, "bench_policy: out of memory\n");
            return 1;
        }
    }

    if (json) {
        printf("{\"decisions\": %ld, \"seeds\": %d, \"states\": %d, \"policies\": [", decisions, seeds,
               NSTATES);
        for (int k = 0; k < 3; k++) {
            printf(
                "%s{\"policy\": \"%s\", \"decisions_per_second\": %.0f, \"p50_us\": %.3f, \"p99_us\": %.3f, "
                "\"regret_mean\": %.2f, \"regret_sd\": %.2f, \"regret_vs_qlearning\": %.3f, "
                "\"late_best_action_share\": %.4f}",
                k ? ", " : "", res[k].name, res[k].dps, res[k].p50_us, res[k].p99_us, res[k].regret_mean,
                res[k].regret_sd, res[k].regret_mean / res[0].regret_mean, res[k].best_share);
        }
        printf("]}\n");
        return 0;
    }
    printf("bench_policy: %ld decisions x %d seeds, %d states, reward = improvement - risk x 0.2\n",
           decisions, seeds, NSTATES);
    printf("%-10s %12s %9s %9s %18s %10s %10s\n", "policy", "decisions/s", "p50 us", "p99 us",
           "regret (mean+-sd)", "vs qlearn", "best@end");
    for (int k = 0; k < 3; k++) {
        printf("%-10s %12.0f %9.2f %9.2f %10.1f +- %5.1f %9.2fx %9.1f%%\n", res[k].name, res[k].dps,
               res[k].p50_us, res[k].p99_us, res[k].regret_mean, res[k].regret_sd,
               res[k].regret_mean / res[0].regret_mean, 100.0 * res[k].best_share);
    }
    return 0;
}
