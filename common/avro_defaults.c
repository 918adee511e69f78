#include "avro_defaults.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_wire.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *type_name(avro_type_t t)
{
    static const char *const names[] = {"string", "bytes",   "int",   "long",   "float",
                                        "double", "boolean", "null",  "record", "enum",
                                        "fixed",  "map",     "array", "union",  "link"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

json_t *avro_defaults_field(json_t *named, avro_schema_t rec, int i)
{
    json_t *def = json_object_get(named, avro_schema_name(rec));
    json_t *f = json_array_get(json_object_get(def, "fields"), (size_t)i);
    const char *name = json_string_value(json_object_get(f, "name"));
    if (!name || strcmp(name, avro_schema_record_field_name(rec, i)) != 0) {
        return NULL;
    }
    return json_object_get(f, "default");
}

static int fill_defaults(avro_value_t *rec, json_t *named, char *err, size_t errlen, int depth);

static int json_bytes(json_t *def, uint8_t **out, size_t *out_len)
{
    /* Avro writes bytes defaults as a string whose code points 0..255 are the bytes. */
    const uint8_t *s = (const uint8_t *)json_string_value(def);
    size_t n = json_string_length(def), k = 0;
    uint8_t *b = malloc(n + 1);
    if (!b) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            b[k++] = s[i];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && (s[i] & 0x1F) <= 3) {
            b[k++] = (uint8_t)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3F));
            i++;
        } else {
            free(b);
            return -1;
        }
    }
    *out = b;
    *out_len = k;
    return 0;
}

static int apply_default(avro_value_t *v, json_t *def, json_t *named, char *err, size_t errlen, int depth)
{
    if (depth > AVRO_WIRE_MAX_DEPTH) {
        return fail(err, errlen, "default nested deeper than %d", AVRO_WIRE_MAX_DEPTH);
    }
    avro_type_t t = avro_value_get_type(v);
    int rc = -1;
    switch (t) {
    case AVRO_UNION: {
        avro_value_t branch;
        if (avro_value_set_branch(v, 0, &branch)) {
            break;
        }
        return apply_default(&branch, def, named, err, errlen, depth + 1);
    }
    case AVRO_NULL:
        rc = json_is_null(def) ? avro_value_set_null(v) : -1;
        break;
    case AVRO_BOOLEAN:
        rc = json_is_boolean(def) ? avro_value_set_boolean(v, json_is_true(def)) : -1;
        break;
    case AVRO_INT32:
        if (json_is_integer(def) && json_integer_value(def) >= INT32_MIN &&
            json_integer_value(def) <= INT32_MAX) {
            rc = avro_value_set_int(v, (int32_t)json_integer_value(def));
        }
        break;
    case AVRO_INT64:
        rc = json_is_integer(def) ? avro_value_set_long(v, json_integer_value(def)) : -1;
        break;
    case AVRO_FLOAT:
        rc = json_is_number(def) ? avro_value_set_float(v, (float)json_number_value(def)) : -1;
        break;
    case AVRO_DOUBLE:
        rc = json_is_number(def) ? avro_value_set_double(v, json_number_value(def)) : -1;
        break;
    case AVRO_STRING:
        if (json_is_string(def)) {
            rc = avro_value_set_string_len(v, json_string_value(def), json_string_length(def) + 1);
        }
        break;
    case AVRO_BYTES:
    case AVRO_FIXED: {
        uint8_t *b;
        size_t n;
        if (json_is_string(def) && json_bytes(def, &b, &n) == 0) {
            if (t == AVRO_BYTES) {
                rc = avro_value_set_bytes(v, b, n);
            } else if ((int64_t)n == avro_schema_fixed_size(avro_value_get_schema(v))) {
                rc = avro_value_set_fixed(v, b, n);
            }
            free(b);
        }
        break;
    }
    case AVRO_ENUM:
        if (json_is_string(def)) {
            int i = avro_wire_enum_index(avro_value_get_schema(v), json_string_value(def));
            rc = i >= 0 ? avro_value_set_enum(v, i) : -1;
        }
        break;
    case AVRO_ARRAY: {
        size_t i;
        json_t *item;
        if (!json_is_array(def)) {
            break;
        }
        rc = 0;
        json_array_foreach(def, i, item)
        {
            avro_value_t child;
            if (avro_value_append(v, &child, NULL) ||
                apply_default(&child, item, named, err, errlen, depth + 1)) {
                return -1;
            }
        }
        break;
    }
    case AVRO_MAP: {
        const char *key;
        json_t *item;
        if (!json_is_object(def)) {
            break;
        }
        rc = 0;
        json_object_foreach(def, key, item)
        {
            avro_value_t child;
            if (avro_value_add(v, key, &child, NULL, NULL) ||
                apply_default(&child, item, named, err, errlen, depth + 1)) {
                return -1;
            }
        }
        break;
    }
    case AVRO_RECORD: {
        avro_schema_t rs = avro_value_get_schema(v);
        size_t n = avro_schema_record_size(rs);
        if (!json_is_object(def)) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            avro_value_t child;
            json_t *fdef = json_object_get(def, avro_schema_record_field_name(rs, (int)i));
            if (!fdef) {
                fdef = avro_defaults_field(named, rs, (int)i);
            }
            if (avro_value_get_by_index(v, i, &child, NULL)) {
                return -1;
            }
            if (fdef) {
                if (apply_default(&child, fdef, named, err, errlen, depth + 1)) {
                    return -1;
                }
            } else if (avro_value_get_type(&child) == AVRO_RECORD &&
                       fill_defaults(&child, named, err, errlen, depth + 1)) {
                return -1;
            }
        }
        rc = 0;
        break;
    }
    default:
        break;
    }
    if (rc != 0) {
        return fail(err, errlen, "default value does not fit type %s", type_name(t));
    }
    return 0;
}

int avro_defaults_apply(avro_value_t *v, json_t *def, json_t *named, char *err, size_t errlen)
{
    return apply_default(v, def, named, err, errlen, 0);
}

static int fill_defaults(avro_value_t *rec, json_t *named, char *err, size_t errlen, int depth)
{
    json_t *empty = json_object();
    int rc = empty ? apply_default(rec, empty, named, err, errlen, depth) : -1;
    json_decref(empty);
    return rc;
}

int avro_defaults_fill(avro_value_t *rec, json_t *named, char *err, size_t errlen)
{
    if (avro_value_get_type(rec) != AVRO_RECORD) {
        return fail(err, errlen, "not a record");
    }
    return fill_defaults(rec, named, err, errlen, 0);
}

void avro_defaults_collect(json_t *named, json_t *schema)
{
    if (json_is_array(schema)) {
        size_t i;
        json_t *branch;
        json_array_foreach(schema, i, branch)
        {
            avro_defaults_collect(named, branch);
        }
        return;
    }
    if (!json_is_object(schema)) {
        return;
    }
    json_t *type = json_object_get(schema, "type");
    const char *kind = json_string_value(type);
    if (!kind) {
        avro_defaults_collect(named, type);
        return;
    }
    const char *name = json_string_value(json_object_get(schema, "name"));
    if (name && (!strcmp(kind, "record") || !strcmp(kind, "enum") || !strcmp(kind, "fixed"))) {
        const char *dot = strrchr(name, '.');
        json_object_set(named, dot ? dot + 1 : name, schema);
    }
    if (!strcmp(kind, "record")) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(schema, "fields"), i, f)
        {
            avro_defaults_collect(named, json_object_get(f, "type"));
        }
    } else if (!strcmp(kind, "array")) {
        avro_defaults_collect(named, json_object_get(schema, "items"));
    } else if (!strcmp(kind, "map")) {
        avro_defaults_collect(named, json_object_get(schema, "values"));
    }
}
