/* drift_watch: references, current data and the drift check. See drift_watch.h. */
#include "drift_watch.h"

#include "avro_fields.h"
#include "hive_err.h"
#include "log.h"
#include "monitor.h"
#include "records.h"

#include <bson/bson.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REFERENCES "drift_references"
#define WINDOWS "drift_windows"
#define REPORTS "drift_reports"
#define MAX_FEATURES 1000

struct drift_watch_s {
    drift_watch_conf_t c;
    metric_t *score, *batches, *latency, *predictions;
};

/* Columns of feature values by name; each column grows on its own. */
typedef struct {
    size_t k;
    char **names;
    double **v;
    size_t *n, *cap;
} cols_t;

static void cols_free(cols_t *c)
{
    for (size_t j = 0; j < c->k; j++) {
        free(c->names[j]);
        free(c->v[j]);
    }
    free(c->names);
    free(c->v);
    free(c->n);
    free(c->cap);
    *c = (cols_t){0};
}

static int cols_add(cols_t *c, const char *name)
{
    size_t k = c->k + 1;
    char **names = realloc(c->names, k * sizeof(*names));
    c->names = names ? names : c->names;
    double **v = realloc(c->v, k * sizeof(*v));
    c->v = v ? v : c->v;
    size_t *n = realloc(c->n, k * sizeof(*n));
    c->n = n ? n : c->n;
    size_t *cap = realloc(c->cap, k * sizeof(*cap));
    c->cap = cap ? cap : c->cap;
    if (!names || !v || !n || !cap || !(c->names[c->k] = strdup(name))) {
        return HIVE_ENOMEM;
    }
    c->v[c->k] = NULL;
    c->n[c->k] = c->cap[c->k] = 0;
    c->k = k;
    return 0;
}

static long cols_find(const cols_t *c, const char *name)
{
    for (size_t j = 0; j < c->k; j++) {
        if (strcmp(c->names[j], name) == 0) {
            return (long)j;
        }
    }
    return -1;
}

static int cols_push(cols_t *c, size_t j, double x)
{
    if (c->n[j] == c->cap[j]) {
        size_t cap = c->cap[j] ? 2 * c->cap[j] : 256;
        double *v = realloc(c->v[j], cap * sizeof(*v));
        if (!v) {
            return HIVE_ENOMEM;
        }
        c->v[j] = v;
        c->cap[j] = cap;
    }
    c->v[j][c->n[j]++] = x;
    return 0;
}

/* Appends the columns of `c` (at most `rows` values each) as the array
 * "features" of {name, values} (FerretDB stores no nested arrays). */
static void cols_to_bson(const cols_t *c, size_t rows, bson_t *d)
{
    bson_t arr, item, vals;
    char key[24], ikey[24];
    const char *k, *ik;
    BSON_APPEND_ARRAY_BEGIN(d, "features", &arr);
    for (size_t j = 0; j < c->k; j++) {
        bson_uint32_to_string((uint32_t)j, &k, key, sizeof(key));
        bson_append_document_begin(&arr, k, -1, &item);
        BSON_APPEND_UTF8(&item, "name", c->names[j]);
        BSON_APPEND_ARRAY_BEGIN(&item, "values", &vals);
        for (size_t i = 0; i < c->n[j] && i < rows; i++) {
            bson_uint32_to_string((uint32_t)i, &ik, ikey, sizeof(ikey));
            bson_append_double(&vals, ik, -1, c->v[j][i]);
        }
        bson_append_array_end(&item, &vals);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(d, &arr);
}

/* Adds the values of a stored document's features to `c`: into the columns
 * of the same names (`add_names`: creating the missing ones), each up to `limit`. */
static int cols_from_bson(cols_t *c, const bson_t *d, bool add_names, size_t limit)
{
    bson_iter_t it, arr, item, vals;
    if (!bson_iter_init_find(&it, d, "features") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        return HIVE_EINVAL;
    }
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &item) ||
            !bson_iter_find(&item, "name") || !BSON_ITER_HOLDS_UTF8(&item)) {
            continue;
        }
        const char *name = bson_iter_utf8(&item, NULL);
        long j = cols_find(c, name);
        if (j < 0 && add_names) {
            if (cols_add(c, name) != 0) {
                return HIVE_ENOMEM;
            }
            j = (long)c->k - 1;
        }
        if (j < 0 || !bson_iter_recurse(&arr, &item) || !bson_iter_find(&item, "values") ||
            !BSON_ITER_HOLDS_ARRAY(&item) || !bson_iter_recurse(&item, &vals)) {
            continue;
        }
        while (bson_iter_next(&vals) && c->n[j] < limit) {
            if (cols_push(c, (size_t)j, bson_iter_as_double(&vals)) != 0) {
                return HIVE_ENOMEM;
            }
        }
    }
    return 0;
}

drift_watch_t *drift_watch_create(const drift_watch_conf_t *conf)
{
    drift_watch_t *w = calloc(1, sizeof(*w));
    if (!w) {
        return NULL;
    }
    w->c = *conf;
    w->score = metrics_gauge(conf->metrics, "model_drift_score",
                             "Share of drifted features of the last check (seed 002)", "model_name");
    w->batches = metrics_counter(conf->metrics, "model_monitor_feature_batches_total",
                                 "FeatureBatches taken, by use (reference, window)", "use");
    /* The ML SLOs' inputs (seed 002): latency P95 < 100 ms, feedback rate >= 10 %. */
    static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                            0.25,  0.5,  1,     2.5,  5,     10};
    w->latency = metrics_histogram(conf->metrics, "neural_hive_model_inference_latency_seconds",
                                   "Inference latency of each row of the FeatureBatches", "model_name",
                                   latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    w->predictions = metrics_counter(conf->metrics, "neural_hive_model_predictions_total",
                                     "Rows (predictions) of the FeatureBatches", "model_name");
    return w;
}

void drift_watch_destroy(drift_watch_t *w)
{
    free(w);
}

int drift_watch_indexes(drift_watch_t *w)
{
    static const store_index_t idx[] = {
        {WINDOWS, "{\"model\": 1, \"timestamp\": -1}", false},
        {REPORTS, "{\"model\": 1, \"slot\": -1}", false},
    };
    return store_ensure_indexes(w->c.store, idx, sizeof(idx) / sizeof(idx[0]));
}

/* The batch's rows as columns: 0, or HIVE_EINVAL with a reason. */
static int batch_cols(avro_value_t *v, cols_t *c, size_t *out_rows, char *reason, size_t rl)
{
    avro_value_t names, rows, item;
    size_t k = 0, n = 0;
    if (avro_get_field(v, "feature_names", &names) || avro_value_get_size(&names, &k) ||
        avro_get_field(v, "rows", &rows) || avro_value_get_size(&rows, &n)) {
        snprintf(reason, rl, "no feature_names or rows");
        return HIVE_EINVAL;
    }
    if (k == 0 || k > MAX_FEATURES) {
        snprintf(reason, rl, "%zu features: expected 1 to %d", k, MAX_FEATURES);
        return HIVE_EINVAL;
    }
    for (size_t j = 0; j < k; j++) {
        const char *s = NULL;
        size_t len = 0;
        if (avro_value_get_by_index(&names, j, &item, NULL) || avro_value_get_string(&item, &s, &len)) {
            return HIVE_EINVAL;
        }
        if (cols_find(c, s) >= 0) {
            snprintf(reason, rl, "feature %s named twice", s);
            return HIVE_EINVAL;
        }
        if (cols_add(c, s) != 0) {
            return HIVE_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        avro_value_t row, x;
        size_t m = 0;
        if (avro_value_get_by_index(&rows, i, &row, NULL) || avro_value_get_size(&row, &m) || m != k) {
            snprintf(reason, rl, "row %zu has %zu values for %zu features", i, m, k);
            return HIVE_EINVAL;
        }
        for (size_t j = 0; j < k; j++) {
            double d = 0;
            if (avro_value_get_by_index(&row, j, &x, NULL) || avro_value_get_double(&x, &d)) {
                return HIVE_EINVAL;
            }
            if (isnan(d)) {
                snprintf(reason, rl, "row %zu: %s is NaN", i, c->names[j]);
                return HIVE_EINVAL;
            }
            if (cols_push(c, j, d) != 0) {
                return HIVE_ENOMEM;
            }
        }
    }
    *out_rows = n;
    return 0;
}

static bool has_batch(const bson_t *ref, const char *id)
{
    bson_iter_t it, arr;
    if (bson_iter_init_find(&it, ref, "batches") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            const char *s = bson_iter_utf8(&arr, NULL);
            if (s && strcmp(s, id) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* Adds the batch's rows to the reference under construction `ref` (NULL: none
 * yet) and stores it, complete once it holds reference_rows rows. */
static int grow_reference(drift_watch_t *w, const char *model, const char *version, const bson_t *ref,
                          const cols_t *batch, size_t nrows, const char *id)
{
    cols_t c = {0};
    bson_iter_t it;
    size_t have = ref && bson_iter_init_find(&it, ref, "rows") ? (size_t)bson_iter_as_int64(&it) : 0;
    int rc = ref ? cols_from_bson(&c, ref, true, SIZE_MAX) : 0;
    size_t take = nrows < w->c.reference_rows - have ? nrows : w->c.reference_rows - have;
    for (size_t j = 0; rc == 0 && j < batch->k; j++) {
        long t = cols_find(&c, batch->names[j]);
        if (t < 0 && have == 0) {
            rc = cols_add(&c, batch->names[j]);
            t = (long)c.k - 1;
        }
        for (size_t i = 0; rc == 0 && t >= 0 && i < take; i++) {
            rc = cols_push(&c, (size_t)t, batch->v[j][i]);
        }
    }
    if (rc == 0) {
        bson_t *d = bson_new(), arr;
        BSON_APPEND_UTF8(d, "model", model);
        BSON_APPEND_UTF8(d, "model_version", version);
        BSON_APPEND_INT64(d, "rows", (int64_t)(have + take));
        BSON_APPEND_BOOL(d, "complete", have + take >= w->c.reference_rows);
        cols_to_bson(&c, SIZE_MAX, d);
        BSON_APPEND_ARRAY_BEGIN(d, "batches", &arr);
        size_t n = 0;
        char key[24];
        const char *k;
        bson_iter_t b, ba;
        if (ref && bson_iter_init_find(&b, ref, "batches") && BSON_ITER_HOLDS_ARRAY(&b) &&
            bson_iter_recurse(&b, &ba)) {
            while (bson_iter_next(&ba)) {
                bson_uint32_to_string((uint32_t)n++, &k, key, sizeof(key));
                bson_append_utf8(&arr, k, -1, bson_iter_utf8(&ba, NULL), -1);
            }
        }
        bson_uint32_to_string((uint32_t)n, &k, key, sizeof(key));
        bson_append_utf8(&arr, k, -1, id, -1);
        bson_append_array_end(d, &arr);
        rc = store_upsert(w->c.store, REFERENCES, model, d);
        bson_destroy(d);
        if (rc == 0 && have + take >= w->c.reference_rows) {
            log_info("drift reference complete", "model", model, "batch", id);
        }
    }
    cols_free(&c);
    return rc;
}

/* The batch's predictions and latencies, for the SLO metrics. A replayed
 * transaction counts its batch again: the metrics are approximate there. */
static void count_slo_inputs(drift_watch_t *w, const char *model, avro_value_t *value, size_t nrows)
{
    avro_value_t lat, x;
    size_t n = 0;
    double ms;
    metric_add(w->predictions, (double)nrows, model);
    if (avro_get_field(value, "latencies_ms", &lat) || avro_value_get_size(&lat, &n)) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (avro_value_get_by_index(&lat, i, &x, NULL) == 0 && avro_value_get_double(&x, &ms) == 0) {
            metric_observe(w->latency, ms / 1000.0, model);
        }
    }
}

kafka_verdict_t drift_watch_batch(drift_watch_t *w, const rd_kafka_message_t *msg, avro_value_t *value,
                                  char *reason, size_t rl)
{
    const char *model = NULL, *version = NULL;
    int64_t ts = 0;
    size_t len = 0, nrows = 0;
    if (avro_get_string(value, "model", &model, &len) ||
        avro_get_string(value, "model_version", &version, &len) || avro_get_long(value, "timestamp", &ts)) {
        snprintf(reason, rl, "FeatureBatch without model, model_version or timestamp");
        return KAFKA_BAD_INPUT;
    }
    cols_t c = {0};
    int rc = batch_cols(value, &c, &nrows, reason, rl);
    if (rc != 0) {
        cols_free(&c);
        return rc == HIVE_ENOMEM ? KAFKA_RETRY : KAFKA_BAD_INPUT;
    }
    count_slo_inputs(w, model, value, nrows);
    char id[320];
    snprintf(id, sizeof(id), "%s-%" PRId32 "-%" PRId64, rd_kafka_topic_name(msg->rkt), msg->partition,
             msg->offset);
    bson_t *ref = NULL;
    rc = store_find_one(w->c.store, REFERENCES, model, &ref);
    bool complete = false;
    bson_iter_t it;
    if (rc == 0 && bson_iter_init_find(&it, ref, "complete")) {
        complete = bson_iter_as_bool(&it);
    }
    if (rc == HIVE_ENOTFOUND || (rc == 0 && !complete)) {
        rc = ref && has_batch(ref, id) ? 0 : grow_reference(w, model, version, ref, &c, nrows, id);
        metric_add(w->batches, 1.0, "reference");
    } else if (rc == 0) {
        bson_t *d = bson_new();
        BSON_APPEND_UTF8(d, "model", model);
        BSON_APPEND_UTF8(d, "model_version", version);
        BSON_APPEND_DATE_TIME(d, "timestamp", ts);
        cols_to_bson(&c, w->c.window_rows, d);
        bool inserted = false;
        rc = store_insert_once(w->c.store, WINDOWS, id, d, &inserted);
        bson_destroy(d);
        metric_add(w->batches, 1.0, "window");
    }
    if (ref) {
        bson_destroy(ref);
    }
    cols_free(&c);
    if (rc != 0) {
        snprintf(reason, rl, "drift store: %s", hive_strerror(rc));
        return hive_err_transient(rc) || rc == HIVE_ENOMEM ? KAFKA_RETRY : KAFKA_BAD_INPUT;
    }
    return KAFKA_OK;
}

/* ---- the check ------------------------------------------------------------ */

typedef struct {
    char model[136];
    char version[72];
    cols_t ref;
} ref_t;

typedef struct {
    ref_t *v;
    size_t n;
    int rc;
} refs_t;

static int each_ref(void *arg, const bson_t *doc)
{
    refs_t *r = arg;
    ref_t *v = realloc(r->v, (r->n + 1) * sizeof(*v));
    if (!v) {
        return r->rc = HIVE_ENOMEM;
    }
    r->v = v;
    ref_t *x = &r->v[r->n++];
    *x = (ref_t){0};
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(x->model, sizeof(x->model), "%s", bson_iter_utf8(&it, NULL));
    }
    if (bson_iter_init_find(&it, doc, "model_version") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(x->version, sizeof(x->version), "%s", bson_iter_utf8(&it, NULL));
    }
    return r->rc = cols_from_bson(&x->ref, doc, true, SIZE_MAX);
}

typedef struct {
    cols_t *cur;
    size_t limit;
} win_t;

static int each_window(void *arg, const bson_t *doc)
{
    win_t *wn = arg;
    return cols_from_bson(wn->cur, doc, false, wn->limit) == HIVE_ENOMEM ? HIVE_ENOMEM : 0;
}

static int each_prev(void *arg, const bson_t *doc)
{
    bson_iter_t it;
    *(bool *)arg = bson_iter_init_find(&it, doc, "drifted") && bson_iter_as_bool(&it);
    return 0;
}

static bson_t *report_doc(const ref_t *r, int64_t slot, int64_t at_ms, double score, double th,
                          const drift_feature_t *f, const char *const *names, size_t n)
{
    bson_t *d = bson_new(), arr, item;
    BSON_APPEND_UTF8(d, "model", r->model);
    BSON_APPEND_INT64(d, "slot", slot);
    BSON_APPEND_DATE_TIME(d, "timestamp", at_ms);
    BSON_APPEND_DOUBLE(d, "drift_score", score);
    BSON_APPEND_DOUBLE(d, "threshold", th);
    BSON_APPEND_BOOL(d, "drifted", score > th);
    BSON_APPEND_ARRAY_BEGIN(d, "features", &arr);
    for (size_t i = 0; i < n; i++) {
        char key[24];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
        bson_append_document_begin(&arr, k, -1, &item);
        BSON_APPEND_UTF8(&item, "name", names[i]);
        BSON_APPEND_UTF8(&item, "method", drift_method_name(f[i].method));
        BSON_APPEND_DOUBLE(&item, "ks_statistic", f[i].ks_statistic);
        BSON_APPEND_DOUBLE(&item, "ks_p_value", f[i].ks_p_value);
        BSON_APPEND_DOUBLE(&item, "psi", f[i].psi);
        BSON_APPEND_DOUBLE(&item, "wasserstein", f[i].wasserstein);
        BSON_APPEND_DOUBLE(&item, "threshold", f[i].threshold);
        BSON_APPEND_BOOL(&item, "drifted", f[i].drifted);
        BSON_APPEND_INT64(&item, "reference_size", (int64_t)f[i].nref);
        BSON_APPEND_INT64(&item, "current_size", (int64_t)f[i].ncur);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(d, &arr);
    return d;
}

/* One model: compare, store, gauge, and a degradation when an episode opens. */
static kafka_verdict_t check_model(drift_watch_t *w, const ref_t *r, int64_t slot, int64_t at_ms,
                                   kafka_out_t *out, char *reason, size_t rl)
{
    cols_t cur = {0};
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < r->ref.k; j++) {
        rc = cols_add(&cur, r->ref.names[j]);
    }
    bson_t *filter = BCON_NEW("model", BCON_UTF8(r->model), "timestamp", "{", "$gt",
                              BCON_DATE_TIME(at_ms - w->c.window_ms), "$lte", BCON_DATE_TIME(at_ms), "}");
    bson_t *opts = BCON_NEW("sort", "{", "timestamp", BCON_INT32(-1), "}");
    win_t wn = {&cur, w->c.window_rows};
    if (rc == 0) {
        rc = store_find(w->c.store, WINDOWS, filter, opts, each_window, &wn);
    }
    bson_destroy(filter);
    bson_destroy(opts);
    drift_feature_t *f = calloc(cur.k + 1, sizeof(*f));
    const char **names = calloc(cur.k + 1, sizeof(*names));
    size_t n = 0;
    for (size_t j = 0; rc == 0 && f && names && j < cur.k; j++) {
        if (cur.n[j] == 0 || r->ref.n[j] == 0) {
            continue; /* a feature without current data is not judged */
        }
        rc = drift_feature_check(&w->c.dcfg, r->ref.v[j], r->ref.n[j], cur.v[j], cur.n[j], &f[n]);
        names[n++] = cur.names[j];
    }
    kafka_verdict_t verdict = KAFKA_OK;
    if (rc != 0 || !f || !names) {
        snprintf(reason, rl, "drift check of %s: %s", r->model, hive_strerror(rc ? rc : HIVE_ENOMEM));
        verdict = KAFKA_RETRY;
    } else if (n > 0) {
        double score = drift_score(f, n), th = w->c.dcfg.drift_threshold;
        bool prev = false;
        char id[200];
        snprintf(id, sizeof(id), "%s-%" PRId64, r->model, slot);
        bson_t *pf = BCON_NEW("model", BCON_UTF8(r->model), "slot", "{", "$lt", BCON_INT64(slot), "}");
        bson_t *po = BCON_NEW("sort", "{", "slot", BCON_INT32(-1), "}", "limit", BCON_INT64(1));
        rc = store_find(w->c.store, REPORTS, pf, po, each_prev, &prev);
        bson_destroy(pf);
        bson_destroy(po);
        bson_t *doc = report_doc(r, slot, at_ms, score, th, f, names, n);
        rc = rc ? rc : store_upsert(w->c.store, REPORTS, id, doc);
        bson_destroy(doc);
        metric_set(w->score, score, r->model);
        void *bytes = NULL;
        size_t len = 0;
        if (rc != 0) {
            snprintf(reason, rl, "drift_reports: %s", hive_strerror(rc));
            verdict = KAFKA_RETRY;
        } else if (score > th && !prev) {
            char did[224];
            snprintf(did, sizeof(did), "%s-drift", id);
            if (records_drift(w->c.codec, w->c.degraded_topic, r->model, r->version, score, th, names, f, n,
                              at_ms, did, &bytes, &len, reason, rl) != 0 ||
                kafka_out_add(out, w->c.degraded_topic, r->model, strlen(r->model), bytes, len, NULL) != 0) {
                verdict = KAFKA_RETRY;
            } else {
                log_warn("model inputs drifted", "model", r->model, "degradation_id", did);
            }
            free(bytes);
        }
    }
    free(f);
    free(names);
    cols_free(&cur);
    return verdict;
}

kafka_verdict_t drift_watch_tick(drift_watch_t *w, int64_t slot, int64_t at_ms, kafka_out_t *out,
                                 char *reason, size_t rl)
{
    refs_t refs = {0};
    bson_t *filter = BCON_NEW("complete", BCON_BOOL(true));
    int rc = store_find(w->c.store, REFERENCES, filter, NULL, each_ref, &refs);
    bson_destroy(filter);
    kafka_verdict_t v = KAFKA_OK;
    if (rc != 0 || refs.rc != 0) {
        snprintf(reason, rl, "drift_references: %s", hive_strerror(rc ? rc : refs.rc));
        v = KAFKA_RETRY;
    }
    for (size_t i = 0; v == KAFKA_OK && i < refs.n; i++) {
        v = check_model(w, &refs.v[i], slot, at_ms, out, reason, rl);
    }
    for (size_t i = 0; i < refs.n; i++) {
        cols_free(&refs.v[i].ref);
    }
    free(refs.v);
    return v;
}

static int each_latest(void *arg, const bson_t *doc)
{
    *(json_t **)arg = monitor_doc_json(doc);
    return 0;
}

int drift_watch_latest(drift_watch_t *w, const char *model, json_t **out)
{
    bson_t *filter = BCON_NEW("model", BCON_UTF8(model));
    bson_t *opts = BCON_NEW("sort", "{", "slot", BCON_INT32(-1), "}", "limit", BCON_INT64(1));
    json_t *j = NULL;
    int rc = store_find(w->c.store, REPORTS, filter, opts, each_latest, &j);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc == 0 && !j) {
        rc = HIVE_ENOTFOUND;
    }
    if (rc == 0) {
        *out = j;
    } else {
        json_decref(j);
    }
    return rc;
}
