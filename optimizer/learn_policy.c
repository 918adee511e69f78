/* learn_policy: dispatch over Q-learning, Thompson and LinUCB. See learn_policy.h. */
#include "learn_policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct learn_policy_s {
    learn_policy_config_t cfg;
    qlearn_t *qlearn;
    bandit_t *bandit;
    learn_table_t *observed; /* mean improvement per (state, action); LinUCB: per action */
};

static bool is_linucb(const learn_policy_t *p);

/* The row key of `s` in the observed table. */
static const char *observed_key(const learn_policy_t *p, const char *state_key)
{
    return is_linucb(p) ? "linucb" : state_key;
}

static const char *const kind_names[] = {"qlearning", "thompson", "linucb"};
#define KIND_COUNT (sizeof(kind_names) / sizeof(kind_names[0]))

void learn_policy_config_default(learn_policy_config_t *cfg, learn_policy_kind_t kind)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = kind;
    qlearn_config_default(&cfg->qlearn);
    bandit_config_default(&cfg->bandit);
    learn_reward_config_default(&cfg->reward);
    cfg->max_weight_adjustment = 0.2;
}

const char *learn_policy_config_check(const learn_policy_config_t *cfg)
{
    const char *err;
    if ((unsigned)cfg->kind >= KIND_COUNT) {
        return "kind must be qlearning, thompson or linucb";
    }
    if (!(cfg->max_weight_adjustment > 0.0 && cfg->max_weight_adjustment <= 0.3)) {
        return "max_weight_adjustment must be in (0, 0.3]";
    }
    if ((err = learn_reward_config_check(&cfg->reward)) != NULL) {
        return err;
    }
    if (cfg->kind == POLICY_QLEARNING) {
        return qlearn_config_check(&cfg->qlearn);
    }
    return bandit_config_check(&cfg->bandit);
}

int learn_policy_kind_parse(const char *name, learn_policy_kind_t *out)
{
    for (size_t i = 0; name != NULL && i < KIND_COUNT; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (learn_policy_kind_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *learn_policy_kind_name(learn_policy_kind_t kind)
{
    return (unsigned)kind < KIND_COUNT ? kind_names[kind] : "unknown";
}

learn_policy_t *learn_policy_create(const learn_policy_config_t *cfg)
{
    if (cfg == NULL || learn_policy_config_check(cfg) != NULL) {
        return NULL;
    }
    learn_policy_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->cfg = *cfg;
    if (cfg->kind == POLICY_QLEARNING) {
        p->qlearn = qlearn_create(&cfg->qlearn);
    } else {
        p->bandit =
            bandit_create(cfg->kind == POLICY_THOMPSON ? BANDIT_THOMPSON : BANDIT_LINUCB, &cfg->bandit);
    }
    p->observed = learn_table_create(0.0);
    if ((p->qlearn == NULL && p->bandit == NULL) || p->observed == NULL) {
        learn_policy_destroy(p);
        return NULL;
    }
    return p;
}

void learn_policy_destroy(learn_policy_t *p)
{
    if (p == NULL) {
        return;
    }
    qlearn_destroy(p->qlearn);
    bandit_destroy(p->bandit);
    learn_table_destroy(p->observed);
    free(p);
}

learn_policy_kind_t learn_policy_kind(const learn_policy_t *p)
{
    return p->cfg.kind;
}

size_t learn_policy_actions(const learn_policy_t *p, const state_t *s, uint16_t out[ACTION_COUNT])
{
    return learn_action_applicable(s, p->cfg.max_weight_adjustment, out, ACTION_COUNT);
}

int learn_policy_choose(learn_policy_t *p, const state_t *s, learn_rng_t *rng, learn_decision_t *out)
{
    if (p == NULL || s == NULL || out == NULL) {
        return -EINVAL;
    }
    uint16_t actions[ACTION_COUNT];
    size_t n = learn_policy_actions(p, s, actions);
    learn_decision_t d;
    int rc = p->qlearn != NULL ? qlearn_choose(p->qlearn, s, actions, n, rng, &d)
                               : bandit_choose(p->bandit, s, actions, n, rng, &d);
    if (rc < 0) {
        return rc;
    }
    uint64_t seen = 0;
    double mean = learn_policy_observed(p, s, d.action, &seen);
    if (seen > 0) {
        d.expected_improvement = mean;
    }
    *out = d;
    return 0;
}

int learn_policy_update_next(learn_policy_t *p, const state_t *s, uint16_t action, double reward,
                             const state_t *next)
{
    if (p == NULL || s == NULL) {
        return -EINVAL;
    }
    if (p->qlearn == NULL) {
        return bandit_update(p->bandit, s, action, reward);
    }
    if (next == NULL) {
        return qlearn_update(p->qlearn, s, action, reward, NULL, NULL, 0, NULL);
    }
    uint16_t next_actions[ACTION_COUNT];
    size_t next_n = learn_policy_actions(p, next, next_actions);
    return qlearn_update(p->qlearn, s, action, reward, next, next_actions, next_n, NULL);
}

int learn_policy_observe(learn_policy_t *p, const state_t *s, uint16_t action, bool success,
                         double improvement)
{
    if (p == NULL || s == NULL || action >= ACTION_COUNT || !isfinite(improvement)) {
        return -EINVAL;
    }
    double gained = success ? improvement : fmin(improvement, 0.0);
    learn_table_row_t *row = learn_table_upsert(p->observed, observed_key(p, s->key));
    if (row == NULL) {
        return -ENOMEM;
    }
    row->visits[action]++;
    row->value[action] += (gained - row->value[action]) / (double)row->visits[action];
    row->known |= 1ULL << action;
    return 0;
}

double learn_policy_observed(const learn_policy_t *p, const state_t *s, uint16_t action, uint64_t *out_n)
{
    const char *key = observed_key(p, s->key);
    *out_n = learn_table_visits(p->observed, key, action);
    return learn_table_value(p->observed, key, action);
}

int learn_policy_reset(learn_policy_t *p, const state_t *s, uint16_t action)
{
    if (p == NULL || s == NULL || action >= ACTION_COUNT) {
        return -EINVAL;
    }
    int rc = learn_table_set(p->observed, observed_key(p, s->key), action, 0.0, 0);
    if (rc != 0) {
        return rc;
    }
    const char *name = learn_action_get(action)->name;
    if (p->qlearn != NULL) {
        return qlearn_load(p->qlearn, s->key, name, p->cfg.qlearn.initial_q, 0);
    }
    if (!is_linucb(p)) {
        return bandit_load(p->bandit, s->key, name, 0.0, 0);
    }
    double A[BANDIT_DIM * BANDIT_DIM] = {0}, b[BANDIT_DIM] = {0};
    for (size_t i = 0; i < BANDIT_DIM; i++) {
        A[i * BANDIT_DIM + i] = p->cfg.bandit.ridge;
    }
    return bandit_linucb_load(p->bandit, action, A, b, 0);
}

int learn_policy_update(learn_policy_t *p, const state_t *s, uint16_t action, double reward)
{
    return learn_policy_update_next(p, s, action, reward, NULL);
}

int learn_policy_probabilities(const learn_policy_t *p, const state_t *s, learn_rng_t *rng,
                               double out[ACTION_COUNT])
{
    if (p == NULL || s == NULL || out == NULL) {
        return -EINVAL;
    }
    uint16_t actions[ACTION_COUNT];
    double probs[ACTION_COUNT];
    size_t n = learn_policy_actions(p, s, actions);
    int rc = p->qlearn != NULL ? qlearn_probabilities(p->qlearn, s, actions, n, probs)
                               : bandit_probabilities(p->bandit, s, actions, n, rng, probs);
    if (rc < 0) {
        return rc;
    }
    for (size_t a = 0; a < ACTION_COUNT; a++) {
        out[a] = 0.0;
    }
    for (size_t i = 0; i < n; i++) {
        out[actions[i]] = probs[i];
    }
    return 0;
}

typedef struct {
    const learn_policy_t *p;
    learn_rng_t *rng;
    learn_eval_target_t target;
    bool failed;
} eval_ctx_t;

static double eval_target(void *ctx, const state_t *s, uint16_t action)
{
    eval_ctx_t *e = ctx;
    if (action >= ACTION_COUNT) {
        return 0.0;
    }
    double probs[ACTION_COUNT];
    if (e->target == LEARN_EVAL_UNIFORM) {
        uint16_t actions[ACTION_COUNT];
        size_t n = learn_policy_actions(e->p, s, actions);
        for (size_t i = 0; i < n; i++) {
            if (actions[i] == action) {
                return 1.0 / (double)n;
            }
        }
        return 0.0;
    }
    if (learn_policy_probabilities(e->p, s, e->rng, probs) != 0) {
        e->failed = true;
        return 0.0;
    }
    if (e->target == LEARN_EVAL_CURRENT) {
        return probs[action];
    }
    double best = 0.0;
    for (size_t a = 0; a < ACTION_COUNT; a++) {
        best = fmax(best, probs[a]);
    }
    if (best <= 0.0 || probs[action] < best) {
        return 0.0;
    }
    size_t ties = 0;
    for (size_t a = 0; a < ACTION_COUNT; a++) {
        ties += probs[a] == best;
    }
    return 1.0 / (double)ties;
}

int learn_policy_evaluate(const learn_policy_t *p, const learn_ope_record_t *log, size_t n, learn_rng_t *rng,
                          learn_ope_result_t out[LEARN_EVAL_COUNT])
{
    if (p == NULL || out == NULL) {
        return -EINVAL;
    }
    learn_ope_result_t res[LEARN_EVAL_COUNT];
    for (int t = 0; t < LEARN_EVAL_COUNT; t++) {
        eval_ctx_t e = {.p = p, .rng = rng, .target = (learn_eval_target_t)t};
        int rc = learn_ope_evaluate(log, n, eval_target, &e, &res[t]);
        if (rc != 0 || e.failed) {
            return -EINVAL;
        }
    }
    memcpy(out, res, sizeof(res));
    return 0;
}

const char *learn_eval_target_name(learn_eval_target_t t)
{
    static const char *const names[LEARN_EVAL_COUNT] = {"current", "uniform", "greedy"};
    return t < LEARN_EVAL_COUNT ? names[t] : "unknown";
}

double learn_policy_reward(const learn_policy_t *p, uint16_t action, bool success, double improvement)
{
    const learn_action_t *a = learn_action_get(action);
    return a != NULL ? learn_reward_outcome(&p->cfg.reward, success, improvement, a->risk) : 0.0;
}

qlearn_t *learn_policy_qlearn(learn_policy_t *p)
{
    return p->qlearn;
}

bandit_t *learn_policy_bandit(learn_policy_t *p)
{
    return p->bandit;
}

static bool is_linucb(const learn_policy_t *p)
{
    return p->bandit != NULL && bandit_kind(p->bandit) == BANDIT_LINUCB;
}

/* The table behind Q-learning and Thompson; NULL for LinUCB. */
static const learn_table_t *policy_table(const learn_policy_t *p)
{
    if (p->qlearn != NULL) {
        return qlearn_table(p->qlearn);
    }
    return is_linucb(p) ? NULL : bandit_table(p->bandit);
}

int learn_policy_entry_key(const learn_policy_t *p, const state_t *s, uint16_t action, char *out, size_t cap)
{
    const learn_action_t *a = learn_action_get(action);
    if (p == NULL || s == NULL || a == NULL) {
        return -EINVAL;
    }
    int n = is_linucb(p) ? snprintf(out, cap, "linucb|%s", a->name)
                         : snprintf(out, cap, "%s|%s", s->key, a->name);
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

int learn_policy_export(learn_policy_t *p, const state_t *s, uint16_t action, learn_policy_entry_t *out)
{
    const learn_action_t *a = learn_action_get(action);
    if (p == NULL || s == NULL || a == NULL || out == NULL) {
        return -EINVAL;
    }
    learn_policy_entry_t e;
    memset(&e, 0, sizeof(e));
    memcpy(e.state_key, s->key, sizeof(e.state_key));
    e.action_name = a->name;
    const learn_table_t *t = policy_table(p);
    if (t != NULL) {
        e.value = learn_table_value(t, s->key, action);
        e.visits = learn_table_visits(t, s->key, action);
    } else {
        double Ainv[BANDIT_DIM * BANDIT_DIM], x[BANDIT_DIM];
        int rc = bandit_linucb_model(p->bandit, action, e.A, Ainv, e.b, &e.n);
        if (rc < 0) {
            return rc;
        }
        e.has_model = true;
        /* The model's point estimate in this state, theta . x with theta = A^-1 b. */
        state_features(s, x);
        for (size_t i = 0; i < BANDIT_DIM; i++) {
            double theta_i = 0.0;
            for (size_t j = 0; j < BANDIT_DIM; j++) {
                theta_i += Ainv[i * BANDIT_DIM + j] * e.b[j];
            }
            e.value += theta_i * x[i];
        }
        e.visits = e.n;
    }
    e.improvement = learn_policy_observed(p, s, action, &e.improvement_n);
    *out = e;
    return 0;
}

/* The observed mean improvement an entry carries. */
static int import_observed(learn_policy_t *p, const learn_policy_entry_t *e)
{
    bool has = e->improvement_n > 0 && isfinite(e->improvement);
    int rc = learn_table_load(p->observed, observed_key(p, e->state_key), e->action_name,
                              has ? e->improvement : 0.0, has ? e->improvement_n : 0);
    return rc == -ENOENT ? 0 : rc;
}

int learn_policy_import(learn_policy_t *p, const learn_policy_entry_t *e)
{
    if (p == NULL || e == NULL || e->action_name == NULL) {
        return -EINVAL;
    }
    int rc = import_observed(p, e);
    if (rc != 0) {
        return rc;
    }
    if (p->qlearn != NULL) {
        return qlearn_load(p->qlearn, e->state_key, e->action_name, e->value, e->visits);
    }
    if (!is_linucb(p)) {
        return bandit_load(p->bandit, e->state_key, e->action_name, e->value, e->visits);
    }
    uint16_t id;
    if (!e->has_model) {
        return -EINVAL;
    }
    if (learn_action_find(e->action_name, &id) != 0) {
        return -ENOENT;
    }
    return bandit_linucb_load(p->bandit, id, e->A, e->b, e->n);
}

size_t learn_policy_table_size(const learn_policy_t *p)
{
    const learn_table_t *t = policy_table(p);
    return t != NULL ? learn_table_state_count(t) : 0;
}

double learn_policy_epsilon(const learn_policy_t *p)
{
    return p->qlearn != NULL ? qlearn_epsilon(p->qlearn) : 0.0;
}

uint64_t learn_policy_decisions(const learn_policy_t *p)
{
    return p->qlearn != NULL ? qlearn_decisions(p->qlearn) : 0;
}

void learn_policy_set_decisions(learn_policy_t *p, uint64_t decisions)
{
    if (p->qlearn != NULL) {
        qlearn_set_decisions(p->qlearn, decisions);
    }
}

void learn_policy_set_epsilon(learn_policy_t *p, double epsilon)
{
    if (p->qlearn != NULL) {
        qlearn_set_epsilon(p->qlearn, epsilon);
    }
}
