/* libFuzzer target: arbitrary bytes through avro_validate_decode().
 *
 * The first byte picks a record type, the rest is framed with that type's id
 * (and the whole input is also tried as a framed record of every type). Each
 * decoded value is validated: the answer must be 0, or HIVE_EBADMSG with a
 * NUL-terminated reason "<field path>: <what>" that fits the buffer. A value that
 * passes must pass again after an encode/decode round trip: validation depends
 * on the record, not on how it was read.
 * Seeds: tests/fuzz/corpus/avro (valid records of every type, from fastavro). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avro_validate.h"
#include "hive_err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static avro_codec_t *codec;
static const hive_schema_def_t *current[64];
static size_t ncurrent;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    (void)argc;
    (void)argv;
    codec = avro_codec_create(NULL, err, sizeof(err));
    if (!codec) {
        abort();
    }
    for (size_t i = 0; i < hive_schemas_count && ncurrent < 64; i++) {
        if (hive_schemas[i].current) {
            current[ncurrent++] = &hive_schemas[i];
        }
    }
    return 0;
}

static void check(const uint8_t *buf, size_t len, const char *name)
{
    avro_value_t v;
    char reason[160];
    memset(reason, 'x', sizeof(reason));
    int rc = avro_codec_decode(codec, buf, len, name, &v, reason, sizeof(reason));
    if (rc != 0) {
        return;
    }
    memset(reason, 'x', sizeof(reason));
    rc = avro_validate(codec, name, &v, reason, sizeof(reason));
    if (rc != 0) {
        /* A reason names the field (or "record") before a colon and fits the buffer. */
        if (rc != HIVE_EBADMSG || !memchr(reason, '\0', sizeof(reason)) || !strstr(reason, ": ")) {
            abort();
        }
        avro_value_decref(&v);
        return;
    }
    void *out = NULL;
    size_t out_len;
    avro_value_t w;
    if (avro_codec_encode(codec, "fuzz", &v, &out, &out_len, reason, sizeof(reason)) ||
        avro_validate_decode(codec, out, out_len, name, &w, reason, sizeof(reason))) {
        abort();
    }
    free(out);
    avro_value_decref(&w);
    avro_value_decref(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < ncurrent; i++) {
        check(data, size, current[i]->name);
    }
    if (size == 0) {
        return 0;
    }
    const hive_schema_def_t *def = current[data[0] % ncurrent];
    uint8_t *buf = malloc(size + 4);
    if (!buf) {
        return 0;
    }
    uint32_t id = (uint32_t)def->local_id;
    buf[0] = 0;
    buf[1] = (uint8_t)(id >> 24);
    buf[2] = (uint8_t)(id >> 16);
    buf[3] = (uint8_t)(id >> 8);
    buf[4] = (uint8_t)id;
    memcpy(buf + 5, data + 1, size - 1);
    check(buf, size + 4, def->name);
    free(buf);
    return 0;
}
