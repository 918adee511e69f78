#include "avro_wire.h"

#include "avro_defaults.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arrays of items that take no bytes (null, empty records) could claim billions of
 * items in a few bytes; they are capped at this many. */
#define MAX_ZERO_SIZE_ITEMS 65536

static int vfail(char *err, size_t errlen, const char *field, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (err && errlen) {
        if (field) {
            snprintf(err, errlen, "%s (field %s)", msg, field);
        } else {
            snprintf(err, errlen, "%s", msg);
        }
    }
    return -1;
}

static int fail(char *err, size_t errlen, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, errlen, field, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *type_name(avro_type_t t)
{
    switch (t) {
    case AVRO_STRING:
        return "string";
    case AVRO_BYTES:
        return "bytes";
    case AVRO_INT32:
        return "int";
    case AVRO_INT64:
        return "long";
    case AVRO_FLOAT:
        return "float";
    case AVRO_DOUBLE:
        return "double";
    case AVRO_BOOLEAN:
        return "boolean";
    case AVRO_NULL:
        return "null";
    case AVRO_RECORD:
        return "record";
    case AVRO_ENUM:
        return "enum";
    case AVRO_FIXED:
        return "fixed";
    case AVRO_MAP:
        return "map";
    case AVRO_ARRAY:
        return "array";
    case AVRO_UNION:
        return "union";
    case AVRO_LINK:
        return "link";
    }
    return "?";
}

static avro_schema_t deref(avro_schema_t s)
{
    for (int i = 0; s && avro_typeof(s) == AVRO_LINK && i < AVRO_WIRE_MAX_DEPTH; i++) {
        s = avro_schema_link_target(s);
    }
    return s;
}

int avro_wire_field_index(avro_schema_t rec, const char *name)
{
    size_t n = avro_schema_record_size(rec);
    for (size_t i = 0; i < n; i++) {
        const char *f = avro_schema_record_field_name(rec, (int)i);
        if (f && strcmp(f, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int avro_wire_enum_index(avro_schema_t e, const char *symbol)
{
    int n = avro_schema_enum_number_of_symbols(e);
    for (int i = 0; i < n; i++) {
        const char *s = avro_schema_enum_get(e, i);
        if (s && strcmp(s, symbol) == 0) {
            return i;
        }
    }
    return -1;
}

int avro_wire_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = 0;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i < n) {
            return 0;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    avro_wire_buf_t *b;
    char *err;
    size_t errlen;
} wctx_t;

static int put(wctx_t *w, const void *p, size_t n)
{
    avro_wire_buf_t *b = w->b;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                return fail(w->err, w->errlen, NULL, "record too large");
            }
            cap *= 2;
        }
        uint8_t *data = realloc(b->data, cap);
        if (!data) {
            return fail(w->err, w->errlen, NULL, "out of memory");
        }
        b->data = data;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    return 0;
}

static int put_long(wctx_t *w, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (v < 0 ? ~(uint64_t)0 : 0);
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = z & 0x7F;
        z >>= 7;
        if (z) {
            byte |= 0x80;
        }
        tmp[n++] = byte;
    } while (z);
    return put(w, tmp, n);
}

static int put_le(wctx_t *w, uint64_t u, size_t n)
{
    uint8_t le[8];
    for (size_t i = 0; i < n; i++) {
        le[i] = (uint8_t)(u >> (8 * i));
    }
    return put(w, le, n);
}

static int put_string(wctx_t *w, const char *s, size_t n, const char *field)
{
    if (!avro_wire_utf8_valid((const uint8_t *)s, n)) {
        return fail(w->err, w->errlen, field, "string is not valid UTF-8");
    }
    if (put_long(w, (int64_t)n) || put(w, s, n)) {
        return -1;
    }
    return 0;
}

static int write_value(wctx_t *w, const avro_value_t *v, const char *field, int depth)
{
    if (depth > AVRO_WIRE_MAX_DEPTH) {
        return fail(w->err, w->errlen, field, "nesting deeper than %d", AVRO_WIRE_MAX_DEPTH);
    }
    avro_type_t t = avro_value_get_type(v);
    switch (t) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN: {
        int x = 0;
        avro_value_get_boolean(v, &x);
        uint8_t c = x ? 1 : 0;
        return put(w, &c, 1);
    }
    case AVRO_INT32: {
        int32_t x = 0;
        avro_value_get_int(v, &x);
        return put_long(w, x);
    }
    case AVRO_INT64: {
        int64_t x = 0;
        avro_value_get_long(v, &x);
        return put_long(w, x);
    }
    case AVRO_FLOAT: {
        float f = 0;
        uint32_t u;
        avro_value_get_float(v, &f);
        memcpy(&u, &f, sizeof(u));
        return put_le(w, u, 4);
    }
    case AVRO_DOUBLE: {
        double d = 0;
        uint64_t u = 0;
        avro_value_get_double(v, &d);
        memcpy(&u, &d, sizeof(u));
        return put_le(w, u, 8);
    }
    case AVRO_STRING: {
        const char *s = "";
        size_t size = 0;
        avro_value_get_string(v, &s, &size);
        /* libavro-c counts the NUL terminator in the size. */
        return put_string(w, s, size ? size - 1 : 0, field);
    }
    case AVRO_BYTES: {
        const void *p = NULL;
        size_t n = 0;
        avro_value_get_bytes(v, &p, &n);
        return put_long(w, (int64_t)n) || put(w, p, n) ? -1 : 0;
    }
    case AVRO_FIXED: {
        const void *p = NULL;
        size_t n = 0;
        avro_value_get_fixed(v, &p, &n);
        return put(w, p, n);
    }
    case AVRO_ENUM: {
        int x = 0;
        avro_value_get_enum(v, &x);
        int n = avro_schema_enum_number_of_symbols(avro_value_get_schema(v));
        if (x < 0 || x >= n) {
            return fail(w->err, w->errlen, field, "enum index %d out of range (%d symbols)", x, n);
        }
        return put_long(w, x);
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        size_t n = 0;
        avro_value_get_size(v, &n);
        if (n && put_long(w, (int64_t)n)) {
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            avro_value_t child;
            const char *key = NULL;
            if (avro_value_get_by_index(v, i, &child, t == AVRO_MAP ? &key : NULL)) {
                return fail(w->err, w->errlen, field, "cannot read item %zu", i);
            }
            if (t == AVRO_MAP && put_string(w, key, strlen(key), field)) {
                return -1;
            }
            if (write_value(w, &child, field, depth + 1)) {
                return -1;
            }
        }
        return put_long(w, 0);
    }
    case AVRO_RECORD: {
        size_t n = 0;
        avro_value_get_size(v, &n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t child;
            const char *name = NULL;
            if (avro_value_get_by_index(v, i, &child, &name)) {
                return fail(w->err, w->errlen, field, "cannot read field %zu", i);
            }
            if (write_value(w, &child, name, depth + 1)) {
                return -1;
            }
        }
        return 0;
    }
    case AVRO_UNION: {
        int d = -1;
        avro_value_t branch;
        avro_value_get_discriminant(v, &d);
        if (d < 0 || avro_value_get_current_branch(v, &branch)) {
            return fail(w->err, w->errlen, field, "union has no branch selected");
        }
        if (put_long(w, d)) {
            return -1;
        }
        return write_value(w, &branch, field, depth + 1);
    }
    default:
        return fail(w->err, w->errlen, field, "cannot encode a value of type %s", type_name(t));
    }
}

int avro_wire_write(avro_wire_buf_t *out, const avro_value_t *v, char *err, size_t errlen)
{
    wctx_t w = {out, err, errlen};
    size_t saved = out->len;
    if (write_value(&w, v, NULL, 0)) {
        out->len = saved;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    const uint8_t *p, *end;
    json_t *named;
    const char *field; /* innermost field being read, for messages */
    char *scratch;     /* NUL-terminated copies of strings and map keys */
    size_t scratch_cap;
    char *err;
    size_t errlen;
} rd_t;

static int rfail(rd_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r->err, r->errlen, r->field, fmt, ap);
    va_end(ap);
    return -1;
}

static int read_long(rd_t *r, int64_t *out)
{
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return rfail(r, "truncated record");
        }
        uint8_t b = *r->p++;
        if (shift == 63 && (b & 0x7E)) {
            return rfail(r, "varint overflows 64 bits");
        }
        z |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return rfail(r, "varint longer than 10 bytes");
}

static int read_len(rd_t *r, size_t *out)
{
    int64_t n = 0;
    if (read_long(r, &n)) {
        return -1;
    }
    if (n < 0) {
        return rfail(r, "negative length %" PRId64, n);
    }
    if ((uint64_t)n > (uint64_t)(r->end - r->p)) {
        return rfail(r, "truncated record");
    }
    *out = (size_t)n;
    return 0;
}

/* Copies n bytes into the scratch buffer, NUL-terminated. */
static char *scratch(rd_t *r, const uint8_t *s, size_t n)
{
    if (r->scratch_cap < n + 1) {
        size_t cap = r->scratch_cap ? r->scratch_cap : 64;
        while (cap < n + 1) {
            cap *= 2;
        }
        char *p = realloc(r->scratch, cap);
        if (!p) {
            rfail(r, "out of memory");
            return NULL;
        }
        r->scratch = p;
        r->scratch_cap = cap;
    }
    memcpy(r->scratch, s, n);
    r->scratch[n] = '\0';
    return r->scratch;
}

static int read_block_count(rd_t *r, int64_t *out)
{
    int64_t n = 0, size = 0;
    if (read_long(r, &n)) {
        return -1;
    }
    if (n < 0) {
        /* A negative count is followed by the block's size in bytes. */
        if (n == INT64_MIN) {
            return rfail(r, "invalid block count");
        }
        n = -n;
        if (read_long(r, &size)) {
            return -1;
        }
        if (size < 0) {
            return rfail(r, "negative block size");
        }
    }
    *out = n;
    return 0;
}

/* The fewest bytes a value of schema s can take. */
static size_t min_size(avro_schema_t s, int depth)
{
    if (depth > 8) {
        return 0;
    }
    switch (avro_typeof(s)) {
    case AVRO_NULL:
    case AVRO_LINK:
        return 0;
    case AVRO_FLOAT:
        return 4;
    case AVRO_DOUBLE:
        return 8;
    case AVRO_FIXED:
        return (size_t)avro_schema_fixed_size(s);
    case AVRO_RECORD: {
        size_t sum = 0, n = avro_schema_record_size(s);
        for (size_t i = 0; i < n && sum < 1024; i++) {
            sum += min_size(avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        }
        return sum;
    }
    default:
        return 1;
    }
}

static int same_name(avro_schema_t a, avro_schema_t b)
{
    const char *x = avro_schema_name(a), *y = avro_schema_name(b);
    return x && y && strcmp(x, y) == 0;
}

static int promotable(avro_type_t w, avro_type_t r)
{
    switch (w) {
    case AVRO_INT32:
        return r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_INT64:
        return r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_FLOAT:
        return r == AVRO_DOUBLE;
    case AVRO_STRING:
        return r == AVRO_BYTES;
    case AVRO_BYTES:
        return r == AVRO_STRING;
    default:
        return 0;
    }
}

/* The reader union's branch for a writer value of schema ws: the first branch of the
 * same type (and name), else the first it promotes to. */
static int pick_branch(avro_schema_t u, avro_schema_t ws)
{
    size_t n = avro_schema_union_size(u);
    avro_type_t wt = avro_typeof(ws);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            avro_schema_t b = deref(avro_schema_union_branch(u, (int)i));
            avro_type_t bt = avro_typeof(b);
            int named = bt == AVRO_RECORD || bt == AVRO_ENUM || bt == AVRO_FIXED;
            if (pass == 0 ? (bt == wt && (!named || same_name(b, ws))) : promotable(wt, bt)) {
                return (int)i;
            }
        }
    }
    return -1;
}

static int mismatch(rd_t *r, avro_type_t w, avro_type_t t)
{
    return rfail(r, "writer type %s cannot be read as %s", type_name(w), type_name(t));
}

/* libavro-c setters return a positive errno; turn it into -1 with a reason. */
static int stored(rd_t *r, int rc)
{
    return rc == 0 ? 0 : rc < 0 ? rc : rfail(r, "cannot store the value");
}

static int store_int(rd_t *r, avro_value_t *dst, avro_type_t wt, int64_t x)
{
    switch (avro_value_get_type(dst)) {
    case AVRO_INT32:
        return wt == AVRO_INT32 ? stored(r, avro_value_set_int(dst, (int32_t)x))
                                : mismatch(r, wt, AVRO_INT32);
    case AVRO_INT64:
        return stored(r, avro_value_set_long(dst, x));
    case AVRO_FLOAT:
        return stored(r, avro_value_set_float(dst, (float)x));
    case AVRO_DOUBLE:
        return stored(r, avro_value_set_double(dst, (double)x));
    default:
        return mismatch(r, wt, avro_value_get_type(dst));
    }
}

static int read_value(rd_t *r, avro_schema_t ws, avro_value_t *dst, int depth);

static int read_record(rd_t *r, avro_schema_t ws, avro_value_t *dst, int depth)
{
    avro_schema_t rs = dst ? avro_value_get_schema(dst) : NULL;
    if (rs && rs != ws && !same_name(rs, ws)) {
        return rfail(r, "writer record %s cannot be read as %s", avro_schema_name(ws), avro_schema_name(rs));
    }
    size_t wn = avro_schema_record_size(ws), rn = rs ? avro_schema_record_size(rs) : 0;
    uint8_t seen_small[64] = {0};
    uint8_t *seen = rn <= sizeof(seen_small) ? seen_small : calloc(rn, 1);
    const char *parent = r->field;
    int rc = -1;
    if (!seen) {
        return rfail(r, "out of memory");
    }
    for (size_t i = 0; i < wn; i++) {
        const char *name = avro_schema_record_field_name(ws, (int)i);
        int ri = !rs ? -1 : rs == ws ? (int)i : avro_wire_field_index(rs, name);
        avro_value_t child;
        r->field = name;
        if (ri >= 0) {
            if (avro_value_get_by_index(dst, (size_t)ri, &child, NULL)) {
                rfail(r, "cannot reach reader field");
                goto out;
            }
            seen[ri] = 1;
        }
        if (read_value(r, avro_schema_record_field_get_by_index(ws, (int)i), ri >= 0 ? &child : NULL,
                       depth + 1)) {
            goto out;
        }
    }
    r->field = parent;
    /* Reader fields the writer did not have take their default. */
    for (size_t j = 0; rs && rs != ws && j < rn; j++) {
        if (seen[j]) {
            continue;
        }
        avro_value_t child;
        json_t *def = avro_defaults_field(r->named, rs, (int)j);
        const char *name = avro_schema_record_field_name(rs, (int)j);
        if (!def) {
            rfail(r, "field %s.%s is not in the writer's schema and has no default", avro_schema_name(rs),
                  name);
            goto out;
        }
        if (avro_value_get_by_index(dst, j, &child, NULL) ||
            avro_defaults_apply(&child, def, r->named, r->err, r->errlen)) {
            rfail(r, "bad default for field %s.%s", avro_schema_name(rs), name);
            goto out;
        }
    }
    rc = 0;
out:
    if (rc == 0) {
        r->field = parent;
    }
    if (seen != seen_small) {
        free(seen);
    }
    return rc;
}

static int read_items(rd_t *r, avro_schema_t ws, avro_value_t *dst, int depth)
{
    int is_map = avro_typeof(ws) == AVRO_MAP;
    avro_schema_t items = is_map ? avro_schema_map_values(ws) : avro_schema_array_items(ws);
    size_t min = min_size(items, 0) + (is_map ? 1 : 0);
    uint64_t total = 0;
    for (;;) {
        int64_t n = 0;
        if (read_block_count(r, &n)) {
            return -1;
        }
        if (n == 0) {
            return 0;
        }
        size_t left = (size_t)(r->end - r->p);
        if (min > 0 && (uint64_t)n > left / min) {
            return rfail(r, "truncated record");
        }
        total += (uint64_t)n;
        if (min == 0 && total > MAX_ZERO_SIZE_ITEMS) {
            return rfail(r, "more than %d items of size 0", MAX_ZERO_SIZE_ITEMS);
        }
        for (int64_t k = 0; k < n; k++) {
            avro_value_t child;
            if (is_map) {
                size_t klen = 0;
                if (read_len(r, &klen)) {
                    return -1;
                }
                const uint8_t *key = r->p;
                r->p += klen;
                if (!avro_wire_utf8_valid(key, klen) || memchr(key, 0, klen)) {
                    return rfail(r, "map key is not valid UTF-8 text");
                }
                if (dst) {
                    int is_new = 0;
                    const char *k0 = scratch(r, key, klen);
                    if (!k0) {
                        return -1;
                    }
                    if (avro_value_add(dst, k0, &child, NULL, &is_new)) {
                        return rfail(r, "out of memory");
                    }
                    if (!is_new) {
                        return rfail(r, "duplicate map key \"%.64s\"", k0);
                    }
                }
            } else if (dst && avro_value_append(dst, &child, NULL)) {
                return rfail(r, "out of memory");
            }
            if (read_value(r, items, dst ? &child : NULL, depth + 1)) {
                return -1;
            }
        }
    }
}

static int read_value(rd_t *r, avro_schema_t ws, avro_value_t *dst, int depth)
{
    if (depth > AVRO_WIRE_MAX_DEPTH) {
        return rfail(r, "nesting deeper than %d", AVRO_WIRE_MAX_DEPTH);
    }
    ws = deref(ws);
    if (!ws || avro_typeof(ws) == AVRO_LINK) {
        return rfail(r, "unresolved schema reference");
    }
    avro_type_t wt = avro_typeof(ws);
    if (wt == AVRO_UNION) {
        int64_t i = 0;
        size_t n = avro_schema_union_size(ws);
        if (read_long(r, &i)) {
            return -1;
        }
        if (i < 0 || (uint64_t)i >= n) {
            return rfail(r, "union branch %" PRId64 " out of range (%zu branches)", i, n);
        }
        return read_value(r, avro_schema_union_branch(ws, (int)i), dst, depth + 1);
    }
    avro_type_t rt = dst ? avro_value_get_type(dst) : wt;
    if (rt == AVRO_UNION) {
        avro_value_t branch;
        int b = pick_branch(avro_value_get_schema(dst), ws);
        if (b < 0) {
            return rfail(r, "writer type %s matches no branch of the reader's union", type_name(wt));
        }
        if (avro_value_set_branch(dst, b, &branch)) {
            return rfail(r, "out of memory");
        }
        return read_value(r, ws, &branch, depth + 1);
    }
    switch (wt) {
    case AVRO_NULL:
        if (!dst) {
            return 0;
        }
        return rt == AVRO_NULL ? stored(r, avro_value_set_null(dst)) : mismatch(r, wt, rt);
    case AVRO_BOOLEAN: {
        if (r->p >= r->end) {
            return rfail(r, "truncated record");
        }
        uint8_t b = *r->p++;
        if (b > 1) {
            return rfail(r, "invalid boolean byte 0x%02x", b);
        }
        if (!dst) {
            return 0;
        }
        return rt == AVRO_BOOLEAN ? stored(r, avro_value_set_boolean(dst, b)) : mismatch(r, wt, rt);
    }
    case AVRO_INT32:
    case AVRO_INT64: {
        int64_t x = 0;
        if (read_long(r, &x)) {
            return -1;
        }
        if (wt == AVRO_INT32 && (x < INT32_MIN || x > INT32_MAX)) {
            return rfail(r, "int out of range");
        }
        return dst ? store_int(r, dst, wt, x) : 0;
    }
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        size_t n = wt == AVRO_FLOAT ? 4 : 8;
        uint64_t u = 0;
        if ((size_t)(r->end - r->p) < n) {
            return rfail(r, "truncated record");
        }
        for (size_t i = 0; i < n; i++) {
            u |= (uint64_t)r->p[i] << (8 * i);
        }
        r->p += n;
        if (!dst) {
            return 0;
        }
        double d = 0;
        if (wt == AVRO_FLOAT) {
            float f = 0;
            uint32_t u32 = (uint32_t)u;
            memcpy(&f, &u32, sizeof(f));
            if (rt == AVRO_FLOAT) {
                return stored(r, avro_value_set_float(dst, f));
            }
            d = f;
        } else {
            memcpy(&d, &u, sizeof(d));
        }
        return rt == AVRO_DOUBLE ? stored(r, avro_value_set_double(dst, d)) : mismatch(r, wt, rt);
    }
    case AVRO_STRING:
    case AVRO_BYTES: {
        size_t n = 0;
        if (read_len(r, &n)) {
            return -1;
        }
        const uint8_t *s = r->p;
        r->p += n;
        if (!dst) {
            return 0;
        }
        if (rt == AVRO_BYTES) {
            return stored(r, avro_value_set_bytes(dst, (void *)s, n));
        }
        if (rt != AVRO_STRING) {
            return mismatch(r, wt, rt);
        }
        if (!avro_wire_utf8_valid(s, n)) {
            return rfail(r, "string is not valid UTF-8");
        }
        /* libavro-c wants the NUL terminator in the buffer and the size. */
        const char *copy = scratch(r, s, n);
        return copy ? stored(r, avro_value_set_string_len(dst, copy, n + 1)) : -1;
    }
    case AVRO_FIXED: {
        size_t n = (size_t)avro_schema_fixed_size(ws);
        if ((size_t)(r->end - r->p) < n) {
            return rfail(r, "truncated record");
        }
        const uint8_t *s = r->p;
        r->p += n;
        if (!dst) {
            return 0;
        }
        avro_schema_t rs = avro_value_get_schema(dst);
        if (rt != AVRO_FIXED || avro_schema_fixed_size(rs) != (int64_t)n || !same_name(rs, ws)) {
            return mismatch(r, wt, rt);
        }
        return stored(r, avro_value_set_fixed(dst, (void *)s, n));
    }
    case AVRO_ENUM: {
        int64_t i = 0;
        int n = avro_schema_enum_number_of_symbols(ws);
        if (read_long(r, &i)) {
            return -1;
        }
        if (i < 0 || i >= n) {
            return rfail(r, "enum index %" PRId64 " out of range (%d symbols)", i, n);
        }
        if (!dst) {
            return 0;
        }
        avro_schema_t rs = avro_value_get_schema(dst);
        if (rt != AVRO_ENUM || (rs != ws && !same_name(rs, ws))) {
            return mismatch(r, wt, rt);
        }
        const char *symbol = avro_schema_enum_get(ws, (int)i);
        int ri = rs == ws ? (int)i : avro_wire_enum_index(rs, symbol);
        if (ri < 0) {
            /* A symbol the reader does not know maps to the enum's default, if any. */
            const char *def = json_string_value(
                json_object_get(json_object_get(r->named, avro_schema_name(rs)), "default"));
            ri = def ? avro_wire_enum_index(rs, def) : -1;
            if (ri < 0) {
                return rfail(r, "unknown enum symbol %s", symbol);
            }
        }
        return stored(r, avro_value_set_enum(dst, ri));
    }
    case AVRO_ARRAY:
    case AVRO_MAP:
        if (dst && rt != wt) {
            return mismatch(r, wt, rt);
        }
        return read_items(r, ws, dst, depth);
    case AVRO_RECORD:
        if (dst && rt != AVRO_RECORD) {
            return mismatch(r, wt, rt);
        }
        return read_record(r, ws, dst, depth);
    default:
        return rfail(r, "cannot decode type %s", type_name(wt));
    }
}

int avro_wire_read(const void *buf, size_t len, avro_schema_t writer, avro_value_t *dst, json_t *named,
                   size_t *out_used, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    const uint8_t *p = buf ? buf : empty;
    rd_t r = {.p = p, .end = p + (buf ? len : 0), .named = named, .err = err, .errlen = errlen};
    int rc = read_value(&r, writer, dst, 0);
    free(r.scratch);
    if (rc == 0 && out_used) {
        *out_used = (size_t)(r.p - p);
    }
    return rc;
}
