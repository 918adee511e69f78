#include "engine.h"

#include "hive_err.h"
#include "hypothesis.h"
#include "log.h"
#include "records.h"
#include "repo.h"
#include "timeutil.h"
#include "verdict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct engine_s {
    engine_conf_t conf;
    metric_t *generated, *suppressed, *filtered, *submitted, *succeeded, *failed, *applied, *rollbacks,
        *duration, *noop, *application_failed, *experiment_duration, *weight_magnitude;
};

engine_t *engine_create(const engine_conf_t *conf)
{
    engine_t *e = calloc(1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    e->conf = *conf;
    metrics_t *m = conf->metrics;
    e->generated = metrics_counter(m, "hypotheses_generated_total", "Hypotheses generated, by type", "type");
    e->suppressed = metrics_counter(
        m, "hypotheses_suppressed_total",
        "Insights debounced: an open hypothesis exists for the component and problem", "problem");
    e->filtered =
        metrics_counter(m, "insights_filtered_total", "Insights below HIGH priority, ignored", NULL);
    e->noop = metrics_counter(m, "decisions_noop_total", "Decisions that chose to change nothing", NULL);
    e->submitted =
        metrics_counter(m, "experiments_submitted_total",
                        "Experiment requests published, by experiment type (AB_TEST, CANARY)", "type");
    e->succeeded =
        metrics_counter(m, "experiments_succeeded_total", "Experiments that met their criteria", NULL);
    e->failed = metrics_counter(m, "experiments_failed_total", "Experiments that did not", NULL);
    e->applied = metrics_counter(m, "optimizations_applied_total", "Optimizations confirmed applied", "type");
    e->rollbacks = metrics_counter(m, "rollbacks_total", "Optimizations rolled back", "type");
    e->application_failed = metrics_counter(m, "optimizations_failed_total",
                                            "Optimizations the applier refused or failed to apply", "type");
    static const double duration_bounds[] = {60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 604800};
    e->experiment_duration =
        metrics_histogram(m, "experiment_duration_seconds", "Duration of the experiments with a result", NULL,
                          duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
    static const double magnitude_bounds[] = {0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3};
    e->weight_magnitude =
        metrics_histogram(m, "weight_adjustment_magnitude",
                          "Absolute weight change of the WEIGHT_RECALIBRATION optimizations applied", NULL,
                          magnitude_bounds, sizeof(magnitude_bounds) / sizeof(magnitude_bounds[0]));
    e->duration = metrics_histogram(m, "optimization_processing_duration_seconds",
                                    "Time to process one input record", NULL, NULL, 0);
    return e;
}

void engine_destroy(engine_t *e)
{
    free(e);
}

/* ---- records out ------------------------------------------------------------------ */

/* Adds an encoded record (freed here) to the transaction. */
static int add(kafka_out_t *out, const char *topic, const char *key, void *bytes, size_t len, char *reason,
               size_t rl)
{
    int rc = kafka_out_add(out, topic, key, strlen(key), bytes, len, NULL);
    free(bytes);
    if (rc != 0) {
        snprintf(reason, rl, "cannot queue a record for %s", topic);
        return -1;
    }
    return 0;
}

/* Emits what `effects` asks for. */
static int carry_out(engine_t *e, const hypothesis_t *h, unsigned effects, kafka_out_t *out, char *reason,
                     size_t rl)
{
    const engine_conf_t *c = &e->conf;
    void *bytes = NULL;
    size_t len = 0;
    if (effects & HYP_EMIT_APPROVAL_REQUEST) {
        if (records_approval_request(c->codec, c->approvals_requests_topic, h, &bytes, &len, reason, rl) !=
                0 ||
            add(out, c->approvals_requests_topic, h->id, bytes, len, reason, rl) != 0) {
            return -1;
        }
    }
    if (effects & HYP_EMIT_EXPERIMENT_REQUEST) {
        const records_experiment_t x = {
            .duration_s = c->experiment_duration_s,
            .traffic_split = c->traffic_split,
            .min_improvement = c->min_improvement,
            .guardrail_error_rate = c->guardrail_error_rate,
        };
        if (records_experiment_request(c->codec, c->experiments_requests_topic, h, &x, &bytes, &len, reason,
                                       rl) != 0 ||
            add(out, c->experiments_requests_topic, h->experiment_id, bytes, len, reason, rl) != 0) {
            return -1;
        }
        metric_add(e->submitted, 1, hyp_experiment_type(h));
    }
    if (effects & HYP_EMIT_APPLY) {
        if (records_apply(c->codec, c->commands_topic, h, &bytes, &len, reason, rl) != 0 ||
            add(out, c->commands_topic, h->component, bytes, len, reason, rl) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A failed store call: retried when transient, the record dead-lettered with
 * the store's message when the store refused it. */
static kafka_verdict_t store_verdict(int rc, const char *what, char *reason, size_t rl)
{
    return verdict_for_error(rc, what, store_last_error(), reason, rl);
}

/* ---- insights --------------------------------------------------------------------- */

int engine_read_insight(avro_value_t *v, engine_insight_t *out, char *reason, size_t reasonlen)
{
    engine_insight_t in = {0};
    size_t n;
    const char *field = "insight_id";
    if (avro_get_string(v, field, &in.insight_id, &n) || !n ||
        avro_get_string(v, field = "component", &in.component, &n) || !n ||
        avro_get_string(v, field = "metric", &in.metric, &n) ||
        avro_get_enum_name(v, field = "priority", &in.priority) ||
        avro_get_double(v, field = "current_value", &in.state.current_value) ||
        avro_get_double(v, field = "baseline_value", &in.state.baseline_value) ||
        avro_get_string(v, field = "description", &in.description, &n) ||
        state_priority_parse(in.priority, &in.state.priority) != 0) {
        snprintf(reason, reasonlen, "invalid Insight: field %s missing or malformed", field);
        return -1;
    }
    in.state.component = in.component;
    /* The problem a label names wins over the one the metric suggests. */
    const char *label = NULL;
    if (avro_get_map_string(v, "labels", "problem", &label, &n) != 0 || !label ||
        state_problem_parse(label, &in.state.problem) != 0) {
        in.state.problem = state_problem_of_metric(in.metric);
    }
    *out = in;
    return 0;
}

static kafka_verdict_t on_insight(engine_t *e, avro_value_t *v, kafka_out_t *out, char *reason, size_t rl)
{
    engine_insight_t in;
    if (engine_read_insight(v, &in, reason, rl) != 0) {
        return KAFKA_BAD_INPUT;
    }
    kafka_verdict_t verdict = KAFKA_OK;
    const char *problem = state_problem_name(in.state.problem);
    hypothesis_t h;
    char hyp_id[24];
    hyp_id_for_insight(in.insight_id, hyp_id);
    if (in.state.priority < PRIORITY_HIGH) {
        metric_add(e->filtered, 1);
        goto done;
    }
    /* A replay: the hypothesis exists; emit its records again. */
    int rc = repo_hyp_get(e->conf.store, hyp_id, &h);
    if (rc == 0) {
        rc = repo_hyp_mark_open(e->conf.store, &h); /* in case the crash came between the two writes */
        if (rc != 0) {
            verdict = store_verdict(rc, "marking the hypothesis open", reason, rl);
        } else if (carry_out(e, &h, hyp_effects_of_status(&h), out, reason, rl) != 0) {
            verdict = KAFKA_RETRY;
        }
        goto done;
    }
    if (rc != HIVE_ENOTFOUND) {
        verdict = store_verdict(rc, "reading the hypothesis", reason, rl);
        goto done;
    }
    bool open = false;
    rc = repo_hyp_open_exists(e->conf.store, in.component, problem, &open);
    if (rc != 0) {
        verdict = store_verdict(rc, "debounce lookup", reason, rl);
        goto done;
    }
    if (open) {
        metric_add(e->suppressed, 1, problem);
        goto done;
    }
    state_config_t scfg;
    state_config_default(&scfg);
    state_t st;
    learn_decision_t d;
    if (state_extract(&scfg, &in.state, &st) != 0) {
        snprintf(reason, rl, "invalid Insight: component name too long or values out of range");
        verdict = KAFKA_BAD_INPUT;
        goto done;
    }
    rc = learner_decide(e->conf.learner, e->conf.store, &st, &d);
    if (rc != 0) {
        verdict = store_verdict(rc, "deciding", reason, rl);
        goto done;
    }
    const learn_action_t *a = learn_action_get(d.action);
    if (!a) {
        snprintf(reason, rl, "the policy chose an unknown action %u", (unsigned)d.action);
        verdict = KAFKA_RETRY;
        goto done;
    }
    hyp_proposal_t p = {
        .insight_id = in.insight_id,
        .component = in.component,
        .problem = problem,
        .state_key = st.key,
        .action = a->name,
        .type = learn_action_type_name(a->type),
        .policy = learner_policy_name(e->conf.learner),
        .description = in.description,
        .q_value = d.value,
        .confidence = d.confidence,
        .risk = d.risk,
        .expected_improvement = d.expected_improvement,
        .propensity = d.propensity,
        .no_change = a->type == ACTION_NO_OP,
        .open_timeout_ms = e->conf.open_timeout_ms,
    };
    unsigned effects = hyp_propose(&h, &p, e->conf.risk_threshold, timeutil_wall_ms());
    rc = repo_hyp_put(e->conf.store, &h);
    if (rc == 0) {
        rc = repo_hyp_mark_open(e->conf.store, &h);
    }
    if (rc != 0) {
        verdict = store_verdict(rc, "storing the hypothesis", reason, rl);
        goto done;
    }
    if (carry_out(e, &h, effects, out, reason, rl) != 0) {
        verdict = KAFKA_RETRY;
        goto done;
    }
    if (p.no_change) {
        metric_add(e->noop, 1);
    } else {
        metric_add(e->generated, 1, h.type);
    }
    log_info(p.no_change ? "decided to change nothing" : "hypothesis proposed", "optimization_id", h.id,
             "insight_id", h.insight_id, "component", h.component, "action", h.action, "status",
             hyp_status_name(h.status));
done:
    return verdict;
}

/* ---- approvals, results, applications --------------------------------------------- */

/* Reads the hypothesis an event names; KAFKA_OK with *found false when the
 * event is not about one of ours (the retrainer's experiments, say). */
static kafka_verdict_t load_hypothesis(engine_t *e, const char *id, const char *experiment_id,
                                       hypothesis_t *h, bool *found, char *reason, size_t rl)
{
    int rc = id && *id ? repo_hyp_get(e->conf.store, id, h) : HIVE_ENOTFOUND;
    if (rc == HIVE_ENOTFOUND && experiment_id) {
        rc = repo_hyp_by_experiment(e->conf.store, experiment_id, h);
    }
    *found = rc == 0;
    if (rc == 0 || rc == HIVE_ENOTFOUND) {
        return KAFKA_OK;
    }
    return store_verdict(rc, "reading the hypothesis", reason, rl);
}

/* After an event: store the moved hypothesis and emit what the move asks for;
 * when the event did not move it but is the one that put it in its status (a
 * replay of an aborted transaction), emit that status' records again. */
static kafka_verdict_t settle(engine_t *e, hypothesis_t *h, unsigned effects, bool moved, bool replay,
                              kafka_out_t *out, char *reason, size_t rl)
{
    if (moved) {
        int rc = repo_hyp_put(e->conf.store, h);
        if (rc != 0) {
            return store_verdict(rc, "storing the hypothesis", reason, rl);
        }
    }
    unsigned emits = moved ? effects : (replay ? hyp_effects_of_status(h) : 0);
    return carry_out(e, h, emits, out, reason, rl) == 0 ? KAFKA_OK : KAFKA_RETRY;
}

static kafka_verdict_t on_approval(engine_t *e, avro_value_t *v, kafka_out_t *out, char *reason, size_t rl)
{
    const char *id = NULL, *decision = NULL, *why = "";
    size_t n;
    if (avro_get_string(v, "optimization_id", &id, &n) || avro_get_enum_name(v, "decision", &decision)) {
        snprintf(reason, rl, "invalid ApprovalResponse: optimization_id or decision missing");
        return KAFKA_BAD_INPUT;
    }
    avro_get_string(v, "reason", &why, &n);
    hypothesis_t h;
    bool found;
    kafka_verdict_t verdict = load_hypothesis(e, id, NULL, &h, &found, reason, rl);
    if (verdict == KAFKA_OK && found) {
        bool approved = strcmp(decision, "APPROVED") == 0;
        hyp_status_t before = h.status;
        unsigned effects = hyp_on_approval(&h, approved, why, timeutil_wall_ms());
        bool replay = approved && h.status == HYP_EXPERIMENTING;
        verdict = settle(e, &h, effects, h.status != before, replay, out, reason, rl);
    }
    return verdict;
}

/* How far before the experiment's end a degraded telemetry window still
 * describes the component's state at the end. */
#define NEXT_STATE_LOOKBACK_MS (15 * 60 * 1000)

/* The state `component` was in when the experiment of result `v` ended: the
 * latest degraded window the telemetry intake stored between
 * max(started_at, ended_at - NEXT_STATE_LOOKBACK_MS) and ended_at. None:
 * healthy again, a terminal transition (*out_has false). */
static int next_state_of(engine_t *e, avro_value_t *v, const char *component, state_t *out, bool *out_has)
{
    *out_has = false;
    int64_t started = 0, ended = 0;
    if (avro_get_long(v, "started_at", &started) || avro_get_long(v, "ended_at", &ended) || ended < started) {
        return 0;
    }
    int64_t from = ended - NEXT_STATE_LOOKBACK_MS > started ? ended - NEXT_STATE_LOOKBACK_MS : started;
    repo_observation_t o;
    bool found = false;
    int rc = repo_last_observation(e->conf.store, component, from, ended, &o, &found);
    if (rc != 0 || !found) {
        return rc;
    }
    priority_t priority = PRIORITY_HIGH;
    state_priority_parse(o.priority, &priority);
    state_config_t scfg;
    state_config_default(&scfg);
    *out_has = state_from_observation(&scfg, component, o.metric, o.severity, priority, 0.0, out) == 0;
    return 0;
}

static kafka_verdict_t on_result(engine_t *e, avro_value_t *v, kafka_out_t *out, char *reason, size_t rl)
{
    const char *experiment_id = NULL, *id = NULL, *status = NULL, *decision = NULL, *why = "";
    size_t n;
    double improvement = 0;
    if (avro_get_string(v, "experiment_id", &experiment_id, &n) || avro_get_enum_name(v, "status", &status) ||
        avro_get_enum_name(v, "decision", &decision) || avro_get_double(v, "improvement", &improvement) ||
        !isfinite(improvement)) {
        snprintf(reason, rl,
                 "invalid ExperimentResult: experiment_id, status, decision or improvement missing");
        return KAFKA_BAD_INPUT;
    }
    avro_get_nullable_string(v, "optimization_id", &id, &n);
    avro_get_string(v, "reason", &why, &n);
    hypothesis_t h;
    bool found;
    kafka_verdict_t verdict = load_hypothesis(e, id, experiment_id, &h, &found, reason, rl);
    if (verdict != KAFKA_OK || !found) {
        goto done;
    }
    uint16_t action;
    state_t st;
    if (learn_action_find(h.action, &action) != 0 || state_parse_key(h.state_key, &st) != 0) {
        snprintf(reason, rl, "hypothesis %s names an unknown action or state", h.id);
        verdict = KAFKA_BAD_INPUT;
        goto done;
    }
    bool success = hyp_result_success(status, decision, improvement, e->conf.min_improvement);
    double reward = learner_reward(e->conf.learner, action, success, improvement);
    hyp_status_t before = h.status;
    unsigned effects = hyp_on_result(&h, success, improvement, reward, why, timeutil_wall_ms());
    bool moved = h.status != before;
    bool replay = !moved && h.has_result && strcmp(h.experiment_id, experiment_id) == 0;
    if ((effects & HYP_LEARN) || replay) {
        /* s': the component's state at the experiment's end, from its telemetry. */
        state_t next_state;
        bool has_next = false;
        int rc = next_state_of(e, v, h.component, &next_state, &has_next);
        if (rc != 0) {
            verdict = store_verdict(rc, "reading the telemetry after the experiment", reason, rl);
            goto done;
        }
        /* Counted at most once per experiment, across replays and replicas. */
        bool counted = false;
        const learner_result_t r = {
            .state = &st,
            .action = action,
            .reward = h.reward,
            .success = success,
            .improvement = improvement,
            .next = has_next ? &next_state : NULL,
            .experiment_id = experiment_id,
        };
        rc = learner_learn(e->conf.learner, e->conf.store, &r, &counted);
        if (rc != 0) {
            verdict = store_verdict(rc, "saving the learning update", reason, rl);
            goto done;
        }
    }
    if (moved) {
        metric_add(success ? e->succeeded : e->failed, 1);
        int64_t started = 0, ended = 0;
        if (!avro_get_long(v, "started_at", &started) && !avro_get_long(v, "ended_at", &ended) &&
            ended >= started) {
            metric_observe(e->experiment_duration, (double)(ended - started) / 1000.0);
        }
        log_info("experiment result", "optimization_id", h.id, "experiment_id", experiment_id, "status",
                 hyp_status_name(h.status));
    }
    verdict = settle(e, &h, effects, moved, replay, out, reason, rl);
done:
    return verdict;
}

static kafka_verdict_t on_applied(engine_t *e, avro_value_t *v, char *reason, size_t rl)
{
    const char *id = NULL, *type = NULL, *why = "";
    size_t n;
    if (avro_get_string(v, "optimization_id", &id, &n) || avro_get_enum_name(v, "event_type", &type)) {
        snprintf(reason, rl, "invalid OptimizationEvent: optimization_id or event_type missing");
        return KAFKA_BAD_INPUT;
    }
    avro_get_string(v, "reason", &why, &n);
    hypothesis_t h;
    bool found;
    kafka_verdict_t verdict = load_hypothesis(e, id, NULL, &h, &found, reason, rl);
    if (verdict == KAFKA_OK && found) {
        hyp_status_t before = h.status;
        bool rolled_back = !strcmp(type, "ROLLED_BACK");
        hyp_on_applied(&h, !strcmp(type, "APPLIED"), rolled_back, why, timeutil_wall_ms());
        if (h.status != before) {
            int rc = repo_hyp_put(e->conf.store, &h);
            if (rc != 0) {
                verdict = store_verdict(rc, "storing the hypothesis", reason, rl);
            } else if (h.status == HYP_APPLIED) {
                metric_add(e->applied, 1, h.type);
                uint16_t aid;
                const learn_action_t *a =
                    learn_action_find(h.action, &aid) == 0 ? learn_action_get(aid) : NULL;
                if (a && a->type == ACTION_WEIGHT_RECALIBRATION) {
                    metric_observe(e->weight_magnitude, fabs(a->param.weight.delta));
                }
            } else if (h.status == HYP_ROLLED_BACK) {
                metric_add(e->rollbacks, 1, h.type);
            } else if (h.status == HYP_FAILED) {
                metric_add(e->application_failed, 1, h.type);
                log_warn("the applier did not apply the optimization", "optimization_id", h.id, "event_type",
                         type, "reason", h.reason);
            }
        }
    }
    return verdict;
}

kafka_verdict_t engine_transform(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen)
{
    engine_t *e = ctx;
    double started = timeutil_mono_seconds();
    const char *topic = rd_kafka_topic_name(msg->rkt);
    kafka_verdict_t v;
    if (!strcmp(topic, e->conf.insights_topic)) {
        v = on_insight(e, value, out, reason, reasonlen);
    } else if (!strcmp(topic, e->conf.approvals_responses_topic)) {
        v = on_approval(e, value, out, reason, reasonlen);
    } else if (!strcmp(topic, e->conf.experiments_results_topic)) {
        v = on_result(e, value, out, reason, reasonlen);
    } else if (!strcmp(topic, e->conf.applied_topic)) {
        v = on_applied(e, value, reason, reasonlen);
    } else {
        snprintf(reason, reasonlen, "no handler for topic %s", topic);
        v = KAFKA_BAD_INPUT;
    }
    metric_observe(e->duration, timeutil_mono_seconds() - started);
    return v;
}
