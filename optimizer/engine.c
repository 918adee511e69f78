#include "engine.h"

#include "hypothesis.h"
#include "log.h"
#include "repo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct engine_s {
    engine_conf_t conf;
    metric_t *generated, *suppressed, *filtered, *submitted, *succeeded, *failed, *applied, *rollbacks,
        *duration, *noop;
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
    e->submitted = metrics_counter(m, "experiments_submitted_total", "Experiment requests published", "type");
    e->succeeded =
        metrics_counter(m, "experiments_succeeded_total", "Experiments that met their criteria", NULL);
    e->failed = metrics_counter(m, "experiments_failed_total", "Experiments that did not", NULL);
    e->applied = metrics_counter(m, "optimizations_applied_total", "Optimizations confirmed applied", "type");
    e->rollbacks = metrics_counter(m, "rollbacks_total", "Optimizations rolled back", "type");
    e->duration = metrics_histogram(m, "optimization_processing_duration_seconds",
                                    "Time to process one input record", NULL, NULL, 0);
    return e;
}

void engine_destroy(engine_t *e)
{
    free(e);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- records out ------------------------------------------------------------------ */

/* Encodes `v` (consumed) and adds it to the transaction. */
static int emit(engine_t *e, kafka_out_t *out, const char *topic, const char *key, avro_value_t *v,
                char *reason, size_t reasonlen)
{
    void *bytes = NULL;
    size_t len = 0;
    int rc = avro_codec_encode(e->conf.codec, topic, v, &bytes, &len, reason, reasonlen);
    avro_value_decref(v);
    if (rc == 0) {
        rc = kafka_out_add(out, topic, key, strlen(key), bytes, len, NULL);
    }
    free(bytes);
    return rc ? -1 : 0;
}

static const char *slo_metric_name(slo_metric_t m)
{
    return m == SLO_LATENCY ? "latency_p95_ms" : m == SLO_AVAILABILITY ? "availability" : "error_rate";
}

/* The action's parameters as a map<double>: what moves and by how much. */
static int set_adjustments(avro_value_t *rec, const char *field, const char *action_name)
{
    uint16_t id;
    if (action_find(action_name, &id) != 0) {
        return 0;
    }
    const action_t *a = action_get(id);
    switch (a->type) {
    case ACTION_WEIGHT_RECALIBRATION:
        return avro_set_map_double(rec, field, action_specialist_name(a->param.weight.specialist),
                                   a->param.weight.delta);
    case ACTION_SLO_ADJUSTMENT:
        return avro_set_map_double(rec, field, slo_metric_name(a->param.slo.metric),
                                   a->param.slo.relative_change);
    case ACTION_HEURISTIC_UPDATE:
        return avro_set_map_double(rec, field, a->param.heuristic.heuristic, a->param.heuristic.delta);
    case ACTION_POLICY_CHANGE:
        return avro_set_map_double(rec, field, a->param.policy.policy, a->param.policy.enable ? 1.0 : 0.0);
    default:
        return 0;
    }
}

static int emit_approval_request(engine_t *e, const hypothesis_t *h, kafka_out_t *out, char *reason,
                                 size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(e->conf.codec, "ApprovalRequest", &v) != 0) {
        return -1;
    }
    int rc =
        avro_set_string(&v, "optimization_id", h->id) ||
        avro_set_enum_name(&v, "optimization_type", h->type) || avro_set_string(&v, "target", h->component) ||
        avro_set_string(&v, "hypothesis", h->rationale) || set_adjustments(&v, "adjustments", h->action) ||
        avro_set_double(&v, "expected_improvement", h->expected_improvement) ||
        avro_set_double(&v, "risk_score", h->risk) || avro_set_long(&v, "requested_at", h->created_at_ms);
    if (rc) {
        avro_value_decref(&v);
        snprintf(reason, rl, "cannot build ApprovalRequest for %s", h->id);
        return -1;
    }
    return emit(e, out, e->conf.approvals_requests_topic, h->id, &v, reason, rl);
}

/* The metric an experiment must improve for the hypothesis' problem. */
static void success_metric(const char *problem, const char **metric, const char **op)
{
    *op = "LT";
    if (!strcmp(problem, "LATENCY")) {
        *metric = "latency_p95_ms";
    } else if (!strcmp(problem, "ERROR_RATE")) {
        *metric = "error_rate";
    } else if (!strcmp(problem, "SLO_COMPLIANCE")) {
        *metric = "slo_compliance", *op = "GT";
    } else if (!strcmp(problem, "AVAILABILITY")) {
        *metric = "availability", *op = "GT";
    } else if (!strcmp(problem, "CONSENSUS_ACCURACY")) {
        *metric = "consensus_accuracy", *op = "GT";
    } else {
        *metric = "improvement", *op = "GT";
    }
}

static int add_criterion(avro_value_t *rec, const char *field, const char *metric, const char *op,
                         double threshold)
{
    avro_value_t item, f;
    return avro_append_item(rec, field, &item) || avro_value_get_by_name(&item, "metric", &f, NULL) ||
           avro_value_set_string(&f, metric) || avro_value_get_by_name(&item, "operator", &f, NULL) ||
           avro_set_enum_name(&item, "operator", op) ||
           avro_value_get_by_name(&item, "threshold", &f, NULL) || avro_value_set_double(&f, threshold);
}

static int emit_experiment_request(engine_t *e, const hypothesis_t *h, kafka_out_t *out, char *reason,
                                   size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(e->conf.codec, "ExperimentRequest", &v) != 0) {
        return -1;
    }
    const char *metric, *op;
    success_metric(h->problem, &metric, &op);
    int rc = avro_set_string(&v, "experiment_id", h->experiment_id) ||
             avro_set_string(&v, "optimization_id", h->id) ||
             avro_set_string(&v, "requested_by", "optimizer") ||
             avro_set_enum_name(&v, "experiment_type", h->risk > 0.3 ? "CANARY" : "AB_TEST") ||
             avro_set_string(&v, "target", h->component) || avro_set_string(&v, "hypothesis", h->rationale) ||
             avro_set_enum_name(&v, "optimization_type", h->type) ||
             set_adjustments(&v, "parameters", h->action) ||
             avro_set_double(&v, "expected_improvement", h->expected_improvement) ||
             avro_set_double(&v, "confidence", h->confidence) || avro_set_double(&v, "risk_score", h->risk) ||
             avro_set_double(&v, "q_value", h->q_value) ||
             avro_set_double(&v, "traffic_split", e->conf.traffic_split) ||
             avro_set_long(&v, "duration_seconds", e->conf.experiment_duration_s) ||
             add_criterion(&v, "success_criteria", "relative_improvement", "GE", e->conf.min_improvement) ||
             add_criterion(&v, "success_criteria", metric, op, 0.0) ||
             add_criterion(&v, "guardrails", "error_rate", "LT", e->conf.guardrail_error_rate) ||
             avro_set_long(&v, "requested_at", h->updated_at_ms);
    if (rc) {
        avro_value_decref(&v);
        snprintf(reason, rl, "cannot build ExperimentRequest for %s", h->id);
        return -1;
    }
    metric_add(e->submitted, 1, h->type);
    return emit(e, out, e->conf.experiments_requests_topic, h->experiment_id, &v, reason, rl);
}

static int emit_apply(engine_t *e, const hypothesis_t *h, kafka_out_t *out, char *reason, size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(e->conf.codec, "OptimizationCommand", &v) != 0) {
        return -1;
    }
    char command_id[48];
    snprintf(command_id, sizeof(command_id), "cmd-apply-%s", h->id);
    char why[160];
    snprintf(why, sizeof(why), "experiment %s improved by %.1f%%", h->experiment_id, 100.0 * h->improvement);
    int rc = avro_set_string(&v, "command_id", command_id) || avro_set_enum_name(&v, "command", "APPLY") ||
             avro_set_string(&v, "optimization_id", h->id) ||
             avro_set_enum_name(&v, "optimization_type", h->type) ||
             avro_set_string(&v, "target", h->component) || set_adjustments(&v, "adjustments", h->action) ||
             avro_set_string(&v, "experiment_id", h->experiment_id) || avro_set_string(&v, "reason", why) ||
             avro_set_long(&v, "issued_at", h->updated_at_ms);
    if (rc) {
        avro_value_decref(&v);
        snprintf(reason, rl, "cannot build OptimizationCommand for %s", h->id);
        return -1;
    }
    return emit(e, out, e->conf.commands_topic, h->component, &v, reason, rl);
}

/* Emits what `effects` asks for. */
static int carry_out(engine_t *e, const hypothesis_t *h, unsigned effects, kafka_out_t *out, char *reason,
                     size_t rl)
{
    if ((effects & HYP_EMIT_APPROVAL_REQUEST) && emit_approval_request(e, h, out, reason, rl) != 0) {
        return -1;
    }
    if ((effects & HYP_EMIT_EXPERIMENT_REQUEST) && emit_experiment_request(e, h, out, reason, rl) != 0) {
        return -1;
    }
    if ((effects & HYP_EMIT_APPLY) && emit_apply(e, h, out, reason, rl) != 0) {
        return -1;
    }
    return 0;
}

/* The records a hypothesis in this status has emitted, for a replay. */
static unsigned effects_of_status(const hypothesis_t *h)
{
    switch (h->status) {
    case HYP_AWAITING_APPROVAL:
        return HYP_EMIT_APPROVAL_REQUEST;
    case HYP_EXPERIMENTING:
        return HYP_EMIT_EXPERIMENT_REQUEST;
    case HYP_APPROVED:
        return HYP_EMIT_APPLY;
    default:
        return 0;
    }
}

/* MongoDB outcome → verdict. */
static kafka_verdict_t store_verdict(int rc, const char *what, char *reason, size_t rl)
{
    snprintf(reason, rl, "%s: %s (%s)", what, store_strerror(rc), store_last_error());
    return KAFKA_RETRY;
}

/* ---- insights --------------------------------------------------------------------- */

static problem_kind_t problem_of(avro_value_t *v, const char *metric)
{
    const char *label = NULL;
    size_t len = 0;
    problem_kind_t p;
    if (avro_get_map_string(v, "labels", "problem", &label, &len) == 0 && label &&
        state_problem_parse(label, &p) == 0) {
        return p;
    }
    if (strstr(metric, "latency")) {
        return PROBLEM_LATENCY;
    }
    if (strstr(metric, "error")) {
        return PROBLEM_ERROR_RATE;
    }
    if (strstr(metric, "slo")) {
        return PROBLEM_SLO_COMPLIANCE;
    }
    if (strstr(metric, "availability")) {
        return PROBLEM_AVAILABILITY;
    }
    if (strstr(metric, "consensus") || strstr(metric, "accuracy")) {
        return PROBLEM_CONSENSUS_ACCURACY;
    }
    return PROBLEM_OTHER;
}

static kafka_verdict_t on_insight(engine_t *e, avro_value_t *v, kafka_out_t *out, char *reason, size_t rl)
{
    const char *insight_id = NULL, *component = NULL, *metric = NULL, *priority = NULL, *description = NULL;
    size_t n;
    state_insight_t si = {0};
    const char *field = "insight_id";
    if (avro_get_string(v, field, &insight_id, &n) || !n ||
        avro_get_string(v, field = "component", &component, &n) || !n ||
        avro_get_string(v, field = "metric", &metric, &n) ||
        avro_get_enum_name(v, field = "priority", &priority) ||
        avro_get_double(v, field = "current_value", &si.current_value) ||
        avro_get_double(v, field = "baseline_value", &si.baseline_value) ||
        avro_get_string(v, field = "description", &description, &n)) {
        snprintf(reason, rl, "invalid Insight: field %s missing or malformed", field);
        return KAFKA_BAD_INPUT;
    }
    kafka_verdict_t verdict = KAFKA_OK;
    hypothesis_t h;
    char hyp_id[24];
    hyp_id_for_insight(insight_id, hyp_id);
    si.component = component;
    state_priority_parse(priority, &si.priority);
    si.problem = problem_of(v, metric);
    if (si.priority < PRIORITY_HIGH) {
        metric_add(e->filtered, 1);
        goto done;
    }
    /* A replay: the hypothesis exists; emit its records again. */
    int rc = repo_hyp_get(e->conf.store, hyp_id, &h);
    if (rc == 0) {
        rc = repo_hyp_mark_open(e->conf.store, &h); /* in case the crash came between the two writes */
        if (rc != 0) {
            verdict = store_verdict(rc, "marking the hypothesis open", reason, rl);
        } else if (carry_out(e, &h, effects_of_status(&h), out, reason, rl) != 0) {
            verdict = KAFKA_RETRY;
        }
        goto done;
    }
    if (rc != STORE_ENOTFOUND) {
        verdict = store_verdict(rc, "reading the hypothesis", reason, rl);
        goto done;
    }
    bool open = false;
    rc = repo_hyp_open_exists(e->conf.store, component, state_problem_name(si.problem), &open);
    if (rc != 0) {
        verdict = store_verdict(rc, "debounce lookup", reason, rl);
        goto done;
    }
    if (open) {
        metric_add(e->suppressed, 1, state_problem_name(si.problem));
        goto done;
    }
    state_config_t scfg;
    state_config_default(&scfg);
    state_t st;
    decision_t d;
    if (state_extract(&scfg, &si, &st) != 0) {
        snprintf(reason, rl, "invalid Insight: component name too long or values out of range");
        verdict = KAFKA_BAD_INPUT;
        goto done;
    }
    rc = learner_decide(e->conf.learner, e->conf.store, &st, &d);
    if (rc != 0) {
        verdict = store_verdict(rc, "deciding", reason, rl);
        goto done;
    }
    const action_t *a = action_get(d.action);
    if (!a) {
        snprintf(reason, rl, "the policy chose an unknown action %u", (unsigned)d.action);
        verdict = KAFKA_RETRY;
        goto done;
    }
    hyp_proposal_t p = {
        .insight_id = insight_id,
        .component = component,
        .problem = state_problem_name(si.problem),
        .state_key = st.key,
        .action = a->name,
        .type = action_type_name(a->type),
        .policy = learner_policy_name(e->conf.learner),
        .description = description,
        .q_value = d.value,
        .confidence = d.confidence,
        .risk = d.risk,
        .expected_improvement = d.expected_improvement,
        .propensity = d.propensity,
        .no_change = a->type == ACTION_NO_OP,
    };
    unsigned effects = hyp_propose(&h, &p, e->conf.risk_threshold, now_ms());
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
    int rc = id && *id ? repo_hyp_get(e->conf.store, id, h) : STORE_ENOTFOUND;
    if (rc == STORE_ENOTFOUND && experiment_id) {
        rc = repo_hyp_by_experiment(e->conf.store, experiment_id, h);
    }
    *found = rc == 0;
    if (rc == 0 || rc == STORE_ENOTFOUND) {
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
    unsigned emits = moved ? effects : (replay ? effects_of_status(h) : 0);
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
        unsigned effects = hyp_on_approval(&h, approved, why, now_ms());
        bool replay = approved && h.status == HYP_EXPERIMENTING;
        verdict = settle(e, &h, effects, h.status != before, replay, out, reason, rl);
    }
    return verdict;
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
    problem_kind_t problem = PROBLEM_OTHER;
    state_problem_parse(h.problem, &problem);
    /* The state key holds component, problem and buckets; rebuild the state from it. */
    unsigned sev = 0, load = 0;
    const char *tail = strrchr(h.state_key, '|');
    if (tail) {
        sscanf(tail, "|load%u", &load);
        const char *sevp = strstr(h.state_key, "|sev");
        if (sevp) {
            sscanf(sevp, "|sev%u", &sev);
        }
    }
    if (action_find(h.action, &action) != 0 || state_make(h.component, problem, sev, load, &st) != 0) {
        snprintf(reason, rl, "hypothesis %s names an unknown action or state", h.id);
        verdict = KAFKA_BAD_INPUT;
        goto done;
    }
    bool success = strcmp(status, "COMPLETED") == 0 && strcmp(decision, "ACCEPT") == 0 &&
                   improvement >= e->conf.min_improvement;
    double reward = learner_reward(e->conf.learner, action, improvement);
    hyp_status_t before = h.status;
    unsigned effects = hyp_on_result(&h, success, improvement, reward, why, now_ms());
    bool moved = h.status != before;
    bool replay = !moved && h.has_result && strcmp(h.experiment_id, experiment_id) == 0;
    if ((effects & HYP_LEARN) || replay) {
        /* Counted at most once per experiment, across replays and replicas. */
        bool counted = false;
        int rc =
            learner_learn(e->conf.learner, e->conf.store, &st, action, h.reward, experiment_id, &counted);
        if (rc != 0) {
            verdict = store_verdict(rc, "saving the learning update", reason, rl);
            goto done;
        }
    }
    if (moved) {
        metric_add(success ? e->succeeded : e->failed, 1);
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
        hyp_on_applied(&h, !strcmp(type, "APPLIED"), rolled_back, why, now_ms());
        if (h.status != before) {
            int rc = repo_hyp_put(e->conf.store, &h);
            if (rc != 0) {
                verdict = store_verdict(rc, "storing the hypothesis", reason, rl);
            } else if (h.status == HYP_APPLIED) {
                metric_add(e->applied, 1, h.type);
            } else if (h.status == HYP_ROLLED_BACK) {
                metric_add(e->rollbacks, 1, h.type);
            }
        }
    }
    return verdict;
}

kafka_verdict_t engine_transform(void *ctx, const rd_kafka_message_t *msg, avro_value_t *value,
                                 kafka_out_t *out, char *reason, size_t reasonlen)
{
    engine_t *e = ctx;
    double started = mono_seconds();
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
    metric_observe(e->duration, mono_seconds() - started);
    return v;
}
