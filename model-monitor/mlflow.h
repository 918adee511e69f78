/* mlflow: the metrics of a specialist's model from MLflow's REST API (2.0),
 * BLOCKING (httpc_sync): call it on a worker thread or in the CLI.
 *
 * Seed 004: among the last 100 runs of experiment `{specialist}-specialist`
 * (newest first), the run behind registered model `{specialist}-evaluator`'s
 * production version (alias `production`; on older servers the deprecated
 * `Production` stage), else the newest run; its precision, recall, f1_score
 * and accuracy.
 */
#ifndef MONITOR_MLFLOW_H
#define MONITOR_MLFLOW_H

#include "health.h"

#include <jansson.h>
#include <stddef.h>

typedef struct {
    health_run_t run; /* run.found false: no experiment or no run */
    char run_id[64];  /* "" without a run */
    char version[64]; /* the production version, "" when none */
    bool production;  /* the run is the production version's */
} mlflow_result_t;

/* Reads the run of experiment `experiment` ("technical-specialist") preferring
 * the production version of registered model `model` ("technical-evaluator")
 * from `tracking_uri` (http://host:port).
 * Returns 0 (also when there is no experiment or run: out->run.found false),
 * or HIVE_EUNAVAILABLE / HIVE_ETIMEDOUT when MLflow cannot be reached,
 * HIVE_EPROTO for an unexpected answer; `err` says why. */
int mlflow_fetch(const char *tracking_uri, const char *experiment, const char *model, long timeout_ms,
                 mlflow_result_t *out, char *err, size_t errlen);

/* Pure: picks the run of `runs` (MLflow's runs/search "runs" array) whose id is
 * `prefer_run_id` (may be NULL or ""), else the first one, and fills `out`
 * (run, run_id; production true when the preferred run was found). Returns
 * 0, or HIVE_ENOTFOUND when `runs` is empty or not an array. */
int mlflow_pick_run(const json_t *runs, const char *prefer_run_id, mlflow_result_t *out);

#endif
