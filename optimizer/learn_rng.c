/* learn_rng: xoshiro256** seeded by splitmix64. See learn_rng.h. */
#include "learn_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void learn_rng_seed(learn_rng_t *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&x);
    }
}

uint64_t learn_rng_next(learn_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double learn_rng_uniform(learn_rng_t *rng)
{
    return (double)(learn_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t learn_rng_below(learn_rng_t *rng, uint64_t n)
{
    if (n == 0) {
        return 0;
    }
    /* Reject the first (2^64 mod n) values so every residue is equally likely. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = learn_rng_next(rng);
        if (r >= threshold) {
            return r % n;
        }
    }
}

double learn_rng_gaussian(learn_rng_t *rng)
{
    double u, v, s;
    do {
        u = 2.0 * learn_rng_uniform(rng) - 1.0;
        v = 2.0 * learn_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}
