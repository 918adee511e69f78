/* applier: the shell both appliers share (weight-recalibrator, slo-adjuster).
 *
 * An applier owns versioned parameter sets, one per target (a Consensus
 * Engine's weights, a service's SLOs), in one MongoDB collection written only
 * by compare-and-set on `revision` (store.h). For each OptimizationCommand of
 * a type it owns, inside the pipeline's transaction (worker thread):
 *
 *   1. takes the Redis lock "<lock_prefix>:<target>" with a random token
 *      (lock_sync.h; held elsewhere or Redis down: KAFKA_RETRY, nothing is
 *      applied and the command comes again);
 *   2. a command already applied (a revision carries its command_id, the
 *      transaction that wrote it was aborted) re-emits the records stored
 *      with that revision, byte for byte: each command is applied once;
 *   3. reads the current revision (the first time, writes the domain's
 *      initial values as revision 1); a command whose expected_revision is
 *      not the current one is REJECTED;
 *   4. APPLY: the domain computes the new values (bounds, projection) or
 *      refuses with a reason; ROLLBACK: the revision before the one the
 *      optimization applied (or rollback_to_revision) is restored;
 *   5. compare-and-sets revision + 1 (the fence: a writer whose lock expired
 *      finds the revision moved and retries), with the records it produces;
 *   6. adds the state record (ConsensusWeights, ServiceSLO) on the compacted
 *      state topic and the OptimizationEvent (APPLIED, ROLLED_BACK or
 *      REJECTED, with causal_analysis, adjustments, rollback_plan and the
 *      SHA-256 of the canonical payload) to the transaction;
 *   7. releases the lock.
 *
 * Impact watch: every APPLY opens a watch on the target's telemetry
 * (telemetry.aggregated, stored by applier_on_telemetry). applier_watch_tick,
 * a transactional timer, decides each open watch (apply.h) and rolls a change
 * whose metric worsened beyond the threshold within the window back through
 * step 1-7, once: its command id is derived from the watched revision.
 *
 * Collections: <coll> (revisions), watches, observations. Metrics:
 * optimizations_applied_total{type}, rollbacks_total{type},
 * optimization_refusals_total{type,reason}, validation_failures_total{type},
 * lock_contention_total, impact_watches_open.
 */
#ifndef HIVE_APPLIER_H
#define HIVE_APPLIER_H

#include <avro.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "avro_codec.h"
#include "kafka.h"
#include "metrics.h"
#include "redis_sync.h"
#include "store.h"

#define APPLIER_MAX_PARAMS 16
#define APPLIER_NAME_MAX 64

/* A named parameter set: the state of one target, or a command's adjustments. */
typedef struct {
    char name[APPLIER_MAX_PARAMS][APPLIER_NAME_MAX];
    double value[APPLIER_MAX_PARAMS];
    size_t n;
} applier_params_t;

/* The value of `name` in `p`, or -1 when absent. */
int applier_params_get(const applier_params_t *p, const char *name, double *out);
/* Sets (adds or replaces) `name`. Returns 0, or -1 when full or the name is too long. */
int applier_params_set(applier_params_t *p, const char *name, double value);

/* One OptimizationCommand, read (strings point into the decoded record). */
typedef struct {
    const char *command_id, *command, *optimization_id, *optimization_type, *target;
    const char *experiment_id; /* NULL when absent */
    const char *reason;
    apply_mode_t mode;
    applier_params_t adjustments;
    bool has_expected_revision, has_rollback_to;
    int64_t expected_revision, rollback_to;
    int64_t issued_at_ms;
} applier_cmd_t;

/* What the domain says about a command: a refusal's code (a metric label,
 * "bounds") and reason, or figures for causal_analysis.evidence. */
typedef struct {
    char code[32];
    char reason[256];
    applier_params_t evidence;
} applier_note_t;

/* The domain: what the values mean. Called on worker threads. */
typedef struct {
    /* The values of a target never written before. */
    void (*initial)(void *ctx, const char *target, applier_params_t *out);
    /* The values an APPLY leads to from `cur`: 0 with *out set; HIVE_EREJECTED
     * with note->code and note->reason (the command is refused); another
     * HIVE_E* code for a transient failure (retried). */
    int (*compute)(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
                   applier_note_t *note);
    /* Fills `rec` (a fresh value of conf.state_record) with the state. Returns 0 or -1. */
    int (*fill_state)(void *ctx, avro_value_t *rec, const char *target, const applier_params_t *st,
                      int64_t revision, const char *optimization_id, int64_t now_ms);
} applier_domain_t;

typedef struct {
    const char *name;         /* "weight-recalibrator": applied_by, logs */
    const char *lock_prefix;  /* "weights": lock "weights:<target>" */
    const char *coll;         /* "weights": the versioned collection */
    const char *state_record; /* "ConsensusWeights" */
    const char *state_topic;  /* consensus.weights */
    const char *events_topic; /* optimization.applied */
    const char *const *types; /* optimization types owned ("WEIGHT_RECALIBRATION") */
    size_t ntypes;
    unsigned lock_ttl_ms;
    /* Impact watch: metric of TelemetryAggregated (error_rate, latency_p95_ms,
     * slo_compliance, availability), relative worsening that rolls back, window. */
    const char *watch_metric;
    double watch_threshold;
    int64_t watch_window_ms;
    store_t *store;
    redis_sync_t *redis;
    avro_codec_t *codec;
    metrics_t *metrics;
    applier_domain_t domain;
    void *domain_ctx;
} applier_conf_t;

typedef struct applier_s applier_t;

/* Creates an applier; `conf` is copied, its strings and clients borrowed (they
 * must outlive it). Returns NULL on a bad conf or out of memory. Free with
 * applier_destroy(). */
applier_t *applier_create(const applier_conf_t *conf);
void applier_destroy(applier_t *a);

/* BLOCKING. Creates the indexes the applier's queries use. */
int applier_ensure_indexes(applier_t *a);

/* True when `metric` names a metric the watch can read. */
bool applier_watch_metric_known(const char *metric);

/* Input handler of optimization.commands (service_input_fn). Commands of
 * types the applier does not own are skipped (KAFKA_OK, no output). */
kafka_verdict_t applier_on_command(applier_t *a, const rd_kafka_message_t *msg, avro_value_t *cmd,
                                   kafka_out_t *out, char *reason, size_t reasonlen);

/* Input handler of telemetry.aggregated: stores the observation (once per
 * service and window); measurements of experiment variants are skipped. */
kafka_verdict_t applier_on_telemetry(applier_t *a, const rd_kafka_message_t *msg, avro_value_t *rec,
                                     kafka_out_t *out, char *reason, size_t reasonlen);

/* Transactional timer (kafka_tick_fn, ctx: the applier): decides the open
 * impact watches and rolls degraded changes back. */
kafka_verdict_t applier_watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                                   size_t reasonlen);

/* BLOCKING. Requests and errors of `target`'s telemetry whose window ended
 * after `since_ms` (the error budget of the slo-adjuster). */
int applier_telemetry_sum(applier_t *a, const char *target, int64_t since_ms, int64_t *out_requests,
                          int64_t *out_errors);

/* BLOCKING. The current state of `target` as JSON ({target, revision, values,
 * optimization_id, command, applied_at}); revision 0 with the initial values
 * when never written. Returns 0 with *out set (json_decref), or a HIVE_E* code. */
int applier_current_json(applier_t *a, const char *target, json_t **out);

/* BLOCKING. The revisions of `target`, newest first, at most `limit`, as a JSON array. */
int applier_history_json(applier_t *a, const char *target, size_t limit, json_t **out);

#endif
