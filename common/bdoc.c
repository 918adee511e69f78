/* bdoc: typed BSON field reads. See bdoc.h. */
#include "bdoc.h"

#include <stdio.h>

const char *bdoc_str(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
}

void bdoc_copy_str(const bson_t *d, const char *key, char *dst, size_t cap)
{
    const char *s = bdoc_str(d, key);
    snprintf(dst, cap, "%s", s ? s : "");
}

double bdoc_num(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_double(&it) : 0.0;
}

bool bdoc_bool(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

int bdoc_doubles(const bson_t *d, const char *key, double *out, size_t n)
{
    bson_iter_t it, child;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &child)) {
        return -1;
    }
    size_t i = 0;
    while (bson_iter_next(&child)) {
        if (i == n || !BSON_ITER_HOLDS_NUMBER(&child)) {
            return -1;
        }
        out[i++] = bson_iter_as_double(&child);
    }
    return i == n ? 0 : -1;
}

int bdoc_append_doubles(bson_t *d, const char *key, const double *v, size_t n)
{
    bson_t arr;
    if (!bson_append_array_begin(d, key, -1, &arr)) {
        return -1;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char k[16];
        const char *kp;
        bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
        ok = bson_append_double(&arr, kp, -1, v[i]);
    }
    return bson_append_array_end(d, &arr) && ok ? 0 : -1;
}
