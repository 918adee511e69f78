/* records: build and encode the optimizer's output records. See records.h. */
#include "records.h"

#include "hive_err.h"
#include "learn_action.h"
#include "state.h"

#include <stdio.h>
#include <string.h>

/* Encodes `v` (always released) for `topic`; `filled` is the outcome of
 * filling it. */
static int finish(avro_codec_t *codec, const char *topic, avro_value_t *v, int filled, const char *what,
                  const char *id, void **out, size_t *out_len, char *reason, size_t rl)
{
    int rc = HIVE_EINVAL;
    if (filled != 0) {
        snprintf(reason, rl, "cannot build %s for %s", what, id);
    } else {
        char err[200];
        int enc = avro_codec_encode(codec, topic, v, out, out_len, err, sizeof(err));
        if (enc == 0) {
            rc = 0;
        } else if (enc == HIVE_EUNAVAILABLE) {
            rc = HIVE_EUNAVAILABLE;
            snprintf(reason, rl, "schema registry unavailable: %s", err);
        } else {
            snprintf(reason, rl, "cannot encode %s for %s: %s", what, id, err);
        }
    }
    avro_value_decref(v);
    return rc;
}

static int new_value(avro_codec_t *codec, const char *name, avro_value_t *v, char *reason, size_t rl)
{
    if (avro_codec_new_value(codec, name, v) != 0) {
        snprintf(reason, rl, "cannot build a %s value", name);
        return HIVE_EINVAL;
    }
    return 0;
}

static const char *slo_metric_name(slo_metric_t m)
{
    return m == SLO_LATENCY ? "latency_p95_ms" : m == SLO_AVAILABILITY ? "availability" : "error_rate";
}

/* The action's parameters as a map<double>: what moves and by how much. */
static int set_adjustments(avro_value_t *rec, const char *field, const char *action_name)
{
    uint16_t id;
    if (learn_action_find(action_name, &id) != 0) {
        return 0;
    }
    const learn_action_t *a = learn_action_get(id);
    switch (a->type) {
    case ACTION_WEIGHT_RECALIBRATION:
        return avro_set_map_double(rec, field, learn_action_specialist_name(a->param.weight.specialist),
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

/* How the APPLY command's adjustments read (OptimizationCommand.adjustment_mode):
 * a weight or heuristic action is a step added to the current value, an SLO
 * action a fraction of the current target, a policy switch its new value. */
static const char *adjustment_mode(const char *action_name)
{
    uint16_t id;
    if (learn_action_find(action_name, &id) != 0) {
        return "ABSOLUTE";
    }
    switch (learn_action_get(id)->type) {
    case ACTION_WEIGHT_RECALIBRATION:
    case ACTION_HEURISTIC_UPDATE:
        return "DELTA";
    case ACTION_SLO_ADJUSTMENT:
        return "RELATIVE";
    default:
        return "ABSOLUTE";
    }
}

static int add_criterion(avro_value_t *rec, const char *field, const char *metric, const char *op,
                         double threshold)
{
    avro_value_t item, f;
    return avro_append_item(rec, field, &item) || avro_value_get_by_name(&item, "metric", &f, NULL) ||
           avro_value_set_string(&f, metric) || avro_set_enum_name(&item, "operator", op) ||
           avro_value_get_by_name(&item, "threshold", &f, NULL) || avro_value_set_double(&f, threshold);
}

int records_insight(avro_codec_t *codec, const char *topic, const records_insight_t *in, void **out,
                    size_t *out_len, char *reason, size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "Insight", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    int filled =
        avro_set_string(&v, "insight_id", in->insight_id) || avro_set_string(&v, "source", in->source) ||
        avro_set_enum_name(&v, "type", in->type ? in->type : "DEGRADATION") ||
        avro_set_enum_name(&v, "priority", in->priority) || avro_set_string(&v, "component", in->component) ||
        avro_set_string(&v, "metric", in->metric) ||
        avro_set_double(&v, "current_value", in->current_value) ||
        avro_set_double(&v, "baseline_value", in->baseline_value) ||
        avro_set_string(&v, "description", in->description ? in->description : "") ||
        avro_set_long(&v, "timestamp", in->timestamp_ms);
    for (size_t i = 0; !filled && i < in->nlabels; i++) {
        filled = avro_set_map_string(&v, "labels", in->label_keys[i], in->label_values[i]);
    }
    return finish(codec, topic, &v, filled, "an Insight", in->insight_id, out, out_len, reason, rl);
}

int records_approval_request(avro_codec_t *codec, const char *topic, const hypothesis_t *h, void **out,
                             size_t *out_len, char *reason, size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "ApprovalRequest", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    int filled =
        avro_set_string(&v, "optimization_id", h->id) ||
        avro_set_enum_name(&v, "optimization_type", h->type) || avro_set_string(&v, "target", h->component) ||
        avro_set_string(&v, "hypothesis", h->rationale) || set_adjustments(&v, "adjustments", h->action) ||
        avro_set_double(&v, "expected_improvement", h->expected_improvement) ||
        avro_set_double(&v, "risk_score", h->risk) || avro_set_long(&v, "requested_at", h->created_at_ms);
    return finish(codec, topic, &v, filled, "ApprovalRequest", h->id, out, out_len, reason, rl);
}

int records_experiment_request(avro_codec_t *codec, const char *topic, const hypothesis_t *h,
                               const records_experiment_t *x, void **out, size_t *out_len, char *reason,
                               size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "ExperimentRequest", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    const char *metric, *op;
    hyp_success_criterion(h, &metric, &op);
    int filled =
        avro_set_string(&v, "experiment_id", h->experiment_id) ||
        avro_set_string(&v, "optimization_id", h->id) || avro_set_string(&v, "requested_by", "optimizer") ||
        avro_set_enum_name(&v, "experiment_type", hyp_experiment_type(h)) ||
        avro_set_string(&v, "target", h->component) || avro_set_string(&v, "hypothesis", h->rationale) ||
        avro_set_enum_name(&v, "optimization_type", h->type) ||
        set_adjustments(&v, "parameters", h->action) ||
        avro_set_double(&v, "expected_improvement", h->expected_improvement) ||
        avro_set_double(&v, "confidence", h->confidence) || avro_set_double(&v, "risk_score", h->risk) ||
        avro_set_double(&v, "q_value", h->q_value) ||
        avro_set_double(&v, "traffic_split", x->traffic_split) ||
        avro_set_long(&v, "duration_seconds", x->duration_s) ||
        add_criterion(&v, "success_criteria", "relative_improvement", "GE", x->min_improvement) ||
        add_criterion(&v, "success_criteria", metric, op, 0.0) ||
        add_criterion(&v, "guardrails", "error_rate", "GT", x->guardrail_error_rate) ||
        avro_set_long(&v, "requested_at", h->updated_at_ms);
    return finish(codec, topic, &v, filled, "ExperimentRequest", h->id, out, out_len, reason, rl);
}

int records_apply(avro_codec_t *codec, const char *topic, const hypothesis_t *h, void **out, size_t *out_len,
                  char *reason, size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "OptimizationCommand", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    char command_id[48];
    snprintf(command_id, sizeof(command_id), "cmd-apply-%s", h->id);
    char why[160];
    snprintf(why, sizeof(why), "experiment %s improved by %.1f%%", h->experiment_id, 100.0 * h->improvement);
    int filled =
        avro_set_string(&v, "command_id", command_id) || avro_set_enum_name(&v, "command", "APPLY") ||
        avro_set_string(&v, "optimization_id", h->id) ||
        avro_set_enum_name(&v, "optimization_type", h->type) || avro_set_string(&v, "target", h->component) ||
        set_adjustments(&v, "adjustments", h->action) ||
        avro_set_enum_name(&v, "adjustment_mode", adjustment_mode(h->action)) ||
        avro_set_string(&v, "experiment_id", h->experiment_id) || avro_set_string(&v, "reason", why) ||
        avro_set_long(&v, "issued_at", h->updated_at_ms);
    return finish(codec, topic, &v, filled, "OptimizationCommand", h->id, out, out_len, reason, rl);
}

int records_rollback(avro_codec_t *codec, const char *topic, const hypothesis_t *h, const char *why,
                     int64_t now_ms, void **out, size_t *out_len, char *reason, size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "OptimizationCommand", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    char command_id[64];
    snprintf(command_id, sizeof(command_id), "cmd-rollback-%s", h->id);
    int filled =
        avro_set_string(&v, "command_id", command_id) || avro_set_enum_name(&v, "command", "ROLLBACK") ||
        avro_set_string(&v, "optimization_id", h->id) ||
        avro_set_enum_name(&v, "optimization_type", h->type) || avro_set_string(&v, "target", h->component) ||
        (h->experiment_id[0] ? avro_set_string(&v, "experiment_id", h->experiment_id)
                             : avro_set_null(&v, "experiment_id")) ||
        avro_set_string(&v, "reason", why && *why ? why : "rollback requested by an operator") ||
        avro_set_long(&v, "issued_at", now_ms);
    return finish(codec, topic, &v, filled, "OptimizationCommand", h->id, out, out_len, reason, rl);
}

int records_approval_response(avro_codec_t *codec, const char *topic, const char *id, bool approve,
                              const char *why, int64_t now_ms, void **out, size_t *out_len, char *reason,
                              size_t rl)
{
    avro_value_t v;
    int rc = new_value(codec, "ApprovalResponse", &v, reason, rl);
    if (rc != 0) {
        return rc;
    }
    int filled = avro_set_string(&v, "optimization_id", id) ||
                 avro_set_enum_name(&v, "decision", approve ? "APPROVED" : "REJECTED") ||
                 avro_set_string(&v, "approver", "api") || avro_set_string(&v, "reason", why ? why : "") ||
                 avro_set_long(&v, "responded_at", now_ms);
    return finish(codec, topic, &v, filled, "ApprovalResponse", id, out, out_len, reason, rl);
}
