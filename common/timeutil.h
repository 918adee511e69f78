/* timeutil: the two clocks a shell reads, so pure code can take time as an
 * argument and shells read it one way.
 *
 *   timeutil_wall_ms()        wall-clock milliseconds since the epoch: record
 *                             timestamps, created_at / updated_at
 *   timeutil_mono_seconds()   monotonic seconds: durations for histograms
 */
#ifndef HIVE_TIMEUTIL_H
#define HIVE_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

static inline int64_t timeutil_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline double timeutil_mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
