/* learn_action: the static action catalogue and its applicability rules.
 * See learn_action.h for the table in words. */
#include "learn_action.h"

#include <errno.h>
#include <string.h>

#define P(k) (1u << (k))
#define ALL_PROBLEMS ((1u << PROBLEM_COUNT) - 1)
#define LOAD_ANY 0, STATE_LOAD_BUCKETS - 1

#define WEIGHT(id_, name_, spec, d, risk_, prior_, minsev)                                                   \
    {                                                                                                        \
        .id = id_, .type = ACTION_WEIGHT_RECALIBRATION, .name = name_,                                       \
        .param.weight = {.specialist = spec, .delta = d}, .risk = risk_, .expected_improvement = prior_,     \
        .problems = P(PROBLEM_CONSENSUS_ACCURACY), .min_load = 0, .max_load = STATE_LOAD_BUCKETS - 1,        \
        .min_severity = minsev                                                                               \
    }

#define SLO(id_, name_, metric_, change, risk_, prior_, mask)                                                \
    {                                                                                                        \
        .id = id_, .type = ACTION_SLO_ADJUSTMENT, .name = name_,                                             \
        .param.slo = {.metric = metric_, .relative_change = change}, .risk = risk_,                          \
        .expected_improvement = prior_, .problems = mask, .min_load = 0, .max_load = STATE_LOAD_BUCKETS - 1, \
        .min_severity = 0                                                                                    \
    }

#define HEUR(id_, name_, heur, d, risk_, prior_, mask)                                                       \
    {                                                                                                        \
        .id = id_, .type = ACTION_HEURISTIC_UPDATE, .name = name_,                                           \
        .param.heuristic = {.heuristic = heur, .delta = d}, .risk = risk_, .expected_improvement = prior_,   \
        .problems = mask, .min_load = 0, .max_load = STATE_LOAD_BUCKETS - 1, .min_severity = 0               \
    }

#define POL(id_, name_, pol, on, risk_, prior_, mask, minload, maxload, minsev)                              \
    {                                                                                                        \
        .id = id_, .type = ACTION_POLICY_CHANGE, .name = name_,                                              \
        .param.policy = {.policy = pol, .enable = on}, .risk = risk_, .expected_improvement = prior_,        \
        .problems = mask, .min_load = minload, .max_load = maxload, .min_severity = minsev                   \
    }

#define LAT P(PROBLEM_LATENCY)
#define ERR P(PROBLEM_ERROR_RATE)
#define SLOC P(PROBLEM_SLO_COMPLIANCE)
#define AVAIL P(PROBLEM_AVAILABILITY)
#define CONS P(PROBLEM_CONSENSUS_ACCURACY)
#define OTHER P(PROBLEM_OTHER)

static const learn_action_t catalogue[ACTION_COUNT] = {
    {.id = 0,
     .type = ACTION_NO_OP,
     .name = "noop",
     .risk = 0.0,
     .expected_improvement = 0.0,
     .problems = ALL_PROBLEMS,
     .min_load = 0,
     .max_load = STATE_LOAD_BUCKETS - 1,
     .min_severity = 0},

    WEIGHT(1, "weight_technical_up_5", SPECIALIST_TECHNICAL, +0.05, 0.15, 0.05, 0),
    WEIGHT(2, "weight_technical_up_10", SPECIALIST_TECHNICAL, +0.10, 0.30, 0.08, 0),
    WEIGHT(3, "weight_technical_down_5", SPECIALIST_TECHNICAL, -0.05, 0.15, 0.05, 0),
    WEIGHT(4, "weight_technical_down_10", SPECIALIST_TECHNICAL, -0.10, 0.30, 0.08, 0),
    WEIGHT(5, "weight_safety_up_5", SPECIALIST_SAFETY, +0.05, 0.10, 0.05, 0),
    WEIGHT(6, "weight_safety_up_10", SPECIALIST_SAFETY, +0.10, 0.20, 0.08, 0),
    WEIGHT(7, "weight_safety_down_5", SPECIALIST_SAFETY, -0.05, 0.55, 0.05, 2),
    WEIGHT(8, "weight_safety_down_10", SPECIALIST_SAFETY, -0.10, 0.70, 0.08, 2),
    WEIGHT(9, "weight_business_up_5", SPECIALIST_BUSINESS, +0.05, 0.15, 0.05, 0),
    WEIGHT(10, "weight_business_up_10", SPECIALIST_BUSINESS, +0.10, 0.30, 0.08, 0),
    WEIGHT(11, "weight_business_down_5", SPECIALIST_BUSINESS, -0.05, 0.15, 0.05, 0),
    WEIGHT(12, "weight_business_down_10", SPECIALIST_BUSINESS, -0.10, 0.30, 0.08, 0),
    WEIGHT(13, "weight_ethical_up_5", SPECIALIST_ETHICAL, +0.05, 0.15, 0.05, 0),
    WEIGHT(14, "weight_ethical_up_10", SPECIALIST_ETHICAL, +0.10, 0.30, 0.08, 0),
    WEIGHT(15, "weight_ethical_down_5", SPECIALIST_ETHICAL, -0.05, 0.30, 0.05, 0),
    WEIGHT(16, "weight_ethical_down_10", SPECIALIST_ETHICAL, -0.10, 0.45, 0.08, 0),
    WEIGHT(17, "weight_legal_up_5", SPECIALIST_LEGAL, +0.05, 0.15, 0.05, 0),
    WEIGHT(18, "weight_legal_up_10", SPECIALIST_LEGAL, +0.10, 0.30, 0.08, 0),
    WEIGHT(19, "weight_legal_down_5", SPECIALIST_LEGAL, -0.05, 0.30, 0.05, 0),
    WEIGHT(20, "weight_legal_down_10", SPECIALIST_LEGAL, -0.10, 0.45, 0.08, 0),

    SLO(21, "slo_latency_relax_10", SLO_LATENCY, +0.10, 0.20, 0.06, LAT | SLOC),
    SLO(22, "slo_latency_relax_20", SLO_LATENCY, +0.20, 0.35, 0.10, LAT | SLOC),
    SLO(23, "slo_latency_tighten_10", SLO_LATENCY, -0.10, 0.25, 0.04, LAT | SLOC),
    SLO(24, "slo_latency_tighten_20", SLO_LATENCY, -0.20, 0.40, 0.06, LAT | SLOC),
    SLO(25, "slo_availability_relax_10", SLO_AVAILABILITY, +0.10, 0.40, 0.05, AVAIL | SLOC),
    SLO(26, "slo_availability_tighten_10", SLO_AVAILABILITY, -0.10, 0.30, 0.03, AVAIL | SLOC),
    SLO(27, "slo_error_rate_relax_10", SLO_ERROR_RATE, +0.10, 0.35, 0.05, ERR | SLOC),
    SLO(28, "slo_error_rate_tighten_10", SLO_ERROR_RATE, -0.10, 0.25, 0.03, ERR | SLOC),

    HEUR(29, "heuristic_timeout_multiplier_up", "timeout_multiplier", +0.10, 0.15, 0.05,
         LAT | ERR | SLOC | OTHER),
    HEUR(30, "heuristic_timeout_multiplier_down", "timeout_multiplier", -0.10, 0.20, 0.05,
         LAT | ERR | SLOC | OTHER),
    HEUR(31, "heuristic_retry_budget_up", "retry_budget", +1.0, 0.20, 0.05, LAT | ERR | SLOC | AVAIL | OTHER),
    HEUR(32, "heuristic_retry_budget_down", "retry_budget", -1.0, 0.15, 0.04,
         LAT | ERR | SLOC | AVAIL | OTHER),
    HEUR(33, "heuristic_confidence_threshold_up", "confidence_threshold", +0.05, 0.15, 0.05, CONS | OTHER),
    HEUR(34, "heuristic_confidence_threshold_down", "confidence_threshold", -0.05, 0.25, 0.04, CONS | OTHER),

    POL(35, "policy_load_shedding_on", "load_shedding", true, 0.35, 0.10, LAT | SLOC | AVAIL, 1,
        STATE_LOAD_BUCKETS - 1, 0),
    POL(36, "policy_load_shedding_off", "load_shedding", false, 0.20, 0.03, LAT | SLOC | AVAIL, 0, 1, 0),
    POL(37, "policy_circuit_breaker_strict_on", "circuit_breaker_strict", true, 0.30, 0.08, LAT | ERR | AVAIL,
        0, STATE_LOAD_BUCKETS - 1, 0),
    POL(38, "policy_circuit_breaker_strict_off", "circuit_breaker_strict", false, 0.25, 0.03,
        LAT | ERR | AVAIL, 0, STATE_LOAD_BUCKETS - 1, 0),
    POL(39, "policy_consensus_safety_veto_on", "consensus_safety_veto", true, 0.20, 0.05, CONS, 0,
        STATE_LOAD_BUCKETS - 1, 0),
    POL(40, "policy_consensus_safety_veto_off", "consensus_safety_veto", false, 0.60, 0.05, CONS, 0,
        STATE_LOAD_BUCKETS - 1, 2),
};

const learn_action_t *learn_action_get(uint16_t id)
{
    return id < ACTION_COUNT ? &catalogue[id] : NULL;
}

int learn_action_find(const char *name, uint16_t *out_id)
{
    for (uint16_t i = 0; name != NULL && i < ACTION_COUNT; i++) {
        if (strcmp(catalogue[i].name, name) == 0) {
            *out_id = i;
            return 0;
        }
    }
    return -ENOENT;
}

size_t learn_action_applicable(const state_t *s, double max_weight_adjustment, uint16_t *out, size_t cap)
{
    size_t n = 0;
    for (uint16_t i = 0; i < ACTION_COUNT && n < cap; i++) {
        const learn_action_t *a = &catalogue[i];
        if (!(a->problems & P(s->problem)) || s->load < a->min_load || s->load > a->max_load ||
            s->severity < a->min_severity) {
            continue;
        }
        if (a->type == ACTION_WEIGHT_RECALIBRATION && (a->param.weight.delta > max_weight_adjustment ||
                                                       -a->param.weight.delta > max_weight_adjustment)) {
            continue;
        }
        out[n++] = i;
    }
    return n;
}

const char *learn_action_type_name(action_type_t type)
{
    switch (type) {
    case ACTION_NO_OP:
        return "NO_OP";
    case ACTION_WEIGHT_RECALIBRATION:
        return "WEIGHT_RECALIBRATION";
    case ACTION_SLO_ADJUSTMENT:
        return "SLO_ADJUSTMENT";
    case ACTION_HEURISTIC_UPDATE:
        return "HEURISTIC_UPDATE";
    case ACTION_POLICY_CHANGE:
        return "POLICY_CHANGE";
    }
    return "UNKNOWN";
}

const char *learn_action_specialist_name(specialist_t s)
{
    static const char *const names[SPECIALIST_COUNT] = {"technical", "safety", "business", "ethical",
                                                        "legal"};
    return (unsigned)s < SPECIALIST_COUNT ? names[s] : "unknown";
}
