/* grpc: the pure parts of the wire format. Status names, the 5-byte message
 * prefix, grpc-message percent-encoding and the request deframer. No
 * sockets, no nghttp2. */
#include <stdlib.h>
#include <string.h>

#include "grpc.h"

const char *grpc_status_name(int status)
{
    switch (status) {
#define X(name, code)                                                                                        \
    case code:                                                                                               \
        return #name;
        GRPC_STATUS_MAP(X)
#undef X
    default:
        return "INVALID_STATUS";
    }
}

void grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER], bool compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

size_t grpc_percent_encode(const char *in, char *out, size_t outcap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = 0, used = 0;
    bool room = outcap > 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
        size_t w = plain ? 1 : 3;
        need += w;
        /* Keep one byte for the NUL; once an escape does not fit, stop
         * writing so that no escape is cut in half. */
        if (room && used + w < outcap) {
            if (plain) {
                out[used++] = (char)*p;
            } else {
                out[used++] = '%';
                out[used++] = hex[*p >> 4];
                out[used++] = hex[*p & 0x0f];
            }
        } else {
            room = false;
        }
    }
    if (outcap > 0) {
        out[used] = '\0';
    }
    return need;
}

void grpc_deframer_init(grpc_deframer_t *d, size_t max_len)
{
    memset(d, 0, sizeof(*d));
    d->max_len = max_len;
}

void grpc_deframer_deinit(grpc_deframer_t *d)
{
    free(d->msg);
    d->msg = NULL;
    d->hdr_got = d->need = d->got = 0;
}

bool grpc_deframer_idle(const grpc_deframer_t *d)
{
    return d->hdr_got == 0;
}

/* Hands the finished message over and resets for the next prefix. */
static void emit(grpc_deframer_t *d, grpc_message_fn on_message, void *ctx)
{
    uint8_t *msg = d->msg;
    size_t len = d->need;
    d->msg = NULL;
    d->hdr_got = d->need = d->got = 0;
    on_message(ctx, msg, len);
}

/* The prefix is complete: validate it and make room for the message. */
static int start_message(grpc_deframer_t *d)
{
    if (d->hdr[0] == 1) {
        return GRPC_STATUS_UNIMPLEMENTED;
    }
    if (d->hdr[0] != 0) {
        return GRPC_STATUS_INTERNAL;
    }
    const uint8_t *h = d->hdr;
    uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | (uint32_t)h[4];
    if (len > d->max_len) {
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    d->need = len;
    d->got = 0;
    if (len > 0 && !(d->msg = malloc(len))) {
        return GRPC_STATUS_INTERNAL;
    }
    return GRPC_STATUS_OK;
}

int grpc_deframer_feed(grpc_deframer_t *d, const uint8_t *data, size_t len, grpc_message_fn on_message,
                       void *ctx)
{
    size_t off = 0;
    while (d->error == GRPC_STATUS_OK && off < len) {
        if (d->hdr_got < GRPC_FRAME_HEADER) {
            size_t n = GRPC_FRAME_HEADER - d->hdr_got;
            if (n > len - off) {
                n = len - off;
            }
            memcpy(d->hdr + d->hdr_got, data + off, n);
            d->hdr_got += n;
            off += n;
            if (d->hdr_got < GRPC_FRAME_HEADER) {
                break;
            }
            d->error = start_message(d);
            if (d->error != GRPC_STATUS_OK) {
                break;
            }
        } else {
            size_t n = d->need - d->got;
            if (n > len - off) {
                n = len - off;
            }
            memcpy(d->msg + d->got, data + off, n);
            d->got += n;
            off += n;
        }
        if (d->got == d->need) {
            emit(d, on_message, ctx);
        }
    }
    return d->error;
}
