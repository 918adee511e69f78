/* state: turns an insight into the discrete state the optimizer learns over.
 *
 * A state is (component, problem kind, severity bucket, load bucket). It has a
 * stable string key, "orchestrator|LATENCY|sev2|load1", under which the Q-table
 * and the Thompson posteriors are persisted, and a small feature vector for
 * LinUCB (one-hot problem kind, severity, load, bias).
 *
 * Severity comes from the relative deviation of the current value from the
 * baseline, |current - baseline| / |baseline|, except for the "nines" metrics
 * (SLO_COMPLIANCE, AVAILABILITY), where it is the relative change of the
 * shortfall (1 - value): 99.9% -> 99% is a tenfold shortfall, not a 0.9% move.
 * When the deviation is undefined (a baseline of 0, a "nines" baseline of 1,
 * or a non-finite value) the insight's priority stands in for it: LOW -> sev0,
 * MEDIUM -> sev1, HIGH -> sev2, CRITICAL -> sev3. Priority is otherwise not
 * part of the state: the shell already filters on it, and it would multiply
 * the table by four without changing which action is best.
 *
 * Pure: no I/O, no globals.
 */
#ifndef HIVE_STATE_H
#define HIVE_STATE_H

#include <stddef.h>

#define STATE_COMPONENT_MAX 64 /* bytes, NUL included */
#define STATE_KEY_MAX 128      /* bytes, NUL included */
#define STATE_SEVERITY_BUCKETS 4
#define STATE_LOAD_BUCKETS 3

typedef enum {
    PROBLEM_LATENCY,
    PROBLEM_ERROR_RATE,
    PROBLEM_SLO_COMPLIANCE,
    PROBLEM_AVAILABILITY,
    PROBLEM_CONSENSUS_ACCURACY,
    PROBLEM_OTHER,
    PROBLEM_COUNT
} problem_kind_t;

typedef enum { PRIORITY_LOW, PRIORITY_MEDIUM, PRIORITY_HIGH, PRIORITY_CRITICAL, PRIORITY_COUNT } priority_t;

/* LinUCB features: PROBLEM_COUNT one-hot entries, severity / 3, load / 2, 1. */
#define STATE_FEATURES (PROBLEM_COUNT + 3)

/* Bucket boundaries. A value equal to a boundary belongs to the upper bucket. */
typedef struct {
    /* Relative deviation at which sev1, sev2, sev3 start; increasing.
     * Default 0.05 (the seed's MIN_IMPROVEMENT_THRESHOLD: less is noise),
     * 0.20, 0.50. */
    double severity_bounds[STATE_SEVERITY_BUCKETS - 1];
    /* Load, the component's request rate relative to its own baseline
     * (state_load_ratio), at which load1, load2 start; increasing. Default
     * 1.5 (half again its usual traffic) and 3. load0 is the usual load,
     * less, or unknown (ratio 0). */
    double load_bounds[STATE_LOAD_BUCKETS - 1];
} state_config_t;

/* What the shell knows about one insight. `component` is borrowed. */
typedef struct {
    const char *component; /* e.g. "orchestrator", "consensus-engine" */
    problem_kind_t problem;
    priority_t priority;
    double current_value;
    double baseline_value;
    double
        load; /* request rate relative to the component's baseline (state_load_ratio), >= 0; 0 when unknown */
} state_insight_t;

typedef struct {
    char component[STATE_COMPONENT_MAX];
    problem_kind_t problem;
    unsigned severity; /* 0 .. STATE_SEVERITY_BUCKETS - 1 */
    unsigned load;     /* 0 .. STATE_LOAD_BUCKETS - 1 */
    char key[STATE_KEY_MAX];
} state_t;

/* Fills `cfg` with the defaults above. */
void state_config_default(state_config_t *cfg);

/* Builds a state from its parts and computes its key. The component must be
 * non-empty, shorter than STATE_COMPONENT_MAX, free of '|' and control
 * characters. Returns 0, or -EINVAL (out untouched). */
int state_make(const char *component, problem_kind_t problem, unsigned severity, unsigned load, state_t *out);

/* Extracts the state of an insight. `cfg` NULL means the defaults. Returns 0,
 * or -EINVAL for a bad component, problem, priority or a negative / NaN load
 * (out untouched). */
int state_extract(const state_config_t *cfg, const state_insight_t *in, state_t *out);

/* The deviation used for severity (see the file comment); NaN when undefined. */
double state_deviation(problem_kind_t problem, double current, double baseline);

/* The severity bucket of a deviation; a NaN deviation maps from `priority`. */
unsigned state_severity_bucket(const state_config_t *cfg, double deviation, priority_t priority);

/* The load bucket of a request rate (>= 0). */
unsigned state_load_bucket(const state_config_t *cfg, double load);

/* The load of a window: `rate` (requests per second) over the component's
 * baseline, the mean rate of its `n` previous windows `history`. 0 (unknown)
 * with fewer than STATE_LOAD_MIN_HISTORY windows, a baseline of 0 or a
 * negative or non-finite rate anywhere. */
#define STATE_LOAD_MIN_HISTORY 3
double state_load_ratio(double rate, const double *history, size_t n);

/* Writes the STATE_FEATURES LinUCB features of `s` into `out`. */
void state_features(const state_t *s, double out[STATE_FEATURES]);

/* "LATENCY", "ERROR_RATE", ... ; "UNKNOWN" outside the enum. */
const char *state_problem_name(problem_kind_t problem);
/* Parses a problem name as printed by state_problem_name. Returns 0 or -EINVAL. */
int state_problem_parse(const char *name, problem_kind_t *out);
/* Parses "LOW" .. "CRITICAL". Returns 0 or -EINVAL. */
int state_priority_parse(const char *name, priority_t *out);

/* The problem <-> metric mapping, written once:
 *   LATENCY latency_p95_ms (lower is better), ERROR_RATE error_rate (lower),
 *   SLO_COMPLIANCE slo_compliance (higher), AVAILABILITY availability (higher),
 *   CONSENSUS_ACCURACY consensus_accuracy (higher), OTHER none (NULL). */
const char *state_problem_metric(problem_kind_t problem);
/* True when the problem's metric improves upwards (OTHER: its improvement does). */
int state_problem_higher_is_better(problem_kind_t problem);
/* The problem a metric name points at, by the words it contains ("latency",
 * "error", "slo", "availability", "consensus" or "accuracy"); OTHER for
 * anything else or NULL. */
problem_kind_t state_problem_of_metric(const char *metric);

/* The state of `component` as a stored degraded telemetry window describes
 * it (telemetry_observations: its worst metric, that violation's relative
 * severity, the same measure as state_deviation, and its priority): the
 * state an insight about that window would get. NaN severity maps from
 * `priority`. Returns 0 or -EINVAL. */
int state_from_observation(const state_config_t *cfg, const char *component, const char *metric,
                           double severity, priority_t priority, double load, state_t *out);

/* Parses a key written by state_make ("<component>|<PROBLEM>|sev<n>|load<n>")
 * back into the state. Returns 0, or -EINVAL (out untouched). */
int state_parse_key(const char *key, state_t *out);

#endif
