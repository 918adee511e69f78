/* learner: what the service keeps of a policy. An entry exported by any of
 * the three policies, written as a q_table document and read back, restores
 * the same knowledge in a fresh policy; keys, skips and the save cadence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "learner.h"

static void make_state(state_t *s)
{
    assert_int_equal(state_make("orchestrator", PROBLEM_LATENCY, 2, 1, s), 0);
}

static uint16_t action_id(const char *name)
{
    uint16_t id;
    assert_int_equal(learn_action_find(name, &id), 0);
    return id;
}

static learn_policy_t *new_policy(learn_policy_kind_t kind)
{
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, kind);
    learn_policy_t *p = learn_policy_create(&cfg);
    assert_non_null(p);
    return p;
}

/* Teaches `p` two rewards of `a` in `s`, then moves the entry through a
 * q_table document into a fresh policy of the same kind, and checks it holds
 * the same entry. */
static void roundtrip(learn_policy_kind_t kind)
{
    state_t s;
    make_state(&s);
    uint16_t a = action_id("slo_latency_relax_10");
    learn_policy_t *p = new_policy(kind), *fresh = new_policy(kind);
    assert_int_equal(learn_policy_update(p, &s, a, 0.12), 0);
    assert_int_equal(learn_policy_update(p, &s, a, 0.08), 0);

    learn_policy_entry_t out, back, again;
    assert_int_equal(learn_policy_export(p, &s, a, &out), 0);
    bson_t *doc = learner_entry_to_bson(&out, 0.08, "exp-1");
    assert_non_null(doc);
    assert_int_equal(learner_entry_from_bson(doc, &back), 0);
    bson_destroy(doc);
    assert_string_equal(back.state_key, s.key);
    assert_string_equal(back.action_name, "slo_latency_relax_10");
    assert_int_equal(back.has_model, kind == POLICY_LINUCB);

    /* Before the import the fresh policy knows nothing of it. */
    assert_int_equal(learn_policy_export(fresh, &s, a, &again), 0);
    assert_int_equal(again.visits, 0);
    assert_int_equal(learn_policy_import(fresh, &back), 0);
    assert_int_equal(learn_policy_export(fresh, &s, a, &again), 0);
    assert_true(again.visits == out.visits && out.visits == 2);
    assert_true(fabs(again.value - out.value) < 1e-12);
    assert_true(out.value != 0.0);
    if (kind == POLICY_LINUCB) {
        assert_int_equal(again.n, 2);
        assert_memory_equal(again.A, out.A, sizeof(out.A));
        assert_memory_equal(again.b, out.b, sizeof(out.b));
    }
    learn_policy_destroy(p);
    learn_policy_destroy(fresh);
}

static void test_qlearning_entry_roundtrip(void **state)
{
    (void)state;
    roundtrip(POLICY_QLEARNING);
}

static void test_thompson_entry_roundtrip(void **state)
{
    (void)state;
    roundtrip(POLICY_THOMPSON);
}

static void test_linucb_entry_roundtrip(void **state)
{
    (void)state;
    roundtrip(POLICY_LINUCB);
}

static void test_entry_keys(void **state)
{
    (void)state;
    state_t s;
    make_state(&s);
    uint16_t a = action_id("slo_latency_relax_10");
    char key[256];
    learn_policy_t *q = new_policy(POLICY_QLEARNING), *lin = new_policy(POLICY_LINUCB);
    assert_int_equal(learn_policy_entry_key(q, &s, a, key, sizeof(key)), 0);
    assert_string_equal(key, "orchestrator|LATENCY|sev2|load1|slo_latency_relax_10");
    /* LinUCB's model is shared by every state. */
    assert_int_equal(learn_policy_entry_key(lin, &s, a, key, sizeof(key)), 0);
    assert_string_equal(key, "linucb|slo_latency_relax_10");
    assert_int_equal(learn_policy_entry_key(q, &s, 9999, key, sizeof(key)), -EINVAL);
    assert_int_equal(learn_policy_entry_key(q, &s, a, key, 8), -EINVAL); /* does not fit */
    learn_policy_destroy(q);
    learn_policy_destroy(lin);
}

static void test_documents_a_policy_cannot_take_are_refused(void **state)
{
    (void)state;
    learn_policy_entry_t e;
    /* an action gone from the catalogue */
    bson_t *gone = BCON_NEW("state_key", BCON_UTF8("a|LATENCY|sev0|load0"), "action",
                            BCON_UTF8("retired_action"), "value", BCON_DOUBLE(0.5), "visits", BCON_INT64(3));
    assert_int_equal(learner_entry_from_bson(gone, &e), -1);
    bson_destroy(gone);
    /* no state */
    bson_t *nostate = BCON_NEW("action", BCON_UTF8("noop"));
    assert_int_equal(learner_entry_from_bson(nostate, &e), -1);
    bson_destroy(nostate);
    /* a Q-learning document has no model: LinUCB skips it */
    bson_t *plain = BCON_NEW("state_key", BCON_UTF8("a|LATENCY|sev0|load0"), "action", BCON_UTF8("noop"),
                             "value", BCON_DOUBLE(0.5), "visits", BCON_INT64(3));
    assert_int_equal(learner_entry_from_bson(plain, &e), 0);
    assert_false(e.has_model);
    assert_true(e.value == 0.5 && e.visits == 3);
    learn_policy_t *lin = new_policy(POLICY_LINUCB);
    assert_int_equal(learn_policy_import(lin, &e), -EINVAL);
    learn_policy_destroy(lin);
    bson_destroy(plain);
}

static void test_policy_state_saved_every_32nd_decision(void **state)
{
    (void)state;
    assert_false(learner_save_due(0));
    assert_true(learner_save_due(1));
    assert_false(learner_save_due(2));
    assert_false(learner_save_due(32));
    assert_true(learner_save_due(33));
    assert_true(learner_save_due(65));
}

/* Issue 15 item 9: a retried batch makes its decisions again; rewinding to
 * the mark taken before it leaves epsilon, the decision counter and the
 * random generator as if the failed attempt had not happened. */
static void test_retried_batch_decays_epsilon_once(void **state)
{
    (void)state;
    metrics_t *m = metrics_create();
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.epsilon_start = 0.3;
    learner_t *l = learner_create(&cfg, 11, m);
    assert_non_null(l);
    state_t s;
    assert_int_equal(state_make("svc", PROBLEM_LATENCY, 2, 1, &s), 0);
    learner_mark_t mark;
    learner_mark(l, &mark);
    uint16_t first[8];
    bool due;
    learn_decision_t d;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(learner_choose(l, &s, &d, &due), 0);
        first[i] = d.action;
    }
    double after_one_attempt = learner_epsilon(l);
    assert_true(after_one_attempt < 0.3);
    learner_rewind(l, &mark); /* the batch is retried */
    assert_true(learner_epsilon(l) == 0.3);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(learner_choose(l, &s, &d, &due), 0);
        assert_int_equal(d.action, first[i]);
    }
    assert_true(learner_epsilon(l) == after_one_attempt); /* decayed once for the batch */
    learner_destroy(l);
    metrics_destroy(m);
}

static void test_learner_figures_follow_the_policy(void **state)
{
    (void)state;
    metrics_t *m = metrics_create();
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, POLICY_QLEARNING);
    cfg.qlearn.epsilon_start = 0.25;
    learner_t *q = learner_create(&cfg, 7, m);
    assert_non_null(q);
    assert_string_equal(learner_policy_name(q), "qlearning");
    assert_true(learner_epsilon(q) == 0.25);
    assert_int_equal(learner_table_size(q), 0);
    learn_policy_config_default(&cfg, POLICY_THOMPSON);
    learner_t *t = learner_create(&cfg, 7, m);
    assert_non_null(t);
    assert_string_equal(learner_policy_name(t), "thompson");
    assert_true(learner_epsilon(t) == 0.0);
    /* The reward of seed 000: improvement - risk * penalty. */
    uint16_t a = action_id("slo_latency_relax_10");
    assert_true(fabs(learner_reward(t, a, true, 0.2) - (0.2 - learn_action_get(a)->risk * 0.2)) < 1e-12);
    cfg.max_weight_adjustment = 5; /* out of range */
    assert_null(learner_create(&cfg, 7, m));
    learner_destroy(q);
    learner_destroy(t);
    metrics_destroy(m);
}

/* Issue 15 item 2: with no stored revision yet, a result whose save failed
 * and is retried is applied once, not twice, for every policy. */
static void retried_once(learn_policy_kind_t kind)
{
    metrics_t *m = metrics_create();
    learn_policy_config_t cfg;
    learn_policy_config_default(&cfg, kind);
    cfg.qlearn.learning_rate = 0.5;
    learner_t *l = learner_create(&cfg, 7, m);
    assert_non_null(l);
    state_t s;
    make_state(&s);
    uint16_t a = action_id("slo_latency_relax_10");
    const learner_result_t r = {.state = &s,
                                .action = a,
                                .reward = 0.08,
                                .success = true,
                                .improvement = 0.12,
                                .experiment_id = "exp-1"};
    learn_policy_entry_t orig, before, first, second;
    assert_int_equal(learner_apply(l, &r, NULL, &orig, &first), 0);
    assert_int_equal(orig.visits, 0);
    /* The save failed (a conflict): the same result comes again, MongoDB
     * still holding no revision. */
    assert_int_equal(learner_apply(l, &r, NULL, &before, &second), 0);
    assert_int_equal(first.visits, 1);
    assert_int_equal(second.visits, 1);
    assert_true(fabs(second.value - first.value) < 1e-12);
    assert_int_equal(second.improvement_n, 1);
    if (kind == POLICY_QLEARNING) {
        assert_true(fabs(second.value - 0.5 * 0.08) < 1e-12);
    }
    if (kind == POLICY_LINUCB) {
        assert_int_equal(second.n, 1);
        assert_memory_equal(second.A, first.A, sizeof(first.A));
    }
    /* Undone after a failed save: memory is back where it was. */
    learner_restore_entry(l, &orig);
    assert_int_equal(learner_apply(l, &r, NULL, &before, &second), 0);
    assert_int_equal(before.visits, 0);
    assert_int_equal(before.improvement_n, 0);
    /* From a stored revision: that revision plus one update. */
    bson_t *doc = learner_entry_to_bson(&first, 0.08, "exp-1");
    const learner_result_t r2 = {.state = &s,
                                 .action = a,
                                 .reward = 0.08,
                                 .success = true,
                                 .improvement = 0.12,
                                 .experiment_id = "exp-2"};
    assert_int_equal(learner_apply(l, &r2, doc, &before, &second), 0);
    assert_int_equal(learner_apply(l, &r2, doc, &before, &second), 0);
    assert_int_equal(second.visits, 2);
    assert_int_equal(second.improvement_n, 2);
    bson_destroy(doc);
    learner_destroy(l);
    metrics_destroy(m);
}

static void test_retried_result_applied_once_qlearning(void **state)
{
    (void)state;
    retried_once(POLICY_QLEARNING);
}

static void test_retried_result_applied_once_thompson(void **state)
{
    (void)state;
    retried_once(POLICY_THOMPSON);
}

static void test_retried_result_applied_once_linucb(void **state)
{
    (void)state;
    retried_once(POLICY_LINUCB);
}

/* Issue 15 item 3: a result with the state it led to bootstraps from it,
 * Q(s,a) <- Q(s,a) + alpha [r + gamma max_a' Q(s',a') - Q(s,a)], and gamma
 * changes the stored value exactly so. */
static void test_gamma_bootstraps_from_the_next_state(void **state)
{
    (void)state;
    const double gammas[] = {0.0, 0.5, 0.95};
    for (size_t g = 0; g < sizeof(gammas) / sizeof(gammas[0]); g++) {
        metrics_t *m = metrics_create();
        learn_policy_config_t cfg;
        learn_policy_config_default(&cfg, POLICY_QLEARNING);
        cfg.qlearn.learning_rate = 0.5;
        cfg.qlearn.discount_factor = gammas[g];
        learner_t *l = learner_create(&cfg, 7, m);
        state_t s, next;
        make_state(&s);
        assert_int_equal(state_make("orchestrator", PROBLEM_LATENCY, 1, 1, &next), 0);
        uint16_t a = action_id("slo_latency_relax_10");
        /* Q(s', a) = 0.5 * 0.2 = 0.1, the max over s' (the others are 0). */
        const learner_result_t seen = {.state = &next,
                                       .action = a,
                                       .reward = 0.2,
                                       .success = true,
                                       .improvement = 0.2,
                                       .experiment_id = "exp-0"};
        learn_policy_entry_t before, after;
        assert_int_equal(learner_apply(l, &seen, NULL, &before, &after), 0);
        assert_true(fabs(after.value - 0.1) < 1e-12);
        const learner_result_t r = {.state = &s,
                                    .action = a,
                                    .reward = 0.08,
                                    .success = true,
                                    .improvement = 0.12,
                                    .next = &next,
                                    .experiment_id = "exp-1"};
        assert_int_equal(learner_apply(l, &r, NULL, &before, &after), 0);
        double want = 0.5 * (0.08 + gammas[g] * 0.1);
        if (fabs(after.value - want) > 1e-12) {
            fail_msg("gamma %g: Q %.17g, expected %.17g", gammas[g], after.value, want);
        }
        /* Terminal (the component healthy again): the target is r alone. */
        const learner_result_t t = {.state = &s,
                                    .action = a,
                                    .reward = 0.08,
                                    .success = true,
                                    .improvement = 0.12,
                                    .experiment_id = "exp-2"};
        bson_t *doc = learner_entry_to_bson(&after, 0.08, "exp-1");
        assert_int_equal(learner_apply(l, &t, doc, &before, &after), 0);
        assert_true(fabs(after.value - (want + 0.5 * (0.08 - want))) < 1e-12);
        bson_destroy(doc);
        learner_destroy(l);
        metrics_destroy(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qlearning_entry_roundtrip),
        cmocka_unit_test(test_thompson_entry_roundtrip),
        cmocka_unit_test(test_linucb_entry_roundtrip),
        cmocka_unit_test(test_entry_keys),
        cmocka_unit_test(test_documents_a_policy_cannot_take_are_refused),
        cmocka_unit_test(test_policy_state_saved_every_32nd_decision),
        cmocka_unit_test(test_retried_batch_decays_epsilon_once),
        cmocka_unit_test(test_learner_figures_follow_the_policy),
        cmocka_unit_test(test_retried_result_applied_once_qlearning),
        cmocka_unit_test(test_retried_result_applied_once_thompson),
        cmocka_unit_test(test_retried_result_applied_once_linucb),
        cmocka_unit_test(test_gamma_bootstraps_from_the_next_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
