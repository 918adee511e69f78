#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct series_s {
    struct series_s *next;
    char *values[METRICS_MAX_LABELS];
    double value;           /* counter, gauge; histogram sum */
    unsigned long count;    /* histogram observations */
    unsigned long *buckets; /* histogram, cumulative on render */
} series_t;

struct metric_s {
    struct metric_s *next;
    metrics_t *reg;
    metric_type_t type;
    char *name, *help;
    size_t nlabels;
    char *labels[METRICS_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    series_t *series;
};

struct metrics_s {
    pthread_mutex_t mu;
    metric_t *head, *tail;
};

metrics_t *metrics_create(void)
{
    metrics_t *reg = calloc(1, sizeof(*reg));
    if (reg) {
        pthread_mutex_init(&reg->mu, NULL);
    }
    return reg;
}

static void series_free(series_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++) {
        free(s->values[i]);
    }
    free(s->buckets);
    free(s);
}

static void metric_free(metric_t *m)
{
    while (m->series) {
        series_t *s = m->series;
        m->series = s->next;
        series_free(s, m->nlabels);
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        free(m->labels[i]);
    }
    free(m->bounds);
    free(m->name);
    free(m->help);
    free(m);
}

void metrics_destroy(metrics_t *reg)
{
    if (!reg) {
        return;
    }
    while (reg->head) {
        metric_t *m = reg->head;
        reg->head = m->next;
        metric_free(m);
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9')) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == ':')) {
            return false;
        }
    }
    return true;
}

static int split_labels(metric_t *m, const char *labels)
{
    if (!labels || !*labels) {
        return 0;
    }
    const char *p = labels;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (m->nlabels == METRICS_MAX_LABELS || n == 0) {
            return -1;
        }
        m->labels[m->nlabels] = strndup(p, n);
        if (!m->labels[m->nlabels] || !valid_name(m->labels[m->nlabels])) {
            m->nlabels += m->labels[m->nlabels] != NULL;
            return -1;
        }
        m->nlabels++;
        p = comma ? comma + 1 : p + n;
    }
    return 0;
}

static metric_t *add_metric(metrics_t *reg, metric_type_t type, const char *name, const char *help,
                            const char *labels, const double *bounds, size_t nbounds)
{
    if (!reg || !valid_name(name)) {
        return NULL;
    }
    pthread_mutex_lock(&reg->mu);
    for (metric_t *m = reg->head; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            pthread_mutex_unlock(&reg->mu);
            return m->type == type ? m : NULL;
        }
    }
    metric_t *m = calloc(1, sizeof(*m));
    if (!m) {
        goto fail;
    }
    m->reg = reg;
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : name);
    if (!m->name || !m->help || split_labels(m, labels) != 0) {
        goto fail;
    }
    if (type == METRIC_HISTOGRAM) {
        if (!bounds) {
            bounds = default_bounds;
            nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
        }
        for (size_t i = 1; i < nbounds; i++) {
            if (!(bounds[i] > bounds[i - 1])) {
                goto fail;
            }
        }
        m->bounds = malloc(nbounds * sizeof(double));
        if (!m->bounds) {
            goto fail;
        }
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
        m->nbounds = nbounds;
    }
    if (reg->tail) {
        reg->tail->next = m;
    } else {
        reg->head = m;
    }
    reg->tail = m;
    pthread_mutex_unlock(&reg->mu);
    return m;
fail:
    pthread_mutex_unlock(&reg->mu);
    if (m) {
        metric_free(m);
    }
    return NULL;
}

metric_t *metrics_counter(metrics_t *reg, const char *name, const char *help, const char *labels)
{
    return add_metric(reg, METRIC_COUNTER, name, help, labels, NULL, 0);
}

metric_t *metrics_gauge(metrics_t *reg, const char *name, const char *help, const char *labels)
{
    return add_metric(reg, METRIC_GAUGE, name, help, labels, NULL, 0);
}

metric_t *metrics_histogram(metrics_t *reg, const char *name, const char *help, const char *labels,
                            const double *bounds, size_t nbounds)
{
    return add_metric(reg, METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* Finds or creates the series for the label values in `ap`. Called locked. */
static series_t *find_series(metric_t *m, va_list ap, bool create)
{
    const char *values[METRICS_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++) {
        values[i] = va_arg(ap, const char *);
        if (!values[i]) {
            values[i] = "";
        }
    }
    for (series_t *s = m->series; s; s = s->next) {
        size_t i = 0;
        while (i < m->nlabels && strcmp(s->values[i], values[i]) == 0) {
            i++;
        }
        if (i == m->nlabels) {
            return s;
        }
    }
    if (!create) {
        return NULL;
    }
    series_t *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        s->values[i] = strdup(values[i]);
        if (!s->values[i]) {
            series_free(s, m->nlabels);
            return NULL;
        }
    }
    if (m->type == METRIC_HISTOGRAM) {
        s->buckets = calloc(m->nbounds, sizeof(unsigned long));
        if (!s->buckets) {
            series_free(s, m->nlabels);
            return NULL;
        }
    }
    s->next = m->series;
    m->series = s;
    return s;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } op_t;

static void update(metric_t *m, op_t op, double v, va_list ap)
{
    if (!m || isnan(v)) {
        return;
    }
    pthread_mutex_lock(&m->reg->mu);
    series_t *s = find_series(m, ap, true);
    if (s) {
        if (op == OP_SET) {
            s->value = v;
        } else if (op == OP_ADD && (m->type != METRIC_COUNTER || v >= 0)) {
            s->value += v;
        } else if (op == OP_OBSERVE && m->type == METRIC_HISTOGRAM) {
            s->value += v;
            s->count++;
            for (size_t i = 0; i < m->nbounds; i++) {
                if (v <= m->bounds[i]) {
                    s->buckets[i]++;
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&m->reg->mu);
}

void metric_add(metric_t *m, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    update(m, OP_ADD, v, ap);
    va_end(ap);
}

void metric_set(metric_t *m, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    update(m, OP_SET, v, ap);
    va_end(ap);
}

void metric_observe(metric_t *m, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    update(m, OP_OBSERVE, v, ap);
    va_end(ap);
}

double metric_value(metric_t *m, ...)
{
    if (!m) {
        return 0;
    }
    va_list ap;
    va_start(ap, m);
    pthread_mutex_lock(&m->reg->mu);
    series_t *s = find_series(m, ap, false);
    double v = s ? (m->type == METRIC_HISTOGRAM ? (double)s->count : s->value) : 0;
    pthread_mutex_unlock(&m->reg->mu);
    va_end(ap);
    return v;
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom) {
            return;
        }
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

static void sb_escaped(sbuf_t *b, const char *s, bool quotes)
{
    for (; *s; s++) {
        if (*s == '\\') {
            sb_printf(b, "\\\\");
        } else if (*s == '\n') {
            sb_printf(b, "\\n");
        } else if (*s == '"' && quotes) {
            sb_printf(b, "\\\"");
        } else {
            sb_printf(b, "%c", *s);
        }
    }
}

/* The shortest of %.15g and %.17g that reads back as the same double. */
static void format_number(char *buf, size_t len, double v)
{
    if (isinf(v)) {
        snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v) {
        snprintf(buf, len, "%.17g", v);
    }
}

static void sb_number(sbuf_t *b, double v)
{
    char buf[40];
    format_number(buf, sizeof(buf), v);
    sb_printf(b, "%s", buf);
}

/* Writes {a="x",b="y"[,le="..."]}; nothing when there are no labels at all. */
static void sb_labels(sbuf_t *b, const metric_t *m, const series_t *s, const char *le)
{
    if (m->nlabels == 0 && !le) {
        return;
    }
    sb_printf(b, "{");
    for (size_t i = 0; i < m->nlabels; i++) {
        sb_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
        sb_escaped(b, s->values[i], true);
        sb_printf(b, "\"");
    }
    if (le) {
        sb_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    }
    sb_printf(b, "}");
}

static void render_metric(sbuf_t *b, const metric_t *m)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    sb_printf(b, "# HELP %s ", m->name);
    sb_escaped(b, m->help, false);
    sb_printf(b, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    /* A metric without labels shows its zero value before the first update. */
    series_t zero = {0};
    const series_t *first =
        m->series ? m->series : (m->nlabels == 0 && m->type != METRIC_HISTOGRAM ? &zero : NULL);
    for (const series_t *s = first; s; s = s->next) {
        if (m->type != METRIC_HISTOGRAM) {
            sb_printf(b, "%s", m->name);
            sb_labels(b, m, s, NULL);
            sb_printf(b, " ");
            sb_number(b, s->value);
            sb_printf(b, "\n");
            continue;
        }
        unsigned long cum = 0;
        for (size_t i = 0; i <= m->nbounds; i++) {
            char le[40];
            if (i < m->nbounds) {
                cum += s->buckets[i];
                format_number(le, sizeof(le), m->bounds[i]);
            } else {
                cum = s->count;
                snprintf(le, sizeof(le), "+Inf");
            }
            sb_printf(b, "%s_bucket", m->name);
            sb_labels(b, m, s, le);
            sb_printf(b, " %lu\n", cum);
        }
        sb_printf(b, "%s_sum", m->name);
        sb_labels(b, m, s, NULL);
        sb_printf(b, " ");
        sb_number(b, s->value);
        sb_printf(b, "\n%s_count", m->name);
        sb_labels(b, m, s, NULL);
        sb_printf(b, " %lu\n", s->count);
    }
}

char *metrics_render(metrics_t *reg, size_t *out_len)
{
    sbuf_t b = {.buf = malloc(4096), .cap = 4096};
    if (!b.buf) {
        return NULL;
    }
    b.buf[0] = '\0';
    pthread_mutex_lock(&reg->mu);
    for (const metric_t *m = reg->head; m; m = m->next) {
        render_metric(&b, m);
    }
    pthread_mutex_unlock(&reg->mu);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    if (out_len) {
        *out_len = b.len;
    }
    return b.buf;
}
