/* applier: locked, fenced, exactly-once application of optimization commands.
 * See applier.h for the steps. */
#include "applier.h"

#include "avro_fields.h"
#include "bdoc.h"
#include "hive_err.h"
#include "lock_sync.h"
#include "log.h"
#include "timeutil.h"
#include "verdict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCHES "watches"
#define OBSERVATIONS "observations"
#define MAX_WATCHES_PER_TICK 64

struct applier_s {
    applier_conf_t c;
    metric_t *applied, *rollbacks, *refusals, *validation, *contention, *watches_open;
};

/* ---- parameter sets --------------------------------------------------------- */

int applier_params_get(const applier_params_t *p, const char *name, double *out)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!strcmp(p->name[i], name)) {
            *out = p->value[i];
            return 0;
        }
    }
    return -1;
}

int applier_params_set(applier_params_t *p, const char *name, double value)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!strcmp(p->name[i], name)) {
            p->value[i] = value;
            return 0;
        }
    }
    if (p->n >= APPLIER_MAX_PARAMS || strlen(name) >= APPLIER_NAME_MAX) {
        return -1;
    }
    snprintf(p->name[p->n], APPLIER_NAME_MAX, "%s", name);
    p->value[p->n++] = value;
    return 0;
}

static void params_append(bson_t *doc, const char *key, const applier_params_t *p)
{
    bson_t sub;
    bson_append_document_begin(doc, key, -1, &sub);
    for (size_t i = 0; i < p->n; i++) {
        bson_append_double(&sub, p->name[i], -1, p->value[i]);
    }
    bson_append_document_end(doc, &sub);
}

static void params_read(const bson_t *doc, const char *key, applier_params_t *out)
{
    bson_iter_t it, sub;
    out->n = 0;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
        while (bson_iter_next(&sub)) {
            if (BSON_ITER_HOLDS_NUMBER(&sub)) {
                applier_params_set(out, bson_iter_key(&sub), bson_iter_as_double(&sub));
            }
        }
    }
}

static int64_t doc_long(const bson_t *d, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it) : 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

applier_t *applier_create(const applier_conf_t *conf)
{
    if (!conf || !conf->name || !conf->coll || !conf->state_record || !conf->state_topic ||
        !conf->events_topic || !conf->store || !conf->redis || !conf->codec || !conf->domain.initial ||
        !conf->domain.compute || !conf->domain.fill_state ||
        !applier_watch_metric_known(conf->watch_metric)) {
        return NULL;
    }
    applier_t *a = calloc(1, sizeof(*a));
    if (!a) {
        return NULL;
    }
    a->c = *conf;
    if (!a->c.lock_ttl_ms) {
        a->c.lock_ttl_ms = 10000;
    }
    metrics_t *m = conf->metrics;
    a->applied = metrics_counter(m, "optimizations_applied_total", "Optimizations applied", "type");
    a->rollbacks = metrics_counter(m, "rollbacks_total",
                                   "Optimizations rolled back (by command or by the impact watch)", "type");
    a->refusals =
        metrics_counter(m, "optimization_refusals_total", "Commands refused, by reason", "type,reason");
    a->validation = metrics_counter(m, "validation_failures_total",
                                    "Commands whose result failed the bounds or validation rules", "type");
    a->contention = metrics_counter(m, "lock_contention_total",
                                    "Commands retried because another owner held the lock", NULL);
    a->watches_open = metrics_gauge(m, "impact_watches_open", "Applied changes under impact watch", NULL);
    return a;
}

void applier_destroy(applier_t *a)
{
    free(a);
}

int applier_ensure_indexes(applier_t *a)
{
    const store_index_t idx[] = {
        {a->c.coll, "{\"key\": 1, \"revision\": -1}", false},
        {a->c.coll, "{\"command_id\": 1}", false},
        {a->c.coll, "{\"optimization_id\": 1}", false},
        {WATCHES, "{\"state\": 1}", false},
        {OBSERVATIONS, "{\"service\": 1, \"window_end\": -1}", false},
    };
    return store_ensure_indexes(a->c.store, idx, sizeof(idx) / sizeof(idx[0]));
}

static const char *const watch_metrics[] = {"error_rate", "latency_p95_ms", "latency_p99_ms",
                                            "slo_compliance", "availability"};

bool applier_watch_metric_known(const char *metric)
{
    for (size_t i = 0; metric && i < sizeof(watch_metrics) / sizeof(watch_metrics[0]); i++) {
        if (!strcmp(metric, watch_metrics[i])) {
            return true;
        }
    }
    return false;
}

static bool higher_is_worse(const char *metric)
{
    return strcmp(metric, "slo_compliance") != 0 && strcmp(metric, "availability") != 0;
}

static bool owned(const applier_t *a, const char *type)
{
    for (size_t i = 0; i < a->c.ntypes; i++) {
        if (!strcmp(a->c.types[i], type)) {
            return true;
        }
    }
    return false;
}

/* ---- reading a command -------------------------------------------------------- */

static int read_command(avro_value_t *v, applier_cmd_t *c, char *reason, size_t rl)
{
    size_t len;
    const char *mode = "ABSOLUTE";
    memset(c, 0, sizeof(*c));
    if (avro_get_string(v, "command_id", &c->command_id, &len) ||
        avro_get_enum_name(v, "command", &c->command) ||
        avro_get_string(v, "optimization_id", &c->optimization_id, &len) ||
        avro_get_enum_name(v, "optimization_type", &c->optimization_type) ||
        avro_get_string(v, "target", &c->target, &len) || avro_get_long(v, "issued_at", &c->issued_at_ms)) {
        snprintf(reason, rl, "invalid OptimizationCommand: a required field is missing");
        return -1;
    }
    avro_get_enum_name(v, "adjustment_mode", &mode);
    apply_mode_parse(mode, &c->mode);
    if (avro_get_nullable_string(v, "experiment_id", &c->experiment_id, &len) != 0) {
        c->experiment_id = NULL;
    }
    if (avro_get_string(v, "reason", &c->reason, &len) != 0) {
        c->reason = "";
    }
    c->has_expected_revision = avro_get_nullable_long(v, "expected_revision", &c->expected_revision) == 0;
    c->has_rollback_to = avro_get_nullable_long(v, "rollback_to_revision", &c->rollback_to) == 0;
    avro_value_t map;
    size_t n = 0;
    if (avro_value_get_by_name(v, "adjustments", &map, NULL) == 0 && avro_value_get_size(&map, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            avro_value_t item;
            const char *key = NULL;
            double x;
            if (avro_value_get_by_index(&map, i, &item, &key) != 0 || avro_value_get_double(&item, &x) != 0) {
                continue;
            }
            if (applier_params_set(&c->adjustments, key, x) != 0) {
                snprintf(reason, rl, "too many adjustments or a parameter name too long (%s)", key);
                return 1;
            }
        }
    }
    return 0;
}

/* ---- records ----------------------------------------------------------------- */

/* What one application produces, kept with its revision to be re-emitted. */
typedef struct {
    void *state;
    size_t state_len;
    void *event;
    size_t event_len;
} outputs_t;

static void outputs_free(outputs_t *o)
{
    free(o->state);
    free(o->event);
    *o = (outputs_t){0};
}

static int encode(applier_t *a, const char *topic, avro_value_t *v, void **buf, size_t *len, char *reason,
                  size_t rl)
{
    char err[200];
    int rc = avro_codec_encode(a->c.codec, topic, v, buf, len, err, sizeof(err));
    if (rc != 0) {
        snprintf(reason, rl, "cannot encode for %s: %s", topic, err);
    }
    return rc;
}

/* The OptimizationEvent of one outcome. `after` NULL: REJECTED (no adjustments). */
typedef struct {
    const applier_cmd_t *cmd;
    const char *event_type;
    const applier_params_t *before, *after;
    const applier_note_t *note;
    int64_t prev_revision, revision, now_ms;
    const char *reason;
} event_t;

static int build_event(applier_t *a, const event_t *e, void **buf, size_t *len, char *reason, size_t rl)
{
    avro_value_t v, ca, rp;
    if (avro_codec_new_value(a->c.codec, "OptimizationEvent", &v) != 0) {
        snprintf(reason, rl, "cannot build an OptimizationEvent");
        return HIVE_EINVAL;
    }
    char event_id[129];
    snprintf(event_id, sizeof(event_id), "%s-%s", !strcmp(e->event_type, "REJECTED") ? "rej" : "evt",
             e->cmd->command_id);
    int f = avro_set_string(&v, "event_id", event_id) ||
            avro_set_string(&v, "optimization_id", e->cmd->optimization_id) ||
            avro_set_enum_name(&v, "optimization_type", e->cmd->optimization_type) ||
            avro_set_enum_name(&v, "event_type", e->event_type) ||
            avro_set_string(&v, "target", e->cmd->target) || avro_set_string(&v, "applied_by", a->c.name) ||
            avro_set_long(&v, "revision", e->revision) ||
            avro_set_string(&v, "reason", e->reason ? e->reason : "") ||
            avro_set_long(&v, "timestamp", e->now_ms) || avro_set_string(&v, "hash", "") ||
            avro_value_get_by_name(&v, "causal_analysis", &ca, NULL) ||
            avro_value_get_by_name(&v, "rollback_plan", &rp, NULL);
    if (!f) {
        char summary[512];
        snprintf(summary, sizeof(summary), "%s %s of %s (%s adjustments): %s", e->cmd->command,
                 e->cmd->optimization_type, e->cmd->target, apply_mode_name(e->cmd->mode),
                 e->cmd->reason && *e->cmd->reason ? e->cmd->reason : "no reason given");
        f = avro_set_null(&ca, "insight_id") || avro_set_string(&ca, "summary", summary) ||
            (e->cmd->experiment_id ? avro_set_string(&ca, "experiment_id", e->cmd->experiment_id)
                                   : avro_set_null(&ca, "experiment_id"));
        for (size_t i = 0; !f && e->note && i < e->note->evidence.n; i++) {
            f = avro_set_map_double(&ca, "evidence", e->note->evidence.name[i], e->note->evidence.value[i]);
        }
    }
    for (size_t i = 0; !f && e->after && i < e->after->n; i++) {
        avro_value_t item;
        double old = 0.0;
        applier_params_get(e->before, e->after->name[i], &old);
        f = avro_append_item(&v, "adjustments", &item) ||
            avro_set_string(&item, "parameter", e->after->name[i]) ||
            avro_set_double(&item, "old_value", old) ||
            avro_set_double(&item, "new_value", e->after->value[i]);
    }
    /* Undo: the revision and values before this event. */
    f = f || avro_set_long(&rp, "revision", e->prev_revision);
    for (size_t i = 0; !f && i < e->before->n; i++) {
        f = avro_set_map_double(&rp, "values", e->before->name[i], e->before->value[i]);
    }
    if (!f && e->after && !strcmp(e->event_type, "APPLIED")) {
        char trig[256];
        snprintf(trig, sizeof(trig), "%s of %s worse by more than %.0f%% within %lld s", a->c.watch_metric,
                 e->cmd->target, 100.0 * a->c.watch_threshold, (long long)(a->c.watch_window_ms / 1000));
        f = avro_append_string(&rp, "triggers", trig) ||
            avro_append_string(&rp, "triggers", "ROLLBACK command or POST .../rollback");
    }
    char hex[65];
    f = f || avro_codec_hash(&v, "hash", hex) != 0 || avro_set_string(&v, "hash", hex);
    int rc = HIVE_EINVAL;
    if (f) {
        snprintf(reason, rl, "cannot build the OptimizationEvent of %s", e->cmd->command_id);
    } else {
        rc = encode(a, a->c.events_topic, &v, buf, len, reason, rl);
    }
    avro_value_decref(&v);
    return rc;
}

static int build_state(applier_t *a, const char *target, const applier_params_t *st, int64_t revision,
                       const char *optimization_id, int64_t now_ms, void **buf, size_t *len, char *reason,
                       size_t rl)
{
    avro_value_t v;
    if (avro_codec_new_value(a->c.codec, a->c.state_record, &v) != 0) {
        snprintf(reason, rl, "cannot build a %s", a->c.state_record);
        return HIVE_EINVAL;
    }
    int rc = HIVE_EINVAL;
    if (a->c.domain.fill_state(a->c.domain_ctx, &v, target, st, revision, optimization_id, now_ms) != 0) {
        snprintf(reason, rl, "cannot fill the %s of %s", a->c.state_record, target);
    } else {
        rc = encode(a, a->c.state_topic, &v, buf, len, reason, rl);
    }
    avro_value_decref(&v);
    return rc;
}

static int emit(applier_t *a, kafka_out_t *out, const char *target, const char *optimization_id,
                const outputs_t *o, char *reason, size_t rl)
{
    if ((o->state &&
         kafka_out_add(out, a->c.state_topic, target, strlen(target), o->state, o->state_len, NULL)) ||
        (o->event && kafka_out_add(out, a->c.events_topic, optimization_id, strlen(optimization_id), o->event,
                                   o->event_len, NULL))) {
        snprintf(reason, rl, "cannot queue the outputs of %s", target);
        return HIVE_ENOMEM;
    }
    return 0;
}

static const uint8_t *doc_binary(const bson_t *d, const char *key, uint32_t *len)
{
    bson_iter_t it;
    const uint8_t *data = NULL;
    bson_subtype_t sub;
    *len = 0;
    if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_BINARY(&it)) {
        bson_iter_binary(&it, &sub, len, &data);
    }
    return data;
}

/* ---- the store --------------------------------------------------------------- */

static int first_doc(void *arg, const bson_t *doc)
{
    bson_t **out = arg;
    *out = bson_copy(doc);
    return 1;
}

/* The first document of `coll` matching `filter`, newest revision first.
 * 0 with *out (bson_destroy), HIVE_ENOTFOUND, or an error. */
static int find_first(applier_t *a, const char *coll, const bson_t *filter, const char *sort_key,
                      bson_t **out)
{
    bson_t opts = BSON_INITIALIZER, sort;
    bson_append_document_begin(&opts, "sort", -1, &sort);
    bson_append_int32(&sort, sort_key, -1, -1);
    bson_append_document_end(&opts, &sort);
    bson_append_int64(&opts, "limit", -1, 1);
    *out = NULL;
    int rc = store_find(a->c.store, coll, filter, &opts, first_doc, out);
    bson_destroy(&opts);
    if (rc == 1) {
        return 0;
    }
    return rc == 0 ? HIVE_ENOTFOUND : rc;
}

/* The revision that carries command `id`, if any. */
static int find_command(applier_t *a, const char *id, bson_t **out)
{
    bson_t f = BSON_INITIALIZER;
    bson_append_utf8(&f, "command_id", -1, id, -1);
    int rc = find_first(a, a->c.coll, &f, "revision", out);
    bson_destroy(&f);
    return rc;
}

/* The latest revision of `target` that `optimization_id` wrote with `command`. */
static int find_by_optimization(applier_t *a, const char *target, const char *optimization_id,
                                const char *command, bson_t **out)
{
    bson_t f = BSON_INITIALIZER;
    bson_append_utf8(&f, "key", -1, target, -1);
    bson_append_utf8(&f, "optimization_id", -1, optimization_id, -1);
    bson_append_utf8(&f, "command", -1, command, -1);
    int rc = find_first(a, a->c.coll, &f, "revision", out);
    bson_destroy(&f);
    return rc;
}

static int find_revision(applier_t *a, const char *target, int64_t revision, bson_t **out)
{
    char id[256];
    if (store_revision_id(target, revision, id, sizeof(id)) != 0) {
        return HIVE_EINVAL;
    }
    return store_find_one(a->c.store, a->c.coll, id, out);
}

/* The current values and revision of `target`; the initial values are
 * written as revision 1 the first time. */
static int load_current(applier_t *a, const char *target, applier_params_t *cur, int64_t *rev, int64_t now_ms)
{
    bson_t *doc = NULL;
    int rc = store_find_latest(a->c.store, a->c.coll, target, &doc, rev);
    if (rc == 0) {
        params_read(doc, "values", cur);
        bson_destroy(doc);
        return 0;
    }
    if (rc != HIVE_ENOTFOUND) {
        return rc;
    }
    a->c.domain.initial(a->c.domain_ctx, target, cur);
    bson_t init = BSON_INITIALIZER;
    params_append(&init, "values", cur);
    bson_append_utf8(&init, "command", -1, "INIT", -1);
    bson_append_int64(&init, "applied_at", -1, now_ms);
    rc = store_cas_revision(a->c.store, a->c.coll, target, 0, &init, rev);
    bson_destroy(&init);
    if (rc == HIVE_ECONFLICT) { /* another writer initialised it: read theirs */
        return load_current(a, target, cur, rev, now_ms);
    }
    return rc;
}

/* The latest observation of `target`'s telemetry: 0 with *out_doc, HIVE_ENOTFOUND or an error. */
static int latest_observation(applier_t *a, const char *target, bson_t **out_doc)
{
    bson_t f = BSON_INITIALIZER;
    bson_append_utf8(&f, "service", -1, target, -1);
    int rc = find_first(a, OBSERVATIONS, &f, "window_end", out_doc);
    bson_destroy(&f);
    return rc;
}

/* ---- one command, under the lock ------------------------------------------------ */

typedef struct {
    const applier_cmd_t *cmd;
    kafka_out_t *out;
    int64_t now_ms;
    char *reason;
    size_t rl;
    const char *source;     /* what carried the command: "<topic>/<partition>/<offset>", "tick/<slot>" */
    const char *event_type; /* set on success: APPLIED, ROLLED_BACK, REJECTED, or NULL (re-emitted) */
    char refusal[32];
} run_t;

static kafka_verdict_t store_verdict(int rc, const char *what, char *reason, size_t rl)
{
    return verdict_for_error(rc, what, store_last_error(), reason, rl) == KAFKA_OK ? KAFKA_OK : KAFKA_RETRY;
}

/* Emits a REJECTED event; the state does not change. */
static kafka_verdict_t reject(applier_t *a, run_t *r, const applier_params_t *cur, int64_t rev,
                              const char *code, const char *why)
{
    outputs_t o = {0};
    event_t e = {.cmd = r->cmd,
                 .event_type = "REJECTED",
                 .before = cur,
                 .prev_revision = rev,
                 .revision = rev,
                 .now_ms = r->now_ms,
                 .reason = why};
    int rc = build_event(a, &e, &o.event, &o.event_len, r->reason, r->rl);
    if (rc == 0) {
        rc = emit(a, r->out, r->cmd->target, r->cmd->optimization_id, &o, r->reason, r->rl);
    }
    outputs_free(&o);
    if (rc != 0) {
        return KAFKA_RETRY;
    }
    r->event_type = "REJECTED";
    snprintf(r->refusal, sizeof(r->refusal), "%s", code);
    log_warn("command refused", "command_id", r->cmd->command_id, "optimization_id", r->cmd->optimization_id,
             "target", r->cmd->target, "reason", why);
    return KAFKA_OK;
}

/* The values a ROLLBACK restores and the revision they come from. */
static int rollback_source(applier_t *a, const applier_cmd_t *cmd, applier_params_t *out, int64_t *out_rev,
                           char *why, size_t wl, const char **code)
{
    bson_t *doc = NULL;
    int rc = find_by_optimization(a, cmd->target, cmd->optimization_id, "ROLLBACK", &doc);
    if (rc == 0) {
        bson_destroy(doc);
        snprintf(why, wl, "optimization %s of %s is already rolled back", cmd->optimization_id, cmd->target);
        *code = "already_rolled_back";
        return HIVE_EREJECTED;
    }
    if (rc != HIVE_ENOTFOUND) {
        return rc;
    }
    int64_t rev = cmd->rollback_to;
    if (!cmd->has_rollback_to) {
        rc = find_by_optimization(a, cmd->target, cmd->optimization_id, "APPLY", &doc);
        if (rc == HIVE_ENOTFOUND) {
            snprintf(why, wl, "optimization %s changed nothing on %s: nothing to roll back",
                     cmd->optimization_id, cmd->target);
            *code = "nothing_to_roll_back";
            return HIVE_EREJECTED;
        }
        if (rc != 0) {
            return rc;
        }
        rev = doc_long(doc, "prev_revision");
        bson_destroy(doc);
    }
    rc = find_revision(a, cmd->target, rev, &doc);
    if (rc == HIVE_ENOTFOUND || rc == HIVE_EINVAL) {
        snprintf(why, wl, "%s has no revision %lld to restore", cmd->target, (long long)rev);
        *code = "nothing_to_roll_back";
        return HIVE_EREJECTED;
    }
    if (rc != 0) {
        return rc;
    }
    params_read(doc, "values", out);
    bson_destroy(doc);
    *out_rev = rev;
    return 0;
}

/* Re-emits what an earlier, uncommitted attempt of this command wrote. */
static kafka_verdict_t reemit(applier_t *a, run_t *r, const bson_t *doc)
{
    outputs_t o = {0};
    uint32_t sl, el;
    const uint8_t *s = doc_binary(doc, "out_state", &sl), *e = doc_binary(doc, "out_event", &el);
    o.state = (void *)s;
    o.state_len = sl;
    o.event = (void *)e;
    o.event_len = el;
    if (!s || !e) {
        snprintf(r->reason, r->rl, "revision of command %s holds no records", r->cmd->command_id);
        return KAFKA_RETRY;
    }
    if (emit(a, r->out, r->cmd->target, r->cmd->optimization_id, &o, r->reason, r->rl) != 0) {
        return KAFKA_RETRY;
    }
    log_info("command already applied; its records are produced again", "command_id", r->cmd->command_id);
    return KAFKA_OK;
}

static int open_watch(applier_t *a, const bson_t *rev_doc, const char *target, int64_t revision)
{
    char id[256];
    if (store_revision_id(target, revision, id, sizeof(id)) != 0) {
        return HIVE_EINVAL;
    }
    bson_iter_t it;
    if (!bson_iter_init_find(&it, rev_doc, "baseline")) {
        return 0; /* no telemetry before the change: nothing to compare with */
    }
    bson_t w = BSON_INITIALIZER;
    bson_append_utf8(&w, "target", -1, target, -1);
    bson_append_int64(&w, "revision", -1, revision);
    bson_append_utf8(&w, "optimization_id", -1, bdoc_str(rev_doc, "optimization_id"), -1);
    bson_append_utf8(&w, "optimization_type", -1, bdoc_str(rev_doc, "optimization_type"), -1);
    bson_append_utf8(&w, "metric", -1, a->c.watch_metric, -1);
    bson_append_double(&w, "baseline", -1, bdoc_num(rev_doc, "baseline"));
    bson_append_int64(&w, "applied_at", -1, doc_long(rev_doc, "applied_at"));
    bson_append_int64(&w, "until", -1, doc_long(rev_doc, "applied_at") + a->c.watch_window_ms);
    bson_append_utf8(&w, "state", -1, "WATCHING", -1);
    int rc = store_insert_once(a->c.store, WATCHES, id, &w, NULL);
    bson_destroy(&w);
    return rc;
}

static kafka_verdict_t run_locked(applier_t *a, run_t *r)
{
    const applier_cmd_t *cmd = r->cmd;
    bool is_apply = !strcmp(cmd->command, "APPLY");
    bson_t *doc = NULL;
    int rc = find_command(a, cmd->command_id, &doc);
    if (rc == 0 && strcmp(bdoc_str(doc, "source") ? bdoc_str(doc, "source") : "", r->source) != 0) {
        /* The same command again from another record: applied once already. */
        log_warn("duplicate command ignored", "command_id", cmd->command_id, "source", r->source);
        bson_destroy(doc);
        return KAFKA_OK;
    }
    if (rc == 0) { /* this very record, after an aborted transaction */
        kafka_verdict_t v = reemit(a, r, doc);
        if (v == KAFKA_OK && is_apply) {
            rc = open_watch(a, doc, cmd->target, doc_long(doc, "revision"));
            v = rc == 0 ? KAFKA_OK : store_verdict(rc, "opening the impact watch", r->reason, r->rl);
        }
        bson_destroy(doc);
        return v;
    }
    if (rc != HIVE_ENOTFOUND) {
        return store_verdict(rc, "looking up the command", r->reason, r->rl);
    }
    applier_params_t cur = {0}, next = {0};
    int64_t rev = 0, prev_rev;
    if ((rc = load_current(a, cmd->target, &cur, &rev, r->now_ms)) != 0) {
        return store_verdict(rc, "reading the current revision", r->reason, r->rl);
    }
    char why[300];
    if (cmd->has_expected_revision && cmd->expected_revision != rev) {
        snprintf(why, sizeof(why),
                 "stale revision: the command was computed from revision %lld, %s is at %lld",
                 (long long)cmd->expected_revision, cmd->target, (long long)rev);
        return reject(a, r, &cur, rev, "stale_revision", why);
    }
    applier_note_t note = {0};
    if (is_apply) {
        next = cur;
        rc = a->c.domain.compute(a->c.domain_ctx, cmd, &cur, &next, &note);
        if (rc == HIVE_EREJECTED) {
            if (!strcmp(note.code, "validation") || !strcmp(note.code, "bounds")) {
                metric_add(a->validation, 1, cmd->optimization_type);
            }
            return reject(a, r, &cur, rev, note.code[0] ? note.code : "invalid", note.reason);
        }
        if (rc != 0) {
            snprintf(r->reason, r->rl, "computing the change: %s",
                     note.reason[0] ? note.reason : hive_strerror(rc));
            return KAFKA_RETRY;
        }
        prev_rev = rev;
    } else {
        const char *code = "invalid";
        int64_t src = 0;
        rc = rollback_source(a, cmd, &next, &src, why, sizeof(why), &code);
        if (rc == HIVE_EREJECTED) {
            return reject(a, r, &cur, rev, code, why);
        }
        if (rc != 0) {
            return store_verdict(rc, "finding the revision to restore", r->reason, r->rl);
        }
        snprintf(why, sizeof(why), "%s; restored the values of revision %lld",
                 cmd->reason && *cmd->reason ? cmd->reason : "rollback", (long long)src);
        prev_rev = rev;
    }
    /* The records, then the revision that carries them (the fence). */
    outputs_t o = {0};
    event_t e = {.cmd = cmd,
                 .event_type = is_apply ? "APPLIED" : "ROLLED_BACK",
                 .before = &cur,
                 .after = &next,
                 .note = &note,
                 .prev_revision = prev_rev,
                 .revision = rev + 1,
                 .now_ms = r->now_ms,
                 .reason = is_apply ? cmd->reason : why};
    if ((rc = build_state(a, cmd->target, &next, rev + 1, cmd->optimization_id, r->now_ms, &o.state,
                          &o.state_len, r->reason, r->rl)) != 0 ||
        (rc = build_event(a, &e, &o.event, &o.event_len, r->reason, r->rl)) != 0) {
        outputs_free(&o);
        return KAFKA_RETRY;
    }
    bson_t d = BSON_INITIALIZER;
    params_append(&d, "values", &next);
    bson_append_utf8(&d, "command", -1, cmd->command, -1);
    bson_append_utf8(&d, "command_id", -1, cmd->command_id, -1);
    bson_append_utf8(&d, "source", -1, r->source, -1);
    bson_append_utf8(&d, "optimization_id", -1, cmd->optimization_id, -1);
    bson_append_utf8(&d, "optimization_type", -1, cmd->optimization_type, -1);
    bson_append_utf8(&d, "adjustment_mode", -1, apply_mode_name(cmd->mode), -1);
    bson_append_utf8(&d, "reason", -1, e.reason ? e.reason : "", -1);
    bson_append_int64(&d, "prev_revision", -1, prev_rev);
    bson_append_int64(&d, "applied_at", -1, r->now_ms);
    bson_append_binary(&d, "out_state", -1, BSON_SUBTYPE_BINARY, o.state, (uint32_t)o.state_len);
    bson_append_binary(&d, "out_event", -1, BSON_SUBTYPE_BINARY, o.event, (uint32_t)o.event_len);
    bson_t *obs = NULL;
    if (is_apply && latest_observation(a, cmd->target, &obs) == 0) {
        bson_append_double(&d, "baseline", -1, bdoc_num(obs, a->c.watch_metric));
        bson_destroy(obs);
    }
    int64_t written = 0;
    rc = store_cas_revision(a->c.store, a->c.coll, cmd->target, rev, &d, &written);
    kafka_verdict_t v = KAFKA_OK;
    if (rc == HIVE_ECONFLICT) {
        snprintf(r->reason, r->rl, "revision %lld of %s moved under the lock; retrying", (long long)rev,
                 cmd->target);
        v = KAFKA_RETRY;
    } else if (rc != 0) {
        v = store_verdict(rc, "writing the new revision", r->reason, r->rl);
    } else if (emit(a, r->out, cmd->target, cmd->optimization_id, &o, r->reason, r->rl) != 0) {
        v = KAFKA_RETRY;
    } else if (is_apply && (rc = open_watch(a, &d, cmd->target, written)) != 0) {
        v = store_verdict(rc, "opening the impact watch", r->reason, r->rl);
    }
    if (v == KAFKA_OK) {
        r->event_type = e.event_type;
        char revs[24];
        snprintf(revs, sizeof(revs), "%lld", (long long)written);
        log_info(is_apply ? "optimization applied" : "optimization rolled back", "command_id",
                 cmd->command_id, "optimization_id", cmd->optimization_id, "target", cmd->target, "revision",
                 revs);
    }
    bson_destroy(&d);
    outputs_free(&o);
    return v;
}

/* Steps 1-7 for one command: lock, run, release. */
static kafka_verdict_t run_command(applier_t *a, const applier_cmd_t *cmd, const char *source,
                                   kafka_out_t *out, char *reason, size_t rl)
{
    lock_t l;
    char name[LOCK_NAME_MAX];
    snprintf(name, sizeof(name), "%s:%s", a->c.lock_prefix, cmd->target);
    if (lock_init(&l, name) != 0) {
        snprintf(reason, rl, "cannot build the lock of %s", cmd->target);
        return KAFKA_RETRY;
    }
    int rc = lock_sync_acquire(a->c.redis, &l, a->c.lock_ttl_ms);
    if (rc != 0) {
        if (rc == HIVE_EBUSY) {
            metric_add(a->contention, 1);
        }
        snprintf(reason, rl, "lock %s not taken (%s): nothing applied, retrying", name, hive_strerror(rc));
        return KAFKA_RETRY; /* fail closed: the command comes again */
    }
    run_t r = {
        .cmd = cmd, .out = out, .now_ms = timeutil_wall_ms(), .reason = reason, .rl = rl, .source = source};
    kafka_verdict_t v = run_locked(a, &r);
    int rel = lock_sync_release(a->c.redis, &l);
    if (rel != 0 && v == KAFKA_OK) {
        /* Our lock expired while we worked: the compare-and-set fenced any
         * other writer, so what we wrote holds. */
        log_warn("lock released late", "lock", name, "error", hive_strerror(rel));
    }
    if (v == KAFKA_OK && r.event_type) {
        if (!strcmp(r.event_type, "APPLIED")) {
            metric_add(a->applied, 1, cmd->optimization_type);
        } else if (!strcmp(r.event_type, "ROLLED_BACK")) {
            metric_add(a->rollbacks, 1, cmd->optimization_type);
        } else {
            metric_add(a->refusals, 1, cmd->optimization_type, r.refusal);
        }
    }
    return v;
}

kafka_verdict_t applier_on_command(applier_t *a, const rd_kafka_message_t *msg, avro_value_t *value,
                                   kafka_out_t *out, char *reason, size_t reasonlen)
{
    applier_cmd_t cmd;
    int rc = read_command(value, &cmd, reason, reasonlen);
    if (rc < 0) {
        return KAFKA_BAD_INPUT;
    }
    if (!owned(a, cmd.optimization_type)) {
        return KAFKA_OK;
    }
    if (rc > 0) { /* readable but unusable: refused with its reason, state untouched */
        applier_params_t none = {0};
        char why[256];
        snprintf(why, sizeof(why), "%s", reason);
        run_t r = {.cmd = &cmd, .out = out, .now_ms = timeutil_wall_ms(), .reason = reason, .rl = reasonlen};
        kafka_verdict_t v = reject(a, &r, &none, 0, "invalid", why);
        if (v == KAFKA_OK) {
            metric_add(a->refusals, 1, cmd.optimization_type, "invalid");
        }
        return v;
    }
    char source[300];
    snprintf(source, sizeof(source), "%s/%d/%lld", msg && msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-",
             msg ? (int)msg->partition : -1, msg ? (long long)msg->offset : -1LL);
    return run_command(a, &cmd, source, out, reason, reasonlen);
}

/* ---- telemetry and the impact watch ------------------------------------------------ */

kafka_verdict_t applier_on_telemetry(applier_t *a, const rd_kafka_message_t *msg, avro_value_t *rec,
                                     kafka_out_t *out, char *reason, size_t reasonlen)
{
    (void)msg;
    (void)out;
    const char *service, *variant;
    size_t len;
    int64_t ws, we, requests, errors;
    if (avro_get_string(rec, "service", &service, &len) || avro_get_long(rec, "window_start", &ws) ||
        avro_get_long(rec, "window_end", &we) || avro_get_long(rec, "request_count", &requests) ||
        avro_get_long(rec, "error_count", &errors)) {
        snprintf(reason, reasonlen, "invalid TelemetryAggregated: a required field is missing");
        return KAFKA_BAD_INPUT;
    }
    if (avro_get_nullable_string(rec, "variant", &variant, &len) == 0) {
        return KAFKA_OK; /* an experiment's arm, not the service as deployed */
    }
    bson_t d = BSON_INITIALIZER;
    bson_append_utf8(&d, "service", -1, service, -1);
    bson_append_int64(&d, "window_start", -1, ws);
    bson_append_int64(&d, "window_end", -1, we);
    bson_append_int64(&d, "request_count", -1, requests);
    bson_append_int64(&d, "error_count", -1, errors);
    for (size_t i = 0; i < sizeof(watch_metrics) / sizeof(watch_metrics[0]); i++) {
        double x;
        if (avro_get_double(rec, watch_metrics[i], &x) == 0) {
            bson_append_double(&d, watch_metrics[i], -1, x);
        }
    }
    char id[300];
    snprintf(id, sizeof(id), "%s@%lld", service, (long long)ws);
    int rc = store_insert_once(a->c.store, OBSERVATIONS, id, &d, NULL);
    bson_destroy(&d);
    return verdict_for_error(rc, "storing the observation", store_last_error(), reason, reasonlen);
}

static int sum_each(void *arg, const bson_t *doc)
{
    int64_t *s = arg;
    s[0] += doc_long(doc, "request_count");
    s[1] += doc_long(doc, "error_count");
    return 0;
}

int applier_telemetry_sum(applier_t *a, const char *target, int64_t since_ms, int64_t *out_requests,
                          int64_t *out_errors)
{
    bson_t f = BSON_INITIALIZER, gt;
    bson_append_utf8(&f, "service", -1, target, -1);
    bson_append_document_begin(&f, "window_end", -1, &gt);
    bson_append_int64(&gt, "$gt", -1, since_ms);
    bson_append_document_end(&f, &gt);
    int64_t s[2] = {0, 0};
    int rc = store_find(a->c.store, OBSERVATIONS, &f, NULL, sum_each, s);
    bson_destroy(&f);
    if (rc == 0) {
        *out_requests = s[0];
        *out_errors = s[1];
    }
    return rc;
}

typedef struct {
    bson_t *docs[MAX_WATCHES_PER_TICK];
    size_t n;
} watch_list_t;

static int collect(void *arg, const bson_t *doc)
{
    watch_list_t *l = arg;
    if (l->n < MAX_WATCHES_PER_TICK) {
        l->docs[l->n++] = bson_copy(doc);
    }
    return 0;
}

static int set_watch_state(applier_t *a, const bson_t *w, const char *state, int64_t slot, const char *why)
{
    bson_t d = BSON_INITIALIZER;
    bson_iter_t it;
    if (bson_iter_init(&it, w)) {
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (strcmp(k, "_id") && strcmp(k, "state") && strcmp(k, "slot") && strcmp(k, "why")) {
                bson_append_iter(&d, k, -1, &it);
            }
        }
    }
    bson_append_utf8(&d, "state", -1, state, -1);
    bson_append_int64(&d, "slot", -1, slot);
    bson_append_utf8(&d, "why", -1, why, -1);
    int rc = store_upsert(a->c.store, WATCHES, bdoc_str(w, "_id"), &d);
    bson_destroy(&d);
    return rc;
}

/* Decides one watch. A rollback marks the watch with the slot that did it: a
 * replay of that slot (its transaction did not commit) produces the rollback's
 * records again; a later slot never sees the watch. */
static kafka_verdict_t decide_watch(applier_t *a, const bson_t *w, int64_t slot, int64_t now_ms,
                                    kafka_out_t *out, char *reason, size_t rl)
{
    const char *target = bdoc_str(w, "target"), *state = bdoc_str(w, "state");
    int64_t revision = doc_long(w, "revision");
    if (!target || !state) {
        return KAFKA_OK;
    }
    char command_id[129], why[300] = "";
    snprintf(command_id, sizeof(command_id), "auto-rollback-%s", bdoc_str(w, "_id"));
    applier_cmd_t cmd = {.command_id = command_id,
                         .command = "ROLLBACK",
                         .optimization_id = bdoc_str(w, "optimization_id"),
                         .optimization_type = bdoc_str(w, "optimization_type"),
                         .target = target,
                         .issued_at_ms = now_ms};
    if (!cmd.optimization_id || !cmd.optimization_type) {
        return KAFKA_OK;
    }
    if (!strcmp(state, "WATCHING")) {
        int64_t latest = 0;
        int rc = store_find_latest(a->c.store, a->c.coll, target, NULL, &latest);
        if (rc != 0) {
            return store_verdict(rc, "reading the watched revision", reason, rl);
        }
        if (latest != revision) {
            rc = set_watch_state(a, w, "SUPERSEDED", slot, "a later revision replaced the watched one");
            return rc == 0 ? KAFKA_OK : store_verdict(rc, "closing the watch", reason, rl);
        }
        apply_watch_t aw = {.baseline = bdoc_num(w, "baseline"),
                            .higher_is_worse = higher_is_worse(a->c.watch_metric),
                            .threshold = a->c.watch_threshold,
                            .min_scale = 1e-3,
                            .applied_at_ms = doc_long(w, "applied_at"),
                            .until_ms = doc_long(w, "until")};
        bson_t *obs = NULL;
        apply_obs_t o;
        rc = latest_observation(a, target, &obs);
        if (rc != 0 && rc != HIVE_ENOTFOUND) {
            return store_verdict(rc, "reading the telemetry", reason, rl);
        }
        if (obs) {
            o = (apply_obs_t){.value = bdoc_num(obs, a->c.watch_metric),
                              .window_end_ms = doc_long(obs, "window_end")};
        }
        double worse = 0.0;
        apply_watch_verdict_t verdict = apply_watch_decide(&aw, obs ? &o : NULL, now_ms, &worse);
        if (verdict == APPLY_WATCH_KEEP) {
            bson_destroy(obs);
            return KAFKA_OK;
        }
        if (verdict == APPLY_WATCH_EXPIRED) {
            bson_destroy(obs);
            rc = set_watch_state(a, w, "EXPIRED", slot, "no degradation within the window");
            return rc == 0 ? KAFKA_OK : store_verdict(rc, "closing the watch", reason, rl);
        }
        snprintf(why, sizeof(why),
                 "impact watch: %s of %s went from %.6g to %.6g (%.1f%% worse, threshold %.1f%%)",
                 a->c.watch_metric, target, aw.baseline, o.value, 100.0 * worse,
                 100.0 * a->c.watch_threshold);
        bson_destroy(obs);
        rc = set_watch_state(a, w, "ROLLED_BACK", slot, why);
        if (rc != 0) {
            return store_verdict(rc, "marking the watch", reason, rl);
        }
    } else if (strcmp(state, "ROLLED_BACK") != 0 || doc_long(w, "slot") != slot) {
        return KAFKA_OK;
    } else {
        snprintf(why, sizeof(why), "%s", bdoc_str(w, "why") ? bdoc_str(w, "why") : "impact watch");
    }
    cmd.reason = why;
    char source[64];
    snprintf(source, sizeof(source), "tick/%lld", (long long)slot);
    return run_command(a, &cmd, source, out, reason, rl);
}

kafka_verdict_t applier_watch_tick(void *ctx, int64_t slot, int64_t now_ms, kafka_out_t *out, char *reason,
                                   size_t reasonlen)
{
    applier_t *a = ctx;
    watch_list_t l = {.n = 0};
    bson_t f = BSON_INITIALIZER, any, c0, c1;
    /* {$or: [{state: WATCHING}, {state: ROLLED_BACK, slot: <slot>}]} */
    bson_append_array_begin(&f, "$or", -1, &any);
    bson_append_document_begin(&any, "0", -1, &c0);
    bson_append_utf8(&c0, "state", -1, "WATCHING", -1);
    bson_append_document_end(&any, &c0);
    bson_append_document_begin(&any, "1", -1, &c1);
    bson_append_utf8(&c1, "state", -1, "ROLLED_BACK", -1);
    bson_append_int64(&c1, "slot", -1, slot);
    bson_append_document_end(&any, &c1);
    bson_append_array_end(&f, &any);
    int rc = store_find(a->c.store, WATCHES, &f, NULL, collect, &l);
    bson_destroy(&f);
    kafka_verdict_t v =
        rc == 0 ? KAFKA_OK : store_verdict(rc, "reading the impact watches", reason, reasonlen);
    size_t open = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (v == KAFKA_OK) {
            v = decide_watch(a, l.docs[i], slot, now_ms, out, reason, reasonlen);
            open += bdoc_str(l.docs[i], "state") && !strcmp(bdoc_str(l.docs[i], "state"), "WATCHING");
        }
        bson_destroy(l.docs[i]);
    }
    if (v == KAFKA_OK) {
        metric_set(a->watches_open, (double)open);
    }
    return v;
}

/* ---- REST reads ---------------------------------------------------------------- */

static json_t *params_json(const applier_params_t *p)
{
    json_t *o = json_object();
    for (size_t i = 0; i < p->n; i++) {
        json_object_set_new(o, p->name[i], json_real(p->value[i]));
    }
    return o;
}

static json_t *revision_json(const char *target, const bson_t *doc)
{
    applier_params_t p = {0};
    params_read(doc, "values", &p);
    const char *opt = bdoc_str(doc, "optimization_id"), *cmd = bdoc_str(doc, "command");
    const char *why = bdoc_str(doc, "reason");
    return json_pack("{s:s, s:I, s:o, s:s?, s:s?, s:I, s:I, s:s?}", "target", target, "revision",
                     (json_int_t)doc_long(doc, "revision"), "values", params_json(&p), "optimization_id", opt,
                     "command", cmd, "prev_revision", (json_int_t)doc_long(doc, "prev_revision"),
                     "applied_at", (json_int_t)doc_long(doc, "applied_at"), "reason", why);
}

int applier_current_json(applier_t *a, const char *target, json_t **out)
{
    bson_t *doc = NULL;
    int rc = store_find_latest(a->c.store, a->c.coll, target, &doc, NULL);
    if (rc == HIVE_ENOTFOUND) {
        applier_params_t p = {0};
        a->c.domain.initial(a->c.domain_ctx, target, &p);
        *out = json_pack("{s:s, s:i, s:o, s:n, s:s}", "target", target, "revision", 0, "values",
                         params_json(&p), "optimization_id", "command", "INIT");
        return *out ? 0 : HIVE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    *out = revision_json(target, doc);
    bson_destroy(doc);
    return *out ? 0 : HIVE_ENOMEM;
}

typedef struct {
    const char *target;
    json_t *arr;
} hist_t;

static int hist_each(void *arg, const bson_t *doc)
{
    hist_t *h = arg;
    json_array_append_new(h->arr, revision_json(h->target, doc));
    return 0;
}

int applier_history_json(applier_t *a, const char *target, size_t limit, json_t **out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    bson_append_utf8(&f, "key", -1, target, -1);
    bson_append_document_begin(&opts, "sort", -1, &sort);
    bson_append_int32(&sort, "revision", -1, -1);
    bson_append_document_end(&opts, &sort);
    bson_append_int64(&opts, "limit", -1, (int64_t)limit);
    hist_t h = {.target = target, .arr = json_array()};
    int rc = store_find(a->c.store, a->c.coll, &f, &opts, hist_each, &h);
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0) {
        json_decref(h.arr);
        return rc;
    }
    *out = h.arr;
    return 0;
}
