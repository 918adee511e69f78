/* httpc_sync: one blocking HTTP request, for worker threads (a pipeline
 * transform calling MLflow inside its transaction). libcurl's easy interface,
 * one handle per call; thread-safe. Never call it from the loop thread: use
 * httpc.h there. Redirects are not followed, as in httpc.h.
 */
#ifndef HIVE_HTTPC_SYNC_H
#define HIVE_HTTPC_SYNC_H

#include <stddef.h>

/* Sends `method` ("GET", "POST"...) to `url` with `body` (`len` bytes, may be
 * NULL) as `content_type` (may be NULL) and waits at most `timeout_ms` (> 0)
 * for the whole answer. Returns 0 when an HTTP answer arrived, whatever its
 * code (as httpc.h): *out_http_code is set and *out_body (may be NULL: body
 * discarded) is a malloc'd NUL-terminated copy of *out_len bytes (may be NULL).
 * Otherwise, with the outputs untouched:
 *   HIVE_ETIMEDOUT     no complete answer within timeout_ms
 *   HIVE_EUNAVAILABLE  the host cannot be resolved or reached, or the connection broke
 *   HIVE_ETOOBIG       the body is over HTTPC_MAX_RESPONSE (httpc.h)
 *   HIVE_EINVAL        bad arguments or URL
 *   HIVE_ENOMEM, HIVE_EPROTO (any other libcurl failure)
 * `err` (may be NULL) receives libcurl's reason on failure. */
int httpc_sync_request(const char *method, const char *url, const char *content_type, const char *body,
                       size_t len, long timeout_ms, long *out_http_code, char **out_body, size_t *out_len,
                       char *err, size_t errlen);

/* As httpc_sync_request, with extra request headers: `headers` is a
 * NULL-terminated array of "Name: value" lines (may be NULL), e.g. an API key
 * ("Authorization: Bearer ...", "x-api-key: ..."). */
int httpc_sync_request_headers(const char *method, const char *url, const char *content_type,
                               const char *const *headers, const char *body, size_t len, long timeout_ms,
                               long *out_http_code, char **out_body, size_t *out_len, char *err,
                               size_t errlen);

#endif
