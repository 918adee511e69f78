/* app: the retrainer's service shell. See app.h. */
#include "app.h"

#include "avro_fields.h"
#include "hive_err.h"
#include "httpc_sync.h"
#include "log.h"
#include "offload.h"
#include "timeutil.h"
#include "verdict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The string member `key` of `o`, or "". */
static const char *jget(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

#define DRIVE_MAX_RUNS 32
#define OUTBOX_BATCH 100

static const double duration_bounds[] = {1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200};

bool app_channels_valid(const char *s)
{
    static const char *const ok[] = {"", "slack", "email", "slack,email", "email,slack"};
    for (size_t i = 0; s && i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(s, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

int app_check_config(const app_config_t *c, char *err, size_t errlen)
{
    if (!app_channels_valid(c->notification_channels)) {
        return hive_err_set(
            err, errlen, HIVE_EINVAL,
            "invalid configuration: NOTIFICATION_CHANNELS=%s: accepted \"\", slack, email or slack,email",
            c->notification_channels);
    }
    if (strspn(c->training_command, " ") == strlen(c->training_command)) {
        return hive_err_set(err, errlen, HIVE_EINVAL,
                            "invalid configuration: TRAINING_COMMAND is empty: accepted a command line "
                            "(program and arguments)");
    }
    if (*c->llm_provider && strcmp(c->llm_provider, "local") != 0 && strcmp(c->llm_provider, "ollama") != 0 &&
        strcmp(c->llm_provider, "openai") != 0 && strcmp(c->llm_provider, "anthropic") != 0) {
        return hive_err_set(err, errlen, HIVE_EINVAL,
                            "invalid configuration: LLM_PROVIDER=%s: accepted \"\" (synthetic), local, "
                            "ollama, openai, anthropic",
                            c->llm_provider);
    }
    return 0;
}

int app_init(app_t *app, store_t *store, metrics_t *metrics)
{
    const app_config_t *c = app->cfg;
    if (mkdir(c->dataset_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "retrainer: cannot create DATASET_DIR %s\n", c->dataset_dir);
        return -1;
    }
    app->parts = (parts_conf_t){
        .llm_provider = c->llm_provider,
        .llm_model = c->llm_model,
        .llm_base_url = c->llm_base_url,
        .llm_api_key = c->llm_api_key,
        .llm_temperature = c->llm_temperature,
        .llm_timeout_s = c->llm_timeout_s,
        .slack_webhook_url = c->slack_webhook_url,
        .slack_channel = c->slack_channel,
        .smtp_host = c->smtp_host,
        .smtp_user = c->smtp_user,
        .smtp_password = c->smtp_password,
        .smtp_from = c->smtp_from,
        .email_recipients = c->email_recipients,
        .smtp_port = c->smtp_port,
        .notify_retries = c->notify_retries,
        .notify_timeout_ms = c->notify_timeout_ms,
        .feedback_collection = c->feedback_collection,
    };
    if (*c->feedback_uri) {
        char err[300];
        app->parts.feedback = store_create(c->feedback_uri, c->feedback_database, err, sizeof(err));
        if (!app->parts.feedback) {
            fprintf(stderr, "retrainer: invalid configuration: FEEDBACK_MONGODB_URI: %s\n", err);
            return -1;
        }
    }
    app->rc = (run_conf_t){
        .store = store,
        .mlflow_uri = c->mlflow_uri,
        .mlflow_suffix = c->mlflow_suffix,
        .mlflow_timeout_ms = c->mlflow_timeout_ms,
        .training_command = c->training_command,
        .training_timeout_s = c->training_timeout_s,
        .trainer_grace_s = c->trainer_grace_s,
        .dataset_dir = c->dataset_dir,
        .num_samples = c->num_samples,
        .dataset_max_age_days = c->dataset_max_age_days,
        .cooldown_hours = c->cooldown_hours,
        .th = c->th,
        .notification_channels = c->notification_channels,
        .parts = &app->parts,
    };
    if (metrics) {
        run_conf_t *r = &app->rc;
        r->m_triggered = metrics_counter(metrics, "neural_hive_auto_retrain_triggered_total",
                                         "Retrain runs started (cooldown passed)", "specialist_type");
        r->m_success = metrics_counter(metrics, "neural_hive_auto_retrain_success_total",
                                       "Retrain runs that ended succeeded", "specialist_type");
        r->m_duration =
            metrics_histogram(metrics, "neural_hive_auto_retrain_duration_seconds",
                              "Duration of a retrain run, from its trigger to its end", "specialist_type",
                              duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
        r->m_dataset_duration = metrics_histogram(
            metrics, "neural_hive_dataset_generation_duration_seconds", "Duration of the dataset step",
            "specialist_type", duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
        r->m_dataset_errors =
            metrics_counter(metrics, "neural_hive_dataset_generation_errors_total",
                            "Dataset generation failures and LLM errors", "specialist_type");
        r->m_events = metrics_counter(metrics, "ml_retraining_events_total", "Retrain runs ended, by outcome",
                                      "model_type,success");
        r->m_notifications = metrics_counter(
            metrics, "neural_hive_auto_retrain_notifications_total",
            "Notifications of ended runs, by channel and outcome (sent, failed)", "channel,outcome");
        app->m_runs =
            metrics_gauge(metrics, "neural_hive_auto_retrain_active_runs", "Retrain runs in progress", NULL);
    }
    pthread_mutex_init(&app->drive_mu, NULL);
    pthread_mutex_init(&app->acked_mu, NULL);
    app->acked = json_array();
    return 0;
}

void app_deinit(app_t *app)
{
    store_destroy(app->parts.feedback);
    app->parts.feedback = NULL;
    json_decref(app->acked);
    app->acked = NULL;
    pthread_mutex_destroy(&app->drive_mu);
    pthread_mutex_destroy(&app->acked_mu);
}

int app_setup(service_t *svc, void *ctx)
{
    app_t *app = ctx;
    app->svc = svc;
    if (app_init(app, service_store(svc), service_metrics(svc)) != 0) {
        return -1;
    }
    /* the driver and the REST list read these */
    static const store_index_t indexes[] = {
        {RUNS_COLLECTION, "{\"status\": 1, \"driver\": 1, \"created_ms\": 1}", false},
        {RUNS_COLLECTION, "{\"created_ms\": -1}", false},
        {OUTBOX_COLLECTION, "{\"published\": 1, \"timestamp\": 1}", false},
    };
    /* one replica drives a specialist's runs at a time: the lock retrainer:<database>:<specialist> */
    const service_config_t *sc = service_config(svc);
    if (app->cfg->run_lock_ttl_ms > 0) {
        app->redis =
            redis_sync_create(&(redis_sync_opts_t){.host = sc->redis_host, .port = (int)sc->redis_port});
        if (!app->redis || lock_token_generate(app->lock_token) != 0) {
            log_error("cannot set up the driver locks (Redis client)");
            return -1;
        }
        snprintf(app->lock_prefix, sizeof(app->lock_prefix), "retrainer:%s:", sc->mongodb_database);
    }
    int rc = store_ensure_indexes(service_store(svc), indexes, sizeof(indexes) / sizeof(indexes[0]));
    if (rc != 0) {
        log_warn("indexes not created", "code", hive_errname(rc), "error", store_last_error());
    }
    return 0;
}

size_t app_pending(void *ctx)
{
    return atomic_load(&((app_t *)ctx)->pending);
}

void app_teardown(service_t *svc, void *ctx)
{
    (void)svc;
    app_t *app = ctx;
    redis_sync_destroy(app->redis); /* locks still held expire after RUN_LOCK_TTL_MS */
    app->redis = NULL;
    app_deinit(app);
}

bool app_mlflow_ready(void *ctx)
{
    return atomic_load(&((app_t *)ctx)->mlflow_ok);
}

/* ---- models.degraded ------------------------------------------------------ */

kafka_verdict_t app_degradation(void *ctx, const rd_kafka_message_t *msg, avro_value_t *v, kafka_out_t *out,
                                char *reason, size_t rl)
{
    (void)msg;
    (void)out;
    app_t *app = ctx;
    const char *deg_id = NULL, *model = NULL;
    size_t len = 0;
    if (avro_get_string(v, "degradation_id", &deg_id, &len) != 0 ||
        avro_get_string(v, "model", &model, &len) != 0) {
        snprintf(reason, rl, "ModelDegradation without degradation_id or model");
        return KAFKA_BAD_INPUT;
    }
    /* the specialist: the model's name is {specialist}-evaluator[suffix] */
    char specialist[64] = "";
    const char *dash = strstr(model, "-evaluator");
    if (dash && (size_t)(dash - model) < sizeof(specialist)) {
        memcpy(specialist, model, (size_t)(dash - model));
        specialist[dash - model] = '\0';
    }
    if (!run_specialist_known(specialist)) {
        snprintf(reason, rl, "model %s is not {specialist}-evaluator of a known specialist", model);
        return KAFKA_BAD_INPUT;
    }
    run_request_t r = {.specialist = specialist,
                       .model = model,
                       .trigger = "degradation",
                       .degradation_id = deg_id,
                       .driver = "service",
                       .promote_if_better = app->cfg->promote_if_better};
    char run_id[136], err[512] = "";
    run_id_for_degradation(deg_id, run_id, sizeof(run_id));
    bool created = false;
    int rc = run_create(&app->rc, &r, run_id, timeutil_wall_ms(), NULL, &created, err, sizeof(err));
    if (rc == 0) {
        log_info("degradation received", "degradation_id", deg_id, "model", model, "run_id", run_id, "run",
                 created ? "created" : "known");
    }
    return verdict_for_error(rc, "creating the retrain run", err, reason, rl);
}

/* ---- the driver ----------------------------------------------------------- */

typedef struct {
    char id[300], key[200];
    void *buf;
    size_t len;
} msg_t;

typedef struct {
    app_t *app;
    msg_t *msgs;
    size_t n;
    size_t active;
} drive_t;

/* The ModelLifecycleEvent of an outbox entry, encoded. */
static int encode_event(app_t *app, const json_t *e, msg_t *m)
{
    avro_codec_t *codec = service_codec(app->svc);
    avro_value_t v;
    if (avro_codec_new_value(codec, "ModelLifecycleEvent", &v) != 0) {
        return HIVE_EINVAL;
    }
    avro_codec_apply_defaults(codec, &v);
    static const char *const opt[] = {"retrain_run_id", "mlflow_run_id", "degradation_id",
                                      "experiment_id",  "from_version",  "to_version"};
    int rc = avro_set_string(&v, "event_id", json_string_value(json_object_get(e, "event_id"))) ||
             avro_set_string(&v, "model", json_string_value(json_object_get(e, "model"))) ||
             avro_set_enum_name(&v, "event_type", json_string_value(json_object_get(e, "event_type"))) ||
             avro_set_string(&v, "reason", jget(e, "reason")) ||
             avro_set_string(&v, "step", jget(e, "step")) ||
             avro_set_string(&v, "specialist", jget(e, "specialist")) ||
             avro_set_long(&v, "timestamp", (int64_t)json_integer_value(json_object_get(e, "timestamp")));
    for (size_t i = 0; rc == 0 && i < sizeof(opt) / sizeof(opt[0]); i++) {
        const char *s = json_string_value(json_object_get(e, opt[i]));
        rc = s && *s ? avro_set_string(&v, opt[i], s) : avro_set_null(&v, opt[i]);
    }
    const char *k;
    json_t *x;
    json_object_foreach(json_object_get(e, "metrics"), k, x)
    {
        if (rc == 0 && json_is_number(x)) {
            rc = avro_set_map_double(&v, "metrics", k, json_number_value(x));
        }
    }
    char err[200];
    if (rc == 0) {
        rc = avro_codec_encode(codec, app->cfg->lifecycle_topic, &v, &m->buf, &m->len, err, sizeof(err));
        if (rc != 0) {
            log_warn("cannot encode a lifecycle event", "error", err);
        }
    } else {
        rc = HIVE_EINVAL;
    }
    avro_value_decref(&v);
    if (rc == 0) {
        snprintf(m->id, sizeof(m->id), "%s", json_string_value(json_object_get(e, "event_id")));
        snprintf(m->key, sizeof(m->key), "%s", json_string_value(json_object_get(e, "model")));
    }
    return rc;
}

static const char *const lock_specialists[5] = {"technical", "safety", "business", "ethical", "legal"};

static int specialist_index(const char *s)
{
    for (int i = 0; i < 5; i++) {
        if (s && strcmp(s, lock_specialists[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static void lock_for(const app_t *app, int idx, lock_t *l)
{
    snprintf(l->name, sizeof(l->name), "%s%s", app->lock_prefix, lock_specialists[idx]);
    memcpy(l->token, app->lock_token, sizeof(l->token));
}

/* May this replica drive specialist `idx`'s runs now? Takes retrainer:<db>:<specialist>, or renews it when
 * this replica holds it already. Another holder, or Redis unreachable: not now (the next pass tries again).
 */
static bool drive_lock(app_t *app, int idx)
{
    if (!app->redis) {
        return true;
    }
    lock_t l;
    lock_for(app, idx, &l);
    unsigned ttl = (unsigned)app->cfg->run_lock_ttl_ms;
    int rc = lock_sync_acquire(app->redis, &l, ttl);
    if (rc == HIVE_EBUSY) {
        rc = lock_sync_extend(app->redis, &l, ttl);
    }
    if (rc != 0 && rc != HIVE_ENOTHELD) {
        log_warn("driver lock not taken; runs wait", "lock", l.name, "code", hive_errname(rc));
    }
    if (rc == 0 && !app->locked[idx]) {
        log_info("driving the runs of a specialist", "lock", l.name);
    }
    app->locked[idx] = rc == 0;
    return rc == 0;
}

/* Releases the locks of specialists without a running run this pass. */
static void drive_unlock_idle(app_t *app, const bool active[5])
{
    for (int i = 0; app->redis && i < 5; i++) {
        if (app->locked[i] && !active[i]) {
            lock_t l;
            lock_for(app, i, &l);
            lock_sync_release(app->redis, &l);
            app->locked[i] = false;
        }
    }
}

static void drive_work(void *arg)
{
    drive_t *d = arg;
    app_t *app = d->app;
    char err[512];
    pthread_mutex_lock(&app->drive_mu);
    /* 1. the events the broker acknowledged since the last pass */
    pthread_mutex_lock(&app->acked_mu);
    json_t *acked = app->acked;
    app->acked = json_array();
    pthread_mutex_unlock(&app->acked_mu);
    size_t i;
    json_t *id;
    json_array_foreach(acked, i, id)
    {
        if (run_outbox_mark(&app->rc, json_string_value(id), err, sizeof(err)) != 0) {
            log_warn("driver", "error", err);
        }
    }
    json_decref(acked);
    /* 2. every running run, each as far as it goes now */
    char(*ids)[136] = calloc(DRIVE_MAX_RUNS, sizeof(*ids));
    size_t n = 0;
    if (ids && run_active(&app->rc, "service", ids, DRIVE_MAX_RUNS, &n, err, sizeof(err)) != 0) {
        log_warn("driver", "error", err);
    }
    d->active = n;
    bool active[5] = {false}, decided[5] = {false}, mine[5] = {false};
    for (size_t r = 0; r < n; r++) {
        json_t *doc = NULL;
        int idx = -1;
        if (app->redis) {
            if (run_get(&app->rc, ids[r], &doc, err, sizeof(err)) != 0) {
                log_warn("driver", "run_id", ids[r], "error", err);
                continue;
            }
            idx = specialist_index(json_string_value(json_object_get(doc, "specialist")));
            json_decref(doc);
            if (idx < 0) {
                continue;
            }
            active[idx] = true;
            if (!decided[idx]) {
                mine[idx] = drive_lock(app, idx);
                decided[idx] = true;
            }
            if (!mine[idx]) {
                continue; /* another replica drives this specialist's runs */
            }
        }
        bool more = true;
        for (int steps = 0; more && steps < 10; steps++) {
            if (run_advance(&app->rc, ids[r], timeutil_wall_ms(), &more, NULL, err, sizeof(err)) != 0) {
                log_warn("run step failed; retried on the next pass", "run_id", ids[r], "error", err);
                more = false;
            }
        }
    }
    free(ids);
    drive_unlock_idle(app, active);
    /* 3. the outbox, encoded for the producer */
    json_t *events = NULL;
    if (run_outbox_pending(&app->rc, OUTBOX_BATCH, &events, err, sizeof(err)) == 0 &&
        json_array_size(events)) {
        d->msgs = calloc(json_array_size(events), sizeof(msg_t));
        json_t *e;
        json_array_foreach(events, i, e)
        {
            if (d->msgs && encode_event(app, e, &d->msgs[d->n]) == 0) {
                d->n++;
            }
        }
    }
    json_decref(events);
    /* 4. MLflow's health, for /ready */
    char url[600];
    snprintf(url, sizeof(url), "%s/health", app->cfg->mlflow_uri);
    long code = 0;
    bool ok =
        httpc_sync_request("GET", url, NULL, NULL, 0, 2000, &code, NULL, NULL, NULL, 0) == 0 && code == 200;
    atomic_store(&app->mlflow_ok, ok);
    pthread_mutex_unlock(&app->drive_mu);
}

static void on_delivery(void *arg, rd_kafka_resp_err_t err)
{
    char *id = arg;
    app_t *app = *(app_t **)id;
    const char *event_id = id + sizeof(app_t *);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pthread_mutex_lock(&app->acked_mu);
        json_array_append_new(app->acked, json_string(event_id));
        pthread_mutex_unlock(&app->acked_mu);
    } else {
        log_warn("lifecycle event not delivered; sent again later", "event_id", event_id, "error",
                 rd_kafka_err2str(err));
    }
    free(id);
}

static void drive_done(void *arg, int status)
{
    drive_t *d = arg;
    app_t *app = d->app;
    (void)status;
    if (app->m_runs) {
        metric_set(app->m_runs, (double)d->active);
    }
    kafka_producer_t *p = service_producer(app->svc);
    for (size_t i = 0; i < d->n; i++) {
        msg_t *m = &d->msgs[i];
        size_t idlen = strlen(m->id) + 1;
        char *arg2 = malloc(sizeof(app_t *) + idlen);
        if (arg2) {
            memcpy(arg2, &app, sizeof(app_t *));
            memcpy(arg2 + sizeof(app_t *), m->id, idlen);
            if (kafka_producer_send(p, app->cfg->lifecycle_topic, m->key, strlen(m->key), m->buf, m->len,
                                    NULL, on_delivery, arg2) != 0) {
                free(arg2);
            }
        }
        free(m->buf);
    }
    free(d->msgs);
    free(d);
    atomic_store(&app->driving, false);
    atomic_fetch_sub(&app->pending, 1);
}

void app_drive(void *ctx)
{
    app_t *app = ctx;
    if (atomic_exchange(&app->driving, true)) {
        return; /* the last pass is still running */
    }
    drive_t *d = calloc(1, sizeof(*d));
    if (!d) {
        atomic_store(&app->driving, false);
        return;
    }
    d->app = app;
    atomic_fetch_add(&app->pending, 1);
    if (offload_run(service_loop(app->svc), drive_work, drive_done, d) != 0) {
        atomic_fetch_sub(&app->pending, 1);
        atomic_store(&app->driving, false);
        free(d);
    }
}
