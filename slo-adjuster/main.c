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
    {"KAFKA_APPLIED_TOPIC", CONFIG_STRING, "optimization.applied", 0, 0, NULL, &cfg.applied_topic,
     "OptimizationEvent output (APPLIED, ROLLED_BACK, REJECTED)"},
    {"KAFKA_SLOS_TOPIC", CONFIG_STRING, "orchestrator.slos", 0, 0, NULL, &cfg.slos_topic,
     "ServiceSLO output (compacted, key service)"},
    {"KAFKA_POLICIES_TOPIC", CONFIG_STRING, "orchestrator.policies", 0, 0, NULL, &cfg.policies_topic,
     "OrchestratorPolicy output (compacted, key policy; HEURISTIC_UPDATE, POLICY_CHANGE)"},
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
    {"IMPACT_WATCH_METRIC", CONFIG_ENUM, "error_rate", 0, 0,
     "error_rate|latency_p95_ms|latency_p99_ms|slo_compliance|availability", &cfg.watch_metric,
     "service telemetry watched after each change"},
    {"IMPACT_WATCH_THRESHOLD", CONFIG_DOUBLE, "0.1", 0.001, 10, NULL, &cfg.watch_threshold,
     "relative worsening of the watched metric that rolls the change back"},
    {"IMPACT_WATCH_WINDOW_SECONDS", CONFIG_INT, "86400", 1, 2592000, NULL, &cfg.watch_window_s,
     "how long after a change its impact is watched (seed 000: 24 h)"},
    {"LOCK_TTL_MS", CONFIG_INT, "10000", 100, 600000, NULL, &cfg.lock_ttl_ms,
     "time to live of the Redis lock per service"},
};

static const service_default_t defaults[] = {
    {"MONGODB_DATABASE", "slo_adjuster"},
};

/* 2. Inputs: the commands go to the applier, telemetry to the impact watch and the error budget. */
static kafka_verdict_t on_command(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                  char *why, size_t len)
{
    return slo_app_on_command(ctx, m, v, out, why, len);
}

static kafka_verdict_t on_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                    char *why, size_t len)
{
    return slo_app_on_telemetry(ctx, m, v, out, why, len);
}

static const service_input_t inputs[] = {
    {"KAFKA_COMMANDS_TOPIC", "optimization.commands", "OptimizationCommand", on_command,
     "OptimizationCommand input (SLO_ADJUSTMENT, HEURISTIC_UPDATE, POLICY_CHANGE: APPLY, ROLLBACK)",
     &cfg.commands_topic, NULL},
    {"KAFKA_TELEMETRY_TOPIC", "telemetry.aggregated", "TelemetryAggregated", on_telemetry,
     "TelemetryAggregated input (impact watch, error budget)", &cfg.telemetry_topic, NULL},
};

/* 3. Timer: the impact watch, exactly once per slot across replicas. */
static kafka_verdict_t watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *why,
                                  size_t len)
{
    return slo_app_watch_tick(ctx, slot, now_ms, out, why, len);
}

static const service_timer_t timers[] = {{"impact-watch", 5000, 0, NULL, watch_tick, NULL, 0}};

/* 4. REST beyond the applier's: the burn-rate rules of a service's SLO. */
static const service_route_t routes[] = {{"GET", "/api/v1/slos/{target}/rules", slo_app_on_rules}};

/* 5. Setup: the applier over the SLO domain, and the REST routes. */
static int setup(service_t *svc, void *ctx)
{
    if (slo_app_build(ctx, svc) != 0) {
        log_error("cannot set up the slo-adjuster");
        return -1;
    }
    log_info("slo-adjuster set up", "watch_metric", cfg.watch_metric);
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
