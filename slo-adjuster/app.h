/* app: the slo-adjuster's objects around its pure core (bounds.h): the SLO
 * domain of the shared applier (applier.h) and its REST API. */
#ifndef HIVE_SLO_APP_H
#define HIVE_SLO_APP_H

#include "applier.h"
#include "applier_rest.h"
#include "bounds.h"
#include "redis_sync.h"
#include "service.h"

typedef struct {
    char *commands_topic, *telemetry_topic, *applied_topic, *slos_topic, *policies_topic, *watch_metric;
    char *policy_defaults;
    double latency_max_change, availability_min, availability_max, error_rate_min, error_rate_max, min_budget;
    double initial_latency_ms, initial_availability, initial_error_rate, watch_threshold, policy_max_change;
    long budget_window_s, watch_window_s, lock_ttl_ms;
} slo_config_t;

typedef struct {
    slo_config_t *cfg;
    service_t *svc;
    slo_bounds_t bounds;
    metric_t *clamps;    /* slo_clamps_total{parameter} */
    metric_t *budget;    /* error_budget_remaining{service} */
    metric_t *magnitude; /* slo_adjustment_magnitude */
    redis_sync_t *redis;
    applier_t *applier;
    applier_rest_t *rest;
    /* HEURISTIC_UPDATE, POLICY_CHANGE: a second applier on its own database
     * (<MONGODB_DATABASE>_policies), so that each applier's impact watches stay its own. */
    store_t *policies_store;
    applier_t *policies;
    applier_rest_t *policies_rest;
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

/* Input handler of optimization.commands: SLO_ADJUSTMENT to the SLO applier,
 * HEURISTIC_UPDATE and POLICY_CHANGE to the policies applier. */
kafka_verdict_t slo_app_on_command(slo_app_t *app, const rd_kafka_message_t *m, avro_value_t *v,
                                   kafka_out_t *out, char *why, size_t len);
/* Input handler of telemetry.aggregated: both appliers' observations. */
kafka_verdict_t slo_app_on_telemetry(slo_app_t *app, const rd_kafka_message_t *m, avro_value_t *v,
                                     kafka_out_t *out, char *why, size_t len);
/* Transactional timer: both appliers' impact watches. */
kafka_verdict_t slo_app_watch_tick(slo_app_t *app, int64_t slot, int64_t now_ms, kafka_out_t *out, char *why,
                                   size_t len);

#endif
