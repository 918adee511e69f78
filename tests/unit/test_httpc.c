/* The HTTP client against the test's own HTTP server, both on one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "httpc.h"
#include "log.h"

#define MAXR 64

typedef struct {
    int status;
    long code;
    char body[512];
    int calls;
} result_t;

typedef struct fixture_s {
    uv_loop_t loop;
    http_server_t *srv;
    httpc_t *client;
    char base[64];
    result_t res[MAXR];
    int expected, completed;
    bool client_closed, server_closed;
    http_req_t *held[4];
    int nheld;
    uv_timer_t timer;
} fixture_t;

/* ---- server routes ---------------------------------------------------------------- */

static void handle_echo_get(void *ctx, http_req_t *r)
{
    (void)ctx;
    const char *x = http_req_query(r, "x");
    http_respond_json(r, 200, json_pack("{s:s?}", "x", x));
}

static void handle_echo_post(void *ctx, http_req_t *r)
{
    (void)ctx;
    size_t len;
    const char *body = http_req_body(r, &len);
    http_respond_text(r, 200, "application/json", body, len);
}

static void handle_status(void *ctx, http_req_t *r)
{
    (void)ctx;
    http_respond_error(r, atoi(http_req_param(r, "code")), NULL, "as asked");
}

static void handle_method(void *ctx, http_req_t *r)
{
    (void)ctx;
    size_t len;
    http_req_body(r, &len);
    char text[64];
    snprintf(text, sizeof(text), "%s %zu", http_req_method(r), len);
    http_respond_text(r, 200, NULL, text, strlen(text));
}

/* Never answers; the server answers 503 when it closes. */
static void handle_slow(void *ctx, http_req_t *r)
{
    fixture_t *f = ctx;
    http_req_retain(r);
    f->held[f->nheld++] = r;
}

/* ---- fixture ------------------------------------------------------------------------ */

/* h2o keeps an idle handle referenced until http_server_destroy(), so the
 * loop is stopped once the close completes, as lifecycle does. */
static void on_server_closed(void *arg)
{
    fixture_t *f = arg;
    f->server_closed = true;
    uv_stop(&f->loop);
}

static void on_client_closed(void *arg)
{
    fixture_t *f = arg;
    f->client_closed = true;
    http_server_close(f->srv, on_server_closed, f);
}

static void shut_down(fixture_t *f)
{
    httpc_close(f->client, on_client_closed, f);
}

static void on_done(void *arg, int status, long code, const char *body, size_t len)
{
    result_t *r = arg;
    r->status = status;
    r->code = code;
    r->calls++;
    assert_int_equal(strlen(body), len); /* NUL-terminated */
    snprintf(r->body, sizeof(r->body), "%s", body);
}

static fixture_t *fixture_start(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    log_init("test_httpc", LOG_ERROR);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char err[256];
    f->srv = http_server_create(&f->loop, "127.0.0.1", 0, NULL, err, sizeof(err));
    assert_non_null(f->srv);
    http_server_set_drain_ms(f->srv, 50);
    assert_int_equal(http_route(f->srv, "GET", "/echo", handle_echo_get, f), 0);
    assert_int_equal(http_route(f->srv, "POST", "/echo", handle_echo_post, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/status/{code}", handle_status, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/slow", handle_slow, f), 0);
    const char *methods[] = {"PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(http_route(f->srv, methods[i], "/method", handle_method, f), 0);
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", http_server_port(f->srv));
    f->client = httpc_create(&f->loop);
    assert_non_null(f->client);
    return f;
}

static void fixture_finish(fixture_t *f)
{
    if (!f->server_closed) {
        uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    }
    assert_true(f->client_closed);
    assert_true(f->server_closed);
    http_server_destroy(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    httpc_destroy(f->client);
    for (int i = 0; i < f->nheld; i++) {
        assert_false(http_req_alive(f->held[i]));
        http_req_release(f->held[i]);
    }
    free(f);
}

static void request(fixture_t *f, int i, const char *method, const char *path, const char *ctype,
                    const char *body, long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    assert_int_equal(httpc_request(f->client, method, url, ctype, body, body ? strlen(body) : 0, timeout_ms,
                                   on_done, &f->res[i]),
                     0);
}

/* Closes everything once `n` results have arrived (polled by a timer). */
static void on_poll_done(uv_timer_t *t)
{
    fixture_t *f = t->data;
    int done = 0;
    for (int i = 0; i < MAXR; i++) {
        done += f->res[i].calls;
    }
    if (done >= f->expected) {
        uv_close((uv_handle_t *)t, NULL);
        shut_down(f);
    }
}

static void close_when_done(fixture_t *f, int n)
{
    f->expected = n;
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_poll_done, 5, 5);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_get_post(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    request(f, 0, "GET", "/echo?x=a+b%21", NULL, NULL, 5000);
    request(f, 1, "POST", "/echo", "application/json", "{\"k\":[1,2]}", 5000);
    request(f, 2, "GET", "/status/404", NULL, NULL, 5000);
    request(f, 3, "PUT", "/method", "application/json", "{}", 5000);
    request(f, 4, "DELETE", "/method", NULL, NULL, 5000);
    request(f, 5, "PATCH", "/method", "text/plain", "abc", 5000);
    request(f, 6, "POST", "/echo", "application/json", NULL, 5000); /* empty body */
    assert_int_equal(httpc_pending(f->client), 7);
    close_when_done(f, 7);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */

    result_t *r = f->res;
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].code, 200);
    assert_string_equal(r[0].body, "{\"x\":\"a b!\"}");
    assert_int_equal(r[1].code, 200);
    assert_string_equal(r[1].body, "{\"k\":[1,2]}");
    assert_int_equal(r[2].status, 0); /* an HTTP error is still an answer */
    assert_int_equal(r[2].code, 404);
    assert_string_equal(r[2].body, "{\"error\":\"as asked\"}");
    assert_string_equal(r[3].body, "PUT 2");
    assert_string_equal(r[4].body, "DELETE 0");
    assert_string_equal(r[5].body, "PATCH 3");
    assert_int_equal(r[6].code, 200);
    assert_string_equal(r[6].body, "");
    for (int i = 0; i < 7; i++) {
        assert_int_equal(r[i].calls, 1);
    }
    fixture_finish(f);
}

static void test_many_concurrent(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    for (int i = 0; i < MAXR; i++) {
        request(f, i, "GET", "/echo?x=many", NULL, NULL, 5000);
    }
    close_when_done(f, MAXR);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    for (int i = 0; i < MAXR; i++) {
        assert_int_equal(f->res[i].calls, 1);
        assert_int_equal(f->res[i].code, 200);
    }
    fixture_finish(f);
}

static void test_timeout(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    request(f, 0, "GET", "/slow", NULL, NULL, 200);
    close_when_done(f, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    assert_int_equal(f->res[0].calls, 1);
    assert_int_equal(f->res[0].status, HIVE_ETIMEDOUT);
    assert_true(hive_err_transient(f->res[0].status));
    assert_non_null(strstr(f->res[0].body, "timed out")); /* libcurl's message, for logs */
    fixture_finish(f);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_connection_refused(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", free_port());
    assert_int_equal(httpc_request(f->client, "GET", url, NULL, NULL, 0, 2000, on_done, &f->res[0]), 0);
    close_when_done(f, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    assert_int_equal(f->res[0].calls, 1);
    assert_int_equal(f->res[0].status, HIVE_EUNAVAILABLE);
    assert_non_null(strstr(f->res[0].body, "onnect"));
    assert_int_equal(f->res[0].code, 0);
    fixture_finish(f);
}

/* How libcurl's results map into the error space. */
static void test_error_codes(void **state)
{
    (void)state;
    assert_int_equal(httpc_error_code(CURLE_OK), 0);
    assert_int_equal(httpc_error_code(CURLE_OPERATION_TIMEDOUT), HIVE_ETIMEDOUT);
    assert_int_equal(httpc_error_code(CURLE_COULDNT_CONNECT), HIVE_EUNAVAILABLE);
    assert_int_equal(httpc_error_code(CURLE_COULDNT_RESOLVE_HOST), HIVE_EUNAVAILABLE);
    assert_int_equal(httpc_error_code(CURLE_RECV_ERROR), HIVE_EUNAVAILABLE);
    assert_int_equal(httpc_error_code(CURLE_GOT_NOTHING), HIVE_EUNAVAILABLE);
    assert_int_equal(httpc_error_code(CURLE_OUT_OF_MEMORY), HIVE_ENOMEM);
    assert_int_equal(httpc_error_code(CURLE_WRITE_ERROR), HIVE_ETOOBIG);
    assert_int_equal(httpc_error_code(CURLE_URL_MALFORMAT), HIVE_EINVAL);
    assert_int_equal(httpc_error_code(CURLE_UNSUPPORTED_PROTOCOL), HIVE_EINVAL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    /* Refused at once; the callback never runs. */
    assert_int_equal(
        httpc_request(f->client, "GET", "http://127.0.0.1/", NULL, "x", 1, 0, on_done, &f->res[0]),
        HIVE_EINVAL);
    assert_int_equal(httpc_request(f->client, "GET", NULL, NULL, NULL, 0, 0, on_done, &f->res[0]),
                     HIVE_EINVAL);
    assert_true(
        httpc_request(f->client, "GET", "gopher://127.0.0.1/", NULL, NULL, 0, 0, on_done, &f->res[0]) <= 0);
    close_when_done(f, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    fixture_finish(f);
}

/* httpc_close with requests in flight: each callback runs once with
 * HIVE_ECANCELED, and every handle is closed. */
static void on_close_timer(uv_timer_t *t)
{
    fixture_t *f = t->data;
    assert_int_equal(httpc_pending(f->client), 2);
    uv_close((uv_handle_t *)t, NULL);
    shut_down(f);
    assert_int_equal(f->res[0].calls, 1); /* canceled before httpc_close returned */
    assert_int_equal(f->res[1].calls, 1);
}

static void test_close_in_flight(void **state)
{
    (void)state;
    fixture_t *f = fixture_start();
    request(f, 0, "GET", "/slow", NULL, NULL, 0);
    request(f, 1, "GET", "/slow", NULL, NULL, 0);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_close_timer, 100, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    assert_int_equal(f->res[0].calls, 1);
    assert_int_equal(f->res[0].status, HIVE_ECANCELED);
    assert_int_equal(f->res[1].status, HIVE_ECANCELED);
    assert_string_equal(f->res[0].body, hive_strerror(HIVE_ECANCELED));
    fixture_finish(f);
}

/* Closing from inside a completion callback, with another request pending. */
static fixture_t *reentrant;

static void on_done_then_close(void *arg, int status, long code, const char *body, size_t len)
{
    on_done(arg, status, code, body, len);
    /* starting a request from a callback works too */
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", reentrant->base);
    assert_int_equal(
        httpc_request(reentrant->client, "GET", url, NULL, NULL, 0, 0, on_done, &reentrant->res[2]), 0);
    shut_down(reentrant);
    assert_int_equal(
        httpc_request(reentrant->client, "GET", url, NULL, NULL, 0, 0, on_done, &reentrant->res[3]),
        HIVE_EINVAL);
}

static void test_close_from_callback(void **state)
{
    (void)state;
    fixture_t *f = reentrant = fixture_start();
    request(f, 1, "GET", "/slow", NULL, NULL, 0);
    char url[128];
    snprintf(url, sizeof(url), "%s/echo?x=1", f->base);
    assert_int_equal(httpc_request(f->client, "GET", url, NULL, NULL, 0, 0, on_done_then_close, &f->res[0]),
                     0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* stopped once the server has closed */
    assert_int_equal(f->res[0].code, 200);
    assert_int_equal(f->res[1].status, HIVE_ECANCELED);
    assert_int_equal(f->res[2].status, HIVE_ECANCELED);
    assert_int_equal(f->res[3].calls, 0);
    fixture_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post),        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_timeout),         cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_error_codes),     cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_close_in_flight), cmocka_unit_test(test_close_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
