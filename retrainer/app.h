/* app: the retrainer's service around the run state machine (run.h): the
 * ModelDegradation consumer that creates runs (once per degradation id), the
 * driver timer that advances the runs on a worker and publishes the outbox on
 * models.lifecycle, the REST API over the runs, metrics and readiness; and the
 * `retrainer run` command (command.c). */
#ifndef RETRAINER_APP_H
#define RETRAINER_APP_H

#include "lock_sync.h"
#include "run.h"
#include "service.h"
#include "steps_parts.h"

#include <pthread.h>
#include <stdatomic.h>

/* The service's own settings (main.c's config table fills them). */
typedef struct {
    char *lifecycle_topic;
    char *mlflow_uri, *mlflow_suffix;
    long mlflow_timeout_ms;
    char *training_command;
    long training_timeout_s, trainer_grace_s;
    char *dataset_dir;
    long num_samples, dataset_max_age_days;
    double cooldown_hours;
    decide_thresholds_t th;
    bool promote_if_better;
    long drive_interval_ms;
    long run_lock_ttl_ms;
    char *notification_channels;
    /* the parts' settings */
    char *llm_provider, *llm_model, *llm_base_url, *llm_api_key;
    double llm_temperature;
    long llm_timeout_s;
    char *slack_webhook_url, *slack_channel, *smtp_host, *smtp_user, *smtp_password, *smtp_from,
        *email_recipients;
    long smtp_port, notify_retries, notify_timeout_ms;
    char *feedback_uri, *feedback_database, *feedback_collection;
} app_config_t;

typedef struct {
    const app_config_t *cfg;
    service_t *svc;
    run_conf_t rc;
    parts_conf_t parts;
    pthread_mutex_t drive_mu; /* one driver of the runs at a time (timer, cancel) */
    atomic_bool driving, mlflow_ok;
    atomic_size_t pending;
    pthread_mutex_t acked_mu;
    json_t *acked; /* event ids the broker acknowledged, to mark published */
    metric_t *m_runs;
    redis_sync_t *redis;                 /* the per-specialist driver locks; NULL: RUN_LOCK_TTL_MS 0 */
    char lock_token[LOCK_TOKEN_LEN + 1]; /* this replica's token of every driver lock */
    char lock_prefix[96];                /* "retrainer:<database>:" */
    bool locked[5];                      /* held, by specialist (run_specialist_known's order) */
} app_t;

/* Checks what the config table cannot: NOTIFICATION_CHANNELS, TRAINING_COMMAND,
 * LLM_PROVIDER. 0, or HIVE_EINVAL with "invalid configuration: VAR=...: accepted ..." in `err`. */
int app_check_config(const app_config_t *c, char *err, size_t errlen);
/* Is `s` one of "", "slack", "email", "slack,email", "email,slack"? */
bool app_channels_valid(const char *s);

/* Fills app->rc and app->parts from the configuration (also for the CLI);
 * `store` is the service's database. 0, or -1 after printing why. */
int app_init(app_t *app, store_t *store, metrics_t *metrics);
void app_deinit(app_t *app);

/* service_def_t callbacks. */
int app_setup(service_t *svc, void *ctx);
size_t app_pending(void *ctx);
void app_teardown(service_t *svc, void *ctx);

/* The ModelDegradation handler: creates the degradation's run. */
kafka_verdict_t app_degradation(void *ctx, const rd_kafka_message_t *msg, avro_value_t *v, kafka_out_t *out,
                                char *reason, size_t rl);

/* The driver timer: advances the runs, publishes the outbox. */
void app_drive(void *ctx);

/* Readiness: the last driver pass reached MLflow. */
bool app_mlflow_ready(void *ctx);

/* REST (rest.c). */
void rest_list(void *ctx, http_req_t *req);
void rest_get(void *ctx, http_req_t *req);
void rest_start(void *ctx, http_req_t *req);
void rest_cancel(void *ctx, http_req_t *req);

/* Parses a start request (REST body) into `r` (strings borrowed from `body`):
 * 0, or -1 with the offending field and why. Unknown fields are refused. */
int rest_parse_start(json_t *body, bool default_promote, run_request_t *r, bool *dry_run, char *field,
                     size_t fl, char *msg, size_t ml);

/* `retrainer run ...` (argv[0] == "run") with the loaded configuration:
 * drives the run(s) to their end in this process; the exit status. */
int app_command_main(app_t *app, const service_config_t *shared, int argc, char **argv);

#endif
