/* ops: the operator's calls, as a thin shell over repo.c and Kafka.
 *
 * Every call is one job: the loop thread validates and copies its arguments,
 * a libuv worker does the blocking part (MongoDB reads, Avro encoding, which
 * may ask the Schema Registry), and the loop thread either answers at once or
 * hands the encoded record to the idempotent producer and answers from its
 * delivery report. A call that fails validation still answers through the
 * worker queue, so a callback never runs inside the call that asked for it.
 *
 * Messages of HIVE_EINVAL start with the field they are about ("priority:
 * must be one of ..."), so an API can name the field without parsing more.
 */
#include "ops.h"

#include "avro_validate.h"

#include "log.h"
#include "offload.h"
#include "records.h"
#include "state.h"
#include "timeutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define OPS_ID_MAX 64 /* longer ids cannot exist: answered "not found" without asking */
#define OPS_DESCRIPTION_MAX 1024
#define OPS_METRIC_MAX 128
#define OPS_REASON_MAX 1024
#define OPS_VALUE_MAX 1e15

struct ops_s {
    ops_conf_t conf;
    char *insights_topic, *approvals_topic, *commands_topic;
    size_t pending;
    metric_t *requests, *expired;
};

typedef enum { OP_GET, OP_LIST, OP_STATS, OP_TRIGGER, OP_DECIDE, OP_ROLLBACK, OP_EXPIRE, OP_EVAL } op_kind_t;

static const char *const op_names[] = {"get",    "list",     "statistics", "trigger",
                                       "decide", "rollback", "expire",     "evaluation"};

/* One call in flight. */
typedef struct {
    ops_t *o;
    op_kind_t kind;
    union {
        ops_hyp_cb hyp;
        ops_list_cb list;
        ops_stats_cb stats;
        ops_trigger_cb trigger;
        ops_expire_cb expire;
        ops_eval_cb eval;
    } cb;
    void *arg;

    /* Arguments, copied on the loop thread. */
    char id[OPS_ID_MAX];
    bool id_too_long, approve;
    char reason[4 * OPS_REASON_MAX + 1];
    char type[32], status_name[32], component[128];
    size_t limit, offset;
    char problem[32], metric[OPS_METRIC_MAX + 1], priority[16], description[4 * OPS_DESCRIPTION_MAX + 1];
    double current_value, baseline_value;
    int64_t now_ms;

    /* Outcome, filled on the worker (status 0 until something fails). */
    int status;
    char message[256];
    hypothesis_t h;
    hypothesis_t *items;
    size_t n, total;
    ops_stats_t stats;
    ops_eval_t eval;
    char insight_id[64], optimization_id[24];
    const char *topic;
    char key[128];
    void *record;
    size_t record_len;
} job_t;

ops_t *ops_create(const ops_conf_t *conf)
{
    ops_t *o = calloc(1, sizeof(*o));
    if (!o) {
        return NULL;
    }
    o->conf = *conf;
    o->insights_topic = strdup(conf->insights_topic ? conf->insights_topic : "insights.generated");
    o->approvals_topic = strdup(conf->approvals_topic ? conf->approvals_topic : "approvals.responses");
    o->commands_topic = strdup(conf->commands_topic ? conf->commands_topic : "optimization.commands");
    if (!o->insights_topic || !o->approvals_topic || !o->commands_topic) {
        ops_destroy(o);
        return NULL;
    }
    /* The copies stand in for the caller's strings from here on. */
    o->conf.insights_topic = o->insights_topic;
    o->conf.approvals_topic = o->approvals_topic;
    o->conf.commands_topic = o->commands_topic;
    o->requests =
        metrics_counter(conf->metrics, "operator_requests_total",
                        "Operator calls (REST, gRPC) by operation and outcome", "operation,outcome");
    o->expired =
        metrics_counter(conf->metrics, "hypotheses_expired_total",
                        "Hypotheses closed for want of an answer, by the status they waited in", "status");
    return o;
}

void ops_destroy(ops_t *o)
{
    if (!o) {
        return;
    }
    if (o->pending > 0) {
        /* A worker or a delivery report still points at it: leaking is the
         * lesser evil. */
        log_error("ops_destroy with calls in flight; leaking the ops");
        return;
    }
    free(o->insights_topic);
    free(o->approvals_topic);
    free(o->commands_topic);
    free(o);
}

size_t ops_pending(const ops_t *o)
{
    return o ? o->pending : 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void fail(job_t *j, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(job_t *j, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    j->status = status;
    vsnprintf(j->message, sizeof(j->message), fmt, ap);
    va_end(ap);
}

/* Characters (code points) of UTF-8 text: what the OpenAPI document's
 * maxLength counts. */
static size_t chars_of(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

/* Copies an optional text argument, failing with the field's name: at most
 * `max_chars` characters (`dst` holds 4 bytes each) matching `pattern`, the
 * rule of the record field it becomes (avro_validate.h). */
static bool copy_text(job_t *j, const char *field, char *dst, size_t cap, size_t max_chars,
                      avro_pattern_t pattern, const char *src)
{
    src = src ? src : "";
    size_t len = strlen(src);
    if (len >= cap || chars_of(src) > max_chars) {
        fail(j, HIVE_EINVAL, "%s: at most %zu characters", field, max_chars);
        return false;
    }
    if (!avro_validate_matches(src, len, pattern)) {
        fail(j, HIVE_EINVAL, "%s: must be %s", field,
             pattern == AVRO_PATTERN_NAME ? "a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*)"
                                          : "UTF-8 text without control characters but tab and newlines");
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

static void copy_id(job_t *j, const char *id)
{
    id = id ? id : "";
    if (strlen(id) >= sizeof(j->id) || !*id) {
        j->id_too_long = true;
        return;
    }
    strcpy(j->id, id);
}

static const char *outcome_name(int status)
{
    switch (status) {
    case 0:
        return "ok";
    case HIVE_ENOTFOUND:
        return "not_found";
    case HIVE_ECONFLICT:
        return "conflict";
    case HIVE_EINVAL:
        return "invalid";
    case HIVE_EDELIVERY:
        return "kafka_error";
    case HIVE_EUNAVAILABLE:
        return "unavailable";
    default:
        return "error";
    }
}

/* Answers the caller once and frees the job. The ops is not touched after the
 * callback, which may destroy it. */
static void finish(job_t *j)
{
    ops_t *o = j->o;
    const char *msg = j->status ? j->message : "";
    metric_add(o->requests, 1, op_names[j->kind], outcome_name(j->status));
    o->pending--;
    switch (j->kind) {
    case OP_GET:
    case OP_DECIDE:
    case OP_ROLLBACK:
        j->cb.hyp(j->arg, j->status, msg, j->status ? NULL : &j->h);
        break;
    case OP_LIST:
        j->cb.list(j->arg, j->status, msg, j->status ? NULL : j->items, j->status ? 0 : j->n,
                   j->status ? 0 : j->total);
        break;
    case OP_STATS:
        j->cb.stats(j->arg, j->status, msg, j->status ? NULL : &j->stats);
        break;
    case OP_TRIGGER:
        j->cb.trigger(j->arg, j->status, msg, j->status ? NULL : j->optimization_id,
                      j->status ? NULL : j->insight_id);
        break;
    case OP_EVAL:
        j->cb.eval(j->arg, j->status, msg, j->status ? NULL : &j->eval);
        break;
    case OP_EXPIRE:
        if (j->cb.expire) {
            j->cb.expire(j->arg, j->status, msg, j->status ? 0 : j->n);
        }
        break;
    }
    free(j->items);
    free(j->record);
    free(j);
}

/* ---- records ----------------------------------------------------------- */

/* The outcome of a records_* call: on failure the job fails with it. */
static void encoded(job_t *j, int rc, const char *reason)
{
    if (rc != 0) {
        fail(j, rc, "%s", reason);
    }
}

static void build_insight(job_t *j)
{
    char reason[256];
    static const char *const keys[] = {"problem"};
    const char *const values[] = {j->problem};
    const records_insight_t ins = {
        .insight_id = j->insight_id,
        .source = "api",
        .type = "DEGRADATION",
        .priority = j->priority,
        .component = j->component,
        .metric = j->metric,
        .current_value = j->current_value,
        .baseline_value = j->baseline_value,
        .description = j->description,
        .timestamp_ms = timeutil_wall_ms(),
        .label_keys = keys,
        .label_values = values,
        .nlabels = 1,
    };
    encoded(
        j,
        records_insight(j->o->conf.codec, j->topic, &ins, &j->record, &j->record_len, reason, sizeof(reason)),
        reason);
}

static void build_approval_response(job_t *j)
{
    char reason[256];
    encoded(j,
            records_approval_response(j->o->conf.codec, j->topic, j->h.id, j->approve, j->reason,
                                      timeutil_wall_ms(), &j->record, &j->record_len, reason, sizeof(reason)),
            reason);
}

static void build_rollback_command(job_t *j)
{
    char reason[256];
    encoded(j,
            records_rollback(j->o->conf.codec, j->topic, &j->h, j->reason, timeutil_wall_ms(), &j->record,
                             &j->record_len, reason, sizeof(reason)),
            reason);
}

/* ---- the worker ---------------------------------------------------------- */

static void store_failed(job_t *j, int rc, const char *what)
{
    if (rc == HIVE_ENOTFOUND) {
        fail(j, HIVE_ENOTFOUND, "no optimization %s", j->id);
    } else {
        fail(j, rc, "%s failed: %s (%s)", what, hive_strerror(rc), store_last_error());
    }
}

/* Reads j->id into j->h; false (job failed) when it cannot. */
static bool read_hypothesis(job_t *j)
{
    if (j->id_too_long) {
        fail(j, HIVE_ENOTFOUND, "no optimization with that id");
        return false;
    }
    int rc = repo_hyp_get(j->o->conf.store, j->id, &j->h);
    if (rc != 0) {
        store_failed(j, rc, "reading the optimization");
        return false;
    }
    return true;
}

/* Closes the hypotheses whose deadline passed. Each is read again just
 * before it is written, so an answer stored in between wins (hyp_expire then
 * finds it answered and changes nothing). */
static void expire_overdue(job_t *j)
{
    store_t *s = j->o->conf.store;
    int64_t now = j->now_ms;
    hypothesis_t *due = NULL;
    size_t n = 0;
    int rc = repo_hyp_list_expired(s, now, 100, &due, &n);
    if (rc != 0) {
        store_failed(j, rc, "listing overdue hypotheses");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        hypothesis_t h;
        rc = repo_hyp_get(s, due[i].id, &h);
        if (rc == HIVE_ENOTFOUND) {
            continue;
        }
        hyp_status_t waited = h.status;
        if (rc == 0 && hyp_expire(&h, now)) {
            rc = repo_hyp_put(s, &h);
            if (rc == 0) {
                j->n++;
                metric_add(j->o->expired, 1, hyp_status_name(waited));
                log_warn("hypothesis expired", "optimization_id", h.id, "component", h.component, "reason",
                         h.reason);
            }
        }
        if (rc != 0) {
            store_failed(j, rc, "expiring a hypothesis");
            break;
        }
    }
    free(due);
}

/* The decision log from MongoDB, evaluated by the learner. */
static void evaluate(job_t *j)
{
    const ops_conf_t *conf = &j->o->conf;
    if (!conf->learner_evaluate) {
        fail(j, HIVE_EUNAVAILABLE, "no learner to evaluate");
        return;
    }
    learn_ope_record_t *log = NULL;
    size_t n = 0;
    int rc = repo_decision_log(conf->store, OPS_EVAL_LOG_MAX, &log, &n);
    if (rc != 0) {
        store_failed(j, rc, "reading the decision log");
        return;
    }
    j->eval.records = n;
    const char *policy = NULL;
    rc = conf->learner_evaluate(conf->learner_ctx, log, n, j->eval.estimates, &policy);
    free(log);
    j->eval.policy = policy ? policy : "";
    if (rc != 0) {
        fail(j, HIVE_EINVAL, "the decision log cannot be evaluated");
    }
}

static void work(void *arg)
{
    job_t *j = arg;
    store_t *s = j->o->conf.store;
    if (j->status != 0) {
        return; /* refused on the loop thread; answered from after_work */
    }
    switch (j->kind) {
    case OP_GET:
        read_hypothesis(j);
        break;
    case OP_LIST: {
        repo_filter_t f = {.type = j->type,
                           .component = j->component,
                           .status = j->status_name,
                           .limit = j->limit,
                           .offset = j->offset};
        int rc = repo_hyp_list(s, &f, &j->items, &j->n, &j->total);
        if (rc != 0) {
            store_failed(j, rc, "listing optimizations");
        }
        break;
    }
    case OP_STATS: {
        int rc = repo_hyp_stats(s, &j->stats.repo);
        if (rc != 0) {
            store_failed(j, rc, "reading statistics");
        }
        break;
    }
    case OP_TRIGGER:
        build_insight(j);
        break;
    case OP_EXPIRE:
        expire_overdue(j);
        break;
    case OP_EVAL:
        evaluate(j);
        break;
    case OP_DECIDE:
        if (!read_hypothesis(j)) {
            break;
        }
        if (j->h.status != HYP_AWAITING_APPROVAL) {
            fail(j, HIVE_ECONFLICT, "optimization %s is %s; only an AWAITING_APPROVAL one can be %s", j->h.id,
                 hyp_status_name(j->h.status), j->approve ? "approved" : "rejected");
            break;
        }
        snprintf(j->key, sizeof(j->key), "%s", j->h.id);
        build_approval_response(j);
        break;
    case OP_ROLLBACK: {
        if (!read_hypothesis(j)) {
            break;
        }
        bool conflict = false;
        if (!(hyp_request_rollback(&j->h, &conflict) & HYP_EMIT_ROLLBACK) || conflict) {
            fail(j, HIVE_ECONFLICT, "optimization %s is %s; only an APPLIED one can be rolled back", j->h.id,
                 hyp_status_name(j->h.status));
            break;
        }
        snprintf(j->key, sizeof(j->key), "%s", j->h.component);
        build_rollback_command(j);
        break;
    }
    }
}

/* ---- back on the loop ----------------------------------------------------- */

static void delivered(void *arg, rd_kafka_resp_err_t err)
{
    job_t *j = arg;
    if (err) {
        fail(j, HIVE_EDELIVERY, "the %s record was not delivered to %s: %s", op_names[j->kind], j->topic,
             rd_kafka_err2str(err));
    }
    finish(j);
}

static void after_work(void *arg, int status)
{
    job_t *j = arg;
    ops_t *o = j->o;
    if (status != 0 && j->status == 0) {
        fail(j, HIVE_EUNAVAILABLE, "the call was cancelled");
    }
    if (j->status == 0 && j->kind == OP_STATS && o->conf.learner_figures) {
        o->conf.learner_figures(o->conf.learner_ctx, &j->stats.epsilon, &j->stats.q_table_size);
    }
    if (j->status != 0 || !j->record) {
        finish(j);
        return;
    }
    if (!o->conf.producer) {
        fail(j, HIVE_EDELIVERY, "no Kafka producer configured");
        finish(j);
        return;
    }
    rd_kafka_resp_err_t err = kafka_producer_send(o->conf.producer, j->topic, j->key, strlen(j->key),
                                                  j->record, j->record_len, NULL, delivered, j);
    if (err) {
        fail(j, HIVE_EDELIVERY, "cannot queue the %s record for %s: %s", op_names[j->kind], j->topic,
             rd_kafka_err2str(err));
        finish(j);
    }
}

/* ---- the calls ------------------------------------------------------------ */

static job_t *job_new(ops_t *o, op_kind_t kind, void *arg)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        return NULL;
    }
    j->o = o;
    j->kind = kind;
    j->arg = arg;
    return j;
}

/* Queues the job; on failure frees it and returns the error (no callback). */
static int job_start(job_t *j)
{
    int rc = offload_run(j->o->conf.loop, work, after_work, j);
    if (rc != 0) {
        free(j);
        return rc;
    }
    j->o->pending++;
    return 0;
}

int ops_get(ops_t *o, const char *id, ops_hyp_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_GET, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.hyp = cb;
    copy_id(j, id);
    return job_start(j);
}

int ops_list(ops_t *o, const repo_filter_t *f, ops_list_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_LIST, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.list = cb;
    if (f) {
        hyp_status_t st;
        if (copy_text(j, "type", j->type, sizeof(j->type), sizeof(j->type) - 1, AVRO_PATTERN_LINE, f->type) &&
            copy_text(j, "component", j->component, sizeof(j->component), sizeof(j->component) - 1,
                      AVRO_PATTERN_NAME, f->component) &&
            copy_text(j, "status", j->status_name, sizeof(j->status_name), sizeof(j->status_name) - 1,
                      AVRO_PATTERN_LINE, f->status) &&
            j->status_name[0] && hyp_status_parse(j->status_name, &st) != 0) {
            fail(j, HIVE_EINVAL, "status: unknown status \"%s\"", j->status_name);
        }
        j->limit = f->limit;
        j->offset = f->offset;
    }
    return job_start(j);
}

int ops_expire(ops_t *o, int64_t now_ms, ops_expire_cb cb, void *arg)
{
    if (!o) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_EXPIRE, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.expire = cb;
    j->now_ms = now_ms;
    return job_start(j);
}

int ops_statistics(ops_t *o, ops_stats_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_STATS, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.stats = cb;
    return job_start(j);
}

/* "api-" + 16 random hex digits. */
static void new_insight_id(char out[64])
{
    static uint64_t counter;
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        r = (uint64_t)timeutil_wall_ms() * 0x9e3779b97f4a7c15ULL ^ ++counter;
    }
    snprintf(out, 64, "api-%016llx", (unsigned long long)r);
}

/* Checks `t`; on failure the job carries HIVE_EINVAL naming the field. */
static void validate_trigger(job_t *j, const ops_trigger_t *t)
{
    problem_kind_t problem;
    priority_t priority;
    if (!t->component || !*t->component) {
        fail(j, HIVE_EINVAL, "component: required, a non-empty string");
        return;
    }
    if (strlen(t->component) >= STATE_COMPONENT_MAX ||
        !avro_validate_matches(t->component, strlen(t->component), AVRO_PATTERN_NAME)) {
        fail(j, HIVE_EINVAL, "component: a name ([A-Za-z0-9][A-Za-z0-9._:/@+-]*) of at most %d characters",
             STATE_COMPONENT_MAX - 1);
        return;
    }
    strcpy(j->component, t->component);
    if (!t->problem || state_problem_parse(t->problem, &problem) != 0) {
        fail(j, HIVE_EINVAL,
             "problem: required, one of LATENCY, ERROR_RATE, SLO_COMPLIANCE, AVAILABILITY, "
             "CONSENSUS_ACCURACY, "
             "OTHER");
        return;
    }
    snprintf(j->problem, sizeof(j->problem), "%s", state_problem_name(problem));
    if (!copy_text(j, "metric", j->metric, sizeof(j->metric), OPS_METRIC_MAX, AVRO_PATTERN_NAME, t->metric)) {
        return;
    }
    if (!j->metric[0]) {
        const char *metric =
            state_problem_metric(problem); /* the problem's own, when the caller names none */
        snprintf(j->metric, sizeof(j->metric), "%s", metric ? metric : "other");
    }
    /* The Insight's range for both (schemas/avro/Insight.avsc). */
    if (!isfinite(t->current_value) || fabs(t->current_value) > OPS_VALUE_MAX) {
        fail(j, HIVE_EINVAL, "current_value: required, a number in [-1e15, 1e15]");
        return;
    }
    if (!isfinite(t->baseline_value) || fabs(t->baseline_value) > OPS_VALUE_MAX) {
        fail(j, HIVE_EINVAL, "baseline_value: required, a number in [-1e15, 1e15]");
        return;
    }
    j->current_value = t->current_value;
    j->baseline_value = t->baseline_value;
    const char *prio = t->priority && *t->priority ? t->priority : "HIGH";
    if (state_priority_parse(prio, &priority) != 0) {
        fail(j, HIVE_EINVAL, "priority: one of LOW, MEDIUM, HIGH, CRITICAL");
        return;
    }
    snprintf(j->priority, sizeof(j->priority), "%s", prio);
    copy_text(j, "description", j->description, sizeof(j->description), OPS_DESCRIPTION_MAX,
              AVRO_PATTERN_TEXT, t->description);
}

int ops_trigger(ops_t *o, const ops_trigger_t *t, ops_trigger_cb cb, void *arg)
{
    if (!o || !cb || !t) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_TRIGGER, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.trigger = cb;
    j->topic = o->conf.insights_topic;
    validate_trigger(j, t);
    new_insight_id(j->insight_id);
    hyp_id_for_insight(j->insight_id, j->optimization_id);
    snprintf(j->key, sizeof(j->key), "%s", j->component);
    return job_start(j);
}

int ops_decide(ops_t *o, const char *id, bool approve, const char *reason, ops_hyp_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_DECIDE, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.hyp = cb;
    j->approve = approve;
    j->topic = o->conf.approvals_topic;
    copy_id(j, id);
    copy_text(j, "reason", j->reason, sizeof(j->reason), OPS_REASON_MAX, AVRO_PATTERN_TEXT, reason);
    return job_start(j);
}

int ops_rollback(ops_t *o, const char *id, const char *reason, ops_hyp_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_ROLLBACK, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.hyp = cb;
    j->topic = o->conf.commands_topic;
    copy_id(j, id);
    copy_text(j, "reason", j->reason, sizeof(j->reason), OPS_REASON_MAX, AVRO_PATTERN_TEXT, reason);
    return job_start(j);
}

int ops_evaluation(ops_t *o, ops_eval_cb cb, void *arg)
{
    if (!o || !cb) {
        return HIVE_EINVAL;
    }
    job_t *j = job_new(o, OP_EVAL, arg);
    if (!j) {
        return HIVE_ENOMEM;
    }
    j->cb.eval = cb;
    return job_start(j);
}
