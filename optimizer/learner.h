/* learner: the optimizer's policy (learn_policy.h) in a service.
 *
 * Holds the policy and its random generator behind a mutex (decisions and
 * updates run on the Kafka worker, figures are read by the APIs), and keeps
 * the learned table in MongoDB:
 *
 *   q_table: one versioned document per revision of (state, action)
 *            (store_cas_revision), holding value, visits and the experiment
 *            whose result produced it; for LinUCB, one per revision of each
 *            action's model ("linucb|<action>": A, b, n), shared by the
 *            states. Before counting a result, the learner looks for a
 *            revision naming that experiment: a replay, or another replica
 *            that already counted it, changes nothing.
 *   policy_state: epsilon and the decision counter, saved every 32nd decision.
 *
 * Blocking calls (MongoDB) are marked: worker threads only.
 */
#ifndef OPTIMIZER_LEARNER_H
#define OPTIMIZER_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn_policy.h"
#include "metrics.h"
#include "store.h"

typedef struct learner_s learner_t;

/* Creates the learner; `seed` seeds its random generator. NULL on a bad config. */
learner_t *learner_create(const learn_policy_config_t *cfg, uint64_t seed, metrics_t *metrics);
void learner_destroy(learner_t *l);

/* BLOCKING. Loads the latest revision of every table entry and the policy
 * state. Returns 0 or a HIVE_E* code. */
int learner_restore(learner_t *l, store_t *s);

/* BLOCKING. Loads from MongoDB the latest revision of every entry a
 * decision in `s` reads (the applicable actions' entries; LinUCB: their
 * models), in one query, so N replicas choose from one table. Returns 0 or a
 * HIVE_E* code. */
int learner_refresh(learner_t *l, store_t *store, const state_t *s);

/* BLOCKING. learner_refresh for the `n` states of `states` (a record batch)
 * in one query. Returns 0 or a HIVE_E* code. */
int learner_refresh_many(learner_t *l, store_t *store, const state_t *states, size_t n);

/* Chooses an action for `s` from the table in memory (no I/O: refresh the
 * batch's states first). *out_save_due tells that the policy state is due to
 * be saved (learner_save_state, once for the batch). Returns 0 or a negative code. */
int learner_choose(learner_t *l, const state_t *s, learn_decision_t *out, bool *out_save_due);

/* BLOCKING. Saves epsilon and the decision counter (policy_state, this
 * replica's document: learner_set_replica). Returns 0 or a HIVE_E* code. */
int learner_save_state(learner_t *l, store_t *store);

/* Names this replica (its stable transactional id): epsilon decays with the
 * decisions each replica makes, so each saves its own policy_state document,
 * "<policy>|<replica>", and restores from it (from the shared "<policy>"
 * document of older versions when it has none). Unnamed: "<policy>". */
void learner_set_replica(learner_t *l, const char *replica);

/* The exploration state before a batch's decisions: a batch that is retried
 * makes its decisions again, and learner_rewind puts epsilon, the decision
 * counter and the random generator back so that they count once. */
typedef struct {
    double epsilon;
    uint64_t decisions;
    learn_rng_t rng;
} learner_mark_t;
void learner_mark(learner_t *l, learner_mark_t *out);
void learner_rewind(learner_t *l, const learner_mark_t *m);

/* Chooses an action for `s` (the decision records its propensity) from the
 * shared table (learner_refresh first). BLOCKING: reads the entries, saves
 * the policy state. Returns 0 or a negative code. */
int learner_decide(learner_t *l, store_t *store, const state_t *s, learn_decision_t *out);

/* One experiment result, as the learner counts it. */
typedef struct {
    const state_t *state;      /* where the action was taken */
    uint16_t action;           /* catalogue id */
    double reward;             /* learner_reward() */
    bool success;              /* the lifecycle's success rule */
    double improvement;        /* as measured; feeds the observed mean (learn_policy_observe) */
    const state_t *next;       /* the component's state after the experiment; NULL when it is
                                * healthy again (terminal: no bootstrap) */
    const char *experiment_id; /* the result's experiment, the update's identity */
} learner_result_t;

/* BLOCKING. Counts result `r` exactly once across replays and replicas:
 * starts from the latest stored revision of the entry (from the prior when
 * there is none), applies Q(s,a) += alpha [r + gamma max Q(s',a') - Q(s,a)]
 * (or the bandit's update) and saves it by compare-and-set. *out_counted
 * tells whether this call counted it. Returns 0, HIVE_EUNAVAILABLE,
 * HIVE_ECONFLICT (another replica moved the entry: retry; memory is left as
 * before the call) or HIVE_EINVAL. */
int learner_learn(learner_t *l, store_t *store, const learner_result_t *r, bool *out_counted);

/* The in-memory step of learner_learn (no I/O): puts the entry of r back to
 * `latest` (a q_table document) or, when NULL, to the prior; applies the
 * update and the observation; writes the new entry into `out_after` and the
 * entry as it was before into `out_before` (to undo when the save fails).
 * Applying the same result twice from the same `latest` gives the same entry.
 * Returns 0 or HIVE_EINVAL. */
int learner_apply(learner_t *l, const learner_result_t *r, const bson_t *latest,
                  learn_policy_entry_t *out_before, learn_policy_entry_t *out_after);

/* Puts an entry back into the policy (the undo of learner_apply). */
void learner_restore_entry(learner_t *l, const learn_policy_entry_t *e);

/* The reward of seed 000 for an experiment of `action` that ended with
 * `success` and showed `improvement` (learn_policy_reward: negative on
 * failure). */
double learner_reward(learner_t *l, uint16_t action, bool success, double improvement);

/* For statistics and metrics; thread-safe. */
/* learn_policy_evaluate on the learner's current policy (under its lock).
 * Returns 0 or -EINVAL. */
int learner_evaluate(learner_t *l, const learn_ope_record_t *log, size_t n,
                     learn_ope_result_t out[LEARN_EVAL_COUNT]);
double learner_epsilon(learner_t *l);
size_t learner_table_size(learner_t *l);
const char *learner_policy_name(learner_t *l);

/* The q_table document format (pure, no I/O): the entry `e` of a policy
 * counted from `reward` of experiment `result_id`, as stored; free with
 * bson_destroy. NULL when out of memory. */
bson_t *learner_entry_to_bson(const learn_policy_entry_t *e, double reward, const char *result_id);

/* Reads a q_table document back into `out`. Returns 0, or -1 when it names
 * no state or action (a LinUCB document without a valid model reads with
 * has_model false). */
int learner_entry_from_bson(const bson_t *doc, learn_policy_entry_t *out);

/* True when the policy state is due to be saved after `decisions` decisions:
 * every 32nd, from the first, so a restart loses at most 32 decay steps. */
bool learner_save_due(uint64_t decisions);

#endif
