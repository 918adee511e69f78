/* hive_status: hive_err code -> HTTP and gRPC status. See hive_status.h. */
#include "hive_status.h"

#include "grpc.h"
#include "hive_err.h"

int hive_status_http(int code)
{
    switch (code) {
    case 0:
        return 200;
    case HIVE_EINVAL:
    case HIVE_EBADMSG:
        return 400;
    case HIVE_ENOTFOUND:
        return 404;
    case HIVE_ECONFLICT:
        return 409;
    case HIVE_ETOOBIG:
        return 413;
    case HIVE_EUNAVAILABLE:
    case HIVE_ETIMEDOUT:
    case HIVE_EDELIVERY:
    case HIVE_EBUSY:
    case HIVE_ENOMEM:
        return 503;
    default:
        return 500;
    }
}

int hive_status_grpc(int code)
{
    switch (code) {
    case 0:
        return GRPC_STATUS_OK;
    case HIVE_EINVAL:
    case HIVE_EBADMSG:
    case HIVE_ETOOBIG:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case HIVE_ENOTFOUND:
        return GRPC_STATUS_NOT_FOUND;
    case HIVE_ECONFLICT:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case HIVE_EUNAVAILABLE:
    case HIVE_ETIMEDOUT:
    case HIVE_EDELIVERY:
    case HIVE_EBUSY:
        return GRPC_STATUS_UNAVAILABLE;
    case HIVE_ENOMEM:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}
