/* bench_experiments: the experiment manager's statistics under repeated looks
 * (pure, no network; experiment-manager/stats.h as the judge calls it).
 *
 * A/A: EXPERIMENTS experiments whose two variants draw from the same normal
 * distribution are looked at after every interval (LOOKS looks, PER_LOOK new
 * observations per variant each). The false-positive rate at alpha is counted
 * for three rules: the always-valid mixture SPRT (stats_msprt, tau = 0.1 x the
 * baseline's mean, as MSPRT_EFFECT's default), the naive repeated fixed-horizon
 * Welch test (significant at any look), and one Welch test at the end (the
 * fixed horizon it was made for). A/B: the same with a known effect on the
 * candidate's mean; power of each rule and the mean sample per variant at the
 * decision of the sequential test.
 *
 * Usage: bench_experiments [experiments] [looks] [per_look] [seed]
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "stats.h"

#define ALPHA 0.05
#define TAU_REL 0.1 /* MSPRT_EFFECT's default */
#define MEAN 100.0
#define SD 10.0

static uint64_t rng_state;

static double u01(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void)
{
    return sqrt(-2 * log(u01())) * cos(2 * M_PI * u01());
}

/* Running sums of one variant. */
typedef struct {
    double n, sum, sumsq;
} acc_t;

static void add(acc_t *a, double x)
{
    a->n += 1;
    a->sum += x;
    a->sumsq += x * x;
}

static stats_sample_t summary(const acc_t *a)
{
    double mean = a->sum / a->n;
    double var = a->n > 1 ? (a->sumsq - a->n * mean * mean) / (a->n - 1) : 0;
    return (stats_sample_t){a->n, mean, var > 0 ? var : 0};
}

typedef struct {
    long msprt, naive, fixed; /* experiments rejected by each rule */
    double msprt_samples;     /* per variant, summed over msprt decisions */
} tally_t;

/* One experiment with the candidate's mean shifted by `effect` (x SD). */
static void run_one(long looks, long per_look, double effect, tally_t *t)
{
    acc_t a = {0}, b = {0};
    double avp = 1.0;
    int msprt_done = 0, naive_done = 0;
    stats_test_t test = {0};
    int tested = 0;
    for (long l = 0; l < looks; l++) {
        for (long i = 0; i < per_look; i++) {
            add(&a, MEAN + SD * normal());
            add(&b, MEAN + SD * (normal() + effect));
        }
        stats_sample_t sa = summary(&a), sb = summary(&b);
        tested = stats_welch(&sa, &sb, ALPHA, &test) == 0;
        if (!tested) {
            continue;
        }
        avp = stats_msprt(avp, test.diff, test.se * test.se, TAU_REL * fmax(fabs(sa.mean), 1e-9));
        if (!msprt_done && avp < ALPHA) {
            msprt_done = 1;
            t->msprt++;
            t->msprt_samples += a.n;
        }
        if (!naive_done && test.p_value < ALPHA) {
            naive_done = 1;
            t->naive++;
        }
    }
    if (tested && test.p_value < ALPHA) {
        t->fixed++;
    }
}

static void report(const char *what, long n, long looks, long per_look, double effect)
{
    tally_t t = {0};
    for (long e = 0; e < n; e++) {
        run_one(looks, per_look, effect, &t);
    }
    double se = sqrt(ALPHA * (1 - ALPHA) / (double)n);
    printf("%-4s effect %.2f sd  %5ld experiments x %3ld looks x %3ld obs/variant  "
           "mSPRT %.4f  naive repeated Welch %.4f  single fixed-horizon Welch %.4f",
           what, effect, n, looks, per_look, (double)t.msprt / (double)n, (double)t.naive / (double)n,
           (double)t.fixed / (double)n);
    if (effect == 0) {
        printf("  (rate of false positives; nominal alpha %.2f, binomial se %.4f)\n", ALPHA, se);
    } else {
        printf("  (power); mSPRT mean sample per variant at decision %.1f of %ld\n",
               t.msprt ? t.msprt_samples / (double)t.msprt : 0.0, looks * per_look);
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long looks = argc > 2 ? atol(argv[2]) : 50;
    long per_look = argc > 3 ? atol(argv[3]) : 20;
    rng_state = argc > 4 ? strtoull(argv[4], NULL, 10) : 20261202;
    if (n < 1 || looks < 1 || per_look < 1) {
        fprintf(stderr, "usage: bench_experiments [experiments] [looks] [per_look] [seed]\n");
        return 2;
    }
    report("A/A", n, looks, per_look, 0.0);
    report("A/B", n, looks, per_look, 0.1);
    report("A/B", n, looks, per_look, 0.2);
    return 0;
}
