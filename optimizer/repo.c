#include "repo.h"

#include "bdoc.h"
#include "hive_err.h"
#include "learn_action.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hypothesis <-> BSON ------------------------------------------------------ */

static bson_t *hyp_to_bson(const hypothesis_t *h)
{
    bson_t *d = bson_new();
    BSON_APPEND_UTF8(d, "insight_id", h->insight_id);
    BSON_APPEND_UTF8(d, "component", h->component);
    BSON_APPEND_UTF8(d, "problem", h->problem);
    BSON_APPEND_UTF8(d, "state_key", h->state_key);
    BSON_APPEND_UTF8(d, "action", h->action);
    BSON_APPEND_UTF8(d, "type", h->type);
    BSON_APPEND_UTF8(d, "policy", h->policy);
    BSON_APPEND_UTF8(d, "status", hyp_status_name(h->status));
    BSON_APPEND_DOUBLE(d, "q_value", h->q_value);
    BSON_APPEND_DOUBLE(d, "confidence", h->confidence);
    BSON_APPEND_DOUBLE(d, "risk", h->risk);
    BSON_APPEND_DOUBLE(d, "expected_improvement", h->expected_improvement);
    BSON_APPEND_DOUBLE(d, "propensity", h->propensity);
    BSON_APPEND_UTF8(d, "experiment_id", h->experiment_id);
    BSON_APPEND_BOOL(d, "has_result", h->has_result);
    BSON_APPEND_DOUBLE(d, "improvement", h->improvement);
    BSON_APPEND_DOUBLE(d, "reward", h->reward);
    BSON_APPEND_UTF8(d, "reason", h->reason);
    BSON_APPEND_UTF8(d, "rationale", h->rationale);
    BSON_APPEND_INT64(d, "created_at_ms", h->created_at_ms);
    BSON_APPEND_INT64(d, "updated_at_ms", h->updated_at_ms);
    BSON_APPEND_INT64(d, "open_timeout_ms", h->open_timeout_ms);
    BSON_APPEND_INT64(d, "expires_at_ms", h->expires_at_ms);
    return d;
}

static int hyp_from_bson(const bson_t *d, hypothesis_t *h)
{
    memset(h, 0, sizeof(*h));
    char status[32];
    BDOC_COPY_STR(d, "_id", h->id);
    BDOC_COPY_STR(d, "status", status);
    if (!h->id[0] || hyp_status_parse(status, &h->status) != 0) {
        return HIVE_EINVAL;
    }
    BDOC_COPY_STR(d, "insight_id", h->insight_id);
    BDOC_COPY_STR(d, "component", h->component);
    BDOC_COPY_STR(d, "problem", h->problem);
    BDOC_COPY_STR(d, "state_key", h->state_key);
    BDOC_COPY_STR(d, "action", h->action);
    BDOC_COPY_STR(d, "type", h->type);
    BDOC_COPY_STR(d, "policy", h->policy);
    BDOC_COPY_STR(d, "experiment_id", h->experiment_id);
    BDOC_COPY_STR(d, "reason", h->reason);
    BDOC_COPY_STR(d, "rationale", h->rationale);
    h->q_value = bdoc_num(d, "q_value");
    h->confidence = bdoc_num(d, "confidence");
    h->risk = bdoc_num(d, "risk");
    h->expected_improvement = bdoc_num(d, "expected_improvement");
    h->propensity = bdoc_num(d, "propensity");
    h->improvement = bdoc_num(d, "improvement");
    h->reward = bdoc_num(d, "reward");
    h->created_at_ms = (int64_t)bdoc_num(d, "created_at_ms");
    h->updated_at_ms = (int64_t)bdoc_num(d, "updated_at_ms");
    double timeout = bdoc_num(d, "open_timeout_ms"), expires = bdoc_num(d, "expires_at_ms");
    h->open_timeout_ms = isfinite(timeout) ? (int64_t)timeout : 0;
    h->expires_at_ms = isfinite(expires) ? (int64_t)expires : 0;
    h->has_result = bdoc_bool(d, "has_result");
    return 0;
}

/* ---- hypotheses ------------------------------------------------------------------ */

const store_index_t repo_indexes[] = {
    {REPO_OPTIMIZATIONS, "{\"experiment_id\": 1}", false},
    {REPO_OPTIMIZATIONS, "{\"component\": 1, \"status\": 1}", false},
    {REPO_OPTIMIZATIONS, "{\"status\": 1, \"expires_at_ms\": 1}", false},
    {REPO_Q_TABLE, "{\"key\": 1, \"revision\": -1}", false},
    {"telemetry_observations", "{\"service\": 1, \"window_end\": -1}", false},
    {REPO_Q_TABLE, "{\"key\": 1, \"result_id\": 1}", false},
};
const size_t repo_indexes_count = sizeof(repo_indexes) / sizeof(repo_indexes[0]);

int repo_hyp_get(store_t *s, const char *id, hypothesis_t *out)
{
    bson_t *doc = NULL;
    int rc = store_find_one(s, REPO_OPTIMIZATIONS, id, &doc);
    if (rc == 0) {
        rc = hyp_from_bson(doc, out);
        bson_destroy(doc);
    }
    return rc;
}

int repo_hyp_put(store_t *s, const hypothesis_t *h)
{
    bson_t *doc = hyp_to_bson(h);
    int rc = store_upsert(s, REPO_OPTIMIZATIONS, h->id, doc);
    bson_destroy(doc);
    return rc;
}

typedef struct {
    hypothesis_t *items;
    size_t n, cap, total, skip, limit;
    int rc;
} collect_t;

static int collect_one(void *arg, const bson_t *doc)
{
    collect_t *c = arg;
    size_t index = c->total++;
    if (index < c->skip || c->n >= c->limit) {
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        hypothesis_t *p = realloc(c->items, cap * sizeof(*p));
        if (!p) {
            c->rc = HIVE_ENOMEM;
            return 1;
        }
        c->items = p;
        c->cap = cap;
    }
    if (hyp_from_bson(doc, &c->items[c->n]) == 0) {
        c->n++;
    }
    return 0;
}

int repo_hyp_by_experiment(store_t *s, const char *experiment_id, hypothesis_t *out)
{
    bson_t *filter = BCON_NEW("experiment_id", BCON_UTF8(experiment_id));
    collect_t c = {.limit = 1};
    int rc = store_find(s, REPO_OPTIMIZATIONS, filter, NULL, collect_one, &c);
    bson_destroy(filter);
    if (rc == 0) {
        rc = c.rc ? c.rc : (c.n ? 0 : HIVE_ENOTFOUND);
    }
    if (rc == 0) {
        *out = c.items[0];
    }
    free(c.items);
    return rc;
}

/* ---- batches -------------------------------------------------------------------- */

/* Where each document of a $in read goes: the slot of its _id among ids[]. */
typedef struct {
    const char *const *ids;
    size_t n;
    void *out;
    bool *found;
} by_id_t;

static size_t slot_of(const by_id_t *b, const char *id, size_t from)
{
    for (size_t i = from; i < b->n; i++) {
        if (b->ids[i] && strcmp(b->ids[i], id) == 0) {
            return i;
        }
    }
    return b->n;
}

/* Appends {name: {$in: [values...]}} over the non-NULL values; returns how many. */
static size_t append_in(bson_t *parent, const char *name, const char *const *values, size_t n)
{
    bson_t child, in;
    char idx[16];
    const char *key;
    size_t m = 0;
    BSON_APPEND_DOCUMENT_BEGIN(parent, name, &child);
    BSON_APPEND_ARRAY_BEGIN(&child, "$in", &in);
    for (size_t i = 0; i < n; i++) {
        if (values[i]) {
            bson_uint32_to_string((uint32_t)m++, &key, idx, sizeof(idx));
            bson_append_utf8(&in, key, -1, values[i], -1);
        }
    }
    bson_append_array_end(&child, &in);
    bson_append_document_end(parent, &child);
    return m;
}

typedef struct {
    by_id_t by_id;
    const char *const *components, *const *problems;
    bool *open;
} lookup_t;

static int lookup_one(void *arg, const bson_t *doc)
{
    lookup_t *l = arg;
    hypothesis_t h;
    if (hyp_from_bson(doc, &h) != 0) {
        return 0; /* unreadable: as if missing */
    }
    /* The same id may be asked for more than once: fill every slot. */
    hypothesis_t *out = l->by_id.out;
    for (size_t i = slot_of(&l->by_id, h.id, 0); i < l->by_id.n; i = slot_of(&l->by_id, h.id, i + 1)) {
        out[i] = h;
        l->by_id.found[i] = true;
    }
    for (size_t i = 0; hyp_is_open(&h) && i < l->by_id.n; i++) {
        if (l->components[i] && !strcmp(l->components[i], h.component) &&
            !strcmp(l->problems[i], h.problem)) {
            l->open[i] = true;
        }
    }
    return 0;
}

int repo_hyp_lookup_many(store_t *s, const char *const *ids, const char *const *components,
                         const char *const *problems, size_t n, hypothesis_t *out, bool *out_found,
                         bool *out_open)
{
    static const char *const open[] = {"PROPOSED", "AWAITING_APPROVAL", "EXPERIMENTING", "APPROVED"};
    for (size_t i = 0; i < n; i++) {
        out_found[i] = out_open[i] = false;
    }
    /* {$or: [{_id: {$in: ids}}, {component: {$in: components}, status: {$in: open}}]} */
    bson_t filter = BSON_INITIALIZER, or, by_id, by_component;
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &by_id);
    size_t m = append_in(&by_id, "_id", ids, n);
    bson_append_document_end(& or, &by_id);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &by_component);
    m += append_in(&by_component, "component", components, n);
    append_in(&by_component, "status", open, sizeof(open) / sizeof(open[0]));
    bson_append_document_end(& or, &by_component);
    bson_append_array_end(&filter, & or);
    lookup_t l = {{ids, n, out, out_found}, components, problems, out_open};
    int rc = m ? store_find(s, REPO_OPTIMIZATIONS, &filter, NULL, lookup_one, &l) : 0;
    bson_destroy(&filter);
    return rc;
}

int repo_hyp_insert_many(store_t *s, const hypothesis_t *const *hs, size_t n, store_result_t *out)
{
    store_doc_t *docs = calloc(n ? n : 1, sizeof(*docs));
    if (!docs) {
        return HIVE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        docs[i] = (store_doc_t){hs[i]->id, hyp_to_bson(hs[i])};
    }
    int rc = store_bulk_insert_once(s, REPO_OPTIMIZATIONS, docs, n, out);
    for (size_t i = 0; i < n; i++) {
        bson_destroy((bson_t *)docs[i].doc);
    }
    free(docs);
    return rc;
}

int repo_hyp_list(store_t *s, const repo_filter_t *f, hypothesis_t **out, size_t *out_n, size_t *out_total)
{
    bson_t filter = BSON_INITIALIZER;
    if (f->type && *f->type) {
        BSON_APPEND_UTF8(&filter, "type", f->type);
    }
    if (f->component && *f->component) {
        BSON_APPEND_UTF8(&filter, "component", f->component);
    }
    if (f->status && *f->status) {
        BSON_APPEND_UTF8(&filter, "status", f->status);
    }
    bson_t *opts = BCON_NEW("sort", "{", "created_at_ms", BCON_INT32(-1), "_id", BCON_INT32(1), "}");
    size_t limit = f->limit == 0 ? 50 : (f->limit > 500 ? 500 : f->limit);
    collect_t c = {.skip = f->offset, .limit = limit};
    int rc = store_find(s, REPO_OPTIMIZATIONS, &filter, opts, collect_one, &c);
    bson_destroy(&filter);
    bson_destroy(opts);
    if (c.rc) {
        rc = c.rc;
    }
    if (rc != 0) {
        free(c.items);
        return rc;
    }
    *out = c.items;
    *out_n = c.n;
    *out_total = c.total;
    return 0;
}

static int stats_one(void *arg, const bson_t *doc)
{
    repo_stats_t *st = arg;
    hypothesis_t h;
    if (hyp_from_bson(doc, &h) != 0) {
        return 0;
    }
    st->total++;
    st->by_status[h.status]++;
    size_t i = 0;
    while (i < st->by_type_count && strcmp(st->by_type[i].type, h.type) != 0) {
        i++;
    }
    if (i == st->by_type_count && i < sizeof(st->by_type) / sizeof(st->by_type[0])) {
        snprintf(st->by_type[i].type, sizeof(st->by_type[i].type), "%s", h.type);
        st->by_type_count++;
    }
    if (i < st->by_type_count) {
        st->by_type[i].n++;
    }
    if (h.has_result) {
        st->with_result++;
        st->average_improvement += h.improvement; /* a sum until the end */
        if (h.status == HYP_APPROVED || h.status == HYP_APPLIED || h.status == HYP_ROLLED_BACK) {
            st->succeeded++;
        }
    }
    if (h.status == HYP_ROLLED_BACK) {
        st->rollbacks++;
    }
    if (h.status == HYP_FAILED) {
        st->application_failures++;
    }
    if (h.status == HYP_EXPIRED) {
        st->expired++;
    }
    return 0;
}

int repo_hyp_stats(store_t *s, repo_stats_t *out)
{
    repo_stats_t st;
    memset(&st, 0, sizeof(st));
    bson_t filter = BSON_INITIALIZER;
    int rc = store_find(s, REPO_OPTIMIZATIONS, &filter, NULL, stats_one, &st);
    bson_destroy(&filter);
    if (rc != 0) {
        return rc;
    }
    if (st.with_result) {
        st.success_rate = (double)st.succeeded / (double)st.with_result;
        st.average_improvement /= (double)st.with_result;
    }
    *out = st;
    return 0;
}

int repo_hyp_list_expired(store_t *s, int64_t now_ms, size_t limit, hypothesis_t **out, size_t *out_n)
{
    bson_t *filter = BCON_NEW("status", "{", "$in", "[", BCON_UTF8(hyp_status_name(HYP_AWAITING_APPROVAL)),
                              BCON_UTF8(hyp_status_name(HYP_EXPERIMENTING)), "]", "}", "expires_at_ms", "{",
                              "$gt", BCON_INT64(0), "$lte", BCON_INT64(now_ms), "}");
    bson_t *opts = BCON_NEW("sort", "{", "expires_at_ms", BCON_INT32(1), "}");
    collect_t c = {.limit = limit ? limit : 100};
    int rc = store_find(s, REPO_OPTIMIZATIONS, filter, opts, collect_one, &c);
    bson_destroy(filter);
    bson_destroy(opts);
    if (c.rc) {
        rc = c.rc;
    }
    if (rc != 0) {
        free(c.items);
        return rc;
    }
    *out = c.items;
    *out_n = c.n;
    return 0;
}

static int observation_one(void *arg, const bson_t *doc)
{
    repo_observation_t *o = arg;
    BDOC_COPY_STR(doc, "metric", o->metric);
    BDOC_COPY_STR(doc, "priority", o->priority);
    o->severity = bdoc_num(doc, "severity");
    bson_iter_t it;
    o->window_end_ms = bson_iter_init_find(&it, doc, "window_end") && BSON_ITER_HOLDS_DATE_TIME(&it)
                           ? bson_iter_date_time(&it)
                           : 0;
    return 1; /* the latest is enough */
}

int repo_last_observation(store_t *s, const char *component, int64_t from_ms, int64_t to_ms,
                          repo_observation_t *out, bool *out_found)
{
    bson_t *filter = BCON_NEW("service", BCON_UTF8(component), "window_end", "{", "$gte",
                              BCON_DATE_TIME(from_ms), "$lte", BCON_DATE_TIME(to_ms), "}");
    bson_t *opts = BCON_NEW("sort", "{", "window_end", BCON_INT32(-1), "}", "limit", BCON_INT64(1));
    repo_observation_t o;
    memset(&o, 0, sizeof(o));
    o.severity = NAN;
    int rc = store_find(s, "telemetry_observations", filter, opts, observation_one, &o);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc == HIVE_ENOTFOUND || rc > 0) { /* > 0: observation_one stopped at the first */
        rc = 0;
    }
    if (rc != 0) {
        return rc;
    }
    *out_found = o.metric[0] != '\0';
    if (*out_found) {
        *out = o;
    }
    return 0;
}

/* ---- the decision log ------------------------------------------------------------ */

typedef struct {
    learn_ope_record_t *items;
    size_t n, cap;
    int rc;
} decisions_t;

static int collect_decision(void *arg, const bson_t *doc)
{
    decisions_t *c = arg;
    learn_ope_record_t r = {.propensity = bdoc_num(doc, "propensity"), .reward = bdoc_num(doc, "reward")};
    const char *key = bdoc_str(doc, "state_key"), *action = bdoc_str(doc, "action");
    if (!(r.propensity > 0.0 && r.propensity <= 1.0) || !isfinite(r.reward) || !key || !action ||
        state_parse_key(key, &r.state) != 0 || learn_action_find(action, &r.action) != 0) {
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        learn_ope_record_t *p = realloc(c->items, cap * sizeof(*p));
        if (!p) {
            c->rc = HIVE_ENOMEM;
            return 1;
        }
        c->items = p;
        c->cap = cap;
    }
    c->items[c->n++] = r;
    return 0;
}

int repo_decision_log(store_t *s, size_t limit, learn_ope_record_t **out, size_t *out_n)
{
    bson_t *filter = BCON_NEW("has_result", BCON_BOOL(true));
    bson_t *opts =
        BCON_NEW("sort", "{", "created_at_ms", BCON_INT32(-1), "_id", BCON_INT32(1), "}", "limit",
                 BCON_INT64((int64_t)limit), "projection", "{", "state_key", BCON_INT32(1), "action",
                 BCON_INT32(1), "propensity", BCON_INT32(1), "reward", BCON_INT32(1), "}");
    decisions_t c = {0};
    int rc = store_find(s, REPO_OPTIMIZATIONS, filter, opts, collect_decision, &c);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc == HIVE_ENOTFOUND) {
        rc = 0;
    }
    if (c.rc) {
        rc = c.rc;
    }
    if (rc != 0) {
        free(c.items);
        return rc;
    }
    *out = c.items;
    *out_n = c.n;
    return 0;
}
