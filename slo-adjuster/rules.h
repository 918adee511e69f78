/* rules: Prometheus rules for one service's SLO (pure): recording rules of
 * the error ratio over 5m..3d and the multi-window multi-burn-rate alerts
 * (1h/5m at 14.4, 6h/30m at 6, page; 1d/2h at 3, 3d/6h at 1, ticket), each
 * burn factor capped at 1/(1 - availability) so that every alert can still
 * fire (an error ratio never exceeds 1). The YAML is a rule file
 * `promtool check rules` accepts.
 */
#ifndef HIVE_SLO_RULES_H
#define HIVE_SLO_RULES_H

#include <stddef.h>

/* The burn factors of the four alerts, in order, and their windows. */
#define SLO_RULES_ALERTS 4
extern const double slo_rules_factor[SLO_RULES_ALERTS];

/* The burn factor actually used: min(factor, 1 / (1 - availability)). */
double slo_rules_capped_factor(double factor, double availability);

/* The rule file of `service` (a name of the schemas' "name" pattern) for
 * its availability target, into a malloc'd NUL-terminated string (*out,
 * free()). The error ratio reads http_requests_total{job="<service>"}, 5xx
 * as errors. Returns 0, or -1 (bad arguments, out of memory). */
int slo_rules_yaml(const char *service, double availability, char **out, size_t *out_len);

#endif
