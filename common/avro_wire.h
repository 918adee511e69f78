/* avro_wire: the Avro binary encoding of libavro-c generic values, written for
 * untrusted input. Internal to the avro module (avro_codec.c, avro_fields.c, tests).
 *
 * Why not avro_value_read()/avro_resolved_writer from libavro-c 1.11.1: its reader
 * trusts the lengths on the wire (a string length of -1 writes before its buffer,
 * a length of a few GB is allocated and then leaked when the read fails), it has no
 * limits on counts or nesting, and its resolver does not implement default values
 * (a reader field missing from the writer is an error). Here every length and count
 * is checked against the bytes left, nesting is bounded, strings must be UTF-8, and
 * writer -> reader resolution follows the Avro specification, defaults included.
 * libavro-c still parses the schemas and holds the values.
 *
 * Defaults come from the reader schemas' JSON (libavro-c drops them when parsing):
 * `named` is the table of avro_defaults.h. It is only read, so threads may share it.
 */
#ifndef HIVE_AVRO_WIRE_H
#define HIVE_AVRO_WIRE_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum nesting of records, arrays, maps and unions in a value. */
#define AVRO_WIRE_MAX_DEPTH 64

/* A growable output buffer; zero-initialize, free `data` with free(). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} avro_wire_buf_t;

/* Appends the binary encoding of `v` to `out`. Returns 0, or -1 with a reason in
 * `err` (a union with no branch selected, an enum index out of range, a string
 * that is not UTF-8, out of memory). On failure `out->len` is unchanged. */
int avro_wire_write(avro_wire_buf_t *out, const avro_value_t *v, char *err, size_t errlen);

/* Decodes `len` bytes written with schema `writer` into `dst`, a fresh generic value
 * of the reader schema: fields are matched by name, missing ones take the reader's
 * default, writer-only ones are skipped, numbers are promoted, enums matched by
 * symbol. Sets *out_used to the bytes consumed (the caller decides whether trailing
 * bytes are an error). Returns 0, or -1 with a reason in `err`. Never reads outside
 * [buf, buf + len) and allocates at most in proportion to `len`. */
int avro_wire_read(const void *buf, size_t len, avro_schema_t writer, avro_value_t *dst, json_t *named,
                   size_t *out_used, char *err, size_t errlen);

/* Index of the field `name` in record schema `rec`, or -1. Unlike
 * avro_schema_record_field_get_index() it does not touch libavro-c's global error
 * buffer, which is not thread-safe in Debian's build. */
int avro_wire_field_index(avro_schema_t rec, const char *name);

/* Index of `symbol` in enum schema `e`, or -1 (same reason). */
int avro_wire_enum_index(avro_schema_t e, const char *symbol);

/* Returns 1 if the `len` bytes at `s` are valid UTF-8, else 0. */
int avro_wire_utf8_valid(const uint8_t *s, size_t len);

#endif
