#include "intake.h"

#include "hive_err.h"
#include "log.h"
#include "records.h"
#include "timeutil.h"
#include "verdict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBSERVATIONS "telemetry_observations"

struct intake_s {
    intake_conf_t conf;
    metric_t *records, *degradations, *insights, *duration, *store_errors;
};

intake_t *intake_create(const intake_conf_t *conf)
{
    intake_t *in = calloc(1, sizeof(*in));
    if (!in) {
        return NULL;
    }
    in->conf = *conf;
    metrics_t *m = conf->metrics;
    in->records = metrics_counter(m, "telemetry_records_total", "Telemetry windows decoded", NULL);
    in->degradations = metrics_counter(m, "degradations_detected_total",
                                       "Degraded telemetry windows, by the worst broken rule", "metric");
    in->insights = metrics_counter(m, "insights_generated_total", "Synthetic insights produced", "priority");
    in->duration = metrics_histogram(m, "optimization_processing_duration_seconds",
                                     "Time to process one input record", NULL, NULL, 0);
    in->store_errors = metrics_counter(m, "store_errors_total", "MongoDB calls that failed", "code");
    return in;
}

void intake_destroy(intake_t *in)
{
    free(in);
}

/* Reads the fields the rule needs; fails naming the first missing field. */
static int read_telemetry(avro_value_t *v, telemetry_view_t *t, char *service, size_t service_len,
                          char *reason, size_t reasonlen)
{
    const char *s = NULL;
    size_t len = 0;
    const char *field = "service";
    if (avro_get_string(v, field, &s, &len) != 0 || len == 0 || len >= service_len) {
        goto bad;
    }
    memcpy(service, s, len);
    service[len] = '\0';
    t->service = service;
    if (avro_get_long(v, field = "window_start", &t->window_start_ms) != 0 ||
        avro_get_long(v, field = "window_end", &t->window_end_ms) != 0 ||
        avro_get_double(v, field = "slo_compliance", &t->slo_compliance) != 0 ||
        avro_get_double(v, field = "latency_p95_ms", &t->latency_p95_ms) != 0 ||
        avro_get_double(v, field = "error_rate", &t->error_rate) != 0) {
        goto bad;
    }
    return 0;
bad:
    snprintf(reason, reasonlen, "invalid TelemetryAggregated: field %s missing or malformed", field);
    return -1;
}

/* The observation stored in MongoDB: what was seen and what was decided. */
static bson_t *observation_doc(const telemetry_view_t *t, const degradation_t *d,
                               const rd_kafka_message_t *msg)
{
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "service", t->service);
    BSON_APPEND_DATE_TIME(doc, "window_start", t->window_start_ms);
    BSON_APPEND_DATE_TIME(doc, "window_end", t->window_end_ms);
    BSON_APPEND_DOUBLE(doc, "slo_compliance", t->slo_compliance);
    BSON_APPEND_DOUBLE(doc, "latency_p95_ms", t->latency_p95_ms);
    BSON_APPEND_DOUBLE(doc, "error_rate", t->error_rate);
    BSON_APPEND_UTF8(doc, "violations", d->violations);
    BSON_APPEND_UTF8(doc, "metric", d->metric);
    BSON_APPEND_DOUBLE(doc, "severity", d->severity);
    BSON_APPEND_UTF8(doc, "priority", d->priority);
    BSON_APPEND_UTF8(doc, "topic", rd_kafka_topic_name(msg->rkt));
    BSON_APPEND_INT32(doc, "partition", msg->partition);
    BSON_APPEND_INT64(doc, "offset", msg->offset);
    return doc;
}

/* Builds and encodes the synthetic Insight. Returns 0 or a HIVE_E* code with `reason`. */
static int encode_insight(intake_t *in, const telemetry_view_t *t, const degradation_t *d, void **out,
                          size_t *out_len, char *reason, size_t reasonlen)
{
    char severity[32];
    snprintf(severity, sizeof(severity), "%.4f", d->severity);
    static const char *const keys[] = {"violations", "severity"};
    const char *const values[] = {d->violations, severity};
    const records_insight_t ins = {
        .insight_id = d->insight_id,
        .source = "optimizer.telemetry",
        .type = "DEGRADATION",
        .priority = d->priority,
        .component = t->service,
        .metric = d->metric,
        .current_value = d->current_value,
        .baseline_value = d->baseline_value,
        .description = d->description,
        .timestamp_ms = t->window_end_ms,
        .label_keys = keys,
        .label_values = values,
        .nlabels = 2,
    };
    return records_insight(in->conf.codec, in->conf.insights_topic, &ins, out, out_len, reason, reasonlen);
}

kafka_verdict_t intake_transform(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen)
{
    intake_t *in = ctx;
    double started = timeutil_mono_seconds();
    telemetry_view_t t;
    char service[256];
    int rc = read_telemetry(value, &t, service, sizeof(service), reason, reasonlen);
    if (rc != 0) {
        return KAFKA_BAD_INPUT;
    }
    metric_add(in->records, 1);

    degradation_t d;
    rc = degradation_detect(&in->conf.thresholds, &t, &d);
    if (rc < 0) {
        snprintf(reason, reasonlen,
                 "invalid TelemetryAggregated: NaN value or window_end before window_start");
        return KAFKA_BAD_INPUT;
    }
    if (rc == 0) {
        metric_observe(in->duration, timeutil_mono_seconds() - started);
        return KAFKA_OK;
    }

    /* Store first: if the transaction aborts later, the replay finds the
     * observation already there and inserts nothing. */
    bson_t *doc = observation_doc(&t, &d, msg);
    bool inserted = false;
    rc = store_insert_once(in->conf.store, OBSERVATIONS, d.insight_id, doc, &inserted);
    bson_destroy(doc);
    if (rc != 0) {
        /* Unavailable or slow: retry. Refused (a value the server does not
         * take): the record goes to the DLQ with the server's message. */
        metric_add(in->store_errors, 1, hive_errname(rc));
        return verdict_for_error(rc, "storing the observation", store_last_error(), reason, reasonlen);
    }

    void *bytes = NULL;
    size_t len = 0;
    if (encode_insight(in, &t, &d, &bytes, &len, reason, reasonlen) != 0) {
        return KAFKA_RETRY; /* our own encoder failing is not the input's fault */
    }
    rc = kafka_out_add(out, in->conf.insights_topic, t.service, strlen(t.service), bytes, len, NULL);
    free(bytes);
    if (rc != 0) {
        snprintf(reason, reasonlen, "cannot queue the insight");
        return KAFKA_RETRY;
    }
    metric_add(in->degradations, 1, d.metric);
    metric_add(in->insights, 1, d.priority);
    metric_observe(in->duration, timeutil_mono_seconds() - started);
    log_debug("degradation detected", "insight_id", d.insight_id, "component", t.service, "metric", d.metric,
              "stored", inserted ? "new" : "replay");
    return KAFKA_OK;
}
