#include "reflect.h"

#include <stdbool.h>
#include <string.h>

#include "grpc_pb.h"
#include "optimizer_descriptor.h"
#include "reflection.pb-c.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest request_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse response_t;

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool known_symbol(const char *symbol)
{
    for (size_t i = 0; i < N(optimizer_proto_symbols); i++) {
        if (strcmp(symbol, optimizer_proto_symbols[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* One response for `req`, sent on `call`; an unknown file or symbol gets an
 * error_response, as the reflection protocol says, not a call error. */
static void answer(grpc_call_t *call, request_t *req)
{
    response_t resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse files = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse list = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse error = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse services[N(optimizer_proto_services)];
    Grpc__Reflection__V1__ServiceResponse *service_ptrs[N(optimizer_proto_services)];
    ProtobufCBinaryData descriptor = {sizeof(optimizer_proto_descriptor),
                                      (uint8_t *)optimizer_proto_descriptor};
    resp.valid_host = req->host;
    resp.original_request = req;
    bool found = false;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        for (size_t i = 0; i < N(optimizer_proto_services); i++) {
            grpc__reflection__v1__service_response__init(&services[i]);
            services[i].name = (char *)optimizer_proto_services[i];
            service_ptrs[i] = &services[i];
        }
        list.n_service = N(optimizer_proto_services);
        list.service = service_ptrs;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        resp.list_services_response = &list;
        found = true;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        found = known_symbol(req->file_containing_symbol);
        error.error_message = "symbol not found";
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        found = strcmp(req->file_by_filename, optimizer_proto_filename) == 0;
        error.error_message = "file not found";
        break;
    default:
        error.error_code = GRPC_STATUS_UNIMPLEMENTED;
        error.error_message = "extensions are not supported";
        break;
    }
    if (found && !resp.list_services_response) {
        files.n_file_descriptor_proto = 1;
        files.file_descriptor_proto = &descriptor;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &files;
    } else if (!found) {
        if (!error.error_code) {
            error.error_code = GRPC_STATUS_NOT_FOUND;
        }
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        resp.error_response = &error;
    }
    grpc_pb_send(call, &resp.base);
}

static void reflection_info(void *ctx, grpc_call_t *call, const uint8_t *msg, size_t len)
{
    (void)ctx;
    ProtobufCMessage *m =
        grpc_pb_decode(call, &grpc__reflection__v1__server_reflection_request__descriptor, msg, len);
    if (!m) {
        return; /* finished INVALID_ARGUMENT */
    }
    answer(call, (request_t *)m);
    protobuf_c_message_free_unpacked(m, NULL);
}

int reflect_register(grpc_server_t *grpc)
{
    if (grpc_register_stream(grpc, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                             reflection_info, NULL) != 0 ||
        grpc_register_stream(grpc, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                             reflection_info, NULL) != 0) {
        return -1;
    }
    return 0;
}
