/* records: model-monitor's output records (ModelHealthReport,
 * ModelDegradation), built from a check and encoded for their topics. */
#ifndef MONITOR_RECORDS_H
#define MONITOR_RECORDS_H

#include "avro_codec.h"
#include "drift.h"
#include "monitor.h"

#include <stddef.h>

/* The ModelHealthReport of `r` (a check that answered, r->rc == 0) with id
 * `report_id`. *out (free()) and *out_len receive the framed bytes. Returns 0
 * or a HIVE_E* code with `reason`. */
int records_health(avro_codec_t *codec, const char *topic, const monitor_report_t *r, const char *report_id,
                   void **out, size_t *out_len, char *reason, size_t rl);

/* The ModelDegradation (reason METRICS) of a degraded `r`, with thresholds
 * `th`. */
int records_degradation(avro_codec_t *codec, const char *topic, const monitor_report_t *r,
                        const health_thresholds_t *th, const char *degradation_id, void **out,
                        size_t *out_len, char *reason, size_t rl);

/* The ModelDegradation (reason DRIFT) of `model`: drift `score` over
 * `threshold`, naming the drifted features of names[0..n). */
int records_drift(avro_codec_t *codec, const char *topic, const char *model, const char *model_version,
                  double score, double threshold, const char *const *names, const drift_feature_t *features,
                  size_t n, int64_t at_ms, const char *degradation_id, void **out, size_t *out_len,
                  char *reason, size_t rl);

#endif
