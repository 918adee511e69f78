/* learn_policy: one interface over the three learners.
 *
 * The optimizer asks a learn_policy_t for a decision and feeds rewards back; which
 * learner sits behind it is a config string, "qlearning" (the seed's
 * epsilon-greedy Q-learning, qlearn.h), "thompson" or "linucb" (bandit.h).
 * The policy computes the applicable actions of a state (learn_action_applicable
 * with max_weight_adjustment) and reports the expected improvement of a
 * decision: the mean improvement observed for (state, action) once one was
 * observed (learn_policy_observe), the action's prior before. The learned
 * value is not used for it: Q moves by alpha per result, so a Q-derived
 * figure would report a fraction of what was measured.
 *
 * The shell persists the learner it holds: learn_policy_qlearn / learn_policy_bandit give
 * access to their tables and models. No I/O, no clock, no globals.
 */
#ifndef HIVE_LEARN_POLICY_H
#define HIVE_LEARN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bandit.h"
#include "learn_action.h"
#include "learn_decision.h"
#include "learn_ope.h"
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
    learn_reward_config_t reward; /* for expected_improvement and learn_policy_reward */
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
int learn_policy_update_next(learn_policy_t *p, const state_t *s, uint16_t action, double reward,
                             const state_t *next);

/* Records the improvement an experiment of `action` in `s` gained: the
 * measured improvement when it succeeded, min(improvement, 0) otherwise (a
 * failed change is never applied, so its gain is at most nothing). Keeps the
 * running mean per (state, action) (per action for LinUCB, whose model all
 * states share). Returns 0, -EINVAL or -ENOMEM. */
int learn_policy_observe(learn_policy_t *p, const state_t *s, uint16_t action, bool success,
                         double improvement);

/* The observed mean improvement of `action` in `s` and how many results it
 * averages (0 and 0 before any). */
double learn_policy_observed(const learn_policy_t *p, const state_t *s, uint16_t action, uint64_t *out_n);

/* Puts the entry of `action` in `s` back to the prior: nothing learned,
 * nothing observed (Q initial_q, Thompson mean 0, LinUCB A = ridge I, b = 0;
 * for LinUCB the action's shared model). Returns 0, -EINVAL or -ENOMEM. */
int learn_policy_reset(learn_policy_t *p, const state_t *s, uint16_t action);

/* The probability of each action being chosen in `s` now, indexed by action
 * id (0 for actions not applicable). Thompson's is estimated by resampling
 * from `rng`. Returns 0 or -EINVAL. */
int learn_policy_probabilities(const learn_policy_t *p, const state_t *s, learn_rng_t *rng,
                               double out[ACTION_COUNT]);

/* Off-policy evaluation (learn_ope.h) of three target policies on a log of
 * decisions with their recorded propensities and rewards:
 *   LEARN_EVAL_CURRENT  `p` as it is now (learn_policy_probabilities)
 *   LEARN_EVAL_UNIFORM  every applicable action of the state alike
 *   LEARN_EVAL_GREEDY   always the action `p` is now most likely to choose
 *                       (ties share): the current policy without exploration
 * A logged action not applicable in its state has probability 0 under each.
 * Returns 0, or -EINVAL (see learn_ope_evaluate; `out` untouched). */
typedef enum {
    LEARN_EVAL_CURRENT,
    LEARN_EVAL_UNIFORM,
    LEARN_EVAL_GREEDY,
    LEARN_EVAL_COUNT
} learn_eval_target_t;
int learn_policy_evaluate(const learn_policy_t *p, const learn_ope_record_t *log, size_t n, learn_rng_t *rng,
                          learn_ope_result_t out[LEARN_EVAL_COUNT]);
/* "current", "uniform", "greedy". */
const char *learn_eval_target_name(learn_eval_target_t t);

/* The reward of seed 000 for an experiment of `action` that ended with
 * `success` and showed `improvement`, with the policy's reward config
 * (learn_reward_outcome: negative whenever success is false). 0 for an
 * unknown action. */
double learn_policy_reward(const learn_policy_t *p, uint16_t action, bool success, double improvement);

/* What the policy has learned about one (state, action), as the shell stores
 * it. `value` and `visits` are the table's (Q, or the Thompson posterior
 * mean) and always set; `has_model` and A, b, n carry LinUCB's per-action
 * model. */
typedef struct {
    char state_key[STATE_KEY_MAX];
    const char *action_name; /* static storage (learn_action.h) */
    double value;
    uint64_t visits;
    bool has_model;
    double A[BANDIT_DIM * BANDIT_DIM];
    double b[BANDIT_DIM];
    uint64_t n;
    double improvement;     /* observed mean improvement (learn_policy_observe) */
    uint64_t improvement_n; /* results it averages */
} learn_policy_entry_t;

/* Writes into `out` (`cap` bytes) the key under which the entry of `action` in
 * `s` is stored: "<state key>|<action name>", or "linucb|<action name>" for
 * LinUCB's shared model. Returns 0, or -EINVAL for an unknown action or a key
 * that does not fit. */
int learn_policy_entry_key(const learn_policy_t *p, const state_t *s, uint16_t action, char *out, size_t cap);

/* Fills `out` with what the policy holds for `action` in `s` now (the
 * initial value with 0 visits when it has never seen it). Returns 0 or
 * -EINVAL. */
int learn_policy_export(learn_policy_t *p, const state_t *s, uint16_t action, learn_policy_entry_t *out);

/* Loads a stored entry into the policy: Q-learning and Thompson take
 * (state_key, action_name, value, visits); LinUCB takes the model and needs
 * has_model. Returns 0, -ENOENT for an action no longer in the catalogue,
 * -EINVAL for an entry this policy cannot take (skip it), -ENOMEM. */
int learn_policy_import(learn_policy_t *p, const learn_policy_entry_t *e);

/* Figures for metrics and statistics: the states in the learned table (0 for
 * LinUCB, which has none), the exploration rate and the decisions made
 * (Q-learning; 0 for the bandits). */
size_t learn_policy_table_size(const learn_policy_t *p);
double learn_policy_epsilon(const learn_policy_t *p);
uint64_t learn_policy_decisions(const learn_policy_t *p);
/* Restores the exploration rate (Q-learning; a no-op for the bandits). */
void learn_policy_set_epsilon(learn_policy_t *p, double epsilon);
/* Restores the decision counter (Q-learning; a no-op for the bandits). */
void learn_policy_set_decisions(learn_policy_t *p, uint64_t decisions);

/* The learner behind the policy, for tests and inspection; NULL when it is
 * the other kind. Borrowed. */
qlearn_t *learn_policy_qlearn(learn_policy_t *p);
bandit_t *learn_policy_bandit(learn_policy_t *p);

#endif
