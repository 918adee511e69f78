/* drift: KS and PSI per feature. See drift.h. */
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
                            .drift_threshold = 0.2,
                            .ks_max_reference = 1000,
                            .psi_bins = 10};
}

const char *drift_method_name(drift_method_t m)
{
    return m == DRIFT_KS ? "ks" : "psi";
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
    double psi;
    int rc = drift_ks_2samp(ref, nref, cur, ncur, &ks);
    if (rc == 0) {
        rc = drift_psi(ref, nref, cur, ncur, cfg->psi_bins, &psi);
    }
    if (rc != 0) {
        return rc;
    }
    drift_feature_t f = {
        .ks_statistic = ks.statistic, .ks_p_value = ks.p_value, .psi = psi, .nref = nref, .ncur = ncur};
    if (nref <= cfg->ks_max_reference) {
        f.method = DRIFT_KS;
        f.threshold = cfg->ks_p_threshold;
        f.drifted = ks.p_value < cfg->ks_p_threshold;
    } else {
        f.method = DRIFT_PSI;
        f.threshold = cfg->psi_threshold;
        f.drifted = psi >= cfg->psi_threshold;
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
