/* learn_decision: what a policy records about each choice it makes.
 *
 * Every field is filled by every policy, so decisions of different policies
 * can be logged side by side and compared off-line (learn_ope.h). The
 * propensity is the probability with which the policy picked this action in
 * this state, computed before the policy's own state moved (before the
 * epsilon decay of Q-learning).
 */
#ifndef HIVE_LEARN_DECISION_H
#define HIVE_LEARN_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint16_t action;             /* catalogue id (learn_action.h) */
    const char *action_name;     /* stable name, static storage */
    double propensity;           /* P(action | state) under the policy, in (0, 1] */
    double score;                /* what was maximised: Q, the Thompson draw, the UCB */
    double value;                /* point estimate of the reward: Q, posterior mean, theta . x */
    double confidence;           /* [0, 1]: 0 = nothing observed yet, -> 1 with evidence */
    double risk;                 /* the action's static risk */
    double expected_improvement; /* learned (value + risk * penalty) once observed, else the prior */
    double epsilon;              /* Q-learning: the epsilon used; 0 for the bandits */
    uint64_t visits;             /* updates seen for (state, action); LinUCB: for the action */
    size_t n_actions;            /* how many actions the choice was among */
    bool explored;               /* Q-learning: picked by the epsilon branch */
} learn_decision_t;

#endif
