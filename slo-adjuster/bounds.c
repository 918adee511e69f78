/* bounds: the SLO bounds, checks and error budget. See bounds.h. */
#include "bounds.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const slo_params[SLO_N] = {"latency_ms", "availability", "error_rate"};

const slo_bounds_t slo_bounds_default = {
    .latency_max_change = 0.3,
    .availability_lo = 0.95,
    .availability_hi = 0.9999,
    .error_rate_lo = 0.001,
    .error_rate_hi = 0.10,
    .min_budget = 0.2,
};

int slo_param_index(const char *name)
{
    if (!name) {
        return -1;
    }
    if (!strcmp(name, "latency_p95_ms")) {
        return SLO_LATENCY;
    }
    for (int i = 0; i < SLO_N; i++) {
        if (!strcmp(name, slo_params[i])) {
            return i;
        }
    }
    return -1;
}

bool slo_bounds_valid(const slo_bounds_t *b)
{
    return b && b->latency_max_change > 0 && b->latency_max_change < 1 && b->availability_lo >= 0 &&
           b->availability_lo <= b->availability_hi && b->availability_hi <= 1 && b->error_rate_lo >= 0 &&
           b->error_rate_lo <= b->error_rate_hi && b->error_rate_hi <= 1 && b->min_budget >= 0 &&
           b->min_budget <= 1;
}

/* The interval parameter i must stay in, around `current`. */
static void interval(int i, const double current[SLO_N], const slo_bounds_t *b, double *lo, double *hi)
{
    switch (i) {
    case SLO_LATENCY:
        *lo = current[SLO_LATENCY] * (1.0 - b->latency_max_change);
        *hi = fmin(SLO_LATENCY_MAX_MS, current[SLO_LATENCY] * (1.0 + b->latency_max_change));
        break;
    case SLO_AVAILABILITY:
        *lo = b->availability_lo;
        *hi = b->availability_hi;
        break;
    default:
        *lo = b->error_rate_lo;
        *hi = b->error_rate_hi;
        break;
    }
}

int slo_clamp(const double current[SLO_N], const double proposed[SLO_N], const slo_bounds_t *b,
              double out[SLO_N], slo_clamps_t *clamps)
{
    if (!(isfinite(current[SLO_LATENCY]) && current[SLO_LATENCY] > 0)) {
        return -1;
    }
    for (int i = 0; i < SLO_N; i++) {
        if (!isfinite(proposed[i])) {
            return -1;
        }
    }
    int n = 0;
    for (int i = 0; i < SLO_N; i++) {
        double lo, hi;
        interval(i, current, b, &lo, &hi);
        double v = fmin(hi, fmax(lo, proposed[i]));
        bool clamped = v != proposed[i];
        if (clamps) {
            clamps->clamped[i] = clamped;
            clamps->proposed[i] = proposed[i];
            clamps->lo[i] = lo;
            clamps->hi[i] = hi;
        }
        out[i] = v;
        n += clamped;
    }
    return n;
}

int slo_validate(const double current[SLO_N], const double next[SLO_N], const slo_bounds_t *b, char *why,
                 size_t whylen)
{
    if (!(isfinite(current[SLO_LATENCY]) && current[SLO_LATENCY] > 0)) {
        snprintf(why, whylen, "the current latency target %g is not a positive number", current[SLO_LATENCY]);
        return -1;
    }
    for (int i = 0; i < SLO_N; i++) {
        double lo, hi;
        interval(i, current, b, &lo, &hi);
        /* The latency interval is computed; allow its last bit of rounding. */
        double slack = i == SLO_LATENCY ? 1e-12 * hi : 0.0;
        if (!isfinite(next[i]) || next[i] < lo - slack || next[i] > hi + slack) {
            snprintf(why, whylen, "%s %g outside [%g, %g]", slo_params[i], next[i], lo, hi);
            return -1;
        }
    }
    return 0;
}

slo_budget_t slo_error_budget(int64_t requests, int64_t errors, double availability)
{
    slo_budget_t s = {.requests = requests, .errors = errors, .remaining = 1.0};
    if (requests <= 0) {
        return s;
    }
    s.allowed = (double)requests * (1.0 - availability);
    if (s.allowed <= 0) {
        s.remaining = errors > 0 ? 0.0 : 1.0;
        return s;
    }
    s.remaining = fmin(1.0, fmax(0.0, 1.0 - (double)errors / s.allowed));
    return s;
}

int slo_budget_check(const slo_budget_t *budget, const slo_bounds_t *b, char *why, size_t whylen)
{
    if (budget->remaining >= b->min_budget) {
        return 0;
    }
    snprintf(
        why, whylen,
        "error budget too low: %.1f%% remaining (below %.0f%%): %lld errors of %lld requests, %.1f allowed",
        100.0 * budget->remaining, 100.0 * b->min_budget, (long long)budget->errors,
        (long long)budget->requests, budget->allowed);
    return -1;
}

int policy_limit(double current, double proposed, double max_change, double *out)
{
    if (!isfinite(current) || !isfinite(proposed)) {
        return -1;
    }
    double width = fabs(current) * max_change;
    double v = current == 0 ? proposed : fmin(current + width, fmax(current - width, proposed));
    *out = v;
    return v != proposed;
}
