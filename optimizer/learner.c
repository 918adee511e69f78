#include "learner.h"

#include "bdoc.h"
#include "hive_err.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_TABLE "q_table"
#define POLICY_STATE "policy_state"

struct learner_s {
    pthread_mutex_t mu;
    learn_policy_t *policy;
    learn_rng_t rng;
    char state_id[160]; /* this replica's policy_state document */
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
    snprintf(l->state_id, sizeof(l->state_id), "%s", learner_policy_name(l));
    l->updates =
        metrics_counter(m, "q_table_updates_total", "Learning updates counted (Q-table or posterior)", NULL);
    l->table_size = metrics_gauge(m, "q_table_size", "States in the learned table", NULL);
    l->epsilon = metrics_gauge(m, "epsilon_value", "Current exploration rate (Q-learning)", NULL);
    static const double reward_bounds[] = {-0.5, -0.2, -0.1, -0.05, 0, 0.05, 0.1, 0.2, 0.5};
    l->rewards = metrics_histogram(m, "reward_distribution", "Rewards fed to the learner", NULL,
                                   reward_bounds, sizeof(reward_bounds) / sizeof(reward_bounds[0]));
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

/* Called locked. */
static void update_gauges(learner_t *l)
{
    metric_set(l->table_size, (double)learn_policy_table_size(l->policy));
    metric_set(l->epsilon, learn_policy_epsilon(l->policy));
}

/* ---- the q_table document ------------------------------------------------ */

bson_t *learner_entry_to_bson(const learn_policy_entry_t *e, double reward, const char *result_id)
{
    bson_t *doc =
        BCON_NEW("state_key", BCON_UTF8(e->state_key), "action", BCON_UTF8(e->action_name), "value",
                 BCON_DOUBLE(e->value), "visits", BCON_INT64((int64_t)e->visits), "reward",
                 BCON_DOUBLE(reward), "result_id", BCON_UTF8(result_id), "improvement",
                 BCON_DOUBLE(e->improvement), "improvement_n", BCON_INT64((int64_t)e->improvement_n));
    if (doc && e->has_model &&
        (!BSON_APPEND_UTF8(doc, "model", "linucb") ||
         bdoc_append_doubles(doc, "A", e->A, BANDIT_DIM * BANDIT_DIM) != 0 ||
         bdoc_append_doubles(doc, "b", e->b, BANDIT_DIM) != 0 ||
         !BSON_APPEND_INT64(doc, "n", (int64_t)e->n))) {
        bson_destroy(doc);
        return NULL;
    }
    return doc;
}

int learner_entry_from_bson(const bson_t *doc, learn_policy_entry_t *out)
{
    const char *state_key = bdoc_str(doc, "state_key"), *action = bdoc_str(doc, "action");
    uint16_t id;
    if (!state_key || !action || strlen(state_key) >= sizeof(out->state_key) ||
        learn_action_find(action, &id) != 0) {
        return -1;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->state_key, state_key, strlen(state_key) + 1);
    out->action_name = learn_action_get(id)->name;
    out->value = bdoc_num(doc, "value");
    out->visits = (uint64_t)bdoc_num(doc, "visits");
    out->has_model = bdoc_str(doc, "model") && bdoc_doubles(doc, "A", out->A, BANDIT_DIM * BANDIT_DIM) == 0 &&
                     bdoc_doubles(doc, "b", out->b, BANDIT_DIM) == 0;
    out->n = out->has_model ? (uint64_t)bdoc_num(doc, "n") : 0;
    double improvement = bdoc_num(doc, "improvement"), improvement_n = bdoc_num(doc, "improvement_n");
    if (isfinite(improvement) && improvement_n >= 1) {
        out->improvement = improvement;
        out->improvement_n = (uint64_t)improvement_n;
    }
    return 0;
}

bool learner_save_due(uint64_t decisions)
{
    return decisions % 32 == 1;
}

/* ---- restore ------------------------------------------------------------- */

static int count_one(void *arg, const bson_t *doc)
{
    (void)doc;
    ++*(int *)arg;
    return 1; /* one is enough */
}

/* Documents come sorted by revision, so the last one imported wins. An entry
 * the policy cannot take (another policy's, an action gone from the
 * catalogue) is skipped. Called locked. */
static int restore_one(void *arg, const bson_t *doc)
{
    learner_t *l = arg;
    learn_policy_entry_t e;
    if (learner_entry_from_bson(doc, &e) == 0) {
        learn_policy_import(l->policy, &e);
    }
    return 0;
}

int learner_restore(learner_t *l, store_t *s)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("sort", "{", "revision", BCON_INT32(1), "}");
    pthread_mutex_lock(&l->mu);
    int rc = store_find(s, Q_TABLE, &filter, opts, restore_one, l);
    if (rc == 0) {
        bson_t *state = NULL;
        if (store_find_one(s, POLICY_STATE, l->state_id, &state) == 0 ||
            store_find_one(s, POLICY_STATE, learner_policy_name(l), &state) == 0) {
            learn_policy_set_epsilon(l->policy, bdoc_num(state, "epsilon"));
            bson_destroy(state);
        }
        update_gauges(l);
    }
    pthread_mutex_unlock(&l->mu);
    bson_destroy(&filter);
    bson_destroy(opts);
    return rc == HIVE_ENOTFOUND ? 0 : rc;
}

/* ---- decide and learn ---------------------------------------------------- */

/* ---- the shared table ---------------------------------------------------- */

typedef struct {
    learner_t *l;
    char last[STATE_KEY_MAX + 80];
} refresh_t;

/* Documents come sorted by key, then newest revision first: the first of
 * each key is its latest. */
static int refresh_one(void *arg, const bson_t *doc)
{
    refresh_t *r = arg;
    const char *key = bdoc_str(doc, "key");
    if (!key || strcmp(key, r->last) == 0) {
        return 0;
    }
    snprintf(r->last, sizeof(r->last), "%s", key);
    learn_policy_entry_t e;
    if (learner_entry_from_bson(doc, &e) == 0) {
        pthread_mutex_lock(&r->l->mu);
        learn_policy_import(r->l->policy, &e);
        pthread_mutex_unlock(&r->l->mu);
    }
    return 0;
}

int learner_refresh_many(learner_t *l, store_t *store, const state_t *states, size_t n)
{
    uint16_t actions[ACTION_COUNT];
    bson_t filter = BSON_INITIALIZER, in, keys;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "key", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &keys);
    size_t nkeys = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t j = 0; j < n; j++) {
        size_t na = learn_policy_actions(l->policy, &states[j], actions);
        for (size_t i = 0; i < na; i++) {
            char key[STATE_KEY_MAX + 80], idx[24];
            if (learn_policy_entry_key(l->policy, &states[j], actions[i], key, sizeof(key)) == 0) {
                snprintf(idx, sizeof(idx), "%zu", nkeys++);
                BSON_APPEND_UTF8(&keys, idx, key);
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
    bson_append_array_end(&in, &keys);
    bson_append_document_end(&filter, &in);
    int rc = 0;
    if (nkeys > 0) {
        bson_t *opts = BCON_NEW("sort", "{", "key", BCON_INT32(1), "revision", BCON_INT32(-1), "}");
        refresh_t r = {.l = l};
        rc = store_find(store, Q_TABLE, &filter, opts, refresh_one, &r);
        bson_destroy(opts);
    }
    bson_destroy(&filter);
    pthread_mutex_lock(&l->mu);
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
    return rc == HIVE_ENOTFOUND ? 0 : rc;
}

int learner_refresh(learner_t *l, store_t *store, const state_t *s)
{
    return learner_refresh_many(l, store, s, 1);
}

int learner_choose(learner_t *l, const state_t *s, learn_decision_t *out, bool *out_save_due)
{
    pthread_mutex_lock(&l->mu);
    int rc = learn_policy_choose(l->policy, s, &l->rng, out);
    uint64_t decisions = learn_policy_decisions(l->policy);
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
    *out_save_due = rc == 0 && learner_save_due(decisions);
    return rc;
}

int learner_save_state(learner_t *l, store_t *store)
{
    pthread_mutex_lock(&l->mu);
    double epsilon = learn_policy_epsilon(l->policy);
    uint64_t decisions = learn_policy_decisions(l->policy);
    pthread_mutex_unlock(&l->mu);
    bson_t *doc = BCON_NEW("policy", BCON_UTF8(learner_policy_name(l)), "epsilon", BCON_DOUBLE(epsilon),
                           "decisions", BCON_INT64((int64_t)decisions));
    if (doc && !BSON_APPEND_UTF8(doc, "replica", l->state_id)) {
        bson_destroy(doc);
        doc = NULL;
    }
    int rc = doc ? store_upsert(store, POLICY_STATE, l->state_id, doc) : HIVE_ENOMEM;
    bson_destroy(doc);
    return rc;
}

void learner_set_replica(learner_t *l, const char *replica)
{
    pthread_mutex_lock(&l->mu);
    if (replica && *replica) {
        snprintf(l->state_id, sizeof(l->state_id), "%s|%s", learner_policy_name(l), replica);
    } else {
        snprintf(l->state_id, sizeof(l->state_id), "%s", learner_policy_name(l));
    }
    pthread_mutex_unlock(&l->mu);
}

void learner_mark(learner_t *l, learner_mark_t *out)
{
    pthread_mutex_lock(&l->mu);
    out->epsilon = learn_policy_epsilon(l->policy);
    out->decisions = learn_policy_decisions(l->policy);
    out->rng = l->rng;
    pthread_mutex_unlock(&l->mu);
}

void learner_rewind(learner_t *l, const learner_mark_t *m)
{
    pthread_mutex_lock(&l->mu);
    learn_policy_set_epsilon(l->policy, m->epsilon);
    learn_policy_set_decisions(l->policy, m->decisions);
    l->rng = m->rng;
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
}

int learner_decide(learner_t *l, store_t *store, const state_t *s, learn_decision_t *out)
{
    /* Another replica may have learned since: choose from the shared table. */
    int rc = learner_refresh(l, store, s);
    bool save = false;
    if (rc == 0) {
        rc = learner_choose(l, s, out, &save);
    }
    return rc == 0 && save ? learner_save_state(l, store) : rc;
}

int learner_apply(learner_t *l, const learner_result_t *r, const bson_t *latest,
                  learn_policy_entry_t *out_before, learn_policy_entry_t *out_after)
{
    learn_policy_entry_t stored;
    bool has_stored = latest && learner_entry_from_bson(latest, &stored) == 0;
    pthread_mutex_lock(&l->mu);
    int rc = learn_policy_export(l->policy, r->state, r->action, out_before);
    /* Start from what MongoDB holds: the latest revision, or the prior when
     * it holds none (a reward applied in memory by an earlier attempt whose
     * save failed must not be applied again). */
    if (rc == 0) {
        rc = has_stored ? learn_policy_import(l->policy, &stored)
                        : learn_policy_reset(l->policy, r->state, r->action);
    }
    if (rc == 0) {
        rc = learn_policy_update_next(l->policy, r->state, r->action, r->reward, r->next);
    }
    if (rc == 0) {
        rc = learn_policy_observe(l->policy, r->state, r->action, r->success, r->improvement);
    }
    if (rc == 0) {
        rc = learn_policy_export(l->policy, r->state, r->action, out_after);
    }
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
    return rc == 0 ? 0 : HIVE_EINVAL;
}

void learner_restore_entry(learner_t *l, const learn_policy_entry_t *e)
{
    pthread_mutex_lock(&l->mu);
    learn_policy_import(l->policy, e);
    update_gauges(l);
    pthread_mutex_unlock(&l->mu);
}

int learner_learn(learner_t *l, store_t *store, const learner_result_t *r, bool *out_counted)
{
    *out_counted = false;
    char key[STATE_KEY_MAX + 80];
    if (learn_policy_entry_key(l->policy, r->state, r->action, key, sizeof(key)) != 0) {
        return HIVE_EINVAL;
    }

    /* Counted already (a replay, or another replica)? */
    bson_t *seen = BCON_NEW("key", BCON_UTF8(key), "result_id", BCON_UTF8(r->experiment_id));
    bson_t *one = BCON_NEW("limit", BCON_INT64(1));
    int found = 0;
    int rc = store_find(store, Q_TABLE, seen, one, count_one, &found);
    bson_destroy(seen);
    bson_destroy(one);
    if (rc > 0 || rc == HIVE_ENOTFOUND) {
        rc = 0; /* > 0: count_one stopped at the first document */
    }
    if (rc != 0 || found) {
        return rc;
    }

    /* Start from the latest stored revision, not from this replica's memory. */
    bson_t *latest = NULL;
    int64_t revision = 0;
    rc = store_find_latest(store, Q_TABLE, key, &latest, &revision);
    if (rc != 0 && rc != HIVE_ENOTFOUND) {
        return rc;
    }
    learn_policy_entry_t before, after;
    if (r->next) {
        rc = learner_refresh(l, store, r->next); /* max Q(s', .) from the shared table */
        if (rc != 0) {
            bson_destroy(latest);
            return rc;
        }
    }
    rc = learner_apply(l, r, latest, &before, &after);
    bson_destroy(latest);
    if (rc != 0) {
        return rc;
    }
    bson_t *doc = learner_entry_to_bson(&after, r->reward, r->experiment_id);
    rc = doc ? store_cas_revision(store, Q_TABLE, key, revision, doc, NULL) : HIVE_ENOMEM;
    bson_destroy(doc);
    if (rc != 0) {
        learner_restore_entry(l, &before); /* the update is not saved: neither is it learned */
        return rc;
    }
    *out_counted = true;
    metric_add(l->updates, 1);
    metric_observe(l->rewards, r->reward);
    return 0;
}

double learner_reward(learner_t *l, uint16_t action, bool success, double improvement)
{
    pthread_mutex_lock(&l->mu);
    double r = learn_policy_reward(l->policy, action, success, improvement);
    pthread_mutex_unlock(&l->mu);
    return r;
}

double learner_epsilon(learner_t *l)
{
    pthread_mutex_lock(&l->mu);
    double e = learn_policy_epsilon(l->policy);
    pthread_mutex_unlock(&l->mu);
    return e;
}

size_t learner_table_size(learner_t *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = learn_policy_table_size(l->policy);
    pthread_mutex_unlock(&l->mu);
    return n;
}

const char *learner_policy_name(learner_t *l)
{
    return learn_policy_kind_name(learn_policy_kind(l->policy));
}

int learner_evaluate(learner_t *l, const learn_ope_record_t *log, size_t n,
                     learn_ope_result_t out[LEARN_EVAL_COUNT])
{
    learn_rng_t rng;
    learn_rng_seed(&rng, 1); /* a fixed stream: the same log and tables give the same estimates */
    pthread_mutex_lock(&l->mu);
    int rc = learn_policy_evaluate(l->policy, log, n, &rng, out);
    pthread_mutex_unlock(&l->mu);
    return rc;
}
