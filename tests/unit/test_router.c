#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "router.h"

static int A, B, C, D, E;

static router_t *make_router(void)
{
    router_t *r = router_create();
    assert_non_null(r);
    assert_int_equal(router_add(r, "GET", "/health", &A), 0);
    assert_int_equal(router_add(r, "GET", "/api/v1/optimizations/{id}", &B), 0);
    assert_int_equal(router_add(r, "DELETE", "/api/v1/optimizations/{id}", &C), 0);
    assert_int_equal(router_add(r, "GET", "/api/v1/optimizations/stats", &D), 0);
    assert_int_equal(router_add(r, "POST", "/api/v1/experiments/{exp}/runs/{run}", &E), 0);
    return r;
}

static router_result_t match(const router_t *r, const char *method, const char *path, router_match_t *m)
{
    return router_match(r, method, path, strlen(path), m);
}

static void test_literal_and_params(void **state)
{
    (void)state;
    router_t *r = make_router();
    router_match_t m;

    assert_int_equal(match(r, "GET", "/health", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &A);
    assert_string_equal(m.pattern, "/health");
    assert_int_equal(m.nparams, 0);
    router_match_free(&m);

    assert_int_equal(match(r, "GET", "/api/v1/optimizations/opt-42", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &B);
    assert_string_equal(m.pattern, "/api/v1/optimizations/{id}");
    assert_string_equal(router_match_param(&m, "id"), "opt-42");
    assert_null(router_match_param(&m, "nope"));
    router_match_free(&m);

    assert_int_equal(match(r, "POST", "/api/v1/experiments/e1/runs/r%2F2", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &E);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(router_match_param(&m, "exp"), "e1");
    assert_string_equal(router_match_param(&m, "run"), "r/2"); /* decoded once, after splitting */
    router_match_free(&m);
    router_destroy(r);
}

static void test_literal_beats_param(void **state)
{
    (void)state;
    router_t *r = make_router();
    router_match_t m;
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/stats", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &D);
    router_match_free(&m);
    /* The concrete path owns it for every method (OpenAPI matches concrete
     * paths before templated ones): DELETE is not allowed there, although the
     * parameter route has DELETE. */
    assert_int_equal(match(r, "DELETE", "/api/v1/optimizations/stats", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_null(m.data);
    assert_string_equal(m.pattern, "/api/v1/optimizations/stats");
    assert_string_equal(m.allow, "GET");
    router_match_free(&m);
    assert_int_equal(match(r, "DELETE", "/api/v1/optimizations/other", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &C);
    assert_string_equal(router_match_param(&m, "id"), "other");
    router_match_free(&m);
    router_destroy(r);
}

static void test_not_found_vs_method_not_allowed(void **state)
{
    (void)state;
    router_t *r = make_router();
    router_match_t m;

    assert_int_equal(match(r, "GET", "/nope", &m), ROUTER_NOT_FOUND);
    assert_null(m.data);
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/health/", &m), ROUTER_NOT_FOUND); /* no trailing-slash folding */
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/", &m), ROUTER_NOT_FOUND); /* empty param */
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/a/b", &m), ROUTER_NOT_FOUND);
    router_match_free(&m);

    assert_int_equal(match(r, "POST", "/health", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_null(m.data);
    assert_string_equal(m.pattern, "/health");
    assert_string_equal(m.allow, "GET");
    router_match_free(&m);

    assert_int_equal(match(r, "PUT", "/api/v1/optimizations/x", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.pattern, "/api/v1/optimizations/{id}");
    assert_string_equal(m.allow, "GET, DELETE");
    router_match_free(&m);
    router_destroy(r);
}

static void test_head_falls_back_to_get(void **state)
{
    (void)state;
    router_t *r = make_router();
    router_match_t m;
    assert_int_equal(match(r, "HEAD", "/health", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &A);
    router_match_free(&m);
    int h;
    assert_int_equal(router_add(r, "HEAD", "/health", &h), 0);
    assert_int_equal(match(r, "HEAD", "/health", &m), ROUTER_FOUND);
    assert_ptr_equal(m.data, &h);
    router_match_free(&m);
    router_destroy(r);
}

static void test_bad_paths(void **state)
{
    (void)state;
    router_t *r = make_router();
    router_match_t m;
    assert_int_equal(match(r, "GET", "health", &m), ROUTER_BAD_PATH);
    router_match_free(&m);
    assert_int_equal(router_match(r, "GET", "", 0, &m), ROUTER_BAD_PATH);
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/%zz", &m), ROUTER_BAD_PATH);
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/%4", &m), ROUTER_BAD_PATH);
    router_match_free(&m);
    assert_int_equal(match(r, "GET", "/api/v1/optimizations/a%00b", &m), ROUTER_BAD_PATH);
    router_match_free(&m);
    /* deeper than ROUTER_MAX_SEGMENTS: simply no match */
    char deep[200] = "";
    for (int i = 0; i < 40; i++) {
        strcat(deep, "/a");
    }
    assert_int_equal(match(r, "GET", deep, &m), ROUTER_NOT_FOUND);
    router_match_free(&m);
    router_destroy(r);
}

static void test_bad_patterns(void **state)
{
    (void)state;
    router_t *r = router_create();
    int x;
    assert_int_equal(router_add(r, "GET", "relative", &x), -1);
    assert_int_equal(router_add(r, "GET", "/a/{", &x), -1);
    assert_int_equal(router_add(r, "GET", "/a/{}", &x), -1);
    assert_int_equal(router_add(r, "GET", "/a/x{id}", &x), -1);
    assert_int_equal(router_add(r, "GET", "/a/{i-d}", &x), -1);
    assert_int_equal(router_add(r, "GET", "/a/{id}/{id}", &x), -1);
    assert_int_equal(router_add(r, "GET", "/", &x), 0);
    assert_int_equal(router_add(r, "GET", "/", &x), -1); /* duplicate */
    assert_int_equal(router_add(r, "POST", "/", &x), 0);
    router_match_t m;
    assert_int_equal(match(r, "GET", "/", &m), ROUTER_FOUND);
    router_match_free(&m);
    router_destroy(r);
}

static void test_url_decode(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(router_url_decode("a%20b+c", 7, true, out), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(router_url_decode("a%20b+c", 7, false, out), 5);
    assert_string_equal(out, "a b+c");
    assert_int_equal(router_url_decode("%C3%a9", 6, false, out), 2);
    assert_string_equal(out, "\xc3\xa9");
    assert_int_equal(router_url_decode("%", 1, false, out), -1);
    assert_int_equal(router_url_decode("%2", 2, false, out), -1);
    assert_int_equal(router_url_decode("%g0", 3, false, out), -1);
    assert_int_equal(router_url_decode("%00", 3, false, out), -1);
    assert_int_equal(router_url_decode("", 0, false, out), 0);
    assert_string_equal(out, "");
}

static void test_query(void **state)
{
    (void)state;
    router_query_t q;
    const char *qs = "limit=10&name=a+b%26c&flag&&empty=&limit=20&%3D=eq";
    assert_int_equal(router_query_parse(qs, strlen(qs), &q), 0);
    assert_int_equal(q.n, 6);
    assert_string_equal(router_query_get(&q, "limit"), "10"); /* first wins */
    assert_string_equal(router_query_get(&q, "name"), "a b&c");
    assert_string_equal(router_query_get(&q, "flag"), "");
    assert_string_equal(router_query_get(&q, "empty"), "");
    assert_string_equal(router_query_get(&q, "="), "eq");
    assert_null(router_query_get(&q, "missing"));
    router_query_free(&q);

    assert_int_equal(router_query_parse("", 0, &q), 0);
    assert_int_equal(q.n, 0);
    assert_null(router_query_get(&q, "a"));
    router_query_free(&q);

    assert_int_equal(router_query_parse("a=%zz", 5, &q), -1);
    assert_int_equal(q.n, 0);
    router_query_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_params),
        cmocka_unit_test(test_literal_beats_param),
        cmocka_unit_test(test_not_found_vs_method_not_allowed),
        cmocka_unit_test(test_head_falls_back_to_get),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
