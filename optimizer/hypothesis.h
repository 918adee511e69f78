/* hypothesis: the lifecycle of one optimization the optimizer proposes.
 *
 *   PROPOSED ──risk > threshold──> AWAITING_APPROVAL ──approved──> EXPERIMENTING
 *      │                                  └──rejected──> REJECTED        │
 *      └──────────risk <= threshold──────────────────> EXPERIMENTING ────┤
 *                                     experiment failed ──> REJECTED <───┤
 *                                     experiment succeeded ──> APPROVED ─┘ (APPLY sent)
 *   APPROVED ──applied──> APPLIED ──rollback confirmed──> ROLLED_BACK
 *   APPROVED ──the applier refused or failed (REJECTED, FAILED)──> FAILED
 *   AWAITING_APPROVAL, EXPERIMENTING ──no answer by expires_at──> EXPIRED
 *
 * A hypothesis waits for an answer (the Queen Agent's, the experiment's) at
 * most its open timeout: expires_at is set when it enters AWAITING_APPROVAL
 * or EXPERIMENTING, and hyp_expire closes it once passed, so one lost
 * response never blocks its component and problem for good.
 *
 * Pure: each event is a function from (hypothesis, event, now) to the new
 * hypothesis and the effects the shell must carry out (records to produce, a
 * learning update). An event that does not fit the current status changes
 * nothing and asks for nothing, so replays and duplicates are harmless.
 */
#ifndef OPTIMIZER_HYPOTHESIS_H
#define OPTIMIZER_HYPOTHESIS_H

#include <stdbool.h>
#include <stdint.h>

#define HYP_STATUS_MAP(X)                                                                                    \
    X(PROPOSED)                                                                                              \
    X(AWAITING_APPROVAL)                                                                                     \
    X(EXPERIMENTING)                                                                                         \
    X(APPROVED)                                                                                              \
    X(APPLIED)                                                                                               \
    X(REJECTED)                                                                                              \
    X(ROLLED_BACK)                                                                                           \
    X(FAILED)                                                                                                \
    X(EXPIRED)

typedef enum {
#define X(name) HYP_##name,
    HYP_STATUS_MAP(X)
#undef X
        HYP_STATUS_COUNT
} hyp_status_t;

/* Effects the shell carries out after a transition (bits). */
typedef enum {
    HYP_EMIT_APPROVAL_REQUEST = 1 << 0,   /* approvals.requests */
    HYP_EMIT_EXPERIMENT_REQUEST = 1 << 1, /* experiments.requests */
    HYP_EMIT_APPLY = 1 << 2,              /* optimization.commands, APPLY */
    HYP_EMIT_ROLLBACK = 1 << 3,           /* optimization.commands, ROLLBACK */
    HYP_LEARN = 1 << 4,                   /* feed the reward to the policy */
} hyp_effect_t;

typedef struct {
    char id[24]; /* "opt-" + 16 hex: derived from the insight id, so a replay proposes the same id */
    char insight_id[64];
    char component[128];
    char problem[32]; /* state_problem_name() */
    char state_key[192];
    char action[64]; /* action name (learn_action.h) */
    char type[32];   /* WEIGHT_RECALIBRATION | SLO_ADJUSTMENT | HEURISTIC_UPDATE | POLICY_CHANGE */
    char policy[16]; /* qlearning | thompson | linucb */
    hyp_status_t status;
    double q_value, confidence, risk, expected_improvement, propensity;
    char experiment_id[32]; /* "exp-" + the hypothesis id's hex */
    bool has_result;
    double improvement, reward;
    char reason[256];    /* why rejected, failed, expired or rolled back */
    char rationale[512]; /* one sentence an operator can read */
    int64_t created_at_ms, updated_at_ms;
    int64_t open_timeout_ms; /* how long it may wait for an answer */
    int64_t expires_at_ms;   /* while AWAITING_APPROVAL or EXPERIMENTING: the deadline; else 0 */
} hypothesis_t;

/* The open timeout when a proposal names none: 24 hours. */
#define HYP_DEFAULT_OPEN_TIMEOUT_MS (24LL * 3600 * 1000)

/* What the policy decided, as the lifecycle needs it. */
typedef struct {
    const char *insight_id, *component, *problem, *state_key, *action, *type, *policy, *description;
    double q_value, confidence, risk, expected_improvement, propensity;
    bool no_change;          /* the policy chose to change nothing (NO_OP) */
    int64_t open_timeout_ms; /* HYPOTHESIS_TIMEOUT_SECONDS; 0 = HYP_DEFAULT_OPEN_TIMEOUT_MS */
} hyp_proposal_t;

const char *hyp_status_name(hyp_status_t s);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int hyp_status_parse(const char *name, hyp_status_t *out);

/* Above this risk an experiment starts as a CANARY, at or below as an AB_TEST. */
#define HYP_CANARY_RISK 0.3

/* The hypothesis id for an insight id: "opt-" + 16 hex digits of a hash. */
void hyp_id_for_insight(const char *insight_id, char out[24]);

/* A new hypothesis from a decision. Above `risk_threshold` (seed: 0.5) it waits
 * for the Queen Agent; otherwise its experiment starts at once. A decision to
 * change nothing is kept, REJECTED at once with that reason, so an operator
 * (and an off-policy evaluation) sees it too. Returns the effects. */
unsigned hyp_propose(hypothesis_t *h, const hyp_proposal_t *p, double risk_threshold, int64_t now_ms);

/* The Queen Agent's (or an operator's) answer. */
unsigned hyp_on_approval(hypothesis_t *h, bool approved, const char *reason, int64_t now_ms);

/* The experiment's outcome: `success` as the experiment-manager decided it,
 * `improvement` observed, `reward` computed by the policy's reward function. */
unsigned hyp_on_result(hypothesis_t *h, bool success, double improvement, double reward, const char *reason,
                       int64_t now_ms);

/* The applier's confirmation: `applied` true for APPLIED; `rolled_back` for a
 * confirmed rollback; neither for an applier that refused (REJECTED) or
 * failed (FAILED) the change: the hypothesis becomes FAILED, nothing was
 * applied and nothing is rolled back. */
unsigned hyp_on_applied(hypothesis_t *h, bool applied, bool rolled_back, const char *reason, int64_t now_ms);

/* Closes a hypothesis still waiting for an answer once `now_ms` reaches its
 * expires_at: EXPIRED, with the reason naming what did not come. Returns true
 * when it expired it; false (unchanged) otherwise. */
bool hyp_expire(hypothesis_t *h, int64_t now_ms);

/* True while the hypothesis holds its component and problem (the debounce):
 * PROPOSED, AWAITING_APPROVAL, EXPERIMENTING or APPROVED. */
bool hyp_is_open(const hypothesis_t *h);

/* An operator's rollback request: only an APPLIED hypothesis can be rolled
 * back. Returns HYP_EMIT_ROLLBACK, or 0 with *out_conflict set when the status
 * does not allow it. The status changes when the rollback is confirmed. */
unsigned hyp_request_rollback(const hypothesis_t *h, bool *out_conflict);

/* The records a hypothesis in its current status has asked for, to emit
 * again on a replay: the approval request while AWAITING_APPROVAL, the
 * experiment request while EXPERIMENTING, the APPLY command once APPROVED. */
unsigned hyp_effects_of_status(const hypothesis_t *h);

/* The experiment_type of its ExperimentRequest: "CANARY" above
 * HYP_CANARY_RISK, "AB_TEST" otherwise. */
const char *hyp_experiment_type(const hypothesis_t *h);

/* What its experiment must show besides the relative improvement: the
 * problem's metric (state_problem_metric) moving the right way, "LT" or "GT"
 * 0; for a problem without a metric, "improvement" "GT". */
void hyp_success_criterion(const hypothesis_t *h, const char **out_metric, const char **out_operator);

/* The success rule of an ExperimentResult: the experiment COMPLETED, its
 * decision is ACCEPT and the improvement reaches `min_improvement`
 * (MIN_IMPROVEMENT_THRESHOLD). */
bool hyp_result_success(const char *status, const char *decision, double improvement, double min_improvement);

#endif
