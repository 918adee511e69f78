#include "cli.h"

#include "hive_version.h"

#include <string.h>

void cli_print_help(const cli_spec_t *spec, FILE *out)
{
    fprintf(out, "Usage: %s [--help] [--version]\n\n%s\n\nConfiguration (environment variables):\n",
            spec->name, spec->summary ? spec->summary : "");
    config_fprint_help(out, spec->config, spec->nconfig);
}

int cli_handle(const cli_spec_t *spec, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("%s %s\n", spec->name, spec->version ? spec->version : HIVE_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_print_help(spec, stdout);
            return 0;
        }
        fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", spec->name, argv[i]);
        return 2;
    }
    return -1;
}
