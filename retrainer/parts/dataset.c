/* dataset: synthetic and LLM samples, feedback merge, cleanup. See dataset.h. */
#include "dataset.h"

#include "fnv.h"
#include "hive_err.h"
#include "httpc_sync.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define K DATASET_NUM_FEATURES

static _Thread_local char last_err[384];

const char *dataset_error(void)
{
    return last_err;
}

__attribute__((format(printf, 2, 3))) static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof(last_err), fmt, ap);
    va_end(ap);
    return code;
}

/* ---- pure: synthetic samples, text features ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

static double gauss(uint64_t *s)
{
    double u1 = uniform01(s), u2 = uniform01(s);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

/* The specialist's hidden rule: weights of magnitude [0.5, 2] with random
 * signs, and a bias that puts the boundary through the middle of the cube. */
static void synth_rule(const char *specialist, double w[K], double *bias)
{
    uint64_t s = fnv1a64_str(FNV1A64_INIT, specialist);
    double sum = 0;
    for (int j = 0; j < K; j++) {
        double mag = 0.5 + 1.5 * uniform01(&s);
        w[j] = (splitmix64(&s) & 1) ? mag : -mag;
        sum += w[j];
    }
    *bias = -sum / 2.0;
}

void dataset_synth_sample(const char *specialist, uint64_t seed, uint64_t i, dataset_sample_t *out)
{
    double w[K], bias;
    synth_rule(specialist, w, &bias);
    uint64_t s = fnv1a64_str(FNV1A64_INIT, specialist);
    s = fnv1a64(s, &seed, sizeof(seed));
    s = fnv1a64(s, &i, sizeof(i));
    double score = bias;
    for (int j = 0; j < K; j++) {
        out->features[j] = uniform01(&s);
        score += w[j] * out->features[j];
    }
    out->label = score + DATASET_SYNTH_NOISE * gauss(&s) > 0 ? 1 : 0;
}

void dataset_text_features(const char *text, double out[K])
{
    double count[K] = {0};
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    while (*p) {
        while (*p && !isalnum(*p)) {
            p++;
        }
        uint64_t h = FNV1A64_INIT;
        bool any = false;
        while (*p && isalnum(*p)) {
            unsigned char c = (unsigned char)tolower(*p++);
            h = fnv1a64(h, &c, 1);
            any = true;
        }
        if (any) {
            count[h % K] += 1;
        }
    }
    double max = 0;
    for (int j = 0; j < K; j++) {
        max = count[j] > max ? count[j] : max;
    }
    for (int j = 0; j < K; j++) {
        out[j] = max > 0 ? count[j] / max : 0;
    }
}

/* ---- files ---- */

static bool valid_specialist(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

static bool is_dataset_name(const char *name, const char *specialist)
{
    const char *tag = "-dataset-";
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 6, ".jsonl") != 0) {
        return false;
    }
    if (!specialist) {
        return strstr(name, tag) != NULL;
    }
    size_t sl = strlen(specialist);
    return strncmp(name, specialist, sl) == 0 && strncmp(name + sl, tag, strlen(tag)) == 0;
}

/* Appends one sample line; `text` may be NULL. */
static int write_sample(FILE *f, const dataset_sample_t *s, const char *source, const char *text)
{
    json_t *feats = json_array();
    json_t *line = json_object();
    int rc = HIVE_ENOMEM;
    if (!feats || !line) {
        goto out;
    }
    for (int j = 0; j < K; j++) {
        /* six decimals: the files stay small and readable */
        if (json_array_append_new(feats, json_real(round(s->features[j] * 1e6) / 1e6)) != 0) {
            goto out;
        }
    }
    if (json_object_set(line, "features", feats) != 0 ||
        json_object_set_new(line, "label", json_integer(s->label)) ||
        json_object_set_new(line, "source", json_string(source)) ||
        (text && text[0] && json_object_set_new(line, "text", json_string(text)))) {
        goto out;
    }
    char *str = json_dumps(line, JSON_COMPACT);
    if (!str) {
        goto out;
    }
    rc = fprintf(f, "%s\n", str) < 0 ? fail(HIVE_EUNAVAILABLE, "write: %s", strerror(errno)) : 0;
    free(str);
out:
    json_decref(feats);
    json_decref(line);
    return rc;
}

/* ---- LLM providers ---- */

typedef enum { LLM_NONE, LLM_OLLAMA, LLM_OPENAI, LLM_ANTHROPIC } llm_kind_t;

static int llm_kind(const char *provider, llm_kind_t *out)
{
    if (!provider || !provider[0]) {
        *out = LLM_NONE;
    } else if (strcmp(provider, "local") == 0 || strcmp(provider, "ollama") == 0) {
        *out = LLM_OLLAMA;
    } else if (strcmp(provider, "openai") == 0) {
        *out = LLM_OPENAI;
    } else if (strcmp(provider, "anthropic") == 0) {
        *out = LLM_ANTHROPIC;
    } else {
        return fail(HIVE_EINVAL, "unknown LLM provider '%s' (local, ollama, openai, anthropic)", provider);
    }
    return 0;
}

static const char *SYSTEM_PROMPT =
    "You generate labelled training samples for a binary evaluator that approves (1) or rejects (0) "
    "cognitive plans. Answer with one JSON object only, no prose.";

static char *llm_prompt(const char *specialist, int n)
{
    char *p = NULL;
    if (asprintf(&p,
                 "Generate %d varied training samples for the '%s' specialist. Each sample describes one "
                 "plan by %d numeric signals in [0, 1] (risk, complexity, cost, coverage, confidence, "
                 "urgency, novelty, compliance), a short text summary, and the label: 1 if the specialist "
                 "should approve the plan, 0 if not. Answer exactly: "
                 "{\"samples\": [{\"features\": [%d numbers], \"label\": 0 or 1, \"text\": \"...\"}]}",
                 n, specialist, K, K) < 0) {
        return NULL;
    }
    return p;
}

/* The request body of `kind` as a JSON string (malloc'd). */
static char *llm_body(llm_kind_t kind, const dataset_config_t *cfg, const char *prompt)
{
    const char *model = cfg->llm_model && cfg->llm_model[0] ? cfg->llm_model : "llama2";
    json_t *b = NULL;
    switch (kind) {
    case LLM_OLLAMA:
        b = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:b, s:s, s:{s:f}}", "model", model, "messages",
                      "role", "system", "content", SYSTEM_PROMPT, "role", "user", "content", prompt, "stream",
                      0, "format", "json", "options", "temperature", cfg->llm_temperature);
        break;
    case LLM_OPENAI:
        b = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:{s:s}}", "model", model, "messages", "role",
                      "system", "content", SYSTEM_PROMPT, "role", "user", "content", prompt, "temperature",
                      cfg->llm_temperature, "response_format", "type", "json_object");
        break;
    case LLM_ANTHROPIC:
        b = json_pack("{s:s, s:i, s:s, s:[{s:s, s:s}], s:f}", "model", model, "max_tokens", 4096, "system",
                      SYSTEM_PROMPT, "messages", "role", "user", "content", prompt, "temperature",
                      cfg->llm_temperature);
        break;
    case LLM_NONE:
        break;
    }
    char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return s;
}

/* The generated text inside a provider's answer (borrowed from `answer`). */
static const char *llm_answer_text(llm_kind_t kind, json_t *answer)
{
    json_t *t = NULL;
    switch (kind) {
    case LLM_OLLAMA: /* /api/chat: {"message":{"role":"assistant","content":"..."},"done":true} */
        t = json_object_get(json_object_get(answer, "message"), "content");
        break;
    case LLM_OPENAI: /* {"choices":[{"message":{"role":"assistant","content":"..."}}]} */
        t = json_object_get(json_object_get(json_array_get(json_object_get(answer, "choices"), 0), "message"),
                            "content");
        break;
    case LLM_ANTHROPIC: { /* {"content":[{"type":"text","text":"..."}], "stop_reason":...} */
        json_t *parts = json_object_get(answer, "content");
        size_t i;
        json_t *part;
        json_array_foreach(parts, i, part)
        {
            const char *type = json_string_value(json_object_get(part, "type"));
            if (type && strcmp(type, "text") == 0) {
                t = json_object_get(part, "text");
                break;
            }
        }
        break;
    }
    case LLM_NONE:
        break;
    }
    return json_string_value(t);
}

/* Parses the model's text: a JSON object {"samples":[...]} (or a bare array),
 * possibly wrapped in prose or a code fence. Returns a new reference to the
 * array or NULL. */
static json_t *llm_samples(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc) {
        const char *a = strchr(text, '{'), *b = strrchr(text, '}');
        if (a && b && b > a) {
            doc = json_loadb(a, (size_t)(b - a + 1), 0, NULL);
        }
    }
    json_t *arr = json_is_array(doc) ? doc : json_object_get(doc, "samples");
    if (!json_is_array(arr)) {
        json_decref(doc);
        return NULL;
    }
    json_incref(arr);
    json_decref(doc);
    return arr;
}

static bool sample_of_json(json_t *js, dataset_sample_t *s)
{
    json_t *f = json_object_get(js, "features"), *l = json_object_get(js, "label");
    if (json_array_size(f) != K || !json_is_integer(l) ||
        (json_integer_value(l) != 0 && json_integer_value(l) != 1)) {
        return false;
    }
    for (int j = 0; j < K; j++) {
        json_t *v = json_array_get(f, (size_t)j);
        if (!json_is_number(v)) {
            return false;
        }
        double d = json_number_value(v);
        if (!(d >= 0 && d <= 1)) {
            return false;
        }
        s->features[j] = d;
    }
    s->label = (int)json_integer_value(l);
    return true;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Asks the LLM for up to `want` samples and writes the valid ones to `f`.
 * Returns the number written (> 0), or a negative HIVE_E* code with
 * dataset_error() set; *fatal tells a failure of our own (memory, the file)
 * from one of the LLM. */
static int llm_batch(llm_kind_t kind, const dataset_config_t *cfg, const char *specialist, int want,
                     long timeout_ms, FILE *f, bool *fatal)
{
    static const char *defaults[] = {[LLM_OLLAMA] = "http://127.0.0.1:11434",
                                     [LLM_OPENAI] = "https://api.openai.com",
                                     [LLM_ANTHROPIC] = "https://api.anthropic.com"};
    static const char *paths[] = {
        [LLM_OLLAMA] = "/api/chat", [LLM_OPENAI] = "/v1/chat/completions", [LLM_ANTHROPIC] = "/v1/messages"};
    const char *base = cfg->llm_base_url && cfg->llm_base_url[0] ? cfg->llm_base_url : defaults[kind];
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') {
        bl--;
    }
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, paths[kind]);
    const char *headers[3] = {NULL, NULL, NULL};
    const char *key = cfg->llm_api_key ? cfg->llm_api_key : "";
    if (kind == LLM_OPENAI) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        headers[0] = auth;
    } else if (kind == LLM_ANTHROPIC) {
        snprintf(auth, sizeof(auth), "x-api-key: %s", key);
        headers[0] = auth;
        headers[1] = "anthropic-version: 2023-06-01";
    }
    char *prompt = llm_prompt(specialist, want);
    char *body = prompt ? llm_body(kind, cfg, prompt) : NULL;
    char *answer = NULL, err[256];
    long code = 0;
    json_t *doc = NULL, *arr = NULL;
    int rc;
    if (!body) {
        *fatal = true;
        rc = fail(HIVE_ENOMEM, "LLM request: out of memory");
        goto out;
    }
    rc = httpc_sync_request_headers("POST", url, "application/json", headers, body, strlen(body), timeout_ms,
                                    &code, &answer, NULL, err, sizeof(err));
    if (rc != 0) {
        rc = fail(rc, "LLM %s: %s (%s)", url, hive_strerror(rc), err);
        goto out;
    }
    if (code != 200) {
        rc = fail(code >= 500 || code == 429 ? HIVE_ESERVER : HIVE_EREJECTED, "LLM %s: HTTP %ld: %.200s", url,
                  code, answer);
        goto out;
    }
    const char *text = (doc = json_loads(answer, 0, NULL)) ? llm_answer_text(kind, doc) : NULL;
    if (!text || !(arr = llm_samples(text))) {
        rc = fail(HIVE_EPROTO, "LLM %s: no samples in the answer: %.200s", url, answer);
        goto out;
    }
    int written = 0;
    size_t i;
    json_t *js;
    json_array_foreach(arr, i, js)
    {
        dataset_sample_t s;
        if (written == want || !sample_of_json(js, &s)) {
            continue;
        }
        if ((rc = write_sample(f, &s, "llm", json_string_value(json_object_get(js, "text")))) != 0) {
            *fatal = true;
            goto out;
        }
        written++;
    }
    rc = written > 0 ? written
                     : fail(HIVE_EPROTO, "LLM %s: none of %zu samples valid", url, json_array_size(arr));
out:
    json_decref(arr);
    json_decref(doc);
    free(answer);
    free(body);
    free(prompt);
    return rc;
}

/* ---- public ---- */

static int make_dir(const char *dir)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
        return fail(HIVE_EINVAL, "dataset dir too long");
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return fail(HIVE_EUNAVAILABLE, "mkdir %s: %s", buf, strerror(errno));
            }
            if (!c) {
                return 0;
            }
            *p = c;
        }
    }
}

int dataset_generate(const dataset_config_t *cfg, const char *specialist, dataset_result_t *out)
{
    last_err[0] = '\0';
    llm_kind_t kind = LLM_NONE;
    if (!cfg || !out || !cfg->dir || !cfg->dir[0] || cfg->num_samples <= 0) {
        return fail(HIVE_EINVAL, "dataset: a directory and num_samples > 0 are required");
    }
    if (!valid_specialist(specialist)) {
        return fail(HIVE_EINVAL, "dataset: bad specialist name '%s'", specialist ? specialist : "(null)");
    }
    int rc = llm_kind(cfg->llm_provider, &kind);
    if (rc != 0 || (rc = make_dir(cfg->dir)) != 0) {
        return rc;
    }
    double t0 = mono_s();
    dataset_result_t r = {0};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[32], tmp[600];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
    int n = snprintf(r.path, sizeof(r.path), "%s/%s-dataset-%s.%03ldZ.jsonl", cfg->dir, specialist, stamp,
                     now.tv_nsec / 1000000);
    if (n >= (int)sizeof(r.path)) {
        return fail(HIVE_EINVAL, "dataset dir too long");
    }
    snprintf(tmp, sizeof(tmp), "%s.partial", r.path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return fail(HIVE_EUNAVAILABLE, "open %s: %s", tmp, strerror(errno));
    }
    double budget = cfg->llm_timeout_s > 0 ? cfg->llm_timeout_s : 1800;
    bool llm = kind != LLM_NONE;
    uint64_t i = 0;
    while (r.samples < cfg->num_samples) {
        int want = cfg->num_samples - r.samples;
        if (llm) {
            long left_ms = (long)((budget - (mono_s() - t0)) * 1000);
            bool fatal = false;
            int batch = want < DATASET_LLM_BATCH ? want : DATASET_LLM_BATCH;
            int got = left_ms > 0 ? llm_batch(kind, cfg, specialist, batch, left_ms, f, &fatal)
                                  : fail(HIVE_ETIMEDOUT, "LLM: the %.0f s budget is spent", budget);
            if (got > 0) {
                r.samples += got;
                r.from_llm += got;
                continue;
            }
            if (fatal) {
                rc = got;
                goto fail_file;
            }
            /* The LLM failed: the rest is synthetic; last_err keeps why. */
            r.llm_errors++;
            llm = false;
            continue;
        }
        dataset_sample_t s;
        dataset_synth_sample(specialist, cfg->seed, i++, &s);
        if ((rc = write_sample(f, &s, "synthetic", NULL)) != 0) {
            goto fail_file;
        }
        r.samples++;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = fail(HIVE_EUNAVAILABLE, "write %s: %s", tmp, strerror(errno));
        goto fail_file;
    }
    fclose(f);
    if (rename(tmp, r.path) != 0) {
        rc = fail(HIVE_EUNAVAILABLE, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    r.duration_s = mono_s() - t0;
    *out = r;
    return 0;
fail_file:
    fclose(f);
    unlink(tmp);
    return rc;
}

int dataset_append_feedback(const char *path, const bson_t *const *docs, size_t n, int *appended)
{
    last_err[0] = '\0';
    if (!path || (n && !docs)) {
        return fail(HIVE_EINVAL, "dataset_append_feedback: path and docs are required");
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        return fail(errno == ENOENT ? HIVE_ENOTFOUND : HIVE_EUNAVAILABLE, "open %s: %s", path,
                    strerror(errno));
    }
    int added = 0, rc = 0;
    for (size_t d = 0; d < n; d++) {
        bson_iter_t it;
        if (!docs[d] || !bson_iter_init_find(&it, docs[d], "rating") || !BSON_ITER_HOLDS_NUMBER(&it)) {
            continue;
        }
        double rating = bson_iter_as_double(&it);
        if (!(rating >= 0 && rating <= 1)) {
            continue;
        }
        dataset_sample_t s = {.label = rating >= DATASET_FEEDBACK_POSITIVE ? 1 : 0};
        const char *text = NULL;
        bool have = false;
        bson_iter_t arr;
        if (bson_iter_init_find(&it, docs[d], "features") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &arr)) {
            int j = 0;
            have = true;
            while (bson_iter_next(&arr)) {
                double v = BSON_ITER_HOLDS_NUMBER(&arr) ? bson_iter_as_double(&arr) : -1;
                if (j >= K || !(v >= 0 && v <= 1)) {
                    have = false;
                    break;
                }
                s.features[j++] = v;
            }
            have = have && j == K;
        }
        const char *keys[] = {"text", "comment"};
        for (size_t k = 0; k < 2 && !text; k++) {
            if (bson_iter_init_find(&it, docs[d], keys[k]) && BSON_ITER_HOLDS_UTF8(&it)) {
                text = bson_iter_utf8(&it, NULL);
            }
        }
        if (!have && !(text && text[0])) {
            continue;
        }
        if (!have) {
            dataset_text_features(text, s.features);
        }
        if ((rc = write_sample(f, &s, "feedback", text)) != 0) {
            break;
        }
        added++;
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = fail(HIVE_EUNAVAILABLE, "write %s: %s", path, strerror(errno));
    }
    if (rc == 0 && appended) {
        *appended = added;
    }
    return rc;
}

int dataset_cleanup(const char *dir, int max_age_days, int *removed)
{
    last_err[0] = '\0';
    if (!dir || max_age_days <= 0) {
        return fail(HIVE_EINVAL, "dataset_cleanup: a directory and max_age_days > 0 are required");
    }
    DIR *d = opendir(dir);
    int count = 0;
    if (!d) {
        if (errno != ENOENT) {
            return fail(HIVE_EUNAVAILABLE, "opendir %s: %s", dir, strerror(errno));
        }
    } else {
        time_t cutoff = time(NULL) - (time_t)max_age_days * 86400;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[1024];
            struct stat st;
            if (!is_dataset_name(e->d_name, NULL) ||
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p) || stat(p, &st) != 0 ||
                !S_ISREG(st.st_mode) || st.st_mtime >= cutoff) {
                continue;
            }
            if (unlink(p) == 0) {
                count++;
            }
        }
        closedir(d);
    }
    if (removed) {
        *removed = count;
    }
    return 0;
}

int dataset_latest(const char *dir, const char *specialist, char *path, size_t len)
{
    last_err[0] = '\0';
    if (!dir || !path || !len || !valid_specialist(specialist)) {
        return fail(HIVE_EINVAL, "dataset_latest: a directory, a valid specialist and a buffer are required");
    }
    DIR *d = opendir(dir);
    if (!d) {
        return fail(errno == ENOENT ? HIVE_ENOTFOUND : HIVE_EUNAVAILABLE, "opendir %s: %s", dir,
                    strerror(errno));
    }
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (is_dataset_name(e->d_name, specialist) && strlen(e->d_name) < sizeof(best) &&
            strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    closedir(d);
    if (!best[0]) {
        return fail(HIVE_ENOTFOUND, "no dataset of '%s' in %s", specialist, dir);
    }
    if (strlen(dir) + 1 + strlen(best) >= len) {
        return fail(HIVE_ETOOBIG, "dataset path longer than %zu", len);
    }
    snprintf(path, len, "%s/%s", dir, best);
    return 0;
}
