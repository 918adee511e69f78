/* drift: KS, PSI, Wasserstein per feature; chi-square and Jensen-Shannon. See drift.h. */
#include "drift.h"

#include "hive_err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KS_EXACT_MAX_N 10000

void drift_config_default(drift_config_t *out)
{
    *out = (drift_config_t){.ks_p_threshold = 0.05,
                            .psi_threshold = 0.1,
                            .wasserstein_threshold = 0.1,
                            .drift_threshold = 0.2,
                            .ks_max_reference = 1000,
                            .psi_bins = 10};
}

const char *drift_method_name(drift_method_t m)
{
    return m == DRIFT_KS ? "ks" : m == DRIFT_PSI ? "psi" : "wasserstein";
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static bool has_nan(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            return true;
        }
    }
    return false;
}

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Probability that paths pass outside the lines x - y = +-h (n1 == n2 == n). */
static double prob_outside_square(size_t n, size_t h)
{
    double p = 0.0;
    for (long k = (long)(n / h); k >= 0; k--) {
        double p1 = 1.0;
        for (size_t j = 0; j < h; j++) {
            p1 = ((double)n - (double)k * (double)h - (double)j) * p1 /
                 ((double)n + (double)k * (double)h + (double)j + 1.0);
        }
        p = p1 * (1.0 - p);
    }
    return 2.0 * p;
}

/* 1 - the share of lattice paths from (0,0) to (m,n) staying strictly inside
 * |nx/g - my/g| < h, computed directly as the outer probability (Viehmann,
 * arXiv:2102.08037), one sliding column at a time. NaN when out of memory. */
static double prob_outer_inside(size_t m, size_t n, size_t g, size_t h)
{
    if (m < n) {
        size_t t = m;
        m = n;
        n = t;
    }
    double mg = (double)(m / g), ng = (double)(n / g), hd = (double)h;
    long minj = 0, maxj = (long)fmin(ceil(hd / mg), (double)n + 1);
    long curlen = maxj - minj;
    size_t lenA = (size_t)fmin(2.0 * (double)maxj + 2.0, (double)n + 1);
    double *A = malloc(lenA * sizeof(*A));
    if (!A) {
        return NAN;
    }
    for (size_t i = 0; i < lenA; i++) {
        A[i] = 1.0;
    }
    for (long j = minj; j < maxj; j++) {
        A[j] = 0.0;
    }
    for (size_t i = 1; i <= m; i++) {
        long lastminj = minj, lastlen = curlen;
        minj = (long)floor((ng * (double)i - hd) / mg) + 1;
        minj = minj < 0 ? 0 : minj;
        minj = minj > (long)n ? (long)n : minj;
        maxj = (long)fmin(ceil((ng * (double)i + hd) / mg), (double)n + 1);
        if (maxj <= minj) {
            free(A);
            return 1.0;
        }
        double val = minj == 0 ? 0.0 : 1.0;
        for (long jj = 0; jj < maxj - minj; jj++) {
            double j = (double)(jj + minj);
            val = (A[jj + minj - lastminj] * (double)i + val * j) / ((double)i + j);
            A[jj] = val;
        }
        curlen = maxj - minj;
        for (long k = 0; lastlen > curlen && k < lastlen - curlen; k++) {
            A[maxj - minj + k] = 1.0;
        }
    }
    double p = A[maxj - minj - 1];
    free(A);
    return p;
}

/* Kolmogorov's limiting distribution: P(K > x). */
static double kolmogorov_sf(double x)
{
    if (x <= 0) {
        return 1.0;
    }
    if (x < 1.0) {
        /* The theta-function form converges fast for small x. */
        double s = 0, c = M_PI * M_PI / (8.0 * x * x);
        for (int k = 1; k <= 99; k += 2) {
            s += exp(-(double)k * (double)k * c);
        }
        return 1.0 - sqrt(2.0 * M_PI) / x * s;
    }
    double s = 0;
    for (int k = 1; k <= 100; k++) {
        double t = exp(-2.0 * (double)k * (double)k * x * x);
        s += (k % 2 ? 1.0 : -1.0) * t;
        if (t < 1e-300) {
            break;
        }
    }
    return 2.0 * s;
}

int drift_ks_2samp(const double *a, size_t na, const double *b, size_t nb, drift_ks_t *out)
{
    if (!a || !b || na == 0 || nb == 0 || has_nan(a, na) || has_nan(b, nb)) {
        return HIVE_EINVAL;
    }
    double *x = malloc(na * sizeof(*x)), *y = malloc(nb * sizeof(*y));
    if (!x || !y) {
        free(x);
        free(y);
        return HIVE_ENOMEM;
    }
    memcpy(x, a, na * sizeof(*x));
    memcpy(y, b, nb * sizeof(*y));
    qsort(x, na, sizeof(*x), cmp_double);
    qsort(y, nb, sizeof(*y), cmp_double);
    /* D over the pooled values: both ECDFs taken right-continuous at each. */
    size_t i = 0, j = 0;
    double d = 0;
    while (i < na || j < nb) {
        double v = j >= nb || (i < na && x[i] <= y[j]) ? x[i] : y[j];
        while (i < na && x[i] <= v) {
            i++;
        }
        while (j < nb && y[j] <= v) {
            j++;
        }
        double diff = fabs((double)i / (double)na - (double)j / (double)nb);
        d = diff > d ? diff : d;
    }
    free(x);
    free(y);
    drift_ks_t r = {.statistic = d, .exact = false};
    bool done = false;
    if (na <= KS_EXACT_MAX_N && nb <= KS_EXACT_MAX_N) {
        size_t g = gcd(na, nb);
        double lcm = (double)(na / g) * (double)nb;
        size_t h = (size_t)nearbyint(d * lcm);
        r.statistic = (double)h / lcm;
        double p = h == 0 ? 1.0 : na == nb ? prob_outside_square(na, h) : prob_outer_inside(na, nb, g, h);
        if (p >= 0.0 && p <= 1.0) {
            r.p_value = p;
            r.exact = done = true;
        }
    }
    if (!done) {
        double m = (double)(na > nb ? na : nb), n = (double)(na > nb ? nb : na);
        double en = nearbyint(m * n / (m + n));
        r.p_value = fmin(1.0, fmax(0.0, kolmogorov_sf(sqrt(en) * d)));
    }
    *out = r;
    return 0;
}

int drift_psi(const double *ref, size_t nref, const double *cur, size_t ncur, unsigned bins, double *out_psi)
{
    if (!ref || !cur || nref == 0 || ncur == 0 || bins == 0 || has_nan(ref, nref) || has_nan(cur, ncur)) {
        return HIVE_EINVAL;
    }
    double lo = ref[0], hi = ref[0];
    for (size_t i = 0; i < nref; i++) {
        lo = fmin(lo, ref[i]);
        hi = fmax(hi, ref[i]);
    }
    for (size_t i = 0; i < ncur; i++) {
        lo = fmin(lo, cur[i]);
        hi = fmax(hi, cur[i]);
    }
    if (lo == hi) {
        /* numpy widens a zero range to [lo - 0.5, hi + 0.5] */
        lo -= 0.5;
        hi += 0.5;
    }
    uint64_t *cr = calloc(2 * (size_t)bins, sizeof(*cr));
    if (!cr) {
        return HIVE_ENOMEM;
    }
    uint64_t *cc = cr + bins;
    double width = (hi - lo) / (double)bins;
    for (int s = 0; s < 2; s++) {
        const double *v = s ? cur : ref;
        size_t nv = s ? ncur : nref;
        uint64_t *c = s ? cc : cr;
        for (size_t i = 0; i < nv; i++) {
            /* bins are [e_k, e_k+1), the last one closed, as numpy.histogram */
            long k = (long)((v[i] - lo) / width);
            k = k < 0 ? 0 : k >= (long)bins ? (long)bins - 1 : k;
            c[k]++;
        }
    }
    double psi = 0;
    for (unsigned k = 0; k < bins; k++) {
        double e = (double)cr[k] / (double)nref, a = (double)cc[k] / (double)ncur;
        e = e == 0 ? 0.0001 : e;
        a = a == 0 ? 0.0001 : a;
        psi += (a - e) * log(a / e);
    }
    free(cr);
    *out_psi = psi;
    return 0;
}

int drift_feature_check(const drift_config_t *cfg, const double *ref, size_t nref, const double *cur,
                        size_t ncur, drift_feature_t *out)
{
    drift_ks_t ks;
    double psi, wd;
    int rc = drift_ks_2samp(ref, nref, cur, ncur, &ks);
    if (rc == 0) {
        rc = drift_psi(ref, nref, cur, ncur, cfg->psi_bins, &psi);
    }
    if (rc == 0) {
        rc = drift_wasserstein_norm(ref, nref, cur, ncur, &wd);
    }
    if (rc != 0) {
        return rc;
    }
    drift_feature_t f = {.ks_statistic = ks.statistic,
                         .ks_p_value = ks.p_value,
                         .psi = psi,
                         .wasserstein = wd,
                         .nref = nref,
                         .ncur = ncur};
    if (nref <= cfg->ks_max_reference) {
        f.method = DRIFT_KS;
        f.threshold = cfg->ks_p_threshold;
        f.drifted = ks.p_value < cfg->ks_p_threshold;
    } else {
        f.method = DRIFT_WASSERSTEIN;
        f.threshold = cfg->wasserstein_threshold;
        f.drifted = wd >= cfg->wasserstein_threshold;
    }
    *out = f;
    return 0;
}

double drift_score(const drift_feature_t *features, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += features[i].drifted;
    }
    return n ? (double)k / (double)n : 0.0;
}

/* ---- Wasserstein, chi-square, Jensen-Shannon ----------------------------------- */

static double *sorted_copy(const double *x, size_t n)
{
    double *c = malloc(n * sizeof(*c));
    if (c) {
        memcpy(c, x, n * sizeof(*c));
        qsort(c, n, sizeof(*c), cmp_double);
    }
    return c;
}

int drift_wasserstein(const double *a, size_t na, const double *b, size_t nb, double *out)
{
    if (!a || !b || na == 0 || nb == 0 || has_nan(a, na) || has_nan(b, nb)) {
        return HIVE_EINVAL;
    }
    double *x = sorted_copy(a, na), *y = sorted_copy(b, nb);
    if (!x || !y) {
        free(x);
        free(y);
        return HIVE_ENOMEM;
    }
    /* The area between the two empirical CDFs: between consecutive values of
     * the union, |F_a - F_b| is constant (the shares at or below the left end). */
    size_t i = 0, j = 0;
    double prev = fmin(x[0], y[0]), total = 0;
    while (i < na || j < nb) {
        double v = i == na ? y[j] : j == nb ? x[i] : fmin(x[i], y[j]);
        total += fabs((double)i / (double)na - (double)j / (double)nb) * (v - prev);
        while (i < na && x[i] == v) {
            i++;
        }
        while (j < nb && y[j] == v) {
            j++;
        }
        prev = v;
    }
    free(x);
    free(y);
    *out = total;
    return 0;
}

int drift_wasserstein_norm(const double *ref, size_t nref, const double *cur, size_t ncur, double *out)
{
    double w;
    int rc = drift_wasserstein(ref, nref, cur, ncur, &w);
    if (rc != 0) {
        return rc;
    }
    double mean = 0, ss = 0;
    for (size_t i = 0; i < nref; i++) {
        mean += ref[i];
    }
    mean /= (double)nref;
    for (size_t i = 0; i < nref; i++) {
        ss += (ref[i] - mean) * (ref[i] - mean);
    }
    *out = w / fmax(sqrt(ss / (double)nref), 0.001);
    return 0;
}

/* The regularized upper incomplete gamma Q(s, x): a series for x < s + 1,
 * else Lentz's continued fraction (Numerical Recipes, gammq). */
static double gamma_q(double s, double x)
{
    if (x <= 0) {
        return 1.0;
    }
    double lg = s * log(x) - x - lgamma(s);
    if (x < s + 1) {
        double ap = s, sum = 1.0 / s, del = sum;
        for (int n = 0; n < 100000 && fabs(del) > fabs(sum) * 1e-17; n++) {
            ap += 1;
            del *= x / ap;
            sum += del;
        }
        return 1.0 - sum * exp(lg);
    }
    const double tiny = 1e-300;
    double b = x + 1 - s, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - s);
        b += 2;
        d = an * d + b;
        d = fabs(d) < tiny ? tiny : d;
        c = b + an / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-17) {
            break;
        }
    }
    return exp(lg) * h;
}

double drift_chi2_sf(double x, double df)
{
    return df > 0 ? gamma_q(df / 2, x / 2) : NAN;
}

int drift_chisquare(const double *obs, const double *expected, size_t k, double *out_stat, double *out_p)
{
    if (!obs || !expected || k < 2) {
        return HIVE_EINVAL;
    }
    double stat = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(obs[i] >= 0) || !(expected[i] >= 0)) {
            return HIVE_EINVAL;
        }
        if (expected[i] > 0) {
            stat += (obs[i] - expected[i]) * (obs[i] - expected[i]) / expected[i];
        } else if (obs[i] > 0) {
            stat = INFINITY; /* observed where none was expected */
        }
    }
    *out_stat = stat;
    *out_p = isinf(stat) ? 0.0 : drift_chi2_sf(stat, (double)(k - 1));
    return 0;
}

int drift_jensenshannon(const double *p, const double *q, size_t k, double *out)
{
    if (!p || !q || k == 0) {
        return HIVE_EINVAL;
    }
    double sp = 0, sq = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(p[i] >= 0) || !(q[i] >= 0)) {
            return HIVE_EINVAL;
        }
        sp += p[i];
        sq += q[i];
    }
    if (!(sp > 0) || !(sq > 0)) {
        return HIVE_EINVAL;
    }
    double js = 0;
    for (size_t i = 0; i < k; i++) {
        double a = p[i] / sp, b = q[i] / sq, m = (a + b) / 2;
        js += (a > 0 ? a * log(a / m) : 0) + (b > 0 ? b * log(b / m) : 0);
    }
    *out = sqrt(fmax(js / 2, 0));
    return 0;
}
