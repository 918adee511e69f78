/* Fuzz target: a gRPC request body as it arrives in HTTP/2 DATA frames.
 *
 * The bytes are cut in two at a position taken from the first byte (frames
 * split anywhere), fed to the deframer, and every complete message is
 * unpacked as each request type of the OptimizerAgent service.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "grpc.h"
#include "optimizer.pb-c.h"

#define UNPACK(fn, free_fn, len, msg)                                                                        \
    do {                                                                                                     \
        void *m = fn(NULL, (len), (msg));                                                                    \
        if (m) {                                                                                             \
            free_fn(m, NULL);                                                                                \
        }                                                                                                    \
    } while (0)

static void on_message(void *ctx, uint8_t *msg, size_t len)
{
    (void)ctx;
    UNPACK(neuralhive__optimizer__v1__trigger_optimization_request__unpack,
           neuralhive__optimizer__v1__trigger_optimization_request__free_unpacked, len, msg);
    UNPACK(neuralhive__optimizer__v1__get_optimization_status_request__unpack,
           neuralhive__optimizer__v1__get_optimization_status_request__free_unpacked, len, msg);
    UNPACK(neuralhive__optimizer__v1__list_optimizations_request__unpack,
           neuralhive__optimizer__v1__list_optimizations_request__free_unpacked, len, msg);
    UNPACK(neuralhive__optimizer__v1__rollback_optimization_request__unpack,
           neuralhive__optimizer__v1__rollback_optimization_request__free_unpacked, len, msg);
    UNPACK(neuralhive__optimizer__v1__get_statistics_request__unpack,
           neuralhive__optimizer__v1__get_statistics_request__free_unpacked, len, msg);
    UNPACK(neuralhive__optimizer__v1__health_check_request__unpack,
           neuralhive__optimizer__v1__health_check_request__free_unpacked, len, msg);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t cut = data[0] % size;
    grpc_deframer_t d;
    grpc_deframer_init(&d, 1 << 16);
    if (grpc_deframer_feed(&d, data + 1, cut > 0 ? cut - 1 : 0, on_message, NULL) == 0) {
        grpc_deframer_feed(&d, data + (cut > 0 ? cut : 1), size - (cut > 0 ? cut : 1), on_message, NULL);
    }
    grpc_deframer_deinit(&d);
    return 0;
}
