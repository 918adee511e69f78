/* mlflow_api: the MLflow REST calls of a retrain (BLOCKING, worker threads):
 * the experiment `{specialist}-specialist`, the run the training job fills,
 * its status and metrics, the model version it registered, and the registry
 * aliases `production` and `challenger`. Every call returns 0 or a HIVE_E*
 * code with the reason in m->err. One mlflow_api_t per thread. */
#ifndef RETRAINER_MLFLOW_API_H
#define RETRAINER_MLFLOW_API_H

#include "decide.h"

#include <stddef.h>

typedef struct {
    const char *base; /* http://127.0.0.1:5000 */
    long timeout_ms;  /* one request */
    char err[512];    /* the reason of the last failure */
} mlflow_api_t;

/* The id of experiment `name`, created when missing. */
int mlflow_api_experiment(mlflow_api_t *m, const char *name, char *out_id, size_t len);

/* Creates a run named `run_name` in experiment `exp_id`, tagged with the
 * retrain run id; *out_run_id receives its id. */
int mlflow_api_create_run(mlflow_api_t *m, const char *exp_id, const char *run_name, const char *retrain_id,
                          char *out_run_id, size_t len);

/* The run's status ("RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED")
 * and its metrics. HIVE_ENOTFOUND for an unknown run. */
int mlflow_api_run(mlflow_api_t *m, const char *run_id, char *status, size_t slen, decide_metrics_t *out);

/* Ends the run with status FAILED (a timeout, a lost trainer). */
int mlflow_api_fail_run(mlflow_api_t *m, const char *run_id, long long end_ms);

/* The model version registered from run `run_id`: its model name and version.
 * HIVE_ENOTFOUND when the run registered none. */
int mlflow_api_version_of_run(mlflow_api_t *m, const char *run_id, char *name, size_t nlen, char *version,
                              size_t vlen);

/* The version behind `alias` of model `name`, and the run that produced it
 * (run_id may be NULL). HIVE_ENOTFOUND when the alias (or model) does not exist. */
int mlflow_api_alias(mlflow_api_t *m, const char *name, const char *alias, char *version, size_t vlen,
                     char *run_id, size_t rlen);

/* Points `alias` of model `name` at `version`. */
int mlflow_api_set_alias(mlflow_api_t *m, const char *name, const char *alias, const char *version);

/* Removes `alias` of model `name` (absent: 0). */
int mlflow_api_delete_alias(mlflow_api_t *m, const char *name, const char *alias);

#endif
