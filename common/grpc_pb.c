/* grpc_pb: protobuf-c over grpc.h calls. See grpc_pb.h. */
#include "grpc_pb.h"

#include <stdlib.h>

ProtobufCMessage *grpc_pb_decode(grpc_call_t *call, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *req, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, req);
    if (!m) {
        grpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed request message");
    }
    return m;
}

int grpc_pb_send(grpc_call_t *call, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        return -1;
    }
    protobuf_c_message_pack(m, buf);
    int rc = grpc_call_send(call, buf, len);
    free(buf);
    return rc;
}

void grpc_pb_reply(grpc_call_t *call, const ProtobufCMessage *m)
{
    if (grpc_pb_send(call, m) != 0) {
        grpc_call_finish(call, GRPC_STATUS_INTERNAL, "cannot send the response"); /* a no-op when gone */
        return;
    }
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}
