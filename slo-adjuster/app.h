/* app: the slo-adjuster's objects around its pure core (bounds.h): the SLO
 * domain of the shared applier (applier.h) and its REST API. */
#ifndef HIVE_SLO_APP_H
#define HIVE_SLO_APP_H

#include "applier_service.h"
#include "bounds.h"
#include "service.h"

typedef struct {
    applier_service_config_t applier; /* the keys every applier service has */
    char *slos_topic, *policies_topic, *policy_defaults;
    double latency_max_change, availability_min, availability_max, error_rate_min, error_rate_max, min_budget;
    double initial_latency_ms, initial_availability, initial_error_rate, policy_max_change;
    long budget_window_s;
} slo_config_t;

typedef struct {
    /* First: the shared handlers' ctx (applier_service.h). Two appliers:
     * SLO_ADJUSTMENT, then HEURISTIC_UPDATE and POLICY_CHANGE on their own
     * database (<MONGODB_DATABASE>_policies), so that each applier's impact
     * watches stay its own. */
    applier_service_t base;
    slo_config_t *cfg;
    service_t *svc;
    slo_bounds_t bounds;
    metric_t *clamps;    /* slo_clamps_total{parameter} */
    metric_t *budget;    /* error_budget_remaining{service} */
    metric_t *magnitude; /* slo_adjustment_magnitude */
    applier_t *applier;  /* the SLOs' (in base) */
    store_t *policies_store;
    /* The Orchestrator's value of a tunable never set here (POLICY_DEFAULTS),
     * from which a DELTA or RELATIVE change starts. */
    applier_params_t policy_defaults;
    size_t rules_pending; /* GET .../rules in flight */
} slo_app_t;

/* Builds the applier and the REST routes (setup). 0, or -1 after logging why. */
int slo_app_build(slo_app_t *app, service_t *svc);
size_t slo_app_pending(void *ctx);
void slo_app_teardown(service_t *svc, void *ctx);

/* The SLO domain, exposed for tests: an APPLY's new SLO from `cur`. */
int slo_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
                applier_note_t *note);

/* GET /api/v1/slos/{target}/rules (http_handler_fn, ctx: the app): the
 * service's burn-rate rules (rules.h) for its current SLO, as YAML. */
void slo_app_on_rules(void *ctx, http_req_t *req);

/* The policies domain, exposed for tests: an APPLY's new tunables from `cur`;
 * a tunable absent from `cur` starts from app->policy_defaults when there. */
int policy_compute(void *ctx, const applier_cmd_t *cmd, const applier_params_t *cur, applier_params_t *out,
                   applier_note_t *note);

/* Parses "name=value,name=value" (POLICY_DEFAULTS) into `out`. 0, or -1 on a
 * malformed list, a bad name or a value that is not a finite number. */
int slo_policy_defaults_parse(const char *s, applier_params_t *out);

#endif
