/* grpc: a gRPC server over HTTP/2 cleartext (h2c with prior knowledge),
 * libnghttp2's server session on the service's libuv loop.
 *
 * The module is generic: it routes a call by its path
 * ("/package.Service/Method") to a registered handler and moves message
 * bytes; encoding them (protobuf-c) is the caller's business. It serves the
 * two shapes of RPC the hive uses: unary and server streaming. The handler
 * runs once the client has half-closed the request stream, with the single
 * request message; it then sends zero or more response messages and
 * finishes the call with a status, at once or later (grpc_call_retain).
 *
 * Everything here runs on the loop thread.
 *
 * Wire behaviour:
 *   - Responses carry ":status 200" and "content-type: application/grpc";
 *     the status travels in trailers (grpc-status, grpc-message
 *     percent-encoded). A call finished before any message gets a
 *     trailers-only response (one HEADERS frame with END_STREAM).
 *   - Requests are reassembled across DATA frames. A compressed request
 *     message gets UNIMPLEMENTED; one longer than GRPC_MAX_MESSAGE gets
 *     RESOURCE_EXHAUSTED; none, or more than one, gets INTERNAL; an unknown
 *     path gets UNIMPLEMENTED. A request that is not a POST, or whose
 *     content-type is not application/grpc, gets HTTP 405 or 415.
 *   - Flow control is nghttp2's: response messages queue in the call and
 *     leave as the peer's window allows. grpc-timeout is not enforced.
 *   - A connection that does not start with the HTTP/2 preface, or that
 *     breaks the protocol, is closed; other connections are unaffected.
 *
 * Metrics (when a registry is given):
 *   grpc_requests_total{method,code}         method is the registered path,
 *                                            or "unknown"; code the status
 *                                            name ("OK", "NOT_FOUND", ...),
 *                                            CANCELLED when the client reset
 *                                            the stream or went away first.
 *   grpc_request_duration_seconds{method}    request headers to trailers.
 */
#ifndef HIVE_GRPC_H
#define HIVE_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

#define GRPC_MAX_MESSAGE (4 * 1024 * 1024) /* request messages above this get RESOURCE_EXHAUSTED */
#define GRPC_FRAME_HEADER 5                /* compressed flag (1 byte) + big-endian length (4) */
#define GRPC_CLOSE_GRACE_MS 1000           /* see grpc_server_close() */

/* The gRPC status codes (grpc/doc/statuscodes.md). */
#define GRPC_STATUS_MAP(X)                                                                                   \
    X(OK, 0)                                                                                                 \
    X(CANCELLED, 1)                                                                                          \
    X(UNKNOWN, 2)                                                                                            \
    X(INVALID_ARGUMENT, 3)                                                                                   \
    X(DEADLINE_EXCEEDED, 4)                                                                                  \
    X(NOT_FOUND, 5)                                                                                          \
    X(ALREADY_EXISTS, 6)                                                                                     \
    X(PERMISSION_DENIED, 7)                                                                                  \
    X(RESOURCE_EXHAUSTED, 8)                                                                                 \
    X(FAILED_PRECONDITION, 9)                                                                                \
    X(ABORTED, 10)                                                                                           \
    X(OUT_OF_RANGE, 11)                                                                                      \
    X(UNIMPLEMENTED, 12)                                                                                     \
    X(INTERNAL, 13)                                                                                          \
    X(UNAVAILABLE, 14)                                                                                       \
    X(DATA_LOSS, 15)                                                                                         \
    X(UNAUTHENTICATED, 16)

typedef enum {
#define X(name, code) GRPC_STATUS_##name = code,
    GRPC_STATUS_MAP(X)
#undef X
} grpc_status_t;

typedef struct grpc_server_s grpc_server_t;
typedef struct grpc_call_s grpc_call_t;

/* A method handler. `req` is the request message, already de-framed, `len`
 * bytes, valid until the handler returns (NULL when `len` is 0). `call` is
 * valid until the handler returns, longer with grpc_call_retain(). A handler
 * that returns without finishing the call and without retaining it has the
 * call finished INTERNAL for it. */
typedef void (*grpc_handler_fn)(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len);

/* ---- server -------------------------------------------------------------- */

/* Listens on `host` (numeric address or name; NULL = "0.0.0.0") and `port`
 * (0 = an ephemeral port, see grpc_server_port()). `metrics` (may be NULL)
 * receives the call metrics and must outlive the server. Returns the server,
 * or NULL with a reason in `err` (nothing to free). A name in `host` is
 * resolved with a blocking getaddrinfo(). Close with grpc_server_close(),
 * then free with grpc_server_destroy(). */
grpc_server_t *grpc_server_create(uv_loop_t *loop, const char *host, int port, metrics_t *metrics, char *err,
                                  size_t errlen);

/* The port actually bound. */
int grpc_server_port(const grpc_server_t *s);

/* Routes calls to `path` ("/neuralhive.optimizer.v1.OptimizerAgent/GetStatistics")
 * to `fn(ctx, ...)`. `path` is copied. Returns 0, or -1 for a path that does
 * not start with '/', a duplicate, or once closing has begun. */
int grpc_register(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *ctx);

/* Like grpc_register, for a bidirectional-streaming method: `fn` runs once
 * per request message as it arrives, while the request stream is still
 * open, and may send responses; it neither finishes nor retains the call.
 * When the client half-closes, a call not yet finished is finished OK. */
int grpc_register_stream(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *ctx);

/* Shuts the server down: closes the listener, sends GOAWAY on every
 * connection and closes each once that is written (or after
 * GRPC_CLOSE_GRACE_MS at the latest). Calls still open are cancelled: they
 * are no longer alive and their sends become no-ops. `done(arg)` (may be
 * NULL) runs on the loop once every handle the server owns is closed (it
 * may call grpc_server_destroy); after that, uv_loop_close() succeeds. Call
 * once; with NULL `s`, calls done(arg) at once. */
void grpc_server_close(grpc_server_t *s, void (*done)(void *), void *arg);

/* Frees the server once grpc_server_close() has completed. A server whose
 * close has not completed still has handles on the loop: it is logged and
 * left allocated. Retained calls stay valid (and dead) until released.
 * Accepts NULL. */
void grpc_server_destroy(grpc_server_t *s);

/* ---- calls --------------------------------------------------------------- */

/* Queues one response message, `len` bytes (copied): exactly once for a
 * unary method, any number of times for a server-streaming one. The first
 * send also sends the response headers. Returns 0, or -1 when the call is
 * not alive (finished, cancelled, connection gone) or out of memory. */
int grpc_call_send(grpc_call_t *c, const uint8_t *msg, size_t len);

/* Ends the call with `status` (a grpc_status_t; others become UNKNOWN) and
 * `message` (may be NULL; sent percent-encoded as grpc-message). The
 * trailers follow the messages already queued. Later calls are no-ops, as
 * is finishing a call that is no longer alive. */
void grpc_call_finish(grpc_call_t *c, int status, const char *message);

/* The registered path of the call's method. Lives as long as `c`. */
const char *grpc_call_method(const grpc_call_t *c);

/* Deferred answers. A handler that answers later takes a reference with
 * grpc_call_retain() and drops it with grpc_call_release() once done. The
 * memory stays valid while referenced; grpc_call_alive() is false once the
 * call is finished, the client has reset the stream, or the connection has
 * closed, and grpc_call_send/finish are then safe no-ops. */
void grpc_call_retain(grpc_call_t *c);
bool grpc_call_alive(const grpc_call_t *c);
void grpc_call_release(grpc_call_t *c);

/* ---- wire helpers (pure; exposed for tests) ------------------------------ */

/* The name of a status code ("NOT_FOUND"), or "INVALID_STATUS". */
const char *grpc_status_name(int status);

/* Writes the 5-byte message prefix: compressed flag, then `len` big-endian. */
void grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER], bool compressed, uint32_t len);

/* Percent-encodes `in` for grpc-message: bytes outside 0x20..0x7E and '%'
 * become "%XX" (upper-case hex). Writes at most `outcap` bytes including a
 * NUL (truncating whole escapes) and returns the length the full encoding
 * needs, like snprintf. */
size_t grpc_percent_encode(const char *in, char *out, size_t outcap);

/* Reassembles length-prefixed messages from a byte stream cut anywhere. */
typedef struct {
    size_t max_len; /* longest message accepted */
    uint8_t hdr[GRPC_FRAME_HEADER];
    size_t hdr_got;
    uint8_t *msg; /* the message being read, `need` bytes */
    size_t need, got;
    int error; /* first error, GRPC_STATUS_OK until then */
} grpc_deframer_t;

/* Called with each complete message; takes ownership of `msg` (free(); NULL
 * when `len` is 0). */
typedef void (*grpc_message_fn)(void *ctx, uint8_t *msg, size_t len);

void grpc_deframer_init(grpc_deframer_t *d, size_t max_len);
/* Frees a partial message. The deframer may be initialised again. */
void grpc_deframer_deinit(grpc_deframer_t *d);

/* Consumes `len` bytes, calling `on_message` for each message completed.
 * Returns GRPC_STATUS_OK, or the error that stops the stream: UNIMPLEMENTED
 * (compressed flag set), INTERNAL (flag byte other than 0 or 1, or out of
 * memory), RESOURCE_EXHAUSTED (length over max_len). After an error, input
 * is ignored and the same error returned. */
int grpc_deframer_feed(grpc_deframer_t *d, const uint8_t *data, size_t len, grpc_message_fn on_message,
                       void *ctx);

/* True when no partial message is buffered (the stream may end here). */
bool grpc_deframer_idle(const grpc_deframer_t *d);

#endif
