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
    APPLIER_SERVICE_CONFIG(cfg.applier, "3600", "engine"),
    {"KAFKA_WEIGHTS_TOPIC", CONFIG_STRING, "consensus.weights", 0, 0, NULL, &cfg.weights_topic,
     "ConsensusWeights output (compacted, key engine)"},
    {"MAX_WEIGHT_ADJUSTMENT", CONFIG_DOUBLE, "0.2", 0.01, 0.3, NULL, &cfg.max_adjustment,
     "largest change of one weight per command"},
    {"HEDGE_ETA", CONFIG_DOUBLE, "1.0", 0, 100, NULL, &cfg.hedge_eta,
     "learning rate of the Hedge step a command with no adjustments applies"},
    {"MIN_WEIGHT", CONFIG_DOUBLE, "0.1", 0, 0.2, NULL, &cfg.min_weight, "lowest weight of a specialist"},
    {"MAX_WEIGHT", CONFIG_DOUBLE, "0.4", 0.2, 1, NULL, &cfg.max_weight, "highest weight of a specialist"},
};

static const service_default_t defaults[] = {
    {"MONGODB_DATABASE", "weight_recalibrator"},
};

/* 2. Inputs: the commands go to the applier, telemetry to the impact watch,
 *    decisions to the specialists' accuracy. */
static const service_input_t inputs[] = {
    APPLIER_SERVICE_INPUTS(cfg.applier, "OptimizationCommand input (WEIGHT_RECALIBRATION: APPLY, ROLLBACK)",
                           "TelemetryAggregated input (the impact watch)"),
    {"KAFKA_DECISIONS_TOPIC", "consensus.decisions", "ConsensusDecision", wr_on_decision,
     "ConsensusDecision input (the specialists' accuracy)", &cfg.decisions_topic, NULL},
};

/* 3. Timer: the impact watch, exactly once per slot across replicas. */
static const service_timer_t timers[] = {APPLIER_SERVICE_TIMER};

/* 4. Setup: the applier over the weights domain, and the REST routes. */
static int setup(service_t *svc, void *ctx)
{
    if (wr_app_build(ctx, svc) != 0) {
        log_error("cannot set up the weight-recalibrator");
        return -1;
    }
    log_info("weight-recalibrator set up", "watch_metric", cfg.applier.watch_metric);
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
