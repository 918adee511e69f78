/* httpc against the local stack's real servers (./hive stack up):
 * Prometheus's HTTP API and MLflow's REST API, read-only.
 *   PROMETHEUS_URL       default http://127.0.0.1:9090
 *   MLFLOW_TRACKING_URI  default http://127.0.0.1:5000
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"

typedef struct {
    int status;
    long code;
    json_t *json;
    int calls;
} result_t;

static void on_done(void *arg, int status, long code, const char *body, size_t len)
{
    result_t *r = arg;
    r->status = status;
    r->code = code;
    r->calls++;
    r->json = json_loadb(body, len, 0, NULL);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until every request has completed, then closes. */
static void run(uv_loop_t *loop, httpc_t *c)
{
    while (httpc_pending(c) > 0) {
        uv_run(loop, UV_RUN_ONCE);
    }
    bool closed = false;
    httpc_close(c, on_closed, &closed);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_true(closed);
    httpc_destroy(c);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_prometheus_query(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    httpc_t *c = httpc_create(&loop);
    assert_non_null(c);
    const char *base = env_or("PROMETHEUS_URL", "http://127.0.0.1:9090");
    char url[512];
    result_t ok = {0}, bad = {0};
    snprintf(url, sizeof(url), "%s/api/v1/query?query=up", base);
    assert_int_equal(httpc_request(c, "GET", url, NULL, NULL, 0, 10000, on_done, &ok), 0);
    snprintf(url, sizeof(url), "%s/api/v1/query?query=%%28", base); /* "(" : a syntax error */
    assert_int_equal(httpc_request(c, "GET", url, NULL, NULL, 0, 10000, on_done, &bad), 0);
    run(&loop, c);

    assert_int_equal(ok.status, 0);
    assert_int_equal(ok.code, 200);
    assert_non_null(ok.json);
    assert_string_equal(json_string_value(json_object_get(ok.json, "status")), "success");
    assert_int_equal(bad.status, 0); /* an HTTP error is an answer, not a transport failure */
    assert_int_equal(bad.code, 400);
    assert_string_equal(json_string_value(json_object_get(bad.json, "status")), "error");
    json_decref(ok.json);
    json_decref(bad.json);
}

static void test_mlflow_search(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    httpc_t *c = httpc_create(&loop);
    const char *base = env_or("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000");
    char url[512];
    result_t search = {0}, missing = {0};
    snprintf(url, sizeof(url), "%s/api/2.0/mlflow/experiments/search", base);
    const char *body = "{\"max_results\": 5}";
    assert_int_equal(
        httpc_request(c, "POST", url, "application/json", body, strlen(body), 10000, on_done, &search), 0);
    snprintf(url, sizeof(url), "%s/api/2.0/mlflow/experiments/get?experiment_id=999999999", base);
    assert_int_equal(httpc_request(c, "GET", url, NULL, NULL, 0, 10000, on_done, &missing), 0);
    run(&loop, c);

    assert_int_equal(search.status, 0);
    assert_int_equal(search.code, 200);
    assert_non_null(search.json);
    assert_true(json_is_object(search.json));
    assert_int_equal(missing.status, 0);
    assert_int_equal(missing.code, 404);
    assert_string_equal(json_string_value(json_object_get(missing.json, "error_code")),
                        "RESOURCE_DOES_NOT_EXIST");
    json_decref(search.json);
    json_decref(missing.json);
}

int main(void)
{
    log_init("itest_httpc", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_query),
        cmocka_unit_test(test_mlflow_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
