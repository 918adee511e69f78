/* Unit tests of avro_codec, avro_fields and avro_wire: the embedded schemas, round
 * trips of every record, Confluent framing errors, schema evolution, hostile input,
 * and byte-for-byte agreement with libavro-c's own encoder.
 *
 * With HIVE_AVRO_INTEROP_DIR set, also writes <Name>.c.bin (framed, local ids) for
 * every record and checks that each <Name>.py.bin found there (written by
 * scripts/hive_avro.py with fastavro) decodes and re-encodes to the same
 * bytes; tests/integration/test_avro_interop.py drives this. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above. */
#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_codec.h"

static avro_codec_t *codec;

static const char *const RECORDS[] = {
    "TelemetryAggregated", "Insight",
    "ConsensusDecision",   "FeatureBatch",
    "ApprovalRequest",     "ApprovalResponse",
    "ExperimentRequest",   "TrafficAssignment",
    "ExperimentResult",    "OptimizationCommand",
    "OptimizationEvent",   "ConsensusWeights",
    "ServiceSLO",          "ModelHealthReport",
    "ModelDegradation",    "ModelLifecycleEvent",
    "OrchestratorPolicy",
};
#define NRECORDS (sizeof(RECORDS) / sizeof(RECORDS[0]))

static int setup(void **state)
{
    char err[256];
    (void)state;
    codec = avro_codec_create(NULL, err, sizeof(err));
    if (!codec) {
        fprintf(stderr, "avro_codec_create: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    avro_codec_destroy(codec);
    return 0;
}

/* Sets every field of v, choosing the non-null branch of unions, two items per array
 * and map, the last enum symbol: an example record with all fields set. */
static void fill(avro_value_t *v, const char *name, int seed)
{
    char buf[128];
    switch (avro_value_get_type(v)) {
    case AVRO_STRING:
        snprintf(buf, sizeof(buf), "%s-%d-ação", name ? name : "item", seed);
        assert_int_equal(avro_value_set_string(v, buf), 0);
        break;
    case AVRO_BYTES:
        assert_int_equal(avro_value_set_bytes(v, "\x00\x01", 2), 0);
        break;
    case AVRO_INT32:
        assert_int_equal(avro_value_set_int(v, name && !strcmp(name, "schema_version") ? 1 : 42 + seed), 0);
        break;
    case AVRO_INT64:
        assert_int_equal(avro_value_set_long(v, 1700000000000LL + seed), 0);
        break;
    case AVRO_FLOAT:
        assert_int_equal(avro_value_set_float(v, 0.5f + (float)seed), 0);
        break;
    case AVRO_DOUBLE:
        assert_int_equal(avro_value_set_double(v, 0.125 * (seed + 1) + 1e-9), 0);
        break;
    case AVRO_BOOLEAN:
        assert_int_equal(avro_value_set_boolean(v, 1), 0);
        break;
    case AVRO_NULL:
        assert_int_equal(avro_value_set_null(v), 0);
        break;
    case AVRO_ENUM: {
        avro_schema_t e = avro_value_get_schema(v);
        assert_int_equal(avro_value_set_enum(v, avro_schema_enum_number_of_symbols(e) - 1), 0);
        break;
    }
    case AVRO_UNION: {
        avro_value_t b;
        size_t n = avro_schema_union_size(avro_value_get_schema(v));
        assert_int_equal(avro_value_set_branch(v, (int)n - 1, &b), 0);
        fill(&b, name, seed);
        break;
    }
    case AVRO_ARRAY:
        for (int i = 0; i < 2; i++) {
            avro_value_t item;
            assert_int_equal(avro_value_append(v, &item, NULL), 0);
            fill(&item, name, seed + i);
        }
        break;
    case AVRO_MAP:
        for (int i = 0; i < 2; i++) {
            avro_value_t item;
            snprintf(buf, sizeof(buf), "k%d", i);
            assert_int_equal(avro_value_add(v, buf, &item, NULL, NULL), 0);
            fill(&item, name, seed + i);
        }
        break;
    case AVRO_RECORD: {
        size_t n = 0;
        avro_value_get_size(v, &n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t f;
            const char *fname;
            assert_int_equal(avro_value_get_by_index(v, i, &f, &fname), 0);
            fill(&f, fname, seed + (int)i);
        }
        break;
    }
    default:
        fail_msg("unexpected type");
    }
}

static void example(const char *name, avro_value_t *out)
{
    assert_int_equal(avro_codec_new_value(codec, name, out), 0);
    fill(out, NULL, 0);
}

static void encode_ok(const avro_value_t *v, uint8_t **out, size_t *len)
{
    char err[256] = "";
    int rc = avro_codec_encode(codec, "test.topic", v, (void **)out, len, err, sizeof(err));
    if (rc) {
        fail_msg("encode: %s", err);
    }
}

static int32_t local_id(const char *name)
{
    for (size_t i = 0; i < hive_schemas_count; i++) {
        if (hive_schemas[i].current && !strcmp(hive_schemas[i].name, name)) {
            return hive_schemas[i].local_id;
        }
    }
    return -1;
}

/* Expects decode to fail with `code` and a reason containing `want`. */
static void expect_error(const void *buf, size_t len, const char *expected, int code, const char *want)
{
    char err[256] = "";
    avro_value_t v;
    int rc = avro_codec_decode(codec, buf, len, expected, &v, err, sizeof(err));
    if (rc != code || !strstr(err, want)) {
        fail_msg("decode: rc %d (want %d), reason \"%s\" (want \"%s\")", rc, code, err, want);
    }
}

/* ------------------------------------------------------------------ schemas */

static void test_every_schema_is_embedded_and_parses(void **state)
{
    (void)state;
    size_t current = 0;
    for (size_t i = 0; i < hive_schemas_count; i++) {
        avro_schema_t s = NULL;
        const hive_schema_def_t *d = &hive_schemas[i];
        assert_int_equal(avro_schema_from_json_length(d->json, strlen(d->json), &s), 0);
        assert_int_equal(avro_typeof(s), AVRO_RECORD);
        assert_string_equal(avro_schema_name(s), d->name);
        assert_string_equal(avro_schema_namespace(s), "org.neuralhive.optimizer");
        assert_string_equal(avro_schema_record_field_name(s, 0), "schema_version");
        assert_int_equal(avro_typeof(avro_schema_record_field_get_by_index(s, 0)), AVRO_INT32);
        for (size_t k = 0; k < i; k++) {
            assert_int_not_equal(hive_schemas[k].local_id, d->local_id);
        }
        current += d->current ? 1 : 0;
        avro_schema_decref(s);
    }
    assert_int_equal(current, NRECORDS);
    for (size_t i = 0; i < NRECORDS; i++) {
        assert_true(local_id(RECORDS[i]) > 0);
    }
    assert_int_equal(local_id("TelemetryAggregated"), 1001);
}

static void test_new_value_applies_defaults(void **state)
{
    (void)state;
    avro_value_t v;
    int32_t sv;
    int64_t l;
    double d;
    size_t n;
    const char *s;
    size_t len;

    assert_int_equal(avro_codec_new_value(codec, "TelemetryAggregated", &v), 0);
    assert_int_equal(avro_get_int(&v, "schema_version", &sv), 0);
    assert_int_equal(sv, 1);
    assert_int_equal(avro_get_nullable_string(&v, "variant", &s, &len), 1);
    assert_int_equal(avro_get_nullable_string(&v, "experiment_id", &s, &len), 1);
    assert_int_equal(avro_get_size(&v, "metrics", &n), 0);
    assert_int_equal(n, 0);
    avro_value_decref(&v);

    assert_int_equal(avro_codec_new_value(codec, "ExperimentRequest", &v), 0);
    assert_int_equal(avro_get_double(&v, "traffic_split", &d), 0);
    assert_float_equal(d, 0.1, 0);
    assert_int_equal(avro_get_long(&v, "duration_seconds", &l), 0);
    assert_int_equal(l, 3600);
    assert_int_equal(avro_get_enum_name(&v, "optimization_type", &s), -1); /* null */
    avro_value_decref(&v);

    assert_int_equal(avro_codec_new_value(codec, "ApprovalResponse", &v), 0);
    assert_int_equal(avro_get_string(&v, "approver", &s, &len), 0);
    assert_string_equal(s, "queen-agent");
    assert_int_equal(len, strlen("queen-agent"));
    avro_value_decref(&v);

    /* A record field without a default gets its own fields' defaults. */
    avro_value_t ca;
    assert_int_equal(avro_codec_new_value(codec, "OptimizationEvent", &v), 0);
    assert_int_equal(avro_get_field(&v, "causal_analysis", &ca), 0);
    assert_int_equal(avro_get_nullable_string(&ca, "insight_id", &s, &len), 1);
    assert_int_equal(avro_get_string(&ca, "summary", &s, &len), 0);
    assert_string_equal(s, "");
    avro_value_decref(&v);

    assert_int_equal(avro_codec_new_value(codec, "NoSuchRecord", &v), HIVE_EINVAL);
}

/* ------------------------------------------------------------------ round trips */

static void test_every_record_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < NRECORDS; i++) {
        avro_value_t a, b;
        uint8_t *buf;
        size_t len;
        char err[256] = "";
        example(RECORDS[i], &a);
        encode_ok(&a, &buf, &len);
        int32_t id = local_id(RECORDS[i]);
        assert_int_equal(buf[0], 0);
        assert_int_equal((buf[1] << 24) | (buf[2] << 16) | (buf[3] << 8) | buf[4], id);
        if (avro_codec_decode(codec, buf, len, RECORDS[i], &b, err, sizeof(err))) {
            fail_msg("%s: %s", RECORDS[i], err);
        }
        if (!avro_value_equal(&a, &b)) {
            fail_msg("%s: decoded value differs from the encoded one", RECORDS[i]);
        }
        free(buf);
        avro_value_decref(&a);
        avro_value_decref(&b);
    }
}

/* Our encoder writes exactly what libavro-c's avro_value_write() writes, and each
 * side decodes the other's bytes (libavro-c's reader is safe on valid input). */
static void test_agrees_with_libavro_encoder_and_reader(void **state)
{
    (void)state;
    for (size_t i = 0; i < NRECORDS; i++) {
        avro_value_t a, b;
        uint8_t *buf;
        size_t len, size = 0;
        example(RECORDS[i], &a);
        encode_ok(&a, &buf, &len);

        assert_int_equal(avro_value_sizeof(&a, &size), 0);
        assert_int_equal(size, len - 5);
        char *theirs = malloc(size);
        avro_writer_t w = avro_writer_memory(theirs, (int64_t)size);
        assert_int_equal(avro_value_write(w, &a), 0);
        avro_writer_free(w);
        assert_memory_equal(theirs, buf + 5, size);

        avro_reader_t r = avro_reader_memory((const char *)buf + 5, (int64_t)size);
        assert_int_equal(avro_generic_value_new(a.iface, &b), 0);
        assert_int_equal(avro_value_read(r, &b), 0);
        avro_reader_free(r);
        assert_true(avro_value_equal(&a, &b));
        avro_value_decref(&b);

        free(theirs);
        free(buf);
        avro_value_decref(&a);
    }
}

static void test_field_accessors(void **state)
{
    (void)state;
    avro_value_t v, item;
    const char *s;
    size_t len, n;
    double d;
    int64_t l;
    bool b;

    assert_int_equal(avro_codec_new_value(codec, "ConsensusDecision", &v), 0);
    assert_int_equal(avro_set_string(&v, "decision_id", "dec-1"), 0);
    assert_int_equal(avro_set_string_len(&v, "engine", "main-engine-XXX", 11), 0);
    assert_int_equal(avro_set_long(&v, "timestamp", 1700000000123LL), 0);
    assert_int_equal(avro_set_double(&v, "final_score", 0.75), 0);
    assert_int_equal(avro_set_map_double(&v, "weights", "technical", 0.2), 0);
    assert_int_equal(avro_set_map_double(&v, "weights", "technical", 0.25), 0); /* replaces */
    assert_int_equal(avro_append_item(&v, "opinions", &item), 0);
    assert_int_equal(avro_codec_apply_defaults(codec, &item), 0);
    assert_int_equal(avro_set_string(&item, "specialist", "safety"), 0);
    assert_int_equal(avro_set_double(&item, "score", 0.9), 0);
    assert_int_equal(avro_set_double(&item, "confidence", 0.8), 0);

    /* outcome is ["null", "boolean"]: null by default, then set. */
    assert_int_equal(avro_get_nullable_bool(&v, "outcome", &b), 1);
    assert_int_equal(avro_get_bool(&v, "outcome", &b), -1);
    assert_int_equal(avro_set_bool(&v, "outcome", true), 0);
    assert_int_equal(avro_get_nullable_bool(&v, "outcome", &b), 0);
    assert_true(b);

    /* Mistakes are refused, and leave the outputs alone. */
    d = -1;
    assert_int_equal(avro_set_string(&v, "no_such_field", "x"), -1);
    assert_int_equal(avro_set_string(&v, "final_score", "x"), -1);
    assert_int_equal(avro_get_double(&v, "decision_id", &d), -1);
    assert_int_equal(avro_get_double(&v, "no_such_field", &d), -1);
    assert_float_equal(d, -1, 0);
    assert_int_equal(avro_get_map_double(&v, "weights", "legal", &d), -1);
    assert_int_equal(avro_append_string(&v, "opinions", "x"), -1);
    assert_int_equal(avro_get_size(&v, "opinions", &n), 0);
    assert_int_equal(n, 1);

    uint8_t *buf;
    size_t blen;
    avro_value_t w, op;
    char err[256];
    encode_ok(&v, &buf, &blen);
    assert_int_equal(avro_codec_decode(codec, buf, blen, "ConsensusDecision", &w, err, sizeof(err)), 0);
    assert_int_equal(avro_get_string(&w, "engine", &s, &len), 0);
    assert_string_equal(s, "main-engine");
    assert_int_equal(len, 11);
    assert_int_equal(avro_get_long(&w, "timestamp", &l), 0);
    assert_int_equal(l, 1700000000123LL);
    assert_int_equal(avro_get_map_double(&w, "weights", "technical", &d), 0);
    assert_float_equal(d, 0.25, 0);
    assert_int_equal(avro_get_field(&w, "opinions", &op), 0);
    assert_int_equal(avro_value_get_by_index(&op, 0, &item, NULL), 0);
    assert_int_equal(avro_get_string(&item, "specialist", &s, &len), 0);
    assert_string_equal(s, "safety");
    assert_int_equal(avro_get_bool(&w, "outcome", &b), 0);
    assert_true(b);
    assert_int_equal(avro_set_null(&w, "outcome"), 0);
    assert_int_equal(avro_get_nullable_bool(&w, "outcome", &b), 1);
    free(buf);
    avro_value_decref(&w);
    avro_value_decref(&v);

    /* Enums by name, nullable strings, maps of string, arrays of string. */
    assert_int_equal(avro_codec_new_value(codec, "Insight", &v), 0);
    assert_int_equal(avro_set_enum_name(&v, "priority", "CRITICAL"), 0);
    assert_int_equal(avro_set_enum_name(&v, "priority", "URGENT"), -1);
    assert_int_equal(avro_get_enum_name(&v, "priority", &s), 0);
    assert_string_equal(s, "CRITICAL");
    assert_int_equal(avro_set_map_string(&v, "labels", "rule", "latency"), 0);
    assert_int_equal(avro_get_map_string(&v, "labels", "rule", &s, &len), 0);
    assert_string_equal(s, "latency");
    avro_value_decref(&v);

    int64_t rev;
    assert_int_equal(avro_codec_new_value(codec, "OptimizationCommand", &v), 0);
    assert_int_equal(avro_get_nullable_long(&v, "expected_revision", &rev), 1);
    assert_int_equal(avro_set_long(&v, "expected_revision", 7), 0);
    assert_int_equal(avro_get_nullable_long(&v, "expected_revision", &rev), 0);
    assert_int_equal(rev, 7);
    assert_int_equal(avro_set_string(&v, "experiment_id", "exp-1"), 0);
    assert_int_equal(avro_get_nullable_string(&v, "experiment_id", &s, &len), 0);
    assert_string_equal(s, "exp-1");
    avro_value_decref(&v);

    assert_int_equal(avro_codec_new_value(codec, "FeatureBatch", &v), 0);
    assert_int_equal(avro_append_string(&v, "feature_names", "depth"), 0);
    assert_int_equal(avro_append_double(&v, "predictions", 0.5), 0);
    assert_int_equal(avro_append_double(&v, "feature_names", 0.5), -1);
    assert_int_equal(avro_get_size(&v, "feature_names", &n), 0);
    assert_int_equal(n, 1);
    avro_value_decref(&v);
}

/* ------------------------------------------------------------------ framing errors */

static void test_framing_errors_give_reasons(void **state)
{
    (void)state;
    avro_value_t v;
    uint8_t *buf;
    size_t len;
    example("TelemetryAggregated", &v);
    encode_ok(&v, &buf, &len);

    expect_error("{\"service\": \"x\"}", 16, "TelemetryAggregated", HIVE_EBADMSG, "bad magic byte 0x7b");
    expect_error("\0\0\0", 3, "TelemetryAggregated", HIVE_EBADMSG, "too short");
    expect_error(NULL, 0, "TelemetryAggregated", HIVE_EBADMSG, "too short");
    expect_error("\0\0\0\0\x4d\x02", 6, "TelemetryAggregated", HIVE_EBADMSG, "unknown schema id 77");
    expect_error("\0\x7f\xff\xff\xf0\x02", 6, "TelemetryAggregated", HIVE_EBADMSG, "unknown schema id");
    expect_error(buf, len, "Insight", HIVE_EBADMSG, "expected Insight, got TelemetryAggregated");
    expect_error(buf, len - 1, "TelemetryAggregated", HIVE_EBADMSG, "truncated record");
    expect_error(buf, 5, "TelemetryAggregated", HIVE_EBADMSG, "truncated record (field schema_version)");
    expect_error(buf, len, "Nope", HIVE_EINVAL, "unknown record type Nope");

    uint8_t *longer = malloc(len + 3);
    memcpy(longer, buf, len);
    memcpy(longer + len, "xyz", 3);
    expect_error(longer, len + 3, "TelemetryAggregated", HIVE_EBADMSG, "3 bytes of trailing garbage");
    free(longer);

    /* Every strict prefix is refused, whatever the cut. */
    for (size_t n = 0; n < len; n++) {
        char err[256];
        avro_value_t out;
        assert_int_equal(avro_codec_decode(codec, buf, n, "TelemetryAggregated", &out, err, sizeof(err)),
                         HIVE_EBADMSG);
    }
    free(buf);
    avro_value_decref(&v);
}

/* Hand-made bodies: header for TelemetryAggregated, then schema_version 1, then the
 * service string. */
static void test_hostile_bodies(void **state)
{
    (void)state;
    uint8_t m[64] = {0, 0, 0, 0x03, 0xe9, 0x02};
    /* service: length -1 (zigzag 0x01): libavro-c 1.11.1 writes before its buffer here. */
    m[6] = 0x01;
    expect_error(m, 7, "TelemetryAggregated", HIVE_EBADMSG, "negative length -1 (field service)");
    /* service: length 2^62, far beyond the buffer. */
    memcpy(m + 6, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
    expect_error(m, 16, "TelemetryAggregated", HIVE_EBADMSG, "");
    /* a varint that never ends */
    memset(m + 6, 0xff, 12);
    expect_error(m, 18, "TelemetryAggregated", HIVE_EBADMSG, "varint");
    /* service: not UTF-8 */
    memcpy(m + 6, "\x04\xff\xfe", 3);
    expect_error(m, 9, "TelemetryAggregated", HIVE_EBADMSG, "not valid UTF-8 (field service)");

    /* Insight: schema_version, insight_id "", source "", type index 7 */
    uint8_t ins[16] = {0, 0, 0, 0x03, 0xea, 0x02, 0x00, 0x00, 0x0e};
    expect_error(ins, 9, "Insight", HIVE_EBADMSG, "enum index 7 out of range (3 symbols) (field type)");

    /* TelemetryAggregated with variant's union branch 5 */
    avro_value_t v;
    uint8_t *buf;
    size_t len;
    example("TelemetryAggregated", &v);
    assert_int_equal(avro_set_null(&v, "variant"), 0);
    assert_int_equal(avro_set_null(&v, "experiment_id"), 0);
    avro_value_t metrics;
    assert_int_equal(avro_get_field(&v, "metrics", &metrics), 0);
    assert_int_equal(avro_value_reset(&metrics), 0);
    encode_ok(&v, &buf, &len);
    /* the body ends with variant=0 (null), experiment_id=0 (null), metrics=0 (end) */
    assert_memory_equal(buf + len - 3, "\x00\x00\x00", 3);
    buf[len - 3] = 0x0a;
    expect_error(buf, len, "TelemetryAggregated", HIVE_EBADMSG, "union branch 5 out of range");
    /* metrics: a block of 2^40 entries in 1 byte */
    buf[len - 3] = 0x00;
    buf[len - 1] = 0x80;
    uint8_t *big = malloc(len + 32);
    memcpy(big, buf, len);
    memcpy(big + len, "\x80\x80\x80\x80\x80\x40", 6);
    expect_error(big, len + 6, "TelemetryAggregated", HIVE_EBADMSG, "truncated record (field metrics)");
    /* metrics: the same key twice */
    memcpy(big + len - 1, "\x04\x02k\0\0\0\0\0\0\0\0\x02k\0\0\0\0\0\0\0\0", 22);
    expect_error(big, len + 21, "TelemetryAggregated", HIVE_EBADMSG, "duplicate map key");
    free(big);
    free(buf);
    avro_value_decref(&v);
}

/* Random corruptions of valid records: decode returns a value or EBADMSG, never
 * anything else, and a value it returns encodes again. */
static void test_mutated_records_never_crash(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (size_t i = 0; i < NRECORDS; i++) {
        avro_value_t v;
        uint8_t *buf;
        size_t len;
        example(RECORDS[i], &v);
        encode_ok(&v, &buf, &len);
        uint8_t *m = malloc(len + 8);
        for (int round = 0; round < 3000; round++) {
            memcpy(m, buf, len);
            size_t mlen = len;
            int edits = 1 + (int)(rand_r(&seed) % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = 5 + rand_r(&seed) % (len - 5);
                switch (rand_r(&seed) % 4) {
                case 0:
                    m[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
                    break;
                case 1:
                    m[at] = (uint8_t)rand_r(&seed);
                    break;
                case 2:
                    mlen = at;
                    break;
                default:
                    m[at] = 0x80 | (uint8_t)rand_r(&seed);
                    break;
                }
            }
            avro_value_t out;
            char err[256];
            int rc = avro_codec_decode(codec, m, mlen, RECORDS[i], &out, err, sizeof(err));
            assert_true(rc == 0 || rc == HIVE_EBADMSG);
            if (rc == 0) {
                uint8_t *again;
                size_t alen;
                encode_ok(&out, &again, &alen);
                free(again);
                avro_value_decref(&out);
            } else {
                assert_true(err[0] != '\0');
            }
        }
        free(m);
        free(buf);
        avro_value_decref(&v);
    }
}

/* ------------------------------------------------------------------ evolution */

/* TelemetryAggregated as it could have been before variant, experiment_id and
 * metrics were added (all three have defaults), with request_count an int. */
static const char OLD_TELEMETRY[] =
    "{\"type\":\"record\",\"name\":\"TelemetryAggregated\",\"namespace\":\"org.neuralhive.optimizer\","
    "\"fields\":[{\"name\":\"schema_version\",\"type\":\"int\"},{\"name\":\"service\",\"type\":\"string\"},"
    "{\"name\":\"window_start\",\"type\":\"long\"},{\"name\":\"window_end\",\"type\":\"long\"},"
    "{\"name\":\"request_count\",\"type\":\"int\"},{\"name\":\"error_count\",\"type\":\"long\"},"
    "{\"name\":\"error_rate\",\"type\":\"double\"},{\"name\":\"latency_p50_ms\",\"type\":\"double\"},"
    "{\"name\":\"latency_p95_ms\",\"type\":\"double\"},{\"name\":\"latency_p99_ms\",\"type\":\"double\"},"
    "{\"name\":\"availability\",\"type\":\"double\"},{\"name\":\"slo_compliance\",\"type\":\"double\"},"
    "{\"name\":\"region\",\"type\":\"string\"}]}";

/* Encodes v with libavro-c's writer and frames it with `id`. */
static uint8_t *frame_with_libavro(avro_value_t *v, int32_t id, size_t *out_len)
{
    size_t size = 0;
    assert_int_equal(avro_value_sizeof(v, &size), 0);
    uint8_t *buf = malloc(size + 5);
    buf[0] = 0;
    buf[1] = (uint8_t)(id >> 24);
    buf[2] = (uint8_t)(id >> 16);
    buf[3] = (uint8_t)(id >> 8);
    buf[4] = (uint8_t)id;
    avro_writer_t w = avro_writer_memory((char *)buf + 5, (int64_t)size);
    assert_int_equal(avro_value_write(w, v), 0);
    avro_writer_free(w);
    *out_len = size + 5;
    return buf;
}

static void test_old_writer_schema_resolves_to_current(void **state)
{
    (void)state;
    char err[256] = "";
    avro_schema_t old;
    avro_value_t v, out, metrics;
    assert_int_equal(avro_schema_from_json_length(OLD_TELEMETRY, strlen(OLD_TELEMETRY), &old), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(old);
    assert_int_equal(avro_generic_value_new(iface, &v), 0);
    /* The old record: set through the same helpers, fields in a different order,
     * an int request_count, and a field (region) the current schema dropped. */
    assert_int_equal(avro_set_int(&v, "schema_version", 1), 0);
    assert_int_equal(avro_set_string(&v, "service", "orchestrator"), 0);
    assert_int_equal(avro_set_long(&v, "window_start", 1000), 0);
    assert_int_equal(avro_set_long(&v, "window_end", 61000), 0);
    assert_int_equal(avro_set_int(&v, "request_count", 500), 0);
    assert_int_equal(avro_set_long(&v, "error_count", 5), 0);
    assert_int_equal(avro_set_double(&v, "error_rate", 0.01), 0);
    assert_int_equal(avro_set_double(&v, "latency_p95_ms", 950), 0);
    assert_int_equal(avro_set_double(&v, "availability", 0.999), 0);
    assert_int_equal(avro_set_double(&v, "slo_compliance", 0.98), 0);
    assert_int_equal(avro_set_string(&v, "region", "eu"), 0);
    size_t len;
    uint8_t *buf = frame_with_libavro(&v, 900, &len);

    expect_error(buf, len, "TelemetryAggregated", HIVE_EBADMSG, "unknown schema id 900");
    if (avro_codec_add_schema(codec, 900, OLD_TELEMETRY, err, sizeof(err))) {
        fail_msg("add_schema: %s", err);
    }
    assert_int_equal(avro_codec_add_schema(codec, 900, OLD_TELEMETRY, err, sizeof(err)), 0);
    assert_int_equal(avro_codec_add_schema(codec, 900, hive_schemas[0].json, err, sizeof(err)), HIVE_EINVAL);
    if (avro_codec_decode(codec, buf, len, "TelemetryAggregated", &out, err, sizeof(err))) {
        fail_msg("decode: %s", err);
    }
    const char *s;
    size_t slen, n;
    int64_t l;
    double d;
    assert_int_equal(avro_get_string(&out, "service", &s, &slen), 0);
    assert_string_equal(s, "orchestrator");
    assert_int_equal(avro_get_long(&out, "request_count", &l), 0);
    assert_int_equal(l, 500);
    assert_int_equal(avro_get_double(&out, "slo_compliance", &d), 0);
    assert_float_equal(d, 0.98, 0);
    assert_int_equal(avro_get_double(&out, "latency_p95_ms", &d), 0);
    assert_float_equal(d, 950, 0);
    assert_int_equal(avro_get_nullable_string(&out, "variant", &s, &slen), 1);
    assert_int_equal(avro_get_nullable_string(&out, "experiment_id", &s, &slen), 1);
    assert_int_equal(avro_get_field(&out, "metrics", &metrics), 0);
    assert_int_equal(avro_value_get_size(&metrics, &n), 0);
    assert_int_equal(n, 0);
    /* The decoded record is a current one: it encodes with the current id. */
    uint8_t *again;
    size_t alen;
    encode_ok(&out, &again, &alen);
    assert_int_equal(again[4], 1001 & 0xff);
    free(again);
    avro_value_decref(&out);
    free(buf);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(old);
}

static void test_incompatible_writers_are_refused(void **state)
{
    (void)state;
    char err[256];
    /* A writer without `service`, which has no default. */
    static const char no_service[] = "{\"type\":\"record\",\"name\":\"TelemetryAggregated\",\"fields\":[{"
                                     "\"name\":\"schema_version\",\"type\":"
                                     "\"int\"}]}";
    assert_int_equal(avro_codec_add_schema(codec, 901, no_service, err, sizeof(err)), 0);
    expect_error("\0\0\0\x03\x85\x02", 6, "TelemetryAggregated", HIVE_EBADMSG,
                 "field TelemetryAggregated.service is not in the writer's schema and has no default");

    /* An Insight writer whose priority enum has a symbol the reader lacks. */
    static const char more_priorities[] = "{\"type\":\"record\",\"name\":\"Insight\",\"fields\":[{\"name\":"
                                          "\"priority\",\"type\":{\"type\":\"enum\","
                                          "\"name\":\"InsightPriority\",\"symbols\":[\"LOW\",\"URGENT\"]}}]}";
    assert_int_equal(avro_codec_add_schema(codec, 902, more_priorities, err, sizeof(err)), 0);
    expect_error("\0\0\0\x03\x86\x02", 6, "Insight", HIVE_EBADMSG, "unknown enum symbol URGENT");

    /* A writer whose `service` is a long. */
    static const char long_service[] =
        "{\"type\":\"record\",\"name\":\"TelemetryAggregated\",\"fields\":[{\"name\":\"service\",\"type\":"
        "\"long\"}]}";
    assert_int_equal(avro_codec_add_schema(codec, 903, long_service, err, sizeof(err)), 0);
    expect_error("\0\0\0\x03\x87\x02", 6, "TelemetryAggregated", HIVE_EBADMSG,
                 "writer type long cannot be read as string (field service)");
    assert_int_equal(avro_codec_add_schema(codec, 904, "{not json", err, sizeof(err)), HIVE_EINVAL);
}

/* ------------------------------------------------------------------ hash, threads */

static void test_hash_of_canonical_payload(void **state)
{
    (void)state;
    avro_value_t v;
    char h1[65], h2[65], h3[65];
    const char *s;
    size_t len;
    example("OptimizationEvent", &v);
    assert_int_equal(avro_set_string(&v, "hash", "stale"), 0);
    assert_int_equal(avro_codec_hash(&v, "hash", h1), 0);
    assert_int_equal(strlen(h1), 64);
    assert_int_equal(strspn(h1, "0123456789abcdef"), 64);
    assert_int_equal(avro_get_string(&v, "hash", &s, &len), 0);
    assert_string_equal(s, "stale"); /* restored */
    /* The hash does not depend on the hash field itself... */
    assert_int_equal(avro_set_string(&v, "hash", h1), 0);
    assert_int_equal(avro_codec_hash(&v, "hash", h2), 0);
    assert_string_equal(h1, h2);
    /* ...and is the SHA-256 of the record encoded with hash = "". */
    assert_int_equal(avro_set_string(&v, "hash", ""), 0);
    uint8_t *buf;
    size_t blen;
    encode_ok(&v, &buf, &blen);
    unsigned char md[32];
    unsigned int mdlen;
    assert_int_equal(EVP_Digest(buf + 5, blen - 5, md, &mdlen, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++) {
        snprintf(h3 + 2 * i, 3, "%02x", md[i]);
    }
    assert_string_equal(h1, h3);
    free(buf);
    /* Any other change changes it. */
    assert_int_equal(avro_set_long(&v, "revision", 99), 0);
    assert_int_equal(avro_codec_hash(&v, "hash", h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(avro_codec_hash(&v, "revision", h2), HIVE_EINVAL);
    avro_value_decref(&v);
}

static void *worker(void *arg)
{
    size_t k = (size_t)arg;
    long bad = 0;
    for (int i = 0; i < 400; i++) {
        const char *name = RECORDS[(k + (size_t)i) % NRECORDS];
        avro_value_t a, b;
        void *buf;
        size_t len;
        char err[256];
        if (avro_codec_new_value(codec, name, &a)) {
            bad++;
            continue;
        }
        fill(&a, NULL, i);
        if (avro_codec_encode(codec, "t", &a, &buf, &len, err, sizeof(err)) ||
            avro_codec_decode(codec, buf, len, name, &b, err, sizeof(err))) {
            bad++;
        } else {
            bad += !avro_value_equal(&a, &b);
            avro_value_decref(&b);
            /* and a failing decode, which must not disturb the others */
            bad += avro_codec_decode(codec, buf, len - 1, name, &b, err, sizeof(err)) != HIVE_EBADMSG;
        }
        free(buf);
        avro_value_decref(&a);
    }
    return (void *)bad;
}

static void test_concurrent_encode_decode(void **state)
{
    (void)state;
    pthread_t t[8];
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    }
    for (size_t i = 0; i < 8; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        assert_int_equal((long)bad, 0);
    }
}

static void test_encode_refuses_bad_values(void **state)
{
    (void)state;
    avro_value_t v;
    void *buf = NULL;
    size_t len;
    char err[256];
    /* A union left unselected (a bare generic value, not from avro_codec_new_value). */
    avro_value_t tmp;
    assert_int_equal(avro_codec_new_value(codec, "TelemetryAggregated", &tmp), 0);
    assert_int_equal(avro_generic_value_new(tmp.iface, &v), 0);
    avro_value_decref(&tmp);
    assert_int_equal(avro_codec_encode(codec, "t", &v, &buf, &len, err, sizeof(err)), HIVE_EINVAL);
    assert_non_null(strstr(err, "union has no branch selected (field variant)"));
    assert_null(buf);
    avro_value_decref(&v);
    /* A string that is not UTF-8. */
    example("Insight", &v);
    assert_int_equal(avro_set_string(&v, "component", "\xff"), 0);
    assert_int_equal(avro_codec_encode(codec, "t", &v, &buf, &len, err, sizeof(err)), HIVE_EINVAL);
    assert_non_null(strstr(err, "not valid UTF-8 (field component)"));
    avro_value_decref(&v);
    /* A value of a schema the codec does not embed. */
    avro_schema_t s = avro_schema_record("Other", NULL);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_generic_value_new(iface, &v);
    assert_int_equal(avro_codec_encode(codec, "t", &v, &buf, &len, err, sizeof(err)), HIVE_EINVAL);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
}

/* ------------------------------------------------------------------ interop files */

static void test_interop_files(void **state)
{
    (void)state;
    const char *dir = getenv("HIVE_AVRO_INTEROP_DIR");
    char path[512];
    if (!dir) {
        skip();
    }
    for (size_t i = 0; i < NRECORDS; i++) {
        avro_value_t v;
        uint8_t *buf;
        size_t len;
        example(RECORDS[i], &v);
        encode_ok(&v, &buf, &len);
        snprintf(path, sizeof(path), "%s/%s.c.bin", dir, RECORDS[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
        free(buf);
        avro_value_decref(&v);

        snprintf(path, sizeof(path), "%s/%s.py.bin", dir, RECORDS[i]);
        f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        uint8_t in[65536];
        size_t n = fread(in, 1, sizeof(in), f);
        fclose(f);
        char err[256];
        if (avro_codec_decode(codec, in, n, RECORDS[i], &v, err, sizeof(err))) {
            fail_msg("%s written by fastavro: %s", RECORDS[i], err);
        }
        encode_ok(&v, &buf, &len);
        assert_int_equal(len, n);
        assert_memory_equal(buf, in, n);
        free(buf);
        avro_value_decref(&v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_schema_is_embedded_and_parses),
        cmocka_unit_test(test_new_value_applies_defaults),
        cmocka_unit_test(test_every_record_round_trips),
        cmocka_unit_test(test_agrees_with_libavro_encoder_and_reader),
        cmocka_unit_test(test_field_accessors),
        cmocka_unit_test(test_framing_errors_give_reasons),
        cmocka_unit_test(test_hostile_bodies),
        cmocka_unit_test(test_mutated_records_never_crash),
        cmocka_unit_test(test_old_writer_schema_resolves_to_current),
        cmocka_unit_test(test_incompatible_writers_are_refused),
        cmocka_unit_test(test_hash_of_canonical_payload),
        cmocka_unit_test(test_concurrent_encode_decode),
        cmocka_unit_test(test_encode_refuses_bad_values),
        cmocka_unit_test(test_interop_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
