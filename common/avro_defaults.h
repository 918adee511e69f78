/* avro_defaults: the default values of Avro schemas, applied to generic values.
 * Internal to the avro module (avro_codec.c, avro_wire.c).
 *
 * libavro-c 1.11.1 drops the "default" attributes when it parses a schema, so they
 * are read from the schema's JSON: `named` is a JSON object mapping the name of each
 * named type (record, enum) of the reader schemas to its JSON definition, built
 * with avro_defaults_collect(). It is only read afterwards, so threads may share it.
 */
#ifndef HIVE_AVRO_DEFAULTS_H
#define HIVE_AVRO_DEFAULTS_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>

/* Adds every named type defined in the schema JSON `schema` to `named`, by its
 * name without namespace (the suite's names are unique). */
void avro_defaults_collect(json_t *named, json_t *schema);

/* The JSON default of field `i` of record schema `rec` (JSON null for a null
 * default), or NULL when the field has none. */
json_t *avro_defaults_field(json_t *named, avro_schema_t rec, int i);

/* Sets `v` to the JSON default `def`, by the Avro specification: a union's default
 * is of its first branch, bytes are a string of code points 0..255, a record's
 * missing fields take their own defaults. Returns 0, or -1 with a reason in `err`. */
int avro_defaults_apply(avro_value_t *v, json_t *def, json_t *named, char *err, size_t errlen);

/* Applies the default of every field of record `rec` that has one; a record field
 * without a default gets its own fields' defaults. Returns 0 or -1. */
int avro_defaults_fill(avro_value_t *rec, json_t *named, char *err, size_t errlen);

#endif
