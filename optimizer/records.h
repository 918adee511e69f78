/* records: the Avro records the optimizer produces, built from plain structs
 * and encoded (Confluent framing) in one place for the intake, the engine and
 * the operator calls.
 *
 *   Insight               intake (telemetry) and ops (trigger)
 *   ApprovalRequest       engine, risk above the approval threshold
 *   ExperimentRequest     engine: criteria, guardrail, CANARY or AB_TEST
 *   OptimizationCommand   engine (APPLY) and ops (ROLLBACK)
 *   ApprovalResponse      ops (approve, reject)
 *
 * Every function fills a new value of the record, encodes it for `topic`
 * into *out (malloc'd, *out_len bytes; free() it) and returns 0, or fails
 * with `reason` written: HIVE_EUNAVAILABLE when the Schema Registry could not
 * be asked (retry), HIVE_EINVAL when the record cannot be built or encoded.
 * No I/O besides the codec's registry.
 */
#ifndef OPTIMIZER_RECORDS_H
#define OPTIMIZER_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avro_codec.h"
#include "hypothesis.h"

typedef struct {
    const char *insight_id, *source, *type, *priority, *component, *metric, *description;
    double current_value, baseline_value;
    int64_t timestamp_ms;
    /* labels (map<string>): `nlabels` key/value pairs */
    const char *const *label_keys;
    const char *const *label_values;
    size_t nlabels;
} records_insight_t;

/* What every ExperimentRequest asks besides the hypothesis. */
typedef struct {
    long duration_s;             /* EXPERIMENT_DURATION_SECONDS */
    double traffic_split;        /* EXPERIMENT_TRAFFIC_SPLIT */
    double min_improvement;      /* MIN_IMPROVEMENT_THRESHOLD: relative_improvement GE */
    double guardrail_error_rate; /* error_rate LT */
} records_experiment_t;

int records_insight(avro_codec_t *codec, const char *topic, const records_insight_t *in, void **out,
                    size_t *out_len, char *reason, size_t reasonlen);

/* The ApprovalRequest of `h`, requested at its creation time. */
int records_approval_request(avro_codec_t *codec, const char *topic, const hypothesis_t *h, void **out,
                             size_t *out_len, char *reason, size_t reasonlen);

/* The ExperimentRequest of `h` (experiment_type hyp_experiment_type, the
 * criteria of hyp_success_criterion), requested at its last update. */
int records_experiment_request(avro_codec_t *codec, const char *topic, const hypothesis_t *h,
                               const records_experiment_t *x, void **out, size_t *out_len, char *reason,
                               size_t reasonlen);

/* The APPLY command of an APPROVED `h`, command_id "cmd-apply-<id>". */
int records_apply(avro_codec_t *codec, const char *topic, const hypothesis_t *h, void **out, size_t *out_len,
                  char *reason, size_t reasonlen);

/* The ROLLBACK command of an APPLIED `h`, command_id "cmd-rollback-<id>";
 * `why` empty or NULL reads "rollback requested by an operator". */
int records_rollback(avro_codec_t *codec, const char *topic, const hypothesis_t *h, const char *why,
                     int64_t now_ms, void **out, size_t *out_len, char *reason, size_t reasonlen);

/* An ApprovalResponse for optimization `id` from approver "api". */
int records_approval_response(avro_codec_t *codec, const char *topic, const char *id, bool approve,
                              const char *why, int64_t now_ms, void **out, size_t *out_len, char *reason,
                              size_t reasonlen);

#endif
