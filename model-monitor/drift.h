/* drift: per-feature data drift against a reference sample (pure, no I/O).
 *
 * Two statistics, both computed for every feature:
 *   - the two-sample Kolmogorov-Smirnov test, statistic and two-sided p-value
 *     as scipy.stats.ks_2samp(method="auto") gives them: exact (Hodges'
 *     lattice-path recursion in Viehmann's stable form) when both samples have
 *     at most 10,000 values; above that the asymptotic Kolmogorov
 *     distribution of sqrt(n1 n2 / (n1 + n2)) D (scipy uses kstwo.sf there,
 *     which differs from it by O(1/sqrt(n)));
 *   - the Population Stability Index as Evidently computes it: equal-width bins
 *     over the range of both samples, empty bins counted as 0.0001.
 * The verdict follows Evidently's defaults: a reference of at most
 * `ks_max_reference` values (1,000) is judged by KS (drift at p < 0.05),
 * a larger one by PSI (drift at PSI >= 0.1). A model's drift_score is the
 * share of drifted features; above DRIFT_THRESHOLD (seed 002: 0.2) the model
 * is degraded for drift.
 */
#ifndef MONITOR_DRIFT_H
#define MONITOR_DRIFT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double ks_p_threshold;   /* 0.05: KS drift below this p-value */
    double psi_threshold;    /* 0.1: PSI drift at or above this */
    double drift_threshold;  /* 0.2: model drift above this share of features */
    size_t ks_max_reference; /* 1000: KS up to this reference size, PSI above */
    unsigned psi_bins;       /* 10 */
} drift_config_t;

void drift_config_default(drift_config_t *out);

typedef struct {
    double statistic; /* D = sup |F1 - F2| */
    double p_value;   /* two-sided */
    bool exact;       /* exact distribution (else asymptotic) */
} drift_ks_t;

/* Two-sample KS of a[0..na) and b[0..nb) (any order; not modified). Returns
 * 0, or HIVE_EINVAL for an empty sample or a NaN, HIVE_ENOMEM. */
int drift_ks_2samp(const double *a, size_t na, const double *b, size_t nb, drift_ks_t *out);

/* PSI of `cur` against `ref` over `bins` equal-width bins. Returns 0, or
 * HIVE_EINVAL for an empty sample, a NaN or bins == 0. */
int drift_psi(const double *ref, size_t nref, const double *cur, size_t ncur, unsigned bins, double *out_psi);

typedef enum { DRIFT_KS, DRIFT_PSI } drift_method_t;

/* "ks", "psi". */
const char *drift_method_name(drift_method_t m);

typedef struct {
    drift_method_t method; /* the one that decides */
    double ks_statistic, ks_p_value, psi;
    double threshold; /* of the deciding method */
    bool drifted;
    size_t nref, ncur;
} drift_feature_t;

/* Both statistics of one feature and the verdict of `cfg`'s rule. Returns 0
 * or an error of drift_ks_2samp / drift_psi. */
int drift_feature_check(const drift_config_t *cfg, const double *ref, size_t nref, const double *cur,
                        size_t ncur, drift_feature_t *out);

/* The share of drifted features among `n` (0 when n == 0). */
double drift_score(const drift_feature_t *features, size_t n);

#endif
