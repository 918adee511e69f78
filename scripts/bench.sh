#!/usr/bin/env bash
# ./hive bench: performance figures (never asserted in tests).
#   1. the optimizer's learning policies, pure module (bench_policy)
#   2. one table, in one run on the same records: a transactional Kafka pass-through
#      (the ceiling), the Python reference of the telemetry -> insight job, the
#      optimizer's intake; insight -> hypothesis; the optimizer's idle and peak RSS
#      (scripts/bench_figures.py)
#   3. the lookup and failover figures, where their scripts exist
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
scripts/build.sh release
if [[ -x build-release/bench/bench_policy ]]; then
    echo "== learning policies (pure module)"
    build-release/bench/bench_policy
    echo
fi
./hive stack up >/dev/null
echo "== telemetry intake and hypothesis engine through real Kafka and MongoDB"
"$HIVE_VENV/bin/python" scripts/bench_figures.py --binary build-release/optimizer/optimizer \
    --passthrough build-release/bench/bench_passthrough \
    --records "${BENCH_RECORDS:-20000}" --insights "${BENCH_INSIGHTS:-2000}"
for extra in scripts/bench_lookup.py scripts/bench_failover.py; do
    if [[ -f $extra ]]; then
        echo
        echo "== ${extra#scripts/}"
        "$HIVE_VENV/bin/python" "$extra"
    fi
done
