/* apply: the appliers' shared pure decisions. See apply.h. */
#include "apply.h"

#include <math.h>
#include <string.h>

static const char *const mode_names[] = {"ABSOLUTE", "DELTA", "RELATIVE"};

int apply_mode_parse(const char *s, apply_mode_t *out)
{
    for (int i = 0; s && i < 3; i++) {
        if (!strcmp(s, mode_names[i])) {
            *out = (apply_mode_t)i;
            return 0;
        }
    }
    return -1;
}

const char *apply_mode_name(apply_mode_t mode)
{
    return (unsigned)mode < 3 ? mode_names[mode] : "ABSOLUTE";
}

double apply_adjust(double current, apply_mode_t mode, double value)
{
    switch (mode) {
    case APPLY_DELTA:
        return current + value;
    case APPLY_RELATIVE:
        return current * (1.0 + value);
    default:
        return value;
    }
}

double apply_worsening(double baseline, double observed, bool higher_is_worse, double min_scale)
{
    double scale = fmax(fabs(baseline), min_scale > 0 ? min_scale : 1e-12);
    double change = (observed - baseline) / scale;
    return higher_is_worse ? change : -change;
}

apply_watch_verdict_t apply_watch_decide(const apply_watch_t *w, const apply_obs_t *obs, int64_t now_ms,
                                         double *out_worsening)
{
    double worse = 0.0;
    bool counts = obs && obs->window_end_ms > w->applied_at_ms && obs->window_end_ms <= w->until_ms &&
                  isfinite(obs->value);
    if (counts) {
        worse = apply_worsening(w->baseline, obs->value, w->higher_is_worse, w->min_scale);
    }
    if (out_worsening) {
        *out_worsening = worse;
    }
    if (counts && worse > w->threshold) {
        return APPLY_WATCH_ROLLBACK;
    }
    return now_ms > w->until_ms ? APPLY_WATCH_EXPIRED : APPLY_WATCH_KEEP;
}
