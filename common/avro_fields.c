#include "avro_fields.h"

#include <stdlib.h>
#include <string.h>

#include "avro_wire.h"

/* The field `field` of record `rec`, as is. */
static int child(const avro_value_t *rec, const char *field, avro_value_t *out)
{
    if (!rec || !rec->iface || !field || avro_value_get_type(rec) != AVRO_RECORD) {
        return -1;
    }
    int i = avro_wire_field_index(avro_value_get_schema(rec), field);
    if (i < 0 || avro_value_get_by_index(rec, (size_t)i, out, NULL)) {
        return -1;
    }
    return 0;
}

/* The field through its union: 0 with *out set, 1 when it is null (or no branch is
 * selected), -1 when there is no such field. */
static int branch(const avro_value_t *rec, const char *field, avro_value_t *out)
{
    avro_value_t v, b;
    if (child(rec, field, &v)) {
        return -1;
    }
    if (avro_value_get_type(&v) == AVRO_UNION) {
        int d = -1;
        avro_value_get_discriminant(&v, &d);
        if (d < 0) {
            return 1;
        }
        if (avro_value_get_current_branch(&v, &b)) {
            return -1;
        }
        v = b;
    }
    if (avro_value_get_type(&v) == AVRO_NULL) {
        return 1;
    }
    *out = v;
    return 0;
}

int avro_get_field(const avro_value_t *rec, const char *field, avro_value_t *out)
{
    avro_value_t v, b;
    if (child(rec, field, &v)) {
        return -1;
    }
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, &b)) {
            return -1;
        }
        v = b;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ conversions */

static int as_string(const avro_value_t *v, const char **out, size_t *out_len)
{
    const char *s = NULL;
    size_t size = 0;
    if (avro_value_get_type(v) != AVRO_STRING || avro_value_get_string(v, &s, &size)) {
        return -1;
    }
    *out = s ? s : "";
    if (out_len) {
        *out_len = size ? size - 1 : 0; /* libavro-c counts the NUL */
    }
    return 0;
}

static int as_double(const avro_value_t *v, double *out)
{
    switch (avro_value_get_type(v)) {
    case AVRO_DOUBLE:
        return avro_value_get_double(v, out) ? -1 : 0;
    case AVRO_FLOAT: {
        float f;
        if (avro_value_get_float(v, &f)) {
            return -1;
        }
        *out = f;
        return 0;
    }
    case AVRO_INT64: {
        int64_t x;
        if (avro_value_get_long(v, &x)) {
            return -1;
        }
        *out = (double)x;
        return 0;
    }
    case AVRO_INT32: {
        int32_t x;
        if (avro_value_get_int(v, &x)) {
            return -1;
        }
        *out = x;
        return 0;
    }
    default:
        return -1;
    }
}

static int as_long(const avro_value_t *v, int64_t *out)
{
    int32_t x;
    switch (avro_value_get_type(v)) {
    case AVRO_INT64:
        return avro_value_get_long(v, out) ? -1 : 0;
    case AVRO_INT32:
        if (avro_value_get_int(v, &x)) {
            return -1;
        }
        *out = x;
        return 0;
    default:
        return -1;
    }
}

static int as_int(const avro_value_t *v, int32_t *out)
{
    return avro_value_get_type(v) == AVRO_INT32 && avro_value_get_int(v, out) == 0 ? 0 : -1;
}

static int as_bool(const avro_value_t *v, bool *out)
{
    int b;
    if (avro_value_get_type(v) != AVRO_BOOLEAN || avro_value_get_boolean(v, &b)) {
        return -1;
    }
    *out = b != 0;
    return 0;
}

/* ------------------------------------------------------------------ getters */

int avro_get_string(const avro_value_t *rec, const char *field, const char **out, size_t *out_len)
{
    avro_value_t v;
    return branch(rec, field, &v) == 0 ? as_string(&v, out, out_len) : -1;
}

int avro_get_nullable_string(const avro_value_t *rec, const char *field, const char **out, size_t *out_len)
{
    avro_value_t v;
    int rc = branch(rec, field, &v);
    return rc == 0 ? as_string(&v, out, out_len) : rc;
}

#define GETTERS(name, type, conv)                                                                            \
    int avro_get_##name(const avro_value_t *rec, const char *field, type *out)                               \
    {                                                                                                        \
        avro_value_t v;                                                                                      \
        return branch(rec, field, &v) == 0 ? conv(&v, out) : -1;                                             \
    }                                                                                                        \
    int avro_get_nullable_##name(const avro_value_t *rec, const char *field, type *out)                      \
    {                                                                                                        \
        avro_value_t v;                                                                                      \
        int rc = branch(rec, field, &v);                                                                     \
        return rc == 0 ? conv(&v, out) : rc;                                                                 \
    }

GETTERS(double, double, as_double)
GETTERS(long, int64_t, as_long)
GETTERS(bool, bool, as_bool)

int avro_get_int(const avro_value_t *rec, const char *field, int32_t *out)
{
    avro_value_t v;
    return branch(rec, field, &v) == 0 ? as_int(&v, out) : -1;
}

int avro_get_enum_name(const avro_value_t *rec, const char *field, const char **out)
{
    avro_value_t v;
    int i;
    if (branch(rec, field, &v) || avro_value_get_type(&v) != AVRO_ENUM || avro_value_get_enum(&v, &i)) {
        return -1;
    }
    avro_schema_t e = avro_value_get_schema(&v);
    if (i < 0 || i >= avro_schema_enum_number_of_symbols(e)) {
        return -1;
    }
    *out = avro_schema_enum_get(e, i);
    return 0;
}

int avro_get_size(const avro_value_t *rec, const char *field, size_t *out)
{
    avro_value_t v;
    if (branch(rec, field, &v)) {
        return -1;
    }
    avro_type_t t = avro_value_get_type(&v);
    if ((t != AVRO_ARRAY && t != AVRO_MAP) || avro_value_get_size(&v, out)) {
        return -1;
    }
    return 0;
}

static int map_entry(const avro_value_t *rec, const char *field, const char *key, avro_value_t *out)
{
    avro_value_t m;
    if (!key || branch(rec, field, &m) || avro_value_get_type(&m) != AVRO_MAP) {
        return -1;
    }
    /* A linear scan: avro_value_get_by_name() writes libavro-c's global error
     * buffer for an absent key. Maps here hold a handful of entries. */
    size_t n = 0;
    avro_value_get_size(&m, &n);
    for (size_t i = 0; i < n; i++) {
        const char *k = NULL;
        if (avro_value_get_by_index(&m, i, out, &k) == 0 && k && strcmp(k, key) == 0) {
            return 0;
        }
    }
    return -1;
}

int avro_get_map_double(const avro_value_t *rec, const char *field, const char *key, double *out)
{
    avro_value_t v;
    return map_entry(rec, field, key, &v) == 0 ? as_double(&v, out) : -1;
}

int avro_get_map_string(const avro_value_t *rec, const char *field, const char *key, const char **out,
                        size_t *out_len)
{
    avro_value_t v;
    return map_entry(rec, field, key, &v) == 0 ? as_string(&v, out, out_len) : -1;
}

/* ------------------------------------------------------------------ setters */

/* The field, or the branch of its union of the first type in `types` it has
 * (selecting that branch). `types` ends with AVRO_LINK. */
static int target(avro_value_t *rec, const char *field, const avro_type_t *types, avro_value_t *out)
{
    avro_value_t v;
    if (child(rec, field, &v)) {
        return -1;
    }
    if (avro_value_get_type(&v) != AVRO_UNION) {
        for (const avro_type_t *t = types; *t != AVRO_LINK; t++) {
            if (avro_value_get_type(&v) == *t) {
                *out = v;
                return 0;
            }
        }
        return -1;
    }
    avro_schema_t u = avro_value_get_schema(&v);
    size_t n = avro_schema_union_size(u);
    for (const avro_type_t *t = types; *t != AVRO_LINK; t++) {
        for (size_t i = 0; i < n; i++) {
            if (avro_typeof(avro_schema_union_branch(u, (int)i)) == *t) {
                return avro_value_set_branch(&v, (int)i, out) ? -1 : 0;
            }
        }
    }
    return -1;
}

static const avro_type_t T_STRING[] = {AVRO_STRING, AVRO_LINK};
static const avro_type_t T_REAL[] = {AVRO_DOUBLE, AVRO_FLOAT, AVRO_LINK};
static const avro_type_t T_INTEGER[] = {AVRO_INT64, AVRO_INT32, AVRO_LINK};
static const avro_type_t T_INT[] = {AVRO_INT32, AVRO_INT64, AVRO_LINK};
static const avro_type_t T_BOOL[] = {AVRO_BOOLEAN, AVRO_LINK};
static const avro_type_t T_ENUM[] = {AVRO_ENUM, AVRO_LINK};
static const avro_type_t T_NULL[] = {AVRO_NULL, AVRO_LINK};
static const avro_type_t T_MAP[] = {AVRO_MAP, AVRO_LINK};
static const avro_type_t T_ARRAY[] = {AVRO_ARRAY, AVRO_LINK};

static int put_string(avro_value_t *v, const char *s, size_t len)
{
    if (!s || avro_value_get_type(v) != AVRO_STRING) {
        return -1;
    }
    /* libavro-c copies len + 1 bytes and wants the last one to be the NUL. */
    char *copy = malloc(len + 1);
    if (!copy) {
        return -1;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    int rc = avro_value_set_string_len(v, copy, len + 1);
    free(copy);
    return rc ? -1 : 0;
}

static int put_double(avro_value_t *v, double x)
{
    switch (avro_value_get_type(v)) {
    case AVRO_DOUBLE:
        return avro_value_set_double(v, x) ? -1 : 0;
    case AVRO_FLOAT:
        return avro_value_set_float(v, (float)x) ? -1 : 0;
    default:
        return -1;
    }
}

static int put_long(avro_value_t *v, int64_t x)
{
    switch (avro_value_get_type(v)) {
    case AVRO_INT64:
        return avro_value_set_long(v, x) ? -1 : 0;
    case AVRO_INT32:
        return x >= INT32_MIN && x <= INT32_MAX && avro_value_set_int(v, (int32_t)x) == 0 ? 0 : -1;
    default:
        return -1;
    }
}

int avro_set_string(avro_value_t *rec, const char *field, const char *s)
{
    return s ? avro_set_string_len(rec, field, s, strlen(s)) : -1;
}

int avro_set_string_len(avro_value_t *rec, const char *field, const char *s, size_t len)
{
    avro_value_t v;
    return target(rec, field, T_STRING, &v) == 0 ? put_string(&v, s, len) : -1;
}

int avro_set_double(avro_value_t *rec, const char *field, double x)
{
    avro_value_t v;
    return target(rec, field, T_REAL, &v) == 0 ? put_double(&v, x) : -1;
}

int avro_set_long(avro_value_t *rec, const char *field, int64_t x)
{
    avro_value_t v;
    return target(rec, field, T_INTEGER, &v) == 0 ? put_long(&v, x) : -1;
}

int avro_set_int(avro_value_t *rec, const char *field, int32_t x)
{
    avro_value_t v;
    return target(rec, field, T_INT, &v) == 0 ? put_long(&v, x) : -1;
}

int avro_set_bool(avro_value_t *rec, const char *field, bool x)
{
    avro_value_t v;
    return target(rec, field, T_BOOL, &v) == 0 && avro_value_set_boolean(&v, x) == 0 ? 0 : -1;
}

int avro_set_enum_name(avro_value_t *rec, const char *field, const char *symbol)
{
    avro_value_t v;
    if (!symbol || target(rec, field, T_ENUM, &v)) {
        return -1;
    }
    int i = avro_wire_enum_index(avro_value_get_schema(&v), symbol);
    return i >= 0 && avro_value_set_enum(&v, i) == 0 ? 0 : -1;
}

int avro_set_null(avro_value_t *rec, const char *field)
{
    avro_value_t v;
    return target(rec, field, T_NULL, &v) == 0 && avro_value_set_null(&v) == 0 ? 0 : -1;
}

static int map_put(avro_value_t *rec, const char *field, const char *key, avro_value_t *out)
{
    avro_value_t m;
    if (!key || target(rec, field, T_MAP, &m) || avro_value_add(&m, key, out, NULL, NULL)) {
        return -1;
    }
    return 0;
}

int avro_set_map_double(avro_value_t *rec, const char *field, const char *key, double x)
{
    avro_value_t v;
    return map_put(rec, field, key, &v) == 0 ? put_double(&v, x) : -1;
}

int avro_set_map_string(avro_value_t *rec, const char *field, const char *key, const char *s)
{
    avro_value_t v;
    return s && map_put(rec, field, key, &v) == 0 ? put_string(&v, s, strlen(s)) : -1;
}

int avro_append_item(avro_value_t *rec, const char *field, avro_value_t *out)
{
    avro_value_t a;
    if (target(rec, field, T_ARRAY, &a) || avro_value_append(&a, out, NULL)) {
        return -1;
    }
    return 0;
}

int avro_append_string(avro_value_t *rec, const char *field, const char *s)
{
    avro_value_t a, v;
    avro_schema_t items;
    if (!s || target(rec, field, T_ARRAY, &a)) {
        return -1;
    }
    /* Check the item type first, so that a mistake appends nothing. */
    items = avro_schema_array_items(avro_value_get_schema(&a));
    if (avro_typeof(items) != AVRO_STRING || avro_value_append(&a, &v, NULL)) {
        return -1;
    }
    return put_string(&v, s, strlen(s));
}

int avro_append_double(avro_value_t *rec, const char *field, double x)
{
    avro_value_t a, v;
    avro_schema_t items;
    if (target(rec, field, T_ARRAY, &a)) {
        return -1;
    }
    items = avro_schema_array_items(avro_value_get_schema(&a));
    if ((avro_typeof(items) != AVRO_DOUBLE && avro_typeof(items) != AVRO_FLOAT) ||
        avro_value_append(&a, &v, NULL)) {
        return -1;
    }
    return put_double(&v, x);
}
