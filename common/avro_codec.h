/* avro_codec: the suite's Kafka records, Avro with Confluent framing.
 *
 * Every record on a topic is 0x00, a 4-byte big-endian schema id, then the Avro
 * binary encoding of the record. Without a Schema Registry the ids are the fixed
 * ones of schemas/avro/ids.json; with one (registry.h), the writer registers its
 * schema under the subject "<topic>-value" and readers fetch unknown ids, once each.
 *
 * Values are libavro-c generic values (avro_value_t) of the schemas embedded at
 * build time from the .avsc files of schemas/avro; read and write their fields with the
 * helpers of avro_fields.h. Decoding is written for hostile input: whatever the
 * bytes, it returns a value or a reason fit for a DLQ header, and it resolves
 * older (or newer) writer schemas to the current one with the Avro rules,
 * defaults included (BACKWARD compatibility).
 *
 * A codec is thread-safe: worker threads may encode and decode concurrently.
 */
#ifndef HIVE_AVRO_CODEC_H
#define HIVE_AVRO_CODEC_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "avro_fields.h"
#include "hive_err.h"
#include "registry.h"

/* One schema embedded at build time (schemas/embed.py writes the table). */
typedef struct {
    const char *name; /* record name, e.g. "TelemetryAggregated" */
    int32_t local_id; /* its id when no Schema Registry is configured */
    int current;      /* 1: the version services write and read into; 0: retired, read only */
    const char *json; /* the .avsc text */
} hive_schema_def_t;

extern const hive_schema_def_t hive_schemas[];
extern const size_t hive_schemas_count;

/* Errors are HIVE_E* codes (hive_err.h): HIVE_EBADMSG (the bytes are bad: send
 * them to the DLQ), HIVE_EUNAVAILABLE (the schema registry could not be asked:
 * retry later, do not DLQ), HIVE_ENOMEM, HIVE_EINVAL (a programming error:
 * unknown record name, bad value). */

typedef struct avro_codec_s avro_codec_t;

/* Parses the embedded schemas. `registry` (may be NULL: local ids) is borrowed and
 * must outlive the codec. Returns NULL with a reason in `err` if a schema does not
 * parse. Free with avro_codec_destroy(). */
avro_codec_t *avro_codec_create(registry_t *registry, char *err, size_t errlen);

/* Frees the codec. Values it created stay valid (they hold their own references).
 * Accepts NULL. */
void avro_codec_destroy(avro_codec_t *c);

/* Sets *out to a fresh value of the current schema of record `name`
 * ("TelemetryAggregated") with every field that has a default set to it (others are
 * zero, empty, or an unselected union). Free with avro_value_decref(out).
 * Returns 0 or HIVE_EINVAL for an unknown name. */
int avro_codec_new_value(avro_codec_t *c, const char *name, avro_value_t *out);

/* Sets the fields of `record` (of any embedded record type, e.g. an element just
 * appended to an array of SpecialistOpinion) to their defaults. Returns 0 or
 * HIVE_EINVAL. */
int avro_codec_apply_defaults(avro_codec_t *c, avro_value_t *record);

/* Encodes `v` (a value from avro_codec_new_value or avro_codec_decode) for `topic`.
 * On success *out is a malloc'd buffer of *out_len bytes (free() it). With a
 * registry the schema is registered under "<topic>-value" the first time.
 * Returns 0; HIVE_EINVAL if the value cannot be encoded (a union with no
 * branch selected, a string not UTF-8...); HIVE_EUNAVAILABLE if the registry
 * could not be reached, HIVE_EREJECTED if it refused the schema (incompatible),
 * another registry code (registry.h), or HIVE_ENOMEM. `err` receives the reason. */
int avro_codec_encode(avro_codec_t *c, const char *topic, const avro_value_t *v, void **out, size_t *out_len,
                      char *err, size_t errlen);

/* Decodes one framed record that must be an `expected` record ("Insight"). The
 * writer schema is found by id (local table, or registry with cache) and resolved
 * to the current schema of `expected`. On success *out is a new value (free with
 * avro_value_decref). Returns 0; HIVE_EBADMSG with a reason for a DLQ header
 * in `err` ("bad magic byte 0x7b", "unknown schema id 77", "truncated record (field
 * service)", "expected Insight, got TelemetryAggregated", "3 bytes of trailing
 * garbage"...); HIVE_EUNAVAILABLE when the registry could not be asked (retry,
 * the record may be fine); HIVE_EINVAL for an unknown `expected`. */
int avro_codec_decode(avro_codec_t *c, const void *buf, size_t len, const char *expected, avro_value_t *out,
                      char *err, size_t errlen);

/* Teaches the codec a writer schema under `id`, for records written with a schema
 * it does not embed (tests; tools reading old dumps). Returns 0, or
 * HIVE_EINVAL if the JSON does not parse or the id is taken by another schema. */
int avro_codec_add_schema(avro_codec_t *c, int32_t id, const char *json, char *err, size_t errlen);

/* Computes the SHA-256 (lowercase hex, NUL-terminated) of the canonical payload of
 * record `v`: its Avro binary encoding with the string field `field` set to "" (the
 * field is restored). This is OptimizationEvent.hash. Returns 0 or HIVE_EINVAL. */
int avro_codec_hash(avro_value_t *v, const char *field, char out_hex[65]);

#endif
