/* qlearn: the OptimizationEngine's tabular Q-learning (seed 000).
 *
 *   Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)]
 *
 * with an epsilon-greedy choice. The seed's parameters map to
 * qlearn_config_t as follows (the shell reads the variables and fills it):
 *
 *   LEARNING_RATE       learning_rate    alpha, default 0.01, (0, 1]
 *   DISCOUNT_FACTOR     discount_factor  gamma, default 0.95, [0, 1]
 *   EXPLORATION_RATE    epsilon_start    the epsilon of the first decision,
 *                       default 0.1 (seed 000's environment,
 *                       EXPLORATION_RATE=0.1).
 *   EPSILON_MIN         epsilon_min      the floor, default 0.01
 *   EPSILON_DECAY       epsilon_decay    multiplicative decay applied after
 *                       every decision that changes something, default 0.999
 *                       (0.1 reaches the 0.01 floor after ~2300 decisions). A
 *                       decision to change nothing (NO_OP) starts no
 *                       experiment and teaches nothing: epsilon stays.
 *
 * Unvisited entries read initial_q (default 0). Every update counts a visit.
 *
 * Terminal transitions: when `next` is NULL the target is r alone (no
 * bootstrap). The optimizer's experiment results are terminal: the reward
 * measures the action's whole effect over the experiment window, and the next
 * insight about the component is a new decision, not a continuation. A shell
 * that does observe the state the action led to may pass it as `next`.
 *
 * The module allocates its table: create/destroy. Randomness comes from the
 * caller's learn_rng_t. No I/O, no clock, no globals.
 */
#ifndef HIVE_QLEARN_H
#define HIVE_QLEARN_H

#include <stddef.h>
#include <stdint.h>

#include "learn_decision.h"
#include "learn_rng.h"
#include "learn_table.h"
#include "state.h"

typedef struct qlearn_s qlearn_t;

typedef struct {
    double learning_rate;
    double discount_factor;
    double epsilon_start;
    double epsilon_min;
    double epsilon_decay;
    double initial_q;
} qlearn_config_t;

/* Fills `cfg` with the defaults above. */
void qlearn_config_default(qlearn_config_t *cfg);

/* NULL when `cfg` is valid, otherwise a sentence naming the bad field and
 * its accepted range. */
const char *qlearn_config_check(const qlearn_config_t *cfg);

/* Creates a learner with an empty table and epsilon = epsilon_start. Returns
 * NULL for an invalid config or on allocation failure. Free with
 * qlearn_destroy. */
qlearn_t *qlearn_create(const qlearn_config_t *cfg);
/* Frees the learner. Accepts NULL. */
void qlearn_destroy(qlearn_t *q);

/* Chooses among `actions` (n >= 1 catalogue ids, no duplicates) with
 * epsilon-greedy: with probability epsilon a uniform action, otherwise a
 * uniform pick among the actions of maximal Q (exact ties). Records in `out`
 * the propensity (1-eps)/|G| + eps/n for the |G| greedy actions, eps/n for the
 * others, the Q value, the visits and confidence 1 - 1/sqrt(1 + visits). Then
 * decays epsilon, unless the choice is NO_OP. Returns 0, or -EINVAL (out untouched, epsilon unchanged). */
int qlearn_choose(qlearn_t *q, const state_t *s, const uint16_t *actions, size_t n, learn_rng_t *rng,
                  learn_decision_t *out);

/* Writes into out_probs[i] the probability that the next qlearn_choose picks
 * actions[i], with the current epsilon. Returns 0 or -EINVAL. */
int qlearn_probabilities(const qlearn_t *q, const state_t *s, const uint16_t *actions, size_t n,
                         double *out_probs);

/* Applies one update for (s, action) with `reward`. `next` NULL is terminal;
 * otherwise the bootstrap is the max of Q(next, a') over `next_actions`
 * (next_n >= 1). Writes the new Q into *out_q when not NULL. Returns 0,
 * -EINVAL (nothing changed) or -ENOMEM. */
int qlearn_update(qlearn_t *q, const state_t *s, uint16_t action, double reward, const state_t *next,
                  const uint16_t *next_actions, size_t next_n, double *out_q);

/* Q(s, action); initial_q when never updated. */
double qlearn_q(const qlearn_t *q, const state_t *s, uint16_t action);
/* Updates seen for (s, action). */
uint64_t qlearn_visits(const qlearn_t *q, const state_t *s, uint16_t action);

/* The current epsilon, and the setter a restore uses (clamped to
 * [epsilon_min, 1]). */
double qlearn_epsilon(const qlearn_t *q);
void qlearn_set_epsilon(qlearn_t *q, double epsilon);
/* Decisions made since creation. */
uint64_t qlearn_decisions(const qlearn_t *q);
/* Puts the decision counter back (a retried batch's decisions are made again). */
void qlearn_set_decisions(qlearn_t *q, uint64_t decisions);

/* The Q-table, for iteration (persistence, the q_table_size gauge). Borrowed. */
const learn_table_t *qlearn_table(const qlearn_t *q);

/* Restores one persisted entry, see learn_table_load. */
int qlearn_load(qlearn_t *q, const char *state_key, const char *action_name, double value, uint64_t visits);

#endif
