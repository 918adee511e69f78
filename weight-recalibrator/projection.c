/* projection: capped, projected, validated weights. See projection.h. */
#include "projection.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const weights_specialists[WEIGHTS_N] = {"technical", "safety", "business", "ethical", "legal"};

int weights_index(const char *name)
{
    for (int i = 0; name && i < WEIGHTS_N; i++) {
        if (!strcmp(name, weights_specialists[i])) {
            return i;
        }
    }
    return -1;
}

weights_bounds_t weights_bounds_default(void)
{
    return (weights_bounds_t){.lo = 0.1, .hi = 0.4, .max_adjustment = 0.2, .tolerance = 0.01};
}

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static double sum_at(const double *y, size_t n, double lo, double hi, double tau)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += clampd(y[i] - tau, lo, hi);
    }
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* g(tau) = sum clamp(y_i - tau, lo, hi) is continuous, non-increasing and
 * linear between the breakpoints y_i - hi and y_i - lo. The segment where g
 * crosses `total` fixes which coordinates are free (strictly inside the box);
 * on it tau = (sum of the free y_i + sum of the clamped values - total) / |free|. */
int weights_project(const double *y, size_t n, double lo, double hi, double total, double *out)
{
    if (n == 0 || !(lo <= hi) || n * lo > total + 1e-12 || n * hi < total - 1e-12) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            return -1;
        }
    }
    double *bp = malloc(2 * n * sizeof(*bp));
    double *yc = malloc(n * sizeof(*yc));
    if (!bp || !yc) {
        free(bp);
        free(yc);
        return -1;
    }
    memcpy(yc, y, n * sizeof(*yc));
    for (size_t i = 0; i < n; i++) {
        bp[2 * i] = yc[i] - hi;
        bp[2 * i + 1] = yc[i] - lo;
    }
    qsort(bp, 2 * n, sizeof(*bp), cmp_double);
    double tau = bp[0]; /* g(bp[0]) = n*hi >= total */
    if (sum_at(yc, n, lo, hi, bp[2 * n - 1]) >= total) {
        tau = bp[2 * n - 1]; /* total == n*lo */
    } else {
        for (size_t k = 0; k + 1 < 2 * n; k++) {
            double a = bp[k], b = bp[k + 1];
            if (sum_at(yc, n, lo, hi, b) > total) {
                continue;
            }
            /* g(a) >= total >= g(b): the free set is the one at the midpoint. */
            double mid = a + (b - a) / 2, fixed = 0.0, free_sum = 0.0;
            size_t nfree = 0;
            for (size_t i = 0; i < n; i++) {
                double t = yc[i] - mid;
                if (t > lo && t < hi) {
                    free_sum += yc[i];
                    nfree++;
                } else {
                    fixed += clampd(t, lo, hi);
                }
            }
            tau = nfree ? (free_sum + fixed - total) / (double)nfree : mid;
            tau = clampd(tau, a, b);
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = clampd(yc[i] - tau, lo, hi);
    }
    free(bp);
    free(yc);
    return 0;
}

int weights_validate(const double w[WEIGHTS_N], const weights_bounds_t *b, char *reason, size_t rl)
{
    double total = 0.0;
    for (int i = 0; i < WEIGHTS_N; i++) {
        if (!isfinite(w[i]) || w[i] < b->lo || w[i] > b->hi) {
            snprintf(reason, rl, "weight of %s %.6g outside [%g, %g]", weights_specialists[i], w[i], b->lo,
                     b->hi);
            return -1;
        }
        total += w[i];
    }
    if (fabs(total - 1.0) > b->tolerance) {
        snprintf(reason, rl, "weights sum to %.6g, not 1 within %g", total, b->tolerance);
        return -1;
    }
    return 0;
}

int weights_propose(const double current[WEIGHTS_N], const double proposal[WEIGHTS_N],
                    const weights_bounds_t *b, double out[WEIGHTS_N], char *reason, size_t rl)
{
    double capped[WEIGHTS_N];
    for (int i = 0; i < WEIGHTS_N; i++) {
        if (!isfinite(proposal[i]) || !isfinite(current[i])) {
            snprintf(reason, rl, "weight of %s is not a finite number", weights_specialists[i]);
            return -1;
        }
        capped[i] = clampd(proposal[i], current[i] - b->max_adjustment, current[i] + b->max_adjustment);
    }
    double w[WEIGHTS_N];
    if (weights_project(capped, WEIGHTS_N, b->lo, b->hi, 1.0, w) != 0) {
        snprintf(reason, rl, "no weights in [%g, %g] sum to 1", b->lo, b->hi);
        return -1;
    }
    if (weights_validate(w, b, reason, rl) != 0) {
        return -1;
    }
    memcpy(out, w, sizeof(w));
    return 0;
}

int weights_hedge(const double current[WEIGHTS_N], const double loss[WEIGHTS_N], double eta,
                  const weights_bounds_t *b, double out[WEIGHTS_N], char *reason, size_t rl)
{
    if (!isfinite(eta) || eta < 0) {
        snprintf(reason, rl, "learning rate %.6g is not a finite number >= 0", eta);
        return -1;
    }
    double lmin = INFINITY;
    for (int i = 0; i < WEIGHTS_N; i++) {
        if (!isfinite(loss[i])) {
            snprintf(reason, rl, "loss of %s is not a finite number", weights_specialists[i]);
            return -1;
        }
        if (!isfinite(current[i]) || current[i] <= 0) {
            snprintf(reason, rl, "weight of %s %.6g is not a positive number", weights_specialists[i],
                     current[i]);
            return -1;
        }
        lmin = fmin(lmin, loss[i]);
    }
    /* Shifting every loss by the smallest one leaves the normalised step
     * unchanged and keeps exp() in (0, 1]. */
    double y[WEIGHTS_N], total = 0.0;
    for (int i = 0; i < WEIGHTS_N; i++) {
        y[i] = current[i] * exp(-eta * (loss[i] - lmin));
        total += y[i];
    }
    if (!(total > 0) || !isfinite(total)) {
        snprintf(reason, rl, "the Hedge step underflowed");
        return -1;
    }
    for (int i = 0; i < WEIGHTS_N; i++) {
        y[i] /= total;
    }
    return weights_propose(current, y, b, out, reason, rl);
}

void weights_loss_from_counts(const long correct[WEIGHTS_N], const long total[WEIGHTS_N],
                              double loss[WEIGHTS_N])
{
    for (int i = 0; i < WEIGHTS_N; i++) {
        long t = total[i] > 0 ? total[i] : 0;
        long c = correct[i] < 0 ? 0 : correct[i] > t ? t : correct[i];
        loss[i] = 1.0 - ((double)c + 1.0) / ((double)t + 2.0);
    }
}
