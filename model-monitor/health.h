/* health: the seed 004 verdict on one specialist model (pure, no I/O).
 *
 * Inputs are what the shell read: the MLflow metrics of the chosen run
 * (each may be missing) and the feedback statistics of the last 30 days.
 * Output: the aggregate score (0.7 x f1 + 0.3 x feedback_avg), a status and
 * the thresholds crossed, in words. Missing data never passes silently:
 *   HEALTH_NO_RUN       no MLflow run, or a run without f1/precision/recall:
 *                       nothing can be judged (the model is not claimed OK);
 *   HEALTH_NO_FEEDBACK  the run's metrics pass but there is no feedback in the
 *                       window: aggregate and feedback rule unknown;
 *   HEALTH_DEGRADED     any known value crosses its threshold (also with no
 *                       feedback: a bad F1 is a degradation on its own);
 *   HEALTH_OK           every rule evaluated and passed.
 */
#ifndef MONITOR_HEALTH_H
#define MONITOR_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The seed's thresholds (PRECISION_THRESHOLD, ...): degraded strictly below. */
typedef struct {
    double precision, recall, f1, feedback_avg, aggregate;
} health_thresholds_t;

/* 0.75, 0.70, 0.72, 0.6, 0.65 (seed 004). */
void health_thresholds_default(health_thresholds_t *out);

/* The metrics of one MLflow run; has_* false when the run lacks the metric. */
typedef struct {
    bool found; /* a run was found */
    bool has_precision, has_recall, has_f1, has_accuracy;
    double precision, recall, f1, accuracy;
} health_run_t;

/* Feedback ratings in [0, 1]: positive above 0.6, negative below 0.4, neutral
 * in between (a 1-5 star scale mapped to [0, 1]: 4-5 stars positive, 3
 * neutral, 1-2 negative). */
#define FEEDBACK_POSITIVE_ABOVE 0.6
#define FEEDBACK_NEGATIVE_BELOW 0.4

typedef struct {
    uint64_t count, positive, neutral, negative;
    double sum;
} feedback_stats_t;

/* Adds one rating; a rating outside [0, 1] or NaN is ignored and returns -1. */
int feedback_stats_add(feedback_stats_t *s, double rating);
/* The mean rating; false when count is 0. */
bool feedback_stats_avg(const feedback_stats_t *s, double *out_avg);

typedef enum { HEALTH_OK, HEALTH_DEGRADED, HEALTH_NO_FEEDBACK, HEALTH_NO_RUN } health_status_t;

/* "OK", "DEGRADED", "NO_FEEDBACK", "NO_RUN". */
const char *health_status_name(health_status_t s);

#define HEALTH_MAX_REASONS 8
#define HEALTH_REASON_LEN 64

typedef struct {
    health_status_t status;
    bool has_aggregate;
    double aggregate;
    size_t nreasons;
    char reasons[HEALTH_MAX_REASONS][HEALTH_REASON_LEN]; /* "f1_score 0.61 < 0.72" */
} health_verdict_t;

/* aggregate = 0.7 x f1 + 0.3 x feedback_avg. */
double health_aggregate(double f1, double feedback_avg);

/* The verdict of seed 004's rule on `run` and `fb`, with thresholds `th`. */
void health_evaluate(const health_thresholds_t *th, const health_run_t *run, const feedback_stats_t *fb,
                     health_verdict_t *out);

#endif
