#include "intake.h"

#include "hive_err.h"
#include "log.h"
#include "records.h"
#include "service.h"
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

/* One record of a batch, as the intake sees it. */
typedef struct {
    telemetry_view_t t;
    degradation_t d;
    char service[256];
    bool degraded;
} slot_t;

/* Reads and judges one record; KAFKA_OK with sl->degraded set or not, or
 * KAFKA_BAD_INPUT with a reason. Pure (no store). */
static kafka_verdict_t judge(intake_t *in, avro_value_t *value, slot_t *sl, char *reason, size_t reasonlen)
{
    if (read_telemetry(value, &sl->t, sl->service, sizeof(sl->service), reason, reasonlen) != 0) {
        return KAFKA_BAD_INPUT;
    }
    sl->t.service = sl->service;
    int rc = degradation_detect(&in->conf.thresholds, &sl->t, &sl->d);
    if (rc < 0) {
        snprintf(reason, reasonlen,
                 "invalid TelemetryAggregated: NaN value or window_end before window_start");
        return KAFKA_BAD_INPUT;
    }
    sl->degraded = rc == 1;
    return KAFKA_OK;
}

kafka_verdict_t intake_transform_batch(void *ctx, kafka_in_t *kin, const service_record_t *recs, size_t n)
{
    intake_t *in = ctx;
    double started = timeutil_mono_seconds();
    kafka_verdict_t verdict = KAFKA_RETRY;
    char reason[512];
    slot_t *slots = calloc(n ? n : 1, sizeof(*slots));
    size_t *which = calloc(n ? n : 1, sizeof(*which)); /* degraded slot -> record */
    store_doc_t *docs = calloc(n ? n : 1, sizeof(*docs));
    store_result_t *res = calloc(n ? n : 1, sizeof(*res));
    size_t m = 0;
    if (!slots || !which || !docs || !res) {
        goto out;
    }
    /* 1. The rule, record by record (pure): a bad record is rejected alone. */
    for (size_t i = 0; i < n; i++) {
        reason[0] = '\0';
        if (judge(in, recs[i].value, &slots[i], reason, sizeof(reason)) != KAFKA_OK) {
            kafka_in_reject(kin, recs[i].index, reason);
            continue;
        }
        metric_add(in->records, 1);
        if (slots[i].degraded) {
            which[m] = i;
            docs[m] =
                (store_doc_t){slots[i].d.insight_id, observation_doc(&slots[i].t, &slots[i].d, recs[i].msg)};
            m++;
        }
    }
    /* 2. Store first, every degraded observation in one bulk insert-once: if
     * the transaction aborts later, the replay inserts nothing new. */
    int rc = m ? store_bulk_insert_once(in->conf.store, OBSERVATIONS, docs, m, res) : 0;
    if (rc != 0) {
        metric_add(in->store_errors, 1, hive_errname(rc));
        verdict_for_error(rc, "storing the observations", store_last_error(), reason, sizeof(reason));
        log_warn("cannot store the observations, retrying the batch", "error", reason);
        goto out;
    }
    /* 3. One Insight per stored observation; a refused one goes to the DLQ alone. */
    size_t fresh = 0;
    for (size_t j = 0; j < m; j++) {
        const service_record_t *r = &recs[which[j]];
        const slot_t *sl = &slots[which[j]];
        if (res[j].status != 0) {
            metric_add(in->store_errors, 1, hive_errname(res[j].status));
            if (verdict_for_error(res[j].status, "storing the observation", res[j].message, reason,
                                  sizeof(reason)) != KAFKA_BAD_INPUT) {
                goto out;
            }
            kafka_in_reject(kin, r->index, reason);
            continue;
        }
        fresh += res[j].inserted;
        void *bytes = NULL;
        size_t len = 0;
        if (encode_insight(in, &sl->t, &sl->d, &bytes, &len, reason, sizeof(reason)) != 0) {
            log_error("cannot encode an insight", "error", reason);
            goto out; /* our own encoder failing is not the input's fault */
        }
        rc = kafka_out_add(r->out, in->conf.insights_topic, sl->service, strlen(sl->service), bytes, len,
                           NULL);
        free(bytes);
        if (rc != 0) {
            goto out;
        }
        metric_add(in->degradations, 1, sl->d.metric);
        metric_add(in->insights, 1, sl->d.priority);
    }
    verdict = KAFKA_OK;
    double per_record = n ? (timeutil_mono_seconds() - started) / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        metric_observe(in->duration, per_record);
    }
    char nrec[24], nnew[24];
    snprintf(nrec, sizeof(nrec), "%zu", n);
    snprintf(nnew, sizeof(nnew), "%zu", fresh);
    log_debug("telemetry batch", "records", nrec, "new_observations", nnew);
out:
    for (size_t j = 0; docs && j < m; j++) {
        bson_destroy((bson_t *)docs[j].doc);
    }
    free(res);
    free(docs);
    free(which);
    free(slots);
    return verdict;
}
