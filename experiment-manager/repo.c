/* repo: see repo.h. */
#include "repo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdoc.h"
#include "hive_err.h"

int repo_variant_index(const char *l)
{
    if (!l) {
        return -1;
    }
    if (strcmp(l, "baseline") == 0 || strcmp(l, "control") == 0) {
        return 0;
    }
    if (strcmp(l, "experimental") == 0 || strcmp(l, "candidate") == 0 || strcmp(l, "treatment") == 0) {
        return 1;
    }
    return -1;
}

static void append_criteria(bson_t *doc, const char *key, const judge_criterion_t *v, size_t n)
{
    bson_t arr, item;
    char idx[16];
    const char *ik;
    BSON_APPEND_ARRAY_BEGIN(doc, key, &arr);
    for (size_t i = 0; i < n; i++) {
        bson_uint32_to_string((uint32_t)i, &ik, idx, sizeof(idx));
        BSON_APPEND_DOCUMENT_BEGIN(&arr, ik, &item);
        BSON_APPEND_UTF8(&item, "metric", v[i].metric);
        BSON_APPEND_UTF8(&item, "operator", judge_op_name(v[i].op));
        BSON_APPEND_DOUBLE(&item, "threshold", v[i].threshold);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(doc, &arr);
}

static void append_nullable(bson_t *doc, const char *key, const char *s)
{
    if (s[0]) {
        BSON_APPEND_UTF8(doc, key, s);
    } else {
        BSON_APPEND_NULL(doc, key);
    }
}

bool repo_key_ok(const char *key)
{
    return key[0] != '\0' && key[0] != '$' && !strchr(key, '.');
}

void repo_def_append(bson_t *doc, const exp_t *e)
{
    BSON_APPEND_UTF8(doc, "experiment_id", e->id);
    append_nullable(doc, "optimization_id", e->optimization_id);
    BSON_APPEND_UTF8(doc, "requested_by", e->requested_by);
    BSON_APPEND_UTF8(doc, "type", judge_type_name(e->def.type));
    BSON_APPEND_UTF8(doc, "target", e->target);
    BSON_APPEND_UTF8(doc, "hypothesis", e->hypothesis);
    append_nullable(doc, "candidate_version", e->candidate_version);
    bson_t params;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "parameters", &params);
    for (size_t i = 0; i < e->nparams; i++) {
        BSON_APPEND_DOUBLE(&params, e->params[i].name, e->params[i].value);
    }
    bson_append_document_end(doc, &params);
    BSON_APPEND_DOUBLE(doc, "traffic_split", e->def.split);
    BSON_APPEND_INT64(doc, "duration_seconds", e->duration_s);
    BSON_APPEND_INT64(doc, "duration_ms", e->def.duration_ms);
    append_criteria(doc, "success_criteria", e->def.criteria, e->def.ncriteria);
    append_criteria(doc, "guardrails", e->def.guardrails, e->def.nguardrails);
    BSON_APPEND_DATE_TIME(doc, "requested_at", e->requested_at_ms);
    bson_t src, one;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "metric_sources", &src);
    for (size_t i = 0; i < e->nsources; i++) {
        BSON_APPEND_DOCUMENT_BEGIN(&src, e->sources[i].metric, &one);
        BSON_APPEND_UTF8(&one, "provider", "prometheus");
        BSON_APPEND_UTF8(&one, "query", e->sources[i].query);
        bson_append_document_end(&src, &one);
    }
    bson_append_document_end(doc, &src);
}

static size_t read_criteria(const bson_t *doc, const char *key, judge_criterion_t *v, size_t cap)
{
    bson_iter_t it, child;
    size_t n = 0;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &child)) {
        return 0;
    }
    while (n < cap && bson_iter_next(&child)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&child)) {
            continue;
        }
        const uint8_t *data;
        uint32_t len;
        bson_t item;
        bson_iter_document(&child, &len, &data);
        if (!bson_init_static(&item, data, len)) {
            continue;
        }
        bdoc_copy_str(&item, "metric", v[n].metric, sizeof(v[n].metric));
        if (judge_op_parse(bdoc_str(&item, "operator"), &v[n].op) != 0) {
            continue;
        }
        v[n].threshold = bdoc_num(&item, "threshold");
        n++;
    }
    return n;
}

int repo_def_read(const bson_t *doc, exp_t *e)
{
    memset(e, 0, sizeof(*e));
    bdoc_copy_str(doc, "experiment_id", e->id, sizeof(e->id));
    bdoc_copy_str(doc, "optimization_id", e->optimization_id, sizeof(e->optimization_id));
    bdoc_copy_str(doc, "requested_by", e->requested_by, sizeof(e->requested_by));
    bdoc_copy_str(doc, "target", e->target, sizeof(e->target));
    bdoc_copy_str(doc, "hypothesis", e->hypothesis, sizeof(e->hypothesis));
    bdoc_copy_str(doc, "candidate_version", e->candidate_version, sizeof(e->candidate_version));
    if (!e->id[0] || judge_type_parse(bdoc_str(doc, "type"), &e->def.type) != 0) {
        return HIVE_EINVAL;
    }
    e->def.split = bdoc_num(doc, "traffic_split");
    e->duration_s = (long)bdoc_num(doc, "duration_seconds");
    e->def.duration_ms = (int64_t)bdoc_num(doc, "duration_ms");
    e->def.ncriteria = read_criteria(doc, "success_criteria", e->def.criteria, JUDGE_MAX_CRITERIA);
    e->def.nguardrails = read_criteria(doc, "guardrails", e->def.guardrails, JUDGE_MAX_CRITERIA);
    bson_iter_t it, child;
    if (bson_iter_init_find(&it, doc, "parameters") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &child)) {
        while (e->nparams < EXP_MAX_PARAMS && bson_iter_next(&child)) {
            snprintf(e->params[e->nparams].name, JUDGE_NAME, "%s", bson_iter_key(&child));
            e->params[e->nparams++].value = bson_iter_as_double(&child);
        }
    }
    if (bson_iter_init_find(&it, doc, "requested_at") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
        e->requested_at_ms = bson_iter_date_time(&it);
    }
    if (bson_iter_init_find(&it, doc, "metric_sources") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &child)) {
        while (e->nsources < EXP_MAX_SOURCES && bson_iter_next(&child)) {
            bson_iter_t q;
            if (BSON_ITER_HOLDS_DOCUMENT(&child) && bson_iter_recurse(&child, &q) &&
                bson_iter_find(&q, "query") && BSON_ITER_HOLDS_UTF8(&q)) {
                exp_source_t *s = &e->sources[e->nsources++];
                snprintf(s->metric, sizeof(s->metric), "%s", bson_iter_key(&child));
                snprintf(s->query, sizeof(s->query), "%s", bson_iter_utf8(&q, NULL));
            }
        }
    }
    return 0;
}

void repo_state_append(bson_t *doc, const char *key, const judge_state_t *s)
{
    bson_t d;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &d);
    BSON_APPEND_UTF8(&d, "phase", judge_phase_name(s->phase));
    BSON_APPEND_BOOL(&d, "started", s->started);
    BSON_APPEND_INT64(&d, "started_ms", s->started_ms);
    BSON_APPEND_INT64(&d, "step_started_ms", s->step_started_ms);
    BSON_APPEND_INT64(&d, "step", (int64_t)s->step);
    BSON_APPEND_DOUBLE(&d, "fraction", s->fraction);
    BSON_APPEND_DOUBLE(&d, "avp", s->avp);
    BSON_APPEND_DOUBLE(&d, "last_windows", s->last_windows);
    BSON_APPEND_DOUBLE(&d, "step_windows", s->step_windows);
    BSON_APPEND_INT64(&d, "empty", s->empty);
    BSON_APPEND_INT64(&d, "revision", s->revision);
    bson_append_document_end(doc, &d);
}

int repo_state_read(const bson_t *doc, const char *key, judge_state_t *s)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        return HIVE_ENOTFOUND;
    }
    const uint8_t *data;
    uint32_t len;
    bson_t d;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&d, data, len)) {
        return HIVE_EINVAL;
    }
    judge_state_init(s);
    const char *phase = bdoc_str(&d, "phase");
    s->phase = phase && strcmp(phase, "DONE") == 0     ? JUDGE_DONE
               : phase && strcmp(phase, "PAUSED") == 0 ? JUDGE_PAUSED
                                                       : JUDGE_RUNNING;
    s->started = bdoc_bool(&d, "started");
    s->started_ms = (int64_t)bdoc_num(&d, "started_ms");
    s->step_started_ms = (int64_t)bdoc_num(&d, "step_started_ms");
    s->step = (size_t)bdoc_num(&d, "step");
    s->fraction = bdoc_num(&d, "fraction");
    s->avp = bdoc_num(&d, "avp");
    s->last_windows = bdoc_num(&d, "last_windows");
    s->step_windows = bdoc_num(&d, "step_windows");
    s->empty = (long)bdoc_num(&d, "empty");
    s->revision = (int64_t)bdoc_num(&d, "revision");
    if (!isfinite(s->avp)) {
        s->avp = 1;
    }
    return 0;
}

int repo_create(store_t *s, const exp_t *e, int64_t now_ms, bool *out_inserted)
{
    bson_t doc = BSON_INITIALIZER;
    repo_def_append(&doc, e);
    BSON_APPEND_UTF8(&doc, "status", "RUNNING");
    BSON_APPEND_DATE_TIME(&doc, "created_at", now_ms);
    judge_state_t st;
    judge_state_init(&st);
    repo_state_append(&doc, "committed", &st);
    int rc = store_insert_once(s, "experiments", e->id, &doc, out_inserted);
    bson_destroy(&doc);
    return rc;
}

int repo_measure(store_t *s, const char *experiment_id, const char *variant, const char *service,
                 int64_t window_start, int64_t window_end, int64_t requests, int64_t errors,
                 const char *const *names, const double *values, size_t n)
{
    char id[512];
    snprintf(id, sizeof(id), "%s|%s|%s|%lld|%lld", experiment_id, variant, service, (long long)window_start,
             (long long)window_end);
    bson_t doc = BSON_INITIALIZER, m;
    BSON_APPEND_UTF8(&doc, "experiment_id", experiment_id);
    BSON_APPEND_UTF8(&doc, "variant", variant);
    BSON_APPEND_UTF8(&doc, "service", service);
    BSON_APPEND_DATE_TIME(&doc, "window_start", window_start);
    BSON_APPEND_DATE_TIME(&doc, "window_end", window_end);
    BSON_APPEND_INT64(&doc, "request_count", requests);
    BSON_APPEND_INT64(&doc, "error_count", errors);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "metrics", &m);
    for (size_t i = 0; i < n; i++) {
        if (isfinite(values[i])) {
            BSON_APPEND_DOUBLE(&m, names[i], values[i]);
        }
    }
    bson_append_document_end(&doc, &m);
    int rc = store_upsert(s, "measurements", id, &doc);
    bson_destroy(&doc);
    return rc;
}

/* Values of every wanted metric, per variant, grown as windows come. */
typedef struct {
    const char *const *wanted;
    size_t nwanted;
    judge_obs_t *obs[2];
    double *vals[2][JUDGE_MAX_METRICS];
    size_t nvals[2][JUDGE_MAX_METRICS], cap[2][JUDGE_MAX_METRICS];
    int failed;
} observe_t;

static int each_window(void *arg, const bson_t *doc)
{
    observe_t *o = arg;
    int v = repo_variant_index(bdoc_str(doc, "variant"));
    if (v < 0) {
        return 0;
    }
    judge_obs_t *ob = o->obs[v];
    ob->windows += 1;
    ob->requests += bdoc_num(doc, "request_count");
    ob->errors += bdoc_num(doc, "error_count");
    bson_iter_t it, m;
    if (!bson_iter_init_find(&it, doc, "metrics") || !bson_iter_recurse(&it, &m)) {
        return 0;
    }
    while (bson_iter_next(&m)) {
        for (size_t i = 0; i < o->nwanted; i++) {
            if (strcmp(bson_iter_key(&m), o->wanted[i]) != 0) {
                continue;
            }
            if (o->nvals[v][i] == o->cap[v][i]) {
                size_t cap = o->cap[v][i] ? 2 * o->cap[v][i] : 64;
                double *p = realloc(o->vals[v][i], cap * sizeof(double));
                if (!p) {
                    o->failed = HIVE_ENOMEM;
                    return 1;
                }
                o->vals[v][i] = p;
                o->cap[v][i] = cap;
            }
            o->vals[v][i][o->nvals[v][i]++] = bson_iter_as_double(&m);
        }
    }
    return 0;
}

int repo_observe(store_t *s, const char *experiment_id, const char *const *wanted, size_t nwanted,
                 judge_obs_t *base, judge_obs_t *cand)
{
    memset(base, 0, sizeof(*base));
    memset(cand, 0, sizeof(*cand));
    observe_t o = {.wanted = wanted,
                   .nwanted = nwanted < JUDGE_MAX_METRICS ? nwanted : JUDGE_MAX_METRICS,
                   .obs = {base, cand}};
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "experiment_id", experiment_id);
    int rc = store_find(s, "measurements", &filter, NULL, each_window, &o);
    bson_destroy(&filter);
    if (rc == 1) {
        rc = o.failed;
    }
    for (int v = 0; v < 2; v++) {
        judge_obs_t *ob = o.obs[v];
        for (size_t i = 0; i < o.nwanted; i++) {
            snprintf(ob->names[i], JUDGE_NAME, "%s", wanted[i]);
            ob->m[i] = stats_summarise(o.vals[v][i], o.nvals[v][i]);
            free(o.vals[v][i]);
        }
        ob->nm = o.nwanted;
    }
    return rc;
}

int repo_abort(store_t *s, const char *experiment_id, int64_t now_ms)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_DATE_TIME(&doc, "requested_at", now_ms);
    int rc = store_insert_once(s, "aborts", experiment_id, &doc, NULL);
    bson_destroy(&doc);
    return rc;
}

int repo_aborted(store_t *s, const char *experiment_id, bool *out)
{
    bson_t *doc = NULL;
    int rc = store_find_one(s, "aborts", experiment_id, &doc);
    if (rc == 0) {
        bson_destroy(doc);
        *out = true;
    } else if (rc == HIVE_ENOTFOUND) {
        *out = false;
        rc = 0;
    }
    return rc;
}
