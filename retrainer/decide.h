/* decide: the retrainer's decisions, pure (no I/O, no clock, no globals).
 *
 * - the cooldown: at most one retrain per specialist per cooldown window
 *   (seed 004, RETRAINING_COOLDOWN_HOURS), unless forced;
 * - the comparison of a candidate with the production version: seed 001's
 *   validator minimums (precision, recall, accuracy), seed 003's thresholds
 *   (precision, recall, F1) and new_f1 > baseline_f1, every check stated in
 *   the verdict's reason;
 * - the order of the run's steps.
 */
#ifndef RETRAINER_DECIDE_H
#define RETRAINER_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The steps of a retrain run, in order (decide_step_name gives the stored name). */
typedef enum {
    STEP_COOLDOWN = 0,
    STEP_DATASET,
    STEP_TRAIN,
    STEP_MONITOR,
    STEP_COMPARE,
    STEP_PROMOTE,
    STEP_NOTIFY,
    STEP_DONE,
    STEP_COUNT
} decide_step_t;

/* "cooldown", "dataset", "train", "monitor", "compare", "promote", "notify", "done". */
const char *decide_step_name(decide_step_t s);
/* The step named `name`, or -1 for an unknown name. */
int decide_step_parse(const char *name);

/* A candidate's validation metrics; a metric not logged has its has_ flag false. */
typedef struct {
    double precision, recall, f1, accuracy;
    bool has_precision, has_recall, has_f1, has_accuracy;
} decide_metrics_t;

/* The minimums a candidate must reach (each in [0,1]). */
typedef struct {
    double validator_precision, validator_recall, validator_accuracy; /* seed 001: 0.60, 0.60, 0.65 */
    double precision, recall, f1;                                     /* seed 003: 0.75, 0.70, 0.72 */
} decide_thresholds_t;

typedef struct {
    bool passes_minimums; /* every minimum above holds, every metric present */
    bool beats_baseline;  /* new_f1 > baseline_f1 (no baseline: true) */
    bool promote;         /* both, and promotion was asked for */
    char reason[512];     /* each check, in words */
} decide_verdict_t;

/* Compares `cand` with the production version (`has_baseline`, `baseline_f1`).
 * `promote_if_better` false: the verdict never promotes (seed 002's flag). */
void decide_compare(const decide_metrics_t *cand, bool has_baseline, double baseline_f1,
                    const decide_thresholds_t *th, bool promote_if_better, decide_verdict_t *out);

/* True when a retrain started at `last_started_ms` (0: never) keeps the
 * specialist in its cooldown at `now_ms`, for a window of `cooldown_hours`;
 * `force` overrides it. */
bool decide_in_cooldown(int64_t last_started_ms, int64_t now_ms, double cooldown_hours, bool force);

#endif
