/* verdict: hive_err code -> consumer verdict. See verdict.h. */
#include "verdict.h"

#include "hive_err.h"

#include <stdio.h>

kafka_verdict_t verdict_for_error(int code, const char *what, const char *detail, char *reason,
                                  size_t reasonlen)
{
    if (code == 0) {
        return KAFKA_OK;
    }
    snprintf(reason, reasonlen, "%s: %s (%s)", what, detail && *detail ? detail : hive_strerror(code),
             hive_errname(code));
    bool permanent =
        !hive_err_transient(code) && (code == HIVE_EREJECTED || code == HIVE_EINVAL || code == HIVE_ETOOBIG);
    return permanent ? KAFKA_BAD_INPUT : KAFKA_RETRY;
}
