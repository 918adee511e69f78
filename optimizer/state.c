/* state: insight -> discrete state, key and features. See state.h. */
#include "state.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const problem_names[PROBLEM_COUNT] = {
    "LATENCY", "ERROR_RATE", "SLO_COMPLIANCE", "AVAILABILITY", "CONSENSUS_ACCURACY", "OTHER",
};

static const char *const priority_names[PRIORITY_COUNT] = {"LOW", "MEDIUM", "HIGH", "CRITICAL"};

void state_config_default(state_config_t *cfg)
{
    cfg->severity_bounds[0] = 0.05;
    cfg->severity_bounds[1] = 0.20;
    cfg->severity_bounds[2] = 0.50;
    cfg->load_bounds[0] = 1.5;
    cfg->load_bounds[1] = 3.0;
}

static int component_valid(const char *c)
{
    if (c == NULL || c[0] == '\0') {
        return 0;
    }
    size_t n = strnlen(c, STATE_COMPONENT_MAX);
    if (n >= STATE_COMPONENT_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c[i];
        if (ch == '|' || ch < 0x20 || ch == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int state_make(const char *component, problem_kind_t problem, unsigned severity, unsigned load, state_t *out)
{
    if (!component_valid(component) || (unsigned)problem >= PROBLEM_COUNT ||
        severity >= STATE_SEVERITY_BUCKETS || load >= STATE_LOAD_BUCKETS) {
        return -EINVAL;
    }
    state_t s;
    memset(&s, 0, sizeof(s));
    memcpy(s.component, component, strlen(component) + 1);
    s.problem = problem;
    s.severity = severity;
    s.load = load;
    snprintf(s.key, sizeof(s.key), "%s|%s|sev%u|load%u", s.component, problem_names[problem], severity, load);
    *out = s;
    return 0;
}

double state_deviation(problem_kind_t problem, double current, double baseline)
{
    if (!isfinite(current) || !isfinite(baseline)) {
        return NAN;
    }
    if (problem == PROBLEM_SLO_COMPLIANCE || problem == PROBLEM_AVAILABILITY) {
        /* Compare shortfalls: (1 - current) against (1 - baseline). */
        current = 1.0 - current;
        baseline = 1.0 - baseline;
    }
    if (baseline == 0.0) {
        return NAN;
    }
    return fabs(current - baseline) / fabs(baseline);
}

unsigned state_severity_bucket(const state_config_t *cfg, double deviation, priority_t priority)
{
    if (isnan(deviation)) {
        unsigned p = (unsigned)priority;
        return p < STATE_SEVERITY_BUCKETS ? p : STATE_SEVERITY_BUCKETS - 1;
    }
    state_config_t def;
    if (cfg == NULL) {
        state_config_default(&def);
        cfg = &def;
    }
    unsigned b = 0;
    while (b < STATE_SEVERITY_BUCKETS - 1 && deviation >= cfg->severity_bounds[b]) {
        b++;
    }
    return b;
}

unsigned state_load_bucket(const state_config_t *cfg, double load)
{
    state_config_t def;
    if (cfg == NULL) {
        state_config_default(&def);
        cfg = &def;
    }
    unsigned b = 0;
    while (b < STATE_LOAD_BUCKETS - 1 && load >= cfg->load_bounds[b]) {
        b++;
    }
    return b;
}

double state_load_ratio(double rate, const double *history, size_t n)
{
    if (history == NULL || n < STATE_LOAD_MIN_HISTORY || !isfinite(rate) || rate < 0.0) {
        return 0.0;
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(history[i]) || history[i] < 0.0) {
            return 0.0;
        }
        sum += history[i];
    }
    double baseline = sum / (double)n;
    return baseline > 0.0 ? rate / baseline : 0.0;
}

int state_extract(const state_config_t *cfg, const state_insight_t *in, state_t *out)
{
    if (in == NULL || (unsigned)in->problem >= PROBLEM_COUNT || (unsigned)in->priority >= PRIORITY_COUNT ||
        isnan(in->load) || in->load < 0.0) {
        return -EINVAL;
    }
    double dev = state_deviation(in->problem, in->current_value, in->baseline_value);
    unsigned sev = state_severity_bucket(cfg, dev, in->priority);
    unsigned load = state_load_bucket(cfg, in->load);
    return state_make(in->component, in->problem, sev, load, out);
}

int state_from_observation(const state_config_t *cfg, const char *component, const char *metric,
                           double severity, priority_t priority, double load, state_t *out)
{
    if ((unsigned)priority >= PRIORITY_COUNT || isnan(load) || load < 0.0 || severity < 0.0) {
        return -EINVAL;
    }
    unsigned sev = state_severity_bucket(cfg, severity, priority);
    return state_make(component, state_problem_of_metric(metric), sev, state_load_bucket(cfg, load), out);
}

void state_features(const state_t *s, double out[STATE_FEATURES])
{
    for (int i = 0; i < PROBLEM_COUNT; i++) {
        out[i] = (int)s->problem == i ? 1.0 : 0.0;
    }
    out[PROBLEM_COUNT] = (double)s->severity / (STATE_SEVERITY_BUCKETS - 1);
    out[PROBLEM_COUNT + 1] = (double)s->load / (STATE_LOAD_BUCKETS - 1);
    out[PROBLEM_COUNT + 2] = 1.0;
}

const char *state_problem_name(problem_kind_t problem)
{
    return (unsigned)problem < PROBLEM_COUNT ? problem_names[problem] : "UNKNOWN";
}

int state_problem_parse(const char *name, problem_kind_t *out)
{
    for (int i = 0; name != NULL && i < PROBLEM_COUNT; i++) {
        if (strcmp(name, problem_names[i]) == 0) {
            *out = (problem_kind_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

int state_priority_parse(const char *name, priority_t *out)
{
    for (int i = 0; name != NULL && i < PRIORITY_COUNT; i++) {
        if (strcmp(name, priority_names[i]) == 0) {
            *out = (priority_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *state_problem_metric(problem_kind_t problem)
{
    static const char *const metrics[PROBLEM_COUNT] = {
        "latency_p95_ms", "error_rate", "slo_compliance", "availability", "consensus_accuracy", NULL,
    };
    return (unsigned)problem < PROBLEM_COUNT ? metrics[problem] : NULL;
}

int state_problem_higher_is_better(problem_kind_t problem)
{
    return problem != PROBLEM_LATENCY && problem != PROBLEM_ERROR_RATE;
}

problem_kind_t state_problem_of_metric(const char *metric)
{
    if (metric == NULL) {
        return PROBLEM_OTHER;
    }
    if (strstr(metric, "latency")) {
        return PROBLEM_LATENCY;
    }
    if (strstr(metric, "error")) {
        return PROBLEM_ERROR_RATE;
    }
    if (strstr(metric, "slo")) {
        return PROBLEM_SLO_COMPLIANCE;
    }
    if (strstr(metric, "availability")) {
        return PROBLEM_AVAILABILITY;
    }
    if (strstr(metric, "consensus") || strstr(metric, "accuracy")) {
        return PROBLEM_CONSENSUS_ACCURACY;
    }
    return PROBLEM_OTHER;
}

int state_parse_key(const char *key, state_t *out)
{
    /* The component cannot hold '|', so the first '|' ends it. */
    const char *bar = key ? strchr(key, '|') : NULL;
    if (bar == NULL || bar == key || (size_t)(bar - key) >= STATE_COMPONENT_MAX) {
        return -EINVAL;
    }
    char component[STATE_COMPONENT_MAX], problem[32];
    memcpy(component, key, (size_t)(bar - key));
    component[bar - key] = '\0';
    const char *rest = bar + 1;
    const char *bar2 = strchr(rest, '|');
    if (bar2 == NULL || (size_t)(bar2 - rest) >= sizeof(problem)) {
        return -EINVAL;
    }
    memcpy(problem, rest, (size_t)(bar2 - rest));
    problem[bar2 - rest] = '\0';
    unsigned sev = 0, load = 0;
    int used = 0;
    problem_kind_t kind;
    if (state_problem_parse(problem, &kind) != 0 ||
        sscanf(bar2, "|sev%u|load%u%n", &sev, &load, &used) != 2 || bar2[used] != '\0') {
        return -EINVAL;
    }
    state_t s;
    if (state_make(component, kind, sev, load, &s) != 0 || strcmp(s.key, key) != 0) {
        return -EINVAL;
    }
    *out = s;
    return 0;
}
