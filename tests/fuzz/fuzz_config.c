/* libFuzzer target: config_parse_item (common/config.h) on arbitrary
 * strings, for each type of item. The first byte picks the item; the rest,
 * cut at the first NUL, is the value as the environment would give it.
 * Besides the sanitizers, it checks that a value is either accepted (and
 * then within the item's range, or one of its choices) or refused with a
 * message naming the variable. */
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long int_out;
static double double_out;
static bool bool_out;
static char *string_out, *optional_out, *enum_out;

static const config_item_t items[] = {
    {"F_PORT", CONFIG_INT, "8000", 1, 65535, NULL, &int_out, "port"},
    {"F_NEGATIVE", CONFIG_INT, "0", -1e6, 1e6, NULL, &int_out, "int"},
    {"F_RATE", CONFIG_DOUBLE, "0.1", 0.0, 1.0, NULL, &double_out, "rate"},
    {"F_WIDE", CONFIG_DOUBLE, "0", -1e300, 1e300, NULL, &double_out, "double"},
    {"F_FLAG", CONFIG_BOOL, "false", 0, 0, NULL, &bool_out, "flag"},
    {"F_URI", CONFIG_STRING, "mongodb://127.0.0.1", 0, 0, NULL, &string_out, "uri"},
    {"F_OPTIONAL", CONFIG_STRING, "", 0, 0, NULL, &optional_out, "optional"},
    {"F_POLICY", CONFIG_ENUM, "qlearning", 0, 0, "qlearning|thompson|linucb", &enum_out, "policy"},
    {"F_ODD_ENUM", CONFIG_ENUM, "", 0, 0, "a||b|", &enum_out, "enum with empty choices"},
};
#define NITEMS (sizeof(items) / sizeof(items[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const config_item_t *it = &items[data[0] % NITEMS];
    char *value = malloc(size);
    memcpy(value, data + 1, size - 1);
    value[size - 1] = '\0'; /* getenv() values are C strings */

    char err[256] = "";
    int rc = config_parse_item(it, value, err, sizeof(err));
    if (rc == 0) {
        switch (it->type) {
        case CONFIG_INT:
            assert((double)int_out >= it->min && (double)int_out <= it->max);
            break;
        case CONFIG_DOUBLE:
            assert(isfinite(double_out) && double_out >= it->min && double_out <= it->max);
            break;
        case CONFIG_STRING:
        case CONFIG_ENUM:
            assert(strcmp(*(char **)it->out, value) == 0);
            break;
        case CONFIG_BOOL:
            break;
        }
    } else {
        assert(rc == -1);
        assert(strstr(err, it->name) != NULL);
    }
    config_free(items, NITEMS);
    free(value);
    return 0;
}
