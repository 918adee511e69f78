/* grpc: what grpc.c (listener, connections, shutdown) and grpc_call.c (the
 * HTTP/2 session and the calls on it) share. Not for use outside common/grpc*. */
#ifndef HIVE_GRPC_INTERNAL_H
#define HIVE_GRPC_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "grpc.h"

typedef struct {
    char *path;
    grpc_handler_fn fn;
    void *ctx;
    bool stream; /* bidirectional: fn per request message */
} grpc_method_t;

typedef struct grpc_conn_s grpc_conn_t;

/* One accepted connection and its nghttp2 server session. Freed in the
 * handle's close callback; `session` lives until then. */
struct grpc_conn_s {
    uv_tcp_t tcp; /* first: the handle's close callback casts back */
    grpc_server_t *srv;
    nghttp2_session *session;
    grpc_conn_t *prev, *next;
    grpc_call_t *calls; /* streams open on this connection */
    bool in_recv;       /* inside nghttp2_session_mem_recv(): do not call mem_send */
    bool writing;       /* a uv_write is in flight */
    bool closing;       /* uv_close called */
    uint8_t rbuf[16384];
};

struct grpc_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace_timer;
    int port;
    nghttp2_session_callbacks *callbacks;
    grpc_method_t **methods;
    size_t nmethods;
    grpc_conn_t *conns;
    size_t nconns;
    metric_t *m_requests, *m_duration;
    bool closing, listener_closed, disposing, closed;
    void (*done)(void *);
    void *done_arg;
};

/* One call: an HTTP/2 stream. Referenced by its stream until the stream
 * closes (or the connection does) and by each grpc_call_retain(). */
struct grpc_call_s {
    grpc_conn_t *conn; /* NULL once the stream is gone */
    grpc_call_t *prev, *next;
    int32_t stream_id;
    int refs;
    uint64_t start_ns;
    metric_t *m_requests, *m_duration;
    /* request */
    char *path;                  /* :path as received */
    const grpc_method_t *method; /* NULL: not resolved (yet) or unknown */
    bool is_post, grpc_ctype;    /* :method POST, content-type application/grpc */
    bool headers_done, dispatched;
    grpc_deframer_t deframer;
    uint8_t *req;
    size_t req_len;
    int nreq;
    /* response */
    bool headers_sent; /* response HEADERS submitted */
    bool finished;     /* status decided; trailers follow the queued data */
    bool deferred;     /* the data source answered NGHTTP2_ERR_DEFERRED */
    int status;
    char *message; /* grpc-message, percent-encoded, or NULL */
    uint8_t *out;  /* framed messages not yet taken by nghttp2 */
    size_t out_off, out_len, out_cap;
};

/* grpc.c */
/* Writes what nghttp2 has to send, unless a write is already in flight (its
 * callback flushes again) or the session is inside mem_recv (the read path
 * flushes after). Closes the connection when the session is done. */
void grpc_conn_flush(grpc_conn_t *c);

/* grpc_call.c */
/* The session callbacks, shared by every connection of a server. */
nghttp2_session_callbacks *grpc_session_callbacks(void);
/* Creates the connection's server session and queues our SETTINGS. */
int grpc_session_start(grpc_conn_t *c);
/* The connection is closing: every call on it stops being alive (unfinished
 * ones count as CANCELLED) and loses its stream reference. */
void grpc_conn_detach_calls(grpc_conn_t *c);
/* The method registered for `path`, or NULL. */
const grpc_method_t *grpc_server_lookup(const grpc_server_t *s, const char *path);

#endif
