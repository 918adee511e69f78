/* grpc: the server. Listener, connections (reads into the nghttp2 session,
 * writes what it produces), method registry and an orderly shutdown. The
 * session callbacks and the calls are in grpc_call.c, the pure wire helpers
 * in grpc_wire.c. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "grpc_internal.h"
#include "listen.h"
#include "log.h"

#define FLUSH_MAX (256 * 1024) /* bytes gathered into one uv_write */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- methods ----------------------------------------------------------------- */

const grpc_method_t *grpc_server_lookup(const grpc_server_t *s, const char *path)
{
    for (size_t i = 0; i < s->nmethods; i++) {
        if (strcmp(s->methods[i]->path, path) == 0) {
            return s->methods[i];
        }
    }
    return NULL;
}

static int add_method(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *ctx, bool stream)
{
    if (!s || !path || path[0] != '/' || !fn || s->closing || grpc_server_lookup(s, path)) {
        return -1;
    }
    grpc_method_t **methods = realloc(s->methods, (s->nmethods + 1) * sizeof(*methods));
    if (!methods) {
        return -1;
    }
    s->methods = methods;
    grpc_method_t *m = malloc(sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return -1;
    }
    m->fn = fn;
    m->ctx = ctx;
    m->stream = stream;
    s->methods[s->nmethods++] = m;
    return 0;
}

int grpc_register(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *ctx)
{
    return add_method(s, path, fn, ctx, false);
}

int grpc_register_stream(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *ctx)
{
    return add_method(s, path, fn, ctx, true);
}

int grpc_server_port(const grpc_server_t *s)
{
    return s->port;
}

/* ---- connections -------------------------------------------------------------- */

typedef struct {
    uv_write_t req;
    grpc_conn_t *conn;
    uint8_t *buf; /* owned until the write callback */
} write_req_t;

static void maybe_finish(grpc_server_t *s);

static void on_conn_closed(uv_handle_t *h)
{
    grpc_conn_t *c = (grpc_conn_t *)h;
    grpc_server_t *s = c->srv;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    if (c->session) {
        nghttp2_session_del(c->session);
    }
    free(c);
    maybe_finish(s);
}

/* Closes the connection. Its calls stop being alive at once; the session
 * and the memory go in the close callback, after any pending write's. */
static void conn_close(grpc_conn_t *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    grpc_conn_detach_calls(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    grpc_conn_t *c = w->conn;
    free(w->buf);
    free(w);
    c->writing = false;
    if (status < 0) {
        conn_close(c);
        return;
    }
    grpc_conn_flush(c);
}

/* One write at a time: while it is in flight nghttp2 keeps the frames (and
 * its data sources their messages), so a slow reader holds back the
 * session rather than filling our memory. */
void grpc_conn_flush(grpc_conn_t *c)
{
    if (c->closing || c->in_recv || c->writing) {
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    while (len < FLUSH_MAX) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            log_warn("grpc: HTTP/2 session failed", "error", nghttp2_strerror((int)n));
            free(buf);
            conn_close(c);
            return;
        }
        if (n == 0) {
            break;
        }
        if (len + (size_t)n > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            while (ncap < len + (size_t)n) {
                ncap *= 2;
            }
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                conn_close(c);
                return;
            }
            buf = nbuf;
            cap = ncap;
        }
        memcpy(buf + len, data, (size_t)n);
        len += (size_t)n;
    }
    if (len == 0) {
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
            conn_close(c); /* GOAWAY exchanged, or a protocol error answered */
        }
        return;
    }
    write_req_t *w = malloc(sizeof(*w));
    if (!w) {
        free(buf);
        conn_close(c);
        return;
    }
    w->conn = c;
    w->buf = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(buf);
        free(w);
        conn_close(c);
        return;
    }
    c->writing = true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    grpc_conn_t *c = (grpc_conn_t *)h;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    grpc_conn_t *c = (grpc_conn_t *)stream;
    if (nread == 0 || c->closing) {
        return;
    }
    if (nread < 0) {
        conn_close(c); /* EOF or error: the peer is gone */
        return;
    }
    c->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(c->session, (const uint8_t *)buf->base, (size_t)nread);
    c->in_recv = false;
    if (rv < 0) {
        /* A bad preface (NGHTTP2_ERR_BAD_CLIENT_MAGIC) or a fatal error:
         * nothing worth answering. Protocol errors nghttp2 answers itself
         * with GOAWAY, and the flush closes once that is written. */
        log_debug("grpc: closing connection", "error", nghttp2_strerror((int)rv));
        conn_close(c);
        return;
    }
    grpc_conn_flush(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    grpc_server_t *s = listener->data;
    if (status < 0) {
        log_warn("grpc: accept failed", "error", uv_strerror(status));
        return;
    }
    grpc_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("grpc: out of memory accepting a connection");
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    c->srv = s;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || grpc_session_start(c) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    grpc_conn_flush(c); /* our SETTINGS */
}

/* ---- set-up --------------------------------------------------------------------- */

/* Frees what the server owns and the server; its handles must be closed. */
static void free_server(grpc_server_t *s)
{
    for (size_t i = 0; i < s->nmethods; i++) {
        free(s->methods[i]->path);
        free(s->methods[i]);
    }
    free(s->methods);
    nghttp2_session_callbacks_del(s->callbacks);
    free(s);
}

static void on_failed_listener_closed(uv_handle_t *h)
{
    free_server(h->data);
}

grpc_server_t *grpc_server_create(uv_loop_t *loop, const char *host, int port, metrics_t *metrics, char *err,
                                  size_t errlen)
{
    if (listen_prepare("grpc", loop, &host, port, err, errlen) != 0) {
        return NULL;
    }
    grpc_server_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->callbacks = grpc_session_callbacks())) {
        set_err(err, errlen, "grpc: out of memory");
        free(s);
        return NULL;
    }
    s->loop = loop;
    if (metrics) {
        s->m_requests = metrics_counter(metrics, "grpc_requests_total",
                                        "gRPC calls answered, by method and status.", "method,code");
        s->m_duration =
            metrics_histogram(metrics, "grpc_request_duration_seconds",
                              "Time from a call's request headers to its status.", "method", NULL, 0);
    }
    int fd = listen_open("grpc", host, port, &s->port, err, errlen);
    if (fd < 0) {
        free_server(s);
        return NULL;
    }
    int rc = listen_start(loop, &s->listener, fd, on_accept);
    s->listener.data = s;
    if (rc != 0) {
        /* The handle exists, so `s` is freed by its close callback. */
        set_err(err, errlen, "grpc: cannot watch the listening socket: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return NULL;
    }
    uv_timer_init(loop, &s->grace_timer);
    s->grace_timer.data = s;
    return s;
}

/* ---- shutdown ------------------------------------------------------------------------
 *
 *   1. Close the listener; on every connection let nghttp2 terminate the
 *      session (GOAWAY, NO_ERROR). Open calls are cancelled.
 *   2. A connection closes once the GOAWAY is written (the flush sees a
 *      session that wants neither to read nor to write), or when the peer
 *      hangs up; after GRPC_CLOSE_GRACE_MS the rest are closed regardless.
 *   3. With the listener and every connection closed, close the grace
 *      timer; its close callback marks the server closed and calls done.
 */

static void on_timer_closed(uv_handle_t *h)
{
    grpc_server_t *s = h->data;
    s->closed = true;
    if (s->done) {
        s->done(s->done_arg);
    }
}

static void maybe_finish(grpc_server_t *s)
{
    if (!s->closing || s->disposing || !s->listener_closed || s->nconns > 0) {
        return;
    }
    s->disposing = true;
    uv_close((uv_handle_t *)&s->grace_timer, on_timer_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
    grpc_server_t *s = h->data;
    s->listener_closed = true;
    maybe_finish(s);
}

static void on_grace_timeout(uv_timer_t *t)
{
    grpc_server_t *s = t->data;
    for (grpc_conn_t *c = s->conns; c; c = c->next) {
        conn_close(c);
    }
}

void grpc_server_close(grpc_server_t *s, void (*done)(void *), void *arg)
{
    if (!s) {
        if (done) {
            done(arg);
        }
        return;
    }
    if (s->closing) {
        return;
    }
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (grpc_conn_t *c = s->conns; c; c = c->next) {
        grpc_conn_detach_calls(c);
        nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
        grpc_conn_flush(c);
    }
    uv_timer_start(&s->grace_timer, on_grace_timeout, GRPC_CLOSE_GRACE_MS, 0);
}

void grpc_server_destroy(grpc_server_t *s)
{
    if (!s) {
        return;
    }
    if (!s->closed) {
        log_error("grpc: server destroyed before its close completed; leaving it allocated");
        return;
    }
    free_server(s);
}
