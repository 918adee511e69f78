/* runner: the experiment manager's Kafka side, on the pipeline's worker.
 *
 * - runner_request: an ExperimentRequest becomes a stored experiment
 *   (idempotent by experiment_id); nothing is published yet.
 * - runner_telemetry: a TelemetryAggregated record labelled with `variant`
 *   and `experiment_id` is stored as one window of that variant (idempotent);
 *   unlabelled records are skipped.
 * - runner_tick: the transactional timer. Each slot looks at every experiment
 *   not yet committed as done (judge_look) and produces its TrafficAssignment
 *   (experiments.assignments, key target) and, at the end, its
 *   ExperimentResult (experiments.results, key experiment_id).
 *
 * Exactly once across crashes. A look stages its new state and the exact
 * bytes it produces in the experiment's document (`staged`, with its slot)
 * before the slot commits. The next tick reads the timer's marker (the last
 * committed slot): a staged slot at or below it was committed and becomes
 * the `committed` state; a staged slot above it never was (the process died
 * before the commit and the new owner skipped that slot), so it is dropped and
 * the experiment is looked at again from its committed state; a staged slot
 * equal to the running one (a retried slot) is published again byte for byte.
 */
#ifndef EXPMGR_RUNNER_H
#define EXPMGR_RUNNER_H

#include "judge.h"
#include "kafka.h"
#include "metrics.h"
#include "repo.h"
#include "service.h"

/* The evaluation timer's marker name; its slots are EVALUATION_INTERVAL_MS
 * long (the name changed with the unit: "evaluate" counted 1 s slots). */
#define RUNNER_TIMER "evaluation"

typedef struct {
    judge_conf_t judge;
    double time_scale; /* EXPERIMENT_TIME_SCALE: multiplies requested durations */
    const char *assignments_topic, *results_topic;
    const char *prometheus_url; /* PROMETHEUS_URL: the metric sources' server */
    long prometheus_timeout_ms;
    int64_t interval_ms; /* EVALUATION_INTERVAL_MS: a look's window */
} runner_conf_t;

typedef struct runner_s runner_t;

/* Builds the runner over the service's clients (borrowed). NULL on ENOMEM. */
runner_t *runner_create(const runner_conf_t *conf, service_t *svc);
void runner_destroy(runner_t *r);

/* Turns a decoded ExperimentRequest into an exp_t (durations scaled). */
int runner_exp_from_avro(const runner_conf_t *conf, avro_value_t *v, exp_t *out, char *reason, size_t rl);

/* service_input_fn of experiments.requests and telemetry.aggregated. */
kafka_verdict_t runner_request(void *r, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                               char *reason, size_t rl);
kafka_verdict_t runner_telemetry(void *r, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                 char *reason, size_t rl);
/* kafka_tick_fn of the evaluation timer. */
kafka_verdict_t runner_tick(void *r, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl);

/* Counts a new experiment in experiments_submitted_total{type}. */
void runner_count_submitted(runner_t *r, judge_type_t type);

#endif
