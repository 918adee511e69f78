/* grpc_pb: protobuf-c messages on a grpc.h call, the glue every gRPC service
 * writes otherwise: decode the request, send a message, reply and finish.
 */
#ifndef HIVE_GRPC_PB_H
#define HIVE_GRPC_PB_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

/* Decodes the request bytes as `desc`; on failure finishes the call
 * INVALID_ARGUMENT ("malformed request message") and returns NULL. Free with
 * protobuf_c_message_free_unpacked(). */
ProtobufCMessage *grpc_pb_decode(grpc_call_t *call, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *req, size_t len);

/* Encodes `m` and queues it as one response message (server streaming sends
 * several). Returns 0, or -1 when the call is gone or memory ran out. */
int grpc_pb_send(grpc_call_t *call, const ProtobufCMessage *m);

/* The single response of a unary call: sends `m` and finishes OK, or
 * INTERNAL when it cannot be sent (a no-op when the client has gone). */
void grpc_pb_reply(grpc_call_t *call, const ProtobufCMessage *m);

#endif
