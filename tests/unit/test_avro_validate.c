/* Unit tests of avro_validate: each rule the .avsc files declare (ranges, finite
 * numbers, string bytes, patterns, sizes, timestamps, record-level order) on
 * top-level fields, nested records, arrays, map keys and values and nullable
 * unions, and the reason each violation gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_validate.h"
#include "hive_err.h"

static avro_codec_t *codec;

static int setup(void **state)
{
    char err[256];
    (void)state;
    codec = avro_codec_create(NULL, err, sizeof(err));
    return codec ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    avro_codec_destroy(codec);
    return 0;
}

/* A healthy TelemetryAggregated window, every field in range. */
static avro_value_t telemetry(void)
{
    avro_value_t v;
    assert_int_equal(avro_codec_new_value(codec, "TelemetryAggregated", &v), 0);
    assert_int_equal(
        avro_set_string(&v, "service", "consensus-engine") ||
            avro_set_long(&v, "window_start", 1700000000000) ||
            avro_set_long(&v, "window_end", 1700000060000) || avro_set_long(&v, "request_count", 1000) ||
            avro_set_long(&v, "error_count", 3) || avro_set_double(&v, "error_rate", 0.003) ||
            avro_set_double(&v, "latency_p50_ms", 80) || avro_set_double(&v, "latency_p95_ms", 300) ||
            avro_set_double(&v, "latency_p99_ms", 600) || avro_set_double(&v, "slo_compliance", 0.999) ||
            avro_set_double(&v, "availability", 1) || avro_set_map_double(&v, "metrics", "cpu", 0.4),
        0);
    return v;
}

static avro_value_t insight(void)
{
    avro_value_t v;
    assert_int_equal(avro_codec_new_value(codec, "Insight", &v), 0);
    assert_int_equal(
        avro_set_string(&v, "insight_id", "ins-0123") || avro_set_string(&v, "source", "analyst agents") ||
            avro_set_enum_name(&v, "type", "DEGRADATION") || avro_set_enum_name(&v, "priority", "HIGH") ||
            avro_set_string(&v, "component", "orchestrator") ||
            avro_set_string(&v, "metric", "latency_p95_ms") || avro_set_double(&v, "current_value", 1500) ||
            avro_set_double(&v, "baseline_value", 300) ||
            avro_set_string(&v, "description", "p95 latency\tabove target\n") ||
            avro_set_long(&v, "timestamp", 1700000000000) ||
            avro_set_map_string(&v, "labels", "environment", "prod"),
        0);
    return v;
}

/* Validates v, frees it, and checks the verdict and that the reason is `want` exactly. */
static void expect(avro_value_t v, const char *name, const char *want)
{
    char reason[256] = "unset";
    int rc = avro_validate(codec, name, &v, reason, sizeof(reason));
    avro_value_decref(&v);
    if (!want) {
        if (rc != 0) {
            fail_msg("expected valid, got %d: %s", rc, reason);
        }
        return;
    }
    assert_int_equal(rc, HIVE_EBADMSG);
    assert_string_equal(reason, want);
}

static void test_good_records_pass(void **state)
{
    (void)state;
    expect(telemetry(), "TelemetryAggregated", NULL);
    expect(insight(), "Insight", NULL);
    avro_value_t v = telemetry();
    /* The bounds themselves are inside the range. */
    avro_set_double(&v, "error_rate", 1);
    avro_set_double(&v, "slo_compliance", 0);
    avro_set_double(&v, "latency_p99_ms", 3600000);
    avro_set_long(&v, "window_end", 1700000000000);
    avro_set_long(&v, "error_count", 1000);
    expect(v, "TelemetryAggregated", NULL);
}

static void test_doubles_finite_and_in_range(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_double(&v, "latency_p95_ms", INFINITY);
    expect(v, "TelemetryAggregated", "latency_p95_ms: +Infinity outside [0, 3600000]");
    v = telemetry();
    avro_set_double(&v, "latency_p50_ms", -INFINITY);
    expect(v, "TelemetryAggregated", "latency_p50_ms: -Infinity outside [0, 3600000]");
    v = telemetry();
    avro_set_double(&v, "error_rate", NAN);
    expect(v, "TelemetryAggregated", "error_rate: NaN outside [0, 1]");
    v = telemetry();
    avro_set_double(&v, "slo_compliance", 1.5);
    expect(v, "TelemetryAggregated", "slo_compliance: 1.5 outside [0, 1]");
    v = telemetry();
    avro_set_double(&v, "availability", -0.25);
    expect(v, "TelemetryAggregated", "availability: -0.25 outside [0, 1]");
    v = telemetry();
    avro_set_double(&v, "error_rate", 1.0000000000000002);
    expect(v, "TelemetryAggregated", "error_rate: 1.0000000000000002 outside [0, 1]");
}

static void test_counts_and_timestamps(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_long(&v, "request_count", -5);
    expect(v, "TelemetryAggregated", "request_count: -5 outside [0, 1e+15]");
    v = telemetry();
    avro_set_long(&v, "window_start", -4611686018427387904LL);
    expect(v, "TelemetryAggregated",
           "window_start: -4611686018427387904 outside [946684800000, 4102444800000] (milliseconds, years "
           "2000..2100)");
    v = telemetry();
    avro_set_long(&v, "window_end", 4102444800001LL);
    expect(
        v, "TelemetryAggregated",
        "window_end: 4102444800001 outside [946684800000, 4102444800000] (milliseconds, years 2000..2100)");
    v = telemetry();
    avro_set_int(&v, "schema_version", 0);
    expect(v, "TelemetryAggregated", "schema_version: 0 outside [1, 1000]");
}

static void test_record_order(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_long(&v, "window_end", 1699999999999);
    expect(v, "TelemetryAggregated",
           "window_end: 1699999999999 is less than window_start 1700000000000 (window_start <= window_end "
           "required)");
    v = telemetry();
    avro_set_long(&v, "error_count", 1001);
    expect(v, "TelemetryAggregated",
           "request_count: 1000 is less than error_count 1001 (error_count <= request_count required)");
}

static void test_strings(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_string_len(&v, "service", "svc\0evil", 8);
    expect(v, "TelemetryAggregated", "service: contains a NUL byte at byte 3");
    v = telemetry();
    avro_set_string(&v, "service", "svc-\xc3\x28");
    expect(v, "TelemetryAggregated", "service: not valid UTF-8 at byte 4");
    v = telemetry();
    avro_set_string(&v, "service", "svc-\xed\xa0\x80"); /* a UTF-16 surrogate */
    expect(v, "TelemetryAggregated", "service: not valid UTF-8 at byte 4");
    v = telemetry();
    avro_set_string(&v, "service", "\xc0\xaf"); /* an overlong '/' */
    expect(v, "TelemetryAggregated", "service: not valid UTF-8 at byte 0");
    v = telemetry();
    avro_set_string(&v, "service", "");
    expect(v, "TelemetryAggregated", "service: 0 bytes, shorter than the 1 required");
    char longname[200];
    memset(longname, 'a', 129);
    longname[129] = '\0';
    v = telemetry();
    avro_set_string(&v, "service", longname);
    expect(v, "TelemetryAggregated", "service: 129 bytes, longer than the 128 accepted");
    v = telemetry();
    avro_set_string(&v, "service", "a b");
    expect(v, "TelemetryAggregated", "service: \"a b\" is not a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)");
    v = telemetry();
    avro_set_string(&v, "service", "-svc");
    expect(v, "TelemetryAggregated", "service: \"-svc\" is not a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)");
    /* Valid multi-byte UTF-8 in text fields is fine; a control character is not. */
    v = insight();
    avro_set_string(&v, "description", "latência acima do alvo \xf0\x9f\x90\x9d");
    expect(v, "Insight", NULL);
    v = insight();
    avro_set_string(&v, "description", "bell\x07");
    expect(v, "Insight", "description: contains a control character (0x07) at byte 4");
    v = insight();
    avro_set_string(&v, "source", "two\nlines");
    expect(v, "Insight", "source: contains a control character (0x0a) at byte 3");
    /* The default length bound applies to fields that declare none. */
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    v = insight();
    avro_set_string(&v, "description", big);
    free(big);
    expect(v, "Insight", "description: 4999 bytes, longer than the 4096 accepted");
}

static void test_maps(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_map_double(&v, "metrics", "throughput_rps", NAN);
    expect(v, "TelemetryAggregated", "metrics[\"throughput_rps\"]: NaN is not a finite number");
    v = telemetry();
    avro_set_map_double(&v, "metrics", "cpu load", 1);
    expect(v, "TelemetryAggregated",
           "metrics[\"cpu load\"]: \"cpu load\" is not a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)");
    v = insight();
    avro_set_map_string(&v, "labels", "rule", "a\x1b[31m");
    expect(v, "Insight", "labels[\"rule\"]: contains a control character (0x1b) at byte 1");
    v = insight();
    avro_set_map_string(&v, "labels", "", "x");
    expect(v, "Insight", "labels[\"\"]: empty map key");
    v = insight();
    for (int i = 0; i < 64; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        avro_set_map_string(&v, "labels", key, "v");
    }
    expect(v, "Insight", "labels: 65 entries, more than the 64 accepted");
}

static void test_nullable_unions(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    avro_set_null(&v, "variant");
    expect(v, "TelemetryAggregated", NULL);
    v = telemetry();
    avro_set_string(&v, "variant", "experimental");
    avro_set_string(&v, "experiment_id", "exp-42");
    expect(v, "TelemetryAggregated", NULL);
    v = telemetry();
    avro_set_string(&v, "experiment_id", "exp\x01");
    expect(v, "TelemetryAggregated",
           "experiment_id: \"exp\\x01\" is not a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)");
    v = telemetry();
    avro_set_string(&v, "variant", "");
    expect(v, "TelemetryAggregated", "variant: 0 bytes, shorter than the 1 required");
}

static avro_value_t decision(void)
{
    avro_value_t v, op;
    assert_int_equal(avro_codec_new_value(codec, "ConsensusDecision", &v), 0);
    avro_set_string(&v, "decision_id", "dec-1");
    avro_set_string(&v, "engine", "consensus");
    avro_set_long(&v, "timestamp", 1700000000000);
    avro_set_double(&v, "final_score", 0.7);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(avro_append_item(&v, "opinions", &op), 0);
        avro_codec_apply_defaults(codec, &op);
        avro_set_string(&op, "specialist", i ? "safety" : "technical");
        avro_set_double(&op, "score", 0.5);
        avro_set_double(&op, "confidence", 0.9);
    }
    avro_set_map_double(&v, "weights", "technical", 0.2);
    return v;
}

static void test_nested_records_and_arrays(void **state)
{
    (void)state;
    expect(decision(), "ConsensusDecision", NULL);
    avro_value_t v = decision(), opinions, op;
    avro_value_get_by_name(&v, "opinions", &opinions, NULL);
    avro_value_get_by_index(&opinions, 1, &op, NULL);
    avro_set_double(&op, "score", NAN);
    expect(v, "ConsensusDecision", "opinions[1].score: NaN outside [0, 1]");
    v = decision();
    avro_set_map_double(&v, "weights", "safety", 2);
    expect(v, "ConsensusDecision", "weights[\"safety\"]: 2 outside [0, 1]");

    /* An array of arrays: the rule reaches the innermost values. */
    avro_value_t fb, rows, row, x;
    assert_int_equal(avro_codec_new_value(codec, "FeatureBatch", &fb), 0);
    avro_set_string(&fb, "model", "technical");
    avro_set_string(&fb, "model_version", "3");
    avro_set_long(&fb, "timestamp", 1700000000000);
    avro_value_get_by_name(&fb, "rows", &rows, NULL);
    avro_value_append(&rows, &row, NULL);
    avro_value_append(&row, &x, NULL);
    avro_value_set_double(&x, 1.0);
    avro_value_append(&row, &x, NULL);
    avro_value_set_double(&x, INFINITY);
    expect(fb, "FeatureBatch", "rows[0][1]: +Infinity is not a finite number");
}

static void test_wrong_record_and_small_buffer(void **state)
{
    (void)state;
    avro_value_t v = telemetry();
    char reason[128];
    assert_int_equal(avro_validate(codec, "Insight", &v, reason, sizeof(reason)), HIVE_EINVAL);
    assert_string_equal(reason, "expected record Insight, got TelemetryAggregated");
    /* NULL record name: the value's own type. */
    assert_int_equal(avro_validate(NULL, NULL, &v, reason, sizeof(reason)), 0);
    avro_set_double(&v, "latency_p95_ms", INFINITY);
    char tiny[12];
    assert_int_equal(avro_validate(codec, "TelemetryAggregated", &v, tiny, sizeof(tiny)), HIVE_EBADMSG);
    assert_string_equal(tiny, "latency_p95");
    assert_int_equal(avro_validate(codec, "TelemetryAggregated", &v, NULL, 0), HIVE_EBADMSG);
    avro_value_decref(&v);
}

/* Every embedded current schema has rules for each of its fields, in order. */
static void test_every_schema_has_rules(void **state)
{
    (void)state;
    size_t checked = 0;
    for (size_t i = 0; i < hive_schemas_count; i++) {
        if (!hive_schemas[i].current) {
            continue;
        }
        const avro_record_rules_t *r = avro_validate_rules(hive_schemas[i].name);
        assert_non_null(r);
        avro_value_t v;
        assert_int_equal(avro_codec_new_value(codec, hive_schemas[i].name, &v), 0);
        size_t n = 0;
        avro_value_get_size(&v, &n);
        assert_int_equal(n, r->nfields);
        for (size_t k = 0; k < n; k++) {
            avro_value_t f;
            const char *name;
            avro_value_get_by_index(&v, k, &f, &name);
            assert_string_equal(name, r->fields[k].field);
        }
        avro_value_decref(&v);
        checked++;
    }
    assert_int_equal(checked, 17);
    assert_null(avro_validate_rules("NoSuchRecord"));
    /* A declared rule: the one of the example. */
    const avro_record_rules_t *t = avro_validate_rules("TelemetryAggregated");
    assert_int_equal(t->fields[8].flags, AVRO_RULE_RANGE | AVRO_RULE_FINITE);
    assert_string_equal(t->fields[8].field, "latency_p95_ms");
    assert_true(t->fields[8].min == 0 && t->fields[8].max == 3600000);
}

static void test_decode_then_validate(void **state)
{
    (void)state;
    avro_value_t v = telemetry(), out;
    void *buf;
    size_t len;
    char reason[256];
    assert_int_equal(avro_codec_encode(codec, "telemetry", &v, &buf, &len, reason, sizeof(reason)), 0);
    assert_int_equal(
        avro_validate_decode(codec, buf, len, "TelemetryAggregated", &out, reason, sizeof(reason)), 0);
    avro_value_decref(&out);
    free(buf);

    avro_set_string_len(&v, "service", "a\0b", 3);
    assert_int_equal(avro_codec_encode(codec, "telemetry", &v, &buf, &len, reason, sizeof(reason)), 0);
    assert_int_equal(
        avro_validate_decode(codec, buf, len, "TelemetryAggregated", &out, reason, sizeof(reason)),
        HIVE_EBADMSG);
    assert_string_equal(reason, "service: contains a NUL byte at byte 1");
    /* Undecodable bytes keep the codec's own code and reason. */
    assert_int_not_equal(
        avro_validate_decode(codec, buf, 3, "TelemetryAggregated", &out, reason, sizeof(reason)), 0);
    assert_true(strlen(reason) > 0);
    free(buf);
    avro_value_decref(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_records_pass),
        cmocka_unit_test(test_doubles_finite_and_in_range),
        cmocka_unit_test(test_counts_and_timestamps),
        cmocka_unit_test(test_record_order),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_nullable_unions),
        cmocka_unit_test(test_nested_records_and_arrays),
        cmocka_unit_test(test_wrong_record_and_small_buffer),
        cmocka_unit_test(test_every_schema_has_rules),
        cmocka_unit_test(test_decode_then_validate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
