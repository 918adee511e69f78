/* runner: see runner.h. */
#include "runner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_fields.h"
#include "bdoc.h"
#include "fnv.h"
#include "hive_err.h"
#include "log.h"
#include "prom.h"
#include "timeutil.h"
#include "verdict.h"

struct runner_s {
    runner_conf_t conf;
    store_t *store;
    avro_codec_t *codec;
    kafka_pipeline_t *pipeline;
    int64_t prom_down_slot; /* the slot in which Prometheus could not be reached (no more queries in it) */
    metric_t *submitted, *succeeded, *failed, *active, *duration, *guardrail, *srm, *no_data, *rollbacks;
};

static const double duration_bounds[] = {60, 300, 900, 1800, 3600, 7200, 21600, 86400, 259200, 604800};

runner_t *runner_create(const runner_conf_t *conf, service_t *svc)
{
    runner_t *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->conf = *conf;
    r->prom_down_slot = INT64_MIN;
    r->store = service_store(svc);
    r->codec = service_codec(svc);
    r->pipeline = service_pipeline(svc);
    metrics_t *m = service_metrics(svc);
    r->submitted = metrics_counter(m, "experiments_submitted_total", "Experiments submitted", "type");
    r->succeeded = metrics_counter(m, "experiments_succeeded_total", "Experiments accepted", NULL);
    r->failed =
        metrics_counter(m, "experiments_failed_total", "Experiments rejected, aborted or failed", NULL);
    r->active = metrics_gauge(m, "experiments_active", "Experiments running (as of the last look)", NULL);
    r->duration =
        metrics_histogram(m, "experiment_duration_seconds", "Duration of finished experiments", NULL,
                          duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
    r->guardrail = metrics_counter(m, "experiment_guardrail_violations_total", "Guardrail breaches by metric",
                                   "guardrail");
    r->srm = metrics_counter(m, "experiment_srm_detections_total", "Sample-ratio mismatches detected", NULL);
    r->no_data =
        metrics_counter(m, "experiment_no_data_intervals_total", "Looks that found no new data", NULL);
    r->rollbacks = metrics_counter(m, "rollbacks_total", "Experiments rolled back to the baseline", "type");
    return r;
}

void runner_destroy(runner_t *r)
{
    free(r);
}

void runner_count_submitted(runner_t *r, judge_type_t type)
{
    metric_add(r->submitted, 1, judge_type_name(type));
}

/* ---- experiments.requests ------------------------------------------------ */

static int read_criteria(avro_value_t *v, const char *field, judge_criterion_t *out, size_t *n, char *reason,
                         size_t rl)
{
    avro_value_t arr, item;
    size_t size = 0;
    *n = 0;
    if (avro_value_get_by_name(v, field, &arr, NULL) != 0 || avro_value_get_size(&arr, &size) != 0) {
        snprintf(reason, rl, "%s missing", field);
        return HIVE_EINVAL;
    }
    if (size > JUDGE_MAX_CRITERIA) {
        snprintf(reason, rl, "%s: at most %d items", field, JUDGE_MAX_CRITERIA);
        return HIVE_EINVAL;
    }
    for (size_t i = 0; i < size; i++) {
        const char *metric = NULL, *op = NULL;
        size_t len;
        if (avro_value_get_by_index(&arr, i, &item, NULL) != 0 ||
            avro_get_string(&item, "metric", &metric, &len) || avro_get_enum_name(&item, "operator", &op) ||
            avro_get_double(&item, "threshold", &out[i].threshold) || len >= JUDGE_NAME ||
            judge_op_parse(op, &out[i].op) != 0 || !isfinite(out[i].threshold)) {
            snprintf(reason, rl, "%s[%zu]: metric (at most %d characters), operator or threshold invalid",
                     field, i, JUDGE_NAME - 1);
            return HIVE_EINVAL;
        }
        snprintf(out[i].metric, JUDGE_NAME, "%s", metric);
    }
    *n = size;
    return 0;
}

static void copy_opt(avro_value_t *v, const char *field, char *dst, size_t cap)
{
    const char *s = NULL;
    size_t len = 0;
    dst[0] = 0;
    if (avro_get_nullable_string(v, field, &s, &len) == 0 && s) {
        snprintf(dst, cap, "%.*s", (int)len, s);
    }
}

int runner_exp_from_avro(const runner_conf_t *conf, avro_value_t *v, exp_t *e, char *reason, size_t rl)
{
    memset(e, 0, sizeof(*e));
    const char *id = NULL, *by = NULL, *type = NULL, *target = NULL, *hyp = NULL;
    size_t idl, byl, tl, hl;
    int64_t duration = 0;
    if (avro_get_string(v, "experiment_id", &id, &idl) || avro_get_string(v, "requested_by", &by, &byl) ||
        avro_get_enum_name(v, "experiment_type", &type) || avro_get_string(v, "target", &target, &tl) ||
        avro_get_double(v, "traffic_split", &e->def.split) ||
        avro_get_long(v, "duration_seconds", &duration) ||
        avro_get_long(v, "requested_at", &e->requested_at_ms) || judge_type_parse(type, &e->def.type) != 0) {
        snprintf(reason, rl, "invalid ExperimentRequest: a required field is missing");
        return HIVE_EINVAL;
    }
    snprintf(e->id, sizeof(e->id), "%.*s", (int)idl, id);
    snprintf(e->requested_by, sizeof(e->requested_by), "%.*s", (int)byl, by);
    snprintf(e->target, sizeof(e->target), "%.*s", (int)tl, target);
    if (avro_get_string(v, "hypothesis", &hyp, &hl) == 0) {
        snprintf(e->hypothesis, sizeof(e->hypothesis), "%.*s", (int)hl, hyp);
    }
    copy_opt(v, "optimization_id", e->optimization_id, sizeof(e->optimization_id));
    copy_opt(v, "candidate_version", e->candidate_version, sizeof(e->candidate_version));
    e->duration_s = (long)duration;
    e->def.duration_ms = (int64_t)llround((double)duration * 1000.0 * conf->time_scale);
    if (read_criteria(v, "success_criteria", e->def.criteria, &e->def.ncriteria, reason, rl) ||
        read_criteria(v, "guardrails", e->def.guardrails, &e->def.nguardrails, reason, rl)) {
        return HIVE_EINVAL;
    }
    avro_value_t map, val;
    size_t n = 0;
    if (avro_value_get_by_name(v, "parameters", &map, NULL) == 0 && avro_value_get_size(&map, &n) == 0) {
        if (n > EXP_MAX_PARAMS) {
            snprintf(reason, rl, "parameters: at most %d entries", EXP_MAX_PARAMS);
            return HIVE_EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            const char *key = NULL;
            if (avro_value_get_by_index(&map, i, &val, &key) != 0 || strlen(key) >= JUDGE_NAME ||
                !repo_key_ok(key) || avro_value_get_double(&val, &e->params[i].value) != 0 ||
                !isfinite(e->params[i].value)) {
                snprintf(reason, rl, "parameters: invalid entry %zu", i);
                return HIVE_EINVAL;
            }
            snprintf(e->params[i].name, JUDGE_NAME, "%s", key);
        }
        e->nparams = n;
    }
    if (e->def.type == JUDGE_AB && !(e->def.split > 0 && e->def.split < 1)) {
        snprintf(reason, rl, "traffic_split: an A/B test needs a share strictly between 0 and 1");
        return HIVE_EINVAL;
    }
    return 0;
}

kafka_verdict_t runner_request(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                               char *reason, size_t rl)
{
    runner_t *r = ctx;
    exp_t *e = malloc(sizeof(*e));
    if (!e) {
        return verdict_for_error(HIVE_ENOMEM, "reading the request", NULL, reason, rl);
    }
    kafka_verdict_t verdict = KAFKA_BAD_INPUT;
    if (runner_exp_from_avro(&r->conf, v, e, reason, rl) == 0) {
        bool inserted = false;
        int rc = repo_create(r->store, e, timeutil_wall_ms(), &inserted);
        verdict = verdict_for_error(rc, "storing the experiment", store_last_error(), reason, rl);
        if (rc == 0 && inserted) {
            runner_count_submitted(r, e->def.type);
            log_info("experiment submitted", "experiment_id", e->id, "type", judge_type_name(e->def.type),
                     "target", e->target);
        }
    }
    free(e);
    return verdict;
}

/* ---- telemetry.aggregated ------------------------------------------------ */

kafka_verdict_t runner_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                 char *reason, size_t rl)
{
    runner_t *r = ctx;
    const char *eid = NULL, *variant = NULL, *service = NULL;
    size_t el = 0, vl = 0, sl = 0;
    if (avro_get_nullable_string(v, "experiment_id", &eid, &el) != 0 ||
        avro_get_nullable_string(v, "variant", &variant, &vl) != 0) {
        return KAFKA_OK; /* not an experiment's measurement */
    }
    char eidz[EXP_ID], varz[65];
    snprintf(eidz, sizeof(eidz), "%.*s", (int)el, eid);
    snprintf(varz, sizeof(varz), "%.*s", (int)vl, variant);
    if (repo_variant_index(varz) < 0) {
        return KAFKA_OK;
    }
    int64_t ws = 0, we = 0, req = 0, err = 0;
    if (avro_get_string(v, "service", &service, &sl) || avro_get_long(v, "window_start", &ws) ||
        avro_get_long(v, "window_end", &we) || avro_get_long(v, "request_count", &req) ||
        avro_get_long(v, "error_count", &err)) {
        snprintf(reason, rl, "invalid TelemetryAggregated: a required field is missing");
        return KAFKA_BAD_INPUT;
    }
    static const char *const fixed[] = {"error_rate",     "latency_p50_ms", "latency_p95_ms",
                                        "latency_p99_ms", "slo_compliance", "availability"};
    const char *names[JUDGE_MAX_METRICS + 6];
    double values[JUDGE_MAX_METRICS + 6];
    size_t n = 0;
    for (size_t i = 0; i < 6; i++) {
        if (avro_get_double(v, fixed[i], &values[n]) == 0) {
            names[n++] = fixed[i];
        }
    }
    avro_value_t map, val;
    size_t size = 0;
    if (avro_value_get_by_name(v, "metrics", &map, NULL) == 0 && avro_value_get_size(&map, &size) == 0) {
        for (size_t i = 0; i < size && n < JUDGE_MAX_METRICS + 6; i++) {
            const char *key = NULL;
            if (avro_value_get_by_index(&map, i, &val, &key) == 0 &&
                avro_value_get_double(&val, &values[n]) == 0 && strchr(key, '.') == NULL && key[0] != '$') {
                names[n++] = key;
            }
        }
    }
    char svc[EXP_ID];
    snprintf(svc, sizeof(svc), "%.*s", (int)sl, service);
    int rc = repo_measure(r->store, eidz, varz, svc, ws, we, req, err, names, values, n);
    return verdict_for_error(rc, "storing the measurement", store_last_error(), reason, rl);
}

/* ---- the evaluation timer ------------------------------------------------ */

static double u01(void *rng)
{
    uint64_t *s = rng;
    *s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((z >> 11) + 0.5) / 9007199254740992.0;
}

/* The TrafficAssignment of a look: the candidate at `f`, or the final one. */
static int encode_assignment(runner_t *r, const exp_t *e, const judge_outcome_t *o, int64_t revision,
                             int64_t now_ms, void **buf, size_t *len, char *reason, size_t rl)
{
    avro_value_t v, item;
    if (avro_codec_new_value(r->codec, "TrafficAssignment", &v) != 0) {
        snprintf(reason, rl, "cannot build a TrafficAssignment");
        return HIVE_EINVAL;
    }
    bool final = o->finished;
    int bad = avro_set_string(&v, "component", e->target) ||
              (final ? avro_set_null(&v, "experiment_id") : avro_set_string(&v, "experiment_id", e->id)) ||
              avro_set_long(&v, "revision", revision) || avro_set_long(&v, "updated_at", now_ms);
    double share[2] = {1 - o->fraction, o->fraction};
    if (final) {
        share[0] = o->final_on_candidate ? 0 : 1;
        share[1] = o->final_on_candidate ? 1 : 0;
    }
    static const char *const names[2] = {"baseline", "experimental"};
    for (int i = 0; i < 2 && !bad; i++) {
        if (final && share[i] == 0) {
            continue;
        }
        bad = avro_append_item(&v, "variants", &item) || avro_codec_apply_defaults(r->codec, &item) ||
              avro_set_string(&item, "variant", names[i]) ||
              avro_set_double(&item, "traffic_fraction", share[i]);
        if (!bad && i == 1) {
            for (size_t k = 0; k < e->nparams && !bad; k++) {
                bad = avro_set_map_double(&item, "parameters", e->params[k].name, e->params[k].value);
            }
            if (!bad && e->def.type == JUDGE_SHADOW && !final) {
                bad = avro_set_map_double(&item, "parameters", "shadow_mirror", 1.0);
            }
            if (!bad && e->candidate_version[0]) {
                bad = avro_set_string(&item, "model_version", e->candidate_version);
            }
        }
    }
    char err[200] = "";
    int rc = bad ? HIVE_EINVAL
                 : avro_codec_encode(r->codec, r->conf.assignments_topic, &v, buf, len, err, sizeof(err));
    if (rc != 0) {
        snprintf(reason, rl, "cannot encode the TrafficAssignment of %s: %s", e->id, err);
    }
    avro_value_decref(&v);
    return rc;
}

static int add_variant(avro_codec_t *codec, avro_value_t *v, const char *name, const judge_obs_t *ob)
{
    avro_value_t item;
    int bad = avro_append_item(v, "variants", &item) || avro_codec_apply_defaults(codec, &item) ||
              avro_set_string(&item, "variant", name) ||
              avro_set_long(&item, "sample_count", (int64_t)ob->windows);
    double rate;
    if (!bad && judge_value(ob, "error_rate", &rate)) {
        bad = avro_set_map_double(&item, "metrics", "error_rate", rate);
    }
    for (size_t i = 0; i < ob->nm && !bad; i++) {
        if (ob->m[i].n > 0 && strcmp(ob->names[i], "error_rate") != 0) {
            bad = avro_set_map_double(&item, "metrics", ob->names[i], ob->m[i].mean);
        }
    }
    return bad;
}

static int encode_result(runner_t *r, const exp_t *e, const judge_state_t *st, const judge_outcome_t *o,
                         const judge_obs_t *b, const judge_obs_t *k, int64_t now_ms, void **buf, size_t *len,
                         char *reason, size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(r->codec, "ExperimentResult", &v) != 0) {
        snprintf(reason, rl, "cannot build an ExperimentResult");
        return HIVE_EINVAL;
    }
    char why[768];
    snprintf(why, sizeof(why), "%s [rule %s; always-valid p %.4g]", o->reason, o->rule, o->an.avp);
    int bad =
        avro_set_string(&v, "experiment_id", e->id) ||
        (e->optimization_id[0] ? avro_set_string(&v, "optimization_id", e->optimization_id)
                               : avro_set_null(&v, "optimization_id")) ||
        avro_set_enum_name(&v, "experiment_type", judge_type_name(e->def.type)) ||
        avro_set_string(&v, "target", e->target) ||
        (e->candidate_version[0] ? avro_set_string(&v, "candidate_version", e->candidate_version)
                                 : avro_set_null(&v, "candidate_version")) ||
        avro_set_enum_name(&v, "status", judge_status_name(o->status)) ||
        avro_set_enum_name(&v, "decision", judge_decision_name(o->decision)) ||
        add_variant(r->codec, &v, "baseline", b) || add_variant(r->codec, &v, "experimental", k) ||
        avro_set_string(&v, "primary_metric", o->an.primary) ||
        avro_set_double(&v, "improvement", o->an.improvement) ||
        (o->an.tested ? avro_set_double(&v, "p_value", o->an.test.p_value) : avro_set_null(&v, "p_value")) ||
        avro_set_string(&v, "reason", why) || avro_set_long(&v, "started_at", st->started_ms) ||
        avro_set_long(&v, "ended_at", now_ms > st->started_ms ? now_ms : st->started_ms);
    for (size_t i = 0; i < o->nviolations && !bad; i++) {
        bad = avro_append_string(&v, "guardrail_violations", o->violations[i]);
    }
    char err[200] = "";
    int rc = bad ? HIVE_EINVAL
                 : avro_codec_encode(r->codec, r->conf.results_topic, &v, buf, len, err, sizeof(err));
    if (rc != 0) {
        snprintf(reason, rl, "cannot encode the ExperimentResult of %s: %s", e->id, err);
    }
    avro_value_decref(&v);
    return rc;
}

static void append_sample(bson_t *doc, const char *key, const stats_sample_t *s)
{
    bson_t d;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &d);
    BSON_APPEND_DOUBLE(&d, "n", s->n);
    BSON_APPEND_DOUBLE(&d, "mean", s->mean);
    BSON_APPEND_DOUBLE(&d, "sd", sqrt(s->var));
    bson_append_document_end(doc, &d);
}

/* The explanation of a look: per variant n, mean, sd; the test; the rule. */
static void append_analysis(bson_t *doc, const judge_outcome_t *o)
{
    const judge_analysis_t *an = &o->an;
    bson_t d;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "analysis", &d);
    BSON_APPEND_UTF8(&d, "primary_metric", an->primary);
    BSON_APPEND_UTF8(&d, "kind", an->rate ? "rate (two-proportion z-test)" : "continuous (Welch's t-test)");
    BSON_APPEND_BOOL(&d, "lower_is_better", an->lower_is_better);
    append_sample(&d, "baseline", &an->base);
    append_sample(&d, "experimental", &an->cand);
    BSON_APPEND_BOOL(&d, "tested", an->tested);
    if (an->tested) {
        BSON_APPEND_DOUBLE(&d, "statistic", an->test.statistic);
        BSON_APPEND_DOUBLE(&d, "df", an->test.df);
        BSON_APPEND_DOUBLE(&d, "p_value", an->test.p_value);
        BSON_APPEND_DOUBLE(&d, "difference", an->test.diff);
        BSON_APPEND_DOUBLE(&d, "ci_low", an->test.ci_low);
        BSON_APPEND_DOUBLE(&d, "ci_high", an->test.ci_high);
    }
    BSON_APPEND_DOUBLE(&d, "always_valid_p", an->avp);
    BSON_APPEND_DOUBLE(&d, "improvement", an->improvement);
    if (an->srm_p >= 0) {
        BSON_APPEND_DOUBLE(&d, "srm_p", an->srm_p);
    }
    BSON_APPEND_UTF8(&d, "rule", o->rule);
    BSON_APPEND_UTF8(&d, "reason", o->reason);
    bson_append_document_end(doc, &d);
}

/* Reads a binary field (the staged bytes). */
static bool read_bin(const bson_t *doc, const char *key, const uint8_t **out, uint32_t *len)
{
    bson_iter_t it;
    bson_subtype_t sub;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_BINARY(&it)) {
        return false;
    }
    bson_iter_binary(&it, &sub, len, out);
    return true;
}

static bool sub_doc(const bson_t *doc, const char *key, bson_t *out)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        return false;
    }
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

/* Publishes the staged bytes of a retried slot again. */
static int replay(runner_t *r, const exp_t *e, const bson_t *staged, kafka_out_t *out)
{
    const uint8_t *p;
    uint32_t len;
    if (read_bin(staged, "assignment", &p, &len) &&
        kafka_out_add(out, r->conf.assignments_topic, e->target, strlen(e->target), p, len, NULL) != 0) {
        return HIVE_ENOMEM;
    }
    if (read_bin(staged, "result", &p, &len) &&
        kafka_out_add(out, r->conf.results_topic, e->id, strlen(e->id), p, len, NULL) != 0) {
        return HIVE_ENOMEM;
    }
    return 0;
}

typedef struct {
    bson_t **docs;
    size_t n, cap;
} docs_t;

static int collect(void *arg, const bson_t *doc)
{
    docs_t *d = arg;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        bson_t **v = realloc(d->docs, cap * sizeof(*v));
        if (!v) {
            return 1;
        }
        d->docs = v;
        d->cap = cap;
    }
    d->docs[d->n++] = bson_copy(doc);
    return 0;
}

/* The metrics a look needs: the primary, the criteria's and the guardrails'. */
static size_t wanted_metrics(const exp_t *e, const char **out)
{
    bool lower;
    size_t n = 0;
    out[n++] = judge_primary(&e->def, &lower);
    const judge_criterion_t *lists[2] = {e->def.criteria, e->def.guardrails};
    size_t counts[2] = {e->def.ncriteria, e->def.nguardrails};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l] && n < JUDGE_MAX_METRICS; i++) {
            const char *m = lists[l][i].metric;
            bool dup = strcmp(m, "relative_improvement") == 0 || strcmp(m, "improvement") == 0;
            for (size_t j = 0; j < n && !dup; j++) {
                dup = strcmp(out[j], m) == 0;
            }
            if (!dup) {
                out[n++] = m;
            }
        }
    }
    return n;
}

/* The Prometheus-backed metrics of `e` at slot `slot`: one observation per
 * variant, stored like a telemetry window of the slot (idempotent, so a
 * replayed slot stores nothing new). A query without a sample, or a server
 * that cannot be reached, leaves the slot without that observation: the
 * no-data rule counts it. Once the server is unreachable in a slot, the
 * slot's other experiments do not wait for it again. */
static void sample_prometheus(runner_t *r, const exp_t *e, int64_t slot)
{
    static const char *const variants[] = {"baseline", "candidate"};
    int64_t ws = slot * r->conf.interval_ms, we = ws + r->conf.interval_ms;
    for (size_t i = 0; i < e->nsources && r->conf.prometheus_url && r->conf.prometheus_url[0]; i++) {
        for (size_t v = 0; v < 2 && r->prom_down_slot != slot; v++) {
            char q[2 * EXP_QUERY], err[256] = "";
            double value = 0;
            const char *name = e->sources[i].metric;
            int rc = prom_expand(e->sources[i].query, variants[v], q, sizeof(q));
            if (rc == 0) {
                rc = prom_query(r->conf.prometheus_url, q, r->conf.prometheus_timeout_ms, &value, err,
                                sizeof(err));
            }
            if (rc == 0) {
                rc = repo_measure(r->store, e->id, variants[v], "prometheus", ws, we, 0, 0, &name, &value, 1);
            }
            if (rc == HIVE_EUNAVAILABLE || rc == HIVE_ETIMEDOUT) {
                r->prom_down_slot = slot;
            }
            if (rc != 0) {
                log_warn("no Prometheus observation", "experiment_id", e->id, "metric", name, "variant",
                         variants[v], "error", err[0] ? err : hive_strerror(rc));
            }
        }
    }
}

/* One experiment at slot `slot`. */
static int look_at(runner_t *r, const bson_t *doc, int64_t slot, int64_t marker, int64_t now_ms,
                   unsigned *seq, kafka_out_t *out, char *reason, size_t rl)
{
    exp_t *e = malloc(sizeof(*e));
    judge_obs_t *obs = malloc(2 * sizeof(*obs));
    judge_outcome_t *o = malloc(sizeof(*o));
    void *abuf = NULL, *rbuf = NULL;
    size_t alen = 0, rlen = 0;
    int rc = HIVE_ENOMEM;
    if (!e || !obs || !o) {
        goto done;
    }
    rc = repo_def_read(doc, e);
    judge_state_t st;
    if (rc != 0 || repo_state_read(doc, "committed", &st) != 0) {
        log_warn("experiment document unreadable; skipped", "experiment_id", bdoc_str(doc, "_id"));
        rc = 0;
        goto done;
    }
    bson_t staged;
    bool has_staged = sub_doc(doc, "staged", &staged);
    if (has_staged) {
        int64_t s = (int64_t)bdoc_num(&staged, "slot");
        if (s == slot) {
            rc = replay(r, e, &staged, out);
            goto done;
        }
        judge_state_t promoted;
        if (s <= marker && repo_state_read(&staged, "state", &promoted) == 0) {
            st = promoted; /* committed with its slot */
        }
    }
    if (st.phase == JUDGE_DONE) {
        /* Finished and published: record it as committed and never look again. */
        bson_t upd = BSON_INITIALIZER;
        bson_copy_to_excluding_noinit(doc, &upd, "committed", "_id", NULL);
        repo_state_append(&upd, "committed", &st);
        rc = store_upsert(r->store, "experiments", e->id, &upd);
        bson_destroy(&upd);
        goto done;
    }
    bool aborted = false;
    const char *wanted[JUDGE_MAX_METRICS];
    size_t nw = wanted_metrics(e, wanted);
    sample_prometheus(r, e, slot);
    if ((rc = repo_aborted(r->store, e->id, &aborted)) != 0 ||
        (rc = repo_observe(r->store, e->id, wanted, nw, &obs[0], &obs[1])) != 0) {
        snprintf(reason, rl, "reading experiment %s: %s", e->id, store_last_error());
        goto done;
    }
    uint64_t rng = fnv1a64_str(FNV1A64_INIT, e->id) ^ (uint64_t)slot;
    judge_state_t next = st;
    judge_look(&r->conf.judge, &e->def, &next, &obs[0], &obs[1], aborted, now_ms, u01, &rng, o);
    if (o->assign) {
        next.revision = slot * 16 + (int64_t)((*seq)++ & 15);
        if ((rc = encode_assignment(r, e, o, next.revision, now_ms, &abuf, &alen, reason, rl)) != 0) {
            goto done;
        }
    }
    if (o->finished &&
        (rc = encode_result(r, e, &next, o, &obs[0], &obs[1], now_ms, &rbuf, &rlen, reason, rl))) {
        goto done;
    }
    /* Stage the look: the state it leads to and the bytes it publishes. */
    bson_t upd = BSON_INITIALIZER, sd;
    bson_copy_to_excluding_noinit(doc, &upd, "_id", "committed", "staged", "status", "analysis", "result",
                                  "traffic_fraction", NULL);
    repo_state_append(&upd, "committed", &st);
    BSON_APPEND_UTF8(&upd, "status", judge_phase_name(next.phase));
    BSON_APPEND_DOUBLE(&upd, "traffic_fraction", next.fraction);
    append_analysis(&upd, o);
    if (o->finished) {
        bson_t res;
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "result", &res);
        BSON_APPEND_UTF8(&res, "status", judge_status_name(o->status));
        BSON_APPEND_UTF8(&res, "decision", judge_decision_name(o->decision));
        BSON_APPEND_DOUBLE(&res, "improvement", o->an.improvement);
        BSON_APPEND_UTF8(&res, "rule", o->rule);
        BSON_APPEND_UTF8(&res, "reason", o->reason);
        for (size_t i = 0; i < o->nviolations; i++) {
            BSON_APPEND_UTF8(&res, "guardrail_violation", o->violations[i]);
        }
        BSON_APPEND_DATE_TIME(&res, "ended_at", now_ms);
        bson_append_document_end(&upd, &res);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "staged", &sd);
    BSON_APPEND_INT64(&sd, "slot", slot);
    repo_state_append(&sd, "state", &next);
    if (abuf) {
        BSON_APPEND_BINARY(&sd, "assignment", BSON_SUBTYPE_BINARY, abuf, (uint32_t)alen);
    }
    if (rbuf) {
        BSON_APPEND_BINARY(&sd, "result", BSON_SUBTYPE_BINARY, rbuf, (uint32_t)rlen);
    }
    bson_append_document_end(&upd, &sd);
    rc = store_upsert(r->store, "experiments", e->id, &upd);
    bson_destroy(&upd);
    if (rc == 0) {
        char iid[EXP_ID + 32];
        snprintf(iid, sizeof(iid), "%s@%lld", e->id, (long long)slot);
        bson_t iv = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&iv, "experiment_id", e->id);
        BSON_APPEND_INT64(&iv, "slot", slot);
        BSON_APPEND_DATE_TIME(&iv, "at", now_ms);
        BSON_APPEND_DOUBLE(&iv, "traffic_fraction", next.fraction);
        BSON_APPEND_DOUBLE(&iv, "baseline_windows", obs[0].windows);
        BSON_APPEND_DOUBLE(&iv, "experimental_windows", obs[1].windows);
        append_analysis(&iv, o);
        rc = store_upsert(r->store, "intervals", iid, &iv);
        bson_destroy(&iv);
    }
    if (rc != 0) {
        snprintf(reason, rl, "staging experiment %s: %s", e->id, store_last_error());
        goto done;
    }
    if ((abuf &&
         kafka_out_add(out, r->conf.assignments_topic, e->target, strlen(e->target), abuf, alen, NULL)) ||
        (rbuf && kafka_out_add(out, r->conf.results_topic, e->id, strlen(e->id), rbuf, rlen, NULL))) {
        rc = HIVE_ENOMEM;
        goto done;
    }
    if (o->no_data) {
        metric_add(r->no_data, 1);
    }
    if (o->finished) {
        log_info("experiment finished", "experiment_id", e->id, "status", judge_status_name(o->status),
                 "decision", judge_decision_name(o->decision), "reason", o->reason);
        metric_add(o->decision == JUDGE_ACCEPT ? r->succeeded : r->failed, 1);
        metric_observe(r->duration, (double)(now_ms - next.started_ms) / 1000.0);
        for (size_t i = 0; i < o->nviolations; i++) {
            char metric[JUDGE_NAME];
            snprintf(metric, sizeof(metric), "%.*s", (int)strcspn(o->violations[i], " "), o->violations[i]);
            metric_add(r->guardrail, 1, metric);
        }
        if (strcmp(o->rule, "srm") == 0) {
            metric_add(r->srm, 1);
        }
        if (!o->final_on_candidate && o->decision != JUDGE_ACCEPT) {
            metric_add(r->rollbacks, 1, judge_type_name(e->def.type));
        }
    } else if (o->assign) {
        log_info("traffic assigned", "experiment_id", e->id, "reason", o->reason);
    }
done:
    free(abuf);
    free(rbuf);
    free(o);
    free(obs);
    free(e);
    return rc;
}

kafka_verdict_t runner_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                            size_t rl)
{
    runner_t *r = ctx;
    int64_t marker = kafka_pipeline_timer_marker(r->pipeline, RUNNER_TIMER);
    docs_t d = {0};
    bson_t filter = BSON_INITIALIZER, ne;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "committed.phase", &ne);
    BSON_APPEND_UTF8(&ne, "$ne", "DONE");
    bson_append_document_end(&filter, &ne);
    int rc = store_find(r->store, "experiments", &filter, NULL, collect, &d);
    bson_destroy(&filter);
    if (rc == 1) {
        rc = HIVE_ENOMEM;
    }
    unsigned seq = 0;
    size_t active = 0;
    for (size_t i = 0; rc == 0 && i < d.n; i++) {
        rc = look_at(r, d.docs[i], slot, marker, now_ms, &seq, out, reason, rl);
        active++;
    }
    for (size_t i = 0; i < d.n; i++) {
        bson_destroy(d.docs[i]);
    }
    free(d.docs);
    if (rc != 0) {
        if (!reason[0]) {
            snprintf(reason, rl, "evaluating experiments: %s (%s)", hive_strerror(rc), store_last_error());
        }
        return KAFKA_RETRY;
    }
    metric_set(r->active, (double)active);
    return KAFKA_OK;
}
