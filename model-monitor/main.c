/* model-monitor: watches the five specialist models of the Neural Hive-Mind.
 *
 * On the service runtime (service.h): a transactional timer checks every
 * specialist each MONITOR_INTERVAL_SECONDS (seed 004's CronJob schedule, 6 h,
 * aligned to the clock): MLflow metrics + the Hive's human feedback -> the
 * verdict of health.c; a ModelHealthReport on models.health and, when a model
 * enters degradation, one ModelDegradation on models.degraded, exactly once
 * per slot; reports kept in health_reports. A second timer compares the
 * FeatureBatches of ml.features with each model's reference (drift_watch.c).
 * `model-monitor check ...` is the seed's one-shot CLI (check.c). The
 * decisions live in health.c and drift.c.
 */
#include "app.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */

#include <string.h>

static app_config_t cfg;
static app_t app = {.cfg = &cfg};

/* 1. model-monitor's own settings; the runtime adds the shared ones. */
static const config_item_t config_items[] = {
    {"KAFKA_HEALTH_TOPIC", CONFIG_STRING, "models.health", 0, 0, NULL, &cfg.health_topic,
     "ModelHealthReport output"},
    {"KAFKA_DEGRADED_TOPIC", CONFIG_STRING, "models.degraded", 0, 0, NULL, &cfg.degraded_topic,
     "ModelDegradation output (to the retrainer)"},
    {"MLFLOW_TRACKING_URI", CONFIG_STRING, "http://127.0.0.1:5000", 0, 0, NULL, &cfg.mlflow_uri,
     "MLflow tracking server and registry"},
    {"MLFLOW_NAME_SUFFIX", CONFIG_STRING, "", 0, 0, NULL, &cfg.mlflow_suffix,
     "appended to the experiment and model names (isolation of shared servers; empty in production)"},
    {"MLFLOW_TIMEOUT_MS", CONFIG_INT, "10000", 100, 120000, NULL, &cfg.mlflow_timeout_ms,
     "timeout of one MLflow request"},
    {"FEEDBACK_MONGODB_URI", CONFIG_STRING, "mongodb://127.0.0.1:27017", 0, 0, NULL, &cfg.feedback_uri,
     "the Hive's MongoDB holding the human feedback"},
    {"FEEDBACK_MONGODB_DATABASE", CONFIG_STRING, "neural_hive", 0, 0, NULL, &cfg.feedback_database,
     "database of the feedback collection"},
    {"FEEDBACK_COLLECTION", CONFIG_STRING, "feedback", 0, 0, NULL, &cfg.feedback_collection,
     "one document per rating: specialist_type, rating [0,1], created_at"},
    {"FEEDBACK_WINDOW_DAYS", CONFIG_INT, "30", 1, 365, NULL, &cfg.feedback_window_days,
     "feedback of the last N days"},
    {"MONITOR_SPECIALISTS", CONFIG_STRING, "all", 0, 0, NULL, &cfg.specialists,
     "all, or a comma-separated subset of technical,safety,business,ethical,legal"},
    {"MONITOR_INTERVAL_SECONDS", CONFIG_INT, "21600", 1, 604800, NULL, &cfg.interval_s,
     "one check per interval, aligned to the clock (seed 004: every 6 h)"},
    {"PRECISION_THRESHOLD", CONFIG_DOUBLE, "0.75", 0, 1, NULL, &cfg.th.precision, "degraded below"},
    {"RECALL_THRESHOLD", CONFIG_DOUBLE, "0.70", 0, 1, NULL, &cfg.th.recall, "degraded below"},
    {"F1_THRESHOLD", CONFIG_DOUBLE, "0.72", 0, 1, NULL, &cfg.th.f1, "degraded below"},
    {"FEEDBACK_AVG_THRESHOLD", CONFIG_DOUBLE, "0.6", 0, 1, NULL, &cfg.th.feedback_avg, "degraded below"},
    {"DRIFT_THRESHOLD", CONFIG_DOUBLE, "0.2", 0, 1, NULL, &cfg.dcfg.drift_threshold,
     "a model drifts above this share of drifted features (seed 002)"},
    {"DRIFT_CHECK_INTERVAL_MINUTES", CONFIG_DOUBLE, "60", 0.01, 10080, NULL, &cfg.drift_interval_min,
     "one drift check per interval, aligned to the clock"},
    {"DRIFT_WINDOW_MINUTES", CONFIG_DOUBLE, "60", 0.01, 43200, NULL, &cfg.drift_window_min,
     "current data: the FeatureBatches of the last N minutes"},
    {"DRIFT_REFERENCE_ROWS", CONFIG_INT, "1000", 10, 100000, NULL, &cfg.reference_rows,
     "the first N rows of a model form its reference, taken once"},
    {"DRIFT_WINDOW_ROWS", CONFIG_INT, "10000", 10, 100000, NULL, &cfg.window_rows,
     "at most N rows of current data per feature, newest first"},
    {"KS_P_VALUE_THRESHOLD", CONFIG_DOUBLE, "0.05", 0, 1, NULL, &cfg.dcfg.ks_p_threshold,
     "KS drift below this p-value (references up to 1000 rows)"},
    {"PSI_THRESHOLD", CONFIG_DOUBLE, "0.1", 0, 10, NULL, &cfg.dcfg.psi_threshold,
     "PSI drift at or above this (reported beside the deciding test)"},
    {"WASSERSTEIN_THRESHOLD", CONFIG_DOUBLE, "0.1", 0, 100, NULL, &cfg.dcfg.wasserstein_threshold,
     "drift at or above this Wasserstein distance / std of the reference (references over 1000 rows)"},
    {"AGGREGATE_SCORE_THRESHOLD", CONFIG_DOUBLE, "0.65", 0, 1, NULL, &cfg.th.aggregate,
     "degraded below 0.7 x f1 + 0.3 x feedback_avg"},
};

static const service_default_t defaults[] = {{"MONGODB_DATABASE", "model_monitor"}};

/* 2. The models' inputs, for drift. */
static const service_input_t inputs[] = {
    {"KAFKA_FEATURES_TOPIC", "ml.features", "FeatureBatch", app_feature_batch,
     "FeatureBatch input (references and current data for drift)", &cfg.features_topic, NULL},
};

/* 3. The checks: transactional timers at the configured intervals (APP_HEALTH_TIMER, APP_DRIFT_TIMER). */
static const service_timer_t timers[] = {
    {"model-health", 0, 0, NULL, app_tick, "MONITOR_INTERVAL_SECONDS", 1000},
    {"model-drift", 0, 0, NULL, app_drift_tick, "DRIFT_CHECK_INTERVAL_MINUTES", 60000},
};

/* 4. REST over the stored reports; readiness of the two outside sources. */
static const service_route_t routes[] = {
    {"GET", "/api/v1/models/health", app_get_health_all},
    {"GET", "/api/v1/models/{model}/health", app_get_health_history},
    {"GET", "/api/v1/models/{model}/drift", app_get_drift},
};
static const service_check_t checks[] = {{"mlflow", app_mlflow_ready},
                                         {"feedback_mongodb", app_feedback_ready}};

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "model-monitor",
        .summary =
            "Watches the five specialist models (seed 004): MLflow metrics and human feedback give a verdict "
            "(OK, DEGRADED, NO_FEEDBACK, NO_RUN) on models.health; ml.features is compared with a reference "
            "(KS, Wasserstein) for drift; a new degradation goes to models.degraded. One-shot: model-monitor "
            "check "
            "--specialist-type technical|...|all [--output-format text|json] [--export-metrics URL].",
        .needs = SERVICE_STORE | SERVICE_PIPELINE,
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
        .checks = checks,
        .nchecks = SERVICE_N(checks),
        .openapi = (const char *)openapi_json,
        .openapi_len = openapi_json_len,
        .setup = app_setup,
        .pending = app_pending,
        .teardown = app_teardown,
    };
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        /* The seed's one-shot CLI, with the service's configuration. */
        char err[512] = "";
        service_t *svc = service_create(&def, &app, err, sizeof(err));
        int rc = !svc ? 1 : service_configure(svc, err, sizeof(err)) != 0 ? 2 : -1;
        if (rc > 0) {
            fprintf(stderr, "model-monitor: %s\n", err);
        } else {
            rc = app_check_main(&app, argc - 1, argv + 1);
        }
        service_destroy(svc);
        return rc;
    }
    /* Config, logs, metrics, clients, setup, run until SIGTERM, drain, free. */
    return service_main(&def, &app, argc, argv);
}
