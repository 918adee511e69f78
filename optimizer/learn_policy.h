/* learn_policy: one interface over the three learners.
 *
 * The optimizer asks a learn_policy_t for a decision and feeds rewards back; which
 * learner sits behind it is a config string, "qlearning" (the seed's
 * epsilon-greedy Q-learning, qlearn.h), "thompson" or "linucb" (bandit.h).
 * The policy computes the applicable actions of a state (learn_action_applicable
 * with max_weight_adjustment) and turns a learned value back into an expected
 * improvement: value + risk * penalty_factor once the (state, action) has
 * been observed, the action's prior before.
 *
 * The shell persists the learner it holds: learn_policy_qlearn / learn_policy_bandit give
 * access to their tables and models. No I/O, no clock, no globals.
 */
#ifndef HIVE_LEARN_POLICY_H
#define HIVE_LEARN_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "bandit.h"
#include "learn_action.h"
#include "learn_decision.h"
#include "learn_reward.h"
#include "learn_rng.h"
#include "qlearn.h"
#include "state.h"

typedef struct learn_policy_s learn_policy_t;

typedef enum { POLICY_QLEARNING, POLICY_THOMPSON, POLICY_LINUCB } learn_policy_kind_t;

typedef struct {
    learn_policy_kind_t kind;
    qlearn_config_t qlearn;       /* used by POLICY_QLEARNING */
    bandit_config_t bandit;       /* used by POLICY_THOMPSON and POLICY_LINUCB */
    learn_reward_config_t reward;       /* for expected_improvement and learn_policy_reward */
    double max_weight_adjustment; /* MAX_WEIGHT_ADJUSTMENT, (0, 0.3], default 0.2 */
} learn_policy_config_t;

/* Fills `cfg` with every module's defaults and `kind`. */
void learn_policy_config_default(learn_policy_config_t *cfg, learn_policy_kind_t kind);

/* NULL when valid, otherwise a sentence naming the bad field and its range. */
const char *learn_policy_config_check(const learn_policy_config_t *cfg);

/* Parses "qlearning" | "thompson" | "linucb". Returns 0 or -EINVAL. */
int learn_policy_kind_parse(const char *name, learn_policy_kind_t *out);
/* The config string of a kind; "unknown" outside the enum. */
const char *learn_policy_kind_name(learn_policy_kind_t kind);

/* Creates the policy `cfg` describes (copied). NULL on an invalid config or
 * allocation failure. Free with learn_policy_destroy. */
learn_policy_t *learn_policy_create(const learn_policy_config_t *cfg);
/* Frees the policy and its learner. Accepts NULL. */
void learn_policy_destroy(learn_policy_t *p);

learn_policy_kind_t learn_policy_kind(const learn_policy_t *p);

/* The actions applicable to `s` (learn_action.h), written into `out`. */
size_t learn_policy_actions(const learn_policy_t *p, const state_t *s, uint16_t out[ACTION_COUNT]);

/* Chooses an action for `s` and records the decision (learn_decision.h).
 * Returns 0 or -EINVAL (out untouched). */
int learn_policy_choose(learn_policy_t *p, const state_t *s, learn_rng_t *rng, learn_decision_t *out);

/* Feeds back the reward of `action` taken in `s`, as a terminal transition
 * (the optimizer's experiment results; see qlearn.h). Returns 0, -EINVAL or
 * -ENOMEM. */
int learn_policy_update(learn_policy_t *p, const state_t *s, uint16_t action, double reward);

/* As learn_policy_update, bootstrapping Q-learning from `next` (the bandits ignore
 * it). `next` NULL is learn_policy_update. */
int learn_policy_update_next(learn_policy_t *p, const state_t *s, uint16_t action, double reward, const state_t *next);

/* The probability of each action being chosen in `s` now, indexed by action
 * id (0 for actions not applicable). Thompson's is estimated by resampling
 * from `rng`. Returns 0 or -EINVAL. */
int learn_policy_probabilities(const learn_policy_t *p, const state_t *s, learn_rng_t *rng, double out[ACTION_COUNT]);

/* The reward of seed 000 for an observed improvement of `action`, with the
 * policy's reward config. 0 for an unknown action. */
double learn_policy_reward(const learn_policy_t *p, uint16_t action, double improvement);

/* The learner behind the policy, for persistence; NULL when it is the other
 * kind. Borrowed. */
qlearn_t *learn_policy_qlearn(learn_policy_t *p);
bandit_t *learn_policy_bandit(learn_policy_t *p);

#endif
