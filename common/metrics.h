/* metrics: counters, gauges and histograms with labels, exposed in the
 * Prometheus text format (version 0.0.4).
 *
 * A registry owns its metrics; metrics own their label series. All calls are
 * thread-safe (one mutex per registry), so worker threads may update metrics
 * that the loop thread renders.
 */
#ifndef HIVE_METRICS_H
#define HIVE_METRICS_H

#include <stddef.h>

#define METRICS_MAX_LABELS 4

typedef struct metrics_s metrics_t;
typedef struct metric_s metric_t;

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

/* Creates an empty registry. Free with metrics_destroy(). */
metrics_t *metrics_create(void);
/* Frees the registry and all its metrics. Accepts NULL. */
void metrics_destroy(metrics_t *reg);

/* Registers a metric. `labels` is a comma-separated list of label names
 * ("type,component") or NULL for none, at most METRICS_MAX_LABELS. `name`,
 * `help` and `labels` are copied. Registering a name twice returns the existing
 * metric when its type matches, NULL otherwise. Returns NULL on bad arguments. */
metric_t *metrics_counter(metrics_t *reg, const char *name, const char *help, const char *labels);
metric_t *metrics_gauge(metrics_t *reg, const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets, strictly increasing, +Inf
 * implied; NULL selects the default latency buckets (5 ms .. 10 s). */
metric_t *metrics_histogram(metrics_t *reg, const char *name, const char *help, const char *labels,
                            const double *bounds, size_t nbounds);

/* Updates the series named by the label values, passed as one const char *
 * per label of the metric, in order. A counter ignores negative increments. */
void metric_add(metric_t *m, double v, ...);
void metric_set(metric_t *m, double v, ...);
void metric_observe(metric_t *m, double v, ...);

/* Reads a series' value (counter or gauge) or a histogram's count; 0 when the
 * series does not exist. For tests and for /statistics style endpoints. */
double metric_value(metric_t *m, ...);

/* Renders the registry. Returns a NUL-terminated string to free(), NULL on
 * allocation failure; *out_len (if not NULL) receives its length. */
char *metrics_render(metrics_t *reg, size_t *out_len);

#endif
