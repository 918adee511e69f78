/* reflect: gRPC server reflection for the optimizer, so that grpcurl and other
 * reflection clients work without optimizer.proto.
 *
 * Serves grpc.reflection.v1.ServerReflection/ServerReflectionInfo and its
 * v1alpha twin (same messages), bidirectional: one response per request.
 *   list_services           -> neuralhive.optimizer.v1.OptimizerAgent
 *   file_containing_symbol  -> optimizer.proto's FileDescriptorProto, for any
 *                              service, method, message or enum it defines
 *   file_by_filename        -> the same, for "optimizer.proto"
 *   anything else           -> error_response NOT_FOUND (5) or
 *                              UNIMPLEMENTED (12) for extension queries
 * The descriptor is protoc-c's, embedded at build time
 * (schemas/proto/descriptor_embed.py). */
#ifndef OPTIMIZER_REFLECT_H
#define OPTIMIZER_REFLECT_H

#include "grpc.h"

/* Registers both reflection paths on `grpc`. Returns 0, or -1. */
int reflect_register(grpc_server_t *grpc);

#endif
