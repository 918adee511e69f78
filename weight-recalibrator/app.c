/* app: the weights domain and the weight-recalibrator's objects. See app.h. */
#include "app.h"

#include "avro_fields.h"
#include "avro_validate.h"
#include "bdoc.h"
#include "hive_err.h"
#include "hive_status.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "verdict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void initial(void *ctx, const char *target, applier_params_t *out)
{
    (void)ctx;
    (void)target;
    out->n = 0;
    for (int i = 0; i < WEIGHTS_N; i++) {
        applier_params_set(out, weights_specialists[i], 1.0 / WEIGHTS_N);
    }
}

static void refuse(applier_note_t *note, const char *code, const char *why)
{
    snprintf(note->code, sizeof(note->code), "%s", code);
    snprintf(note->reason, sizeof(note->reason), "%s", why);
}

#define WR_DECISIONS "decisions"

/* A specialist's opinion is correct when its score is on the outcome's side of
 * 0.5: score >= 0.5 for a decision that proved correct, below it otherwise.
 * The stored vector holds 1 (correct), 0 (wrong) or -1 (not consulted). */
kafka_verdict_t wr_on_decision(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                               char *why, size_t len)
{
    (void)m;
    (void)out;
    wr_app_t *app = ctx;
    const char *id = NULL, *engine = NULL;
    bool outcome = false;
    int r = avro_get_nullable_bool(v, "outcome", &outcome);
    if (r == 1) {
        return KAFKA_OK; /* not known yet */
    }
    avro_value_t ops, item;
    size_t n = 0;
    if (r != 0 || avro_get_string(v, "decision_id", &id, NULL) != 0 ||
        avro_get_string(v, "engine", &engine, NULL) != 0 ||
        avro_value_get_by_name(v, "opinions", &ops, NULL) != 0 || avro_value_get_size(&ops, &n) != 0) {
        snprintf(why, len, "unreadable ConsensusDecision");
        return KAFKA_BAD_INPUT;
    }
    double correct[WEIGHTS_N] = {-1, -1, -1, -1, -1};
    for (size_t k = 0; k < n; k++) {
        const char *spec = NULL;
        double score = 0;
        if (avro_value_get_by_index(&ops, k, &item, NULL) != 0 ||
            avro_get_string(&item, "specialist", &spec, NULL) != 0 ||
            avro_get_double(&item, "score", &score) != 0) {
            snprintf(why, len, "unreadable opinion %zu", k);
            return KAFKA_BAD_INPUT;
        }
        int i = weights_index(spec);
        if (i >= 0) {
            correct[i] = ((score >= 0.5) == outcome) ? 1.0 : 0.0;
        }
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "engine", engine);
    bdoc_append_doubles(&doc, "correct", correct, WEIGHTS_N);
    bool inserted = false;
    int rc = store_insert_once(app->store, WR_DECISIONS, id, &doc, &inserted);
    bson_destroy(&doc);
    return verdict_for_error(rc, "storing the decision's outcome", store_last_error(), why, len);
}

typedef struct {
    long correct[WEIGHTS_N], total[WEIGHTS_N];
} wr_counts_t;

static int count_one(void *arg, const bson_t *doc)
{
    wr_counts_t *c = arg;
    double v[WEIGHTS_N];
    if (bdoc_doubles(doc, "correct", v, WEIGHTS_N) != 0) {
        return 0;
    }
    for (int i = 0; i < WEIGHTS_N; i++) {
        if (v[i] >= 0) {
            c->total[i]++;
            c->correct[i] += v[i] > 0.5;
        }
    }
    return 0;
}

/* A command with no adjustments: the Hedge step from the specialists' accuracy
 * on `target`'s decisions with an outcome. */
static int hedge_proposal(wr_app_t *app, const char *target, const double current[WEIGHTS_N],
                          double w[WEIGHTS_N], applier_note_t *note)
{
    wr_counts_t c = {0};
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "engine", target);
    int rc = store_find(app->store, WR_DECISIONS, &filter, NULL, count_one, &c);
    bson_destroy(&filter);
    if (rc != 0) {
        return rc;
    }
    long decided = 0;
    for (int i = 0; i < WEIGHTS_N; i++) {
        decided = c.total[i] > decided ? c.total[i] : decided;
    }
    char why[256];
    if (decided == 0) {
        snprintf(why, sizeof(why), "no adjustments and no decision of %s with an outcome to recalibrate from",
                 target);
        refuse(note, "invalid", why);
        return HIVE_EREJECTED;
    }
    double loss[WEIGHTS_N];
    weights_loss_from_counts(c.correct, c.total, loss);
    if (weights_hedge(current, loss, app->cfg->hedge_eta, &app->bounds, w, why, sizeof(why)) != 0) {
        refuse(note, "validation", why);
        return HIVE_EREJECTED;
    }
    for (int i = 0; i < WEIGHTS_N; i++) {
        char key[64];
        snprintf(key, sizeof(key), "accuracy_%s", weights_specialists[i]);
        applier_params_set(&note->evidence, key, 1.0 - loss[i]);
    }
    applier_params_set(&note->evidence, "decisions", (double)decided);
    return 0;
}

/* Seed 000 steps 2-5: current weights, proposal from the adjustments read as
 * their mode, limited, projected, validated. */
int wr_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
               applier_note_t *note)
{
    wr_app_t *app = ctx;
    double current[WEIGHTS_N], proposal[WEIGHTS_N], w[WEIGHTS_N];
    char why[256];
    for (int i = 0; i < WEIGHTS_N; i++) {
        if (applier_params_get(cur, weights_specialists[i], &current[i]) != 0) {
            snprintf(why, sizeof(why), "the current weights lack %s", weights_specialists[i]);
            refuse(note, "validation", why);
            return HIVE_EREJECTED;
        }
        proposal[i] = current[i];
    }
    if (cmd->adjustments.n == 0) {
        int rc = hedge_proposal(app, cmd->target, current, w, note);
        if (rc != 0) {
            return rc;
        }
        goto apply;
    }
    for (size_t k = 0; k < cmd->adjustments.n; k++) {
        int i = weights_index(cmd->adjustments.name[k]);
        if (i < 0) {
            snprintf(why, sizeof(why), "unknown specialist %s (technical, safety, business, ethical, legal)",
                     cmd->adjustments.name[k]);
            refuse(note, "invalid", why);
            return HIVE_EREJECTED;
        }
        proposal[i] = apply_adjust(current[i], cmd->mode, cmd->adjustments.value[k]);
        if (!isfinite(proposal[i])) {
            snprintf(why, sizeof(why), "the adjustment of %s is not a finite number", weights_specialists[i]);
            refuse(note, "invalid", why);
            return HIVE_EREJECTED;
        }
    }
    if (weights_propose(current, proposal, &app->bounds, w, why, sizeof(why)) != 0) {
        refuse(note, "validation", why);
        return HIVE_EREJECTED;
    }
apply:;
    double magnitude = 0.0;
    out->n = 0;
    for (int i = 0; i < WEIGHTS_N; i++) {
        applier_params_set(out, weights_specialists[i], w[i]);
        magnitude = fmax(magnitude, fabs(w[i] - current[i]));
    }
    applier_params_set(&note->evidence, "max_weight_change", magnitude);
    if (app->magnitude) {
        metric_observe(app->magnitude, magnitude);
    }
    return 0;
}

static int fill_state(void *ctx, avro_value_t *rec, const char *target, const applier_params_t *st,
                      int64_t revision, const char *optimization_id, int64_t now_ms)
{
    (void)ctx;
    int f = avro_set_string(rec, "engine", target) || avro_set_long(rec, "revision", revision) ||
            (optimization_id ? avro_set_string(rec, "optimization_id", optimization_id)
                             : avro_set_null(rec, "optimization_id")) ||
            avro_set_string(rec, "updated_by", "weight-recalibrator") ||
            avro_set_long(rec, "updated_at", now_ms);
    for (size_t i = 0; !f && i < st->n; i++) {
        f = avro_set_map_double(rec, "weights", st->name[i], st->value[i]);
    }
    return f ? -1 : 0;
}

typedef struct {
    http_req_t *req;
    char command_id[160];
} wr_send_t;

static void recalibrate_sent(void *arg, rd_kafka_resp_err_t err)
{
    wr_send_t *j = arg;
    if (err) {
        http_respond_error(j->req, 503, NULL, rd_kafka_err2str(err));
    } else {
        http_respond_json(j->req, 202,
                          json_pack("{s:s, s:s}", "command_id", j->command_id, "status", "queued"));
    }
    http_req_release(j->req);
    free(j);
}

/* POST /api/v1/weights/{target}/recalibrate {"reason"?}: queues a
 * WEIGHT_RECALIBRATION APPLY with no adjustments (the Hedge step) on the
 * commands topic; 202 {"command_id", "status": "queued"}. */
static void on_recalibrate(void *ctx, http_req_t *req)
{
    wr_app_t *app = ctx;
    const char *target = http_req_param(req, "target");
    char err[200];
    if (!applier_rest_valid_name(target)) {
        http_respond_error(req, 400, "target",
                           "target must match [A-Za-z0-9][A-Za-z0-9._:/@+-]*, 1..128 bytes");
        return;
    }
    json_t *body = http_req_json(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        http_respond_error(req, 400, NULL, body ? "the body must be a JSON object" : err);
        return;
    }
    static const char *const allowed[] = {"reason", NULL};
    const char *unknown = http_json_unknown_member(body, allowed);
    if (unknown) {
        http_respond_error(req, 400, unknown, "unknown field");
        return;
    }
    json_t *why = json_object_get(body, "reason");
    if (why && (!json_is_string(why) || json_string_length(why) > 1024 ||
                !avro_validate_matches(json_string_value(why), json_string_length(why), AVRO_PATTERN_TEXT))) {
        http_respond_error(req, 400, "reason",
                           "reason must be text of at most 1024 bytes without control "
                           "characters but tab, LF and CR");
        return;
    }
    wr_send_t *j = calloc(1, sizeof(*j));
    avro_value_t v;
    avro_codec_t *codec = service_codec(app->svc);
    if (!j || avro_codec_new_value(codec, "OptimizationCommand", &v) != 0) {
        free(j);
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    int64_t now = timeutil_wall_ms();
    snprintf(j->command_id, sizeof(j->command_id), "rest-recalibrate-%lld-%.128s", (long long)now, target);
    char opt[160];
    snprintf(opt, sizeof(opt), "hedge-%lld", (long long)now);
    int f = avro_set_string(&v, "command_id", j->command_id) || avro_set_enum_name(&v, "command", "APPLY") ||
            avro_set_string(&v, "optimization_id", opt) ||
            avro_set_enum_name(&v, "optimization_type", "WEIGHT_RECALIBRATION") ||
            avro_set_string(&v, "target", target) || avro_set_null(&v, "rollback_to_revision") ||
            avro_set_string(&v, "reason",
                            why ? json_string_value(why) : "Hedge recalibration requested over REST") ||
            avro_set_long(&v, "issued_at", now);
    void *buf = NULL;
    size_t len = 0;
    const char *topic = app->cfg->applier.commands_topic;
    int rc = f ? HIVE_EINVAL : avro_codec_encode(codec, topic, &v, &buf, &len, err, sizeof(err));
    avro_value_decref(&v);
    if (rc != 0) {
        free(j);
        http_respond_error(req, hive_status_http(rc), NULL, f ? "cannot build the command" : err);
        return;
    }
    j->req = req;
    http_req_retain(req);
    rd_kafka_resp_err_t kerr = kafka_producer_send(service_producer(app->svc), topic, target, strlen(target),
                                                   buf, len, NULL, recalibrate_sent, j);
    free(buf);
    if (kerr) {
        http_respond_error(req, 503, NULL, rd_kafka_err2str(kerr));
        http_req_release(req);
        free(j);
    }
}

int wr_app_build(wr_app_t *app, service_t *svc)
{
    const wr_config_t *cfg = app->cfg;
    app->bounds = (weights_bounds_t){.lo = cfg->min_weight,
                                     .hi = cfg->max_weight,
                                     .max_adjustment = cfg->max_adjustment,
                                     .tolerance = 0.01};
    if (!(WEIGHTS_N * cfg->min_weight <= 1.0 && WEIGHTS_N * cfg->max_weight >= 1.0)) {
        log_error("invalid configuration: MIN_WEIGHT and MAX_WEIGHT leave no five weights summing to 1");
        return -1;
    }
    static const double buckets[] = {0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3};
    app->magnitude = metrics_histogram(service_metrics(svc), "weight_adjustment_magnitude",
                                       "Largest change of one weight per applied recalibration", NULL,
                                       buckets, sizeof(buckets) / sizeof(buckets[0]));
    app->store = service_store(svc);
    app->svc = svc;
    if (http_route(service_http(svc), "POST", "/api/v1/weights/{target}/recalibrate", on_recalibrate, app) !=
        0) {
        log_error("cannot add the recalibrate route");
        return -1;
    }
    static const char *const types[] = {"WEIGHT_RECALIBRATION"};
    app->base.cfg = &cfg->applier;
    app->base.name = "weight-recalibrator";
    if (applier_service_open(&app->base, svc) != 0) {
        return -1;
    }
    return applier_service_add(
               &app->base, svc,
               &(applier_unit_t){
                   .lock_prefix = "weights",
                   .coll = "weights",
                   .state_record = "ConsensusWeights",
                   .state_topic = cfg->weights_topic,
                   .types = types,
                   .ntypes = 1,
                   .domain = {.initial = initial, .compute = wr_compute, .fill_state = fill_state},
                   .domain_ctx = app,
                   .rest_prefix = "/api/v1/weights",
                   .rest_type = "WEIGHT_RECALIBRATION",
               })
               ? 0
               : -1;
}

size_t wr_app_pending(void *ctx)
{
    return applier_service_pending(&((wr_app_t *)ctx)->base);
}

void wr_app_teardown(service_t *svc, void *ctx)
{
    (void)svc;
    wr_app_t *app = ctx;
    applier_service_close(&app->base);
    *app = (wr_app_t){.cfg = app->cfg};
}
