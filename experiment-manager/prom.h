/* prom: a metric of an experiment read from Prometheus (HTTP API,
 * GET <PROMETHEUS_URL>/api/v1/query). A metric source is a PromQL query
 * with a `$variant` placeholder; each look runs it once per variant and its
 * value is one observation of that variant (stored like a telemetry window,
 * with no requests, so the sample-ratio check is not affected).
 */
#ifndef EXPMGR_PROM_H
#define EXPMGR_PROM_H

#include <stddef.h>

/* `tmpl` with every "$variant" replaced by `variant`, into out[cap]. 0, or
 * HIVE_ETOOBIG when it does not fit. */
int prom_expand(const char *tmpl, const char *variant, char *out, size_t cap);

/* The one number of an /api/v1/query answer: a scalar, or a vector of
 * exactly one sample. 0; HIVE_ENOTFOUND for an empty vector (no data);
 * HIVE_EPROTO for an error answer, several samples, another result type or
 * a value that is not a finite number (reason in `err`). */
int prom_parse_value(const char *body, size_t len, double *out, char *err, size_t errlen);

/* Runs `query` at `base_url` (BLOCKING: worker threads only). 0 with *out;
 * HIVE_ENOTFOUND when it has no sample; HIVE_EUNAVAILABLE / HIVE_ETIMEDOUT
 * when Prometheus cannot be reached; HIVE_EPROTO for a refused query. */
int prom_query(const char *base_url, const char *query, long timeout_ms, double *out, char *err,
               size_t errlen);

#endif
