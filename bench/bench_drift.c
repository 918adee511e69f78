/* bench_drift: the model-monitor's drift check on N rows x 20 features, timed
 * by phase on seeded data: building the reference profile (rows -> one column
 * per feature), ingesting the current window in batches of 500 rows, the check
 * (drift_feature_check per feature: KS, PSI and the normed Wasserstein distance,
 * which decides above 1,000 reference rows), and KS and Wasserstein alone.
 * The data and the per-feature results are written to a file that
 * bench/bench_drift_ref.py reads to time scipy on the same values. A figure,
 * never a test (tests/unit/test_drift.c checks the answers).
 *
 * Usage: bench_drift ROWS FILE. FILE layout, native float64/int64:
 *   int64 rows, int64 features; ref[features][rows]; cur[features][rows];
 *   per feature: ks statistic, ks p-value, wasserstein (raw), wasserstein normed.
 * Prints one line of key=value timings in seconds. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drift.h"

#define FEATURES 20
#define BATCH_ROWS 500

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s) /* Box-Muller, one value per call */
{
    double u1 = ((double)(next(s) >> 11) + 1.0) * 0x1.0p-53, u2 = (double)(next(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Rows as a FeatureBatch carries them, row-major; the current window's odd
 * features are shifted by 0.2 standard deviations (drifted for the normed
 * Wasserstein test), the even ones are not. */
static void gen_rows(double *rows, size_t n, bool current, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < FEATURES; j++) {
            double sd = 1.0 + (double)j * 0.5, mean = (double)j * 10.0;
            double shift = current && (j % 2) ? 0.2 * sd : 0.0;
            rows[i * FEATURES + j] = mean + shift + sd * normal(seed);
        }
    }
}

typedef struct {
    double *v[FEATURES];
    size_t n, cap;
} cols_t;

static int cols_append(cols_t *c, const double *rows, size_t n)
{
    if (c->n + n > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->n + n) {
            cap *= 2;
        }
        for (size_t j = 0; j < FEATURES; j++) {
            double *v = realloc(c->v[j], cap * sizeof(double));
            if (!v) {
                return -1;
            }
            c->v[j] = v;
        }
        c->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < FEATURES; j++) {
            c->v[j][c->n + i] = rows[i * FEATURES + j];
        }
    }
    c->n += n;
    return 0;
}

static void cols_free(cols_t *c)
{
    for (size_t j = 0; j < FEATURES; j++) {
        free(c->v[j]);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_drift ROWS FILE\n");
        return 2;
    }
    size_t n = (size_t)strtoul(argv[1], NULL, 10);
    if (n < 10) {
        n = 10;
    }
    double *ref_rows = malloc(n * FEATURES * sizeof(double)),
           *cur_rows = malloc(n * FEATURES * sizeof(double));
    cols_t ref = {0}, cur = {0};
    int rc = 1;
    if (!ref_rows || !cur_rows) {
        goto out;
    }
    uint64_t seed = 20261202;
    gen_rows(ref_rows, n, false, &seed);
    gen_rows(cur_rows, n, true, &seed);

    double t0 = now_s();
    if (cols_append(&ref, ref_rows, n) != 0) {
        goto out;
    }
    double t_ref = now_s() - t0;

    t0 = now_s();
    for (size_t i = 0; i < n; i += BATCH_ROWS) {
        size_t k = n - i < BATCH_ROWS ? n - i : BATCH_ROWS;
        if (cols_append(&cur, cur_rows + i * FEATURES, k) != 0) {
            goto out;
        }
    }
    double t_ingest = now_s() - t0;

    drift_config_t cfg;
    drift_config_default(&cfg);
    drift_feature_t f[FEATURES];
    t0 = now_s();
    for (size_t j = 0; j < FEATURES; j++) {
        if (drift_feature_check(&cfg, ref.v[j], ref.n, cur.v[j], cur.n, &f[j]) != 0) {
            goto out;
        }
    }
    double score = drift_score(f, FEATURES);
    double t_check = now_s() - t0;

    double wraw[FEATURES], wnorm[FEATURES];
    t0 = now_s();
    for (size_t j = 0; j < FEATURES; j++) {
        if (drift_wasserstein_norm(ref.v[j], ref.n, cur.v[j], cur.n, &wnorm[j]) != 0) {
            goto out;
        }
    }
    double t_wass = now_s() - t0;
    for (size_t j = 0; j < FEATURES; j++) {
        if (drift_wasserstein(ref.v[j], ref.n, cur.v[j], cur.n, &wraw[j]) != 0) {
            goto out;
        }
    }

    drift_ks_t ks[FEATURES];
    t0 = now_s();
    for (size_t j = 0; j < FEATURES; j++) {
        if (drift_ks_2samp(ref.v[j], ref.n, cur.v[j], cur.n, &ks[j]) != 0) {
            goto out;
        }
    }
    double t_ks = now_s() - t0;

    FILE *fp = fopen(argv[2], "wb");
    if (!fp) {
        perror(argv[2]);
        goto out;
    }
    int64_t hdr[2] = {(int64_t)n, FEATURES};
    bool ok = fwrite(hdr, sizeof(hdr), 1, fp) == 1;
    for (size_t j = 0; ok && j < FEATURES; j++) {
        ok = fwrite(ref.v[j], sizeof(double), n, fp) == n;
    }
    for (size_t j = 0; ok && j < FEATURES; j++) {
        ok = fwrite(cur.v[j], sizeof(double), n, fp) == n;
    }
    for (size_t j = 0; ok && j < FEATURES; j++) {
        double r[4] = {ks[j].statistic, ks[j].p_value, wraw[j], wnorm[j]};
        ok = fwrite(r, sizeof(r), 1, fp) == 1;
    }
    if (fclose(fp) != 0 || !ok) {
        fprintf(stderr, "bench_drift: cannot write %s\n", argv[2]);
        goto out;
    }
    printf("rows=%zu features=%d method=%s ks_exact=%d drift_score=%.3f reference_s=%.6f ingest_s=%.6f "
           "check_s=%.6f wasserstein_s=%.6f ks_s=%.6f\n",
           n, FEATURES, drift_method_name(f[0].method), ks[0].exact ? 1 : 0, score, t_ref, t_ingest, t_check,
           t_wass, t_ks);
    rc = 0;
out:
    if (rc != 0) {
        fprintf(stderr, "bench_drift: failed\n");
    }
    cols_free(&ref);
    cols_free(&cur);
    free(ref_rows);
    free(cur_rows);
    return rc;
}
