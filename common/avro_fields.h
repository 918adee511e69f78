/* avro_fields: read and write the fields of a record value by name.
 *
 * libavro-c's value interface takes four calls and a union dance to read an
 * optional string; these helpers make service code read like the schema:
 *
 *     const char *service; size_t len;
 *     double p95;
 *     if (avro_get_string(&v, "service", &service, &len) || avro_get_double(&v, "latency_p95_ms", &p95)) ...
 *     avro_set_enum_name(&insight, "priority", "HIGH");
 *
 * A field whose type is a union with null (["null", "string"]) is read through the
 * avro_get_nullable_* helpers, which return 1 for null; the plain getters accept it
 * too when it is not null. Setters select the union branch of the type they write,
 * and avro_set_null() the null branch.
 *
 * Getters return 0 and set *out, or -1 (no such field, or a type that does not fit)
 * leaving *out untouched. Numbers widen on read (int -> long -> double). Strings are
 * returned as pointers into the value: valid until it changes or is freed; `len`
 * excludes the NUL terminator that always follows. Setters copy, return 0 or -1.
 * None of them touches libavro-c's (thread-unsafe) global error buffer.
 */
#ifndef HIVE_AVRO_FIELDS_H
#define HIVE_AVRO_FIELDS_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets *out to the field itself; through a union, to its selected branch. */
int avro_get_field(const avro_value_t *rec, const char *field, avro_value_t *out);

int avro_get_string(const avro_value_t *rec, const char *field, const char **out, size_t *out_len);
int avro_get_double(const avro_value_t *rec, const char *field, double *out);
int avro_get_long(const avro_value_t *rec, const char *field, int64_t *out);
int avro_get_int(const avro_value_t *rec, const char *field, int32_t *out);
int avro_get_bool(const avro_value_t *rec, const char *field, bool *out);
/* The enum's symbol ("HIGH"), a string owned by the schema. */
int avro_get_enum_name(const avro_value_t *rec, const char *field, const char **out);

/* As above for ["null", T] fields: 0 and *out set, 1 when the field is null, -1. */
int avro_get_nullable_string(const avro_value_t *rec, const char *field, const char **out, size_t *out_len);
int avro_get_nullable_double(const avro_value_t *rec, const char *field, double *out);
int avro_get_nullable_long(const avro_value_t *rec, const char *field, int64_t *out);
int avro_get_nullable_bool(const avro_value_t *rec, const char *field, bool *out);

/* Number of items of an array or map field. */
int avro_get_size(const avro_value_t *rec, const char *field, size_t *out);
/* The entry `key` of a map of double (or int, long, float); -1 if absent. */
int avro_get_map_double(const avro_value_t *rec, const char *field, const char *key, double *out);
/* The entry `key` of a map of string; -1 if absent. */
int avro_get_map_string(const avro_value_t *rec, const char *field, const char *key, const char **out,
                        size_t *out_len);

int avro_set_string(avro_value_t *rec, const char *field, const char *s);
int avro_set_string_len(avro_value_t *rec, const char *field, const char *s, size_t len);
int avro_set_double(avro_value_t *rec, const char *field, double x);
int avro_set_long(avro_value_t *rec, const char *field, int64_t x);
int avro_set_int(avro_value_t *rec, const char *field, int32_t x);
int avro_set_bool(avro_value_t *rec, const char *field, bool x);
/* Sets an enum field to `symbol`; -1 if the enum has no such symbol. */
int avro_set_enum_name(avro_value_t *rec, const char *field, const char *symbol);
/* Selects the null branch of a ["null", T] field. */
int avro_set_null(avro_value_t *rec, const char *field);

/* Adds or replaces the entry `key` of a map field. */
int avro_set_map_double(avro_value_t *rec, const char *field, const char *key, double x);
int avro_set_map_string(avro_value_t *rec, const char *field, const char *key, const char *s);
/* Appends an item to an array field. */
int avro_append_string(avro_value_t *rec, const char *field, const char *s);
int avro_append_double(avro_value_t *rec, const char *field, double x);
/* Appends an empty item (a record, an array...) to an array field and sets *out to
 * it, to be filled; see avro_codec_apply_defaults() for records. */
int avro_append_item(avro_value_t *rec, const char *field, avro_value_t *out);

#endif
