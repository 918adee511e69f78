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

/* True when the improvement reaches the minimum (the seed's success). */
bool learn_reward_is_success(const learn_reward_config_t *cfg, double improvement);

#endif
