/* cli: the command line every service binary shares.
 *
 * Services are configured by environment variables only; the command line
 * answers --help (description plus the config table) and --version.
 */
#ifndef HIVE_CLI_H
#define HIVE_CLI_H

#include <stdio.h>

#include "config.h"

typedef struct {
    const char *name;    /* binary name, e.g. "optimizer" */
    const char *summary; /* one paragraph: what the service does */
    const config_item_t *config;
    size_t nconfig;
    const char *version; /* printed by --version; NULL: the suite's version (HIVE_VERSION) */
} cli_spec_t;

/* Handles argv. Returns -1 when the service should go on starting, or an exit
 * status (0 after --help/--version, 2 after an unknown argument) when main()
 * should return it at once. */
int cli_handle(const cli_spec_t *spec, int argc, char **argv);

/* Writes what --help prints (usage, summary, the config table with defaults
 * and ranges) to `out`. */
void cli_print_help(const cli_spec_t *spec, FILE *out);

#endif
