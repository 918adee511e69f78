/* app: model-monitor's service. See app.h. */
#include "app.h"

#include "bdoc.h"
#include "hive_err.h"
#include "log.h"
#include "offload.h"
#include "records.h"

#include <bson/bson.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_REPORTS "health_reports"
#define DAY_MS 86400000LL

static const store_index_t indexes[] = {
    {HEALTH_REPORTS, "{\"model\": 1, \"slot\": -1}", false},
};

int app_parse_specialists(app_t *app)
{
    const char *list = app->cfg->specialists;
    app->nspecialists = 0;
    if (strcmp(list, "all") == 0) {
        for (size_t i = 0; i < 5; i++) {
            app->specialists[app->nspecialists++] = monitor_specialists[i];
        }
        return 0;
    }
    for (size_t i = 0; i < 5; i++) {
        const char *s = monitor_specialists[i];
        size_t n = strlen(s);
        for (const char *p = strstr(list, s); p; p = strstr(p + 1, s)) {
            if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
                app->specialists[app->nspecialists++] = s;
                break;
            }
        }
    }
    /* every comma-separated name must have matched one specialist */
    size_t names = 1;
    for (const char *p = list; *p; p++) {
        names += *p == ',';
    }
    if (app->nspecialists == 0 || names != app->nspecialists) {
        fprintf(stderr,
                "model-monitor: invalid configuration: MONITOR_SPECIALISTS=%s (accepted: all, or a "
                "comma-separated list of technical, safety, business, ethical, legal)\n",
                list);
        return -1;
    }
    return 0;
}

static void conf_of(app_t *app)
{
    const app_config_t *c = app->cfg;
    app->mconf = (monitor_conf_t){.mlflow_uri = c->mlflow_uri,
                                  .name_suffix = c->mlflow_suffix,
                                  .mlflow_timeout_ms = c->mlflow_timeout_ms,
                                  .feedback = app->feedback,
                                  .feedback_collection = c->feedback_collection,
                                  .feedback_window_ms = c->feedback_window_days * DAY_MS,
                                  .th = c->th};
}

int app_setup(service_t *svc, void *ctx)
{
    app_t *app = ctx;
    char err[300];
    app->svc = svc;
    atomic_store(&app->mlflow_ok, true);
    atomic_store(&app->feedback_ok, true);
    if (app_parse_specialists(app) != 0) {
        return -1;
    }
    app->feedback = store_create(app->cfg->feedback_uri, app->cfg->feedback_database, err, sizeof(err));
    if (!app->feedback) {
        log_error("bad FEEDBACK_MONGODB_URI", "error", err);
        return -1;
    }
    conf_of(app);
    metrics_t *m = service_metrics(svc);
    app->score = metrics_gauge(m, "neural_hive_model_performance_score",
                               "Aggregate score 0.7 x f1 + 0.3 x feedback_avg (seed 004)", "specialist");
    app->degraded =
        metrics_gauge(m, "neural_hive_model_degradation_detected", "1 if degraded, 0 if not", "specialist");
    app->precision =
        metrics_gauge(m, "neural_hive_mlflow_model_precision", "Precision of the model's run", "specialist");
    app->recall =
        metrics_gauge(m, "neural_hive_mlflow_model_recall", "Recall of the model's run", "specialist");
    app->f1 = metrics_gauge(m, "neural_hive_mlflow_model_f1", "F1 score of the model's run", "specialist");
    app->status = metrics_gauge(m, "model_monitor_health_status",
                                "Last verdict: 0 OK, 1 DEGRADED, 2 NO_FEEDBACK, 3 NO_RUN", "specialist");
    app->feedback_count = metrics_gauge(m, "neural_hive_model_feedback_count",
                                        "Feedback ratings in the window of the last check", "specialist");
    app->feedback_total =
        metrics_counter(m, "neural_hive_model_feedback_total",
                        "Feedback ratings in the feedback collection up to the last check (the "
                        "feedback-rate SLO's numerator)",
                        "specialist");
    app->checks = metrics_counter(m, "model_monitor_checks_total", "Checks by verdict", "specialist,status");
    app->source_errors = metrics_counter(m, "model_monitor_source_errors_total",
                                         "Checks that could not reach a source (mlflow, feedback)", "source");
    drift_config_t dcfg;
    drift_config_default(&dcfg);
    dcfg.drift_threshold = app->cfg->dcfg.drift_threshold;
    dcfg.ks_p_threshold = app->cfg->dcfg.ks_p_threshold;
    dcfg.psi_threshold = app->cfg->dcfg.psi_threshold;
    dcfg.wasserstein_threshold = app->cfg->dcfg.wasserstein_threshold;
    app->drift = drift_watch_create(&(drift_watch_conf_t){
        .store = service_store(svc),
        .codec = service_codec(svc),
        .metrics = m,
        .degraded_topic = app->cfg->degraded_topic,
        .dcfg = dcfg,
        .reference_rows = (size_t)app->cfg->reference_rows,
        .window_rows = (size_t)app->cfg->window_rows,
        .window_ms = (int64_t)(app->cfg->drift_window_min * 60000.0),
    });
    if (!app->drift) {
        log_error("out of memory building the drift watch");
        return -1;
    }
    int rc = store_ensure_indexes(service_store(svc), indexes, sizeof(indexes) / sizeof(indexes[0]));
    rc = rc ? rc : drift_watch_indexes(app->drift);
    if (rc != 0) {
        log_warn("cannot create the indexes; lookups will scan", "error", hive_strerror(rc));
    }
    log_info("model-monitor set up", "specialists", app->cfg->specialists, "mlflow", app->cfg->mlflow_uri);
    return 0;
}

static void publish_gauges(app_t *app, const monitor_report_t *r)
{
    const health_run_t *run = &r->ml.run;
    const health_verdict_t *v = &r->verdict;
    const char *sp = r->specialist;
    if (v->has_aggregate) {
        metric_set(app->score, v->aggregate, sp);
    }
    if (run->has_precision) {
        metric_set(app->precision, run->precision, sp);
    }
    if (run->has_recall) {
        metric_set(app->recall, run->recall, sp);
    }
    if (run->has_f1) {
        metric_set(app->f1, run->f1, sp);
    }
    metric_set(app->degraded, v->status == HEALTH_DEGRADED ? 1.0 : 0.0, sp);
    metric_set(app->status, (double)v->status, sp);
    metric_set(app->feedback_count, (double)r->fb.count, sp);
    metric_add(app->checks, 1.0, sp, health_status_name(v->status));
}

/* Whether the model's latest report before `slot` was degraded: a new
 * ModelDegradation only opens an episode. */
static int each_prev(void *arg, const bson_t *doc)
{
    *(bool *)arg = bdoc_bool(doc, "degraded");
    return 0;
}

static int previous_degraded(store_t *s, const char *model, int64_t slot, bool *out)
{
    bson_t *filter = BCON_NEW("model", BCON_UTF8(model), "slot", "{", "$lt", BCON_INT64(slot), "}");
    bson_t *opts = BCON_NEW("sort", "{", "slot", BCON_INT32(-1), "}", "limit", BCON_INT64(1));
    *out = false;
    int rc = store_find(s, HEALTH_REPORTS, filter, opts, each_prev, out);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

static void append_opt(bson_t *d, const char *key, bool has, double v)
{
    if (has) {
        BSON_APPEND_DOUBLE(d, key, v);
    } else {
        BSON_APPEND_NULL(d, key);
    }
}

static bson_t *report_doc(const monitor_report_t *r, int64_t slot)
{
    const health_run_t *run = &r->ml.run;
    const health_verdict_t *v = &r->verdict;
    double avg = 0;
    bool has_avg = feedback_stats_avg(&r->fb, &avg);
    bson_t *d = bson_new(), arr;
    BSON_APPEND_UTF8(d, "model", r->model);
    BSON_APPEND_UTF8(d, "specialist_type", r->specialist);
    BSON_APPEND_INT64(d, "slot", slot);
    BSON_APPEND_DATE_TIME(d, "timestamp", r->at_ms);
    BSON_APPEND_UTF8(d, "status", health_status_name(v->status));
    BSON_APPEND_BOOL(d, "degraded", v->status == HEALTH_DEGRADED);
    append_opt(d, "aggregate_score", v->has_aggregate, v->aggregate);
    append_opt(d, "precision", run->has_precision, run->precision);
    append_opt(d, "recall", run->has_recall, run->recall);
    append_opt(d, "f1_score", run->has_f1, run->f1);
    append_opt(d, "accuracy", run->has_accuracy, run->accuracy);
    BSON_APPEND_UTF8(d, "run_id", r->ml.run_id);
    BSON_APPEND_UTF8(d, "model_version", r->ml.version);
    append_opt(d, "feedback_avg", has_avg, avg);
    BSON_APPEND_INT64(d, "feedback_count", (int64_t)r->fb.count);
    BSON_APPEND_INT64(d, "feedback_positive", (int64_t)r->fb.positive);
    BSON_APPEND_INT64(d, "feedback_neutral", (int64_t)r->fb.neutral);
    BSON_APPEND_INT64(d, "feedback_negative", (int64_t)r->fb.negative);
    BSON_APPEND_ARRAY_BEGIN(d, "reasons", &arr);
    for (size_t i = 0; i < v->nreasons; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(&arr, k, v->reasons[i]);
    }
    bson_append_array_end(d, &arr);
    return d;
}

static int emit(kafka_out_t *out, const char *topic, const char *key, void *bytes, size_t len, char *reason,
                size_t rl)
{
    int rc = kafka_out_add(out, topic, key, strlen(key), bytes, len, NULL);
    free(bytes);
    if (rc != 0) {
        snprintf(reason, rl, "cannot queue a record for %s", topic);
    }
    return rc;
}

/* neural_hive_model_feedback_total: the ratings of `sp` created before
 * `at_ms`, added as the difference with what this process counted already
 * (so a replayed slot adds nothing; a restart starts from 0, as a counter does). */
static void count_feedback(app_t *app, const char *sp, int64_t at_ms)
{
    size_t k = 0;
    while (k < 5 && strcmp(monitor_specialists[k], sp) != 0) {
        k++;
    }
    feedback_stats_t fb;
    uint64_t skipped = 0;
    if (k == 5 ||
        feedback_fetch(app->feedback, app->cfg->feedback_collection, sp, 0, at_ms, &fb, &skipped) != 0) {
        return;
    }
    uint64_t total = (uint64_t)fb.count + skipped;
    if (total > app->feedback_seen[k]) {
        metric_add(app->feedback_total, (double)(total - app->feedback_seen[k]), sp);
        app->feedback_seen[k] = total;
    }
}

/* One specialist of a tick: check, store, report, and a degradation when an
 * episode opens. KAFKA_RETRY replays the whole tick. */
static kafka_verdict_t tick_one(app_t *app, const char *sp, int64_t slot, int64_t at_ms, kafka_out_t *out,
                                char *reason, size_t rl)
{
    monitor_report_t r;
    int rc = monitor_check(&app->mconf, sp, at_ms, &r);
    bool ml_failed = rc != 0 && strncmp(r.error, "mlflow", 6) == 0;
    atomic_store(&app->mlflow_ok, !ml_failed);
    if (!ml_failed) {
        atomic_store(&app->feedback_ok, rc == 0);
    }
    if (rc != 0) {
        /* no data, no report: this slot stays without a verdict for `sp` */
        metric_add(app->source_errors, 1.0, ml_failed ? "mlflow" : "feedback");
        log_warn("cannot check the model", "specialist", sp, "error", r.error);
        return KAFKA_OK;
    }
    publish_gauges(app, &r);
    count_feedback(app, sp, at_ms);
    char id[160], did[192];
    snprintf(id, sizeof(id), "%s-%" PRId64, r.model, slot);
    bool prev = false;
    store_t *store = service_store(app->svc);
    bson_t *doc = report_doc(&r, slot);
    rc = previous_degraded(store, r.model, slot, &prev);
    if (rc == 0) {
        rc = store_upsert(store, HEALTH_REPORTS, id, doc);
    }
    bson_destroy(doc);
    if (rc != 0) {
        snprintf(reason, rl, "health_reports: %s", hive_strerror(rc));
        return KAFKA_RETRY;
    }
    void *bytes = NULL;
    size_t len = 0;
    avro_codec_t *codec = service_codec(app->svc);
    if (records_health(codec, app->cfg->health_topic, &r, id, &bytes, &len, reason, rl) != 0 ||
        emit(out, app->cfg->health_topic, r.model, bytes, len, reason, rl) != 0) {
        return KAFKA_RETRY;
    }
    if (r.verdict.status == HEALTH_DEGRADED && !prev) {
        snprintf(did, sizeof(did), "%s-metrics", id);
        if (records_degradation(codec, app->cfg->degraded_topic, &r, &app->cfg->th, did, &bytes, &len, reason,
                                rl) != 0 ||
            emit(out, app->cfg->degraded_topic, r.model, bytes, len, reason, rl) != 0) {
            return KAFKA_RETRY;
        }
        log_warn("model degraded", "model", r.model, "degradation_id", did, "reason", r.verdict.reasons[0]);
    }
    log_info("model checked", "model", r.model, "status", health_status_name(r.verdict.status), "report_id",
             id);
    return KAFKA_OK;
}

kafka_verdict_t app_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl)
{
    app_t *app = ctx;
    /* the slot's start: a replay of the slot reads the same feedback window */
    int64_t at_ms = slot * (int64_t)service_timer_interval_ms(app->svc, APP_HEALTH_TIMER);
    (void)now_ms;
    for (size_t i = 0; i < app->nspecialists; i++) {
        kafka_verdict_t v = tick_one(app, app->specialists[i], slot, at_ms, out, reason, rl);
        if (v != KAFKA_OK) {
            return v;
        }
    }
    return KAFKA_OK;
}

kafka_verdict_t app_feature_batch(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                  char *reason, size_t rl)
{
    (void)out;
    return drift_watch_batch(((app_t *)ctx)->drift, m, v, reason, rl);
}

kafka_verdict_t app_drift_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                               size_t rl)
{
    app_t *app = ctx;
    (void)now_ms;
    /* the slot's start, as for the health check */
    int64_t interval_ms = (int64_t)service_timer_interval_ms(app->svc, APP_DRIFT_TIMER);
    return drift_watch_tick(app->drift, slot, slot * interval_ms, out, reason, rl);
}

bool app_mlflow_ready(void *ctx)
{
    return atomic_load(&((app_t *)ctx)->mlflow_ok);
}

bool app_feedback_ready(void *ctx)
{
    return atomic_load(&((app_t *)ctx)->feedback_ok);
}

/* ---- REST: stored reports, read on a worker ------------------------------- */

typedef struct {
    app_t *app;
    http_req_t *req;
    char model[136];
    int64_t limit;
    bool raw; /* answer the result itself, not {"reports": result} */
    json_t *result;
    int rc;
} job_t;

static int each_report(void *arg, const bson_t *doc)
{
    json_t *j = monitor_doc_json(doc);
    if (j) {
        json_array_append_new(arg, j);
    }
    return 0;
}

static int find_reports(store_t *s, const char *model, int64_t limit, json_t *into)
{
    bson_t *filter = BCON_NEW("model", BCON_UTF8(model));
    bson_t *opts = BCON_NEW("sort", "{", "slot", BCON_INT32(-1), "}", "limit", BCON_INT64(limit));
    int rc = store_find(s, HEALTH_REPORTS, filter, opts, each_report, into);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

static void work_all(void *arg)
{
    job_t *j = arg;
    j->result = json_array();
    for (size_t i = 0; i < 5 && j->rc == 0; i++) {
        char model[128];
        monitor_model_name(&j->app->mconf, monitor_specialists[i], model, sizeof(model));
        j->rc = find_reports(service_store(j->app->svc), model, 1, j->result);
    }
}

static void work_history(void *arg)
{
    job_t *j = arg;
    j->result = json_array();
    j->rc = find_reports(service_store(j->app->svc), j->model, j->limit, j->result);
}

static void work_drift(void *arg)
{
    job_t *j = arg;
    j->rc = drift_watch_latest(j->app->drift, j->model, &j->result);
}

static void after(void *arg, int status)
{
    job_t *j = arg;
    if (http_req_alive(j->req)) {
        if (status == 0 && j->rc == HIVE_ENOTFOUND) {
            http_respond_error(j->req, 404, "model", "no drift report for this model yet");
        } else if (status == 0 && j->rc == 0 && j->raw) {
            http_respond_json(j->req, 200, json_incref(j->result));
        } else if (status != 0 || j->rc != 0) {
            http_respond_error(j->req, 503, NULL, "the store is unavailable");
        } else {
            http_respond_json(j->req, 200, json_pack("{s:O}", "reports", j->result));
        }
    }
    http_req_release(j->req);
    json_decref(j->result);
    atomic_fetch_sub(&j->app->pending, 1);
    free(j);
}

static void start_job(app_t *app, http_req_t *req, job_t *j, offload_work_fn work)
{
    j->app = app;
    j->req = req;
    http_req_retain(req);
    atomic_fetch_add(&app->pending, 1);
    if (offload_run(service_loop(app->svc), work, after, j) != 0) {
        atomic_fetch_sub(&app->pending, 1);
        http_respond_error(req, 503, NULL, "cannot queue the request");
        http_req_release(req);
        free(j);
    }
}

/* Drift is reported for the models named in the FeatureBatches. */
void app_get_drift(void *ctx, http_req_t *req)
{
    const char *model = http_req_param(req, "model");
    if (!model || !*model || strlen(model) > 128) {
        http_respond_error(req, 404, "model", "unknown model");
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    snprintf(j->model, sizeof(j->model), "%s", model);
    j->raw = true;
    start_job(ctx, req, j, work_drift);
}

void app_get_health_all(void *ctx, http_req_t *req)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    start_job(ctx, req, j, work_all);
}

void app_get_health_history(void *ctx, http_req_t *req)
{
    const char *model = http_req_param(req, "model");
    const char *lim = http_req_query(req, "limit");
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 20;
    app_t *app = ctx;
    bool known = false;
    for (size_t i = 0; model && i < 5 && !known; i++) {
        char name[128];
        monitor_model_name(&app->mconf, monitor_specialists[i], name, sizeof(name));
        known = strcmp(name, model) == 0;
    }
    if (!known) {
        http_respond_error(req, 404, "model", "unknown model: expected {specialist}-evaluator");
        return;
    }
    if ((lim && (*end != '\0' || end == lim)) || limit < 1 || limit > 1000) {
        http_respond_error(req, 400, "limit", "limit must be an integer in [1, 1000]");
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    snprintf(j->model, sizeof(j->model), "%s", model);
    j->limit = limit;
    start_job(ctx, req, j, work_history);
}

size_t app_pending(void *ctx)
{
    return atomic_load(&((app_t *)ctx)->pending);
}

void app_teardown(service_t *svc, void *ctx)
{
    (void)svc;
    app_t *app = ctx;
    store_destroy(app->feedback);
    app->feedback = NULL;
    drift_watch_destroy(app->drift);
    app->drift = NULL;
}
