/* stats: the tests an experiment is decided by. Pure: numbers in, numbers out.
 *
 *  - stats_welch: Welch's unequal-variance t-test on two samples summarised
 *    by n, mean and sample variance (ddof 1); two-sided p-value, equal to
 *    scipy.stats.ttest_ind(a, b, equal_var=False).
 *  - stats_ztest_2prop: the pooled two-proportion z-test (x1/n1 against
 *    x2/n2), two-sided.
 *  - stats_msprt: the always-valid p-value of a mixture sequential probability
 *    ratio test (Johari, Pekelis, Walsh 2017) on a difference of means with a
 *    normal mixture N(0, tau^2): with V the variance of the difference and
 *    d its estimate, Lambda = sqrt(V/(V+tau^2)) exp(tau^2 d^2 / (2V(V+tau^2))),
 *    p_n = min(p_{n-1}, 1/Lambda). Looking at it after every interval keeps
 *    the false-positive rate at alpha, which the fixed-horizon p does not.
 *  - stats_srm: sample-ratio mismatch, the chi-square goodness of fit of the
 *    observed counts against the expected fractions.
 * A test that is undefined (a sample under 2, zero variance on both sides, no
 * trials) returns HIVE_EINVAL and leaves its outputs untouched.
 */
#ifndef EXPMGR_STATS_H
#define EXPMGR_STATS_H

#include <stddef.h>

/* One sample, summarised: size, mean, sample variance (ddof 1). */
typedef struct {
    double n, mean, var;
} stats_sample_t;

/* The outcome of a two-sample test of b against a. */
typedef struct {
    double statistic;       /* t or z: positive when b's mean (rate) is above a's */
    double df;              /* Welch's degrees of freedom; 0 for z */
    double p_value;         /* two-sided */
    double diff;            /* b - a */
    double se;              /* standard error of diff */
    double ci_low, ci_high; /* confidence interval of diff at 1 - alpha */
} stats_test_t;

/* Summarises x[0..n): mean and sample variance (0 when n < 2). */
stats_sample_t stats_summarise(const double *x, size_t n);

/* Regularised incomplete beta I_x(a, b), and the Student t survival function. */
double stats_ibeta(double a, double b, double x);
double stats_t_sf(double t, double df);
/* Standard normal CDF and its quantile (Acklam's rational approximation
 * refined by one Halley step, |error| < 1e-12). */
double stats_norm_cdf(double z);
double stats_norm_quantile(double p);
/* Student t quantile (bisection on stats_t_sf). */
double stats_t_quantile(double p, double df);

/* Welch's t-test of b against a; CI at 1 - alpha. 0 or HIVE_EINVAL. */
int stats_welch(const stats_sample_t *a, const stats_sample_t *b, double alpha, stats_test_t *out);

/* Pooled two-proportion z-test of x2/n2 against x1/n1; CI (unpooled) at
 * 1 - alpha. 0 or HIVE_EINVAL (no trials, or no variance: all 0 or all 1). */
int stats_ztest_2prop(double x1, double n1, double x2, double n2, double alpha, stats_test_t *out);

/* Always-valid p-value after one more look: `prev_p` is the previous look's
 * (1 before the first), `diff` and `var` the difference and its variance,
 * `tau` the mixture's scale (> 0). Returns the new p in [0, 1]; `prev_p` when
 * var <= 0. */
double stats_msprt(double prev_p, double diff, double var, double tau);

/* Sample-ratio mismatch: p-value of the chi-square goodness of fit of
 * counts[0..k) against fractions[0..k) (summing to 1). 0 or HIVE_EINVAL. */
int stats_srm(const double *counts, const double *fractions, size_t k, double *out_p);

/* Regularised upper incomplete gamma Q(a, x), for the chi-square survival. */
double stats_gamma_q(double a, double x);

#endif
