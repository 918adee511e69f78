/* monitor: one seed 004 check of one specialist, shared by the CLI and the
 * service's timer: MLflow metrics + feedback statistics -> health verdict,
 * and the report in the seed's text form or as JSON. BLOCKING (MLflow and
 * MongoDB): worker threads or the CLI.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "feedback.h"
#include "health.h"
#include "mlflow.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>

/* The five specialists of the Consensus Engine (seed 003). */
extern const char *const monitor_specialists[5];
/* True when `name` is one of them. */
bool monitor_specialist_valid(const char *name);

typedef struct {
    const char *mlflow_uri;
    const char *name_suffix; /* appended to the experiment and model names ("" in production) */
    long mlflow_timeout_ms;
    store_t *feedback;               /* the Hive's database */
    const char *feedback_collection; /* "feedback" */
    int64_t feedback_window_ms;      /* 30 days */
    health_thresholds_t th;
} monitor_conf_t;

typedef struct {
    char specialist[32];
    char model[128]; /* "{specialist}-evaluator{suffix}" */
    int64_t at_ms;
    /* 0 when both sources answered; otherwise the failing source's HIVE_E*
     * code, `error` says which and why, and `verdict` is not computed: a
     * report without data never claims anything. */
    int rc;
    char error[256];
    mlflow_result_t ml;
    feedback_stats_t fb;
    health_verdict_t verdict;
} monitor_report_t;

/* "{specialist}-evaluator{suffix}" into buf. */
void monitor_model_name(const monitor_conf_t *c, const char *specialist, char *buf, size_t len);

/* Checks `specialist` at `now_ms`. Always fills `out`; returns out->rc. */
int monitor_check(const monitor_conf_t *c, const char *specialist, int64_t now_ms, monitor_report_t *out);

/* The seed's text report ("RELATÓRIO DE PERFORMANCE - technical", ...). */
void monitor_report_print(const monitor_report_t *r, FILE *out);

/* The report as a JSON object (new reference). */
json_t *monitor_report_json(const monitor_report_t *r);

/* A stored report as JSON (new reference; NULL when it cannot convert):
 * dates as epoch milliseconds, _id as report_id. */
json_t *monitor_doc_json(const bson_t *doc);

/* The CLI's exit status of a report: 0 OK, 1 DEGRADED, 3 NO_RUN or
 * NO_FEEDBACK (not enough data to say), 4 a source unreachable. */
int monitor_report_exit_code(const monitor_report_t *r);

#endif
