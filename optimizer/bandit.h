/* bandit: contextual bandits over the same actions as Q-learning.
 *
 * Thompson sampling. One Gaussian posterior per (state key, action) on the
 * mean reward, with a known noise sd (noise_sd) and a N(prior_mean, prior_sd^2)
 * prior: after n rewards with mean m,
 *   precision = 1/prior_sd^2 + n/noise_sd^2
 *   mean      = (prior_mean/prior_sd^2 + n*m/noise_sd^2) / precision.
 * Gaussian rather than Beta-Bernoulli because the reward is continuous
 * (improvement - risk * penalty) and a Bernoulli "success" would throw away
 * both the size of the gain and the risk term. A choice draws one sample per
 * action and takes the largest. Its propensity, the probability the argmax
 * falls on the chosen action, is computed for that action only, by
 * quadrature over its Gaussian posterior:
 *   P(k) = integral phi_k(x) prod_{j != k} Phi_j(x) dx
 * (Gauss-Legendre panels cut where a narrower posterior steps from 0 to 1,
 * absolute error below 1e-6; the two-arm closed form
 * Phi((m_a - m_b) / sqrt(sd_a^2 + sd_b^2)) is its check). Deterministic and
 * unbiased: an off-policy estimator dividing by it gets the true weights.
 * propensity_draws is no longer used (kept so configs stay valid).
 * The posteriors live in a learn_table (value = mean reward, visits = n), so
 * they persist like the Q-table.
 *
 * LinUCB (disjoint, Li et al. 2010). One ridge regression per action over the
 * state's features (state_features): A = ridge*I + sum x x^T, b = sum r x,
 * theta = A^-1 b, score = theta.x + alpha*sqrt(x^T A^-1 x). A^-1 is kept up to
 * date by the Sherman-Morrison formula, A^-1 -= (A^-1 x)(A^-1 x)^T /
 * (1 + x^T A^-1 x), so an update costs O(d^2) and no inversion. The models are
 * shared by every component (the component is not a feature), which is how
 * LinUCB generalises. The choice is deterministic up to ties, split evenly: the
 * propensity is 1/|argmax|.
 *
 * Confidence: 1 - posterior sd / prior sd (Thompson), 1 - sqrt(x^T A^-1 x) /
 * sqrt(x^T x / ridge) (LinUCB): 0 before any evidence, towards 1 with it.
 *
 * No I/O, no clock, no globals; randomness from the caller's learn_rng_t.
 */
#ifndef HIVE_BANDIT_H
#define HIVE_BANDIT_H

#include <stddef.h>
#include <stdint.h>

#include "learn_decision.h"
#include "learn_rng.h"
#include "learn_table.h"
#include "state.h"

typedef struct bandit_s bandit_t;

typedef enum { BANDIT_THOMPSON, BANDIT_LINUCB } bandit_kind_t;

typedef struct {
    double noise_sd;           /* Thompson: reward noise sd, > 0, default 0.1 */
    double prior_mean;         /* Thompson: prior mean reward, default 0 (NO_OP's reward) */
    double prior_sd;           /* Thompson: prior sd, > 0, default 0.1 */
    unsigned propensity_draws; /* Thompson: resampling rounds, 1..100000, default 256 */
    double alpha;              /* LinUCB: width of the bonus, >= 0, default 0.1 (reward units) */
    double ridge;              /* LinUCB: A's initial diagonal, > 0, default 1 */
} bandit_config_t;

/* The dimension of LinUCB's model. */
#define BANDIT_DIM STATE_FEATURES

/* Fills `cfg` with the defaults above. */
void bandit_config_default(bandit_config_t *cfg);

/* NULL when valid, otherwise a sentence naming the bad field and its range. */
const char *bandit_config_check(const bandit_config_t *cfg);

/* Creates a bandit with no evidence. NULL on a bad kind or config, or on
 * allocation failure. Free with bandit_destroy. */
bandit_t *bandit_create(bandit_kind_t kind, const bandit_config_t *cfg);
/* Frees the bandit. Accepts NULL. */
void bandit_destroy(bandit_t *b);

bandit_kind_t bandit_kind(const bandit_t *b);

/* Chooses among `actions` (n >= 1 distinct catalogue ids) and fills `out`
 * (see learn_decision.h and the file comment). Returns 0 or -EINVAL (out
 * untouched). */
int bandit_choose(bandit_t *b, const state_t *s, const uint16_t *actions, size_t n, learn_rng_t *rng,
                  learn_decision_t *out);

/* Writes into out_probs[i] the probability of choosing actions[i] now. Thompson
 * estimates it as in bandit_choose (drawing from `rng`); LinUCB's is exact and
 * ignores `rng`. Returns 0 or -EINVAL. */
int bandit_probabilities(const bandit_t *b, const state_t *s, const uint16_t *actions, size_t n,
                         learn_rng_t *rng, double *out_probs);

/* Adds one observed reward for (s, action). Returns 0, -EINVAL or -ENOMEM. */
int bandit_update(bandit_t *b, const state_t *s, uint16_t action, double reward);

/* Thompson: the posterior means of (s, action), and the sd, visits. Returns 0
 * or -EINVAL (not Thompson, bad action). */
int bandit_posterior(const bandit_t *b, const state_t *s, uint16_t action, double *out_mean, double *out_sd,
                     uint64_t *out_visits);

/* Thompson: the table of (state key, action, mean reward, n), for persistence.
 * NULL for LinUCB. Borrowed. */
const learn_table_t *bandit_table(const bandit_t *b);
/* Thompson: restores one persisted entry, see learn_table_load. -EINVAL for LinUCB. */
int bandit_load(bandit_t *b, const char *state_key, const char *action_name, double mean, uint64_t visits);

/* LinUCB: copies the model of `action` out, for persistence or inspection:
 * A and A^-1 (BANDIT_DIM x BANDIT_DIM, row-major), b (BANDIT_DIM) and the
 * number of updates. Any out pointer may be NULL. Returns 0 or -EINVAL. */
int bandit_linucb_model(const bandit_t *b, uint16_t action, double *out_A, double *out_Ainv, double *out_b,
                        uint64_t *out_n);
/* LinUCB: restores the model of `action` from A, b and n; A^-1 is recomputed
 * by Gauss-Jordan elimination. Returns 0, or -EINVAL (not LinUCB, bad action,
 * A not symmetric or singular; model untouched). */
int bandit_linucb_load(bandit_t *b, uint16_t action, const double *A, const double *bvec, uint64_t n);

#endif
