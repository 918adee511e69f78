/* slo-adjuster: Adjusts Orchestrator SLO targets within the safety bounds and error budget: consumes
 * optimization.commands, publishes orchestrator.slos and optimization.applied.
 *
 * The service's logic is not written yet: the binary answers --help and
 * --version and refuses to start, so nobody deploys it by mistake.
 */
#include "cli.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    const cli_spec_t spec = {
        .name = "slo-adjuster",
        .summary = "Adjusts Orchestrator SLO targets within the safety bounds and error budget: consumes "
                   "optimization.commands, publishes orchestrator.slos and optimization.applied.\n\nSTATUS: "
                   "the logic of this service is not written yet; starting it exits with status 3.",
    };
    int rc = cli_handle(&spec, argc, argv);
    if (rc >= 0) {
        return rc;
    }
    fprintf(stderr, "slo-adjuster: the logic of this service is not written yet; refusing to start\n");
    return 3;
}
