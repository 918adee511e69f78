/* verdict: what a consumer does with a record whose processing failed with a
 * hive_err code, decided once for every service.
 *
 *   transient (hive_err_transient: unavailable, timeout, server failure,
 *   busy, delivery) and anything not known to be the record's fault
 *       -> KAFKA_RETRY: the batch is rewound and retried with back-off.
 *   permanent for this record (HIVE_EREJECTED: the server refused the
 *   document, e.g. a non-finite double; HIVE_EINVAL: a bad value;
 *   HIVE_ETOOBIG: too large)
 *       -> KAFKA_BAD_INPUT: the record goes to its DLQ with the reason, and
 *          the stream goes on.
 */
#ifndef HIVE_VERDICT_H
#define HIVE_VERDICT_H

#include <stddef.h>

#include "kafka.h"

/* The verdict for failure `code` of step `what` ("storing the observation");
 * writes "<what>: <detail> (<HIVE_E name>)" into `reason` (`detail` is the
 * server's message, e.g. store_last_error(); NULL or "" reads the code's
 * description). Code 0 is KAFKA_OK with `reason` untouched. */
kafka_verdict_t verdict_for_error(int code, const char *what, const char *detail, char *reason,
                                  size_t reasonlen);

#endif
