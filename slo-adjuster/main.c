/* slo-adjuster: adjusts the Orchestrator's SLO targets within the safety bounds.
 *
 * On the service runtime (service.h): one exactly-once pipeline carries
 * optimization.commands (SLO_ADJUSTMENT) to the shared applier (applier.h:
 * Redis lock, compare-and-set on the SLO's revision, the ServiceSLO on
 * orchestrator.slos and an OptimizationEvent on optimization.applied in one
 * transaction) and telemetry.aggregated to the impact watch and the error
 * budget; HEURISTIC_UPDATE and POLICY_CHANGE go the same way to a second
 * applier (OrchestratorPolicy on orchestrator.policies). The SLO itself is decided in bounds.c (seed 000:
 * clamps, checks, error budget).
 */
#include "app.h"
#include "log.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */
#include "service.h"

static slo_config_t cfg;
static slo_app_t app = {.cfg = &cfg};

/* 1. The slo-adjuster's own settings; the runtime adds the shared ones. */
static const config_item_t config_items[] = {
    APPLIER_SERVICE_CONFIG(cfg.applier, "86400", "service"),
    {"KAFKA_SLOS_TOPIC", CONFIG_STRING, "orchestrator.slos", 0, 0, NULL, &cfg.slos_topic,
     "ServiceSLO output (compacted, key service)"},
    {"KAFKA_POLICIES_TOPIC", CONFIG_STRING, "orchestrator.policies", 0, 0, NULL, &cfg.policies_topic,
     "OrchestratorPolicy output (compacted, key policy; HEURISTIC_UPDATE, POLICY_CHANGE)"},
    {"POLICY_DEFAULTS", CONFIG_STRING, "timeout_multiplier=1,retry_budget=3,confidence_threshold=0.7", 0, 0,
     NULL, &cfg.policy_defaults,
     "the Orchestrator's value of a tunable never set here, from which a DELTA or RELATIVE change starts"},
    {"POLICY_MAX_CHANGE", CONFIG_DOUBLE, "0.3", 0.01, 10, NULL, &cfg.policy_max_change,
     "largest relative change of one heuristic or policy tunable per command"},
    {"SLO_LATENCY_MAX_CHANGE", CONFIG_DOUBLE, "0.3", 0.01, 0.9, NULL, &cfg.latency_max_change,
     "largest relative change of the latency target per command"},
    {"SLO_AVAILABILITY_MIN", CONFIG_DOUBLE, "0.95", 0, 1, NULL, &cfg.availability_min,
     "lowest availability target"},
    {"SLO_AVAILABILITY_MAX", CONFIG_DOUBLE, "0.9999", 0, 1, NULL, &cfg.availability_max,
     "highest availability target"},
    {"SLO_ERROR_RATE_MIN", CONFIG_DOUBLE, "0.001", 0, 1, NULL, &cfg.error_rate_min,
     "lowest error rate target"},
    {"SLO_ERROR_RATE_MAX", CONFIG_DOUBLE, "0.10", 0, 1, NULL, &cfg.error_rate_max,
     "highest error rate target"},
    {"ERROR_BUDGET_MIN", CONFIG_DOUBLE, "0.2", 0, 1, NULL, &cfg.min_budget,
     "remaining error budget below which no SLO is adjusted"},
    {"ERROR_BUDGET_WINDOW_SECONDS", CONFIG_INT, "2592000", 60, 31536000, NULL, &cfg.budget_window_s,
     "SLO window over which the error budget is computed from telemetry.aggregated"},
    {"SLO_INITIAL_LATENCY_MS", CONFIG_DOUBLE, "1000", 1, 3600000, NULL, &cfg.initial_latency_ms,
     "latency target of a service never adjusted"},
    {"SLO_INITIAL_AVAILABILITY", CONFIG_DOUBLE, "0.99", 0, 1, NULL, &cfg.initial_availability,
     "availability target of a service never adjusted"},
    {"SLO_INITIAL_ERROR_RATE", CONFIG_DOUBLE, "0.01", 0, 1, NULL, &cfg.initial_error_rate,
     "error rate target of a service never adjusted"},
};

static const service_default_t defaults[] = {
    {"MONGODB_DATABASE", "slo_adjuster"},
};

/* 2. Inputs: the commands go to the appliers, telemetry to the impact watch and the error budget. */
static const service_input_t inputs[] = {
    APPLIER_SERVICE_INPUTS(
        cfg.applier,
        "OptimizationCommand input (SLO_ADJUSTMENT, HEURISTIC_UPDATE, POLICY_CHANGE: APPLY, ROLLBACK)",
        "TelemetryAggregated input (impact watch, error budget)"),
};

/* 3. Timer: the impact watch, exactly once per slot across replicas. */
static const service_timer_t timers[] = {APPLIER_SERVICE_TIMER};

/* 4. REST beyond the applier's: the burn-rate rules of a service's SLO. */
static const service_route_t routes[] = {{"GET", "/api/v1/slos/{target}/rules", slo_app_on_rules}};

/* 5. Setup: the applier over the SLO domain, and the REST routes. */
static int setup(service_t *svc, void *ctx)
{
    if (slo_app_build(ctx, svc) != 0) {
        log_error("cannot set up the slo-adjuster");
        return -1;
    }
    log_info("slo-adjuster set up", "watch_metric", cfg.applier.watch_metric);
    return 0;
}

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "slo-adjuster",
        .summary =
            "Adjusts the Orchestrator's SLO targets (seed 000, SLOAdjuster): each SLO_ADJUSTMENT command is "
            "refused when the error budget left is below ERROR_BUDGET_MIN, clamped into the safety bounds "
            "(latency +-30 %, availability 0.95..0.9999, error rate 0.001..0.10), validated, written under "
            "a Redis lock with compare-and-set on the revision, and published on orchestrator.slos with an "
            "OptimizationEvent, exactly once. An impact watch rolls a change back on degradation. "
            "HEURISTIC_UPDATE and POLICY_CHANGE set the Orchestrator's tunables the same way, on "
            "orchestrator.policies.",
        .needs = SERVICE_STORE | SERVICE_REDIS | SERVICE_PRODUCER | SERVICE_PIPELINE,
        .config = config_items,
        .nconfig = SERVICE_N(config_items),
        .defaults = defaults,
        .ndefaults = SERVICE_N(defaults),
        .inputs = inputs,
        .ninputs = SERVICE_N(inputs),
        .timers = timers,
        .ntimers = SERVICE_N(timers),
        .routes = routes,
        .nroutes = SERVICE_N(routes),
        .openapi = (const char *)openapi_json,
        .openapi_len = openapi_json_len,
        .setup = setup,
        .pending = slo_app_pending,
        .teardown = slo_app_teardown,
    };
    /* Config, logs, metrics, clients, setup, run until SIGTERM, drain, free. */
    return service_main(&def, &app, argc, argv);
}
