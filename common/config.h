/* config: typed environment variables with defaults, validated at start.
 *
 * A service describes its settings as a table of config_item_t and calls
 * config_load() once. Each item names the variable, its type, its default (as
 * text, parsed like the environment would be) and its accepted range. A value
 * that does not parse or is out of range makes config_load() fail with a
 * message naming the variable, the value and what is accepted; the service
 * prints it and exits non-zero.
 */
#ifndef HIVE_CONFIG_H
#define HIVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    CONFIG_STRING, /* out: char ** (owned by the config, freed by config_free); empty
                      only allowed when the default is "" (an optional setting) */
    CONFIG_INT,    /* out: long *; min/max inclusive */
    CONFIG_DOUBLE, /* out: double *; min/max inclusive */
    CONFIG_BOOL,   /* out: bool *; accepts true/false/1/0/yes/no */
    CONFIG_ENUM,   /* out: char **; value must be one of `choices` ("a|b|c") */
} config_type_t;

typedef struct {
    const char *name; /* environment variable, e.g. "LEARNING_RATE" */
    config_type_t type;
    const char *def;     /* default as text; NULL = required (string) or empty */
    double min, max;     /* accepted range for INT and DOUBLE */
    const char *choices; /* for ENUM: "a|b|c" */
    void *out;           /* where the parsed value goes (see config_type_t) */
    const char *doc;     /* one line for --help */
} config_item_t;

/* Reads every item from the environment (or its default) into its `out`.
 * Returns 0, or -1 with a message in `err` (NUL-terminated) for the first
 * invalid item; on failure nothing needs freeing beyond config_free(). */
int config_load(const config_item_t *items, size_t n, char *err, size_t errlen);

/* Frees the strings config_load() stored for these items and sets them NULL. */
void config_free(const config_item_t *items, size_t n);

/* Prints the table for --help to stdout: per item, "NAME  doc" and then
 * "default X; <accepted range>". */
void config_print_help(const config_item_t *items, size_t n);
/* The same, to `out`. */
void config_fprint_help(FILE *out, const config_item_t *items, size_t n);

/* Parses one value as `it` would (exposed for tests and fuzzing). Writes the
 * result to it->out. Returns 0 or -1 with a message in `err`. */
int config_parse_item(const config_item_t *it, const char *value, char *err, size_t errlen);

#endif
