/* judge: what an experiment does at each interval. Pure: the definition, the
 * stored state, the observations of both variants and the time come in; the
 * new state and what to publish go out.
 *
 * Order of the rules at each look (the first that fires decides):
 *   1. an operator's abort           -> ABORTED, REJECT
 *   2. a guardrail that holds on the candidate's own value (e.g. error_rate
 *      GT 0.05)                      -> ABORTED, REJECT, names the guardrail,
 *                                       the observed value and the limit
 *   3. no new observation for `max_empty` looks -> paused, or FAILED
 *   4. sample-ratio mismatch (AB_TEST, whose split is fixed: chi-square of the request
 *      counts against the split, p < srm_alpha) -> FAILED, INCONCLUSIVE
 *   5. the always-valid p-value below alpha: a better candidate whose success
 *      criteria hold -> COMPLETED, ACCEPT (a canary first walks its steps); a
 *      worse one -> COMPLETED, REJECT (a canary rolls back: ABORTED)
 *   6. the duration is over -> COMPLETED, INCONCLUSIVE (or as 5 decides)
 *   otherwise a canary advances a step once its minimum time and sample have
 *   passed, a bandit re-allocates by Thompson sampling, the others wait.
 * Every end returns the traffic to the baseline, except an accepted canary,
 * which ends on the candidate (promoted).
 *
 * Criteria (ExperimentRequest.success_criteria): `relative_improvement` (or
 * `improvement`) compares the improvement on the primary metric (positive is
 * better); any other metric compares its relative change (candidate -
 * baseline) / |baseline|, so `latency_p95_ms LT 0` asks for a lower latency.
 * The primary metric is the first criterion naming a real metric
 * (latency_p95_ms when none). `error_rate` is a rate: summed errors over
 * summed requests, tested with the two-proportion z-test; every other metric
 * is continuous, one value per window, tested with Welch's t-test.
 */
#ifndef EXPMGR_JUDGE_H
#define EXPMGR_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

#define JUDGE_MAX_CRITERIA 16
#define JUDGE_MAX_METRICS 16
#define JUDGE_MAX_STEPS 8
#define JUDGE_NAME 64

typedef enum { JUDGE_AB, JUDGE_CANARY, JUDGE_SHADOW, JUDGE_BANDIT } judge_type_t;
typedef enum { JUDGE_LT, JUDGE_LE, JUDGE_GT, JUDGE_GE } judge_op_t;
typedef enum { JUDGE_RUNNING, JUDGE_PAUSED, JUDGE_DONE } judge_phase_t;

typedef struct {
    char metric[JUDGE_NAME];
    judge_op_t op;
    double threshold;
} judge_criterion_t;

/* The settings of the service (config keys in main.c). */
typedef struct {
    double alpha;                  /* SIGNIFICANCE_LEVEL: 0.05 */
    double tau;                    /* MSPRT_EFFECT: mixture scale, relative to the baseline's mean */
    double srm_alpha;              /* 0.001 */
    long min_samples;              /* MIN_SAMPLE_SIZE: windows per variant before any test */
    long max_empty;                /* NO_DATA_INTERVALS: looks without new data */
    bool fail_on_no_data;          /* NO_DATA_ACTION=fail (else pause) */
    int64_t step_min_ms;           /* CANARY_STEP_MIN_SECONDS */
    double steps[JUDGE_MAX_STEPS]; /* CANARY_STEPS: 0.10 0.25 0.50 1.00 */
    size_t nsteps;
    double bandit_floor; /* BANDIT_FLOOR: least share per variant */
    int bandit_draws;    /* posterior draws per re-allocation */
} judge_conf_t;

/* The experiment as requested. */
typedef struct {
    judge_type_t type;
    double split; /* traffic_split: the candidate's share (A/B, bandit start) */
    int64_t duration_ms;
    judge_criterion_t criteria[JUDGE_MAX_CRITERIA];
    size_t ncriteria;
    judge_criterion_t guardrails[JUDGE_MAX_CRITERIA];
    size_t nguardrails;
} judge_def_t;

/* What was observed of one variant since the start. */
typedef struct {
    double windows;          /* records */
    double requests, errors; /* sums */
    size_t nm;
    char names[JUDGE_MAX_METRICS][JUDGE_NAME];
    stats_sample_t m[JUDGE_MAX_METRICS]; /* per-window values of each metric */
} judge_obs_t;

/* The stored state between looks. */
typedef struct {
    judge_phase_t phase;
    bool started; /* false until the first look (setup) */
    int64_t started_ms;
    int64_t step_started_ms;
    size_t step;         /* canary step index */
    double fraction;     /* the candidate's current share */
    double avp;          /* always-valid p-value so far (1 at start) */
    double last_windows; /* both variants' windows at the previous look */
    double step_windows; /* the candidate's windows when the step began */
    long empty;          /* consecutive looks without new data */
    int64_t revision;    /* of the assignment */
} judge_state_t;

/* The analysis of the primary metric at one look. */
typedef struct {
    char primary[JUDGE_NAME];
    bool lower_is_better, rate, tested;
    stats_sample_t base, cand; /* summaries (rate: n = requests, mean = rate) */
    stats_test_t test;         /* fixed horizon (valid when tested) */
    double avp;                /* always-valid p */
    double improvement;        /* relative, positive better, in [-10, 10] */
    double srm_p;              /* -1 when not checked */
} judge_analysis_t;

typedef enum { JUDGE_COMPLETED, JUDGE_ABORTED, JUDGE_FAILED, JUDGE_TIMED_OUT } judge_status_t;
typedef enum { JUDGE_ACCEPT, JUDGE_REJECT, JUDGE_INCONCLUSIVE } judge_decision_t;

/* What one look decided. */
typedef struct {
    bool assign;             /* publish a TrafficAssignment with `fraction` */
    double fraction;         /* the candidate's share to publish */
    bool finished;           /* publish an ExperimentResult */
    bool final_on_candidate; /* the last assignment keeps the candidate (promoted canary) */
    judge_status_t status;
    judge_decision_t decision;
    char rule[32];    /* which rule decided: guardrail, sequential, duration, ... */
    char reason[512]; /* one sentence */
    char violations[JUDGE_MAX_CRITERIA][160];
    size_t nviolations;
    bool no_data; /* this look saw nothing new */
    judge_analysis_t an;
} judge_outcome_t;

/* The defaults above. */
void judge_conf_default(judge_conf_t *c);
/* The state of a new experiment. */
void judge_state_init(judge_state_t *s);

/* Parses "AB_TEST", "LT", ... 0 or HIVE_EINVAL. */
int judge_type_parse(const char *s, judge_type_t *out);
int judge_op_parse(const char *s, judge_op_t *out);
const char *judge_type_name(judge_type_t t);
const char *judge_op_name(judge_op_t o);
const char *judge_status_name(judge_status_t s);
const char *judge_decision_name(judge_decision_t d);
const char *judge_phase_name(judge_phase_t p);

/* The primary metric of `def` and whether lower is better. */
const char *judge_primary(const judge_def_t *def, bool *out_lower_is_better);

/* The metric's value for a variant: the rate for error_rate, else the mean.
 * Returns false when the variant has no observation of it. */
bool judge_value(const judge_obs_t *o, const char *metric, double *out);

/* Whether `value op threshold` holds. */
bool judge_holds(judge_op_t op, double value, double threshold);

/* The canary's next share after `step` (the last step stays). */
double judge_canary_next(const judge_conf_t *c, size_t step, size_t *out_step);

/* Thompson sampling between two variants: the probability that the candidate
 * is better, estimated by `draws` pairs of draws from normal posteriors on the
 * means (u01: the caller's uniform generator), mapped to a share in
 * [floor, 1 - floor]. */
double judge_thompson(const stats_sample_t *base, const stats_sample_t *cand, bool lower_is_better,
                      double floor, int draws, double (*u01)(void *rng), void *rng);

/* Thompson sampling over k >= 2 variants: per draw, one value from each
 * arm's normal posterior on its mean (arms in order); P(i) is the share of
 * draws that arm i wins (lowest when lower_is_better; ties to the first),
 * and shares[i] = floor + (1 - k floor) P(i), so every arm keeps `floor`
 * and the shares sum to 1. An arm with n < 1 is drawn at its mean. Returns
 * 0, or HIVE_EINVAL for k < 2, draws < 1, or floor outside [0, 1/k]. */
int judge_thompson_k(const stats_sample_t *arms, size_t k, bool lower_is_better, double floor, int draws,
                     double (*u01)(void *rng), void *rng, double *shares);

/* One look at `now_ms`. `st` is updated in place (the caller stores it).
 * `aborted` is an operator's abort. `u01`/`rng` are used by bandits only. */
void judge_look(const judge_conf_t *c, const judge_def_t *def, judge_state_t *st, const judge_obs_t *base,
                const judge_obs_t *cand, bool aborted, int64_t now_ms, double (*u01)(void *rng), void *rng,
                judge_outcome_t *out);

#endif
