/* bounds: the slo-adjuster's pure decisions (seed 000, SLOAdjuster): the
 * safety bounds of a proposed SLO (clamped, each clamp recorded), the seed's
 * validate_slo_adjustment checks, and the error budget that must remain
 * before anything is adjusted. No I/O.
 */
#ifndef HIVE_SLO_BOUNDS_H
#define HIVE_SLO_BOUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The parameters of one service's SLO, in this order. */
enum { SLO_LATENCY, SLO_AVAILABILITY, SLO_ERROR_RATE, SLO_N };

/* The largest latency target ServiceSLO carries (its hive.range). */
#define SLO_LATENCY_MAX_MS 3600000.0

/* Their names: "latency_ms", "availability", "error_rate". */
extern const char *const slo_params[SLO_N];

/* The index of parameter `name` (latency_p95_ms reads as latency_ms), or -1. */
int slo_param_index(const char *name);

typedef struct {
    double latency_max_change;               /* 0.3: latency within +-30 % of the current target */
    double availability_lo, availability_hi; /* 0.95, 0.9999 */
    double error_rate_lo, error_rate_hi;     /* 0.001, 0.10 */
    double min_budget;                       /* 0.2: remaining error budget below which nothing is adjusted */
} slo_bounds_t;

/* The seed's figures. */
extern const slo_bounds_t slo_bounds_default;

/* True when the bounds are usable (ordered, within [0, 1], change in (0, 1)). */
bool slo_bounds_valid(const slo_bounds_t *b);

/* What clamping did to one parameter. */
typedef struct {
    bool clamped[SLO_N];
    double proposed[SLO_N];      /* the value before clamping */
    double lo[SLO_N], hi[SLO_N]; /* the interval it was clamped to */
} slo_clamps_t;

/* Clamps `proposed` into the bounds around `current` (latency: current
 * +- latency_max_change * current, at most SLO_LATENCY_MAX_MS; availability, error rate: the fixed
 * ranges) into out[]. Records every clamp in *clamps (may be NULL).
 * Returns the number of parameters clamped, or -1 when a value is not finite
 * or a current latency is not positive. */
int slo_clamp(const double current[SLO_N], const double proposed[SLO_N], const slo_bounds_t *b,
              double out[SLO_N], slo_clamps_t *clamps);

/* validate_slo_adjustment: 0 when `next` is within the bounds around
 * `current`, or -1 with the first violation in `why`. */
int slo_validate(const double current[SLO_N], const double next[SLO_N], const slo_bounds_t *b, char *why,
                 size_t whylen);

/* The error budget over an SLO window. */
typedef struct {
    int64_t requests, errors;
    double allowed;   /* errors the availability target allows: requests * (1 - availability) */
    double remaining; /* 1 - errors / allowed, in [0, 1] (1 without requests) */
} slo_budget_t;

/* The budget of `requests` with `errors` against availability target `availability`. */
slo_budget_t slo_error_budget(int64_t requests, int64_t errors, double availability);

/* 0 when budget->remaining >= b->min_budget; -1 with the figures in `why`. */
int slo_budget_check(const slo_budget_t *budget, const slo_bounds_t *b, char *why, size_t whylen);

/* HEURISTIC_UPDATE, POLICY_CHANGE: a tunable's proposal limited to
 * +-max_change of its current value (|current| * max_change; a current value
 * of 0 is not limited) into *out. Returns 1 when limited, 0 when not, -1 when
 * a value is not finite. */
int policy_limit(double current, double proposed, double max_change, double *out);

#endif
