/* libFuzzer target: what the HTTP server does with a request's outside
 * input, without sockets. The input is split at the first two newlines:
 *
 *   <method byte><request target: path?query>\n<Content-Type>\n<body>
 *
 * and goes through router_match (on a table like a service's), the query
 * parser, the %-decoder and http_json_parse. Besides the sanitizers, it
 * checks invariants: decoded text never grows, a parsed body is an object
 * or array that survives a dump/load round trip unchanged, and an error
 * always comes with a message. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static router_t *make_router(void)
{
    static int tag;
    router_t *r = router_create();
    const char *routes[][2] = {
        {"GET", "/health"},
        {"GET", "/api/v1/optimizations/{id}"},
        {"DELETE", "/api/v1/optimizations/{id}"},
        {"GET", "/api/v1/optimizations/stats"},
        {"POST", "/api/v1/experiments/{exp}/runs/{run}"},
        {"PUT", "/api/v1/slos/{service}/{name}"},
        {"GET", "/"},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (router_add(r, routes[i][0], routes[i][1], &tag) != 0) {
            abort();
        }
    }
    return r;
}

static const char *next_line(const char **p, const char *end, size_t *out_len)
{
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    *out_len = nl ? (size_t)(nl - start) : (size_t)(end - start);
    *p = nl ? nl + 1 : end;
    return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static router_t *router;
    if (!router) {
        router = make_router();
    }
    if (size < 1) {
        return 0;
    }
    static const char *methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "X"};
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    size_t tlen, ctlen;
    const char *target = next_line(&p, end, &tlen);
    const char *ct = next_line(&p, end, &ctlen);
    const char *body = p;
    size_t blen = (size_t)(end - p);

    /* Route the path part, as the server does. */
    const char *q = memchr(target, '?', tlen);
    size_t pathlen = q ? (size_t)(q - target) : tlen;
    router_match_t m;
    router_result_t res = router_match(router, method, target, pathlen, &m);
    if (res == ROUTER_FOUND) {
        assert(m.data && m.pattern);
        for (size_t i = 0; i < m.nparams; i++) {
            assert(strlen(m.params[i].value) <= pathlen);
            assert(router_match_param(&m, m.params[i].name) != NULL);
        }
    } else if (res == ROUTER_METHOD_NOT_ALLOWED) {
        assert(m.pattern && m.allow[0]);
    }
    router_match_free(&m);

    if (q) {
        router_query_t qs;
        size_t qlen = tlen - pathlen - 1;
        if (router_query_parse(q + 1, qlen, &qs) == 0) {
            for (size_t i = 0; i < qs.n; i++) {
                assert(strlen(qs.names[i]) + strlen(qs.values[i]) <= qlen);
                assert(router_query_get(&qs, qs.names[i]) != NULL);
            }
        }
        router_query_free(&qs);
    }

    char *dec = malloc(tlen + 1);
    long n = router_url_decode(target, tlen, true, dec);
    assert(n < 0 || (size_t)n <= tlen);
    free(dec);

    /* The body, with and without the Content-Type line. */
    char err[256] = "";
    json_t *json = http_json_parse(ctlen ? ct : NULL, ctlen, body, blen, err, sizeof(err));
    if (json) {
        assert(json_is_object(json) || json_is_array(json));
        char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
        assert(text);
        json_t *again = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert(again && json_equal(json, again));
        json_decref(again);
        free(text);
        json_decref(json);
    } else {
        assert(err[0] != '\0');
    }
    return 0;
}
