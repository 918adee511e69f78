/* retrainer: retrains degraded models and promotes them only when better.
 *
 * On the service runtime (service.h): a ModelDegradation on models.degraded
 * (or a command: `retrainer run ...`, REST POST /api/v1/runs) creates a
 * retrain run, a state machine stored in retrain_runs (run.h) that a restart
 * resumes and that runs once per degradation: cooldown -> dataset -> train
 * (the job in MLflow) -> monitor -> compare -> promote -> notify. A plain
 * timer advances the runs on a worker and publishes each step's
 * ModelLifecycleEvent on models.lifecycle. The decisions are in decide.c.
 */
#include "app.h"
#include "cli.h"
#include "openapi_json.h" /* openapi_json[]: the REST API's OpenAPI document (meson.build) */
#include "settings.h"

#include <string.h>

static app_t app = {.cfg = &settings};

static const service_default_t defaults[] = {{"MONGODB_DATABASE", "retrainer"}};

/* 1. The trigger: degradations found by the model-monitor. */
static const service_input_t inputs[] = {
    {"KAFKA_DEGRADED_TOPIC", "models.degraded", "ModelDegradation", app_degradation,
     "ModelDegradation input (one retrain run per degradation id)", NULL, NULL},
};

/* 2. The driver of the runs; its interval is set from the config. */
static service_timer_t timers[] = {{"drive", 1000, 100, app_drive, NULL, NULL, 0}};

/* 3. REST over the runs; readiness of MLflow. */
static const service_route_t routes[] = {
    {"GET", "/api/v1/runs", rest_list},
    {"POST", "/api/v1/runs", rest_start},
    {"GET", "/api/v1/runs/{run_id}", rest_get},
    {"POST", "/api/v1/runs/{run_id}/cancel", rest_cancel},
};
static const service_check_t checks[] = {{"mlflow", app_mlflow_ready}};

int main(int argc, char **argv)
{
    const service_def_t def = {
        .name = "retrainer",
        .summary = "Retrains degraded models and promotes them only when better (seeds 004, 003, 002, 001): "
                   "consumes models.degraded, trains through MLflow, publishes models.lifecycle. One-shot: "
                   "retrainer run --specialist-type technical|...|all [--force] [--skip-dataset-generation] "
                   "[--dry-run] [--notification-channels slack,email] (see README.md).",
        .needs =
            SERVICE_STORE | SERVICE_PRODUCER | SERVICE_PIPELINE | SERVICE_REDIS, /* REDIS: the driver locks */
        .config = settings_items,
        .nconfig = settings_nitems,
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
    /* Config table (shared + own keys), --help / --version. */
    char err[512];
    service_t *svc = service_create(&def, &app, err, sizeof(err));
    if (!svc) {
        fprintf(stderr, "retrainer: %s\n", err);
        return 1;
    }
    bool command = argc > 1 && strcmp(argv[1], "run") == 0;
    size_t nitems = 0;
    const config_item_t *items = service_config_items(svc, &nitems);
    const cli_spec_t spec = {def.name, def.summary, items, nitems, NULL};
    int rc = command ? -1 : cli_handle(&spec, argc, argv);
    if (rc < 0 &&
        (service_configure(svc, err, sizeof(err)) != 0 || app_check_config(&settings, err, sizeof(err)))) {
        fprintf(stderr, "retrainer: %s\n", err);
        rc = 2;
    }
    if (rc < 0 && command) {
        /* The seed's one-shot CLI with the same configuration. */
        rc = app_command_main(&app, service_config(svc), argc - 1, argv + 1);
    } else if (rc < 0) {
        timers[0].interval_ms = (unsigned)settings.drive_interval_ms;
        service_start(svc); /* on failure, service_run drains what was started */
        rc = service_run(svc);
    }
    service_destroy(svc);
    return rc;
}
