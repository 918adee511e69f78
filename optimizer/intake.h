/* intake: the optimizer's telemetry intake, the shell around degradation.c.
 *
 * One decoded TelemetryAggregated record in: apply the degradation rule,
 * store a degraded observation in MongoDB once (keyed by the insight id), and
 * add one synthetic Insight to the Kafka transaction that commits the record's
 * offset. Runs on the Kafka pipeline's worker thread, so blocking MongoDB calls
 * are allowed here and nowhere on the loop.
 */
#ifndef OPTIMIZER_INTAKE_H
#define OPTIMIZER_INTAKE_H

#include "avro_codec.h"
#include "degradation.h"
#include "kafka.h"
#include "metrics.h"
#include "store.h"

typedef struct intake_s intake_t;

typedef struct {
    const char *insights_topic; /* where synthetic insights go */
    degradation_thresholds_t thresholds;
    avro_codec_t *codec; /* borrowed */
    store_t *store;      /* borrowed */
    metrics_t *metrics;  /* borrowed */
} intake_conf_t;

/* Creates the intake; the borrowed parts must outlive it. Free with intake_destroy(). */
intake_t *intake_create(const intake_conf_t *conf);
void intake_destroy(intake_t *in);

/* Handles one TelemetryAggregated record, `value` (decoded by the runtime,
 * borrowed), of message `msg` (service_input_fn; `ctx` is the intake):
 * KAFKA_OK after producing zero or one insight, KAFKA_BAD_INPUT with a reason
 * for a record whose fields do not validate, KAFKA_RETRY while MongoDB is
 * unavailable. */
kafka_verdict_t intake_transform(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen);

#endif
