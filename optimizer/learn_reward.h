/* learn_reward: the reward of seed 000, improvement - risk * penalty_factor.
 *
 * `improvement` is the experiment's measured relative improvement of the
 * target metric (0.08 = 8% better; negative when it got worse). Below the
 * seed's MIN_IMPROVEMENT_THRESHOLD the experiment counts as a failure: a small
 * gain is worth nothing (the improvement term becomes 0), while a regression
 * keeps its negative value, so harm is punished in proportion:
 *
 *   term   = improvement            if improvement >= min_improvement
 *          = min(improvement, 0)    otherwise
 *   reward = term - risk * penalty_factor
 *
 * The penalty factor defaults to 0.2: a change of risk 0.5 (the level that
 * needs the Queen Agent's approval) must improve by more than 10%, twice the
 * minimum, to beat NO_OP, whose reward is 0.
 *
 * How the experiment ended comes first (learn_reward_outcome): seed 000's
 * reward is positive on success and negative on failure. An experiment that
 * did not succeed (ABORTED, FAILED, TIMED_OUT, REJECT or INCONCLUSIVE, or a
 * gain below the minimum) earns whatever harm it showed, its risk penalty
 * and a failure cost of max(min_improvement, LEARN_REWARD_FAILURE_MIN):
 *
 *   reward = min(improvement, 0) - risk * penalty_factor - failure_cost
 *
 * strictly negative, whatever the primary metric showed: an aborted
 * experiment that measured +8 % never raises the value of its action.
 */
#ifndef HIVE_LEARN_REWARD_H
#define HIVE_LEARN_REWARD_H

#include <stdbool.h>

typedef struct {
    double penalty_factor;  /* >= 0, default 0.2 */
    double min_improvement; /* MIN_IMPROVEMENT_THRESHOLD, >= 0, default 0.05 */
} learn_reward_config_t;

/* Fills `cfg` with the defaults. */
void learn_reward_config_default(learn_reward_config_t *cfg);

/* NULL when `cfg` is valid, otherwise a sentence naming the bad field. */
const char *learn_reward_config_check(const learn_reward_config_t *cfg);

/* The reward of an experiment (formula above). `cfg` NULL means defaults. */
double learn_reward_compute(const learn_reward_config_t *cfg, double improvement, double risk);

/* The smallest failure cost, when MIN_IMPROVEMENT_THRESHOLD is 0. */
#define LEARN_REWARD_FAILURE_MIN 0.01

/* The reward of an experiment that ended with `success` (the lifecycle's
 * success rule: COMPLETED, ACCEPT and the minimum gain): on success
 * learn_reward_compute, otherwise the failure reward above (< 0). */
double learn_reward_outcome(const learn_reward_config_t *cfg, bool success, double improvement, double risk);

/* True when the improvement reaches the minimum (the seed's success). */
bool learn_reward_is_success(const learn_reward_config_t *cfg, double improvement);

#endif
