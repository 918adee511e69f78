/* registry: client of a Confluent-compatible Schema Registry (REST API v1).
 *
 * Optional at run time: a service creates one only when SCHEMA_REGISTRY_URL is set
 * (no default; without it avro_codec uses the fixed ids of schemas/avro/ids.json).
 * Two calls of the API are used:
 *   POST /subjects/{subject}/versions  {"schema": "..."}  -> {"id": N}   (registration)
 *   GET  /schemas/ids/{id}                                -> {"schema": "..."}
 * with Content-Type application/vnd.schemaregistry.v1+json. Both are cached for the
 * life of the client (ids are immutable in a registry), so each schema costs one
 * request; a 404 for an id is remembered for 30 s so that a stream of records with
 * a bogus id does not turn into a stream of requests.
 *
 * Requests use libcurl's easy interface and block the calling thread for at most
 * `timeout_ms`: call from worker threads, never from the event loop. All calls are
 * thread-safe.
 */
#ifndef HIVE_REGISTRY_H
#define HIVE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "hive_err.h"

typedef struct registry_s registry_t;

/* Errors are HIVE_E* codes (hive_err.h): HIVE_ENOTFOUND (404: the id or subject
 * does not exist), HIVE_EUNAVAILABLE (network, 5xx, auth: retry later),
 * HIVE_EREJECTED (409 incompatible, 422 invalid schema), HIVE_EPROTO (not the
 * JSON the API promises), HIVE_ENOMEM. */

/* Creates a client for `url`: one base URL or several separated by commas, tried in
 * order ("http://localhost:8081"; user:password@ in the URL for basic auth).
 * `timeout_ms` bounds each request (connect included). Returns NULL with a reason in
 * `err` if the URL list is empty or not http(s). Free with registry_destroy(). */
registry_t *registry_create(const char *url, long timeout_ms, char *err, size_t errlen);

/* Frees the client and its caches. Accepts NULL. */
void registry_destroy(registry_t *r);

/* Registers `schema_json` under `subject` (e.g. "telemetry.aggregated-value") and sets
 * *out_id to its id; the registry returns the existing id when the schema is already
 * registered. Cached per (subject, schema). Returns 0 or a HIVE_E* code with a
 * reason in `err`. */
int registry_register(registry_t *r, const char *subject, const char *schema_json, int32_t *out_id, char *err,
                      size_t errlen);

/* Fetches the schema with id `id`. On success *out_json is a malloc'd copy of the
 * schema text (free() it). Returns 0, HIVE_ENOTFOUND (no such id, or not an Avro
 * schema), or another HIVE_E* code, with a reason in `err`. */
int registry_fetch(registry_t *r, int32_t id, char **out_json, char *err, size_t errlen);

#endif
