/* degradation: decides whether one aggregated telemetry window is degraded.
 *
 * Seed 000's TelemetryConsumer rule: a service is degraded when its SLO
 * compliance is below 99%, its p95 latency above 1000 ms or its error rate
 * above 1%. Pure: plain structs in, plain structs out.
 */
#ifndef OPTIMIZER_DEGRADATION_H
#define OPTIMIZER_DEGRADATION_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double slo_compliance_min; /* degraded below this; seed: 0.99 */
    double latency_p95_max_ms; /* degraded above this; seed: 1000 */
    double error_rate_max;     /* degraded above this; seed: 0.01 */
} degradation_thresholds_t;

/* The seed's thresholds. */
/* clang-format off */
#define DEGRADATION_THRESHOLDS_DEFAULT {0.99, 1000.0, 0.01}
/* clang-format on */

typedef enum {
    DEGRADATION_SLO = 1 << 0,
    DEGRADATION_LATENCY = 1 << 1,
    DEGRADATION_ERROR_RATE = 1 << 2,
} degradation_flag_t;

/* The fields of a TelemetryAggregated record the rule reads. */
typedef struct {
    const char *service;
    int64_t window_start_ms, window_end_ms;
    double slo_compliance, latency_p95_ms, error_rate;
} telemetry_view_t;

typedef struct {
    unsigned flags;        /* degradation_flag_t bits; 0 = healthy */
    const char *metric;    /* the worst violation: "slo_compliance", "latency_p95_ms" or "error_rate" */
    double current_value;  /* its observed value */
    double baseline_value; /* its threshold */
    double severity;       /* relative excess of the worst violation; 1.0 = twice as bad as allowed */
    const char *priority;  /* "CRITICAL" when severity >= 1 or two or more rules broke, else "HIGH" */
    char violations[64];   /* comma-separated metric names of every broken rule */
    char insight_id[24]; /* "ins-" + 16 hex digits, a hash of service and window: a replay gets the same id */
    char description[256];
} degradation_t;

/* Fills `out` and returns 1 when the window is degraded, 0 when healthy, -1 on
 * invalid input (NULL service, NaN values, window_end < window_start). */
int degradation_detect(const degradation_thresholds_t *th, const telemetry_view_t *t, degradation_t *out);

/* Names of the flag bits, for metric labels. */
const char *degradation_flag_name(degradation_flag_t flag);

#endif
