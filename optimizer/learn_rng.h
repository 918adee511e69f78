/* learn_rng: the seeded pseudo-random generator the learning modules draw from.
 *
 * xoshiro256** (Blackman and Vigna) seeded through splitmix64. The state is a
 * plain struct owned by the caller: the learning code never keeps randomness of
 * its own, so a test or a replay that seeds the same value sees the same
 * decisions. Not for cryptographic use.
 */
#ifndef HIVE_LEARN_RNG_H
#define HIVE_LEARN_RNG_H

#include <stdint.h>

typedef struct learn_rng_s {
    uint64_t s[4];
} learn_rng_t;

/* Seeds `rng` from one 64-bit value (any value, 0 included). */
void learn_rng_seed(learn_rng_t *rng, uint64_t seed);

/* Returns the next 64 uniformly distributed bits. */
uint64_t learn_rng_next(learn_rng_t *rng);

/* Returns a uniform double in [0, 1) with 53 bits of precision. */
double learn_rng_uniform(learn_rng_t *rng);

/* Returns a uniform integer in [0, n), without modulo bias. n must be > 0;
 * n == 0 returns 0. */
uint64_t learn_rng_below(learn_rng_t *rng, uint64_t n);

/* Returns a standard normal draw (Marsaglia's polar method). */
double learn_rng_gaussian(learn_rng_t *rng);

#endif
