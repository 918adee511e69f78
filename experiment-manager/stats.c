/* stats: see stats.h. The special functions follow the classic continued
 * fractions (Lentz's method) and series, iterated to double precision. */
#include "stats.h"

#include <float.h>
#include <math.h>

#include "hive_err.h"

#define FPMIN 1e-300
#define EPS 1e-16

stats_sample_t stats_summarise(const double *x, size_t n)
{
    stats_sample_t s = {(double)n, 0, 0};
    if (n == 0) {
        return s;
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++) {
        mean += (x[i] - mean) / (double)(i + 1);
    }
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        ss += (x[i] - mean) * (x[i] - mean);
    }
    s.mean = mean;
    s.var = n > 1 ? ss / (double)(n - 1) : 0;
    return s;
}

/* Continued fraction of the incomplete beta (modified Lentz). */
static double betacf(double a, double b, double x)
{
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < FPMIN) {
        d = FPMIN;
    }
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        d = fabs(d) < FPMIN ? FPMIN : d;
        c = 1 + aa / c;
        c = fabs(c) < FPMIN ? FPMIN : c;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        d = fabs(d) < FPMIN ? FPMIN : d;
        c = 1 + aa / c;
        c = fabs(c) < FPMIN ? FPMIN : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < EPS) {
            break;
        }
    }
    return h;
}

double stats_ibeta(double a, double b, double x)
{
    if (x <= 0) {
        return 0;
    }
    if (x >= 1) {
        return 1;
    }
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) {
        return exp(lbt) * betacf(a, b, x) / a;
    }
    return 1 - exp(lbt) * betacf(b, a, 1 - x) / b;
}

double stats_t_sf(double t, double df)
{
    if (isinf(t)) {
        return t > 0 ? 0 : 1;
    }
    double x = df / (df + t * t);
    double tail = 0.5 * stats_ibeta(df / 2, 0.5, x);
    return t > 0 ? tail : 1 - tail;
}

double stats_norm_cdf(double z)
{
    return 0.5 * erfc(-z / M_SQRT2);
}

double stats_norm_quantile(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                               1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (p <= 0) {
        return -INFINITY;
    }
    if (p >= 1) {
        return INFINITY;
    }
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* One Halley step on the exact CDF. */
    double e = stats_norm_cdf(x) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

double stats_t_quantile(double p, double df)
{
    if (p <= 0) {
        return -INFINITY;
    }
    if (p >= 1) {
        return INFINITY;
    }
    if (p < 0.5) {
        return -stats_t_quantile(1 - p, df);
    }
    double lo = 0, hi = 1;
    while (1 - stats_t_sf(hi, df) < p && hi < 1e12) {
        hi *= 2;
    }
    for (int i = 0; i < 200 && hi - lo > 1e-13 * (1 + hi); i++) {
        double mid = 0.5 * (lo + hi);
        if (1 - stats_t_sf(mid, df) < p) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return 0.5 * (lo + hi);
}

int stats_welch(const stats_sample_t *a, const stats_sample_t *b, double alpha, stats_test_t *out)
{
    if (a->n < 2 || b->n < 2 || !(a->var >= 0) || !(b->var >= 0) || !(alpha > 0 && alpha < 1)) {
        return HIVE_EINVAL;
    }
    double va = a->var / a->n, vb = b->var / b->n, v = va + vb;
    if (!(v > 0)) {
        return HIVE_EINVAL;
    }
    double df = v * v / (va * va / (a->n - 1) + vb * vb / (b->n - 1));
    double diff = b->mean - a->mean, se = sqrt(v), t = diff / se;
    double half = stats_t_quantile(1 - alpha / 2, df) * se;
    *out = (stats_test_t){.statistic = t,
                          .df = df,
                          .p_value = fmin(1, 2 * stats_t_sf(fabs(t), df)),
                          .diff = diff,
                          .se = se,
                          .ci_low = diff - half,
                          .ci_high = diff + half};
    return 0;
}

int stats_ztest_2prop(double x1, double n1, double x2, double n2, double alpha, stats_test_t *out)
{
    if (!(n1 > 0) || !(n2 > 0) || x1 < 0 || x2 < 0 || x1 > n1 || x2 > n2 || !(alpha > 0 && alpha < 1)) {
        return HIVE_EINVAL;
    }
    double p1 = x1 / n1, p2 = x2 / n2, pool = (x1 + x2) / (n1 + n2);
    double se0 = sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2));
    if (!(se0 > 0)) {
        return HIVE_EINVAL;
    }
    double diff = p2 - p1, z = diff / se0;
    double se = sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2);
    double half = stats_norm_quantile(1 - alpha / 2) * se;
    *out = (stats_test_t){.statistic = z,
                          .df = 0,
                          .p_value = fmin(1, erfc(fabs(z) / M_SQRT2)),
                          .diff = diff,
                          .se = se,
                          .ci_low = diff - half,
                          .ci_high = diff + half};
    return 0;
}

double stats_msprt(double prev_p, double diff, double var, double tau)
{
    if (!(var > 0) || !(tau > 0) || !isfinite(diff)) {
        return prev_p;
    }
    double t2 = tau * tau;
    double log_lambda = 0.5 * log(var / (var + t2)) + t2 * diff * diff / (2 * var * (var + t2));
    double p = log_lambda > 0 ? exp(-log_lambda) : 1;
    return fmin(prev_p, p);
}

/* Series of the lower incomplete gamma P(a, x) (x < a + 1). */
static double gamma_p_series(double a, double x)
{
    double ap = a, sum = 1 / a, del = sum;
    for (int n = 0; n < 10000; n++) {
        ap += 1;
        del *= x / ap;
        sum += del;
        if (fabs(del) < fabs(sum) * EPS) {
            break;
        }
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Continued fraction of Q(a, x) (x >= a + 1). */
static double gamma_q_cf(double a, double x)
{
    double b = x + 1 - a, c = 1 / FPMIN, d = 1 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        d = fabs(d) < FPMIN ? FPMIN : d;
        c = b + an / c;
        c = fabs(c) < FPMIN ? FPMIN : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < EPS) {
            break;
        }
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double stats_gamma_q(double a, double x)
{
    if (x <= 0) {
        return 1;
    }
    return x < a + 1 ? 1 - gamma_p_series(a, x) : gamma_q_cf(a, x);
}

int stats_srm(const double *counts, const double *fractions, size_t k, double *out_p)
{
    if (k < 2) {
        return HIVE_EINVAL;
    }
    double total = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(counts[i] >= 0) || !(fractions[i] >= 0)) {
            return HIVE_EINVAL;
        }
        total += counts[i];
    }
    if (!(total > 0)) {
        return HIVE_EINVAL;
    }
    double chi2 = 0;
    size_t cells = 0;
    for (size_t i = 0; i < k; i++) {
        double e = fractions[i] * total;
        if (e > 0) {
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
            cells++;
        } else if (counts[i] > 0) {
            *out_p = 0; /* traffic where none was sent */
            return 0;
        }
    }
    if (cells < 2) {
        return HIVE_EINVAL;
    }
    *out_p = stats_gamma_q((double)(cells - 1) / 2, chi2 / 2);
    return 0;
}
