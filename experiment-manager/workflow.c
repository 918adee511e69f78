/* workflow: see workflow.h. */
#include "workflow.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *const workflow_steps[WORKFLOW_NSTEPS] = {
    "setup-baseline", "setup-experimental", "traffic-split", "monitor", "collect", "analyze", "cleanup",
};

void workflow_name(const char *id, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "experiment-");
    size_t max = cap - 1 < 63 ? cap - 1 : 63;
    for (const char *p = id; *p && n < max; p++) {
        unsigned char c = (unsigned char)*p;
        out[n++] = isalnum(c) ? (char)tolower(c) : '-';
    }
    while (n > 0 && out[n - 1] == '-') {
        n--; /* a DNS-1123 name ends with an alphanumeric */
    }
    out[n] = '\0';
}

/* The id as one URL path segment. */
static void path_escape(const char *id, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const char *p = id; *p && n + 4 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

static json_t *http_step(const char *name, const char *url, const char *condition, json_t *retry)
{
    json_t *t = json_pack("{s:s, s:{s:s, s:s, s:s, s:i}}", "name", name, "http", "url", url, "method", "GET",
                          "successCondition", condition, "timeoutSeconds", 30);
    if (t && retry) {
        json_object_set_new(t, "retryStrategy", retry);
    } else {
        json_decref(retry);
    }
    return t;
}

json_t *workflow_render(const workflow_spec_t *s)
{
    if (!s || !s->id || !s->type || !s->manager_url) {
        return NULL;
    }
    char name[64], seg[3 * 129 + 1], exp_url[1024], res_url[1024], split[32];
    workflow_name(s->id, name, sizeof(name));
    path_escape(s->id, seg, sizeof(seg));
    snprintf(exp_url, sizeof(exp_url), "%s/api/v1/experiments/%s", s->manager_url, seg);
    snprintf(res_url, sizeof(res_url), "%s/api/v1/experiments/%s/results", s->manager_url, seg);
    snprintf(split, sizeof(split), "%.17g", s->traffic_split);
    long interval = s->interval_s > 0 ? s->interval_s : 60;
    long polls = s->duration_s > 0 ? s->duration_s / interval + 2 : 1000;
    char backoff[32];
    snprintf(backoff, sizeof(backoff), "%lds", interval);

    const char *registered = "response.statusCode == 200";
    const char *done = "response.statusCode == 200 && jsonpath(response.body, '$.status') == 'DONE'";
    const char *analysed = "response.statusCode == 200 && jsonpath(response.body, '$.analysis') != nil";
    const char *decided = "response.statusCode == 200 && jsonpath(response.body, '$.result') != nil";
    char type[32];
    size_t n = 0;
    for (const char *p = s->type; *p && n + 1 < sizeof(type); p++) {
        type[n++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    }
    type[n] = '\0';
    json_t *templates = json_array(), *steps = json_array();
    for (size_t i = 0; i < WORKFLOW_NSTEPS; i++) {
        json_array_append_new(
            steps, json_pack("[{s:s, s:s}]", "name", workflow_steps[i], "template", workflow_steps[i]));
    }
    json_array_append_new(templates, json_pack("{s:s, s:o}", "name", "experiment", "steps", steps));
    json_array_append_new(templates, http_step("setup-baseline", exp_url, registered, NULL));
    json_array_append_new(templates, http_step("setup-experimental", exp_url, registered, NULL));
    json_array_append_new(templates, http_step("traffic-split", exp_url, registered, NULL));
    json_array_append_new(templates,
                          http_step("monitor", exp_url, done,
                                    json_pack("{s:I, s:s, s:{s:s}}", "limit", (json_int_t)polls,
                                              "retryPolicy", "Always", "backoff", "duration", backoff)));
    json_array_append_new(templates, http_step("collect", res_url, analysed, NULL));
    json_array_append_new(templates, http_step("analyze", res_url, decided, NULL));
    json_array_append_new(templates, http_step("cleanup", res_url, done, NULL));

    json_t *params = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "name",
                               "experiment_id", "value", s->id, "name", "type", "value", s->type, "name",
                               "target", "value", s->target ? s->target : "", "name", "traffic_split",
                               "value", split, "name", "manager_url", "value", s->manager_url);
    json_t *wf = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s}, s:{s:s}}, s:{s:s, s:s, s:{s:o}, s:o}}",
                           "apiVersion", "argoproj.io/v1alpha1", "kind", "Workflow", "metadata", "name", name,
                           "labels", "app.kubernetes.io/managed-by", "experiment-manager",
                           "neural-hive.io/experiment-type", type, "annotations",
                           "neural-hive.io/experiment-id", s->id, "spec", "entrypoint", "experiment",
                           "onExit", "cleanup", "arguments", "parameters", params, "templates", templates);
    if (!wf) {
        return NULL;
    }
    if (s->duration_s > 0) {
        json_object_set_new(json_object_get(wf, "spec"), "activeDeadlineSeconds",
                            json_integer((json_int_t)(s->duration_s + 10 * interval)));
    }
    return wf;
}
