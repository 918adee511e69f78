/* experiment-manager: runs controlled experiments (A/B, canary, shadow,
 * bandit) with sound statistics, guardrails and rollback.
 *
 * On the service runtime (service.h): one exactly-once Kafka pipeline stores
 * experiments.requests and the variant-labelled telemetry.aggregated windows;
 * a transactional timer looks at every running experiment each interval and
 * publishes TrafficAssignment (experiments.assignments) and, at the end,
 * ExperimentResult (experiments.results) exactly once. The rules live in the
 * pure modules (stats.c, judge.c); runner.c and rest.c are the shell.
 */
#include "app.h"
#include "log.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */
#include "service.h"

static app_config_t cfg;
static app_t app = {.cfg = &cfg};

/* 1. The experiment manager's own settings; the runtime adds the shared ones. */
static const config_item_t config_items[] = {
    {"KAFKA_ASSIGNMENTS_TOPIC", CONFIG_STRING, "experiments.assignments", 0, 0, NULL, &cfg.assignments_topic,
     "TrafficAssignment output (compacted, key component)"},
    {"KAFKA_RESULTS_TOPIC", CONFIG_STRING, "experiments.results", 0, 0, NULL, &cfg.results_topic,
     "ExperimentResult output (key experiment_id)"},
    {"EVALUATION_INTERVAL_MS", CONFIG_INT, "60000", 1000, 86400000, NULL, &cfg.interval_ms,
     "every running experiment is looked at this often"},
    {"SIGNIFICANCE_LEVEL", CONFIG_DOUBLE, "0.05", 0.0001, 0.5, NULL, &cfg.alpha,
     "alpha of the always-valid sequential test"},
    {"MSPRT_EFFECT", CONFIG_DOUBLE, "0.1", 0.001, 10, NULL, &cfg.msprt_effect,
     "scale of the mSPRT mixture, relative to the baseline's mean"},
    {"MIN_SAMPLE_SIZE", CONFIG_INT, "5", 2, 1000000, NULL, &cfg.min_samples,
     "telemetry windows per variant before any test (and per canary step)"},
    {"NO_DATA_INTERVALS", CONFIG_INT, "10", 1, 100000, NULL, &cfg.no_data_intervals,
     "looks without new data before NO_DATA_ACTION"},
    {"NO_DATA_ACTION", CONFIG_ENUM, "fail", 0, 0, "fail|pause", &cfg.no_data_action,
     "what an experiment without data does: fail (result FAILED) or pause"},
    {"CANARY_STEPS", CONFIG_STRING, "10,25,50,100", 0, 0, NULL, &cfg.canary_steps,
     "canary traffic steps in percent, increasing, ending at 100 (seed 001)"},
    {"CANARY_STEP_MIN_SECONDS", CONFIG_INT, "86400", 1, 31622400, NULL, &cfg.canary_step_min_s,
     "least time on a canary step before it advances (seed 001: 24 h)"},
    {"BANDIT_FLOOR", CONFIG_DOUBLE, "0.05", 0, 0.5, NULL, &cfg.bandit_floor,
     "least share of traffic each bandit variant keeps"},
    {"PROMETHEUS_URL", CONFIG_STRING, "http://127.0.0.1:9090", 0, 0, NULL, &cfg.prometheus_url,
     "Prometheus HTTP API of the metric sources with provider prometheus"},
    {"PROMETHEUS_TIMEOUT_MS", CONFIG_INT, "5000", 100, 60000, NULL, &cfg.prometheus_timeout_ms,
     "timeout of one Prometheus query"},
    {"WORKFLOW_MANAGER_URL", CONFIG_STRING, "http://experiment-manager:8000", 0, 0, NULL, &cfg.manager_url,
     "this service's URL as an Argo Workflow reaches it (GET /api/v1/experiments/{id}/workflow)"},
    {"EXPERIMENT_TIME_SCALE", CONFIG_DOUBLE, "1", 0.00001, 1, NULL, &cfg.time_scale,
     "multiplies requested durations and CANARY_STEP_MIN_SECONDS (compressed time for tests and demos)"},
};

/* The suite's names for the shared keys. */
static const service_default_t defaults[] = {
    {"KAFKA_CONSUMER_GROUP", "experiment-manager"},
    {"MONGODB_DATABASE", "experiment_manager"},
};

/* 2. Inputs: requests become experiments, labelled telemetry becomes windows. */
static kafka_verdict_t to_request(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                  char *why, size_t len)
{
    return runner_request(((app_t *)ctx)->runner, m, v, out, why, len);
}

static kafka_verdict_t to_telemetry(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                    char *why, size_t len)
{
    return runner_telemetry(((app_t *)ctx)->runner, m, v, out, why, len);
}

static const service_input_t inputs[] = {
    {"KAFKA_REQUESTS_TOPIC", "experiments.requests", "ExperimentRequest", to_request,
     "ExperimentRequest input", &cfg.requests_topic, NULL},
    {"KAFKA_TELEMETRY_TOPIC", "telemetry.aggregated", "TelemetryAggregated", to_telemetry,
     "TelemetryAggregated input (records labelled with variant and experiment_id)", &cfg.telemetry_topic,
     NULL},
};

/* 3. The evaluation: a transactional timer, so each look publishes exactly once. */
static const service_timer_t timers[] = {{RUNNER_TIMER, 0, 0, NULL, app_tick, "EVALUATION_INTERVAL_MS", 1}};

/* 4. Setup: the judge's configuration, the runner, the REST routes (seed 000). */
static int setup(service_t *svc, void *ctx)
{
    app_t *a = ctx;
    if (app_build(a, svc) != 0 || rest_register(service_http(svc), &a->rest) != 0) {
        log_error("cannot set up the experiment manager");
        return -1;
    }
    log_info("experiment manager set up", "canary_steps", cfg.canary_steps);
    return 0;
}

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "experiment-manager",
        .summary =
            "Experiment manager of the Neural Hive-Mind. Runs the experiments the optimizer and the "
            "retrainer request (A/B, canary 10->25->50->100, shadow, Thompson-sampling bandit): splits the "
            "traffic, watches guardrails every interval, decides with Welch's t-test, the two-proportion "
            "z-test and an always-valid sequential test, rolls back on a breach, and publishes each "
            "assignment and result exactly once, over Kafka.",
        .needs = SERVICE_STORE | SERVICE_PIPELINE,
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
        .pending = app_pending,
        .teardown = app_teardown,
    };
    /* Config, logs, metrics, clients, setup, run until SIGTERM, drain, free. */
    return service_main(&def, &app, argc, argv);
}
