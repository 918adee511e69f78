/* drift_watch: data drift of the models' inputs (seed 002), around drift.c.
 *
 * FeatureBatch records (ml.features) feed two collections of the service's
 * database: the first `reference_rows` rows of a model become its reference
 * (drift_references, _id = model, taken once), later batches are kept as the
 * current data (drift_windows, _id = topic-partition-offset, so a replayed
 * record is stored once). Every DRIFT_CHECK_INTERVAL a transactional timer
 * compares, per feature, the batches of the last `window_ms` (at most
 * `window_rows` rows, newest first) with the reference (drift.c), stores the
 * result (drift_reports, _id = model-slot), sets model_drift_score{model_name}
 * and, when a model's drift_score rises above the threshold, publishes one
 * ModelDegradation (reason DRIFT) naming the drifted features: once per
 * episode. All calls BLOCK (MongoDB): worker threads only.
 */
#ifndef MONITOR_DRIFT_WATCH_H
#define MONITOR_DRIFT_WATCH_H

#include "avro_codec.h"
#include "drift.h"
#include "kafka.h"
#include "metrics.h"
#include "store.h"

#include <jansson.h>

typedef struct {
    store_t *store;
    avro_codec_t *codec;
    metrics_t *metrics;
    const char *degraded_topic;
    drift_config_t dcfg;
    size_t reference_rows; /* rows of the reference */
    size_t window_rows;    /* most rows of current data compared */
    int64_t window_ms;     /* age of the current data compared */
} drift_watch_conf_t;

typedef struct drift_watch_s drift_watch_t;

/* NULL when out of memory. Free with drift_watch_destroy. */
drift_watch_t *drift_watch_create(const drift_watch_conf_t *conf);
void drift_watch_destroy(drift_watch_t *w);

/* The store's indexes (setup). */
int drift_watch_indexes(drift_watch_t *w);

/* One FeatureBatch (the pipeline's handler): KAFKA_BAD_INPUT for rows that do
 * not match feature_names, KAFKA_RETRY when the store fails. */
kafka_verdict_t drift_watch_batch(drift_watch_t *w, const rd_kafka_message_t *msg, avro_value_t *value,
                                  char *reason, size_t rl);

/* The drift check of slot `slot` at `at_ms` (the transactional timer). */
kafka_verdict_t drift_watch_tick(drift_watch_t *w, int64_t slot, int64_t at_ms, kafka_out_t *out,
                                 char *reason, size_t rl);

/* The latest drift report of `model` as JSON (*out, new reference), or
 * HIVE_ENOTFOUND, or the store's error. */
int drift_watch_latest(drift_watch_t *w, const char *model, json_t **out);

#endif
