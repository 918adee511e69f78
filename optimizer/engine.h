/* engine: the optimizer's hypothesis flow over Kafka, the shell around
 * hypothesis.c and learner.c.
 *
 *   insights.generated    HIGH/CRITICAL insight -> state -> decision -> hypothesis,
 *                         debounced (one open hypothesis per component and problem)
 *                         -> ApprovalRequest (risk > threshold) or ExperimentRequest
 *   approvals.responses   -> ExperimentRequest or REJECTED
 *   experiments.results   -> reward, learning update, APPLY command or REJECTED
 *   optimization.applied  -> APPLIED, ROLLED_BACK, or FAILED (the applier refused or failed)
 *
 * Runs as the Kafka pipeline's transform (worker thread): MongoDB writes first,
 * then the records, all committed with the consumed offsets. A replay of an
 * event whose transaction aborted finds the hypothesis already moved and emits
 * the same records again (deterministic ids), so downstream sees them once.
 */
#ifndef OPTIMIZER_ENGINE_H
#define OPTIMIZER_ENGINE_H

#include "avro_codec.h"
#include "kafka.h"
#include "learner.h"
#include "metrics.h"
#include "service.h"
#include "state.h"
#include "store.h"

typedef struct engine_s engine_t;

typedef struct {
    const char *insights_topic, *approvals_requests_topic, *approvals_responses_topic;
    const char *experiments_requests_topic, *experiments_results_topic;
    const char *commands_topic, *applied_topic;
    double risk_threshold;       /* approval above this risk; seed: 0.5 */
    double min_improvement;      /* MIN_IMPROVEMENT_THRESHOLD; seed: 0.05 */
    long experiment_duration_s;  /* EXPERIMENT_DURATION_SECONDS */
    double traffic_split;        /* EXPERIMENT_TRAFFIC_SPLIT */
    double guardrail_error_rate; /* abort above this error rate; seed: 0.05 */
    int64_t open_timeout_ms;     /* HYPOTHESIS_TIMEOUT_SECONDS: how long a hypothesis waits for an answer */
    avro_codec_t *codec;         /* borrowed */
    store_t *store;              /* borrowed */
    learner_t *learner;          /* borrowed */
    metrics_t *metrics;          /* borrowed */
} engine_conf_t;

engine_t *engine_create(const engine_conf_t *conf);
void engine_destroy(engine_t *e);

/* What the engine reads of an Insight. The strings are borrowed from the
 * decoded value. */
typedef struct {
    const char *insight_id, *component, *metric, *priority, *description;
    /* component, problem (the "problem" label when it names one, otherwise
     * state_problem_of_metric), priority, current and baseline values */
    state_insight_t state;
} engine_insight_t;

/* Reads a decoded Insight into `out`. Returns 0, or -1 naming the missing or
 * malformed field in `reason` (the record is bad input). Pure. */
int engine_read_insight(avro_value_t *v, engine_insight_t *out, char *reason, size_t reasonlen);

/* Handles one approval, experiment result or application record
 * (service_input_fn; `ctx` is the engine): `value` is the record of `msg`,
 * decoded by the runtime as the topic's record (borrowed). Insights take the
 * batch path, engine_insights_batch(). */
kafka_verdict_t engine_transform(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen);

/* ---- the debounce of one batch (pure, exposed for tests) ---- */

/* What happens to one insight of a batch. */
typedef enum {
    ENGINE_STEP_NONE,     /* not a candidate (below HIGH, bad) or rejected */
    ENGINE_STEP_REPLAY,   /* its hypothesis exists: emit its records again */
    ENGINE_STEP_PROPOSE,  /* a new hypothesis */
    ENGINE_STEP_SUPPRESS, /* debounced: its component and problem have an open hypothesis */
} engine_step_t;

/* One insight of a batch as the debounce sees it. */
typedef struct {
    const char *key;  /* "<component>|<problem>"; NULL: not a candidate */
    bool replay;      /* its hypothesis exists already */
    bool replay_open; /* ... and is open */
    bool store_open;  /* the store holds an open hypothesis for `key` */
} engine_batch_item_t;

/* Proposes a hypothesis for item i: 0 with *out_open telling whether the
 * new hypothesis is open (a decision to change nothing is not), a positive
 * value when the record is rejected (it changes nothing), a negative HIVE_E*
 * code to stop. */
typedef int (*engine_propose_fn)(void *arg, size_t i, bool *out_open);

/* Decides items[0..n) in record order, as one record at a time would: a
 * replay sets its key's state to its hypothesis'; another item is suppressed
 * when its key is open (the batch's own state first, else the store's),
 * otherwise `propose` is called and the key takes the new hypothesis' state.
 * Fills out_steps[0..n). Returns 0, or the proposer's negative code, or
 * HIVE_ENOMEM. */
int engine_batch_plan(const engine_batch_item_t *items, size_t n, engine_propose_fn propose, void *arg,
                      engine_step_t *out_steps);

/* Handles the Insight records of one transaction together (service_batch_fn;
 * `ctx` is the engine), with the semantics of one record at a time: the
 * hypotheses of the batch's insights (replays) and the open hypotheses of
 * their components and problems (the debounce) are read in one query
 * (repo_hyp_lookup_many); the policy decides in record order
 * (engine_batch_plan), so a second insight for a component and problem whose
 * hypothesis the batch has just opened is suppressed; the new hypotheses go
 * in one bulk insert-once; then each insight's records. A bad record, or one
 * whose document the store refuses, goes to the DLQ alone; a transient store
 * failure returns KAFKA_RETRY for the batch; a replay emits the same records. */
kafka_verdict_t engine_insights_batch(void *ctx, kafka_in_t *kin, const service_record_t *recs, size_t n);

#endif
