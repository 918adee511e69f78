#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void range_text(const config_item_t *it, char *buf, size_t len)
{
    switch (it->type) {
    case CONFIG_INT:
        snprintf(buf, len, "an integer in [%.0f, %.0f]", it->min, it->max);
        break;
    case CONFIG_DOUBLE:
        snprintf(buf, len, "a number in [%g, %g]", it->min, it->max);
        break;
    case CONFIG_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case CONFIG_ENUM:
        snprintf(buf, len, "one of %s", it->choices ? it->choices : "");
        break;
    case CONFIG_STRING:
        snprintf(buf, len, it->def && !*it->def ? "a string (empty: unset)" : "a non-empty string");
        break;
    }
}

static int fail(const config_item_t *it, const char *value, char *err, size_t errlen)
{
    char range[160];
    range_text(it, range, sizeof(range));
    snprintf(err, errlen, "invalid configuration: %s=\"%s\": expected %s", it->name, value ? value : "",
             range);
    return -1;
}

/* True when `value` is exactly one of the '|'-separated words of `choices`. */
static bool enum_has(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && strncmp(p, value, n) == 0) {
            return true;
        }
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

int config_parse_item(const config_item_t *it, const char *value, char *err, size_t errlen)
{
    char *end = NULL;
    switch (it->type) {
    case CONFIG_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || (double)v < it->min || (double)v > it->max) {
            return fail(it, value, err, errlen);
        }
        *(long *)it->out = v;
        return 0;
    }
    case CONFIG_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || v < it->min || v > it->max) {
            return fail(it, value, err, errlen);
        }
        *(double *)it->out = v;
        return 0;
    }
    case CONFIG_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes")) {
            *(bool *)it->out = true;
        } else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no")) {
            *(bool *)it->out = false;
        } else {
            return fail(it, value, err, errlen);
        }
        return 0;
    case CONFIG_ENUM:
        if (!enum_has(it->choices, value)) {
            return fail(it, value, err, errlen);
        }
        __attribute__((fallthrough)); /* stored like a string */
    case CONFIG_STRING: {
        bool optional = it->def && !*it->def;
        if (it->type == CONFIG_STRING && *value == '\0' && !optional) {
            return fail(it, value, err, errlen);
        }
        char *copy = strdup(value);
        if (!copy) {
            snprintf(err, errlen, "out of memory reading %s", it->name);
            return -1;
        }
        free(*(char **)it->out);
        *(char **)it->out = copy;
        return 0;
    }
    }
    return fail(it, value, err, errlen);
}

int config_load(const config_item_t *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *value = getenv(items[i].name);
        if (!value) {
            value = items[i].def;
        }
        if (!value) {
            if (items[i].type == CONFIG_STRING) {
                snprintf(err, errlen, "invalid configuration: %s is required", items[i].name);
                return -1;
            }
            continue;
        }
        if (config_parse_item(&items[i], value, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

void config_free(const config_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].type == CONFIG_STRING || items[i].type == CONFIG_ENUM) {
            free(*(char **)items[i].out);
            *(char **)items[i].out = NULL;
        }
    }
}

void config_fprint_help(FILE *out, const config_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char range[160];
        range_text(&items[i], range, sizeof(range));
        const char *def = !items[i].def ? "(required)" : *items[i].def ? items[i].def : "(empty)";
        fprintf(out, "  %-32s %s\n  %-32s default %s; %s\n", items[i].name, items[i].doc ? items[i].doc : "",
                "", def, range);
    }
}

void config_print_help(const config_item_t *items, size_t n)
{
    config_fprint_help(stdout, items, n);
}
