#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <string.h>

#include "hypothesis.h"

static hyp_proposal_t proposal(double risk)
{
    return (hyp_proposal_t){
        .insight_id = "ins-0123456789abcdef",
        .component = "orchestrator",
        .problem = "LATENCY",
        .state_key = "orchestrator|LATENCY|sev2|load1",
        .action = "slo.latency.relax_10",
        .type = "SLO_ADJUSTMENT",
        .policy = "qlearning",
        .description = "p95 too high",
        .q_value = 0.12,
        .confidence = 0.4,
        .risk = risk,
        .expected_improvement = 0.08,
        .propensity = 0.93,
    };
}

static void test_low_risk_goes_straight_to_experiment(void **state)
{
    (void)state;
    hypothesis_t h;
    hyp_proposal_t p = proposal(0.2);
    assert_int_equal(hyp_propose(&h, &p, 0.5, 1000), HYP_EMIT_EXPERIMENT_REQUEST);
    assert_int_equal(h.status, HYP_EXPERIMENTING);
    assert_string_equal(h.component, "orchestrator");
    assert_int_equal(strncmp(h.id, "opt-", 4), 0);
    assert_string_equal(h.experiment_id + 4, h.id + 4);
    assert_non_null(strstr(h.rationale, "ins-0123456789abcdef"));
    assert_non_null(strstr(h.rationale, "slo.latency.relax_10"));
    /* Approvals do not apply to it. */
    assert_int_equal(hyp_on_approval(&h, true, NULL, 2000), 0);
    assert_int_equal(h.status, HYP_EXPERIMENTING);
}

static void test_high_risk_waits_for_approval(void **state)
{
    (void)state;
    hypothesis_t h, r;
    hyp_proposal_t p = proposal(0.7);
    assert_int_equal(hyp_propose(&h, &p, 0.5, 1000), HYP_EMIT_APPROVAL_REQUEST);
    assert_int_equal(h.status, HYP_AWAITING_APPROVAL);
    r = h;
    assert_int_equal(hyp_on_approval(&h, true, NULL, 2000), HYP_EMIT_EXPERIMENT_REQUEST);
    assert_int_equal(h.status, HYP_EXPERIMENTING);
    assert_int_equal(h.updated_at_ms, 2000);
    assert_int_equal(hyp_on_approval(&r, false, "too risky", 2000), 0);
    assert_int_equal(r.status, HYP_REJECTED);
    assert_string_equal(r.reason, "too risky");
    /* Exactly at the threshold does not need approval (seed: risk > 0.5). */
    p = proposal(0.5);
    assert_int_equal(hyp_propose(&h, &p, 0.5, 1000), HYP_EMIT_EXPERIMENT_REQUEST);
}

static void test_result_then_apply_then_rollback(void **state)
{
    (void)state;
    hypothesis_t h;
    hyp_proposal_t p = proposal(0.2);
    hyp_propose(&h, &p, 0.5, 1000);
    bool conflict = false;
    assert_int_equal(hyp_request_rollback(&h, &conflict), 0);
    assert_true(conflict);
    assert_int_equal(hyp_on_result(&h, true, 0.12, 0.08, NULL, 3000), HYP_LEARN | HYP_EMIT_APPLY);
    assert_int_equal(h.status, HYP_APPROVED);
    assert_true(h.has_result);
    assert_float_equal(h.reward, 0.08, 1e-12);
    /* A duplicate result changes nothing and asks for nothing. */
    assert_int_equal(hyp_on_result(&h, true, 0.12, 0.08, NULL, 3100), 0);
    assert_int_equal(hyp_on_applied(&h, true, false, NULL, 4000), 0);
    assert_int_equal(h.status, HYP_APPLIED);
    assert_int_equal(hyp_request_rollback(&h, &conflict), HYP_EMIT_ROLLBACK);
    assert_false(conflict);
    hyp_on_applied(&h, false, true, "operator", 5000);
    assert_int_equal(h.status, HYP_ROLLED_BACK);
    assert_string_equal(h.reason, "operator");
}

static void test_failures(void **state)
{
    (void)state;
    hypothesis_t h;
    hyp_proposal_t p = proposal(0.2);
    hyp_propose(&h, &p, 0.5, 1000);
    assert_int_equal(hyp_on_result(&h, false, -0.02, -0.06, "guardrail error_rate", 3000), HYP_LEARN);
    assert_int_equal(h.status, HYP_REJECTED);
    assert_string_equal(h.reason, "guardrail error_rate");
    hyp_propose(&h, &p, 0.5, 1000);
    hyp_on_result(&h, true, 0.1, 0.06, NULL, 3000);
    /* The applier refused it: FAILED, not a rollback, and it stays failed. */
    hyp_on_applied(&h, false, false, "weights out of bounds", 4000);
    assert_int_equal(h.status, HYP_FAILED);
    assert_string_equal(h.reason, "weights out of bounds");
    assert_false(hyp_is_open(&h));
    hyp_on_applied(&h, false, true, "late rollback", 4100);
    assert_int_equal(h.status, HYP_FAILED);
    assert_string_equal(hyp_status_name(HYP_FAILED), "FAILED");
}

/* A hypothesis waiting for an answer expires at its deadline, with the
 * reason; an answered one never does. */
static void test_open_hypotheses_expire(void **state)
{
    (void)state;
    hypothesis_t h;
    hyp_proposal_t p = proposal(0.8); /* needs approval */
    p.open_timeout_ms = 60000;
    hyp_propose(&h, &p, 0.5, 1000);
    assert_int_equal(h.status, HYP_AWAITING_APPROVAL);
    assert_int_equal(h.expires_at_ms, 61000);
    assert_false(hyp_expire(&h, 60999));
    assert_int_equal(h.status, HYP_AWAITING_APPROVAL);
    assert_true(hyp_expire(&h, 61000));
    assert_int_equal(h.status, HYP_EXPIRED);
    assert_string_equal(h.reason, "no approval response within 60 s: expired");
    assert_false(hyp_is_open(&h));
    assert_false(hyp_expire(&h, 99999)); /* once */
    /* A late approval changes nothing. */
    assert_int_equal(hyp_on_approval(&h, true, NULL, 70000), 0);
    assert_int_equal(h.status, HYP_EXPIRED);

    /* Approved: the experiment's wait starts at the approval. */
    hyp_propose(&h, &p, 0.5, 1000);
    hyp_on_approval(&h, true, NULL, 50000);
    assert_int_equal(h.status, HYP_EXPERIMENTING);
    assert_int_equal(h.expires_at_ms, 110000);
    assert_false(hyp_expire(&h, 109999));
    assert_true(hyp_expire(&h, 110000));
    assert_string_equal(h.reason, "no experiment result within 60 s: expired");
    /* A late result is ignored: no learning, no APPLY. */
    assert_int_equal(hyp_on_result(&h, true, 0.2, 0.1, NULL, 120000), 0);
    assert_int_equal(h.status, HYP_EXPIRED);

    /* Answered in time: never expires. */
    hyp_proposal_t q = proposal(0.2);
    hyp_propose(&h, &q, 0.5, 1000);
    assert_int_equal(h.expires_at_ms, 1000 + HYP_DEFAULT_OPEN_TIMEOUT_MS); /* no timeout given */
    hyp_on_result(&h, true, 0.1, 0.06, NULL, 3000);
    assert_int_equal(h.expires_at_ms, 0);
    assert_false(hyp_expire(&h, 1000 + 2 * HYP_DEFAULT_OPEN_TIMEOUT_MS));
    assert_int_equal(h.status, HYP_APPROVED);
}

/* A long text cut to fit a field never ends in half a UTF-8 character. */
static void test_cut_texts_stay_utf8(void **state)
{
    (void)state;
    char component[300];
    size_t n = 0;
    while (n + 2 < sizeof(component) - 1) {
        component[n++] = (char)0xC3; /* "é" */
        component[n++] = (char)0xA9;
    }
    component[n] = '\0';
    for (int shift = 0; shift < 2; shift++) {
        hyp_proposal_t p = proposal(0.2);
        p.component = component + shift; /* shift 1 starts inside a character */
        hypothesis_t h;
        hyp_propose(&h, &p, 0.5, 1);
        size_t len = strlen(h.component);
        assert_true(len > 0 && len < sizeof(h.component));
        assert_int_equal(len % 2, shift); /* whole characters only (plus the stray byte) */
        unsigned char last = (unsigned char)h.component[len - 1];
        assert_true(last == 0xA9);
    }
}

static void test_no_change_is_kept_rejected(void **state)
{
    (void)state;
    hypothesis_t h;
    hyp_proposal_t p = proposal(0.9);
    p.no_change = true;
    assert_int_equal(hyp_propose(&h, &p, 0.5, 1000), 0);
    assert_int_equal(h.status, HYP_REJECTED);
    assert_string_equal(h.reason, "the policy chose to change nothing");
    assert_non_null(strstr(h.rationale, h.action));
}

static void test_ids_and_names(void **state)
{
    (void)state;
    char a[24], b[24], c[24];
    hyp_id_for_insight("ins-1", a);
    hyp_id_for_insight("ins-1", b);
    hyp_id_for_insight("ins-2", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    hyp_status_t s;
    for (int i = 0; i < HYP_STATUS_COUNT; i++) {
        assert_int_equal(hyp_status_parse(hyp_status_name((hyp_status_t)i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(hyp_status_parse("DONE", &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_low_risk_goes_straight_to_experiment),
        cmocka_unit_test(test_high_risk_waits_for_approval),
        cmocka_unit_test(test_result_then_apply_then_rollback),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_open_hypotheses_expire),
        cmocka_unit_test(test_cut_texts_stay_utf8),
        cmocka_unit_test(test_no_change_is_kept_rejected),
        cmocka_unit_test(test_ids_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
