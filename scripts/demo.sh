#!/usr/bin/env bash
# ./hive demo [--plot [FILE.html]] [--duration S]: builds the suite, brings up the local stack
# (idempotent: a running stack is reused, never restarted) and runs the closed loop of
# scripts/demo_loop.py: the six services on their own run-tagged topics and databases, the
# Hive simulator (tests/sim/hive_sim.py), a narration and the summary table.
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
args=()
while (($#)); do
    case $1 in
        --plot)
            if [[ ${2:-} == *.html ]]; then args+=(--plot "$2"); shift; else args+=(--plot "$HIVE_ROOT/.hive/demo/report.html"); fi ;;
        *) args+=("$1") ;;
    esac
    shift
done
[[ ${HIVE_DEMO_NO_BUILD:-} == 1 ]] || scripts/build.sh plain
./hive stack up
echo
for s in optimizer experiment-manager weight-recalibrator slo-adjuster model-monitor retrainer; do
    printf '  %-20s %s\n' "$s" "$(build/$s/$s --version 2>/dev/null || echo 'not built')"
done
echo
exec "$HIVE_VENV/bin/python" scripts/demo_loop.py "${args[@]}"
