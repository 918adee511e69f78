/* rules: the Prometheus rules of one SLO. See rules.h. */
#include "rules.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double slo_rules_factor[SLO_RULES_ALERTS] = {14.4, 6, 3, 1};
static const char *const long_window[SLO_RULES_ALERTS] = {"1h", "6h", "1d", "3d"};
static const char *const short_window[SLO_RULES_ALERTS] = {"5m", "30m", "2h", "6h"};
static const char *const severity[SLO_RULES_ALERTS] = {"page", "page", "ticket", "ticket"};
static const char *const windows[] = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"};

double slo_rules_capped_factor(double factor, double availability)
{
    double budget = 1.0 - availability;
    return budget > 0 ? fmin(factor, 1.0 / budget) : factor;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...)
{
    if (b->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
}

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 128) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr("._:/@+-", c))) {
            return 0;
        }
    }
    return 1;
}

int slo_rules_yaml(const char *service, double availability, char **out, size_t *out_len)
{
    if (!valid_name(service) || !out || !(availability > 0 && availability < 1)) {
        return -1;
    }
    sbuf_t b = {.cap = 4096};
    b.buf = malloc(b.cap);
    if (!b.buf) {
        return -1;
    }
    b.buf[0] = '\0';
    put(&b, "# SLO of %s: availability %.6g (error budget %.6g).\n", service, availability,
        1.0 - availability);
    put(&b, "groups:\n  - name: \"slo:%s\"\n    rules:\n", service);
    for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
        put(&b,
            "      - record: slo:sli_error:ratio_rate%s\n"
            "        expr: 'sum(rate(http_requests_total{job=\"%s\",status=~\"5..\"}[%s])) / "
            "sum(rate(http_requests_total{job=\"%s\"}[%s]))'\n"
            "        labels:\n          slo_service: \"%s\"\n",
            windows[i], service, windows[i], service, windows[i], service);
    }
    for (int i = 0; i < SLO_RULES_ALERTS; i++) {
        double f = slo_rules_capped_factor(slo_rules_factor[i], availability);
        double threshold = f * (1.0 - availability);
        put(&b,
            "      - alert: SLOErrorBudgetBurn\n"
            "        expr: 'slo:sli_error:ratio_rate%s{slo_service=\"%s\"} > %.10g and "
            "slo:sli_error:ratio_rate%s{slo_service=\"%s\"} > %.10g'\n"
            "        for: 2m\n"
            "        labels:\n"
            "          severity: %s\n          slo_service: \"%s\"\n"
            "          long_window: \"%s\"\n          short_window: \"%s\"\n"
            "        annotations:\n"
            "          summary: \"%s burns its error budget %.6gx faster than the SLO allows (%s and %s "
            "windows)\"\n",
            long_window[i], service, threshold, short_window[i], service, threshold, severity[i], service,
            long_window[i], short_window[i], service, f, long_window[i], short_window[i]);
    }
    if (b.failed) {
        free(b.buf);
        return -1;
    }
    *out = b.buf;
    if (out_len) {
        *out_len = b.len;
    }
    return 0;
}
