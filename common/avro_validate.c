#include "avro_validate.h"

#include "hive_err.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a field without a generated rule gets: the rules that hold for every record. */
static const avro_field_rule_t default_rule = {
    .field = "",
    .flags = AVRO_RULE_FINITE,
    .max_len = 4096,
    .max_items = 10000,
    .pattern = AVRO_PATTERN_TEXT,
    .key_pattern = AVRO_PATTERN_LINE,
    .key_max_len = 256,
};

/* One walk over a value: the path of the field being checked, for the reason. */
typedef struct {
    char path[384];
    size_t pathlen;
    char *reason;
    size_t reasonlen;
} walk_t;

const avro_record_rules_t *avro_validate_rules(const char *name)
{
    if (!name) {
        return NULL;
    }
    for (size_t i = 0; i < hive_record_rules_count; i++) {
        if (strcmp(hive_record_rules[i].record, name) == 0) {
            return &hive_record_rules[i];
        }
    }
    return NULL;
}

/* Appends to the path; returns the length to restore afterwards. */
static size_t path_push(walk_t *w, const char *fmt, ...)
{
    size_t saved = w->pathlen;
    if (w->pathlen < sizeof(w->path) - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(w->path + w->pathlen, sizeof(w->path) - w->pathlen, fmt, ap);
        va_end(ap);
        if (n > 0) {
            w->pathlen +=
                (size_t)n < sizeof(w->path) - w->pathlen ? (size_t)n : sizeof(w->path) - 1 - w->pathlen;
        }
    }
    return saved;
}

static void path_pop(walk_t *w, size_t saved)
{
    w->pathlen = saved;
    w->path[saved] = '\0';
}

/* Writes "<path>: <message>" and returns HIVE_EBADMSG. */
static int fail(walk_t *w, const char *fmt, ...)
{
    if (w->reasonlen == 0) {
        return HIVE_EBADMSG;
    }
    int n = snprintf(w->reason, w->reasonlen, "%s: ", w->pathlen ? w->path : "record");
    if (n >= 0 && (size_t)n < w->reasonlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->reason + n, w->reasonlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return HIVE_EBADMSG;
}

/* A number as a reader expects it: NaN, +Infinity, -Infinity, or the shortest
 * decimal that reads back the same. */
static const char *fmt_double(double x, char *buf, size_t len)
{
    if (isnan(x)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(x)) {
        snprintf(buf, len, "%s", x > 0 ? "+Infinity" : "-Infinity");
    } else {
        snprintf(buf, len, "%.15g", x);
        if (strtod(buf, NULL) != x) {
            snprintf(buf, len, "%.17g", x);
        }
    }
    return buf;
}

/* At most 40 bytes of a string, quoted, with anything not printable ASCII as \xNN. */
static const char *fmt_quoted(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && i < 40 && o + 6 < buflen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            buf[o++] = (char)ch;
        } else {
            o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", ch);
        }
    }
    if (len > 40 && o + 5 < buflen) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Returns the offset of the first byte that is not part of valid UTF-8 (no
 * overlong forms, no surrogates, nothing above U+10FFFF), or `len`. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n) {
            return i;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return i;
        }
        i += n + 1;
    }
    return len;
}

static bool name_byte(unsigned char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return !first && c != '\0' && strchr("._:/@+-", c) != NULL;
}

/* The index of the first byte of `s` that `pattern` refuses, or `len`. */
static size_t pattern_violation(const char *s, size_t len, avro_pattern_t pattern)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool control = c < 0x20 || c == 0x7f;
        if ((pattern == AVRO_PATTERN_NAME && !name_byte(c, i == 0)) ||
            (control && (pattern == AVRO_PATTERN_LINE ||
                         (pattern == AVRO_PATTERN_TEXT && c != '\t' && c != '\n' && c != '\r')))) {
            return i;
        }
    }
    return len;
}

bool avro_validate_matches(const char *s, size_t len, avro_pattern_t pattern)
{
    return !memchr(s, '\0', len) && utf8_invalid_at((const unsigned char *)s, len) == len &&
           pattern_violation(s, len, pattern) == len;
}

static int check_string(walk_t *w, const char *s, size_t len, avro_pattern_t pattern, uint32_t min_len,
                        uint32_t max_len)
{
    char q[200];
    const void *nul = memchr(s, '\0', len);
    if (nul) {
        return fail(w, "contains a NUL byte at byte %zu", (size_t)((const char *)nul - s));
    }
    size_t bad = utf8_invalid_at((const unsigned char *)s, len);
    if (bad < len) {
        return fail(w, "not valid UTF-8 at byte %zu", bad);
    }
    if (len > max_len) {
        return fail(w, "%zu bytes, longer than the %" PRIu32 " accepted", len, max_len);
    }
    if (len < min_len) {
        return fail(w, "%zu bytes, shorter than the %" PRIu32 " required", len, min_len);
    }
    size_t i = pattern_violation(s, len, pattern);
    if (i < len && pattern == AVRO_PATTERN_NAME) {
        return fail(w, "%s is not a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)", fmt_quoted(s, len, q, sizeof(q)));
    }
    if (i < len) {
        return fail(w, "contains a control character (0x%02x) at byte %zu", (unsigned char)s[i], i);
    }
    return 0;
}

static int check_number(walk_t *w, double x, const avro_field_rule_t *rule, const char *shown)
{
    char a[40], b[40], v[40];
    if ((rule->flags & AVRO_RULE_FINITE) && !isfinite(x)) {
        if (rule->flags & AVRO_RULE_RANGE) {
            return fail(w, "%s outside [%s, %s]", fmt_double(x, v, sizeof(v)),
                        fmt_double(rule->min, a, sizeof(a)), fmt_double(rule->max, b, sizeof(b)));
        }
        return fail(w, "%s is not a finite number", fmt_double(x, v, sizeof(v)));
    }
    if ((rule->flags & AVRO_RULE_RANGE) && !(x >= rule->min && x <= rule->max)) {
        return fail(w, "%s outside [%s, %s]%s", shown ? shown : fmt_double(x, v, sizeof(v)),
                    fmt_double(rule->min, a, sizeof(a)), fmt_double(rule->max, b, sizeof(b)),
                    (rule->flags & AVRO_RULE_TIMESTAMP) ? " (milliseconds, years 2000..2100)" : "");
    }
    return 0;
}

static int check_record(walk_t *w, const avro_value_t *v);

static int check_value(walk_t *w, const avro_value_t *v, const avro_field_rule_t *rule)
{
    switch (avro_value_get_type(v)) {
    case AVRO_STRING: {
        const char *s = NULL;
        size_t size = 0;
        if (avro_value_get_string(v, &s, &size) != 0) {
            return fail(w, "unreadable string");
        }
        /* libavro-c counts the terminating NUL in `size`. */
        return check_string(w, s ? s : "", size ? size - 1 : 0, rule->pattern, rule->min_len, rule->max_len);
    }
    case AVRO_BYTES: {
        const void *buf = NULL;
        size_t size = 0;
        if (avro_value_get_bytes(v, &buf, &size) != 0) {
            return fail(w, "unreadable bytes");
        }
        if (size > rule->max_len) {
            return fail(w, "%zu bytes, longer than the %" PRIu32 " accepted", size, rule->max_len);
        }
        return 0;
    }
    case AVRO_INT32: {
        int32_t x = 0;
        avro_value_get_int(v, &x);
        char shown[24];
        snprintf(shown, sizeof(shown), "%" PRId32, x);
        return check_number(w, (double)x, rule, shown);
    }
    case AVRO_INT64: {
        int64_t x = 0;
        avro_value_get_long(v, &x);
        char shown[24];
        snprintf(shown, sizeof(shown), "%" PRId64, x);
        return check_number(w, (double)x, rule, shown);
    }
    case AVRO_FLOAT: {
        float x = 0;
        avro_value_get_float(v, &x);
        return check_number(w, (double)x, rule, NULL);
    }
    case AVRO_DOUBLE: {
        double x = 0;
        avro_value_get_double(v, &x);
        return check_number(w, x, rule, NULL);
    }
    case AVRO_ENUM: {
        int x = -1;
        avro_value_get_enum(v, &x);
        int n = avro_schema_enum_number_of_symbols(avro_value_get_schema(v));
        if (x < 0 || x >= n) {
            return fail(w, "symbol index %d outside 0..%d", x, n - 1);
        }
        return 0;
    }
    case AVRO_UNION: {
        avro_value_t branch;
        if (avro_value_get_current_branch(v, &branch) != 0) {
            return fail(w, "union with no branch selected");
        }
        return check_value(w, &branch, rule);
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = avro_value_get_type(v) == AVRO_MAP;
        size_t n = 0;
        avro_value_get_size(v, &n);
        if (n > rule->max_items) {
            return fail(w, "%zu entries, more than the %" PRIu32 " accepted", n, rule->max_items);
        }
        for (size_t i = 0; i < n; i++) {
            avro_value_t item;
            const char *key = NULL;
            if (avro_value_get_by_index(v, i, &item, &key) != 0) {
                return fail(w, "unreadable entry %zu", i);
            }
            size_t saved;
            int rc = 0;
            if (map) {
                char q[200];
                size_t klen = key ? strlen(key) : 0;
                saved = path_push(w, "[%s]", fmt_quoted(key ? key : "", klen, q, sizeof(q)));
                if (klen == 0) {
                    rc = fail(w, "empty map key");
                } else {
                    rc = check_string(w, key, klen, rule->key_pattern, 1, rule->key_max_len);
                }
            } else {
                saved = path_push(w, "[%zu]", i);
            }
            if (rc == 0) {
                rc = check_value(w, &item, rule);
            }
            path_pop(w, saved);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    case AVRO_RECORD:
        return check_record(w, v);
    default: /* null, boolean, fixed: any value of the type is fine */
        return 0;
    }
}

/* A numeric field of `v` as a double and as text. */
static int number_field(const avro_value_t *v, const char *name, double *out, char *shown, size_t len)
{
    avro_value_t f;
    if (avro_value_get_by_name(v, name, &f, NULL) != 0) {
        return -1;
    }
    switch (avro_value_get_type(&f)) {
    case AVRO_INT32: {
        int32_t x = 0;
        avro_value_get_int(&f, &x);
        *out = x;
        snprintf(shown, len, "%" PRId32, x);
        return 0;
    }
    case AVRO_INT64: {
        int64_t x = 0;
        avro_value_get_long(&f, &x);
        *out = (double)x;
        snprintf(shown, len, "%" PRId64, x);
        return 0;
    }
    case AVRO_FLOAT: {
        float x = 0;
        avro_value_get_float(&f, &x);
        *out = x;
        fmt_double(x, shown, len);
        return 0;
    }
    case AVRO_DOUBLE:
        avro_value_get_double(&f, out);
        fmt_double(*out, shown, len);
        return 0;
    default:
        return -1;
    }
}

static int check_record(walk_t *w, const avro_value_t *v)
{
    avro_schema_t schema = avro_value_get_schema(v);
    const avro_record_rules_t *rules = avro_validate_rules(avro_schema_name(schema));
    size_t n = 0;
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++) {
        avro_value_t field;
        const char *name = NULL;
        if (avro_value_get_by_index(v, i, &field, &name) != 0 || !name) {
            return fail(w, "unreadable field %zu", i);
        }
        const avro_field_rule_t *rule = &default_rule;
        if (rules && i < rules->nfields && strcmp(rules->fields[i].field, name) == 0) {
            rule = &rules->fields[i];
        } else if (rules) {
            for (size_t k = 0; k < rules->nfields; k++) {
                if (strcmp(rules->fields[k].field, name) == 0) {
                    rule = &rules->fields[k];
                    break;
                }
            }
        }
        size_t saved = path_push(w, w->pathlen ? ".%s" : "%s", name);
        int rc = check_value(w, &field, rule);
        path_pop(w, saved);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; rules && i < rules->norder; i++) {
        const avro_order_rule_t *o = &rules->order[i];
        double lo, hi;
        char slo[40], shi[40];
        if (number_field(v, o->lo, &lo, slo, sizeof(slo)) != 0 ||
            number_field(v, o->hi, &hi, shi, sizeof(shi)) != 0) {
            continue;
        }
        if (lo > hi) {
            size_t saved = path_push(w, w->pathlen ? ".%s" : "%s", o->hi);
            int rc = fail(w, "%s is less than %s %s (%s <= %s required)", shi, o->lo, slo, o->lo, o->hi);
            path_pop(w, saved);
            return rc;
        }
    }
    return 0;
}

int avro_validate(const avro_codec_t *c, const char *record_name, const avro_value_t *v, char *reason,
                  size_t reasonlen)
{
    (void)c; /* the rules are the embedded ones, whichever registry the codec asks */
    if (reasonlen) {
        reason[0] = '\0';
    }
    if (!v || avro_value_get_type(v) != AVRO_RECORD) {
        snprintf(reason, reasonlen, "not a record value");
        return HIVE_EINVAL;
    }
    const char *name = avro_schema_name(avro_value_get_schema(v));
    if (record_name && (!name || strcmp(name, record_name) != 0)) {
        snprintf(reason, reasonlen, "expected record %s, got %s", record_name, name ? name : "?");
        return HIVE_EINVAL;
    }
    walk_t w = {.reason = reason, .reasonlen = reasonlen};
    return check_record(&w, v);
}

int avro_validate_decode(avro_codec_t *c, const void *buf, size_t len, const char *expected,
                         avro_value_t *out, char *reason, size_t reasonlen)
{
    avro_value_t v;
    int rc = avro_codec_decode(c, buf, len, expected, &v, reason, reasonlen);
    if (rc != 0) {
        return rc;
    }
    rc = avro_validate(c, expected, &v, reason, reasonlen);
    if (rc != 0) {
        avro_value_decref(&v);
        return HIVE_EBADMSG;
    }
    *out = v;
    return 0;
}
