#include "degradation.h"

#include "fnv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *degradation_flag_name(degradation_flag_t flag)
{
    switch (flag) {
    case DEGRADATION_SLO:
        return "slo_compliance";
    case DEGRADATION_LATENCY:
        return "latency_p95_ms";
    case DEGRADATION_ERROR_RATE:
        return "error_rate";
    }
    return "unknown";
}

typedef struct {
    degradation_flag_t flag;
    double value, threshold, severity;
} violation_t;

int degradation_detect(const degradation_thresholds_t *th, const telemetry_view_t *t, degradation_t *out)
{
    if (!t->service || isnan(t->slo_compliance) || isnan(t->latency_p95_ms) || isnan(t->error_rate) ||
        t->window_end_ms < t->window_start_ms) {
        return -1;
    }
    violation_t v[3];
    int n = 0;
    if (t->slo_compliance < th->slo_compliance_min) {
        /* Severity relative to the error budget: 0.98 against 0.99 spends twice the budget. */
        double budget = 1.0 - th->slo_compliance_min;
        double sev = budget > 0 ? (th->slo_compliance_min - t->slo_compliance) / budget : INFINITY;
        v[n++] = (violation_t){DEGRADATION_SLO, t->slo_compliance, th->slo_compliance_min, sev};
    }
    if (t->latency_p95_ms > th->latency_p95_max_ms) {
        double sev = th->latency_p95_max_ms > 0 ? t->latency_p95_ms / th->latency_p95_max_ms - 1.0 : INFINITY;
        v[n++] = (violation_t){DEGRADATION_LATENCY, t->latency_p95_ms, th->latency_p95_max_ms, sev};
    }
    if (t->error_rate > th->error_rate_max) {
        double sev = th->error_rate_max > 0 ? t->error_rate / th->error_rate_max - 1.0 : INFINITY;
        v[n++] = (violation_t){DEGRADATION_ERROR_RATE, t->error_rate, th->error_rate_max, sev};
    }
    if (n == 0) {
        return 0;
    }
    int worst = 0;
    for (int i = 1; i < n; i++) {
        if (v[i].severity > v[worst].severity) {
            worst = i;
        }
    }
    memset(out, 0, sizeof(*out));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        out->flags |= v[i].flag;
        off += (size_t)snprintf(out->violations + off, sizeof(out->violations) - off, "%s%s", i ? "," : "",
                                degradation_flag_name(v[i].flag));
    }
    out->metric = degradation_flag_name(v[worst].flag);
    out->current_value = v[worst].value;
    out->baseline_value = v[worst].threshold;
    out->severity = v[worst].severity;
    out->priority = (n >= 2 || v[worst].severity >= 1.0) ? "CRITICAL" : "HIGH";

    /* A stable identity for (service, window), not a secret. */
    uint64_t h = fnv1a64(FNV1A64_INIT, t->service, strlen(t->service) + 1);
    h = fnv1a64(h, &t->window_start_ms, sizeof(t->window_start_ms));
    h = fnv1a64(h, &t->window_end_ms, sizeof(t->window_end_ms));
    snprintf(out->insight_id, sizeof(out->insight_id), "ins-%016llx", (unsigned long long)h);
    snprintf(out->description, sizeof(out->description), "%s degraded: %s = %g breaks the threshold %g (%s)",
             t->service, out->metric, out->current_value, out->baseline_value, out->violations);
    return 1;
}
