/* app: model-monitor's service around the pure core: the periodic check of
 * the specialists (a transactional timer: reports on models.health, one
 * ModelDegradation per episode on models.degraded, health_reports stored),
 * the REST API over the stored reports, the seed's gauges, readiness. */
#ifndef MONITOR_APP_H
#define MONITOR_APP_H

#include "drift_watch.h"
#include "monitor.h"
#include "service.h"

#include <stdatomic.h>

/* The service's own settings (main.c's config table fills them). */
typedef struct {
    char *health_topic, *degraded_topic;
    char *mlflow_uri, *mlflow_suffix;
    long mlflow_timeout_ms;
    char *feedback_uri, *feedback_database, *feedback_collection;
    long feedback_window_days;
    char *specialists; /* "technical,safety,..." or "all" */
    long interval_s;   /* MONITOR_INTERVAL_SECONDS */
    health_thresholds_t th;
    char *features_topic;
    double drift_interval_min, drift_window_min;
    long reference_rows, window_rows;
    drift_config_t dcfg;
} app_config_t;

typedef struct {
    const app_config_t *cfg;
    service_t *svc;
    store_t *feedback; /* the Hive's database, not the service's */
    monitor_conf_t mconf;
    drift_watch_t *drift;
    const char *specialists[5];
    size_t nspecialists;
    atomic_bool mlflow_ok, feedback_ok;
    atomic_size_t pending;
    metric_t *score, *degraded, *precision, *recall, *f1, *status, *feedback_count, *checks, *source_errors;
    metric_t *feedback_total;  /* ratings so far: the feedback-rate SLO's numerator (seed 002) */
    uint64_t feedback_seen[5]; /* per specialist (monitor_specialists order), counted into feedback_total */
} app_t;

/* Parses cfg->specialists into app->specialists: 0, or -1 naming the bad
 * name on stderr. */
int app_parse_specialists(app_t *app);

/* service_def_t.setup: the feedback store, the drift watch, the gauges, the
 * indexes. 0, or -1 after logging why. */
int app_setup(service_t *svc, void *ctx);

/* The transactional timer (kafka_tick_fn): checks every specialist. */
kafka_verdict_t app_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason, size_t rl);

/* The FeatureBatch handler and the drift timer (drift_watch.h). */
kafka_verdict_t app_feature_batch(void *ctx, const rd_kafka_message_t *m, avro_value_t *v, kafka_out_t *out,
                                  char *reason, size_t rl);
kafka_verdict_t app_drift_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                               size_t rl);

/* REST handlers (routes in main.c). */
void app_get_drift(void *ctx, http_req_t *req);
void app_get_health_all(void *ctx, http_req_t *req);
void app_get_health_history(void *ctx, http_req_t *req);

/* Readiness checks: the last check reached MLflow / the feedback MongoDB. */
bool app_mlflow_ready(void *ctx);
bool app_feedback_ready(void *ctx);

size_t app_pending(void *ctx);
void app_teardown(service_t *svc, void *ctx);

/* The places of the two timers in main.c's table (service_timer_interval_ms). */
#define APP_HEALTH_TIMER 0
#define APP_DRIFT_TIMER 1

/* The CLI's `check` subcommand (argv[0] == "check"), with the loaded config:
 * prints the report(s) and returns the exit status (monitor.h). */
int app_check_main(app_t *app, int argc, char **argv);

#endif
