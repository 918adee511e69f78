/* learn_ope: IPS and SNIPS. See learn_ope.h. */
#include "learn_ope.h"

#include <errno.h>
#include <math.h>

int learn_ope_evaluate(const learn_ope_record_t *log, size_t n, learn_ope_target_fn target, void *ctx,
                       learn_ope_result_t *out)
{
    if (log == NULL || n == 0 || target == NULL || out == NULL) {
        return -EINVAL;
    }
    double sum_wr = 0.0, sum_w = 0.0, sum_w2 = 0.0, max_w = 0.0;
    for (size_t i = 0; i < n; i++) {
        const learn_ope_record_t *r = &log[i];
        double pi = target(ctx, &r->state, r->action);
        if (!(r->propensity > 0.0 && r->propensity <= 1.0) || !(pi >= 0.0 && pi <= 1.0) ||
            !isfinite(r->reward)) {
            return -EINVAL;
        }
        double w = pi / r->propensity;
        sum_wr += w * r->reward;
        sum_w += w;
        sum_w2 += w * w;
        max_w = fmax(max_w, w);
    }
    learn_ope_result_t res = {
        .n = n,
        .ips = sum_wr / (double)n,
        .snips = sum_w > 0.0 ? sum_wr / sum_w : 0.0,
        .ess = sum_w2 > 0.0 ? sum_w * sum_w / sum_w2 : 0.0,
        .max_weight = max_w,
    };
    *out = res;
    return 0;
}
