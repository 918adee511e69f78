/* http: the service's HTTP/1.1 server (h2o 2.2 on the service's libuv loop)
 * with a router, JSON helpers and the built-in /health, /ready and /metrics.
 *
 * Everything here runs on the loop thread. A handler answers at once with one
 * of the http_respond_* calls, or keeps the request (http_req_retain) and
 * answers later, still on the loop thread (a worker comes back with
 * uv_async). If the connection has gone by then, the answer is dropped.
 * (h2o 2.2 stops reading while a request is processed, so a client that
 * hangs up meanwhile is noticed when the answer is written, or when the
 * server closes; http_req_alive() turns false then.)
 *
 * Built-in routes:
 *   GET /health   200 {"status":"ok"} while the loop runs.
 *   GET /ready    200 {"status":"ready","checks":{...}} when every check
 *                 passes, 503 {"status":"not_ready",...} naming the failing
 *                 ones (and "shutdown" once http_server_close has begun).
 *   GET /metrics  metrics_render() of the registry, text/plain; version=0.0.4.
 * Other paths: 404 JSON; a known path with another method: 405 JSON with an
 * Allow header; broken %-encoding in the path: 400; request bodies over
 * HTTP_MAX_BODY: 413 (sent by h2o, plain text).
 *
 * Metrics (when a registry is given):
 *   http_requests_total{method,route,status}  route is the pattern, or
 *                                              "unmatched"; method is the
 *                                              verb or "OTHER".
 *   http_request_duration_seconds{route}      handler entry to response.
 */
#ifndef HIVE_HTTP_H
#define HIVE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "metrics.h"

#define HTTP_MAX_BODY (1024 * 1024) /* request bodies above this get 413 */
#define HTTP_DRAIN_MS_DEFAULT 2000  /* see http_server_set_drain_ms() */

typedef struct http_server_s http_server_t;
typedef struct http_req_s http_req_t;

/* A route handler. `req` is valid until the handler returns, longer with
 * http_req_retain(). */
typedef void (*http_handler_fn)(void *ctx, http_req_t *req);

/* A readiness check: returns true when ready. Runs on the loop thread on
 * each GET /ready, so it must be quick (read a flag). The _detail form may
 * also write a short reason (NUL-terminated, `detail_len` bytes, starts
 * empty) that /ready shows next to the check. */
typedef bool (*http_check_fn)(void *ctx);
typedef bool (*http_check_detail_fn)(void *ctx, char *detail, size_t detail_len);

/* Listens on `host` (numeric address or name; NULL = "0.0.0.0") and `port`
 * (0 = an ephemeral port, see http_server_port()). `metrics` (may be NULL)
 * is served on /metrics and receives the request metrics; it must outlive
 * the server. Returns the server, or NULL with a reason in `err` (nothing
 * to free). A name in `host` is resolved with a blocking getaddrinfo().
 * Close with http_server_close(), then free with http_server_destroy(). */
http_server_t *http_server_create(uv_loop_t *loop, const char *host, int port, metrics_t *metrics, char *err,
                                  size_t errlen);

/* The port actually bound. */
int http_server_port(const http_server_t *s);

/* Registers `fn(ctx, req)` for `method` ("GET", "POST", ...) and `pattern`
 * ("/api/v1/optimizations/{id}", see router.h). Returns 0, or -1 for a
 * malformed or duplicate route. */
int http_route(http_server_t *s, const char *method, const char *pattern, http_handler_fn fn, void *ctx);

/* Adds a named check to /ready; `name` is copied. Returns 0 or -1. */
int http_add_ready_check(http_server_t *s, const char *name, http_check_fn fn, void *ctx);
int http_add_ready_check_detail(http_server_t *s, const char *name, http_check_detail_fn fn, void *ctx);

/* How long http_server_close() waits for retained requests to be answered
 * before answering them 503 itself (default HTTP_DRAIN_MS_DEFAULT). */
void http_server_set_drain_ms(http_server_t *s, unsigned ms);

/* Shuts the server down: closes the listener, closes idle connections, lets
 * requests in progress finish (up to the drain time, then answers them 503
 * and cuts their connections), then closes every libuv handle the server
 * and h2o own. `done(arg)` (may be NULL) runs on the loop once that is
 * complete (it may call http_server_destroy); once uv_run() returns,
 * uv_loop_close() succeeds. Call once; with NULL, calls done(arg) at once.
 * Retained requests stay valid (and are no longer alive). */
void http_server_close(http_server_t *s, void (*done)(void *arg), void *arg);

/* Frees the server once http_server_close() has completed. Must be called after
 * uv_run() has returned and BEFORE uv_loop_close(): it disposes of h2o's
 * context, which closes h2o's own timers and runs the loop once to finish
 * them (register it with lifecycle_add_finalizer()). Accepts NULL. A
 * server whose close has not completed (never closed, or the loop stopped
 * first) still has handles on the loop: it is logged and left allocated
 * rather than freed under libuv's feet. */
void http_server_destroy(http_server_t *s);

/* Request accessors. Strings are NUL-terminated and live as long as `r`. */
const char *http_req_method(const http_req_t *r);
const char *http_req_path(const http_req_t *r);                    /* raw path, no query */
const char *http_req_param(const http_req_t *r, const char *name); /* decoded path parameter */
const char *http_req_query(const http_req_t *r, const char *name); /* decoded query value, or NULL */

/* Parses `s` as a plain decimal integer (digits only, no sign or space) in
 * [min, max] into *out: 0, or HIVE_EINVAL (then *out is untouched). */
int http_parse_bounded(const char *s, size_t min, size_t max, size_t *out);
/* The optional integer query parameter `name` in [min, max]: true with *out
 * set, or left as is when the parameter is absent; false after answering 400
 * {"error": "<name>: an integer from <min> to <max>", "field": name}. */
bool http_req_query_size(http_req_t *r, const char *name, size_t min, size_t max, size_t *out);
/* The first member of the JSON object `body` whose name is not in `allowed`
 * (NULL-terminated), or NULL when every member is allowed: the check behind
 * an OpenAPI body with additionalProperties false. */
const char *http_json_unknown_member(const json_t *body, const char *const *allowed);

/* The request body (not NUL-terminated); NULL and 0 when there is none or
 * the request is no longer alive. */
const char *http_req_body(const http_req_t *r, size_t *out_len);

/* The body parsed as a JSON object or array, borrowed (lives as long as
 * `r`; parsed once). Returns NULL with a reason in `err` when the body is
 * missing, the Content-Type is not JSON, or the JSON is invalid (with line
 * and column). */
json_t *http_req_json(http_req_t *r, char *err, size_t errlen);

/* Answers `r`. After the first answer, or once the request is no longer
 * alive, further answers are dropped. */
void http_respond_json(http_req_t *r, int status, json_t *body); /* steals `body` */
void http_respond_text(http_req_t *r, int status, const char *content_type, const char *body, size_t len);
/* {"error": message, "field": field}; `field` may be NULL (then omitted). */
void http_respond_error(http_req_t *r, int status, const char *field, const char *message);

/* Deferred answers. A handler that answers later takes a reference with
 * http_req_retain() and drops it with http_req_release() after answering
 * (or giving up). The memory stays valid while referenced; h2o's request
 * does not: http_req_alive() is false once it has been answered or the
 * connection was closed, and every call above is then a safe no-op. */
void http_req_retain(http_req_t *r);
bool http_req_alive(const http_req_t *r);
void http_req_release(http_req_t *r);

/* Parses a request body the way http_req_json() does; `content_type` (may
 * be NULL: then not checked) and `body` are `ctlen` and `len` bytes. Returns
 * a new reference, or NULL with a reason in `err`. Pure; exposed for tests
 * and fuzzing. */
json_t *http_json_parse(const char *content_type, size_t ctlen, const char *body, size_t len, char *err,
                        size_t errlen);

#endif
