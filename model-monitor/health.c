/* health: seed 004's degradation rule. See health.h. */
#include "health.h"

#include <math.h>
#include <stdio.h>

void health_thresholds_default(health_thresholds_t *out)
{
    *out = (health_thresholds_t){
        .precision = 0.75, .recall = 0.70, .f1 = 0.72, .feedback_avg = 0.6, .aggregate = 0.65};
}

int feedback_stats_add(feedback_stats_t *s, double rating)
{
    if (!(rating >= 0.0 && rating <= 1.0)) {
        return -1;
    }
    s->count++;
    s->sum += rating;
    if (rating > FEEDBACK_POSITIVE_ABOVE) {
        s->positive++;
    } else if (rating < FEEDBACK_NEGATIVE_BELOW) {
        s->negative++;
    } else {
        s->neutral++;
    }
    return 0;
}

bool feedback_stats_avg(const feedback_stats_t *s, double *out_avg)
{
    if (s->count == 0) {
        return false;
    }
    *out_avg = s->sum / (double)s->count;
    return true;
}

const char *health_status_name(health_status_t s)
{
    switch (s) {
    case HEALTH_OK:
        return "OK";
    case HEALTH_DEGRADED:
        return "DEGRADED";
    case HEALTH_NO_FEEDBACK:
        return "NO_FEEDBACK";
    case HEALTH_NO_RUN:
        return "NO_RUN";
    }
    return "?";
}

double health_aggregate(double f1, double feedback_avg)
{
    return 0.7 * f1 + 0.3 * feedback_avg;
}

static void add_text(health_verdict_t *v, const char *text)
{
    if (v->nreasons < HEALTH_MAX_REASONS) {
        snprintf(v->reasons[v->nreasons++], HEALTH_REASON_LEN, "%s", text);
    }
}

/* Records `name value < th` when the value is known and below its threshold. */
static bool below(health_verdict_t *v, bool known, const char *name, double value, double th)
{
    if (known && value < th && v->nreasons < HEALTH_MAX_REASONS) {
        snprintf(v->reasons[v->nreasons++], HEALTH_REASON_LEN, "%s %.4g < %.4g", name, value, th);
        return true;
    }
    if (known && value < th) {
        return true;
    }
    return false;
}

void health_evaluate(const health_thresholds_t *th, const health_run_t *run, const feedback_stats_t *fb,
                     health_verdict_t *out)
{
    *out = (health_verdict_t){.status = HEALTH_OK};
    bool found = run && run->found;
    double avg = 0;
    bool has_fb = fb && feedback_stats_avg(fb, &avg);
    bool degraded = false;
    degraded |=
        below(out, found && run->has_precision, "precision", found ? run->precision : 0, th->precision);
    degraded |= below(out, found && run->has_recall, "recall", found ? run->recall : 0, th->recall);
    degraded |= below(out, found && run->has_f1, "f1_score", found ? run->f1 : 0, th->f1);
    degraded |= below(out, has_fb, "feedback_avg", avg, th->feedback_avg);
    if (found && run->has_f1 && has_fb) {
        out->has_aggregate = true;
        out->aggregate = health_aggregate(run->f1, avg);
        degraded |= below(out, true, "aggregate_score", out->aggregate, th->aggregate);
    }
    if (degraded) {
        out->status = HEALTH_DEGRADED;
    } else if (!found || !run->has_f1 || !run->has_precision || !run->has_recall) {
        out->status = HEALTH_NO_RUN;
        add_text(out, found ? "the MLflow run lacks precision, recall or f1_score" : "no MLflow run");
    } else if (!has_fb) {
        out->status = HEALTH_NO_FEEDBACK;
        add_text(out, "no feedback in the window");
    }
}
