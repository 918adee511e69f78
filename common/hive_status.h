/* hive_status: how a hive_err code (hive_err.h) answers an API call, once for
 * REST and once for gRPC, so every service's APIs report a failure the same
 * way.
 *
 *   code                        HTTP   gRPC
 *   0                           200    OK
 *   HIVE_EINVAL, HIVE_EBADMSG   400    INVALID_ARGUMENT
 *   HIVE_ENOTFOUND              404    NOT_FOUND
 *   HIVE_ECONFLICT              409    FAILED_PRECONDITION (the state forbids it)
 *   HIVE_ETOOBIG                413    INVALID_ARGUMENT
 *   HIVE_EUNAVAILABLE, HIVE_ETIMEDOUT, HIVE_EDELIVERY, HIVE_EBUSY
 *                               503    UNAVAILABLE (retry)
 *   HIVE_ENOMEM                 503    RESOURCE_EXHAUSTED
 *   anything else               500    INTERNAL
 */
#ifndef HIVE_STATUS_H
#define HIVE_STATUS_H

/* The HTTP status for `code`. */
int hive_status_http(int code);

/* The gRPC status (grpc.h's GRPC_STATUS_*) for `code`. */
int hive_status_grpc(int code);

#endif
