/* decide: the retrainer's pure decisions. See decide.h. */
#include "decide.h"

#include <stdio.h>
#include <string.h>

static const char *const step_names[STEP_COUNT] = {"cooldown", "dataset", "train",  "monitor",
                                                   "compare",  "promote", "notify", "done"};

const char *decide_step_name(decide_step_t s)
{
    return (s >= 0 && s < STEP_COUNT) ? step_names[s] : "unknown";
}

int decide_step_parse(const char *name)
{
    for (int i = 0; name && i < STEP_COUNT; i++) {
        if (strcmp(name, step_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Appends "name v >= min ok" or "... FAILS" to `out`; false when it fails. */
static bool check(char *out, size_t len, const char *name, bool has, double v, double min)
{
    size_t used = strlen(out);
    if (!has) {
        snprintf(out + used, len - used, "%s%s missing", used ? "; " : "", name);
        return false;
    }
    bool ok = v >= min;
    snprintf(out + used, len - used, "%s%s %.4f >= %.2f %s", used ? "; " : "", name, v, min,
             ok ? "ok" : "FAILS");
    return ok;
}

void decide_compare(const decide_metrics_t *c, bool has_baseline, double baseline_f1,
                    const decide_thresholds_t *th, bool promote_if_better, decide_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    char *r = out->reason;
    size_t n = sizeof(out->reason);
    bool ok = true;
    /* seed 001's validator, then seed 003's thresholds */
    ok &= check(r, n, "validator precision", c->has_precision, c->precision, th->validator_precision);
    ok &= check(r, n, "validator recall", c->has_recall, c->recall, th->validator_recall);
    ok &= check(r, n, "validator accuracy", c->has_accuracy, c->accuracy, th->validator_accuracy);
    ok &= check(r, n, "precision", c->has_precision, c->precision, th->precision);
    ok &= check(r, n, "recall", c->has_recall, c->recall, th->recall);
    ok &= check(r, n, "f1_score", c->has_f1, c->f1, th->f1);
    out->passes_minimums = ok;
    size_t used = strlen(r);
    if (!has_baseline) {
        out->beats_baseline = c->has_f1;
        snprintf(r + used, n - used, "; no production version: nothing to beat");
    } else {
        out->beats_baseline = c->has_f1 && c->f1 > baseline_f1;
        snprintf(r + used, n - used, "; new_f1 %.4f > baseline_f1 %.4f %s", c->f1, baseline_f1,
                 out->beats_baseline ? "ok" : "FAILS");
    }
    out->promote = out->passes_minimums && out->beats_baseline && promote_if_better;
    if (out->passes_minimums && out->beats_baseline && !promote_if_better) {
        used = strlen(r);
        snprintf(r + used, n - used, "; promotion not asked for");
    }
}

bool decide_in_cooldown(int64_t last_started_ms, int64_t now_ms, double cooldown_hours, bool force)
{
    if (force || last_started_ms <= 0 || cooldown_hours <= 0) {
        return false;
    }
    return now_ms - last_started_ms < (int64_t)(cooldown_hours * 3600000.0);
}
