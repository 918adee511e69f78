/* feedback: the Hive's human feedback of a specialist, from its MongoDB
 * (FEEDBACK_MONGODB_URI, database and collection configurable; default
 * neural_hive.feedback). BLOCKING: worker threads or the CLI.
 *
 * One document per rating: specialist_type, rating (number in [0, 1]),
 * created_at (a BSON date), and the ids it rates. Ratings outside [0, 1]
 * are skipped and counted in `skipped`.
 */
#ifndef MONITOR_FEEDBACK_H
#define MONITOR_FEEDBACK_H

#include "health.h"
#include "store.h"

#include <stdint.h>

/* Feedback statistics of `specialist` over [since_ms, until_ms) from
 * `collection` of `store`. Returns 0 or the store's HIVE_E* code. */
int feedback_fetch(store_t *store, const char *collection, const char *specialist, int64_t since_ms,
                   int64_t until_ms, feedback_stats_t *out, uint64_t *out_skipped);

#endif
