/* engine: the decisions the hypothesis engine makes around the store, on
 * plain values: the verdict for a store error, what it reads of an Insight,
 * the records it emits (ExperimentRequest criteria and type, APPLY), what a
 * replay emits again, the success rule and the state read back from a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "hive_err.h"
#include "hypothesis.h"
#include "records.h"
#include "verdict.h"

static avro_codec_t *codec;

static int setup(void **state)
{
    (void)state;
    char err[256];
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

/* ---- store errors -------------------------------------------------------- */

static void test_store_error_transient_is_retried(void **state)
{
    (void)state;
    char reason[256] = "";
    assert_int_equal(
        verdict_for_error(HIVE_EUNAVAILABLE, "storing the hypothesis", "no server", reason, sizeof(reason)),
        KAFKA_RETRY);
    assert_non_null(strstr(reason, "storing the hypothesis"));
    assert_non_null(strstr(reason, "no server"));
    assert_int_equal(verdict_for_error(HIVE_ETIMEDOUT, "x", NULL, reason, sizeof(reason)), KAFKA_RETRY);
    assert_int_equal(verdict_for_error(HIVE_ESERVER, "x", "", reason, sizeof(reason)), KAFKA_RETRY);
    /* another replica moved the entry: retrying reads the new revision */
    assert_int_equal(verdict_for_error(HIVE_ECONFLICT, "x", "", reason, sizeof(reason)), KAFKA_RETRY);
}

static void test_store_error_refused_goes_to_dlq_with_the_store_message(void **state)
{
    (void)state;
    char reason[256] = "";
    assert_int_equal(verdict_for_error(HIVE_EREJECTED, "storing the observation",
                                       "infinity values are not allowed", reason, sizeof(reason)),
                     KAFKA_BAD_INPUT);
    assert_string_equal(reason, "storing the observation: infinity values are not allowed (HIVE_EREJECTED)");
    assert_int_equal(verdict_for_error(HIVE_EINVAL, "storing", "bad value", reason, sizeof(reason)),
                     KAFKA_BAD_INPUT);
    assert_int_equal(verdict_for_error(HIVE_ETOOBIG, "storing", "", reason, sizeof(reason)), KAFKA_BAD_INPUT);
    /* no message from the server: the code's description */
    assert_non_null(strstr(reason, hive_strerror(HIVE_ETOOBIG)));
}

static void test_store_success_is_ok(void **state)
{
    (void)state;
    char reason[16] = "untouched";
    assert_int_equal(verdict_for_error(0, "x", "y", reason, sizeof(reason)), KAFKA_OK);
    assert_string_equal(reason, "untouched");
}

/* ---- insights in ----------------------------------------------------------- */

/* Encodes an Insight and decodes it back as the engine receives it. */
static void insight_value(const char *component, const char *metric, const char *problem_label,
                          const char *priority, avro_value_t *out)
{
    const char *keys[] = {"problem"};
    const char *values[] = {problem_label};
    records_insight_t in = {
        .insight_id = "ins-1",
        .source = "test",
        .priority = priority,
        .component = component,
        .metric = metric,
        .current_value = 1500,
        .baseline_value = 1000,
        .description = "slow",
        .timestamp_ms = 1700000000000,
        .label_keys = keys,
        .label_values = values,
        .nlabels = problem_label ? 1 : 0,
    };
    void *bytes = NULL;
    size_t len = 0;
    char reason[256];
    assert_int_equal(records_insight(codec, "insights.generated", &in, &bytes, &len, reason, sizeof(reason)),
                     0);
    assert_int_equal(avro_codec_decode(codec, bytes, len, "Insight", out, reason, sizeof(reason)), 0);
    free(bytes);
}

static void test_insight_problem_from_label_then_metric(void **state)
{
    (void)state;
    struct {
        const char *metric, *label;
        problem_kind_t want;
    } cases[] = {
        {"latency_p95_ms", "AVAILABILITY", PROBLEM_AVAILABILITY}, /* the label wins */
        {"latency_p95_ms", NULL, PROBLEM_LATENCY},
        {"http_error_rate", NULL, PROBLEM_ERROR_RATE},
        {"slo_compliance", NULL, PROBLEM_SLO_COMPLIANCE},
        {"availability", NULL, PROBLEM_AVAILABILITY},
        {"model_accuracy", NULL, PROBLEM_CONSENSUS_ACCURACY},
        {"queue_depth", NULL, PROBLEM_OTHER},
        {"error_rate", "NOT_A_PROBLEM", PROBLEM_ERROR_RATE}, /* an unknown label falls back to the metric */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        avro_value_t v;
        insight_value("orchestrator", cases[i].metric, cases[i].label, "CRITICAL", &v);
        engine_insight_t in;
        char reason[128];
        assert_int_equal(engine_read_insight(&v, &in, reason, sizeof(reason)), 0);
        if (in.state.problem != cases[i].want) {
            fail_msg("metric %s label %s: got %s, want %s", cases[i].metric,
                     cases[i].label ? cases[i].label : "-", state_problem_name(in.state.problem),
                     state_problem_name(cases[i].want));
        }
        assert_string_equal(in.component, "orchestrator");
        assert_int_equal(in.state.priority, PRIORITY_CRITICAL);
        assert_true(in.state.current_value == 1500 && in.state.baseline_value == 1000);
        avro_value_decref(&v);
    }
}

/* The load_ratio label (issue 15, item 5) becomes the state's load; absent or
 * malformed, the load is unknown (0, load0). */
static void test_insight_load_from_label(void **state)
{
    (void)state;
    struct {
        const char *label;
        double want;
        unsigned bucket;
    } cases[] = {{"4.0000", 4.0, 2}, {"1.6", 1.6, 1}, {"0.7", 0.7, 0}, {NULL, 0.0, 0},
                 {"-2", 0.0, 0},     {"nan", 0.0, 0}, {"3x", 0.0, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *keys[] = {"load_ratio"};
        const char *values[] = {cases[i].label};
        records_insight_t rec = {.insight_id = "ins-1",
                                 .source = "test",
                                 .priority = "HIGH",
                                 .component = "orchestrator",
                                 .metric = "latency_p95_ms",
                                 .current_value = 1500,
                                 .baseline_value = 1000,
                                 .description = "slow",
                                 .timestamp_ms = 1700000000000,
                                 .label_keys = keys,
                                 .label_values = values,
                                 .nlabels = cases[i].label ? 1 : 0};
        void *bytes = NULL;
        size_t len = 0;
        char reason[256];
        avro_value_t v;
        assert_int_equal(
            records_insight(codec, "insights.generated", &rec, &bytes, &len, reason, sizeof(reason)), 0);
        assert_int_equal(avro_codec_decode(codec, bytes, len, "Insight", &v, reason, sizeof(reason)), 0);
        free(bytes);
        engine_insight_t in;
        assert_int_equal(engine_read_insight(&v, &in, reason, sizeof(reason)), 0);
        if (!(fabs(in.state.load - cases[i].want) < 1e-12)) {
            fail_msg("label %s: load %g, want %g", cases[i].label ? cases[i].label : "-", in.state.load,
                     cases[i].want);
        }
        state_t st;
        assert_int_equal(state_extract(NULL, &in.state, &st), 0);
        assert_int_equal(st.load, cases[i].bucket);
        avro_value_decref(&v);
    }
}

static void test_insight_without_component_is_bad_input(void **state)
{
    (void)state;
    avro_value_t v;
    insight_value("", "latency_p95_ms", NULL, "HIGH", &v);
    engine_insight_t in;
    char reason[128] = "";
    assert_int_equal(engine_read_insight(&v, &in, reason, sizeof(reason)), -1);
    assert_string_equal(reason, "invalid Insight: field component missing or malformed");
    avro_value_decref(&v);
}

/* ---- records out ------------------------------------------------------------ */

static void propose(hypothesis_t *h, const char *problem, const char *action, double risk)
{
    hyp_proposal_t p = {
        .insight_id = "ins-42",
        .component = "orchestrator",
        .problem = problem,
        .state_key = "orchestrator|LATENCY|sev2|load0",
        .action = action,
        .type = "SLO_ADJUSTMENT",
        .policy = "qlearning",
        .risk = risk,
        .expected_improvement = 0.1,
        .propensity = 1,
    };
    hyp_propose(h, &p, 0.5, 1000);
}

static void decode_request(const hypothesis_t *h, avro_value_t *v)
{
    const records_experiment_t x = {
        .duration_s = 600, .traffic_split = 0.1, .min_improvement = 0.05, .guardrail_error_rate = 0.05};
    void *bytes = NULL;
    size_t len = 0;
    char reason[256];
    assert_int_equal(records_experiment_request(codec, "experiments.requests", h, &x, &bytes, &len, reason,
                                                sizeof(reason)),
                     0);
    assert_int_equal(avro_codec_decode(codec, bytes, len, "ExperimentRequest", v, reason, sizeof(reason)), 0);
    free(bytes);
}

/* The criterion at `index` of the array `field`. */
static void criterion(avro_value_t *v, const char *field, size_t index, const char **metric, const char **op,
                      double *threshold)
{
    avro_value_t arr, item;
    size_t n = 0;
    assert_int_equal(avro_value_get_by_name(v, field, &arr, NULL), 0);
    assert_int_equal(avro_value_get_size(&arr, &n), 0);
    assert_true(index < n);
    assert_int_equal(avro_value_get_by_index(&arr, index, &item, NULL), 0);
    assert_int_equal(avro_get_string(&item, "metric", metric, &n), 0);
    assert_int_equal(avro_get_enum_name(&item, "operator", op), 0);
    assert_int_equal(avro_get_double(&item, "threshold", threshold), 0);
}

static void test_experiment_request_type_and_criteria(void **state)
{
    (void)state;
    struct {
        const char *problem;
        double risk;
        const char *type, *metric, *op;
    } cases[] = {
        {"LATENCY", 0.31, "CANARY", "latency_p95_ms", "LT"},
        {"LATENCY", 0.30, "AB_TEST", "latency_p95_ms", "LT"}, /* 0.3 itself is not above */
        {"ERROR_RATE", 0.1, "AB_TEST", "error_rate", "LT"},
        {"SLO_COMPLIANCE", 0.45, "CANARY", "slo_compliance", "GT"},
        {"AVAILABILITY", 0.0, "AB_TEST", "availability", "GT"},
        {"CONSENSUS_ACCURACY", 0.2, "AB_TEST", "consensus_accuracy", "GT"},
        {"OTHER", 0.2, "AB_TEST", "improvement", "GT"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hypothesis_t h;
        propose(&h, cases[i].problem, "slo_latency_relax_10", cases[i].risk);
        avro_value_t v;
        decode_request(&h, &v);
        const char *type, *metric, *op, *s;
        double threshold;
        size_t n;
        assert_int_equal(avro_get_enum_name(&v, "experiment_type", &type), 0);
        assert_string_equal(type, cases[i].type);
        criterion(&v, "success_criteria", 0, &metric, &op, &threshold);
        assert_string_equal(metric, "relative_improvement");
        assert_string_equal(op, "GE");
        assert_true(threshold == 0.05);
        criterion(&v, "success_criteria", 1, &metric, &op, &threshold);
        assert_string_equal(metric, cases[i].metric);
        assert_string_equal(op, cases[i].op);
        criterion(&v, "guardrails", 0, &metric, &op, &threshold);
        assert_string_equal(metric, "error_rate");
        assert_string_equal(op, "GT"); /* aborts when it holds */
        assert_int_equal(avro_get_string(&v, "experiment_id", &s, &n), 0);
        assert_string_equal(s, h.experiment_id);
        avro_value_decref(&v);
    }
}

static void test_apply_command_names_the_change(void **state)
{
    (void)state;
    hypothesis_t h;
    propose(&h, "LATENCY", "slo_latency_relax_10", 0.1);
    assert_int_equal(hyp_on_result(&h, true, 0.2, 0.18, "", 2000), HYP_LEARN | HYP_EMIT_APPLY);
    void *bytes = NULL;
    size_t len = 0;
    char reason[256], want_id[64];
    assert_int_equal(records_apply(codec, "optimization.commands", &h, &bytes, &len, reason, sizeof(reason)),
                     0);
    avro_value_t v;
    assert_int_equal(avro_codec_decode(codec, bytes, len, "OptimizationCommand", &v, reason, sizeof(reason)),
                     0);
    free(bytes);
    const char *s;
    size_t n;
    double delta = 0;
    assert_int_equal(avro_get_enum_name(&v, "command", &s), 0);
    assert_string_equal(s, "APPLY");
    assert_int_equal(avro_get_string(&v, "command_id", &s, &n), 0);
    snprintf(want_id, sizeof(want_id), "cmd-apply-%s", h.id);
    assert_string_equal(s, want_id);
    assert_int_equal(avro_get_string(&v, "target", &s, &n), 0);
    assert_string_equal(s, "orchestrator");
    assert_int_equal(avro_get_map_double(&v, "adjustments", "latency_p95_ms", &delta), 0);
    assert_true(fabs(delta - 0.1) < 1e-12);
    avro_value_decref(&v);
}

/* ---- rules -------------------------------------------------------------------- */

static void test_replay_emits_what_the_status_asked_for(void **state)
{
    (void)state;
    hypothesis_t h = {0};
    const unsigned want[HYP_STATUS_COUNT] = {
        [HYP_PROPOSED] = 0,
        [HYP_AWAITING_APPROVAL] = HYP_EMIT_APPROVAL_REQUEST,
        [HYP_EXPERIMENTING] = HYP_EMIT_EXPERIMENT_REQUEST,
        [HYP_APPROVED] = HYP_EMIT_APPLY,
        [HYP_APPLIED] = 0,
        [HYP_REJECTED] = 0,
        [HYP_ROLLED_BACK] = 0,
    };
    for (int s = 0; s < HYP_STATUS_COUNT; s++) {
        h.status = (hyp_status_t)s;
        assert_int_equal(hyp_effects_of_status(&h), want[s]);
    }
}

static void test_result_success_rule(void **state)
{
    (void)state;
    assert_true(hyp_result_success("COMPLETED", "ACCEPT", 0.05, 0.05));
    assert_true(hyp_result_success("COMPLETED", "ACCEPT", 0.3, 0.05));
    assert_false(hyp_result_success("COMPLETED", "ACCEPT", 0.0499, 0.05));
    assert_false(hyp_result_success("COMPLETED", "REJECT", 0.3, 0.05));
    assert_false(hyp_result_success("ABORTED", "ACCEPT", 0.3, 0.05));
    assert_false(hyp_result_success(NULL, "ACCEPT", 0.3, 0.05));
}

static void test_state_read_back_from_its_key(void **state)
{
    (void)state;
    state_t s, back;
    assert_int_equal(state_make("consensus-engine", PROBLEM_SLO_COMPLIANCE, 3, 2, &s), 0);
    assert_int_equal(state_parse_key(s.key, &back), 0);
    assert_string_equal(back.component, "consensus-engine");
    assert_int_equal(back.problem, PROBLEM_SLO_COMPLIANCE);
    assert_int_equal(back.severity, 3);
    assert_int_equal(back.load, 2);
    assert_string_equal(back.key, s.key);
    const char *bad[] = {"",
                         "x",
                         "a|LATENCY",
                         "a|NOPE|sev1|load0",
                         "a|LATENCY|sev9|load0",
                         "a|LATENCY|sev1|load0x",
                         "|LATENCY|sev1|load0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (state_parse_key(bad[i], &back) == 0) {
            fail_msg("key \"%s\" parsed", bad[i]);
        }
    }
}

/* ---- the debounce of one batch --------------------------------------------- */

/* A proposer that answers from a script: open[i] is the state of the new
 * hypothesis of item i, reject[i] rejects it, fail_at stops the plan. */
typedef struct {
    const bool *open;
    const bool *reject;
    size_t fail_at;
    size_t calls[16];
    size_t ncalls;
} script_t;

static int scripted(void *arg, size_t i, bool *out_open)
{
    script_t *s = arg;
    s->calls[s->ncalls++] = i;
    if (i == s->fail_at) {
        return HIVE_EUNAVAILABLE;
    }
    if (s->reject && s->reject[i]) {
        return 1;
    }
    *out_open = s->open[i];
    return 0;
}

static void test_batch_second_insight_for_a_pair_is_suppressed(void **state)
{
    (void)state;
    /* a|LATENCY twice, b|ERRORS once, a below HIGH (no key), a|LATENCY again */
    const engine_batch_item_t items[] = {
        {"a|LATENCY", false, false, false}, {"b|ERRORS", false, false, false},
        {"a|LATENCY", false, false, false}, {NULL, false, false, false},
        {"a|LATENCY", false, false, false},
    };
    const bool open[] = {true, true, true, true, true};
    script_t sc = {.open = open, .fail_at = (size_t)-1};
    engine_step_t steps[5];
    assert_int_equal(engine_batch_plan(items, 5, scripted, &sc, steps), 0);
    assert_int_equal(steps[0], ENGINE_STEP_PROPOSE);
    assert_int_equal(steps[1], ENGINE_STEP_PROPOSE);
    assert_int_equal(steps[2], ENGINE_STEP_SUPPRESS);
    assert_int_equal(steps[3], ENGINE_STEP_NONE);
    assert_int_equal(steps[4], ENGINE_STEP_SUPPRESS);
    /* the policy is asked once per new pair, in record order */
    assert_int_equal(sc.ncalls, 2);
    assert_int_equal(sc.calls[0], 0);
    assert_int_equal(sc.calls[1], 1);
}

static void test_batch_store_marker_and_replays_decide_like_one_at_a_time(void **state)
{
    (void)state;
    const engine_batch_item_t items[] = {
        /* the store says a is open: suppressed */
        {"a|LATENCY", false, false, true},
        /* b's first insight is a replay of a hypothesis that closed: the next b proposes */
        {"b|ERRORS", true, false, false},
        {"b|ERRORS", false, false, false},
        /* c: a replay of an open hypothesis suppresses the next c, whatever the store said */
        {"c|COST", true, true, false},
        {"c|COST", false, false, false},
        /* d: a decision to change nothing (closed) does not debounce the next d */
        {"d|LATENCY", false, false, false},
        {"d|LATENCY", false, false, false},
    };
    const bool open[] = {true, true, true, true, true, false, true};
    script_t sc = {.open = open, .fail_at = (size_t)-1};
    engine_step_t steps[7];
    assert_int_equal(engine_batch_plan(items, 7, scripted, &sc, steps), 0);
    const engine_step_t want[] = {ENGINE_STEP_SUPPRESS, ENGINE_STEP_REPLAY,   ENGINE_STEP_PROPOSE,
                                  ENGINE_STEP_REPLAY,   ENGINE_STEP_SUPPRESS, ENGINE_STEP_PROPOSE,
                                  ENGINE_STEP_PROPOSE};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(steps[i], want[i]);
    }
}

static void test_batch_rejected_proposal_leaves_the_pair_free_and_failure_stops(void **state)
{
    (void)state;
    const engine_batch_item_t items[] = {
        {"a|LATENCY", false, false, false},
        {"a|LATENCY", false, false, false},
        {"b|ERRORS", false, false, false},
    };
    const bool open[] = {true, true, true};
    const bool reject[] = {true, false, false};
    script_t sc = {.open = open, .reject = reject, .fail_at = (size_t)-1};
    engine_step_t steps[3];
    assert_int_equal(engine_batch_plan(items, 3, scripted, &sc, steps), 0);
    assert_int_equal(steps[0], ENGINE_STEP_NONE); /* rejected: to the DLQ alone */
    assert_int_equal(steps[1], ENGINE_STEP_PROPOSE);
    assert_int_equal(steps[2], ENGINE_STEP_PROPOSE);

    script_t fail = {.open = open, .fail_at = 2};
    assert_int_equal(engine_batch_plan(items, 3, scripted, &fail, steps), HIVE_EUNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_error_transient_is_retried),
        cmocka_unit_test(test_store_error_refused_goes_to_dlq_with_the_store_message),
        cmocka_unit_test(test_store_success_is_ok),
        cmocka_unit_test(test_insight_problem_from_label_then_metric),
        cmocka_unit_test(test_insight_load_from_label),
        cmocka_unit_test(test_insight_without_component_is_bad_input),
        cmocka_unit_test(test_experiment_request_type_and_criteria),
        cmocka_unit_test(test_apply_command_names_the_change),
        cmocka_unit_test(test_replay_emits_what_the_status_asked_for),
        cmocka_unit_test(test_result_success_rule),
        cmocka_unit_test(test_state_read_back_from_its_key),
        cmocka_unit_test(test_batch_second_insight_for_a_pair_is_suppressed),
        cmocka_unit_test(test_batch_store_marker_and_replays_decide_like_one_at_a_time),
        cmocka_unit_test(test_batch_rejected_proposal_leaves_the_pair_free_and_failure_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
