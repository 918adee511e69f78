/* fnv: FNV-1a, 64 bits, the suite's one hash for stable ids and hash tables.
 *
 * For identity, never secrecy: the same bytes give the same value on every
 * machine and every run, so an id derived from an event (an insight from its
 * service and window, a hypothesis from its insight) is the same on a replay.
 * Header only and pure, so the services' pure cores can use it without
 * linking common/.
 */
#ifndef HIVE_FNV_H
#define HIVE_FNV_H

#include <stddef.h>
#include <stdint.h>

/* The offset basis: the value to start a hash from. */
#define FNV1A64_INIT 0xcbf29ce484222325ULL

/* Continues hash `h` over `len` bytes of `data`; chain calls to hash several
 * fields. */
static inline uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Continues hash `h` over the bytes of the string `s`, without its NUL. */
static inline uint64_t fnv1a64_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
