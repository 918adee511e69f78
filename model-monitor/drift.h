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
 *   - the Wasserstein distance normed by the reference's standard deviation
 *     (Evidently's "wasserstein" test), exact: scipy.stats.wasserstein_distance
 *     of the same samples.
 * The verdict follows Evidently's defaults for numeric features: a reference
 * of at most `ks_max_reference` values (1,000) is judged by KS (drift at
 * p < 0.05), a larger one by the normed Wasserstein distance (drift at
 * >= 0.1). Chi-square and Jensen-Shannon (Evidently's tests of categorical
 * features) are here as pure functions over category counts; FeatureBatch
 * carries numeric features only, so the check does not use them yet. A model's drift_score is the
 * share of drifted features; above DRIFT_THRESHOLD (seed 002: 0.2) the model
 * is degraded for drift.
 */
#ifndef MONITOR_DRIFT_H
#define MONITOR_DRIFT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double ks_p_threshold;        /* 0.05: KS drift below this p-value */
    double psi_threshold;         /* 0.1: PSI drift at or above this (reported, no longer deciding) */
    double wasserstein_threshold; /* 0.1: normed Wasserstein drift at or above this */
    double drift_threshold;       /* 0.2: model drift above this share of features */
    size_t ks_max_reference;      /* 1000: KS up to this reference size, Wasserstein above */
    unsigned psi_bins;            /* 10 */
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

/* scipy.stats.wasserstein_distance(a, b): the area between the two empirical
 * CDFs. Returns 0, or HIVE_EINVAL for an empty sample or a NaN, HIVE_ENOMEM. */
int drift_wasserstein(const double *a, size_t na, const double *b, size_t nb, double *out);
/* Evidently's "wasserstein" test statistic: the distance above divided by
 * max(std(ref) with ddof 0, 0.001). Errors as drift_wasserstein. */
int drift_wasserstein_norm(const double *ref, size_t nref, const double *cur, size_t ncur, double *out);

/* scipy.stats.chi2.sf(x, df): the upper tail of the chi-square distribution. */
double drift_chi2_sf(double x, double df);
/* scipy.stats.chisquare(obs, expected) over k >= 2 categories: the statistic
 * sum (o - e)^2 / e and its p-value with k - 1 degrees of freedom (the sums
 * are expected equal, as scipy requires; Evidently scales the reference's
 * counts by ncur / nref). A category expected 0 and observed is an infinite
 * statistic, p 0. Returns 0 or HIVE_EINVAL (k < 2, a negative or NaN count). */
int drift_chisquare(const double *obs, const double *expected, size_t k, double *out_stat, double *out_p);
/* scipy.spatial.distance.jensenshannon(p, q) (natural log): p and q are
 * normalized to sum 1 first, so counts may be given. Returns 0 or
 * HIVE_EINVAL (k == 0, a negative or NaN entry, a zero sum). */
int drift_jensenshannon(const double *p, const double *q, size_t k, double *out);

typedef enum { DRIFT_KS, DRIFT_PSI, DRIFT_WASSERSTEIN } drift_method_t;

/* "ks", "psi", "wasserstein". */
const char *drift_method_name(drift_method_t m);

typedef struct {
    drift_method_t method; /* the one that decides */
    double ks_statistic, ks_p_value, psi;
    double wasserstein; /* normed by the reference's standard deviation (drift_wasserstein_norm) */
    double threshold;   /* of the deciding method */
    bool drifted;
    size_t nref, ncur;
} drift_feature_t;

/* The statistics of one feature (KS, PSI, Wasserstein) and the verdict of `cfg`'s rule. Returns 0
 * or an error of drift_ks_2samp / drift_psi. */
int drift_feature_check(const drift_config_t *cfg, const double *ref, size_t nref, const double *cur,
                        size_t ncur, drift_feature_t *out);

/* The share of drifted features among `n` (0 when n == 0). */
double drift_score(const drift_feature_t *features, size_t n);

#endif
