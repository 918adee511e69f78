/* app: the weights domain and the weight-recalibrator's objects. See app.h. */
#include "app.h"

#include "avro_fields.h"
#include "bdoc.h"
#include "hive_err.h"
#include "log.h"
#include "store.h"
#include "verdict.h"

#include <math.h>
#include <stdio.h>
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
