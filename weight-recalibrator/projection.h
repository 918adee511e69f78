/* projection: the weight-recalibrator's pure core (seed 000, WeightRecalibrator).
 *
 * A proposal is first limited per weight to MAX_WEIGHT_ADJUSTMENT around the
 * current weights, then put on the constraint set {sum = 1, lo <= w_i <= hi}
 * by the exact Euclidean projection (not clip-and-normalise, which can leave
 * the box), then checked with the seed's validate_weight_adjustment rules.
 * No I/O.
 */
#ifndef HIVE_PROJECTION_H
#define HIVE_PROJECTION_H

#include <stddef.h>

/* The five specialists, in the order every weight vector here uses. */
#define WEIGHTS_N 5
extern const char *const weights_specialists[WEIGHTS_N];

/* The index of specialist `name`, or -1. */
int weights_index(const char *name);

/* The seed's bounds: each weight in [lo, hi], the sum within `tolerance` of 1. */
typedef struct {
    double lo, hi;         /* 0.1, 0.4 */
    double max_adjustment; /* MAX_WEIGHT_ADJUSTMENT, 0.2 */
    double tolerance;      /* 0.01 */
} weights_bounds_t;

/* The seed's defaults. */
weights_bounds_t weights_bounds_default(void);

/* The Euclidean projection of y[0..n) onto {x : sum x = total, lo <= x_i <= hi}:
 * x_i = clamp(y_i - tau, lo, hi) with tau solved exactly on its linear piece.
 * Returns 0 with out[] set, or -1 when the set is empty (n*lo > total or
 * n*hi < total) or an input is not finite; out[] is then untouched. `out`
 * may alias `y`. */
int weights_project(const double *y, size_t n, double lo, double hi, double total, double *out);

/* The seed's validate_weight_adjustment(): sum within tolerance of 1, each
 * weight in [lo, hi]. Returns 0, or -1 with the broken rule in `reason`. */
int weights_validate(const double w[WEIGHTS_N], const weights_bounds_t *b, char *reason, size_t rl);

/* Steps 3-5 of the seed: proposal limited per weight to b->max_adjustment
 * around current, projected, validated. Returns 0 with out[] set, or -1 with
 * the reason (out untouched). */
int weights_propose(const double current[WEIGHTS_N], const double proposal[WEIGHTS_N],
                    const weights_bounds_t *b, double out[WEIGHTS_N], char *reason, size_t rl);

/* One exponentiated-gradient (Hedge) step: y_i = current_i * exp(-eta * loss_i),
 * normalised to sum 1, then limited and projected by weights_propose. eta >= 0;
 * eta = 0 proposes the current weights (kept when they are feasible). Returns 0
 * with out[] set, or -1 with the reason (out untouched) when an input is not
 * finite, eta < 0, a current weight is not positive, or weights_propose refuses. */
int weights_hedge(const double current[WEIGHTS_N], const double loss[WEIGHTS_N], double eta,
                  const weights_bounds_t *b, double out[WEIGHTS_N], char *reason, size_t rl);

/* Per-specialist loss 1 - accuracy from outcome counts, accuracy smoothed as
 * (correct + 1) / (total + 2) so a specialist without outcomes has loss 0.5.
 * correct is clamped to [0, total]; negative totals count as 0. */
void weights_loss_from_counts(const long correct[WEIGHTS_N], const long total[WEIGHTS_N],
                              double loss[WEIGHTS_N]);

#endif
