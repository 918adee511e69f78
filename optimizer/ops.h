/* ops: what an operator can ask of the optimizer, shared by the REST and the
 * gRPC APIs.
 *
 * Every call runs its MongoDB work on a worker thread and answers on the loop
 * thread through its callback, called exactly once (unless the call itself
 * returns non-zero). Changes go through Kafka, so they follow the same
 * exactly-once path as the Queen Agent's and the Analyst Agents' records:
 *   trigger   publishes an Insight (source "api") to the insights topic;
 *   approve / reject  publish an ApprovalResponse to approvals.responses;
 *   rollback  publishes a ROLLBACK OptimizationCommand for an APPLIED
 *             hypothesis; it becomes ROLLED_BACK when the applier confirms.
 */
#ifndef OPTIMIZER_OPS_H
#define OPTIMIZER_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "avro_codec.h"
#include "hive_err.h"
#include "hypothesis.h"
#include "kafka.h"
#include "learn_policy.h"
#include "metrics.h"
#include "repo.h"
#include "store.h"

/* Outcomes (hive_err.h), answered through the callbacks:
 *   0                  done
 *   HIVE_ENOTFOUND     no such optimization
 *   HIVE_ECONFLICT     its status does not allow it (rollback of a non-APPLIED one)
 *   HIVE_EINVAL        a bad argument, named at the start of the message ("priority: ...")
 *   HIVE_EDELIVERY     the record could not be delivered to Kafka
 *   HIVE_EUNAVAILABLE  MongoDB or the Schema Registry could not be reached
 * hive_status.h maps them to HTTP and gRPC statuses. */

typedef struct ops_s ops_t;

typedef struct {
    uv_loop_t *loop;
    store_t *store;              /* borrowed */
    kafka_producer_t *producer;  /* borrowed: idempotent producer */
    avro_codec_t *codec;         /* borrowed */
    metrics_t *metrics;          /* borrowed, may be NULL */
    const char *insights_topic;  /* KAFKA_INSIGHTS_TOPIC */
    const char *approvals_topic; /* approvals.responses */
    const char *commands_topic;  /* optimization.commands */
    /* Current learner figures for statistics (may be NULL). Called on the loop. */
    void (*learner_figures)(void *ctx, double *out_epsilon, size_t *out_q_table_size);
    /* Off-policy evaluation of the learner's policies on `log`, `n` records
     * (0: every estimate 0). May be NULL: ops_evaluation then answers
     * HIVE_EUNAVAILABLE. Called on a worker thread; returns 0 or -EINVAL and
     * sets `out_policy` (OPTIMIZER_POLICY, static). */
    int (*learner_evaluate)(void *ctx, const learn_ope_record_t *log, size_t n,
                            learn_ope_result_t out[LEARN_EVAL_COUNT], const char **out_policy);
    void *learner_ctx;
} ops_conf_t;

ops_t *ops_create(const ops_conf_t *conf);
/* Frees the ops; no call may be in flight (ops_pending() == 0). Accepts NULL. */
void ops_destroy(ops_t *o);
size_t ops_pending(const ops_t *o);

typedef void (*ops_hyp_cb)(void *arg, int status, const char *message, const hypothesis_t *h);
typedef void (*ops_list_cb)(void *arg, int status, const char *message, const hypothesis_t *items, size_t n,
                            size_t total);
typedef struct {
    repo_stats_t repo;
    double epsilon;
    size_t q_table_size;
} ops_stats_t;
typedef void (*ops_stats_cb)(void *arg, int status, const char *message, const ops_stats_t *stats);
typedef void (*ops_trigger_cb)(void *arg, int status, const char *message, const char *optimization_id,
                               const char *insight_id);

typedef struct {
    const char *component; /* required */
    const char *problem; /* LATENCY | ERROR_RATE | SLO_COMPLIANCE | AVAILABILITY | CONSENSUS_ACCURACY | OTHER;
                            required */
    const char *metric;  /* optional; defaults to the problem's metric */
    double current_value, baseline_value;
    const char *priority; /* LOW | MEDIUM | HIGH | CRITICAL; default HIGH */
    const char *description;
} ops_trigger_t;

int ops_get(ops_t *o, const char *id, ops_hyp_cb cb, void *arg);
int ops_list(ops_t *o, const repo_filter_t *f, ops_list_cb cb, void *arg);
int ops_statistics(ops_t *o, ops_stats_cb cb, void *arg);

/* GET /api/v1/policy/evaluation: IPS, SNIPS and the effective sample size of
 * the current, uniform and greedy policies (learn_policy_evaluate) on the
 * newest OPS_EVAL_LOG_MAX decisions with a result (repo_decision_log). With
 * no such decision, `records` is 0 and every estimate 0. */
#define OPS_EVAL_LOG_MAX 10000
typedef struct {
    const char *policy; /* OPTIMIZER_POLICY */
    size_t records;
    learn_ope_result_t estimates[LEARN_EVAL_COUNT];
} ops_eval_t;
typedef void (*ops_eval_cb)(void *arg, int status, const char *message, const ops_eval_t *eval);
int ops_evaluation(ops_t *o, ops_eval_cb cb, void *arg);
/* Validates `t` (HIVE_EINVAL with a message naming the field, answered through
 * the callback) and publishes the Insight. The optimization id is the one the
 * optimizer will give the hypothesis if the insight is not debounced. */
int ops_trigger(ops_t *o, const ops_trigger_t *t, ops_trigger_cb cb, void *arg);

/* Closes, on a worker, the hypotheses AWAITING_APPROVAL or EXPERIMENTING
 * whose expires_at has passed at `now_ms` (hyp_expire), at most 100 per call,
 * counting each in hypotheses_expired_total{status}. `cb` (may be NULL) gets
 * how many it closed. */
typedef void (*ops_expire_cb)(void *arg, int status, const char *message, size_t expired);
int ops_expire(ops_t *o, int64_t now_ms, ops_expire_cb cb, void *arg);

/* Approve or reject an AWAITING_APPROVAL hypothesis (HIVE_ECONFLICT otherwise). */
int ops_decide(ops_t *o, const char *id, bool approve, const char *reason, ops_hyp_cb cb, void *arg);
/* Roll back an APPLIED hypothesis (HIVE_ECONFLICT otherwise). */
int ops_rollback(ops_t *o, const char *id, const char *reason, ops_hyp_cb cb, void *arg);

#endif
