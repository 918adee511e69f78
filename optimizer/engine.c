#include "engine.h"

#include "hive_err.h"
#include "hypothesis.h"
#include "log.h"
#include "records.h"
#include "repo.h"
#include "service.h"
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
    /* The load the telemetry intake measured against the component's
     * baseline (label load_ratio); unknown (0) when absent or malformed. */
    label = NULL;
    if (avro_get_map_string(v, "labels", "load_ratio", &label, &n) == 0 && label) {
        char buf[32], *end = NULL;
        if (n < sizeof(buf)) {
            memcpy(buf, label, n);
            buf[n] = '\0';
            double x = strtod(buf, &end);
            in.state.load = end != buf && *end == '\0' && isfinite(x) && x >= 0.0 ? x : 0.0;
        }
    }
    *out = in;
    return 0;
}

/* ---- insights in batches -------------------------------------------------------- */

typedef struct {
    engine_insight_t in;
    const char *problem;
    char hyp_id[24];
    char key[200]; /* "<component>|<problem>": the debounce's key */
    bool candidate;
    engine_step_t step;
    state_t st; /* the policy's state of the insight, when st_ok */
    bool st_ok;
    unsigned effects;
    bool no_change, rejected;
    hypothesis_t h;
} islot_t;

/* The open state of the component+problem keys met so far in a batch. */
static bool *open_slot(const char **keys, bool *open, size_t *nkeys, const char *key, bool add)
{
    for (size_t i = 0; i < *nkeys; i++) {
        if (strcmp(keys[i], key) == 0) {
            return &open[i];
        }
    }
    if (!add) {
        return NULL;
    }
    keys[*nkeys] = key;
    return &open[(*nkeys)++];
}

int engine_batch_plan(const engine_batch_item_t *items, size_t n, engine_propose_fn propose, void *arg,
                      engine_step_t *out_steps)
{
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    bool *open = calloc(n ? n : 1, sizeof(*open));
    size_t nkeys = 0;
    int rc = 0;
    if (!keys || !open) {
        rc = HIVE_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        out_steps[i] = ENGINE_STEP_NONE;
    }
    for (size_t i = 0; i < n; i++) {
        const engine_batch_item_t *it = &items[i];
        if (!it->key) {
            continue;
        }
        if (it->replay) {
            out_steps[i] = ENGINE_STEP_REPLAY;
            *open_slot(keys, open, &nkeys, it->key, true) = it->replay_open;
            continue;
        }
        bool *slot = open_slot(keys, open, &nkeys, it->key, false);
        if (slot ? *slot : it->store_open) {
            out_steps[i] = ENGINE_STEP_SUPPRESS;
            continue;
        }
        bool now_open = false;
        rc = propose(arg, i, &now_open);
        if (rc < 0) {
            goto out;
        }
        if (rc > 0) {
            rc = 0; /* the record is rejected: it leaves the key as it was */
            continue;
        }
        out_steps[i] = ENGINE_STEP_PROPOSE;
        *open_slot(keys, open, &nkeys, it->key, true) = now_open;
    }
out:
    free(open);
    free(keys);
    return rc;
}

/* Reads the insights (a bad one is rejected alone), drops those below HIGH,
 * and names the hypothesis each other one would make in ids[]. */
static kafka_verdict_t batch_read(engine_t *e, kafka_in_t *kin, const service_record_t *recs, size_t n,
                                  islot_t *sl, const char **ids)
{
    char reason[512];
    for (size_t i = 0; i < n; i++) {
        reason[0] = '\0';
        ids[i] = NULL;
        if (engine_read_insight(recs[i].value, &sl[i].in, reason, sizeof(reason)) != 0) {
            kafka_in_reject(kin, recs[i].index, reason);
            sl[i].rejected = true;
            continue;
        }
        if (sl[i].in.state.priority < PRIORITY_HIGH) {
            metric_add(e->filtered, 1);
            continue;
        }
        sl[i].candidate = true;
        sl[i].problem = state_problem_name(sl[i].in.state.problem);
        hyp_id_for_insight(sl[i].in.insight_id, sl[i].hyp_id);
        snprintf(sl[i].key, sizeof(sl[i].key), "%s|%s", sl[i].in.component, sl[i].problem);
        ids[i] = sl[i].hyp_id;
    }
    return KAFKA_OK;
}

/* Proposes a hypothesis for insight `s` (the policy decides). KAFKA_OK,
 * KAFKA_BAD_INPUT with a reason, or KAFKA_RETRY. */
static kafka_verdict_t propose(engine_t *e, islot_t *s, bool *save_due, char *reason, size_t rl)
{
    const state_t *st = &s->st;
    learn_decision_t d;
    if (!s->st_ok) {
        snprintf(reason, rl, "invalid Insight: component name too long or values out of range");
        return KAFKA_BAD_INPUT;
    }
    bool due = false;
    int rc = learner_choose(e->conf.learner, st, &d, &due);
    if (rc != 0) {
        return store_verdict(rc, "deciding", reason, rl);
    }
    *save_due = *save_due || due;
    const learn_action_t *a = learn_action_get(d.action);
    if (!a) {
        snprintf(reason, rl, "the policy chose an unknown action %u", (unsigned)d.action);
        return KAFKA_RETRY;
    }
    hyp_proposal_t p = {
        .insight_id = s->in.insight_id,
        .component = s->in.component,
        .problem = s->problem,
        .state_key = st->key,
        .action = a->name,
        .type = learn_action_type_name(a->type),
        .policy = learner_policy_name(e->conf.learner),
        .description = s->in.description,
        .q_value = d.value,
        .confidence = d.confidence,
        .risk = d.risk,
        .expected_improvement = d.expected_improvement,
        .propensity = d.propensity,
        .no_change = a->type == ACTION_NO_OP,
        .open_timeout_ms = e->conf.open_timeout_ms,
    };
    s->effects = hyp_propose(&s->h, &p, e->conf.risk_threshold, timeutil_wall_ms());
    s->no_change = p.no_change;
    return KAFKA_OK;
}

/* engine_batch_plan's proposer over the batch's slots. */
typedef struct {
    engine_t *e;
    kafka_in_t *kin;
    const service_record_t *recs;
    islot_t *sl;
    bool save_due; /* a decision made the policy state due to be saved */
    char reason[512];
} proposer_t;

static int propose_one(void *arg, size_t i, bool *out_open)
{
    proposer_t *p = arg;
    p->reason[0] = '\0';
    kafka_verdict_t v = propose(p->e, &p->sl[i], &p->save_due, p->reason, sizeof(p->reason));
    if (v == KAFKA_BAD_INPUT) {
        kafka_in_reject(p->kin, p->recs[i].index, p->reason);
        p->sl[i].rejected = true;
        return 1;
    }
    if (v != KAFKA_OK) {
        return HIVE_EUNAVAILABLE;
    }
    *out_open = hyp_is_open(&p->sl[i].h);
    return 0;
}

/* Rejects the records whose document the store refused (res[j] of item
 * which[j]); KAFKA_RETRY when a failure is not the record's fault. */
static kafka_verdict_t refused(kafka_in_t *kin, const service_record_t *recs, islot_t *sl,
                               const size_t *which, const store_result_t *res, size_t m, const char *what)
{
    char reason[512];
    for (size_t j = 0; j < m; j++) {
        if (res[j].status == 0) {
            continue;
        }
        if (verdict_for_error(res[j].status, what, res[j].message, reason, sizeof(reason)) !=
            KAFKA_BAD_INPUT) {
            return KAFKA_RETRY;
        }
        kafka_in_reject(kin, recs[which[j]].index, reason);
        sl[which[j]].rejected = true;
    }
    return KAFKA_OK;
}

/* Extracts the policy's state of every candidate that is no replay and
 * refreshes their table entries in one query. Returns 0 or a HIVE_E* code. */
static int refresh_states(engine_t *e, islot_t *sl, const bool *found, size_t n)
{
    state_config_t scfg;
    state_config_default(&scfg);
    state_t *states = malloc((n ? n : 1) * sizeof(*states));
    if (!states) {
        return HIVE_ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        sl[i].st_ok = sl[i].candidate && state_extract(&scfg, &sl[i].in.state, &sl[i].st) == 0;
        if (sl[i].st_ok && !found[i]) {
            states[m++] = sl[i].st;
        }
    }
    int rc = m ? learner_refresh_many(e->conf.learner, e->conf.store, states, m) : 0;
    free(states);
    return rc;
}

/* The insight path of one transaction: one query for the batch's hypotheses
 * and the debounce, the decisions in record order, one bulk insert of the
 * new hypotheses, then the records. */
static kafka_verdict_t insights_batch(engine_t *e, kafka_in_t *kin, const service_record_t *recs, size_t n,
                                      islot_t *sl, const char **ids, hypothesis_t *found_h, bool *found,
                                      bool *store_open, const hypothesis_t **hs, size_t *which,
                                      store_result_t *res, engine_batch_item_t *items, engine_step_t *steps)
{
    char reason[512];
    kafka_verdict_t v = batch_read(e, kin, recs, n, sl, ids);
    if (v != KAFKA_OK) {
        return v;
    }
    /* The batch's hypotheses (replays) and the open hypotheses of its
     * components and problems (the debounce), in one query. */
    const char **components = ids + n, **problems = ids + 2 * n;
    for (size_t i = 0; i < n; i++) {
        components[i] = sl[i].candidate ? sl[i].in.component : NULL;
        problems[i] = sl[i].problem;
    }
    int rc = repo_hyp_lookup_many(e->conf.store, ids, components, problems, n, found_h, found, store_open);
    if (rc != 0) {
        log_warn("cannot read the hypotheses of a batch, retrying", "error", store_last_error());
        return KAFKA_RETRY;
    }
    /* The decisions, in record order, as one record at a time would make them. */
    for (size_t i = 0; i < n; i++) {
        items[i] = (engine_batch_item_t){sl[i].candidate ? sl[i].key : NULL, found[i], false, store_open[i]};
        if (sl[i].candidate && found[i]) {
            sl[i].h = found_h[i];
            sl[i].effects = hyp_effects_of_status(&sl[i].h);
            items[i].replay_open = hyp_is_open(&sl[i].h);
        }
    }
    /* The latest table entries of every state the batch may decide in, in
     * one query (another replica may have learned since). */
    if (refresh_states(e, sl, found, n) != 0) {
        log_warn("cannot read the learned table of a batch, retrying", "error", store_last_error());
        return KAFKA_RETRY;
    }
    proposer_t pr = {e, kin, recs, sl, false, ""};
    rc = engine_batch_plan(items, n, propose_one, &pr, steps);
    if (rc == 0 && pr.save_due) {
        rc = learner_save_state(e->conf.learner, e->conf.store); /* once for the batch */
        if (rc != 0) {
            snprintf(pr.reason, sizeof(pr.reason), "%s", "cannot save the policy state");
        }
    }
    if (rc != 0) {
        log_warn("cannot decide, retrying the batch", "error",
                 rc == HIVE_ENOMEM ? "out of memory" : pr.reason);
        return KAFKA_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        sl[i].step = steps[i];
        if (steps[i] == ENGINE_STEP_SUPPRESS) {
            metric_add(e->suppressed, 1, sl[i].problem);
        }
    }
    /* Store first: the new hypotheses in one bulk insert-once. A replay of
     * the batch finds them (above) and emits their records again. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (sl[i].step == ENGINE_STEP_PROPOSE) {
            hs[m] = &sl[i].h;
            which[m++] = i;
        }
    }
    rc = m ? repo_hyp_insert_many(e->conf.store, hs, m, res) : 0;
    if (rc != 0 || refused(kin, recs, sl, which, res, m, "storing the hypothesis") != KAFKA_OK) {
        log_warn("cannot store the hypotheses, retrying the batch", "error", store_last_error());
        return KAFKA_RETRY;
    }
    /* The records, each on its own insight's outputs. */
    for (size_t i = 0; i < n; i++) {
        islot_t *s = &sl[i];
        if (s->rejected || (s->step != ENGINE_STEP_PROPOSE && s->step != ENGINE_STEP_REPLAY)) {
            continue;
        }
        if (carry_out(e, &s->h, s->effects, recs[i].out, reason, sizeof(reason)) != 0) {
            log_warn("cannot emit the records of a hypothesis, retrying the batch", "error", reason);
            return KAFKA_RETRY;
        }
        if (s->step != ENGINE_STEP_PROPOSE) {
            continue;
        }
        if (s->no_change) {
            metric_add(e->noop, 1);
        } else {
            metric_add(e->generated, 1, s->h.type);
        }
        log_info(s->no_change ? "decided to change nothing" : "hypothesis proposed", "optimization_id",
                 s->h.id, "insight_id", s->h.insight_id, "component", s->h.component, "action", s->h.action,
                 "status", hyp_status_name(s->h.status));
    }
    return KAFKA_OK;
}

kafka_verdict_t engine_insights_batch(void *ctx, kafka_in_t *kin, const service_record_t *recs, size_t n)
{
    engine_t *e = ctx;
    double started = timeutil_mono_seconds();
    learner_mark_t mark; /* a retried batch decides again: epsilon must decay once */
    if (e->conf.learner) {
        learner_mark(e->conf.learner, &mark);
    }
    kafka_verdict_t v = KAFKA_RETRY;
    size_t c = n ? n : 1;
    islot_t *sl = calloc(c, sizeof(*sl));
    const char **ids = calloc(3 * c, sizeof(*ids)); /* ids, components, problems */
    hypothesis_t *found_h = calloc(c, sizeof(*found_h));
    bool *found = calloc(c, sizeof(*found));
    bool *store_open = calloc(c, sizeof(*store_open));
    const hypothesis_t **hs = calloc(c, sizeof(*hs));
    size_t *which = calloc(c, sizeof(*which));
    store_result_t *res = calloc(c, sizeof(*res));
    engine_batch_item_t *items = calloc(c, sizeof(*items));
    engine_step_t *steps = calloc(c, sizeof(*steps));
    if (sl && ids && found_h && found && store_open && hs && which && res && items && steps) {
        v = insights_batch(e, kin, recs, n, sl, ids, found_h, found, store_open, hs, which, res, items,
                           steps);
    }
    if (v == KAFKA_RETRY && e->conf.learner) {
        learner_rewind(e->conf.learner, &mark);
    }
    if (v == KAFKA_OK) {
        double per_record = n ? (timeutil_mono_seconds() - started) / (double)n : 0;
        for (size_t i = 0; i < n; i++) {
            metric_observe(e->duration, per_record);
        }
    }
    free(steps);
    free(items);
    free(res);
    free(which);
    free(hs);
    free(store_open);
    free(found);
    free(found_h);
    free(ids);
    free(sl);
    return v;
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
    if (!strcmp(topic, e->conf.approvals_responses_topic)) {
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
