#include "cli.h"

#include "hive_version.h"

#include <stdio.h>
#include <string.h>

int cli_handle(const cli_spec_t *spec, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("%s %s\n", spec->name, HIVE_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: %s [--help] [--version]\n\n%s\n\nConfiguration (environment variables):\n",
                   spec->name, spec->summary);
            config_print_help(spec->config, spec->nconfig);
            return 0;
        }
        fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", spec->name, argv[i]);
        return 2;
    }
    return -1;
}
