/* judge: see judge.h. */
#include "judge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_err.h"

static const char *const type_names[] = {"AB_TEST", "CANARY", "SHADOW", "BANDIT"};
static const char *const op_names[] = {"LT", "LE", "GT", "GE"};
static const char *const status_names[] = {"COMPLETED", "ABORTED", "FAILED", "TIMED_OUT"};
static const char *const decision_names[] = {"ACCEPT", "REJECT", "INCONCLUSIVE"};
static const char *const phase_names[] = {"RUNNING", "PAUSED", "DONE"};

void judge_conf_default(judge_conf_t *c)
{
    *c = (judge_conf_t){.alpha = 0.05,
                        .tau = 0.1,
                        .srm_alpha = 0.001,
                        .min_samples = 5,
                        .max_empty = 10,
                        .fail_on_no_data = true,
                        .step_min_ms = 24 * 3600 * 1000LL,
                        .steps = {0.10, 0.25, 0.50, 1.00},
                        .nsteps = 4,
                        .bandit_floor = 0.05,
                        .bandit_draws = 2000};
}

void judge_state_init(judge_state_t *s)
{
    *s = (judge_state_t){.phase = JUDGE_RUNNING, .avp = 1};
}

static int parse(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int judge_type_parse(const char *s, judge_type_t *out)
{
    int i = parse(s, type_names, 4);
    if (i < 0) {
        return HIVE_EINVAL;
    }
    *out = (judge_type_t)i;
    return 0;
}

int judge_op_parse(const char *s, judge_op_t *out)
{
    int i = parse(s, op_names, 4);
    if (i < 0) {
        return HIVE_EINVAL;
    }
    *out = (judge_op_t)i;
    return 0;
}

const char *judge_type_name(judge_type_t t)
{
    return type_names[t];
}
const char *judge_op_name(judge_op_t o)
{
    return op_names[o];
}
const char *judge_status_name(judge_status_t s)
{
    return status_names[s];
}
const char *judge_decision_name(judge_decision_t d)
{
    return decision_names[d];
}
const char *judge_phase_name(judge_phase_t p)
{
    return phase_names[p];
}

static bool is_improvement(const char *m)
{
    return strcmp(m, "relative_improvement") == 0 || strcmp(m, "improvement") == 0;
}

static bool lower_better(const char *m, judge_op_t op_hint, bool has_hint)
{
    if (strcmp(m, "error_rate") == 0 || strncmp(m, "latency", 7) == 0 ||
        (strlen(m) > 3 && strcmp(m + strlen(m) - 3, "_ms") == 0)) {
        return true;
    }
    if (strcmp(m, "slo_compliance") == 0 || strcmp(m, "availability") == 0 ||
        strncmp(m, "throughput", 10) == 0) {
        return false;
    }
    return has_hint && (op_hint == JUDGE_LT || op_hint == JUDGE_LE);
}

const char *judge_primary(const judge_def_t *def, bool *out_lower_is_better)
{
    for (size_t i = 0; i < def->ncriteria; i++) {
        const judge_criterion_t *k = &def->criteria[i];
        if (!is_improvement(k->metric)) {
            *out_lower_is_better = lower_better(k->metric, k->op, true);
            return k->metric;
        }
    }
    *out_lower_is_better = true;
    return "latency_p95_ms";
}

static const stats_sample_t *metric_of(const judge_obs_t *o, const char *metric)
{
    for (size_t i = 0; i < o->nm; i++) {
        if (strcmp(o->names[i], metric) == 0) {
            return &o->m[i];
        }
    }
    return NULL;
}

bool judge_value(const judge_obs_t *o, const char *metric, double *out)
{
    if (strcmp(metric, "error_rate") == 0) {
        if (o->requests > 0) {
            *out = o->errors / o->requests;
            return true;
        }
        return false;
    }
    const stats_sample_t *s = metric_of(o, metric);
    if (!s || s->n < 1) {
        return false;
    }
    *out = s->mean;
    return true;
}

bool judge_holds(judge_op_t op, double v, double t)
{
    switch (op) {
    case JUDGE_LT:
        return v < t;
    case JUDGE_LE:
        return v <= t;
    case JUDGE_GT:
        return v > t;
    case JUDGE_GE:
        return v >= t;
    }
    return false;
}

double judge_canary_next(const judge_conf_t *c, size_t step, size_t *out_step)
{
    size_t next = step + 1 < c->nsteps ? step + 1 : step;
    *out_step = next;
    return c->steps[next];
}

/* A standard normal draw (Box-Muller). */
static double normal(double (*u01)(void *), void *rng)
{
    double u = u01(rng), v = u01(rng);
    if (u < 1e-300) {
        u = 1e-300;
    }
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

int judge_thompson_k(const stats_sample_t *arms, size_t k, bool lower_is_better, double floor, int draws,
                     double (*u01)(void *rng), void *rng, double *shares)
{
    if (!arms || !shares || k < 2 || draws < 1 || !(floor >= 0) || floor * (double)k > 1 + 1e-12) {
        return HIVE_EINVAL;
    }
    double *sd = calloc(k, sizeof(*sd));
    long *wins = calloc(k, sizeof(*wins));
    if (!sd || !wins) {
        free(sd);
        free(wins);
        return HIVE_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        sd[i] = arms[i].n >= 1 ? sqrt(fmax(arms[i].var, 0) / arms[i].n) : 0;
    }
    for (int d = 0; d < draws; d++) {
        size_t best = 0;
        double best_v = 0;
        for (size_t i = 0; i < k; i++) {
            double v = arms[i].mean + sd[i] * normal(u01, rng);
            if (i == 0 || (lower_is_better ? v < best_v : v > best_v)) {
                best = i;
                best_v = v;
            }
        }
        wins[best]++;
    }
    for (size_t i = 0; i < k; i++) {
        shares[i] = floor + (1 - (double)k * floor) * (double)wins[i] / draws;
    }
    free(sd);
    free(wins);
    return 0;
}

double judge_thompson(const stats_sample_t *base, const stats_sample_t *cand, bool lower_is_better,
                      double floor, int draws, double (*u01)(void *rng), void *rng)
{
    double sb = sqrt(base->var / fmax(base->n, 1)), sc = sqrt(cand->var / fmax(cand->n, 1));
    int wins = 0;
    for (int i = 0; i < draws; i++) {
        double b = base->mean + sb * normal(u01, rng), k = cand->mean + sc * normal(u01, rng);
        wins += lower_is_better ? k < b : k > b;
    }
    double p = draws > 0 ? (double)wins / draws : 0.5;
    return floor + (1 - 2 * floor) * p;
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* Relative change of a metric, candidate over baseline. */
static bool rel_change(const judge_obs_t *b, const judge_obs_t *k, const char *m, double *out)
{
    double vb, vk;
    if (!judge_value(b, m, &vb) || !judge_value(k, m, &vk)) {
        return false;
    }
    *out = fabs(vb) > 1e-12 ? (vk - vb) / fabs(vb) : vk - vb;
    return true;
}

/* The fixed-horizon test and the always-valid p-value of the primary metric. */
static void analyse(const judge_conf_t *c, const judge_def_t *def, const judge_state_t *st,
                    const judge_obs_t *b, const judge_obs_t *k, judge_analysis_t *an)
{
    memset(an, 0, sizeof(*an));
    snprintf(an->primary, sizeof(an->primary), "%s", judge_primary(def, &an->lower_is_better));
    an->avp = st->avp;
    an->srm_p = -1;
    an->rate = strcmp(an->primary, "error_rate") == 0;
    double scale;
    if (an->rate) {
        an->base = (stats_sample_t){b->requests, b->requests > 0 ? b->errors / b->requests : 0, 0};
        an->cand = (stats_sample_t){k->requests, k->requests > 0 ? k->errors / k->requests : 0, 0};
        an->base.var = an->base.mean * (1 - an->base.mean);
        an->cand.var = an->cand.mean * (1 - an->cand.mean);
        an->tested =
            b->windows >= c->min_samples && k->windows >= c->min_samples &&
            stats_ztest_2prop(b->errors, b->requests, k->errors, k->requests, c->alpha, &an->test) == 0;
        scale = fmax(an->base.mean, 1e-4);
    } else {
        const stats_sample_t *sb = metric_of(b, an->primary), *sk = metric_of(k, an->primary);
        if (sb) {
            an->base = *sb;
        }
        if (sk) {
            an->cand = *sk;
        }
        an->tested = sb && sk && sb->n >= c->min_samples && sk->n >= c->min_samples &&
                     stats_welch(sb, sk, c->alpha, &an->test) == 0;
        scale = fmax(fabs(an->base.mean), 1e-9);
    }
    double diff = an->cand.mean - an->base.mean;
    double rel = fabs(an->base.mean) > 1e-12 ? diff / fabs(an->base.mean) : diff;
    an->improvement = clamp(an->lower_is_better ? -rel : rel, -10, 10);
    if (an->tested) {
        an->avp = stats_msprt(st->avp, an->test.diff, an->test.se * an->test.se, c->tau * scale);
    }
}

static bool criteria_hold(const judge_def_t *def, const judge_obs_t *b, const judge_obs_t *k,
                          const judge_analysis_t *an, char *why, size_t len)
{
    for (size_t i = 0; i < def->ncriteria; i++) {
        const judge_criterion_t *cr = &def->criteria[i];
        double v;
        if (is_improvement(cr->metric)) {
            v = an->improvement;
        } else if (!rel_change(b, k, cr->metric, &v)) {
            snprintf(why, len, "criterion %s has no data", cr->metric);
            return false;
        }
        if (!judge_holds(cr->op, v, cr->threshold)) {
            snprintf(why, len, "criterion %s %s %g does not hold (%.4g)", cr->metric, judge_op_name(cr->op),
                     cr->threshold, v);
            return false;
        }
    }
    return true;
}

static void finish(judge_state_t *st, judge_outcome_t *out, judge_status_t status, judge_decision_t decision,
                   const char *rule)
{
    st->phase = JUDGE_DONE;
    out->finished = true;
    out->assign = true;
    out->status = status;
    out->decision = decision;
    out->fraction = 0;
    snprintf(out->rule, sizeof(out->rule), "%s", rule);
}

void judge_look(const judge_conf_t *c, const judge_def_t *def, judge_state_t *st, const judge_obs_t *b,
                const judge_obs_t *k, bool aborted, int64_t now_ms, double (*u01)(void *rng), void *rng,
                judge_outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    if (st->phase == JUDGE_DONE) {
        return;
    }
    /* Setup: the first look splits the traffic. */
    if (!st->started) {
        st->started = true;
        st->started_ms = st->step_started_ms = now_ms;
        st->step = 0;
        st->fraction = def->type == JUDGE_CANARY ? c->steps[0] : def->type == JUDGE_SHADOW ? 0 : def->split;
        st->step_windows = k->windows;
        st->last_windows = b->windows + k->windows;
        out->assign = true;
        out->fraction = st->fraction;
        snprintf(out->rule, sizeof(out->rule), "setup");
        snprintf(out->reason, sizeof(out->reason), "traffic split: %.0f%% on the candidate",
                 100 * st->fraction);
        analyse(c, def, st, b, k, &out->an);
        return;
    }
    analyse(c, def, st, b, k, &out->an);
    judge_analysis_t *an = &out->an;
    out->fraction = st->fraction;

    if (aborted) {
        finish(st, out, JUDGE_ABORTED, JUDGE_REJECT, "operator");
        snprintf(out->reason, sizeof(out->reason),
                 "aborted by an operator; traffic returned to the baseline");
        return;
    }
    for (size_t i = 0; i < def->nguardrails; i++) {
        const judge_criterion_t *g = &def->guardrails[i];
        double v;
        if (judge_value(k, g->metric, &v) && judge_holds(g->op, v, g->threshold)) {
            snprintf(out->violations[out->nviolations++], sizeof(out->violations[0]),
                     "%s %s %g (observed %.6g)", g->metric, judge_op_name(g->op), g->threshold, v);
        }
    }
    if (out->nviolations > 0) {
        finish(st, out, JUDGE_ABORTED, JUDGE_REJECT, "guardrail");
        snprintf(out->reason, sizeof(out->reason), "guardrail breached: %s; rolled back to the baseline",
                 out->violations[0]);
        return;
    }
    double seen = b->windows + k->windows;
    if (seen <= st->last_windows) {
        out->no_data = true;
        st->empty++;
        if (st->empty >= c->max_empty) {
            if (c->fail_on_no_data) {
                finish(st, out, JUDGE_FAILED, JUDGE_INCONCLUSIVE, "no_data");
                snprintf(out->reason, sizeof(out->reason),
                         "no data for %ld consecutive intervals; traffic returned to the baseline",
                         st->empty);
                return;
            }
            st->phase = JUDGE_PAUSED;
        }
    } else {
        st->empty = 0;
        st->last_windows = seen;
        if (st->phase == JUDGE_PAUSED) {
            st->phase = JUDGE_RUNNING;
        }
    }
    if (def->type == JUDGE_AB && b->windows >= c->min_samples && k->windows >= c->min_samples) {
        double counts[2] = {b->requests, k->requests}, fr[2] = {1 - st->fraction, st->fraction};
        if (stats_srm(counts, fr, 2, &an->srm_p) == 0 && an->srm_p < c->srm_alpha) {
            finish(st, out, JUDGE_FAILED, JUDGE_INCONCLUSIVE, "srm");
            snprintf(out->reason, sizeof(out->reason),
                     "sample ratio mismatch: %.0f/%.0f requests against a %.0f/%.0f split (p=%.3g); result "
                     "invalid",
                     b->requests, k->requests, 100 * fr[0], 100 * fr[1], an->srm_p);
            return;
        }
    }
    st->avp = an->avp;
    char why[256] = "";
    bool significant = an->tested && an->avp < c->alpha;
    bool better = an->improvement > 0;
    bool over = now_ms - st->started_ms >= def->duration_ms;
    if (significant && !better) {
        finish(st, out, def->type == JUDGE_CANARY ? JUDGE_ABORTED : JUDGE_COMPLETED, JUDGE_REJECT,
               "sequential");
        snprintf(out->reason, sizeof(out->reason),
                 "the candidate is worse on %s by %.2f%% (always-valid p=%.3g < %g)%s", an->primary,
                 -100 * an->improvement, an->avp, c->alpha,
                 def->type == JUDGE_CANARY ? "; canary rolled back" : "");
        return;
    }
    bool accept = significant && criteria_hold(def, b, k, an, why, sizeof(why));
    if (def->type == JUDGE_CANARY) {
        bool step_done = now_ms - st->step_started_ms >= c->step_min_ms &&
                         k->windows - st->step_windows >= (double)c->min_samples;
        size_t next_step;
        double next = judge_canary_next(c, st->step, &next_step);
        bool last = next_step + 1 >= c->nsteps && next >= 1.0;
        if (step_done && accept && last) {
            finish(st, out, JUDGE_COMPLETED, JUDGE_ACCEPT, "canary");
            out->final_on_candidate = true;
            out->fraction = 1.0;
            snprintf(
                out->reason, sizeof(out->reason),
                "canary passed every step; %s improved by %.2f%% (always-valid p=%.3g); promoted to 100%%",
                an->primary, 100 * an->improvement, an->avp);
            return;
        }
        if (step_done && !last && !over) {
            st->step = next_step;
            st->fraction = next;
            st->step_started_ms = now_ms;
            st->step_windows = k->windows;
            out->assign = true;
            out->fraction = next;
            snprintf(out->rule, sizeof(out->rule), "canary_step");
            snprintf(out->reason, sizeof(out->reason), "canary advanced to %.0f%%", 100 * next);
            return;
        }
    } else if (accept) {
        finish(st, out, JUDGE_COMPLETED, JUDGE_ACCEPT, "sequential");
        snprintf(out->reason, sizeof(out->reason),
                 "%s improved by %.2f%% (always-valid p=%.3g < %g, fixed-horizon p=%.3g) and every criterion "
                 "holds",
                 an->primary, 100 * an->improvement, an->avp, c->alpha, an->test.p_value);
        return;
    }
    if (over) {
        finish(st, out, JUDGE_COMPLETED, JUDGE_INCONCLUSIVE, "duration");
        snprintf(out->reason, sizeof(out->reason), "duration over without a significant result on %s (%s%s)",
                 an->primary, an->tested ? "always-valid p too high" : "too few samples", why[0] ? "; " : "");
        if (why[0]) {
            strncat(out->reason, why, sizeof(out->reason) - strlen(out->reason) - 2);
            strcat(out->reason, ")");
        }
        return;
    }
    if (def->type == JUDGE_BANDIT && an->base.n >= c->min_samples && an->cand.n >= c->min_samples && u01) {
        double f = judge_thompson(&an->base, &an->cand, an->lower_is_better, c->bandit_floor, c->bandit_draws,
                                  u01, rng);
        if (fabs(f - st->fraction) >= 0.01) {
            st->fraction = f;
            out->assign = true;
            out->fraction = f;
            snprintf(out->rule, sizeof(out->rule), "thompson");
            snprintf(out->reason, sizeof(out->reason), "bandit re-allocated %.0f%% to the candidate",
                     100 * f);
        }
    }
}
