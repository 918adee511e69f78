#!/usr/bin/env bash
# ./hive demo: builds the suite, brings up the local stack and runs the
# optimizer's telemetry intake end to end on it (see scripts/skeleton_driver.py).
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
scripts/build.sh plain
./hive stack up
echo
./hive stack status
echo
for s in optimizer experiment-manager weight-recalibrator slo-adjuster model-monitor retrainer; do
    printf '  %-20s %s\n' "$s" "$(build/$s/$s --version)"
done
echo
exec "$HIVE_VENV/bin/python" scripts/skeleton_driver.py demo --binary build/optimizer/optimizer
