/* steps_parts: the dataset and notify steps over the parts library. See steps_parts.h. */
#include "steps_parts.h"

#include "fnv.h"
#include "hive_err.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef RETRAINER_HAVE_PARTS
#include "dataset.h"
#include "notify.h"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

#ifdef RETRAINER_HAVE_PARTS

bool parts_available(void)
{
    return true;
}

/* The last 1,000 feedback documents of the specialist, appended to the dataset. */
typedef struct {
    bson_t *docs[1000];
    size_t n;
} fb_t;

static int each_fb(void *arg, const bson_t *doc)
{
    fb_t *f = arg;
    if (f->n < 1000) {
        f->docs[f->n++] = bson_copy(doc);
    }
    return 0;
}

int parts_dataset(const run_conf_t *c, const char *specialist, const char *run_id, bool reuse,
                  parts_dataset_t *out, char *why, size_t whylen)
{
    const parts_conf_t *p = c->parts;
    double t0 = now_s();
    memset(out, 0, sizeof(*out));
    int removed = 0;
    dataset_cleanup(c->dataset_dir, (int)c->dataset_max_age_days, &removed);
    int rc;
    if (reuse) {
        rc = dataset_latest(c->dataset_dir, specialist, out->path, sizeof(out->path));
        if (rc != 0) {
            snprintf(why, whylen, "--skip-dataset-generation: no dataset of %s in %s", specialist,
                     c->dataset_dir);
        }
        out->duration_s = now_s() - t0;
        return rc;
    }
    dataset_config_t dc = {.dir = c->dataset_dir,
                           .num_samples = (int)c->num_samples,
                           .max_age_days = (int)c->dataset_max_age_days,
                           .llm_provider = p ? p->llm_provider : NULL,
                           .llm_model = p ? p->llm_model : NULL,
                           .llm_base_url = p ? p->llm_base_url : NULL,
                           .llm_api_key = p ? p->llm_api_key : NULL,
                           .llm_temperature = p ? p->llm_temperature : 0.7,
                           .llm_timeout_s = p ? (int)p->llm_timeout_s : 1800,
                           .seed = fnv1a64(FNV1A64_INIT, run_id, strlen(run_id))};
    dataset_result_t r;
    rc = dataset_generate(&dc, specialist, &r);
    if (rc != 0) {
        snprintf(why, whylen, "dataset generation failed: %s", hive_strerror(rc));
        out->duration_s = now_s() - t0;
        return rc;
    }
    snprintf(out->path, sizeof(out->path), "%s", r.path);
    out->samples = r.samples;
    out->from_llm = r.from_llm;
    out->llm_errors = r.llm_errors;
    if (p && p->feedback) {
        fb_t *f = calloc(1, sizeof(*f));
        bson_t *filter = BCON_NEW("specialist_type", BCON_UTF8(specialist));
        bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "}", "limit", BCON_INT64(1000));
        if (f && store_find(p->feedback, p->feedback_collection, filter, opts, each_fb, f) == 0) {
            int appended = 0;
            if (dataset_append_feedback(out->path, (const bson_t *const *)f->docs, f->n, &appended) == 0) {
                out->from_feedback = appended;
                out->samples += appended;
            }
        }
        for (size_t i = 0; f && i < f->n; i++) {
            bson_destroy(f->docs[i]);
        }
        free(f);
        bson_destroy(filter);
        bson_destroy(opts);
    }
    out->duration_s = now_s() - t0;
    return 0;
}

void parts_notify(const run_conf_t *c, const json_t *doc, bool success, char *detail, size_t len)
{
    const parts_conf_t *p = c->parts;
    const json_t *o = json_object_get(doc, "options");
    int ok = 0;
    unsigned channels = notify_parse_channels(jstr(o, "notification_channels"), &ok);
    if (!p || channels == 0) {
        snprintf(detail, len, "no notification channel");
        return;
    }
    notify_config_t nc = {.channels = channels,
                          .slack_webhook_url = p->slack_webhook_url,
                          .slack_channel = p->slack_channel,
                          .smtp_host = p->smtp_host,
                          .smtp_port = (int)p->smtp_port,
                          .smtp_user = p->smtp_user,
                          .smtp_password = p->smtp_password,
                          .smtp_from = p->smtp_from,
                          .email_recipients = p->email_recipients,
                          .retries = (int)p->notify_retries,
                          .timeout_ms = (int)p->notify_timeout_ms};
    const json_t *base = json_object_get(doc, "baseline");
    const json_t *cm = json_object_get(json_object_get(doc, "candidate"), "metrics");
    notify_event_t ev = {.success = success,
                         .specialist = jstr(doc, "specialist"),
                         .retrain_id = jstr(doc, "run_id"),
                         .mlflow_run_id = jstr(json_object_get(doc, "mlflow"), "run_id"),
                         .improved = json_is_true(json_object_get(doc, "promoted")),
                         .baseline_f1 = json_number_value(json_object_get(base, "f1_score")),
                         .new_f1 = json_number_value(json_object_get(cm, "f1_score")),
                         .error = jstr(doc, "error"),
                         .action =
                             success ? "" : "read the run (GET /api/v1/runs/{id}) and the trainer's log"};
    notify_outcome_t out[2] = {{0}};
    notify_send(&nc, &ev, out);
    static const char *const names[2] = {"slack", "email"};
    for (int i = 0; i < 2 && c->m_notifications; i++) {
        if (out[i].sent) {
            metric_add(c->m_notifications, (double)out[i].sent, names[i], "sent");
        }
        if (out[i].failed) {
            metric_add(c->m_notifications, (double)out[i].failed, names[i], "failed");
        }
    }
    snprintf(detail, len, "slack sent %d failed %d%s%s; email sent %d failed %d%s%s", out[0].sent,
             out[0].failed, out[0].failed ? ": " : "", out[0].failed ? out[0].error : "", out[1].sent,
             out[1].failed, out[1].failed ? ": " : "", out[1].failed ? out[1].error : "");
}

#else /* the built-in synthetic generator */

bool parts_available(void)
{
    return false;
}

#define SYNTH_FEATURES 8

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double gauss(uint64_t *s)
{
    double u = ((double)(next(s) >> 11) + 1.0) / 9007199254740993.0;
    double v = (double)(next(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Deletes the datasets older than `days`. */
static void cleanup(const char *dir, long days)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    time_t limit = time(NULL) - days * 86400;
    while (d && (e = readdir(d))) {
        char p[1024];
        struct stat st;
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jsonl") != 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && st.st_mtime < limit) {
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
}

static int latest(const char *dir, const char *specialist, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    time_t best = 0;
    size_t pl = strlen(specialist);
    while (d && (e = readdir(d))) {
        char p[1024];
        struct stat st;
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jsonl") != 0 || strncmp(e->d_name, specialist, pl) != 0 ||
            e->d_name[pl] != '-') {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && st.st_mtime >= best) {
            best = st.st_mtime;
            size_t n2 = strlen(p);
            if (n2 < len) {
                memcpy(out, p, n2 + 1);
            }
        }
    }
    if (d) {
        closedir(d);
    }
    return best ? 0 : HIVE_ENOTFOUND;
}

int parts_dataset(const run_conf_t *c, const char *specialist, const char *run_id, bool reuse,
                  parts_dataset_t *out, char *why, size_t whylen)
{
    double t0 = now_s();
    memset(out, 0, sizeof(*out));
    cleanup(c->dataset_dir, c->dataset_max_age_days);
    if (reuse) {
        int rc = latest(c->dataset_dir, specialist, out->path, sizeof(out->path));
        if (rc != 0) {
            snprintf(why, whylen, "--skip-dataset-generation: no dataset of %s in %s", specialist,
                     c->dataset_dir);
        }
        out->duration_s = now_s() - t0;
        return rc;
    }
    snprintf(out->path, sizeof(out->path), "%s/%s-%s.jsonl", c->dataset_dir, specialist, run_id);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out->path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
        return HIVE_EINVAL;
    }
    /* a noisy linear rule over K standard normal features: learnable, not trivially */
    uint64_t s = fnv1a64(FNV1A64_INIT, run_id, strlen(run_id)) | 1;
    static const double w[SYNTH_FEATURES] = {1.0, 0.8, -0.6, 0.5, 0.0, 0.0, 0.3, -0.2};
    for (long i = 0; i < c->num_samples; i++) {
        double x[SYNTH_FEATURES], z = 0.3 * gauss(&s);
        fputs("{\"features\":[", f);
        for (int k = 0; k < SYNTH_FEATURES; k++) {
            x[k] = gauss(&s);
            z += w[k] * x[k];
            fprintf(f, "%s%.6f", k ? "," : "", x[k]);
        }
        fprintf(f, "],\"label\":%d,\"source\":\"synthetic\"}\n", z > 0 ? 1 : 0);
    }
    int bad = ferror(f);
    bad |= fclose(f);
    if (bad || rename(tmp, out->path) != 0) {
        unlink(tmp);
        snprintf(why, whylen, "cannot write %s", out->path);
        return HIVE_EINVAL;
    }
    out->samples = (int)c->num_samples;
    out->duration_s = now_s() - t0;
    return 0;
}

void parts_notify(const run_conf_t *c, const json_t *doc, bool success, char *detail, size_t len)
{
    (void)c;
    const char *ch = jstr(json_object_get(doc, "options"), "notification_channels");
    snprintf(detail, len, "%s%s",
             *ch ? "notifications not built in this binary; not sent to: " : "no notification channel", ch);
    (void)success;
}

#endif
