#include "hypothesis.h"

#include "fnv.h"
#include "state.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *status_names[] = {
#define X(name) #name,
    HYP_STATUS_MAP(X)
#undef X
};

const char *hyp_status_name(hyp_status_t s)
{
    return (unsigned)s < HYP_STATUS_COUNT ? status_names[s] : "UNKNOWN";
}

int hyp_status_parse(const char *name, hyp_status_t *out)
{
    for (int i = 0; i < HYP_STATUS_COUNT; i++) {
        if (name && strcmp(name, status_names[i]) == 0) {
            *out = (hyp_status_t)i;
            return 0;
        }
    }
    return -1;
}

void hyp_id_for_insight(const char *insight_id, char out[24])
{
    uint64_t h = fnv1a64_str(FNV1A64_INIT, insight_id); /* identity, not secrecy */
    snprintf(out, 24, "opt-%016llx", (unsigned long long)h);
}

/* Drops an incomplete UTF-8 sequence a cut left at the end of `s`, so that
 * every text stays valid UTF-8 (protobuf and JSON require it). */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--; /* continuation bytes */
    }
    if (i == 0) {
        return;
    }
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80           ? 1
                  : (lead >> 5) == 0x6  ? 2
                  : (lead >> 4) == 0xE  ? 3
                  : (lead >> 3) == 0x1E ? 4
                                        : 0;
    if (want != n - (i - 1)) {
        s[lead < 0x80 ? n : i - 1] = '\0';
    }
}

/* snprintf that may cut its output short, on purpose: the texts it writes
 * are for reading. */
static void format_cut(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void format_cut(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    utf8_trim(dst);
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
    utf8_trim(dst);
}
#define COPY(dst, src) copy((dst), sizeof(dst), (src))

unsigned hyp_propose(hypothesis_t *h, const hyp_proposal_t *p, double risk_threshold, int64_t now_ms)
{
    memset(h, 0, sizeof(*h));
    hyp_id_for_insight(p->insight_id, h->id);
    COPY(h->insight_id, p->insight_id);
    COPY(h->component, p->component);
    COPY(h->problem, p->problem);
    COPY(h->state_key, p->state_key);
    COPY(h->action, p->action);
    COPY(h->type, p->type);
    COPY(h->policy, p->policy);
    h->q_value = p->q_value;
    h->confidence = p->confidence;
    h->risk = p->risk;
    h->expected_improvement = p->expected_improvement;
    h->propensity = p->propensity;
    h->open_timeout_ms = p->open_timeout_ms > 0 ? p->open_timeout_ms : HYP_DEFAULT_OPEN_TIMEOUT_MS;
    snprintf(h->experiment_id, sizeof(h->experiment_id), "exp-%s", h->id + 4);
    h->created_at_ms = h->updated_at_ms = now_ms;
    format_cut(
        h->rationale, sizeof(h->rationale),
        "insight %s (%s) put %s in state %s; the %s policy chose %s (value %.4f, confidence %.2f, risk "
        "%.2f, expected improvement %.1f%%, picked with probability %.3f)",
        h->insight_id, p->description ? p->description : h->problem, h->component, h->state_key, h->policy,
        h->action, h->q_value, h->confidence, h->risk, 100.0 * h->expected_improvement, h->propensity);
    if (p->no_change) {
        h->status = HYP_REJECTED;
        COPY(h->reason, "the policy chose to change nothing");
        return 0;
    }
    h->expires_at_ms = now_ms + h->open_timeout_ms;
    if (h->risk > risk_threshold) {
        h->status = HYP_AWAITING_APPROVAL;
        return HYP_EMIT_APPROVAL_REQUEST;
    }
    h->status = HYP_EXPERIMENTING;
    return HYP_EMIT_EXPERIMENT_REQUEST;
}

/* The open timeout of a hypothesis stored before it had one. */
static int64_t open_timeout(const hypothesis_t *h)
{
    return h->open_timeout_ms > 0 ? h->open_timeout_ms : HYP_DEFAULT_OPEN_TIMEOUT_MS;
}

unsigned hyp_on_approval(hypothesis_t *h, bool approved, const char *reason, int64_t now_ms)
{
    if (h->status != HYP_AWAITING_APPROVAL) {
        return 0;
    }
    h->updated_at_ms = now_ms;
    if (approved) {
        h->status = HYP_EXPERIMENTING;
        h->expires_at_ms = now_ms + open_timeout(h); /* the experiment's own wait starts now */
        return HYP_EMIT_EXPERIMENT_REQUEST;
    }
    h->expires_at_ms = 0;
    h->status = HYP_REJECTED;
    COPY(h->reason, reason && *reason ? reason : "rejected by the approver");
    return 0;
}

unsigned hyp_on_result(hypothesis_t *h, bool success, double improvement, double reward, const char *reason,
                       int64_t now_ms)
{
    if (h->status != HYP_EXPERIMENTING) {
        return 0;
    }
    h->updated_at_ms = now_ms;
    h->expires_at_ms = 0;
    h->has_result = true;
    h->improvement = improvement;
    h->reward = reward;
    if (success) {
        h->status = HYP_APPROVED;
        return HYP_LEARN | HYP_EMIT_APPLY;
    }
    h->status = HYP_REJECTED;
    COPY(h->reason, reason && *reason ? reason : "the experiment did not meet its success criteria");
    return HYP_LEARN;
}

unsigned hyp_on_applied(hypothesis_t *h, bool applied, bool rolled_back, const char *reason, int64_t now_ms)
{
    if (rolled_back) {
        if (h->status != HYP_APPLIED && h->status != HYP_APPROVED) {
            return 0;
        }
        h->status = HYP_ROLLED_BACK;
        h->updated_at_ms = now_ms;
        COPY(h->reason, reason && *reason ? reason : "rolled back");
        return 0;
    }
    if (h->status != HYP_APPROVED) {
        return 0;
    }
    h->updated_at_ms = now_ms;
    if (applied) {
        h->status = HYP_APPLIED;
        return 0;
    }
    h->status = HYP_FAILED; /* refused or failed by the applier: nothing applied */
    COPY(h->reason, reason && *reason ? reason : "the applier did not apply the change");
    return 0;
}

bool hyp_expire(hypothesis_t *h, int64_t now_ms)
{
    if ((h->status != HYP_AWAITING_APPROVAL && h->status != HYP_EXPERIMENTING) || h->expires_at_ms <= 0 ||
        now_ms < h->expires_at_ms) {
        return false;
    }
    format_cut(h->reason, sizeof(h->reason), "%s within %lld s: expired",
               h->status == HYP_AWAITING_APPROVAL ? "no approval response" : "no experiment result",
               (long long)(open_timeout(h) / 1000));
    h->status = HYP_EXPIRED;
    h->expires_at_ms = 0;
    h->updated_at_ms = now_ms;
    return true;
}

bool hyp_is_open(const hypothesis_t *h)
{
    return h->status == HYP_PROPOSED || h->status == HYP_AWAITING_APPROVAL ||
           h->status == HYP_EXPERIMENTING || h->status == HYP_APPROVED;
}

unsigned hyp_request_rollback(const hypothesis_t *h, bool *out_conflict)
{
    *out_conflict = h->status != HYP_APPLIED;
    return *out_conflict ? 0 : HYP_EMIT_ROLLBACK;
}

unsigned hyp_effects_of_status(const hypothesis_t *h)
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

const char *hyp_experiment_type(const hypothesis_t *h)
{
    return h->risk > HYP_CANARY_RISK ? "CANARY" : "AB_TEST";
}

void hyp_success_criterion(const hypothesis_t *h, const char **out_metric, const char **out_operator)
{
    problem_kind_t p = PROBLEM_OTHER;
    state_problem_parse(h->problem, &p);
    const char *metric = state_problem_metric(p);
    *out_metric = metric ? metric : "improvement";
    *out_operator = state_problem_higher_is_better(p) ? "GT" : "LT";
}

bool hyp_result_success(const char *status, const char *decision, double improvement, double min_improvement)
{
    return status && decision && strcmp(status, "COMPLETED") == 0 && strcmp(decision, "ACCEPT") == 0 &&
           improvement >= min_improvement;
}
