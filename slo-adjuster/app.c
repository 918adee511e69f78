/* app: the SLO domain and the slo-adjuster's objects. See app.h. */
#include "app.h"

#include "hive_err.h"
#include "hive_status.h"
#include "log.h"
#include "offload.h"
#include "rules.h"
#include "timeutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void initial(void *ctx, const char *target, applier_params_t *out)
{
    const slo_config_t *cfg = ((slo_app_t *)ctx)->cfg;
    (void)target;
    out->n = 0;
    applier_params_set(out, slo_params[SLO_LATENCY], cfg->initial_latency_ms);
    applier_params_set(out, slo_params[SLO_AVAILABILITY], cfg->initial_availability);
    applier_params_set(out, slo_params[SLO_ERROR_RATE], cfg->initial_error_rate);
}

static int refuse(applier_note_t *note, const char *code, const char *why)
{
    snprintf(note->code, sizeof(note->code), "%s", code);
    snprintf(note->reason, sizeof(note->reason), "%s", why);
    return HIVE_EREJECTED;
}

/* The physical domain of a parameter: outside it a proposal is not clamped but refused. */
static bool meaningful(int i, double v)
{
    return isfinite(v) && (i == SLO_LATENCY ? v > 0 : v >= 0 && v <= 1);
}

/* Seed 000, SLOAdjuster: error budget >= 20 %, proposal from the adjustments
 * read as their mode, clamped into the safety bounds (clamps recorded), then
 * validate_slo_adjustment. */
int slo_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
                applier_note_t *note)
{
    slo_app_t *app = ctx;
    double current[SLO_N], proposal[SLO_N], next[SLO_N];
    char why[256];
    for (int i = 0; i < SLO_N; i++) {
        if (applier_params_get(cur, slo_params[i], &current[i]) != 0) {
            snprintf(why, sizeof(why), "the current SLO lacks %s", slo_params[i]);
            return refuse(note, "validation", why);
        }
        proposal[i] = current[i];
    }
    if (cmd->adjustments.n == 0) {
        return refuse(note, "invalid", "no adjustments: name latency_ms, availability or error_rate");
    }
    for (size_t k = 0; k < cmd->adjustments.n; k++) {
        int i = slo_param_index(cmd->adjustments.name[k]);
        if (i < 0) {
            snprintf(why, sizeof(why),
                     "unknown SLO parameter %s (latency_ms, latency_p95_ms, availability, error_rate)",
                     cmd->adjustments.name[k]);
            return refuse(note, "invalid", why);
        }
        proposal[i] = apply_adjust(current[i], cmd->mode, cmd->adjustments.value[k]);
        if (!meaningful(i, proposal[i])) {
            snprintf(why, sizeof(why), "unsafe %s: %g (%s %g of %g) is not a meaningful target",
                     slo_params[i], proposal[i], apply_mode_name(cmd->mode), cmd->adjustments.value[k],
                     current[i]);
            return refuse(note, "bounds", why);
        }
    }
    /* The error budget over the SLO window, against the current availability target. */
    int64_t requests = 0, errors = 0;
    int rc = applier_telemetry_sum(app->applier, cmd->target,
                                   timeutil_wall_ms() - app->cfg->budget_window_s * 1000, &requests, &errors);
    if (rc != 0) {
        snprintf(note->reason, sizeof(note->reason), "reading the error budget: %s", hive_strerror(rc));
        return rc;
    }
    slo_budget_t budget = slo_error_budget(requests, errors, current[SLO_AVAILABILITY]);
    applier_params_set(&note->evidence, "error_budget_remaining", budget.remaining);
    applier_params_set(&note->evidence, "window_requests", (double)budget.requests);
    applier_params_set(&note->evidence, "window_errors", (double)budget.errors);
    applier_params_set(&note->evidence, "errors_allowed", budget.allowed);
    if (app->budget) {
        metric_set(app->budget, budget.remaining, cmd->target);
    }
    if (slo_budget_check(&budget, &app->bounds, why, sizeof(why)) != 0) {
        return refuse(note, "error_budget", why);
    }
    slo_clamps_t clamps;
    int nclamped = slo_clamp(current, proposal, &app->bounds, next, &clamps);
    if (nclamped < 0) {
        return refuse(note, "bounds",
                      "the proposal or the current latency target is not a finite positive number");
    }
    applier_params_set(&note->evidence, "clamps", nclamped);
    for (int i = 0; i < SLO_N; i++) {
        if (clamps.clamped[i]) {
            char name[APPLIER_NAME_MAX];
            snprintf(name, sizeof(name), "clamped_%s_from", slo_params[i]);
            applier_params_set(&note->evidence, name, clamps.proposed[i]);
        }
    }
    if (slo_validate(current, next, &app->bounds, why, sizeof(why)) != 0) {
        return refuse(note, "validation", why);
    }
    bool changed = false;
    for (int i = 0; i < SLO_N; i++) {
        changed = changed || next[i] != current[i];
    }
    if (!changed) {
        snprintf(why, sizeof(why),
                 "nothing to apply: the proposal clamped into the bounds equals the current SLO%s",
                 nclamped ? " (every adjustment was outside the bounds)" : "");
        return refuse(note, "bounds", why);
    }
    out->n = 0;
    for (int i = 0; i < SLO_N; i++) {
        applier_params_set(out, slo_params[i], next[i]);
        if (clamps.clamped[i] && app->clamps) {
            metric_add(app->clamps, 1, slo_params[i]);
        }
    }
    if (app->magnitude) {
        metric_observe(app->magnitude, fabs(next[SLO_LATENCY] - current[SLO_LATENCY]) / current[SLO_LATENCY]);
    }
    return 0;
}

static int fill_state(void *ctx, avro_value_t *rec, const char *target, const applier_params_t *st,
                      int64_t revision, const char *optimization_id, int64_t now_ms)
{
    (void)ctx;
    double v[SLO_N];
    for (int i = 0; i < SLO_N; i++) {
        if (applier_params_get(st, slo_params[i], &v[i]) != 0) {
            return -1;
        }
    }
    int f = avro_set_string(rec, "service", target) || avro_set_double(rec, "latency_ms", v[SLO_LATENCY]) ||
            avro_set_double(rec, "availability", v[SLO_AVAILABILITY]) ||
            avro_set_double(rec, "error_rate", v[SLO_ERROR_RATE]) ||
            avro_set_long(rec, "revision", revision) ||
            (optimization_id ? avro_set_string(rec, "optimization_id", optimization_id)
                             : avro_set_null(rec, "optimization_id")) ||
            avro_set_string(rec, "updated_by", "slo-adjuster") || avro_set_long(rec, "updated_at", now_ms);
    return f ? -1 : 0;
}

/* ---- HEURISTIC_UPDATE, POLICY_CHANGE: the Orchestrator's tunables ---------------- */

static void policy_initial(void *ctx, const char *target, applier_params_t *out)
{
    (void)ctx;
    (void)target;
    out->n = 0; /* never changed: the Orchestrator keeps its own defaults */
}

/* Each tunable read as its mode; one the policy does not have yet is set by
 * ABSOLUTE only; each change limited to +-POLICY_MAX_CHANGE (recorded). */
int policy_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
                   applier_note_t *note)
{
    slo_app_t *app = ctx;
    char why[256];
    if (cmd->adjustments.n == 0) {
        return refuse(note, "invalid", "no adjustments: name at least one tunable");
    }
    *out = *cur;
    int nlimited = 0;
    bool changed = false;
    for (size_t k = 0; k < cmd->adjustments.n; k++) {
        const char *name = cmd->adjustments.name[k];
        double current, next, value = cmd->adjustments.value[k];
        bool known = applier_params_get(cur, name, &current) == 0 ||
                     applier_params_get(&app->policy_defaults, name, &current) == 0;
        if (!isfinite(value)) {
            snprintf(why, sizeof(why), "unsafe %s: the adjustment is not a finite number", name);
            return refuse(note, "bounds", why);
        }
        if (!known && cmd->mode != APPLY_ABSOLUTE) {
            snprintf(why, sizeof(why), "%s has no %s yet: set it with an ABSOLUTE adjustment first",
                     cmd->target, name);
            return refuse(note, "invalid", why);
        }
        if (!known) {
            next = value;
        } else {
            double proposed = apply_adjust(current, cmd->mode, value);
            int lim = policy_limit(current, proposed, app->cfg->policy_max_change, &next);
            if (lim < 0) {
                snprintf(why, sizeof(why), "unsafe %s: %g is not a finite number", name, proposed);
                return refuse(note, "bounds", why);
            }
            if (lim > 0) {
                char key[APPLIER_NAME_MAX];
                snprintf(key, sizeof(key), "limited_%s_from", name);
                applier_params_set(&note->evidence, key, proposed);
                nlimited++;
            }
        }
        if (applier_params_set(out, name, next) != 0) {
            snprintf(why, sizeof(why), "%s would have more than %d tunables", cmd->target,
                     APPLIER_MAX_PARAMS);
            return refuse(note, "invalid", why);
        }
        changed = changed || !known || next != current;
    }
    applier_params_set(&note->evidence, "clamps", nlimited);
    if (!changed) {
        snprintf(why, sizeof(why),
                 "nothing to apply: the proposal limited to +-%.0f%% equals the current values",
                 100.0 * app->cfg->policy_max_change);
        return refuse(note, "bounds", why);
    }
    return 0;
}

int slo_policy_defaults_parse(const char *s, applier_params_t *out)
{
    out->n = 0;
    while (s && *s) {
        const char *eq = strchr(s, '='), *end = strchr(s, ',');
        end = end ? end : s + strlen(s);
        if (!eq || eq > end || eq == s || (size_t)(eq - s) >= APPLIER_NAME_MAX) {
            return -1;
        }
        char name[APPLIER_NAME_MAX], num[64], *stop = NULL;
        snprintf(name, sizeof(name), "%.*s", (int)(eq - s), s);
        if ((size_t)(end - eq - 1) >= sizeof(num) || !applier_rest_valid_name(name)) {
            return -1;
        }
        snprintf(num, sizeof(num), "%.*s", (int)(end - eq - 1), eq + 1);
        double v = strtod(num, &stop);
        if (stop == num || *stop || !isfinite(v) || applier_params_set(out, name, v) != 0) {
            return -1;
        }
        s = *end ? end + 1 : end;
    }
    return 0;
}

static int policy_fill_state(void *ctx, avro_value_t *rec, const char *target, const applier_params_t *st,
                             int64_t revision, const char *optimization_id, int64_t now_ms)
{
    (void)ctx;
    int f = avro_set_string(rec, "policy", target) || avro_set_long(rec, "revision", revision) ||
            (optimization_id ? avro_set_string(rec, "optimization_id", optimization_id)
                             : avro_set_null(rec, "optimization_id")) ||
            avro_set_string(rec, "updated_by", "slo-adjuster") || avro_set_long(rec, "updated_at", now_ms);
    for (size_t i = 0; !f && i < st->n; i++) {
        f = avro_set_map_double(rec, "values", st->name[i], st->value[i]);
    }
    return f ? -1 : 0;
}

/* The policies applier on its own database (see app.h) and its REST routes. */
static int build_policies(slo_app_t *app, service_t *svc)
{
    const slo_config_t *cfg = app->cfg;
    const service_config_t *sc = service_config(svc);
    char db[128], err[256];
    snprintf(db, sizeof(db), "%s_policies", sc->mongodb_database);
    app->policies_store = store_create(sc->mongodb_uri, db, err, sizeof(err));
    if (!app->policies_store) {
        log_error("cannot open the policies database", "database", db, "error", err);
        return -1;
    }
    static const char *const types[] = {"HEURISTIC_UPDATE", "POLICY_CHANGE"};
    return applier_service_add(&app->base, svc,
                               &(applier_unit_t){
                                   .lock_prefix = "policies",
                                   .coll = "policies",
                                   .state_record = "OrchestratorPolicy",
                                   .state_topic = cfg->policies_topic,
                                   .types = types,
                                   .ntypes = 2,
                                   .store = app->policies_store,
                                   .domain = {.initial = policy_initial,
                                              .compute = policy_compute,
                                              .fill_state = policy_fill_state},
                                   .domain_ctx = app,
                                   .rest_prefix = "/api/v1/policies",
                                   .rest_type = "POLICY_CHANGE",
                               })
               ? 0
               : -1;
}

/* ---- GET /api/v1/slos/{service}/rules ------------------------------------------- */

typedef struct {
    slo_app_t *app;
    http_req_t *req;
    char service[129];
    char *yaml;
    size_t len;
    int status;
} rules_job_t;

static void rules_work(void *arg)
{
    rules_job_t *j = arg;
    json_t *cur = NULL;
    j->status = applier_current_json(j->app->applier, j->service, &cur);
    if (j->status != 0) {
        return;
    }
    json_t *a = json_object_get(json_object_get(cur, "values"), slo_params[SLO_AVAILABILITY]);
    j->status = json_is_number(a) && slo_rules_yaml(j->service, json_number_value(a), &j->yaml, &j->len) == 0
                    ? 0
                    : HIVE_EINVAL;
    json_decref(cur);
}

static void rules_done(void *arg, int status)
{
    rules_job_t *j = arg;
    int code = status ? status : j->status;
    if (code != 0) {
        http_respond_error(j->req, hive_status_http(code), NULL, hive_strerror(code));
    } else {
        http_respond_text(j->req, 200, "application/yaml", j->yaml, j->len);
    }
    free(j->yaml);
    http_req_release(j->req);
    j->app->rules_pending--;
    free(j);
}

void slo_app_on_rules(void *ctx, http_req_t *req)
{
    slo_app_t *app = ctx;
    const char *service = http_req_param(req, "target");
    if (!applier_rest_valid_name(service)) {
        http_respond_error(req, 400, "target",
                           "target must match [A-Za-z0-9][A-Za-z0-9._:/@+-]*, 1..128 bytes");
        return;
    }
    rules_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(req, 503, NULL, "out of memory");
        return;
    }
    j->app = app;
    j->req = req;
    snprintf(j->service, sizeof(j->service), "%s", service);
    http_req_retain(req);
    if (offload_run(service_loop(app->svc), rules_work, rules_done, j) != 0) {
        http_respond_error(req, 503, NULL, "cannot start the read");
        http_req_release(req);
        free(j);
        return;
    }
    app->rules_pending++;
}

static bool initial_valid(const slo_config_t *cfg, const slo_bounds_t *b)
{
    return cfg->initial_latency_ms > 0 && cfg->initial_availability >= b->availability_lo &&
           cfg->initial_availability <= b->availability_hi && cfg->initial_error_rate >= b->error_rate_lo &&
           cfg->initial_error_rate <= b->error_rate_hi;
}

int slo_app_build(slo_app_t *app, service_t *svc)
{
    const slo_config_t *cfg = app->cfg;
    app->svc = svc;
    app->bounds = (slo_bounds_t){.latency_max_change = cfg->latency_max_change,
                                 .availability_lo = cfg->availability_min,
                                 .availability_hi = cfg->availability_max,
                                 .error_rate_lo = cfg->error_rate_min,
                                 .error_rate_hi = cfg->error_rate_max,
                                 .min_budget = cfg->min_budget};
    if (!slo_bounds_valid(&app->bounds) || !initial_valid(cfg, &app->bounds)) {
        log_error("invalid configuration: the SLO bounds are not ordered or the initial SLO is outside them");
        return -1;
    }
    if (slo_policy_defaults_parse(cfg->policy_defaults, &app->policy_defaults) != 0) {
        log_error("invalid configuration: POLICY_DEFAULTS is not a list of name=number", "POLICY_DEFAULTS",
                  cfg->policy_defaults);
        return -1;
    }
    metrics_t *m = service_metrics(svc);
    static const double buckets[] = {0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3};
    app->clamps =
        metrics_counter(m, "slo_clamps_total", "SLO proposals clamped into the safety bounds", "parameter");
    app->budget = metrics_gauge(m, "error_budget_remaining", "Remaining error budget at the last SLO command",
                                "service");
    app->magnitude = metrics_histogram(m, "slo_adjustment_magnitude",
                                       "Relative change of the latency target per applied SLO adjustment",
                                       NULL, buckets, sizeof(buckets) / sizeof(buckets[0]));
    static const char *const types[] = {"SLO_ADJUSTMENT"};
    app->base.cfg = &cfg->applier;
    app->base.name = "slo-adjuster";
    if (applier_service_open(&app->base, svc) != 0) {
        return -1;
    }
    app->applier = applier_service_add(
        &app->base, svc,
        &(applier_unit_t){
            .lock_prefix = "slos",
            .coll = "slos",
            .state_record = "ServiceSLO",
            .state_topic = cfg->slos_topic,
            .types = types,
            .ntypes = 1,
            .domain = {.initial = initial, .compute = slo_compute, .fill_state = fill_state},
            .domain_ctx = app,
            .rest_prefix = "/api/v1/slos",
            .rest_type = "SLO_ADJUSTMENT",
        });
    return app->applier ? build_policies(app, svc) : -1;
}

size_t slo_app_pending(void *ctx)
{
    slo_app_t *app = ctx;
    return applier_service_pending(&app->base) + app->rules_pending;
}

void slo_app_teardown(service_t *svc, void *ctx)
{
    (void)svc;
    slo_app_t *app = ctx;
    applier_service_close(&app->base);
    store_destroy(app->policies_store); /* after its applier */
    *app = (slo_app_t){.cfg = app->cfg};
}
