#include "learner.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct learner_s {
    pthread_mutex_t mu;
    learn_policy_t *policy;
    learn_rng_t rng;
    metric_t *updates, *table_size, *epsilon, *rewards;
};

learner_t *learner_create(const learn_policy_config_t *cfg, uint64_t seed, metrics_t *m)
{
    learner_t *l = calloc(1, sizeof(*l));
    if (!l) {
        return NULL;
    }
    l->policy = learn_policy_create(cfg);
    if (!l->policy) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    learn_rng_seed(&l->rng, seed);
    l->updates = metrics_counter(m, "q_table_updates_total", "Learning updates counted (Q-table or posterior)", NULL);
    l->table_size = metrics_gauge(m, "q_table_size", "States in the learned table", NULL);
    l->epsilon = metrics_gauge(m, "epsilon_value", "Current exploration rate (Q-learning)", NULL);
    static const double reward_bounds[] = {-0.5, -0.2, -0.1, -0.05, 0, 0.05, 0.1, 0.2, 0.5};
    l->rewards = metrics_histogram(m, "reward_distribution", "Rewards fed to the learner", NULL, reward_bounds,
                                   sizeof(reward_bounds) / sizeof(reward_bounds[0]));
    return l;
}

void learner_destroy(learner_t *l)
{
    if (!l) {
        return;
    }
    learn_policy_destroy(l->policy);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* The table behind the policy, or NULL (LinUCB keeps per-action models). */
static const learn_table_t *policy_table(learner_t *l)
{
    qlearn_t *q = learn_policy_qlearn(l->policy);
    if (q) {
        return qlearn_table(q);
    }
    bandit_t *b = learn_policy_bandit(l->policy);
    return b && bandit_kind(b) == BANDIT_THOMPSON ? bandit_table(b) : NULL;
}

/* Called locked. */
static void update_gauges(learner_t *l)
{
    const learn_table_t *t = policy_table(l);
    metric_set(l->table_size, t ? (double)learn_table_state_count(t) : 0);
    qlearn_t *q = learn_policy_qlearn(l->policy);
    metric_set(l->epsilon, q ? qlearn_epsilon(q) : 0);
}

/* Loads one entry into the policy. Called locked. */
static int load_entry(learner_t *l, const char *state_key, const char *action, double value, uint64_t visits)
{
    qlearn_t *q = learn_policy_qlearn(l->policy);
    if (q) {
        return qlearn_load(q, state_key, action, value, visits);
    }
    bandit_t *b = learn_policy_bandit(l->policy);
    return b ? bandit_load(b, state_key, action, value, visits) : -1;
}

static const char *doc_str(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
}

static double doc_num(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_double(&it) : 0.0;
}

static int restore_one_count(void *arg, const bson_t *doc)
{
    (void)doc;
    ++*(int *)arg;
    return 1; /* one is enough */
}

/* LinUCB keeps one model per action (shared by every state). */
static bool is_linucb(learner_t *l)
{
    bandit_t *b = learn_policy_bandit(l->policy);
    return b && bandit_kind(b) == BANDIT_LINUCB;
}

static void append_doubles(bson_t *doc, const char *key, const double *v, size_t n)
{
    bson_t arr;
    bson_append_array_begin(doc, key, -1, &arr);
    for (size_t i = 0; i < n; i++) {
        char k[16];
        const char *kp;
        bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
        bson_append_double(&arr, kp, -1, v[i]);
    }
    bson_append_array_end(doc, &arr);
}

/* Reads exactly `n` numbers from the array `key`. Returns 0 or -1. */
static int read_doubles(const bson_t *doc, const char *key, double *out, size_t n)
{
    bson_iter_t it, child;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &child)) {
        return -1;
    }
    size_t i = 0;
    while (bson_iter_next(&child)) {
        if (i == n || !BSON_ITER_HOLDS_NUMBER(&child)) {
            return -1;
        }
        out[i++] = bson_iter_as_double(&child);
    }
    return i == n ? 0 : -1;
}

/* Loads a stored LinUCB model document. Called locked. */
static int load_linucb(learner_t *l, const bson_t *doc)
{
    uint16_t id;
    const char *action = doc_str(doc, "action");
    double A[BANDIT_DIM * BANDIT_DIM], bvec[BANDIT_DIM];
    if (!action || learn_action_find(action, &id) != 0 || read_doubles(doc, "A", A, BANDIT_DIM * BANDIT_DIM) != 0 ||
        read_doubles(doc, "b", bvec, BANDIT_DIM) != 0) {
        return -1;
    }
    return bandit_linucb_load(learn_policy_bandit(l->policy), id, A, bvec, (uint64_t)doc_num(doc, "n"));
}

/* Keeps, per key, the document with the highest revision seen so far. */
typedef struct {
    learner_t *l;
    int loaded;
} restore_t;

static int restore_one(void *arg, const bson_t *doc)
{
    restore_t *r = arg;
    const char *state_key = doc_str(doc, "state_key"), *action = doc_str(doc, "action");
    if (is_linucb(r->l)) {
        if (doc_str(doc, "model") && load_linucb(r->l, doc) == 0) {
            r->loaded++;
        }
    } else if (state_key && action) {
        /* Documents come sorted by revision, so the last one loaded wins. */
        if (load_entry(r->l, state_key, action, doc_num(doc, "value"), (uint64_t)doc_num(doc, "visits")) == 0) {
            r->loaded++;
        }
    }
    return 0;
}

int learner_restore(learner_t *l, store_t *s)
{
    restore_t r = {l, 0};
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("sort", "{", "revision", BCON_INT32(1), "}");
    pthread_mutex_lock(&l->mu);
    int rc = store_find(s, "q_table", &filter, opts, restore_one, &r);
    if (rc == 0) {
        bson_t *state = NULL;
        if (store_find_one(s, "policy_state", learner_policy_name(l), &state) == 0) {
            qlearn_t *q = learn_policy_qlearn(l->policy);
            if (q) {
                qlearn_set_epsilon(q, doc_num(state, "epsilon"));
            }
            bson_destroy(state);
        }
        update_gauges(l);
    }
    pthread_mutex_unlock(&l->mu);
    bson_destroy(&filter);
    bson_destroy(opts);
    return rc == STORE_ENOTFOUND ? 0 : rc;
}

int learner_decide(learner_t *l, store_t *store, const state_t *s, learn_decision_t *out)
{
    pthread_mutex_lock(&l->mu);
    int rc = learn_policy_choose(l->policy, s, &l->rng, out);
    qlearn_t *q = learn_policy_qlearn(l->policy);
    double epsilon = q ? qlearn_epsilon(q) : 0;
    uint64_t decisions = q ? qlearn_decisions(q) : 0;
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
    if (rc != 0) {
        return rc;
    }
    /* Epsilon moves a little per decision: saving it every 32nd decision
     * costs a restart at most 32 decay steps and saves a write per insight. */
    if (decisions % 32 != 1) {
        return 0;
    }
    bson_t *doc = BCON_NEW("policy", BCON_UTF8(learner_policy_name(l)), "epsilon", BCON_DOUBLE(epsilon),
                           "decisions", BCON_INT64((int64_t)decisions));
    rc = store_upsert(store, "policy_state", learner_policy_name(l), doc);
    bson_destroy(doc);
    return rc;
}

int learner_learn(learner_t *l, store_t *store, const state_t *s, uint16_t action, double reward,
                  const char *experiment_id, bool *out_counted)
{
    *out_counted = false;
    const learn_action_t *a = learn_action_get(action);
    if (!a) {
        return STORE_EINVALID;
    }
    char key[STATE_KEY_MAX + 80];
    bool linucb = is_linucb(l);
    if (linucb) {
        snprintf(key, sizeof(key), "linucb|%s", a->name);
    } else {
        snprintf(key, sizeof(key), "%s|%s", s->key, a->name);
    }

    /* Counted already (a replay, or another replica)? */
    bson_t *seen = BCON_NEW("key", BCON_UTF8(key), "result_id", BCON_UTF8(experiment_id));
    bson_t *one = BCON_NEW("limit", BCON_INT64(1));
    int found = 0;
    int rc = store_find(store, "q_table", seen, one, restore_one_count, &found);
    bson_destroy(seen);
    bson_destroy(one);
    if (rc != 0 || found) {
        return rc == STORE_ENOTFOUND ? 0 : rc;
    }

    /* Start from the latest stored revision, not from this replica's memory. */
    bson_t *latest = NULL;
    int64_t revision = 0;
    rc = store_find_latest(store, "q_table", key, &latest, &revision);
    if (rc != 0 && rc != STORE_ENOTFOUND) {
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    if (latest && linucb) {
        load_linucb(l, latest);
    } else if (latest) {
        load_entry(l, s->key, a->name, doc_num(latest, "value"), (uint64_t)doc_num(latest, "visits"));
    }
    rc = learn_policy_update(l->policy, s, action, reward);
    const learn_table_t *t = policy_table(l);
    double value = t ? learn_table_value(t, s->key, action) : reward;
    uint64_t visits = t ? learn_table_visits(t, s->key, action) : 0;
    double A[BANDIT_DIM * BANDIT_DIM], bvec[BANDIT_DIM];
    uint64_t n = 0;
    if (rc == 0 && linucb) {
        rc = bandit_linucb_model(learn_policy_bandit(l->policy), action, A, NULL, bvec, &n);
    }
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
    bson_destroy(latest);
    if (rc != 0) {
        return STORE_EINVALID;
    }
    bson_t *doc = BCON_NEW("state_key", BCON_UTF8(s->key), "action", BCON_UTF8(a->name), "value",
                           BCON_DOUBLE(value), "visits", BCON_INT64((int64_t)visits), "reward", BCON_DOUBLE(reward),
                           "result_id", BCON_UTF8(experiment_id));
    if (linucb) {
        BSON_APPEND_UTF8(doc, "model", "linucb");
        append_doubles(doc, "A", A, BANDIT_DIM * BANDIT_DIM);
        append_doubles(doc, "b", bvec, BANDIT_DIM);
        BSON_APPEND_INT64(doc, "n", (int64_t)n);
    }
    rc = store_cas_revision(store, "q_table", key, revision, doc, NULL);
    bson_destroy(doc);
    if (rc == 0) {
        *out_counted = true;
        metric_add(l->updates, 1);
        metric_observe(l->rewards, reward);
    }
    return rc;
}

double learner_reward(learner_t *l, uint16_t action, double improvement)
{
    pthread_mutex_lock(&l->mu);
    double r = learn_policy_reward(l->policy, action, improvement);
    pthread_mutex_unlock(&l->mu);
    return r;
}

double learner_epsilon(learner_t *l)
{
    pthread_mutex_lock(&l->mu);
    qlearn_t *q = learn_policy_qlearn(l->policy);
    double e = q ? qlearn_epsilon(q) : 0;
    pthread_mutex_unlock(&l->mu);
    return e;
}

size_t learner_table_size(learner_t *l)
{
    pthread_mutex_lock(&l->mu);
    const learn_table_t *t = policy_table(l);
    size_t n = t ? learn_table_state_count(t) : 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}

const char *learner_policy_name(learner_t *l)
{
    return learn_policy_kind_name(learn_policy_kind(l->policy));
}
