/* libFuzzer target: arbitrary bytes through avro_codec_decode().
 *
 * Each input is decoded twice over:
 *   1. as it is, a framed record, expected as every record type;
 *   2. as a body: the first byte picks a record type (bit 7 set picks an older
 *      TelemetryAggregated writer schema, to fuzz schema resolution), the rest is
 *      framed with that type's id.
 * Decoding must return a value or HIVE_EBADMSG with a reason. A value must
 * encode, and its encoding must survive another decode/encode unchanged.
 * Seeds: tests/fuzz/corpus/avro (valid records of every type, from fastavro). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avro_codec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OLD_TELEMETRY_ID 900

/* TelemetryAggregated before variant, experiment_id and metrics, with an int
 * request_count and a field since dropped. */
static const char OLD_TELEMETRY[] =
    "{\"type\":\"record\",\"name\":\"TelemetryAggregated\",\"namespace\":\"org.neuralhive.optimizer\","
    "\"fields\":[{\"name\":\"schema_version\",\"type\":\"int\"},{\"name\":\"service\",\"type\":\"string\"},"
    "{\"name\":\"window_start\",\"type\":\"long\"},{\"name\":\"window_end\",\"type\":\"long\"},"
    "{\"name\":\"request_count\",\"type\":\"int\"},{\"name\":\"error_count\",\"type\":\"long\"},"
    "{\"name\":\"error_rate\",\"type\":\"float\"},{\"name\":\"latency_p50_ms\",\"type\":\"double\"},"
    "{\"name\":\"latency_p95_ms\",\"type\":\"double\"},{\"name\":\"latency_p99_ms\",\"type\":\"double\"},"
    "{\"name\":\"availability\",\"type\":\"double\"},{\"name\":\"slo_compliance\",\"type\":\"double\"},"
    "{\"name\":\"region\",\"type\":[\"null\",\"string\",{\"type\":\"array\",\"items\":\"bytes\"}]}]}";

static avro_codec_t *codec;
static const hive_schema_def_t *current[64];
static size_t ncurrent;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    (void)argc;
    (void)argv;
    codec = avro_codec_create(NULL, err, sizeof(err));
    if (!codec || avro_codec_add_schema(codec, OLD_TELEMETRY_ID, OLD_TELEMETRY, err, sizeof(err))) {
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
    avro_value_t v, w;
    void *out = NULL, *again = NULL;
    size_t out_len, again_len;
    char err[256] = "";
    int rc = avro_codec_decode(codec, buf, len, name, &v, err, sizeof(err));
    if (rc != 0) {
        if (rc != HIVE_EBADMSG || err[0] == '\0') {
            abort();
        }
        return;
    }
    if (avro_codec_encode(codec, "fuzz", &v, &out, &out_len, err, sizeof(err)) ||
        avro_codec_decode(codec, out, out_len, name, &w, err, sizeof(err))) {
        abort();
    }
    if (avro_codec_encode(codec, "fuzz", &w, &again, &again_len, err, sizeof(err)) || again_len != out_len ||
        memcmp(out, again, out_len) != 0) {
        abort();
    }
    free(again);
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
    const hive_schema_def_t *def = current[(data[0] & 0x7f) % ncurrent];
    int32_t id = def->local_id;
    const char *name = def->name;
    if (data[0] & 0x80) {
        id = OLD_TELEMETRY_ID;
        name = "TelemetryAggregated";
    }
    uint8_t *buf = malloc(size + 4);
    if (!buf) {
        return 0;
    }
    buf[0] = 0;
    buf[1] = (uint8_t)((uint32_t)id >> 24);
    buf[2] = (uint8_t)((uint32_t)id >> 16);
    buf[3] = (uint8_t)((uint32_t)id >> 8);
    buf[4] = (uint8_t)id;
    memcpy(buf + 5, data + 1, size - 1);
    check(buf, size + 4, name);
    free(buf);
    return 0;
}
