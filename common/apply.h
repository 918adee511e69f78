/* apply: the pure decisions both appliers share (weight-recalibrator,
 * slo-adjuster): how a command's adjustments read, and the impact watch that
 * rolls a change back when its metric worsens. No I/O: time comes in as
 * arguments.
 */
#ifndef HIVE_APPLY_H
#define HIVE_APPLY_H

#include <stdbool.h>
#include <stdint.h>

/* OptimizationCommand.adjustment_mode. */
typedef enum {
    APPLY_ABSOLUTE, /* the parameter's new value */
    APPLY_DELTA,    /* added to the current value */
    APPLY_RELATIVE, /* a fraction of the current value: new = current * (1 + value) */
} apply_mode_t;

/* Parses "ABSOLUTE", "DELTA" or "RELATIVE" into *out. Returns 0, or -1 (out untouched). */
int apply_mode_parse(const char *s, apply_mode_t *out);

/* The symbol of `mode`. */
const char *apply_mode_name(apply_mode_t mode);

/* The parameter's new value when `current` is adjusted by `value` read as `mode`. */
double apply_adjust(double current, apply_mode_t mode, double value);

/* An impact watch on one applied change. */
typedef struct {
    double baseline;      /* the watched metric before the change */
    bool higher_is_worse; /* error rate, latency: true; compliance, availability: false */
    double threshold;     /* relative worsening that rolls back, e.g. 0.10 */
    double min_scale;     /* denominator floor: a baseline of 0 still compares (e.g. 0.001) */
    int64_t applied_at_ms;
    int64_t until_ms; /* end of the watch window */
} apply_watch_t;

/* One observation of the watched metric, over a window ending at `window_end_ms`. */
typedef struct {
    double value;
    int64_t window_end_ms;
} apply_obs_t;

typedef enum {
    APPLY_WATCH_KEEP,     /* go on watching */
    APPLY_WATCH_EXPIRED,  /* the window passed without degradation: stop watching */
    APPLY_WATCH_ROLLBACK, /* the metric worsened beyond the threshold within the window */
} apply_watch_verdict_t;

/* Decides a watch at `now_ms` from the latest observation `obs` (NULL: none).
 * Only an observation measured after the change (window_end > applied_at)
 * and within the window (window_end <= until) counts. *out_worsening (may be
 * NULL) receives the relative worsening of that observation, 0 without one. */
apply_watch_verdict_t apply_watch_decide(const apply_watch_t *w, const apply_obs_t *obs, int64_t now_ms,
                                         double *out_worsening);

/* The relative worsening of `observed` against `baseline` (positive: worse). */
double apply_worsening(double baseline, double observed, bool higher_is_worse, double min_scale);

#endif
