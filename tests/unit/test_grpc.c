/* grpc: the pure wire helpers, then the server on a real loop driven by an
 * independent client (nghttp2's client session over a blocking socket) in a
 * thread. The client records what it saw; assertions run on the main thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "grpc.h"
#include "log.h"

/* ---- wire helpers ------------------------------------------------------------ */

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(grpc_status_name(GRPC_STATUS_OK), "OK");
    assert_string_equal(grpc_status_name(5), "NOT_FOUND");
    assert_string_equal(grpc_status_name(GRPC_STATUS_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(grpc_status_name(12), "UNIMPLEMENTED");
    assert_string_equal(grpc_status_name(16), "UNAUTHENTICATED");
    assert_int_equal(GRPC_STATUS_DATA_LOSS, 15);
    assert_string_equal(grpc_status_name(17), "INVALID_STATUS");
    assert_string_equal(grpc_status_name(-1), "INVALID_STATUS");
}

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[GRPC_FRAME_HEADER];
    grpc_frame_header(h, false, 0x01020304);
    assert_memory_equal(h, "\x00\x01\x02\x03\x04", 5);
    grpc_frame_header(h, true, 7);
    assert_memory_equal(h, "\x01\x00\x00\x00\x07", 5);
}

typedef struct {
    int n;
    size_t len[8];
    char msg[8][64];
} collected_t;

static void collect(void *ctx, uint8_t *msg, size_t len)
{
    collected_t *c = ctx;
    if (c->n < 8 && len < sizeof(c->msg[0])) {
        memcpy(c->msg[c->n], msg ? (const char *)msg : "", len);
        c->msg[c->n][len] = '\0';
        c->len[c->n] = len;
    }
    c->n++;
    free(msg);
}

/* Two messages (one empty) and a third, fed cut at every position. */
static void test_deframer_reassembles(void **state)
{
    (void)state;
    const uint8_t stream[] = "\x00\x00\x00\x00\x05hello"
                             "\x00\x00\x00\x00\x00"
                             "\x00\x00\x00\x00\x02hi";
    size_t total = sizeof(stream) - 1;
    for (size_t cut = 0; cut <= total; cut++) {
        grpc_deframer_t d;
        collected_t got = {0};
        grpc_deframer_init(&d, 100);
        assert_true(grpc_deframer_idle(&d));
        assert_int_equal(grpc_deframer_feed(&d, stream, cut, collect, &got), GRPC_STATUS_OK);
        assert_int_equal(grpc_deframer_feed(&d, stream + cut, total - cut, collect, &got), GRPC_STATUS_OK);
        assert_int_equal(got.n, 3);
        assert_string_equal(got.msg[0], "hello");
        assert_int_equal(got.len[1], 0);
        assert_string_equal(got.msg[2], "hi");
        assert_true(grpc_deframer_idle(&d));
        grpc_deframer_deinit(&d);
    }
    /* One byte at a time, and a partial message left when the stream ends. */
    grpc_deframer_t d;
    collected_t got = {0};
    grpc_deframer_init(&d, 100);
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(grpc_deframer_feed(&d, stream + i, 1, collect, &got), GRPC_STATUS_OK);
    }
    assert_int_equal(got.n, 1);
    assert_false(grpc_deframer_idle(&d));
    grpc_deframer_deinit(&d); /* frees the partial message */
}

static void test_deframer_errors(void **state)
{
    (void)state;
    grpc_deframer_t d;
    collected_t got = {0};

    grpc_deframer_init(&d, 100);
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x01\x00\x00\x00\x01x", 6, collect, &got),
                     GRPC_STATUS_UNIMPLEMENTED);
    /* Sticky: later input is ignored. */
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x00\x00\x00\x00\x00", 5, collect, &got),
                     GRPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(got.n, 0);
    grpc_deframer_deinit(&d);

    grpc_deframer_init(&d, 100);
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x00\x00\x00\x00\x65", 5, collect, &got),
                     GRPC_STATUS_RESOURCE_EXHAUSTED); /* 101 > 100 */
    grpc_deframer_deinit(&d);

    grpc_deframer_init(&d, 100);
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x00\x00\x00\x00\x64", 5, collect, &got),
                     GRPC_STATUS_OK); /* exactly 100 is fine */
    grpc_deframer_deinit(&d);

    grpc_deframer_init(&d, GRPC_MAX_MESSAGE);
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x00\xff\xff\xff\xff", 5, collect, &got),
                     GRPC_STATUS_RESOURCE_EXHAUSTED);
    grpc_deframer_deinit(&d);

    grpc_deframer_init(&d, 100);
    assert_int_equal(grpc_deframer_feed(&d, (const uint8_t *)"\x07\x00\x00\x00\x00", 5, collect, &got),
                     GRPC_STATUS_INTERNAL);
    grpc_deframer_deinit(&d);
    assert_int_equal(got.n, 0);
}

static void test_percent_encode(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(grpc_percent_encode("plain text: ok!", out, sizeof(out)), 15);
    assert_string_equal(out, "plain text: ok!");
    assert_int_equal(grpc_percent_encode("100%\n", out, sizeof(out)), 9);
    assert_string_equal(out, "100%25%0A");
    assert_int_equal(grpc_percent_encode("caf\xc3\xa9", out, sizeof(out)), 9);
    assert_string_equal(out, "caf%C3%A9");
    assert_int_equal(grpc_percent_encode("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* Truncation keeps escapes whole and reports the full length. */
    assert_int_equal(grpc_percent_encode("ab%cd", out, 5), 7);
    assert_string_equal(out, "ab");
    assert_int_equal(grpc_percent_encode("ab%cd", NULL, 0), 7);
}

/* ---- client: nghttp2's client session over a blocking socket ----------------- */

#define MAX_MSGS 8
#define BODY_MAX (512 * 1024)

typedef struct {
    /* request */
    const char *path;
    const char *content_type;
    uint8_t body[64];
    size_t body_len, body_off, chunk; /* chunk: most bytes per DATA frame */
    bool rst_on_data;                 /* reset the stream on the first response DATA */
    /* response */
    int32_t stream_id;
    bool closed;
    uint32_t close_code;
    int http_status;
    char content_type_seen[64];
    int grpc_status; /* -1: none */
    char grpc_message[256];
    bool trailers_only; /* grpc-status came in the response HEADERS */
    uint8_t *data;      /* the DATA bytes, BODY_MAX at most */
    size_t data_len;
} rpc_t;

typedef struct {
    int fd;
    nghttp2_session *session;
    bool goaway, eof;
} client_t;

static void rpc_init(rpc_t *r, const char *path, const char *msg)
{
    memset(r, 0, sizeof(*r));
    r->path = path;
    r->content_type = "application/grpc";
    r->grpc_status = -1;
    r->chunk = 1 << 20;
    r->data = malloc(BODY_MAX);
    if (msg) {
        size_t len = strlen(msg);
        grpc_frame_header(r->body, false, (uint32_t)len);
        memcpy(r->body + GRPC_FRAME_HEADER, msg, len);
        r->body_len = GRPC_FRAME_HEADER + len;
    }
}

static void rpc_raw_body(rpc_t *r, const void *raw, size_t len)
{
    memcpy(r->body, raw, len);
    r->body_len = len;
}

static void rpc_deinit(rpc_t *r)
{
    free(r->data);
    r->data = NULL;
}

/* Splits the response DATA into messages; returns their count. */
static int rpc_messages(const rpc_t *r, char out[MAX_MSGS][128])
{
    int n = 0;
    size_t off = 0;
    while (off + GRPC_FRAME_HEADER <= r->data_len && n < MAX_MSGS) {
        const uint8_t *h = r->data + off;
        size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        if (h[0] != 0 || off + GRPC_FRAME_HEADER + len > r->data_len) {
            return -1;
        }
        size_t keep = len < 127 ? len : 127;
        memcpy(out[n], h + GRPC_FRAME_HEADER, keep);
        out[n][keep] = '\0';
        n++;
        off += GRPC_FRAME_HEADER + len;
    }
    return off == r->data_len ? n : -1;
}

static ssize_t client_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user_data)
{
    (void)s;
    (void)flags;
    client_t *cl = user_data;
    ssize_t n = send(cl->fd, data, len, MSG_NOSIGNAL);
    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static void copy_value(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int client_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                            void *user_data)
{
    (void)flags;
    (void)user_data;
    rpc_t *r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!r) {
        return 0;
    }
    char v[256];
    copy_value(v, sizeof(v), value, valuelen);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        r->http_status = atoi(v);
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        copy_value(r->content_type_seen, sizeof(r->content_type_seen), value, valuelen);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        r->grpc_status = atoi(v);
        r->trailers_only = frame->headers.cat == NGHTTP2_HCAT_RESPONSE;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        copy_value(r->grpc_message, sizeof(r->grpc_message), value, valuelen);
    }
    return 0;
}

static int client_on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                          size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    rpc_t *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (r && r->data_len + len <= BODY_MAX) {
        memcpy(r->data + r->data_len, data, len);
        r->data_len += len;
    }
    if (r && r->rst_on_data) {
        r->rst_on_data = false;
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    }
    return 0;
}

static int client_on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *user_data)
{
    (void)s;
    client_t *cl = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        cl->goaway = true;
    }
    return 0;
}

static int client_on_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user_data)
{
    (void)user_data;
    rpc_t *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (r) {
        r->closed = true;
        r->close_code = error_code;
    }
    return 0;
}

static ssize_t client_read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                                uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)s;
    (void)stream_id;
    (void)user_data;
    rpc_t *r = source->ptr;
    size_t n = r->body_len - r->body_off;
    n = n < length ? n : length;
    n = n < r->chunk ? n : r->chunk;
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    if (r->body_off == r->body_len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int client_connect(client_t *cl, int port)
{
    memset(cl, 0, sizeof(*cl));
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (cl->fd < 0 || connect(cl->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, client_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, client_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, client_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_on_close);
    nghttp2_session_client_new(&cl->session, cbs, cl);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(cl->session, NGHTTP2_FLAG_NONE, NULL, 0);
    return 0;
}

static void client_close(client_t *cl)
{
    nghttp2_session_del(cl->session);
    if (cl->fd >= 0) {
        close(cl->fd);
    }
}

/* Sends what is queued, then reads once. Returns -1 at EOF or timeout. */
static int client_pump(client_t *cl)
{
    if (nghttp2_session_send(cl->session) != 0) {
        return -1;
    }
    uint8_t buf[16384];
    ssize_t n = recv(cl->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        cl->eof = true;
        return -1;
    }
    if (nghttp2_session_mem_recv(cl->session, buf, (size_t)n) < 0) {
        return -1;
    }
    return nghttp2_session_send(cl->session) == 0 ? 0 : -1;
}

static void client_start(client_t *cl, rpc_t *r)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":authority", (uint8_t *)"127.0.0.1", 10, 9, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)r->path, 5, strlen(r->path), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)r->content_type, 12, strlen(r->content_type),
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider body = {.source.ptr = r, .read_callback = client_read_body};
    r->stream_id = nghttp2_submit_request(cl->session, NULL, nva, 6, &body, r);
}

/* One call on the connection, until its stream closes. */
static void client_call(client_t *cl, rpc_t *r)
{
    client_start(cl, r);
    while (!r->closed && client_pump(cl) == 0) {
    }
}

/* ---- fixture --------------------------------------------------------------------- */

typedef struct fixture_s {
    uv_loop_t loop;
    metrics_t *metrics;
    grpc_server_t *srv;
    int port;
    uv_async_t stop;
    atomic_bool stop_sent;
    bool closed;
    void (*script)(struct fixture_s *f);
    /* what the client saw */
    rpc_t rpc[12];
    bool goaway, eof, garbage_closed, garbage_goaway;
    /* deferred calls, on the loop thread */
    uv_timer_t timer;
    grpc_call_t *held;
    bool held_alive_at_poll;
    int held_send_rc;
    int polls;
    atomic_bool cancel_seen; /* on_poll_cancelled has run its course */
} fixture_t;

static void signal_stop(fixture_t *f)
{
    if (!atomic_exchange(&f->stop_sent, true)) {
        uv_async_send(&f->stop);
    }
}

static void script_main(void *arg)
{
    fixture_t *f = arg;
    f->script(f);
    signal_stop(f);
}

static void on_server_closed(void *arg)
{
    fixture_t *f = arg;
    f->closed = true;
    uv_close((uv_handle_t *)&f->timer, NULL);
}

static void on_stop(uv_async_t *a)
{
    fixture_t *f = a->data;
    grpc_server_close(f->srv, on_server_closed, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void fixture_start(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    log_init("test_grpc", LOG_ERROR);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->metrics = metrics_create();
    char err[256] = "";
    f->srv = grpc_server_create(&f->loop, "127.0.0.1", 0, f->metrics, err, sizeof(err));
    assert_non_null(f->srv);
    f->port = grpc_server_port(f->srv);
    assert_true(f->port > 0);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
}

/* Runs `script` in a client thread; when it returns (or calls signal_stop)
 * the server is closed. The loop must then end on its own, with no handle
 * left. */
static void fixture_run(fixture_t *f, void (*script)(fixture_t *f))
{
    f->script = script;
    assert_int_equal(uv_async_init(&f->loop, &f->stop, on_stop), 0);
    f->stop.data = f;
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, script_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_thread_join(&th);
    assert_true(f->closed);
    grpc_server_destroy(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void fixture_end(fixture_t *f)
{
    for (size_t i = 0; i < sizeof(f->rpc) / sizeof(f->rpc[0]); i++) {
        rpc_deinit(&f->rpc[i]);
    }
    metrics_destroy(f->metrics);
    free(f);
}

static double requests(fixture_t *f, const char *method, const char *code)
{
    metric_t *m = metrics_counter(f->metrics, "grpc_requests_total", "", "method,code");
    return metric_value(m, method, code);
}

/* ---- handlers ----------------------------------------------------------------------- */

static void h_unary(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    char out[128];
    int n = snprintf(out, sizeof(out), "echo:%.*s", (int)len, (const char *)req);
    assert_int_equal(grpc_call_send(call, (const uint8_t *)out, (size_t)n), 0);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
    /* Finished: further sends are refused. */
    assert_int_equal(grpc_call_send(call, (const uint8_t *)"x", 1), -1);
}

static void h_stream(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    int count = len > 0 ? req[0] - '0' : 0;
    for (int i = 0; i < count; i++) {
        char out[16];
        int n = snprintf(out, sizeof(out), "msg-%d", i);
        grpc_call_send(call, (const uint8_t *)out, (size_t)n);
    }
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Three 100 KiB messages: more than the peer's initial window, so nghttp2
 * must defer and resume the data as WINDOW_UPDATEs come. */
static void h_big(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    (void)req;
    (void)len;
    size_t n = 100 * 1024;
    uint8_t *buf = malloc(n);
    for (int i = 0; i < 3; i++) {
        memset(buf, 'a' + i, n);
        grpc_call_send(call, buf, n);
    }
    free(buf);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void h_not_found(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    (void)req;
    (void)len;
    grpc_call_finish(call, GRPC_STATUS_NOT_FOUND, "optimization 42 not found: 100% gone\n");
}

static void h_forgetful(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)ctx;
    (void)call;
    (void)req;
    (void)len; /* neither finishes nor retains: the server answers INTERNAL */
}

static void on_later(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->held_alive_at_poll = grpc_call_alive(f->held);
    grpc_call_send(f->held, (const uint8_t *)"later", 5);
    grpc_call_finish(f->held, GRPC_STATUS_OK, NULL);
    grpc_call_release(f->held);
    f->held = NULL;
}

static void h_deferred(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    fixture_t *f = ctx;
    (void)req;
    (void)len;
    grpc_call_retain(call);
    f->held = call;
    uv_timer_start(&f->timer, on_later, 20, 0);
}

/* Polls until the client's RST_STREAM has made the call dead, then tries to
 * send anyway. */
static void on_poll_cancelled(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->polls++;
    if (grpc_call_alive(f->held) && f->polls < 500) {
        return;
    }
    uv_timer_stop(t);
    f->held_alive_at_poll = grpc_call_alive(f->held);
    f->held_send_rc = grpc_call_send(f->held, (const uint8_t *)"too late", 8);
    grpc_call_finish(f->held, GRPC_STATUS_OK, NULL); /* a no-op */
    grpc_call_release(f->held);
    f->held = NULL;
    atomic_store(&f->cancel_seen, true);
}

static void h_cancellable(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    fixture_t *f = ctx;
    (void)req;
    (void)len;
    grpc_call_send(call, (const uint8_t *)"first", 5);
    grpc_call_retain(call);
    f->held = call;
    uv_timer_start(&f->timer, on_poll_cancelled, 10, 10);
}

/* Sends one message and keeps the call open until the server closes. */
static void h_hold(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    fixture_t *f = ctx;
    (void)req;
    (void)len;
    grpc_call_send(call, (const uint8_t *)"first", 5);
    grpc_call_retain(call);
    f->held = call;
}

/* Closes the server from inside a handler, as a "shutdown" RPC would. */
static void h_shutdown(void *ctx, grpc_call_t *call, const uint8_t *req, size_t len)
{
    fixture_t *f = ctx;
    (void)req;
    (void)len;
    grpc_call_send(call, (const uint8_t *)"bye", 3);
    grpc_server_close(f->srv, on_server_closed, f);
    f->held_alive_at_poll = grpc_call_alive(call);
    f->held_send_rc = grpc_call_send(call, (const uint8_t *)"x", 1);
}

static void register_all(fixture_t *f)
{
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Shutdown", h_shutdown, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Unary", h_unary, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Stream", h_stream, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Big", h_big, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/NotFound", h_not_found, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Forgetful", h_forgetful, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Deferred", h_deferred, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Cancel", h_cancellable, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Hold", h_hold, f), 0);
    assert_int_equal(grpc_register(f->srv, "/test.Echo/Unary", h_unary, f), -1); /* duplicate */
    assert_int_equal(grpc_register(f->srv, "test.Echo/NoSlash", h_unary, f), -1);
}

/* ---- in-process tests ------------------------------------------------------------------ */

static void script_calls(fixture_t *f)
{
    client_t cl;
    if (client_connect(&cl, f->port) != 0) {
        return;
    }
    rpc_init(&f->rpc[0], "/test.Echo/Unary", "hello");
    f->rpc[0].chunk = 3; /* the request message spans three DATA frames */
    client_call(&cl, &f->rpc[0]);
    rpc_init(&f->rpc[1], "/test.Echo/Stream", "3");
    client_call(&cl, &f->rpc[1]);
    rpc_init(&f->rpc[2], "/test.Echo/Nope", "x");
    client_call(&cl, &f->rpc[2]);
    rpc_init(&f->rpc[3], "/test.Echo/NotFound", "42");
    client_call(&cl, &f->rpc[3]);
    rpc_init(&f->rpc[4], "/test.Echo/Forgetful", "");
    client_call(&cl, &f->rpc[4]);
    rpc_init(&f->rpc[5], "/test.Echo/Unary", NULL);
    rpc_raw_body(&f->rpc[5], "\x01\x00\x00\x00\x01z", 6); /* compressed */
    client_call(&cl, &f->rpc[5]);
    rpc_init(&f->rpc[6], "/test.Echo/Unary", NULL);
    rpc_raw_body(&f->rpc[6], "\x00\x00\x50\x00\x00", 5); /* announces 5 MiB */
    client_call(&cl, &f->rpc[6]);
    rpc_init(&f->rpc[7], "/test.Echo/Big", "");
    client_call(&cl, &f->rpc[7]);
    rpc_init(&f->rpc[8], "/test.Echo/Deferred", "");
    client_call(&cl, &f->rpc[8]);
    rpc_init(&f->rpc[9], "/test.Echo/Unary", "hello");
    f->rpc[9].content_type = "application/json";
    client_call(&cl, &f->rpc[9]);
    rpc_init(&f->rpc[10], "/test.Echo/Unary", NULL); /* no message at all */
    client_call(&cl, &f->rpc[10]);
    rpc_init(&f->rpc[11], "/test.Echo/Unary", "a");
    rpc_raw_body(&f->rpc[11],
                 "\x00\x00\x00\x00\x01"
                 "a\x00\x00\x00\x00\x01"
                 "b",
                 12); /* two messages */
    client_call(&cl, &f->rpc[11]);
    client_close(&cl);
}

static void assert_ok_headers(const rpc_t *r)
{
    assert_true(r->closed);
    assert_int_equal(r->http_status, 200);
    assert_string_equal(r->content_type_seen, "application/grpc");
}

static void test_calls(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    register_all(f);
    fixture_run(f, script_calls);
    char msgs[MAX_MSGS][128];

    /* unary */
    assert_ok_headers(&f->rpc[0]);
    assert_int_equal(f->rpc[0].grpc_status, GRPC_STATUS_OK);
    assert_false(f->rpc[0].trailers_only);
    assert_int_equal(rpc_messages(&f->rpc[0], msgs), 1);
    assert_string_equal(msgs[0], "echo:hello");

    /* server streaming: three messages, then OK */
    assert_ok_headers(&f->rpc[1]);
    assert_int_equal(f->rpc[1].grpc_status, GRPC_STATUS_OK);
    assert_int_equal(rpc_messages(&f->rpc[1], msgs), 3);
    assert_string_equal(msgs[0], "msg-0");
    assert_string_equal(msgs[2], "msg-2");

    /* unknown method: trailers-only UNIMPLEMENTED */
    assert_ok_headers(&f->rpc[2]);
    assert_int_equal(f->rpc[2].grpc_status, GRPC_STATUS_UNIMPLEMENTED);
    assert_true(f->rpc[2].trailers_only);
    assert_int_equal(f->rpc[2].data_len, 0);
    assert_string_equal(f->rpc[2].grpc_message, "unknown method /test.Echo/Nope");

    /* a handler's own status, message percent-encoded */
    assert_ok_headers(&f->rpc[3]);
    assert_int_equal(f->rpc[3].grpc_status, GRPC_STATUS_NOT_FOUND);
    assert_true(f->rpc[3].trailers_only);
    assert_string_equal(f->rpc[3].grpc_message, "optimization 42 not found: 100%25 gone%0A");

    /* forgetful handler */
    assert_int_equal(f->rpc[4].grpc_status, GRPC_STATUS_INTERNAL);
    assert_string_equal(f->rpc[4].grpc_message, "the handler did not answer");

    /* compressed request, oversized request */
    assert_int_equal(f->rpc[5].grpc_status, GRPC_STATUS_UNIMPLEMENTED);
    assert_string_equal(f->rpc[5].grpc_message, "compressed requests are not supported");
    assert_int_equal(f->rpc[6].grpc_status, GRPC_STATUS_RESOURCE_EXHAUSTED);

    /* 300 KiB through flow control, intact and in order */
    assert_ok_headers(&f->rpc[7]);
    assert_int_equal(f->rpc[7].grpc_status, GRPC_STATUS_OK);
    assert_int_equal(f->rpc[7].data_len, 3 * (GRPC_FRAME_HEADER + 100 * 1024));
    for (int i = 0; i < 3; i++) {
        const uint8_t *m = f->rpc[7].data + i * (GRPC_FRAME_HEADER + 100 * 1024);
        assert_int_equal(m[0], 0);
        assert_int_equal(m[GRPC_FRAME_HEADER], 'a' + i);
        assert_int_equal(m[GRPC_FRAME_HEADER + 100 * 1024 - 1], 'a' + i);
    }

    /* answered later from a timer */
    assert_true(f->held_alive_at_poll);
    assert_int_equal(f->rpc[8].grpc_status, GRPC_STATUS_OK);
    assert_int_equal(rpc_messages(&f->rpc[8], msgs), 1);
    assert_string_equal(msgs[0], "later");

    /* not gRPC: 415; no message and two messages: INTERNAL */
    assert_int_equal(f->rpc[9].http_status, 415);
    assert_int_equal(f->rpc[9].grpc_status, -1);
    assert_int_equal(f->rpc[10].grpc_status, GRPC_STATUS_INTERNAL);
    assert_string_equal(f->rpc[10].grpc_message, "no request message");
    assert_int_equal(f->rpc[11].grpc_status, GRPC_STATUS_INTERNAL);
    assert_string_equal(f->rpc[11].grpc_message, "more than one request message");

    /* metrics */
    assert_true(requests(f, "/test.Echo/Unary", "OK") == 1.0);
    assert_true(requests(f, "/test.Echo/Unary", "UNIMPLEMENTED") == 1.0);
    assert_true(requests(f, "/test.Echo/Unary", "RESOURCE_EXHAUSTED") == 1.0);
    assert_true(requests(f, "/test.Echo/Unary", "INTERNAL") == 2.0);
    assert_true(requests(f, "/test.Echo/Stream", "OK") == 1.0);
    assert_true(requests(f, "unknown", "UNIMPLEMENTED") == 1.0);
    assert_true(requests(f, "/test.Echo/NotFound", "NOT_FOUND") == 1.0);
    metric_t *dur = metrics_histogram(f->metrics, "grpc_request_duration_seconds", "", "method", NULL, 0);
    assert_true(metric_value(dur, "/test.Echo/Unary") == 5.0);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "grpc_requests_total{method=\"/test.Echo/Stream\",code=\"OK\"} 1"));
    free(text);
    fixture_end(f);
}

static void script_cancel(fixture_t *f)
{
    client_t cl;
    if (client_connect(&cl, f->port) != 0) {
        return;
    }
    rpc_init(&f->rpc[0], "/test.Echo/Cancel", "");
    f->rpc[0].rst_on_data = true;
    client_call(&cl, &f->rpc[0]);
    for (int i = 0; i < 500 && !atomic_load(&f->cancel_seen); i++) {
        usleep(10 * 1000);
    }
    /* The same connection still works after the reset. */
    rpc_init(&f->rpc[1], "/test.Echo/Unary", "again");
    client_call(&cl, &f->rpc[1]);
    client_close(&cl);
}

static void test_client_cancels(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    register_all(f);
    fixture_run(f, script_cancel);

    assert_true(f->rpc[0].closed);
    assert_int_equal(f->rpc[0].close_code, NGHTTP2_CANCEL);
    assert_true(atomic_load(&f->cancel_seen));
    assert_true(f->polls < 500);
    assert_false(f->held_alive_at_poll);
    assert_int_equal(f->held_send_rc, -1);
    assert_true(requests(f, "/test.Echo/Cancel", "CANCELLED") == 1.0);
    assert_true(requests(f, "/test.Echo/Cancel", "OK") == 0.0);
    assert_int_equal(f->rpc[1].grpc_status, GRPC_STATUS_OK);
    fixture_end(f);
}

/* Bytes that are not HTTP/2 close that connection; others keep working. */
static void script_garbage(fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage garbage garbage";
        send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL);
        char buf[4096];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        }
        f->garbage_closed = n == 0; /* EOF, not the timeout */
    }
    close(fd);

    /* A valid preface, then a frame header announcing 16 MiB: nghttp2
     * answers GOAWAY(FRAME_SIZE_ERROR) and the server closes. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        const char bad[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                           "\x00\x00\x00\x04\x00\x00\x00\x00\x00" /* empty SETTINGS */
                           "\xff\xff\xff\x00\x00\x00\x00\x00\x01garbage";
        send(fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL);
        uint8_t buf[4096];
        ssize_t n;
        size_t got = 0;
        while ((n = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0) {
            got += (size_t)n;
        }
        /* The last frame read is a GOAWAY (type 7). */
        f->garbage_goaway = false;
        for (size_t off = 0; off + 9 <= got;) {
            size_t flen = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
            f->garbage_goaway = buf[off + 3] == 7;
            off += 9 + flen;
        }
        f->garbage_closed = f->garbage_closed && n == 0;
    }
    close(fd);

    client_t cl;
    if (client_connect(&cl, f->port) != 0) {
        return;
    }
    rpc_init(&f->rpc[0], "/test.Echo/Unary", "still here");
    client_call(&cl, &f->rpc[0]);
    client_close(&cl);
}

static void test_garbage_closes_connection(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    register_all(f);
    fixture_run(f, script_garbage);
    assert_true(f->garbage_closed);
    assert_true(f->garbage_goaway);
    assert_int_equal(f->rpc[0].grpc_status, GRPC_STATUS_OK);
    char msgs[MAX_MSGS][128];
    assert_int_equal(rpc_messages(&f->rpc[0], msgs), 1);
    assert_string_equal(msgs[0], "echo:still here");
    fixture_end(f);
}

/* The server closes while a call is open: the client gets GOAWAY and then
 * EOF, the held call is dead, and the loop ends with no handle left. */
static void script_close(fixture_t *f)
{
    client_t cl;
    if (client_connect(&cl, f->port) != 0) {
        return;
    }
    rpc_init(&f->rpc[0], "/test.Echo/Hold", "");
    client_start(&cl, &f->rpc[0]);
    while (f->rpc[0].data_len == 0 && client_pump(&cl) == 0) {
    }
    signal_stop(f);
    while (client_pump(&cl) == 0) {
    }
    f->goaway = cl.goaway;
    f->eof = cl.eof;
    client_close(&cl);
}

static void test_close_with_open_call(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    register_all(f);
    fixture_run(f, script_close);
    assert_true(f->goaway);
    assert_true(f->eof);
    assert_non_null(f->held);
    assert_false(grpc_call_alive(f->held));
    assert_int_equal(grpc_call_send(f->held, (const uint8_t *)"x", 1), -1);
    assert_string_equal(grpc_call_method(f->held), "/test.Echo/Hold");
    grpc_call_release(f->held);
    assert_true(requests(f, "/test.Echo/Hold", "CANCELLED") == 1.0);
    fixture_end(f);
}

static void script_shutdown(fixture_t *f)
{
    client_t cl;
    if (client_connect(&cl, f->port) != 0) {
        return;
    }
    rpc_init(&f->rpc[0], "/test.Echo/Shutdown", "");
    client_start(&cl, &f->rpc[0]);
    while (client_pump(&cl) == 0) {
    }
    f->goaway = cl.goaway;
    f->eof = cl.eof;
    client_close(&cl);
}

static void test_close_from_handler(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    register_all(f);
    fixture_run(f, script_shutdown);
    assert_true(f->goaway);
    assert_true(f->eof);
    assert_false(f->held_alive_at_poll);
    assert_int_equal(f->held_send_rc, -1);
    assert_true(requests(f, "/test.Echo/Shutdown", "CANCELLED") == 1.0);
    fixture_end(f);
}

static void test_create_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    assert_null(grpc_server_create(&loop, "127.0.0.1", 70000, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "0..65535"));
    assert_null(grpc_server_create(&loop, "no.such.host.invalid", 0, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot resolve"));
    /* A port already taken. */
    grpc_server_t *a = grpc_server_create(&loop, "127.0.0.1", 0, NULL, err, sizeof(err));
    assert_non_null(a);
    assert_null(grpc_server_create(&loop, "127.0.0.1", grpc_server_port(a), NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot listen"));
    grpc_server_close(a, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    grpc_server_destroy(a);
    grpc_server_close(NULL, NULL, NULL);
    grpc_server_destroy(NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_deframer_reassembles),
        cmocka_unit_test(test_deframer_errors),
        cmocka_unit_test(test_percent_encode),
        cmocka_unit_test(test_calls),
        cmocka_unit_test(test_client_cancels),
        cmocka_unit_test(test_garbage_closes_connection),
        cmocka_unit_test(test_close_with_open_call),
        cmocka_unit_test(test_close_from_handler),
        cmocka_unit_test(test_create_errors),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
