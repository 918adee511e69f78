#!/usr/bin/env bash
# ./hive bench: performance figures (never asserted in tests).
#   1. the optimizer's learning policies, pure module (bench_policy)
#   2. the telemetry intake through real Kafka and MongoDB: records/s, RSS idle and peak
#   3. the hypothesis engine through real Kafka and MongoDB: insights/s, RSS under load
#   4. failover: SIGKILL and restart with the same transactional id, time to the first output
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
scripts/build.sh release
if [[ -x build-release/bench/bench_policy ]]; then
    echo "== learning policies (pure module)"
    build-release/bench/bench_policy
    echo
fi
./hive stack up >/dev/null
echo "== telemetry intake end to end"
"$HIVE_VENV/bin/python" scripts/skeleton_driver.py bench --binary build-release/optimizer/optimizer \
    --records "${BENCH_RECORDS:-20000}"
echo
echo "== hypothesis engine end to end"
"$HIVE_VENV/bin/python" scripts/skeleton_driver.py bench-insights --binary build-release/optimizer/optimizer \
    --records "${BENCH_INSIGHTS:-2000}"
echo
echo "== failover after SIGKILL (same transactional id, static membership)"
"$HIVE_VENV/bin/python" scripts/bench_failover.py --binary build-release/optimizer/optimizer \
    --runs "${BENCH_FAILOVER_RUNS:-5}"
