/* bdoc: typed reads of BSON document fields, with a default when a field is
 * missing or of another type, and arrays of doubles both ways.
 *
 * What every shell that stores plain structs in MongoDB writes again
 * otherwise. Pure: no I/O.
 */
#ifndef HIVE_BDOC_H
#define HIVE_BDOC_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

/* The UTF-8 string `key` of `d` (borrowed from `d`), NULL when absent or not
 * a string. */
const char *bdoc_str(const bson_t *d, const char *key);

/* Copies the string `key` into `dst` (`cap` bytes, cut to fit, always
 * NUL-terminated); "" when absent or not a string. */
void bdoc_copy_str(const bson_t *d, const char *key, char *dst, size_t cap);
#define BDOC_COPY_STR(d, key, array) bdoc_copy_str((d), (key), (array), sizeof(array))

/* The number `key` (double, int32 or int64) as a double; 0 when absent or not
 * a number. */
double bdoc_num(const bson_t *d, const char *key);

/* The boolean `key`; false when absent or not a boolean. */
bool bdoc_bool(const bson_t *d, const char *key);

/* Reads exactly `n` numbers from the array `key` into `out`. Returns 0, or -1
 * when the field is not an array of exactly `n` numbers (`out` then partly
 * written). */
int bdoc_doubles(const bson_t *d, const char *key, double *out, size_t n);

/* Appends `n` doubles to `d` as the array `key`. Returns 0, or -1 when the
 * document cannot grow. */
int bdoc_append_doubles(bson_t *d, const char *key, const double *v, size_t n);

#endif
