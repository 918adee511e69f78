/* records: model-monitor's output records. See records.h. */
#include "records.h"

#include "avro_fields.h"
#include "hive_err.h"

#include <stdio.h>
#include <string.h>

/* Encodes `v` (always released); `filled` is the outcome of filling it. */
static int finish(avro_codec_t *codec, const char *topic, avro_value_t *v, int filled, const char *what,
                  void **out, size_t *out_len, char *reason, size_t rl)
{
    int rc = HIVE_EINVAL;
    char err[200];
    if (filled != 0) {
        snprintf(reason, rl, "cannot build %s", what);
    } else if ((rc = avro_codec_encode(codec, topic, v, out, out_len, err, sizeof(err))) != 0) {
        snprintf(reason, rl, "cannot encode %s: %s", what, err);
    }
    avro_value_decref(v);
    return rc;
}

static int set_opt(avro_value_t *v, const char *field, bool has, double x)
{
    return has ? avro_set_double(v, field, x) : avro_set_null(v, field);
}

int records_health(avro_codec_t *codec, const char *topic, const monitor_report_t *r, const char *report_id,
                   void **out, size_t *out_len, char *reason, size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(codec, "ModelHealthReport", &v) != 0) {
        snprintf(reason, rl, "no ModelHealthReport schema");
        return HIVE_EINVAL;
    }
    const health_run_t *run = &r->ml.run;
    const health_verdict_t *h = &r->verdict;
    double avg = 0;
    bool has_avg = feedback_stats_avg(&r->fb, &avg);
    int rc = avro_set_string(&v, "report_id", report_id) || avro_set_string(&v, "model", r->model) ||
             avro_set_string(&v, "model_version", r->ml.version) ||
             avro_set_long(&v, "timestamp", r->at_ms) ||
             set_opt(&v, "precision", run->has_precision, run->precision) ||
             set_opt(&v, "recall", run->has_recall, run->recall) ||
             set_opt(&v, "f1_score", run->has_f1, run->f1) ||
             set_opt(&v, "accuracy", run->has_accuracy, run->accuracy) ||
             set_opt(&v, "feedback_avg", has_avg, avg) ||
             avro_set_long(&v, "feedback_count", (int64_t)r->fb.count) ||
             set_opt(&v, "aggregate_score", h->has_aggregate, h->aggregate) ||
             avro_set_bool(&v, "degraded", h->status == HEALTH_DEGRADED) ||
             avro_set_string(&v, "status", health_status_name(h->status));
    for (size_t i = 0; rc == 0 && i < h->nreasons; i++) {
        rc = avro_append_string(&v, "reasons", h->reasons[i]);
    }
    return finish(codec, topic, &v, rc, "ModelHealthReport", out, out_len, reason, rl);
}

int records_degradation(avro_codec_t *codec, const char *topic, const monitor_report_t *r,
                        const health_thresholds_t *th, const char *degradation_id, void **out,
                        size_t *out_len, char *reason, size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(codec, "ModelDegradation", &v) != 0) {
        snprintf(reason, rl, "no ModelDegradation schema");
        return HIVE_EINVAL;
    }
    const health_run_t *run = &r->ml.run;
    const health_verdict_t *h = &r->verdict;
    char details[HEALTH_MAX_REASONS * (HEALTH_REASON_LEN + 2)] = "";
    for (size_t i = 0; i < h->nreasons; i++) {
        strcat(details, i ? "; " : "");
        strcat(details, h->reasons[i]);
    }
    double avg = 0;
    bool has_avg = feedback_stats_avg(&r->fb, &avg);
    int rc = avro_set_string(&v, "degradation_id", degradation_id) ||
             avro_set_string(&v, "model", r->model) || avro_set_string(&v, "model_version", r->ml.version) ||
             avro_set_enum_name(&v, "reason", "METRICS") || avro_set_string(&v, "details", details) ||
             avro_set_long(&v, "detected_at", r->at_ms) ||
             avro_set_map_double(&v, "thresholds", "precision", th->precision) ||
             avro_set_map_double(&v, "thresholds", "recall", th->recall) ||
             avro_set_map_double(&v, "thresholds", "f1_score", th->f1) ||
             avro_set_map_double(&v, "thresholds", "feedback_avg", th->feedback_avg) ||
             avro_set_map_double(&v, "thresholds", "aggregate_score", th->aggregate);
    if (rc == 0 && run->has_precision) {
        rc = avro_set_map_double(&v, "metrics", "precision", run->precision);
    }
    if (rc == 0 && run->has_recall) {
        rc = avro_set_map_double(&v, "metrics", "recall", run->recall);
    }
    if (rc == 0 && run->has_f1) {
        rc = avro_set_map_double(&v, "metrics", "f1_score", run->f1);
    }
    if (rc == 0 && has_avg) {
        rc = avro_set_map_double(&v, "metrics", "feedback_avg", avg);
    }
    if (rc == 0 && h->has_aggregate) {
        rc = avro_set_map_double(&v, "metrics", "aggregate_score", h->aggregate);
    }
    return finish(codec, topic, &v, rc, "ModelDegradation", out, out_len, reason, rl);
}

int records_drift(avro_codec_t *codec, const char *topic, const char *model, const char *model_version,
                  double score, double threshold, const char *const *names, const drift_feature_t *features,
                  size_t n, int64_t at_ms, const char *degradation_id, void **out, size_t *out_len,
                  char *reason, size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(codec, "ModelDegradation", &v) != 0) {
        snprintf(reason, rl, "no ModelDegradation schema");
        return HIVE_EINVAL;
    }
    char details[256];
    snprintf(details, sizeof(details), "drift_score %.4g > %.4g", score, threshold);
    int rc = avro_set_string(&v, "degradation_id", degradation_id) || avro_set_string(&v, "model", model) ||
             avro_set_string(&v, "model_version", model_version) ||
             avro_set_enum_name(&v, "reason", "DRIFT") || avro_set_string(&v, "details", details) ||
             avro_set_long(&v, "detected_at", at_ms) ||
             avro_set_map_double(&v, "metrics", "drift_score", score) ||
             avro_set_map_double(&v, "thresholds", "drift_score", threshold);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (features[i].drifted) {
            rc = avro_append_string(&v, "drifted_features", names[i]);
        }
    }
    return finish(codec, topic, &v, rc, "ModelDegradation", out, out_len, reason, rl);
}
