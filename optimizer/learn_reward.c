/* learn_reward: see learn_reward.h. */
#include "learn_reward.h"

#include <math.h>
#include <stddef.h>

void learn_reward_config_default(learn_reward_config_t *cfg)
{
    cfg->penalty_factor = 0.2;
    cfg->min_improvement = 0.05;
}

const char *learn_reward_config_check(const learn_reward_config_t *cfg)
{
    if (!(cfg->penalty_factor >= 0.0) || !isfinite(cfg->penalty_factor)) {
        return "penalty_factor must be a finite number >= 0";
    }
    if (!(cfg->min_improvement >= 0.0) || !isfinite(cfg->min_improvement)) {
        return "min_improvement must be a finite number >= 0";
    }
    return NULL;
}

bool learn_reward_is_success(const learn_reward_config_t *cfg, double improvement)
{
    learn_reward_config_t def;
    if (cfg == NULL) {
        learn_reward_config_default(&def);
        cfg = &def;
    }
    return improvement >= cfg->min_improvement;
}

double learn_reward_compute(const learn_reward_config_t *cfg, double improvement, double risk)
{
    learn_reward_config_t def;
    if (cfg == NULL) {
        learn_reward_config_default(&def);
        cfg = &def;
    }
    double term = improvement >= cfg->min_improvement ? improvement : fmin(improvement, 0.0);
    return term - risk * cfg->penalty_factor;
}

double learn_reward_outcome(const learn_reward_config_t *cfg, bool success, double improvement, double risk)
{
    learn_reward_config_t def;
    if (cfg == NULL) {
        learn_reward_config_default(&def);
        cfg = &def;
    }
    if (success && improvement >= cfg->min_improvement) {
        return learn_reward_compute(cfg, improvement, risk);
    }
    double cost = fmax(cfg->min_improvement, LEARN_REWARD_FAILURE_MIN);
    return fmin(improvement, 0.0) - fmax(risk, 0.0) * cfg->penalty_factor - cost;
}
