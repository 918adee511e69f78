/* Unit tests of httpc_sync against a one-shot HTTP server on a loopback port in
 * a thread of the test: an answer with its code and body, a request body sent
 * as given, a server that never answers (timeout), a closed port, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hive_err.h"
#include "httpc_sync.h"

typedef struct {
    int listener;
    const char *answer; /* NULL: read the request, then say nothing until closed */
    char request[2048];
    size_t request_len;
    pthread_t thread;
} server_t;

static void *serve_once(void *arg)
{
    server_t *sv = arg;
    int fd = accept(sv->listener, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    /* Read the head and, if any, a body announced by Content-Length. */
    for (;;) {
        ssize_t n = read(fd, sv->request + sv->request_len, sizeof(sv->request) - 1 - sv->request_len);
        if (n <= 0) {
            break;
        }
        sv->request_len += (size_t)n;
        sv->request[sv->request_len] = '\0';
        char *end = strstr(sv->request, "\r\n\r\n");
        const char *cl = strstr(sv->request, "Content-Length: ");
        if (end && (!cl || sv->request_len >= (size_t)(end + 4 - sv->request) + (size_t)atoi(cl + 16))) {
            break;
        }
    }
    if (sv->answer) {
        ssize_t w = write(fd, sv->answer, strlen(sv->answer));
        (void)w;
    } else {
        char c;
        while (read(fd, &c, 1) > 0) {
        }
    }
    close(fd);
    return NULL;
}

static int start_server(server_t *sv, const char *answer)
{
    memset(sv, 0, sizeof(*sv));
    sv->answer = answer;
    sv->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(sv->listener, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(sv->listener, 4), 0);
    assert_int_equal(getsockname(sv->listener, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(pthread_create(&sv->thread, NULL, serve_once, sv), 0);
    return ntohs(a.sin_port);
}

static void stop_server(server_t *sv)
{
    pthread_join(sv->thread, NULL);
    close(sv->listener);
}

static void test_answer_code_and_body(void **state)
{
    (void)state;
    server_t sv;
    int port = start_server(
        &sv, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n");
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/2.0/mlflow/runs/get", port);
    long code = 0;
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(httpc_sync_request("POST", url, "application/json", "{\"a\":1}", 7, 5000, &code, &body,
                                        &len, err, sizeof(err)),
                     0);
    stop_server(&sv);
    assert_int_equal(code, 404); /* an HTTP answer is a success, whatever its code */
    assert_int_equal(len, 9);
    assert_string_equal(body, "not here\n");
    free(body);
    assert_non_null(strstr(sv.request, "POST /api/2.0/mlflow/runs/get HTTP/1.1\r\n"));
    assert_non_null(strstr(sv.request, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(sv.request, "\r\n\r\n{\"a\":1}"));
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    server_t sv;
    int port = start_server(&sv, NULL);
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    long code = -5;
    char *body = (char *)"untouched";
    assert_int_equal(httpc_sync_request("GET", url, NULL, NULL, 0, 300, &code, &body, NULL, err, sizeof(err)),
                     HIVE_ETIMEDOUT);
    assert_int_equal(code, -5);
    assert_string_equal(body, "untouched");
    assert_true(strlen(err) > 0);
    stop_server(&sv);
}

static void test_closed_port_and_bad_input(void **state)
{
    (void)state;
    server_t sv;
    int port = start_server(&sv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    long code;
    /* Used once to free the server thread, then the port is closed. */
    assert_int_equal(httpc_sync_request("GET", url, NULL, NULL, 0, 5000, &code, NULL, NULL, NULL, 0), 0);
    assert_int_equal(code, 200);
    stop_server(&sv);
    assert_int_equal(httpc_sync_request("GET", url, NULL, NULL, 0, 2000, &code, NULL, NULL, NULL, 0),
                     HIVE_EUNAVAILABLE);
    assert_int_equal(httpc_sync_request("GET", "nope://x", NULL, NULL, 0, 1000, &code, NULL, NULL, NULL, 0),
                     HIVE_EINVAL);
    assert_int_equal(httpc_sync_request("GET", url, NULL, NULL, 0, 0, &code, NULL, NULL, NULL, 0),
                     HIVE_EINVAL);
    assert_int_equal(httpc_sync_request(NULL, url, NULL, NULL, 0, 1000, &code, NULL, NULL, NULL, 0),
                     HIVE_EINVAL);
    assert_int_equal(httpc_sync_request("POST", url, NULL, NULL, 3, 1000, &code, NULL, NULL, NULL, 0),
                     HIVE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_code_and_body),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_closed_port_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
