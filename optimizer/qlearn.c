/* qlearn: tabular Q-learning with epsilon-greedy. See qlearn.h. */
#include "qlearn.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "learn_action.h"

struct qlearn_s {
    qlearn_config_t cfg;
    double epsilon;
    uint64_t decisions;
    learn_table_t *table;
};

void qlearn_config_default(qlearn_config_t *cfg)
{
    cfg->learning_rate = 0.01;
    cfg->discount_factor = 0.95;
    cfg->epsilon_start = 0.1;
    cfg->epsilon_min = 0.01;
    cfg->epsilon_decay = 0.999;
    cfg->initial_q = 0.0;
}

const char *qlearn_config_check(const qlearn_config_t *cfg)
{
    if (!(cfg->learning_rate > 0.0 && cfg->learning_rate <= 1.0)) {
        return "learning_rate must be in (0, 1]";
    }
    if (!(cfg->discount_factor >= 0.0 && cfg->discount_factor <= 1.0)) {
        return "discount_factor must be in [0, 1]";
    }
    if (!(cfg->epsilon_start >= 0.0 && cfg->epsilon_start <= 1.0)) {
        return "epsilon_start must be in [0, 1]";
    }
    if (!(cfg->epsilon_min >= 0.0 && cfg->epsilon_min <= cfg->epsilon_start)) {
        return "epsilon_min must be in [0, epsilon_start]";
    }
    if (!(cfg->epsilon_decay > 0.0 && cfg->epsilon_decay <= 1.0)) {
        return "epsilon_decay must be in (0, 1]";
    }
    if (!isfinite(cfg->initial_q)) {
        return "initial_q must be finite";
    }
    return NULL;
}

qlearn_t *qlearn_create(const qlearn_config_t *cfg)
{
    if (cfg == NULL || qlearn_config_check(cfg) != NULL) {
        return NULL;
    }
    qlearn_t *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->cfg = *cfg;
    q->epsilon = cfg->epsilon_start;
    q->table = learn_table_create(cfg->initial_q);
    if (q->table == NULL) {
        free(q);
        return NULL;
    }
    return q;
}

void qlearn_destroy(qlearn_t *q)
{
    if (q == NULL) {
        return;
    }
    learn_table_destroy(q->table);
    free(q);
}

/* Checks an action set: 1..ACTION_COUNT distinct catalogue ids. */
static int actions_valid(const uint16_t *actions, size_t n)
{
    if (actions == NULL || n == 0 || n > ACTION_COUNT) {
        return 0;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (actions[i] >= ACTION_COUNT || (seen & (1ULL << actions[i]))) {
            return 0;
        }
        seen |= 1ULL << actions[i];
    }
    return 1;
}

/* Q values of `actions` in `s` into qv[], returns the maximum and the number
 * of actions reaching it in *out_ties. */
static double load_q(const qlearn_t *q, const state_t *s, const uint16_t *actions, size_t n, double *qv,
                     size_t *out_ties)
{
    const learn_table_row_t *row = learn_table_find(q->table, s->key);
    double best = -INFINITY;
    size_t ties = 0;
    for (size_t i = 0; i < n; i++) {
        qv[i] = row != NULL ? row->value[actions[i]] : q->cfg.initial_q;
        if (qv[i] > best) {
            best = qv[i];
            ties = 1;
        } else if (qv[i] == best) {
            ties++;
        }
    }
    *out_ties = ties;
    return best;
}

int qlearn_probabilities(const qlearn_t *q, const state_t *s, const uint16_t *actions, size_t n,
                         double *out_probs)
{
    if (q == NULL || s == NULL || out_probs == NULL || !actions_valid(actions, n)) {
        return -EINVAL;
    }
    double qv[ACTION_COUNT];
    size_t ties;
    double best = load_q(q, s, actions, n, qv, &ties);
    double eps = q->epsilon;
    for (size_t i = 0; i < n; i++) {
        out_probs[i] = eps / (double)n + (qv[i] == best ? (1.0 - eps) / (double)ties : 0.0);
    }
    return 0;
}

int qlearn_choose(qlearn_t *q, const state_t *s, const uint16_t *actions, size_t n, learn_rng_t *rng,
                  learn_decision_t *out)
{
    if (q == NULL || s == NULL || rng == NULL || out == NULL || !actions_valid(actions, n)) {
        return -EINVAL;
    }
    double qv[ACTION_COUNT];
    size_t ties;
    double best = load_q(q, s, actions, n, qv, &ties);
    double eps = q->epsilon;

    size_t pick;
    bool explored = learn_rng_uniform(rng) < eps;
    if (explored) {
        pick = (size_t)learn_rng_below(rng, n);
    } else {
        /* The k-th of the greedy actions, in list order. */
        size_t k = (size_t)learn_rng_below(rng, ties);
        for (pick = 0; pick < n; pick++) {
            if (qv[pick] == best && k-- == 0) {
                break;
            }
        }
    }

    const learn_action_t *a = learn_action_get(actions[pick]);
    uint64_t visits = learn_table_visits(q->table, s->key, a->id);
    learn_decision_t d = {
        .action = a->id,
        .action_name = a->name,
        .propensity = eps / (double)n + (qv[pick] == best ? (1.0 - eps) / (double)ties : 0.0),
        .score = qv[pick],
        .value = qv[pick],
        .confidence = 1.0 - 1.0 / sqrt(1.0 + (double)visits),
        .risk = a->risk,
        .expected_improvement = a->expected_improvement,
        .epsilon = eps,
        .visits = visits,
        .n_actions = n,
        .explored = explored,
    };
    *out = d;

    q->decisions++;
    if (a->type != ACTION_NO_OP) { /* changing nothing teaches nothing: no decay */
        q->epsilon = fmax(q->cfg.epsilon_min, q->epsilon * q->cfg.epsilon_decay);
    }
    return 0;
}

int qlearn_update(qlearn_t *q, const state_t *s, uint16_t action, double reward, const state_t *next,
                  const uint16_t *next_actions, size_t next_n, double *out_q)
{
    if (q == NULL || s == NULL || action >= ACTION_COUNT || !isfinite(reward)) {
        return -EINVAL;
    }
    double target = reward;
    if (next != NULL) {
        if (!actions_valid(next_actions, next_n)) {
            return -EINVAL;
        }
        double qv[ACTION_COUNT];
        size_t ties;
        target += q->cfg.discount_factor * load_q(q, next, next_actions, next_n, qv, &ties);
    }
    learn_table_row_t *row = learn_table_upsert(q->table, s->key);
    if (row == NULL) {
        return -ENOMEM;
    }
    row->value[action] += q->cfg.learning_rate * (target - row->value[action]);
    row->visits[action]++;
    row->known |= 1ULL << action;
    if (out_q != NULL) {
        *out_q = row->value[action];
    }
    return 0;
}

double qlearn_q(const qlearn_t *q, const state_t *s, uint16_t action)
{
    return learn_table_value(q->table, s->key, action);
}

uint64_t qlearn_visits(const qlearn_t *q, const state_t *s, uint16_t action)
{
    return learn_table_visits(q->table, s->key, action);
}

double qlearn_epsilon(const qlearn_t *q)
{
    return q->epsilon;
}

void qlearn_set_epsilon(qlearn_t *q, double epsilon)
{
    if (isnan(epsilon)) {
        return;
    }
    q->epsilon = fmin(1.0, fmax(q->cfg.epsilon_min, epsilon));
}

uint64_t qlearn_decisions(const qlearn_t *q)
{
    return q->decisions;
}

void qlearn_set_decisions(qlearn_t *q, uint64_t decisions)
{
    q->decisions = decisions;
}

const learn_table_t *qlearn_table(const qlearn_t *q)
{
    return q->table;
}

int qlearn_load(qlearn_t *q, const char *state_key, const char *action_name, double value, uint64_t visits)
{
    return learn_table_load(q->table, state_key, action_name, value, visits);
}
