/* bench_projection: the weight-recalibrator's exact projection onto the capped
 * simplex (sum 1, each weight in [0.1, 0.4]), timed per call over random
 * proposals. Prints calls/s and the p50 / p99 time per call; a figure, never a
 * test (tests/unit/test_projection.c checks the answers). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "projection.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1000000;
    if (n < 100) {
        n = 100;
    }
    uint64_t *ns = malloc(n * sizeof(*ns));
    if (!ns) {
        return 1;
    }
    uint64_t seed = 42;
    double y[WEIGHTS_N], x[WEIGHTS_N], sink = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < WEIGHTS_N; k++) {
            y[k] = (double)(next(&seed) >> 11) * 0x1.0p-53 * 1.2 - 0.1;
        }
        uint64_t a = now_ns();
        if (weights_project(y, WEIGHTS_N, 0.1, 0.4, 1.0, x) != 0) {
            fprintf(stderr, "bench_projection: projection refused a feasible problem\n");
            free(ns);
            return 1;
        }
        ns[i] = now_ns() - a;
        sink += x[0];
    }
    double total_s = (double)(now_ns() - t0) / 1e9;
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("projection onto the capped simplex (%d weights in [0.1, 0.4], sum 1), %zu random proposals\n",
           WEIGHTS_N, n);
    printf("  per call: p50 %" PRIu64 " ns, p99 %" PRIu64 " ns, max %" PRIu64 " ns; %.0f calls/s (with the "
           "proposal generation; checksum %.3f)\n",
           ns[n / 2], ns[n * 99 / 100], ns[n - 1], (double)n / total_s, sink);
    free(ns);
    return 0;
}
