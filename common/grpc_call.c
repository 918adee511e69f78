/* grpc: the HTTP/2 session of one connection and the calls on it.
 *
 * nghttp2 parses frames inside nghttp2_session_mem_recv() and calls back
 * here: a call is created when a stream's request HEADERS begin, routed when
 * they end, fed DATA, and dispatched to its handler when the client
 * half-closes. Responses are submitted to the session (allowed inside those
 * callbacks) and leave when grpc.c flushes the session after mem_recv, or at
 * once for a call answered later from another loop callback.
 *
 * Response messages queue in the call's `out` buffer; the stream's data
 * source hands them to nghttp2 as the flow-control window allows, answers
 * NGHTTP2_ERR_DEFERRED when the buffer is empty, and is resumed by the next
 * send or the finish. Once the buffer is empty and the call is finished, it
 * ends the DATA without END_STREAM and submits the trailers, which carry it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_internal.h"
#include "log.h"

#define MAX_CONCURRENT_STREAMS 100
#define MAX_PATH_LEN 1024
#define GRPC_CTYPE "application/grpc"

#define NV(name, value, valuelen)                                                                            \
    {                                                                                                        \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, (valuelen), NGHTTP2_NV_FLAG_NONE            \
    }

static void finish_call(grpc_call_t *c, int status, const char *message);

/* ---- call lifetime --------------------------------------------------------- */

static void call_free(grpc_call_t *c)
{
    grpc_deframer_deinit(&c->deframer);
    free(c->path);
    free(c->req);
    free(c->message);
    free(c->out);
    free(c);
}

void grpc_call_retain(grpc_call_t *c)
{
    c->refs++;
}

void grpc_call_release(grpc_call_t *c)
{
    if (c && --c->refs == 0) {
        call_free(c);
    }
}

bool grpc_call_alive(const grpc_call_t *c)
{
    return c->conn != NULL && !c->finished;
}

const char *grpc_call_method(const grpc_call_t *c)
{
    /* The call's own copy of :path, which outlives the server's registry. */
    return c->method ? c->path : "unknown";
}

static void record(grpc_call_t *c, int status)
{
    const char *method = grpc_call_method(c);
    if (c->m_requests) {
        metric_add(c->m_requests, 1, method, grpc_status_name(status));
    }
    if (c->m_duration) {
        metric_observe(c->m_duration, (double)(uv_hrtime() - c->start_ns) / 1e9, method);
    }
}

/* The stream is gone (closed, reset, or its connection closing): the call
 * stops being alive and drops the stream's reference. */
static void detach(grpc_call_t *c)
{
    grpc_conn_t *conn = c->conn;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        conn->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    nghttp2_session_set_stream_user_data(conn->session, c->stream_id, NULL);
    c->conn = NULL;
    /* A call whose request was complete but never answered was cancelled by
     * the client (RST_STREAM) or lost with its connection. */
    if (!c->finished && c->headers_done && c->method) {
        c->finished = true;
        record(c, GRPC_STATUS_CANCELLED);
    }
    grpc_call_release(c);
}

void grpc_conn_detach_calls(grpc_conn_t *conn)
{
    while (conn->calls) {
        detach(conn->calls);
    }
}

/* Flushes the connection unless nghttp2 is calling us (it flushes after). */
static void kick(grpc_call_t *c)
{
    if (c->conn) {
        grpc_conn_flush(c->conn);
    }
}

/* ---- responses ------------------------------------------------------------ */

static ssize_t read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)source;
    (void)user_data;
    /* Looked up rather than taken from source->ptr: a call detached by
     * grpc_server_close() may be freed while nghttp2 still holds the item. */
    grpc_call_t *c = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!c) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    size_t avail = c->out_len - c->out_off;
    if (avail > 0) {
        size_t n = avail < length ? avail : length;
        memcpy(buf, c->out + c->out_off, n);
        c->out_off += n;
        if (c->out_off == c->out_len) {
            c->out_off = c->out_len = 0;
        }
        return (ssize_t)n;
    }
    if (!c->finished) {
        c->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    /* Everything sent: the trailers end the stream. */
    char status[16];
    int slen = snprintf(status, sizeof(status), "%d", c->status);
    nghttp2_nv trailers[] = {
        NV("grpc-status", status, (size_t)slen),
        NV("grpc-message", c->message ? c->message : "", c->message ? strlen(c->message) : 0),
    };
    size_t ntrailers = c->message ? 2 : 1;
    if (nghttp2_submit_trailer(session, stream_id, trailers, ntrailers) != 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return 0;
}

/* Submits ":status 200, content-type" with the data source attached. */
static int start_response(grpc_call_t *c)
{
    nghttp2_nv headers[] = {
        NV(":status", "200", 3),
        NV("content-type", GRPC_CTYPE, sizeof(GRPC_CTYPE) - 1),
    };
    nghttp2_data_provider provider = {.source.ptr = NULL, .read_callback = read_data};
    if (nghttp2_submit_response(c->conn->session, c->stream_id, headers, 2, &provider) != 0) {
        return -1;
    }
    c->headers_sent = true;
    return 0;
}

static void resume(grpc_call_t *c)
{
    if (c->deferred) {
        c->deferred = false;
        nghttp2_session_resume_data(c->conn->session, c->stream_id);
    }
}

int grpc_call_send(grpc_call_t *c, const uint8_t *msg, size_t len)
{
    if (!c || !grpc_call_alive(c) || len > UINT32_MAX || (len > 0 && !msg)) {
        return -1;
    }
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    size_t need = c->out_len + GRPC_FRAME_HEADER + len;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < need) {
            cap *= 2;
        }
        uint8_t *out = realloc(c->out, cap);
        if (!out) {
            return -1;
        }
        c->out = out;
        c->out_cap = cap;
    }
    grpc_frame_header(c->out + c->out_len, false, (uint32_t)len);
    if (len > 0) {
        memcpy(c->out + c->out_len + GRPC_FRAME_HEADER, msg, len);
    }
    c->out_len = need;
    if (!c->headers_sent) {
        if (start_response(c) != 0) {
            c->out_len -= GRPC_FRAME_HEADER + len;
            return -1;
        }
    } else {
        resume(c);
    }
    kick(c);
    return 0;
}

/* Ends the call; see grpc_call_finish(). Does not flush. */
static void finish_call(grpc_call_t *c, int status, const char *message)
{
    if (!grpc_call_alive(c)) {
        return;
    }
    if (status < GRPC_STATUS_OK || status > GRPC_STATUS_UNAUTHENTICATED) {
        status = GRPC_STATUS_UNKNOWN;
    }
    c->finished = true;
    c->status = status;
    record(c, status);
    if (message && *message) {
        size_t n = grpc_percent_encode(message, NULL, 0);
        c->message = malloc(n + 1);
        if (c->message) {
            grpc_percent_encode(message, c->message, n + 1);
        }
    }
    if (c->headers_sent) {
        resume(c); /* read_data submits the trailers once the queue is empty */
        return;
    }
    /* Trailers-only: one HEADERS frame carrying everything, END_STREAM. */
    char st[16];
    int slen = snprintf(st, sizeof(st), "%d", status);
    nghttp2_nv headers[] = {
        NV(":status", "200", 3),
        NV("content-type", GRPC_CTYPE, sizeof(GRPC_CTYPE) - 1),
        NV("grpc-status", st, (size_t)slen),
        NV("grpc-message", c->message ? c->message : "", c->message ? strlen(c->message) : 0),
    };
    c->headers_sent = true;
    if (nghttp2_submit_response(c->conn->session, c->stream_id, headers, c->message ? 4 : 3, NULL) != 0) {
        nghttp2_submit_rst_stream(c->conn->session, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_INTERNAL_ERROR);
    }
}

void grpc_call_finish(grpc_call_t *c, int status, const char *message)
{
    if (!c) {
        return;
    }
    finish_call(c, status, message);
    kick(c);
}

/* Not a gRPC request at all: a bare HTTP status, END_STREAM. */
static void reject_http(grpc_call_t *c, const char *status)
{
    nghttp2_nv headers[] = {NV(":status", status, strlen(status))};
    c->finished = c->headers_sent = true;
    nghttp2_submit_response(c->conn->session, c->stream_id, headers, 1, NULL);
}

/* ---- requests ------------------------------------------------------------- */

static void on_request_message(void *ctx, uint8_t *msg, size_t len)
{
    grpc_call_t *c = ctx;
    if (c->method && c->method->stream) {
        /* Our own reference: the handler may close the server. */
        grpc_call_retain(c);
        if (grpc_call_alive(c) && !c->finished) {
            c->method->fn(c->method->ctx, c, msg, len);
        }
        free(msg);
        grpc_call_release(c);
        return;
    }
    if (c->nreq++ == 0) {
        c->req = msg;
        c->req_len = len;
    } else {
        free(msg);
    }
}

/* The request HEADERS are complete: decide whether this is a call we serve. */
static void route(grpc_call_t *c)
{
    c->headers_done = true;
    if (!c->is_post) {
        reject_http(c, "405");
        return;
    }
    if (!c->grpc_ctype) {
        reject_http(c, "415");
        return;
    }
    c->method = c->path ? grpc_server_lookup(c->conn->srv, c->path) : NULL;
    if (!c->method) {
        char msg[MAX_PATH_LEN + 32];
        snprintf(msg, sizeof(msg), "unknown method %s", c->path ? c->path : "(none)");
        finish_call(c, GRPC_STATUS_UNIMPLEMENTED, msg);
    }
}

/* The client half-closed: run the handler with the one request message. */
static void dispatch(grpc_call_t *c)
{
    if (!grpc_deframer_idle(&c->deframer)) {
        finish_call(c, GRPC_STATUS_INTERNAL, "the request ends inside a message");
        return;
    }
    if (c->method->stream) {
        c->dispatched = true;
        finish_call(c, GRPC_STATUS_OK, NULL);
        return;
    }
    if (c->nreq != 1) {
        finish_call(c, GRPC_STATUS_INTERNAL,
                    c->nreq == 0 ? "no request message" : "more than one request message");
        return;
    }
    c->dispatched = true;
    uint8_t *req = c->req;
    size_t len = c->req_len;
    c->req = NULL;
    /* Our own reference: the handler may close the server, which detaches
     * the call from its stream. */
    grpc_call_retain(c);
    c->method->fn(c->method->ctx, c, req, len);
    free(req);
    /* Only the stream's reference (and ours) is left: nobody will answer. */
    if (grpc_call_alive(c) && c->refs == 2) {
        log_warn("grpc: handler neither finished nor retained the call", "method", c->path);
        finish_call(c, GRPC_STATUS_INTERNAL, "the handler did not answer");
    }
    grpc_call_release(c);
}

static grpc_call_t *stream_call(nghttp2_session *session, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    grpc_conn_t *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    grpc_call_t *c = calloc(1, sizeof(*c));
    if (!c) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    }
    c->conn = conn;
    c->stream_id = frame->hd.stream_id;
    c->refs = 1; /* the stream's */
    c->start_ns = uv_hrtime();
    c->m_requests = conn->srv->m_requests;
    c->m_duration = conn->srv->m_duration;
    grpc_deframer_init(&c->deframer, GRPC_MAX_MESSAGE);
    nghttp2_session_set_stream_user_data(session, c->stream_id, c);
    c->next = conn->calls;
    if (conn->calls) {
        conn->calls->prev = c;
    }
    conn->calls = c;
    return 0;
}

static bool is_grpc_ctype(const uint8_t *v, size_t len)
{
    size_t n = sizeof(GRPC_CTYPE) - 1;
    return len >= n && memcmp(v, GRPC_CTYPE, n) == 0 && (len == n || v[n] == '+' || v[n] == ';');
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    grpc_call_t *c = stream_call(session, frame->hd.stream_id);
    if (!c || c->headers_done) {
        return 0; /* trailers from the client: nothing we use */
    }
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        c->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0 && valuelen <= MAX_PATH_LEN) {
        free(c->path);
        c->path = strndup((const char *)value, valuelen);
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        c->grpc_ctype = is_grpc_ctype(value, valuelen);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    grpc_call_t *c = stream_call(session, stream_id);
    if (!c || c->finished || c->dispatched || !c->headers_done) {
        return 0; /* answered already: the rest of the request is dropped */
    }
    int err = grpc_deframer_feed(&c->deframer, data, len, on_request_message, c);
    if (err == GRPC_STATUS_UNIMPLEMENTED) {
        finish_call(c, err, "compressed requests are not supported");
    } else if (err == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request message larger than %d bytes", GRPC_MAX_MESSAGE);
        finish_call(c, err, msg);
    } else if (err != GRPC_STATUS_OK) {
        finish_call(c, err, "malformed request message");
    } else if (c->nreq > 1) {
        finish_call(c, GRPC_STATUS_INTERNAL, "more than one request message");
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    grpc_call_t *c = stream_call(session, frame->hd.stream_id);
    if (!c) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        route(c);
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !c->finished) {
        dispatch(c);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    (void)error_code;
    (void)user_data;
    grpc_call_t *c = stream_call(session, stream_id);
    if (c) {
        detach(c);
    }
    return 0;
}

nghttp2_session_callbacks *grpc_session_callbacks(void)
{
    nghttp2_session_callbacks *cbs = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    return cbs;
}

int grpc_session_start(grpc_conn_t *conn)
{
    if (nghttp2_session_server_new(&conn->session, conn->srv->callbacks, conn) != 0) {
        conn->session = NULL;
        return -1;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS},
    };
    return nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 1) == 0 ? 0 : -1;
}
