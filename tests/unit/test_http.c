/* The HTTP server on a real loop, driven by a blocking client in a thread.
 * The client records what it saw; assertions run on the main thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "lifecycle.h"
#include "log.h"

#define NRESP 8
#define RESP_MAX 16384

typedef struct fixture_s {
    uv_loop_t loop;
    metrics_t *metrics;
    http_server_t *srv;
    int port;
    uv_async_t stop;
    atomic_bool stop_sent;
    bool closed;
    void (*script)(struct fixture_s *f);
    /* what the client saw */
    int status[NRESP];
    char resp[NRESP][RESP_MAX];
    int eof_after_close; /* 1: an open connection was closed by the server */
} fixture_t;

/* ---- blocking client ---------------------------------------------------- */

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static void client_send(int fd, const char *raw)
{
    size_t len = strlen(raw), off = 0;
    while (off < len) {
        ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        off += (size_t)n;
    }
}

/* Reads until EOF. Returns the byte count. */
static size_t client_read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static int status_of(const char *resp)
{
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }
    return status;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* One request on its own connection ("Connection: close"); records the
 * response in slot `i`. */
static void exchange(fixture_t *f, int i, const char *raw)
{
    int fd = client_connect(f->port);
    if (fd < 0) {
        f->status[i] = -1;
        return;
    }
    client_send(fd, raw);
    client_read_all(fd, f->resp[i], RESP_MAX);
    close(fd);
    f->status[i] = status_of(f->resp[i]);
}

static void get(fixture_t *f, int i, const char *path)
{
    char raw[512];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    exchange(f, i, raw);
}

static void post(fixture_t *f, int i, const char *path, const char *ctype, const char *body)
{
    char raw[4096];
    snprintf(raw, sizeof(raw),
             "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: %s\r\nContent-Length: "
             "%zu\r\n\r\n%s",
             path, ctype, strlen(body), body);
    exchange(f, i, raw);
}

/* ---- fixture --------------------------------------------------------------- */

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

/* h2o keeps an idle handle referenced until http_server_destroy(), so the
 * loop is stopped once the close completes, as lifecycle does. */
static void on_server_closed(void *arg)
{
    fixture_t *f = arg;
    f->closed = true;
    uv_stop(&f->loop);
}

static void on_stop(uv_async_t *a)
{
    fixture_t *f = a->data;
    http_server_close(f->srv, on_server_closed, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void fixture_start(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    log_init("test_http", LOG_ERROR);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->metrics = metrics_create();
    char err[256] = "";
    f->srv = http_server_create(&f->loop, "127.0.0.1", 0, f->metrics, err, sizeof(err));
    assert_non_null(f->srv);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
}

/* Runs `script` in a client thread; when it returns (or calls signal_stop)
 * the server is closed. Checks that the loop ends with no handle left. */
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
    http_server_destroy(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    metrics_destroy(f->metrics);
}

/* ---- routes used by the tests ---------------------------------------------- */

static void handle_item_get(void *ctx, http_req_t *r)
{
    (void)ctx;
    const char *verbose = http_req_query(r, "verbose");
    http_respond_json(r, 200,
                      json_pack("{s:s, s:s?, s:s}", "id", http_req_param(r, "id"), "verbose", verbose,
                                "method", http_req_method(r)));
}

static void handle_item_post(void *ctx, http_req_t *r)
{
    (void)ctx;
    char err[256];
    json_t *body = http_req_json(r, err, sizeof(err));
    if (!body) {
        http_respond_error(r, 400, NULL, err);
        return;
    }
    if (!json_is_object(body) || !json_is_string(json_object_get(body, "name"))) {
        http_respond_error(r, 422, "name", "name must be a string");
        return;
    }
    http_respond_json(r, 201, json_incref(body)); /* borrowed: take a reference to hand over */
}

static void handle_forgetful(void *ctx, http_req_t *r)
{
    (void)ctx;
    (void)r; /* neither answers nor retains: the server answers 500 */
}

typedef struct {
    uv_timer_t timer;
    http_req_t *req;
    bool was_alive, big;
    int fired;
} deferred_t;

static void on_deferred_timer(uv_timer_t *t)
{
    deferred_t *d = t->data;
    d->fired++;
    d->was_alive = http_req_alive(d->req);
    if (d->big) {
        /* Large enough that writing it to a closed peer fails with EPIPE. */
        size_t len = 4 * 1024 * 1024;
        char *text = malloc(len);
        memset(text, 'x', len);
        http_respond_text(d->req, 200, NULL, text, len);
        free(text);
    } else {
        http_respond_json(d->req, 200, json_pack("{s:s}", "result", "later"));
    }
    http_req_release(d->req);
    d->req = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

/* ---- tests ------------------------------------------------------------------------ */

static void script_basics(fixture_t *f)
{
    get(f, 0, "/health");
    get(f, 1, "/nope");
    post(f, 2, "/health", "application/json", "{}");
    get(f, 3, "/api/v1/items/it%20em-1?verbose=yes+please");
    get(f, 4, "/forgetful");
    get(f, 5, "/api/v1/items/%zz");
    exchange(f, 6, "HEAD /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
}

static void test_routes_and_errors(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    assert_int_equal(http_route(f->srv, "GET", "/api/v1/items/{id}", handle_item_get, NULL), 0);
    assert_int_equal(http_route(f->srv, "GET", "/forgetful", handle_forgetful, NULL), 0);
    assert_int_equal(http_route(f->srv, "GET", "/health", handle_forgetful, NULL), -1); /* built in */
    assert_int_equal(http_route(f->srv, "GET", "/bad/{", handle_forgetful, NULL), -1);
    fixture_run(f, script_basics);

    assert_int_equal(f->status[0], 200);
    assert_string_equal(body_of(f->resp[0]), "{\"status\":\"ok\"}");
    assert_non_null(strstr(f->resp[0], "content-type: application/json"));

    assert_int_equal(f->status[1], 404);
    assert_non_null(strstr(body_of(f->resp[1]), "\"error\":\"no route for GET /nope\""));

    assert_int_equal(f->status[2], 405);
    assert_non_null(strstr(f->resp[2], "allow: GET"));
    assert_non_null(strstr(body_of(f->resp[2]), "not allowed"));

    assert_int_equal(f->status[3], 200);
    assert_string_equal(body_of(f->resp[3]),
                        "{\"id\":\"it em-1\",\"verbose\":\"yes please\",\"method\":\"GET\"}");

    assert_int_equal(f->status[4], 500);
    assert_non_null(strstr(body_of(f->resp[4]), "did not answer"));

    assert_int_equal(f->status[5], 400);

    assert_int_equal(f->status[6], 200); /* HEAD: GET's route, no body */
    assert_string_equal(body_of(f->resp[6]), "");
    free(f);
}

static void script_json(fixture_t *f)
{
    post(f, 0, "/api/v1/items", "application/json", "{\"name\": \"x\", ");
    post(f, 1, "/api/v1/items", "text/plain", "{\"name\":\"x\"}");
    post(f, 2, "/api/v1/items", "application/json; charset=utf-8", "{\"name\":\"x\"}");
    post(f, 3, "/api/v1/items", "application/json", "{\"name\":1}");
    post(f, 4, "/api/v1/items", "application/json", "");
    /* Announces a body over HTTP_MAX_BODY: refused before it is sent. */
    exchange(f, 5,
             "POST /api/v1/items HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n");
    post(f, 6, "/api/v1/items", "application/json", "{\"name\":\"a\",\"name\":\"b\"}");
}

static void test_json_bodies(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    assert_int_equal(http_route(f->srv, "POST", "/api/v1/items", handle_item_post, NULL), 0);
    fixture_run(f, script_json);

    assert_int_equal(f->status[0], 400);
    assert_non_null(strstr(body_of(f->resp[0]), "invalid JSON at line 1"));
    assert_int_equal(f->status[1], 400);
    assert_non_null(strstr(body_of(f->resp[1]), "Content-Type must be application/json"));
    assert_int_equal(f->status[2], 201);
    assert_string_equal(body_of(f->resp[2]), "{\"name\":\"x\"}");
    assert_int_equal(f->status[3], 422);
    assert_string_equal(body_of(f->resp[3]), "{\"error\":\"name must be a string\",\"field\":\"name\"}");
    assert_int_equal(f->status[4], 400);
    assert_non_null(strstr(body_of(f->resp[4]), "empty"));
    assert_int_equal(f->status[5], 413);
    assert_int_equal(f->status[6], 400);
    assert_non_null(strstr(body_of(f->resp[6]), "duplicate"));
    free(f);
}

static atomic_bool kafka_ok;

static bool check_kafka(void *ctx, char *detail, size_t len)
{
    (void)ctx;
    if (!atomic_load(&kafka_ok)) {
        snprintf(detail, len, "no partitions assigned");
        return false;
    }
    return true;
}

static bool check_mongo(void *ctx)
{
    (void)ctx;
    return true;
}

static void script_ready(fixture_t *f)
{
    get(f, 0, "/ready");
    atomic_store(&kafka_ok, true);
    get(f, 1, "/ready");
}

static void test_ready(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    atomic_store(&kafka_ok, false);
    assert_int_equal(http_add_ready_check_detail(f->srv, "kafka", check_kafka, NULL), 0);
    assert_int_equal(http_add_ready_check(f->srv, "mongodb", check_mongo, NULL), 0);
    fixture_run(f, script_ready);

    assert_int_equal(f->status[0], 503);
    assert_string_equal(body_of(f->resp[0]),
                        "{\"status\":\"not_ready\",\"checks\":{\"kafka\":{\"ok\":false,\"detail\":"
                        "\"no partitions assigned\"},\"mongodb\":{\"ok\":true}}}");
    assert_int_equal(f->status[1], 200);
    assert_string_equal(
        body_of(f->resp[1]),
        "{\"status\":\"ready\",\"checks\":{\"kafka\":{\"ok\":true},\"mongodb\":{\"ok\":true}}}");
    free(f);
}

static void script_metrics(fixture_t *f)
{
    get(f, 0, "/health");
    get(f, 1, "/health");
    get(f, 2, "/nope/1");
    get(f, 3, "/nope/2");
    post(f, 4, "/health", "application/json", "{}");
    get(f, 5, "/metrics");
}

/* Runs promtool on the exposition when it is installed. Returns its exit
 * status, or -1 when it is not there. */
static int promtool_check(const char *text)
{
    const char *promtool = "/usr/bin/promtool";
    if (access(promtool, X_OK) != 0) {
        return -1;
    }
    char path[] = "/tmp/test_http_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s check metrics < %s", promtool, path);
    int rc = system(cmd);
    unlink(path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 99;
}

static void test_metrics(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    fixture_run(f, script_metrics);

    assert_int_equal(f->status[5], 200);
    assert_non_null(strstr(f->resp[5], "content-type: text/plain; version=0.0.4"));
    const char *m = body_of(f->resp[5]);
    assert_non_null(strstr(m, "# TYPE http_requests_total counter"));
    assert_non_null(strstr(m, "http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 2\n"));
    /* two different unknown paths share one series */
    assert_non_null(strstr(m, "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 2\n"));
    assert_non_null(strstr(m, "http_requests_total{method=\"POST\",route=\"/health\",status=\"405\"} 1\n"));
    assert_non_null(strstr(m, "http_request_duration_seconds_count{route=\"/health\"} 3\n"));
    assert_null(strstr(m, "/nope"));

    int rc = promtool_check(m);
    if (rc < 0) {
        print_message("promtool not installed (/usr/bin/promtool, Debian package prometheus): "
                      "skipping the format check\n");
    } else {
        assert_int_equal(rc, 0);
    }
    free(f);
}

/* Deferred answers: one after a short timer; one to a client that has
 * already gone; the server keeps serving. */
static deferred_t d_ok, d_gone;

static void start_deferred(void *ctx, http_req_t *r)
{
    deferred_t *d = ctx;
    http_req_retain(r);
    d->req = r;
    d->timer.data = d;
    uv_timer_start(&d->timer, on_deferred_timer, d == &d_ok ? 30 : 150, 0);
}

static void script_deferred(fixture_t *f)
{
    get(f, 0, "/deferred/ok");
    /* Send, then hang up before the answer. */
    int fd = client_connect(f->port);
    client_send(fd, "GET /deferred/gone HTTP/1.1\r\nHost: t\r\n\r\n");
    close(fd);
    usleep(300 * 1000); /* past the 150 ms answer */
    get(f, 1, "/health");
}

static void test_deferred(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    memset(&d_ok, 0, sizeof(d_ok));
    memset(&d_gone, 0, sizeof(d_gone));
    d_gone.big = true;
    uv_timer_init(&f->loop, &d_ok.timer);
    uv_timer_init(&f->loop, &d_gone.timer);
    assert_int_equal(http_route(f->srv, "GET", "/deferred/ok", start_deferred, &d_ok), 0);
    assert_int_equal(http_route(f->srv, "GET", "/deferred/gone", start_deferred, &d_gone), 0);
    fixture_run(f, script_deferred);

    assert_int_equal(f->status[0], 200);
    assert_string_equal(body_of(f->resp[0]), "{\"result\":\"later\"}");
    assert_int_equal(d_ok.fired, 1);
    assert_true(d_ok.was_alive);
    assert_int_equal(d_gone.fired, 1); /* answered into a closed socket without harm */
    assert_int_equal(f->status[1], 200);
    free(f);
}

/* Close with work in progress: an idle keep-alive connection, a half-sent
 * request and a retained request that is never answered. The server
 * answers the last 503 after the drain time, closes all three, and the
 * request the handler still holds is no longer alive. */
static http_req_t *held;

static void handle_hold(void *ctx, http_req_t *r)
{
    (void)ctx;
    http_req_retain(r);
    held = r;
}

static void script_close(fixture_t *f)
{
    int idle = client_connect(f->port);
    client_send(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[1024];
    ssize_t n = recv(idle, buf, sizeof(buf) - 1, 0); /* the answer; the connection stays open */
    if (n > 0) {
        buf[n] = '\0';
        f->status[0] = status_of(buf);
    }
    int partial = client_connect(f->port);
    client_send(partial, "GET /health HTTP/1.1\r\nHo");
    int hold = client_connect(f->port);
    client_send(hold, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(100 * 1000); /* let the server take the requests */

    signal_stop(f);
    f->eof_after_close = recv(idle, buf, sizeof(buf), 0) == 0 && recv(partial, buf, sizeof(buf), 0) == 0;
    client_read_all(hold, f->resp[1], RESP_MAX);
    f->status[1] = status_of(f->resp[1]);
    close(idle);
    close(partial);
    close(hold);
}

static void test_close_with_connections(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    fixture_start(f);
    held = NULL;
    http_server_set_drain_ms(f->srv, 100);
    assert_int_equal(http_route(f->srv, "GET", "/hold", handle_hold, NULL), 0);
    fixture_run(f, script_close);

    assert_int_equal(f->status[0], 200);
    assert_true(f->eof_after_close);
    assert_int_equal(f->status[1], 503);
    assert_non_null(strstr(body_of(f->resp[1]), "shutting down"));
    assert_non_null(held);
    assert_false(http_req_alive(held));
    /* Answering a dead request is a no-op, even with the server gone. */
    http_respond_json(held, 200, json_object());
    http_respond_error(held, 500, NULL, "late");
    assert_string_equal(http_req_path(held), "/hold");
    http_req_release(held);
    free(f);
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

typedef struct {
    bool closed;
    uv_loop_t *loop;
} close_wait_t;

static void set_closed_and_stop(void *arg)
{
    close_wait_t *w = arg;
    w->closed = true;
    uv_stop(w->loop);
}

static void test_create_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256] = "";
    assert_null(http_server_create(&loop, "127.0.0.1", 70000, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "0..65535"));
    assert_null(http_server_create(&loop, "no such host.invalid", 0, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "no such host.invalid"));

    /* A port in use is reported, and nothing is left on the loop. */
    http_server_t *a = http_server_create(&loop, "127.0.0.1", 0, NULL, err, sizeof(err));
    assert_non_null(a);
    assert_null(http_server_create(&loop, "127.0.0.1", http_server_port(a), NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot listen"));
    close_wait_t w = {false, &loop};
    http_server_close(a, set_closed_and_stop, &w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(w.closed);
    http_server_destroy(a);
    assert_int_equal(uv_loop_close(&loop), 0);
    http_server_destroy(NULL);
    bool closed = false;
    http_server_close(NULL, set_flag, &closed); /* nothing to close: done at once */
    assert_true(closed);
}

/* As a service uses it: a lifecycle stage closes the server, and
 * lifecycle_run() reports a clean loop (it returns 1 if any handle is
 * left). */
static void stage_done(void *arg)
{
    lifecycle_stage_done(arg);
}

static void stop_http(lifecycle_t *lc, void *ctx)
{
    http_server_close(ctx, stage_done, lc);
}

static void destroy_http(void *ctx)
{
    http_server_destroy(ctx);
}

static void on_kick(uv_timer_t *t)
{
    lifecycle_stop(t->data, 0);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_lifecycle_stage(void **state)
{
    (void)state;
    log_init("test_http", LOG_ERROR);
    lifecycle_t *lc = lifecycle_create(5000);
    char err[256];
    http_server_t *s = http_server_create(lifecycle_loop(lc), "127.0.0.1", 0, NULL, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(lifecycle_add_stage(lc, "http", stop_http, s), 0);
    assert_int_equal(lifecycle_add_finalizer(lc, destroy_http, s), 0);
    uv_timer_t kick;
    uv_timer_init(lifecycle_loop(lc), &kick);
    kick.data = lc;
    uv_timer_start(&kick, on_kick, 20, 0);
    assert_int_equal(lifecycle_run(lc), 0);
    lifecycle_destroy(lc);
}

static void test_json_parse(void **state)
{
    (void)state;
    char err[256];
    json_t *j = http_json_parse("Application/Vnd.Hive+JSON", 25, "[1]", 3, err, sizeof(err));
    assert_non_null(j);
    json_decref(j);
    j = http_json_parse(NULL, 0, "{}", 2, err, sizeof(err)); /* no Content-Type: not checked */
    assert_non_null(j);
    json_decref(j);
    assert_null(http_json_parse("application/jsonx", 17, "{}", 2, err, sizeof(err)));
    assert_null(http_json_parse(NULL, 0, "\"scalar\"", 8, err, sizeof(err)));
    assert_null(http_json_parse(NULL, 0, "{\"a\":1}x", 8, err, sizeof(err)));
    assert_non_null(strstr(err, "column"));
}

/* The bounded integer of a query parameter: digits only, inside [min, max]. */
static void test_parse_bounded(void **state)
{
    (void)state;
    size_t v = 77;
    assert_int_equal(http_parse_bounded("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(http_parse_bounded("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(http_parse_bounded("007", 1, 10, &v), 0);
    assert_int_equal(v, 7);
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "11", "0x5", "1e1", "18446744073709551616", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 77;
        assert_int_not_equal(http_parse_bounded(bad[i], 0, 10, &v), 0);
        assert_int_equal(v, 77);
    }
    assert_int_not_equal(http_parse_bounded("0", 1, 10, &v), 0); /* below min */
}

static void test_json_unknown_member(void **state)
{
    (void)state;
    static const char *const allowed[] = {"a", "bb", NULL};
    json_t *ok = json_pack("{s:i, s:i}", "a", 1, "bb", 2);
    json_t *bad = json_pack("{s:i, s:i}", "a", 1, "b", 2);
    json_t *empty = json_object();
    assert_null(http_json_unknown_member(ok, allowed));
    assert_string_equal(http_json_unknown_member(bad, allowed), "b");
    assert_null(http_json_unknown_member(empty, allowed));
    json_decref(ok);
    json_decref(bad);
    json_decref(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bounded),
        cmocka_unit_test(test_routes_and_errors),
        cmocka_unit_test(test_json_bodies),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_close_with_connections),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_lifecycle_stage),
        cmocka_unit_test(test_json_parse),
        cmocka_unit_test(test_json_unknown_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
