/* ops: the operator's calls without a store or a broker. Arguments are
 * checked and answered through the callback, never inside the call; ids that
 * cannot exist are not found; a record that cannot be delivered says so; the
 * outcomes map to the HTTP and gRPC statuses the APIs answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "grpc.h"
#include "hive_status.h"
#include "ops.h"

typedef struct {
    uv_loop_t loop;
    avro_codec_t *codec;
    metrics_t *metrics;
    ops_t *ops;
} fixture_t;

typedef struct {
    int calls, status;
    char message[256];
    bool had_id;
} answer_t;

static int setup(void **state)
{
    static fixture_t f;
    char err[256];
    memset(&f, 0, sizeof(f));
    if (uv_loop_init(&f.loop) != 0 || !(f.codec = avro_codec_create(NULL, err, sizeof(err))) ||
        !(f.metrics = metrics_create())) {
        return -1;
    }
    f.ops = ops_create(&(ops_conf_t){.loop = &f.loop, .codec = f.codec, .metrics = f.metrics});
    *state = &f;
    return f.ops ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ops_pending(f->ops), 0);
    ops_destroy(f->ops);
    avro_codec_destroy(f->codec);
    metrics_destroy(f->metrics);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

static void on_trigger(void *arg, int status, const char *message, const char *optimization_id,
                       const char *insight_id)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    snprintf(a->message, sizeof(a->message), "%s", message);
    a->had_id = optimization_id != NULL && insight_id != NULL;
}

static void on_hyp(void *arg, int status, const char *message, const hypothesis_t *h)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    snprintf(a->message, sizeof(a->message), "%s", message);
    a->had_id = h != NULL;
}

static void on_list(void *arg, int status, const char *message, const hypothesis_t *items, size_t n,
                    size_t total)
{
    (void)items;
    (void)n;
    (void)total;
    on_hyp(arg, status, message, NULL);
}

/* Runs one trigger to its answer. */
static answer_t trigger(fixture_t *f, const ops_trigger_t *t)
{
    answer_t a = {0};
    assert_int_equal(ops_trigger(f->ops, t, on_trigger, &a), 0);
    assert_int_equal(a.calls, 0); /* never inside the call */
    assert_int_equal(ops_pending(f->ops), 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(ops_pending(f->ops), 0);
    return a;
}

static const ops_trigger_t good = {
    .component = "orchestrator",
    .problem = "LATENCY",
    .current_value = 1500,
    .baseline_value = 1000,
};

static void test_trigger_names_the_bad_field(void **state)
{
    fixture_t *f = *state;
    struct {
        ops_trigger_t t;
        const char *field;
    } cases[] = {
        {{.problem = "LATENCY"}, "component: "},
        {{.component = "a|b", .problem = "LATENCY"}, "component: "},
        {{.component = "orchestrator", .problem = "SLOW"}, "problem: "},
        {{.component = "orchestrator", .problem = "LATENCY", .current_value = NAN}, "current_value: "},
        {{.component = "orchestrator", .problem = "LATENCY", .baseline_value = INFINITY}, "baseline_value: "},
        {{.component = "orchestrator", .problem = "LATENCY", .priority = "URGENT"}, "priority: "},
        {{.component = "orchestrator", .problem = "LATENCY", .description = "bad\x01text"}, "description: "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        answer_t a = trigger(f, &cases[i].t);
        assert_int_equal(a.status, HIVE_EINVAL);
        if (strncmp(a.message, cases[i].field, strlen(cases[i].field)) != 0) {
            fail_msg("case %zu: message \"%s\" does not start with \"%s\"", i, a.message, cases[i].field);
        }
        assert_false(a.had_id);
    }
}

static void test_valid_trigger_without_producer_is_not_delivered(void **state)
{
    fixture_t *f = *state;
    /* The checks pass and the Insight is built; with no producer it cannot be sent. */
    answer_t a = trigger(f, &good);
    assert_int_equal(a.status, HIVE_EDELIVERY);
    assert_string_equal(a.message, "no Kafka producer configured");
}

static void test_ids_that_cannot_exist_are_not_found(void **state)
{
    fixture_t *f = *state;
    char longid[200];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    const char *ids[] = {longid, ""};
    for (size_t i = 0; i < 2; i++) {
        answer_t a = {0};
        assert_int_equal(ops_get(f->ops, ids[i], on_hyp, &a), 0);
        assert_int_equal(a.calls, 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.status, HIVE_ENOTFOUND);
        assert_false(a.had_id);
        a.calls = 0;
        assert_int_equal(ops_rollback(f->ops, ids[i], NULL, on_hyp, &a), 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.status, HIVE_ENOTFOUND);
    }
}

static void test_list_with_unknown_status_is_invalid(void **state)
{
    fixture_t *f = *state;
    answer_t a = {0};
    repo_filter_t filter = {.status = "DONE"};
    assert_int_equal(ops_list(f->ops, &filter, on_list, &a), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, HIVE_EINVAL);
    assert_string_equal(a.message, "status: unknown status \"DONE\"");
}

static void test_calls_without_callback_are_refused_at_once(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ops_get(f->ops, "opt-1", NULL, NULL), HIVE_EINVAL);
    assert_int_equal(ops_trigger(f->ops, NULL, on_trigger, NULL), HIVE_EINVAL);
    assert_int_equal(ops_pending(f->ops), 0);
}

static void test_outcomes_map_to_api_statuses(void **state)
{
    (void)state;
    struct {
        int code, http, grpc;
    } cases[] = {
        {0, 200, GRPC_STATUS_OK},
        {HIVE_EINVAL, 400, GRPC_STATUS_INVALID_ARGUMENT},
        {HIVE_ENOTFOUND, 404, GRPC_STATUS_NOT_FOUND},
        {HIVE_ECONFLICT, 409, GRPC_STATUS_FAILED_PRECONDITION},
        {HIVE_EDELIVERY, 503, GRPC_STATUS_UNAVAILABLE},
        {HIVE_EUNAVAILABLE, 503, GRPC_STATUS_UNAVAILABLE},
        {HIVE_ETIMEDOUT, 503, GRPC_STATUS_UNAVAILABLE},
        {HIVE_ENOMEM, 503, GRPC_STATUS_RESOURCE_EXHAUSTED},
        {HIVE_EPROTO, 500, GRPC_STATUS_INTERNAL},
        {-999, 500, GRPC_STATUS_INTERNAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (hive_status_http(cases[i].code) != cases[i].http ||
            hive_status_grpc(cases[i].code) != cases[i].grpc) {
            fail_msg("%s: HTTP %d gRPC %d, want %d %d", hive_errname(cases[i].code),
                     hive_status_http(cases[i].code), hive_status_grpc(cases[i].code), cases[i].http,
                     cases[i].grpc);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigger_names_the_bad_field),
        cmocka_unit_test(test_valid_trigger_without_producer_is_not_delivered),
        cmocka_unit_test(test_ids_that_cannot_exist_are_not_found),
        cmocka_unit_test(test_list_with_unknown_status_is_invalid),
        cmocka_unit_test(test_calls_without_callback_are_refused_at_once),
        cmocka_unit_test(test_outcomes_map_to_api_statuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
