/* learn_ope: off-policy evaluation of a target policy on a logged policy's
 * decisions, by inverse propensity scoring.
 *
 * Each log record is a decision the running policy made, with the propensity
 * it recorded (learn_decision_t.propensity) and the reward that followed. For a
 * target policy pi, with weights w_i = pi(a_i | s_i) / propensity_i:
 *
 *   IPS   = (1/n) * sum w_i r_i          unbiased, high variance
 *   SNIPS = sum w_i r_i / sum w_i        self-normalised: slightly biased,
 *                                        much lower variance, scale-free
 *   ESS   = (sum w_i)^2 / sum w_i^2      effective sample size: how many
 *                                        records the estimate really rests on
 *
 * When no record supports the target (sum w_i = 0), SNIPS and ESS are 0.
 */
#ifndef HIVE_LEARN_OPE_H
#define HIVE_LEARN_OPE_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

typedef struct {
    state_t state;
    uint16_t action;
    double propensity; /* in (0, 1] */
    double reward;
} learn_ope_record_t;

/* The target policy's probability of `action` in `state`, in [0, 1]. */
typedef double (*learn_ope_target_fn)(void *ctx, const state_t *state, uint16_t action);

typedef struct {
    size_t n;
    double ips;
    double snips;
    double ess;
    double max_weight;
} learn_ope_result_t;

/* Evaluates `target` on `log` (n >= 1 records). Returns 0, or -EINVAL for an
 * empty log, a propensity outside (0, 1], a target probability outside
 * [0, 1] or a non-finite reward (out untouched). */
int learn_ope_evaluate(const learn_ope_record_t *log, size_t n, learn_ope_target_fn target, void *ctx,
                       learn_ope_result_t *out);

#endif
