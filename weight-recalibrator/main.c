/* weight-recalibrator: applies the Consensus Engine's weight recalibrations.
 *
 * On the service runtime (service.h): one exactly-once pipeline carries
 * optimization.commands (WEIGHT_RECALIBRATION) to the shared applier
 * (applier.h: Redis lock, compare-and-set on the weights' revision, the
 * weights on consensus.weights and an OptimizationEvent on
 * optimization.applied in one transaction) and telemetry.aggregated to the
 * impact watch, which a transactional timer decides. The weights themselves
 * are decided in projection.c (limit, exact projection, the seed's checks).
 */
#include "app.h"
#include "log.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */
#include "service.h"

static wr_config_t cfg;
static wr_app_t app = {.cfg = &cfg};

/* 1. The weight-recalibrator's own settings; the runtime adds the shared ones. */
static const config_item_t config_items[] = {
    {"KAFKA_APPLIED_TOPIC", CONFIG_STRING, "optimization.applied", 0, 0, NULL, &cfg.applied_topic,
     "OptimizationEvent output (APPLIED, ROLLED_BACK, REJECTED)"},
    {"KAFKA_WEIGHTS_TOPIC", CONFIG_STRING, "consensus.weights", 0, 0, NULL, &cfg.weights_topic,
     "ConsensusWeights output (compacted, key engine)"},
    {"MAX_WEIGHT_ADJUSTMENT", CONFIG_DOUBLE, "0.2", 0.01, 0.3, NULL, &cfg.max_adjustment,
     "largest change of one weight per command"},
    {"MIN_WEIGHT", CONFIG_DOUBLE, "0.1", 0, 0.2, NULL, &cfg.min_weight, "lowest weight of a specialist"},
    {"MAX_WEIGHT", CONFIG_DOUBLE, "0.4", 0.2, 1, NULL, &cfg.max_weight, "highest weight of a specialist"},
    {"IMPACT_WATCH_METRIC", CONFIG_ENUM, "error_rate", 0, 0,
     "error_rate|latency_p95_ms|latency_p99_ms|slo_compliance|availability", &cfg.watch_metric,
     "engine telemetry watched after each change"},
    {"IMPACT_WATCH_THRESHOLD", CONFIG_DOUBLE, "0.1", 0.001, 10, NULL, &cfg.watch_threshold,
     "relative worsening of the watched metric that rolls the change back"},
    {"IMPACT_WATCH_WINDOW_SECONDS", CONFIG_INT, "3600", 1, 2592000, NULL, &cfg.watch_window_s,
     "how long after a change its impact is watched"},
    {"LOCK_TTL_MS", CONFIG_INT, "10000", 100, 600000, NULL, &cfg.lock_ttl_ms,
     "time to live of the Redis lock per engine"},
};

static const service_default_t defaults[] = {
    {"MONGODB_DATABASE", "weight_recalibrator"},
};

/* 2. Inputs: the commands go to the applier, telemetry to the impact watch. */
static kafka_verdict_t on_command(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                  char *why, size_t len)
{
    return applier_on_command(((wr_app_t *)ctx)->applier, m, v, out, why, len);
}

static kafka_verdict_t on_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                    char *why, size_t len)
{
    return applier_on_telemetry(((wr_app_t *)ctx)->applier, m, v, out, why, len);
}

static const service_input_t inputs[] = {
    {"KAFKA_COMMANDS_TOPIC", "optimization.commands", "OptimizationCommand", on_command,
     "OptimizationCommand input (WEIGHT_RECALIBRATION: APPLY, ROLLBACK)", &cfg.commands_topic, NULL},
    {"KAFKA_TELEMETRY_TOPIC", "telemetry.aggregated", "TelemetryAggregated", on_telemetry,
     "TelemetryAggregated input (the impact watch)", &cfg.telemetry_topic, NULL},
};

/* 3. Timer: the impact watch, exactly once per slot across replicas. */
static kafka_verdict_t watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *why,
                                  size_t len)
{
    return applier_watch_tick(((wr_app_t *)ctx)->applier, slot, now_ms, out, why, len);
}

static const service_timer_t timers[] = {{"impact-watch", 5000, 0, NULL, watch_tick, NULL, 0}};

/* 4. Setup: the applier over the weights domain, and the REST routes. */
static int setup(service_t *svc, void *ctx)
{
    if (wr_app_build(ctx, svc) != 0) {
        log_error("cannot set up the weight-recalibrator");
        return -1;
    }
    log_info("weight-recalibrator set up", "watch_metric", cfg.watch_metric);
    return 0;
}

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "weight-recalibrator",
        .summary =
            "Applies the Consensus Engine's weight recalibrations (seed 000, WeightRecalibrator): each "
            "WEIGHT_RECALIBRATION command is limited by MAX_WEIGHT_ADJUSTMENT, projected onto the "
            "weights' bounds, validated, written under a Redis lock with compare-and-set on the "
            "revision, and published on consensus.weights with an OptimizationEvent, exactly once. "
            "An impact watch rolls a change back when the engine's telemetry degrades.",
        .needs = SERVICE_STORE | SERVICE_REDIS | SERVICE_PRODUCER | SERVICE_PIPELINE,
        .config = config_items,
        .nconfig = SERVICE_N(config_items),
        .defaults = defaults,
        .ndefaults = SERVICE_N(defaults),
        .inputs = inputs,
        .ninputs = SERVICE_N(inputs),
        .timers = timers,
        .ntimers = SERVICE_N(timers),
        .openapi = (const char *)openapi_json,
        .openapi_len = openapi_json_len,
        .setup = setup,
        .pending = wr_app_pending,
        .teardown = wr_app_teardown,
    };
    /* Config, logs, metrics, clients, setup, run until SIGTERM, drain, free. */
    return service_main(&def, &app, argc, argv);
}
