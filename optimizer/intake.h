/* intake: the optimizer's telemetry intake, the shell around degradation.c.
 *
 * The TelemetryAggregated records of one transaction in: apply the
 * degradation rule to each, store the degraded observations in MongoDB once
 * (keyed by the insight id, one bulk operation), and add one synthetic Insight
 * per degraded window to the Kafka transaction that commits the offsets.
 * Runs on the Kafka pipeline's worker thread, so blocking MongoDB calls are
 * allowed here and nowhere on the loop.
 */
#ifndef OPTIMIZER_INTAKE_H
#define OPTIMIZER_INTAKE_H

#include "avro_codec.h"
#include "degradation.h"
#include "kafka.h"
#include "metrics.h"
#include "service.h"
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

/* Handles the TelemetryAggregated records of one transaction together
 * (service_batch_fn; `ctx` is the intake): the rule record by record, then
 * ONE bulk insert-once of the degraded observations, then one Insight per
 * stored observation on that record's outputs. A record that does not read
 * or validate, or whose observation the store refuses (HIVE_EREJECTED, with
 * the server's message), goes to the DLQ alone; a transient store failure
 * returns KAFKA_RETRY for the batch. A replayed batch writes nothing new and
 * emits the same insights (their ids hash service and window). */
kafka_verdict_t intake_transform_batch(void *ctx, kafka_in_t *kin, const service_record_t *recs, size_t n);

#endif
