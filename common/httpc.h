/* httpc: an asynchronous HTTP client on the service's libuv loop (libcurl's
 * multi interface driven by uv_poll_t and uv_timer_t), for the MLflow REST
 * API, the Prometheus API and webhooks.
 *
 * Everything runs on the loop thread, callbacks included. Connections are
 * reused between requests to the same host. Redirects are not followed.
 */
#ifndef HIVE_HTTPC_H
#define HIVE_HTTPC_H

#include <stddef.h>
#include <uv.h>

#include "hive_err.h"

#define HTTPC_MAX_RESPONSE (16 * 1024 * 1024) /* larger bodies fail with HIVE_ETOOBIG */

typedef struct httpc_s httpc_t;

/* Completion of a request, on the loop thread. `status` is 0 when an HTTP
 * answer arrived (whatever `http_code`), otherwise a HIVE_E* code:
 * HIVE_EUNAVAILABLE (connection refused or lost, name not resolved, ...),
 * HIVE_ETIMEDOUT, HIVE_ETOOBIG (answer over HTTPC_MAX_RESPONSE), HIVE_ENOMEM,
 * HIVE_EINVAL (bad URL or protocol), HIVE_ECANCELED (httpc_close() ran before
 * the answer came). `body` (NUL-terminated, `len` bytes without the NUL) is
 * valid only during the call; on failure it holds the transport's message
 * (libcurl's, e.g. "Failed to connect to 127.0.0.1 port 9: Connection
 * refused") for logs. */
typedef void (*httpc_done_fn)(void *arg, int status, long http_code, const char *body, size_t len);

/* Creates a client on `loop`. Returns NULL on failure. Close with
 * httpc_close(), then free with httpc_destroy(). */
httpc_t *httpc_create(uv_loop_t *loop);

/* Starts a request. `method` is "GET", "POST", "PUT", "DELETE", ...;
 * `content_type` (may be NULL) is sent as Content-Type; `body` (`len`
 * bytes, may be NULL) is copied. `timeout_ms` bounds the whole request
 * (0 = no limit). Returns 0, and `cb(arg, ...)` runs exactly once later; or
 * a HIVE_E* code (the callback is then never called): HIVE_EINVAL for bad
 * arguments, an unsupported URL or a closing client, HIVE_ENOMEM. */
int httpc_request(httpc_t *c, const char *method, const char *url, const char *content_type, const char *body,
                  size_t len, long timeout_ms, httpc_done_fn cb, void *arg);

/* Number of requests started and not yet completed. */
size_t httpc_pending(const httpc_t *c);

/* Cancels every request in flight (their callbacks run, before this
 * returns, with HIVE_ECANCELED), closes the connections and every libuv
 * handle, then calls `done(arg)` (may be NULL) on the loop. May be called
 * from a completion callback. Call once; with NULL, calls done(arg) at once. */
void httpc_close(httpc_t *c, void (*done)(void *arg), void *arg);

/* Frees the client once httpc_close() has completed. Accepts NULL. A client
 * whose close has not completed is left allocated (its handles are still on
 * the loop). */
void httpc_destroy(httpc_t *c);

/* Exposed for tests: the HIVE_E* code of a libcurl result (a CURLcode);
 * 0 for CURLE_OK. */
int httpc_error_code(int curl_code);

#endif
