/* run: the retrain run, a state machine stored in MongoDB (retrain_runs).
 *
 * A run is created by a ModelDegradation (its _id derives from the
 * degradation id, so a replay finds it and does nothing), by the CLI or by
 * REST. Its steps follow decide.h: cooldown -> dataset -> train -> monitor ->
 * compare -> promote -> notify -> done. run_advance() executes the current
 * step once and stores the outcome before going on, so a process killed at
 * any point resumes where the document says: the MLflow run id is stored
 * before the trainer starts, the trainer's pid right after; a restarted
 * service follows the MLflow run again. Each step's ModelLifecycleEvent is
 * written to the outbox collection (lifecycle_outbox, _id = event id) before
 * the run moves on; the service publishes the outbox on models.lifecycle.
 *
 * Every function here BLOCKS (MongoDB, MLflow, files): worker threads or
 * the CLI only. They return 0 or a HIVE_E* code with the reason in `err`.
 */
#ifndef RETRAINER_RUN_H
#define RETRAINER_RUN_H

#include "decide.h"
#include "metrics.h"
#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define RUNS_COLLECTION "retrain_runs"
#define COOLDOWNS_COLLECTION "cooldowns"
#define OUTBOX_COLLECTION "lifecycle_outbox"

/* What runs need, filled from the configuration (strings borrowed). */
typedef struct {
    store_t *store;
    const char *mlflow_uri, *mlflow_suffix; /* suffix appended to experiment and model names */
    long mlflow_timeout_ms;
    const char *training_command; /* the job; the run's arguments are appended */
    long training_timeout_s;      /* monitor: the MLflow run must end within this */
    long trainer_grace_s;         /* a trainer gone while its MLflow run is RUNNING: failed after this */
    const char *dataset_dir;
    long num_samples, dataset_max_age_days;
    double cooldown_hours;
    decide_thresholds_t th;
    const char *notification_channels; /* default channels "slack,email" or "" */
    void *parts;                       /* the parts' settings (app.c), NULL in tests */
    /* metrics (NULL: not counted) */
    metric_t *m_triggered, *m_success, *m_duration, *m_dataset_duration, *m_dataset_errors, *m_events;
    metric_t *m_notifications; /* {channel,outcome}: sent / failed */
} run_conf_t;

/* What to run. */
typedef struct {
    const char *specialist;     /* technical, safety, business, ethical, legal */
    const char *model;          /* registered model name; NULL: {specialist}-evaluator{suffix} */
    const char *trigger;        /* "degradation", "cli", "rest" */
    const char *degradation_id; /* NULL unless trigger is degradation */
    const char *driver;         /* who advances it: "service" or "cli" */
    bool force, skip_dataset, hyperparameter_tuning, promote_if_better;
    long min_samples, training_window_days;
    const char *channels; /* notification channels, NULL: the configured ones */
} run_request_t;

/* The run id of a degradation: stable, so a replay finds the same run. */
void run_id_for_degradation(const char *degradation_id, char *out, size_t len);

/* Creates run `run_id` (idempotent: an existing run is left as it is and
 * *out_created is false). Decides the cooldown step: within the cooldown
 * (and not forced) the run is stored as skipped; otherwise it starts at the
 * dataset step and the specialist's cooldown restarts. *out_doc (may be
 * NULL) receives the stored document (json_decref). */
int run_create(const run_conf_t *c, const run_request_t *r, const char *run_id, int64_t now_ms,
               json_t **out_doc, bool *out_created, char *err, size_t errlen);

/* What a run would do now, for --dry-run: the cooldown verdict, the dataset,
 * the command, the production version; reads only. *out (json_decref). */
int run_plan(const run_conf_t *c, const run_request_t *r, int64_t now_ms, json_t **out, char *err,
             size_t errlen);

/* Executes the current step of run `run_id` once. *out_more: true when the
 * next step can run at once, false when the run waits (the trainer) or has
 * ended. *out_ended (may be NULL): the run reached a final status. */
int run_advance(const run_conf_t *c, const char *run_id, int64_t now_ms, bool *out_more, bool *out_ended,
                char *err, size_t errlen);

/* Ids of the runs still running that `driver` advances (at most `max`). */
int run_active(const run_conf_t *c, const char *driver, char ids[][136], size_t max, size_t *out_n, char *err,
               size_t errlen);

/* Cancels a running run: the trainer is killed, its MLflow run failed, the
 * run ends "cancelled". HIVE_ENOTFOUND, or HIVE_ECONFLICT when it has ended. */
int run_cancel(const run_conf_t *c, const char *run_id, int64_t now_ms, char *err, size_t errlen);

/* One run as stored (without _id, with run_id), or the newest `limit` runs
 * (of `specialist` and `status` when not NULL). */
int run_get(const run_conf_t *c, const char *run_id, json_t **out, char *err, size_t errlen);
int run_list(const run_conf_t *c, const char *specialist, const char *status, long limit, json_t **out,
             char *err, size_t errlen);

/* The outbox: up to `max` unpublished events, oldest first, as a JSON array of
 * objects with the ModelLifecycleEvent fields; and marking one published. */
int run_outbox_pending(const run_conf_t *c, size_t max, json_t **out, char *err, size_t errlen);
int run_outbox_mark(const run_conf_t *c, const char *event_id, char *err, size_t errlen);

/* Is `s` one of the five specialists? */
bool run_specialist_known(const char *s);

#endif
