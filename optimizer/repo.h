/* repo: the optimizer's MongoDB collections.
 *
 *   optimizations  one document per hypothesis, _id = hypothesis id
 *   q_table        the learner's table, one versioned document per revision of
 *                  (state, action) (store_cas_revision), each naming the
 *                  experiment whose result produced it, so a replayed result is
 *                  recognised and never counted twice, even across replicas
 *   policy_state   epsilon and counters, one document per policy
 *
 * Every call is BLOCKING (mongo-c-driver): worker threads only. Returns 0 or
 * a negative HIVE_E* code (hive_err.h).
 */
#ifndef OPTIMIZER_REPO_H
#define OPTIMIZER_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hypothesis.h"
#include "learn_ope.h"
#include "store.h"

#define REPO_OPTIMIZATIONS "optimizations"
#define REPO_Q_TABLE "q_table"
#define REPO_POLICY_STATE "policy_state"

/* The indexes the optimizer's queries need besides _id (store_ensure_indexes
 * at start): hypotheses by experiment and by component and status (the
 * debounce), q_table's latest revision of a key and its "counted already?"
 * check. */
extern const store_index_t repo_indexes[];
extern const size_t repo_indexes_count;

/* Reads one hypothesis. HIVE_ENOTFOUND when there is none. */
int repo_hyp_get(store_t *s, const char *id, hypothesis_t *out);

/* Writes a hypothesis (replace or insert by id). */
int repo_hyp_put(store_t *s, const hypothesis_t *h);

/* Reads the hypothesis whose experiment is `experiment_id`. */
int repo_hyp_by_experiment(store_t *s, const char *experiment_id, hypothesis_t *out);

/* ---- batches: one round trip per collection ----------------------------------
 * The calls below read with one {_id: {$in: [...]}} query or write with one
 * unordered bulk operation (store.h, "batches"), whatever n is. */

/* What the insight path needs of n insights, in ONE query (a scan on a
 * server that does not use the indexes costs the same for one id as for
 * 500): out_found[i] tells whether out[i] holds hypothesis ids[i], and
 * out_open[i] whether components[i] has an open hypothesis (hyp_is_open)
 * for problems[i]. NULL ids or components are skipped; an id may appear more
 * than once. {$or: [{_id: {$in}}, {component: {$in}, status: {$in: open}}]}. */
int repo_hyp_lookup_many(store_t *s, const char *const *ids, const char *const *components,
                         const char *const *problems, size_t n, hypothesis_t *out, bool *out_found,
                         bool *out_open);

/* Inserts the new hypotheses hs[0..n) in one bulk insert-once; out[i] is
 * hs[i]'s own outcome (store_bulk_insert_once: a replay writes nothing and
 * keeps the stored document). */
int repo_hyp_insert_many(store_t *s, const hypothesis_t *const *hs, size_t n, store_result_t *out);

typedef struct {
    const char *type, *component, *status; /* NULL or "" = any */
    size_t limit, offset;                  /* limit 0 = 50; at most 500 */
} repo_filter_t;

/* Lists hypotheses matching `f`, newest first. *out is an array of *out_n
 * items to free(); *out_total counts every match. */
int repo_hyp_list(store_t *s, const repo_filter_t *f, hypothesis_t **out, size_t *out_n, size_t *out_total);

typedef struct {
    size_t total;
    size_t by_status[HYP_STATUS_COUNT];
    size_t by_type_count;
    struct {
        char type[32];
        size_t n;
    } by_type[8];
    size_t with_result, succeeded, rollbacks;
    size_t application_failures; /* FAILED: the applier refused or failed; counted as failures */
    size_t expired;              /* EXPIRED: no answer in time */
    double success_rate;         /* succeeded / with_result; 0 with no result */
    double average_improvement;  /* over hypotheses with a result */
} repo_stats_t;

/* Lists at most `limit` (0 = 100) hypotheses AWAITING_APPROVAL or
 * EXPERIMENTING whose expires_at has passed at `now_ms`, oldest deadline
 * first. *out is an array of *out_n items to free(). */
int repo_hyp_list_expired(store_t *s, int64_t now_ms, size_t limit, hypothesis_t **out, size_t *out_n);

/* What the last degraded telemetry window of a component says. */
typedef struct {
    char metric[64];
    double severity;
    char priority[16];
    int64_t window_end_ms;
} repo_observation_t;

/* The latest degraded window of `component` stored by the telemetry intake
 * (telemetry_observations) that ended in [from_ms, to_ms]. *out_found false
 * when there is none: the component was healthy then. */
int repo_last_observation(store_t *s, const char *component, int64_t from_ms, int64_t to_ms,
                          repo_observation_t *out, bool *out_found);

/* Aggregates every hypothesis. */
int repo_hyp_stats(store_t *s, repo_stats_t *out);

/* The logged decisions with a result, newest first, at most `limit`: each
 * hypothesis's state (parsed from state_key), action, recorded propensity and
 * reward. Documents without a propensity in (0, 1] (written before it was
 * recorded) or with a state or action that no longer parses are skipped.
 * `*out` is malloc'd (NULL when none; free it). Returns 0 or the store error. */
int repo_decision_log(store_t *s, size_t limit, learn_ope_record_t **out, size_t *out_n);

#endif
