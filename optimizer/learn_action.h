/* learn_action: the catalogue of optimizations the learner chooses among.
 *
 * Every action is one concrete, parameterised instance of the four
 * optimization types of seed 000, plus NO_OP:
 *
 *   WEIGHT_RECALIBRATION  one specialist weight (technical, safety, business,
 *                         ethical, legal) up or down by 0.05 or 0.10. Both are
 *                         within MAX_WEIGHT_ADJUSTMENT (default 0.2) and, from
 *                         the uniform 0.2, inside the 0.1..0.4 bounds the
 *                         weight-recalibrator enforces after renormalising.
 *   SLO_ADJUSTMENT        latency target relaxed / tightened by 10% or 20%
 *                         (inside the seed's +-30%); availability and error-rate
 *                         targets by 10%, applied to the error budget
 *                         (1 - availability) and to the error rate; the
 *                         slo-adjuster clamps to 0.95..0.9999 and 0.001..0.10.
 *   HEURISTIC_UPDATE      a named heuristic and a signed delta.
 *   POLICY_CHANGE         a named policy switched on or off.
 *   NO_OP                 change nothing; its reward is 0 by definition.
 *
 * Names are stable: they are what the Q-table persists (ids are not). They
 * contain only [a-z0-9_], so they are safe as MongoDB field names.
 *
 * Risk is a static estimate in [0, 1]: larger moves are riskier, lowering the
 * safety weight is the riskiest move there is (> 0.5, so it needs the Queen
 * Agent's approval), lowering ethical or legal comes next. The expected
 * improvement is a prior used until the learner has observed the action.
 *
 * Which actions apply to which problem (learn_action_applicable):
 *
 *   LATENCY             latency SLOs, timeout and retry heuristics, load
 *                       shedding, circuit breaker
 *   ERROR_RATE          error-rate SLOs, timeout and retry heuristics,
 *                       circuit breaker
 *   SLO_COMPLIANCE      all SLOs, timeout and retry heuristics, load shedding
 *   AVAILABILITY        availability SLOs, retry heuristic, load shedding,
 *                       circuit breaker
 *   CONSENSUS_ACCURACY  specialist weights, confidence-threshold heuristic,
 *                       safety veto policy
 *   OTHER               the heuristics only (no SLO or weight change without a
 *                       diagnosed problem)
 *
 * plus NO_OP everywhere. Load shedding is switched on only at load1 and above
 * and off only at load1 and below. Actions with risk above 0.5 need severity
 * sev2 or more. Weight moves larger than the configured
 * MAX_WEIGHT_ADJUSTMENT are left out.
 */
#ifndef HIVE_LEARN_ACTION_H
#define HIVE_LEARN_ACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

typedef enum {
    ACTION_NO_OP,
    ACTION_WEIGHT_RECALIBRATION,
    ACTION_SLO_ADJUSTMENT,
    ACTION_HEURISTIC_UPDATE,
    ACTION_POLICY_CHANGE,
} action_type_t;

typedef enum {
    SPECIALIST_TECHNICAL,
    SPECIALIST_SAFETY,
    SPECIALIST_BUSINESS,
    SPECIALIST_ETHICAL,
    SPECIALIST_LEGAL,
    SPECIALIST_COUNT
} specialist_t;

typedef enum { SLO_LATENCY, SLO_AVAILABILITY, SLO_ERROR_RATE } slo_metric_t;

/* The number of actions in the catalogue; ids are 0 .. ACTION_COUNT - 1. */
#define ACTION_COUNT 41
/* The id of NO_OP. */
#define ACTION_NOOP_ID 0

typedef struct {
    uint16_t id;
    action_type_t type;
    const char *name;
    union {
        struct {
            specialist_t specialist;
            double delta; /* signed, added to the weight before renormalising */
        } weight;
        struct {
            slo_metric_t metric;
            /* Signed fraction, > 0 relaxes: latency target * (1 + c); error
             * rate target * (1 + c); availability 1 - (1 - target) * (1 + c). */
            double relative_change;
        } slo;
        struct {
            const char *heuristic; /* "timeout_multiplier", "retry_budget", "confidence_threshold" */
            double delta;
        } heuristic;
        struct {
            const char *policy; /* "load_shedding", "circuit_breaker_strict", "consensus_safety_veto" */
            bool enable;
        } policy;
    } param;
    double risk;                 /* [0, 1] */
    double expected_improvement; /* prior, fraction (0.05 = 5%) */
    unsigned problems;           /* bit (1u << problem_kind_t) per problem it addresses */
    unsigned min_load, max_load; /* load buckets where it applies */
    unsigned min_severity;       /* lowest severity bucket where it applies */
} learn_action_t;

/* The action with id `id`, NULL when out of range. Static storage. */
const learn_action_t *learn_action_get(uint16_t id);

/* Looks an action up by name. Returns 0, or -ENOENT (out untouched). */
int learn_action_find(const char *name, uint16_t *out_id);

/* Writes the ids of the actions applicable to `s` (see the file comment) into
 * `out`, in id order, and returns how many. `cap` must be >= ACTION_COUNT or
 * the list is truncated at `cap`. NO_OP is always first. */
size_t learn_action_applicable(const state_t *s, double max_weight_adjustment, uint16_t *out, size_t cap);

/* "WEIGHT_RECALIBRATION", "SLO_ADJUSTMENT", "HEURISTIC_UPDATE", "POLICY_CHANGE", "NO_OP". */
const char *learn_action_type_name(action_type_t type);

/* "technical", "safety", "business", "ethical", "legal". */
const char *learn_action_specialist_name(specialist_t s);

#endif
