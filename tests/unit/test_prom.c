/* The Prometheus metric source's pure parts: the $variant placeholder and
 * the answers of /api/v1/query (formats as Prometheus documents them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "hive_err.h"
#include "prom.h"

static void test_expand(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(prom_expand("avg(x{variant=\"$variant\"}) / $variant", "candidate", out, sizeof(out)),
                     0);
    assert_string_equal(out, "avg(x{variant=\"candidate\"}) / candidate");
    assert_int_equal(prom_expand("up", "baseline", out, sizeof(out)), 0);
    assert_string_equal(out, "up");
    assert_int_equal(prom_expand("$variant", "baseline", out, 8), HIVE_ETOOBIG); /* 8 + NUL */
    assert_int_equal(prom_expand("$variant", "baseline", out, 9), 0);
    assert_string_equal(out, "baseline");
}

static int parse(const char *body, double *v)
{
    char err[128];
    return prom_parse_value(body, strlen(body), v, err, sizeof(err));
}

static void test_parse(void **state)
{
    (void)state;
    double v = 0;
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{"
                           "\"metric\":{\"job\":\"a\"},"
                           "\"value\":[1700000000.5,\"12.25\"]}]}}",
                           &v),
                     0);
    assert_true(v == 12.25);
    assert_int_equal(
        parse("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1.0,\"-3\"]}}", &v),
        0);
    assert_true(v == -3);
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}", &v),
                     HIVE_ENOTFOUND);
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                           "{\"metric\":{},\"value\":[1,\"1\"]},{\"metric\":{},\"value\":[1,\"2\"]}]}}",
                           &v),
                     HIVE_EPROTO); /* several samples: the query must aggregate */
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                           "{\"metric\":{},\"value\":[1,\"NaN\"]}]}}",
                           &v),
                     HIVE_EPROTO);
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}", &v),
                     HIVE_EPROTO);
    assert_int_equal(parse("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error\"}", &v),
                     HIVE_EPROTO);
    assert_int_equal(parse("not json", &v), HIVE_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
