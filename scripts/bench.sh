#!/usr/bin/env bash
# ./hive bench: performance figures (never asserted in tests).
#   1. the optimizer's learning policies, pure module (bench_policy); the experiment
#      manager's A/A false-positive rate and A/B power under repeated looks (bench_experiments),
#      the weight-recalibrator's projection time per call (bench_projection); the
#      model-monitor's drift check on 10^5 and 10^6 rows x 20 features beside scipy on the
#      same data (bench_drift + bench/bench_drift_ref.py)
#   2. one table, in one run on the same records: a transactional Kafka pass-through
#      (the ceiling), the Python reference of the telemetry -> insight job, the
#      optimizer's intake; insight -> hypothesis; the optimizer's idle and peak RSS
#      (scripts/bench_figures.py)
#   3. lookup times from 10^3 to 10^5 documents; failover time after SIGKILL
#   4. the appliers: commands applied per second end to end, RSS (bench/bench_appliers.py)
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
scripts/build.sh release
if [[ -x build-release/bench/bench_policy ]]; then
    echo "== learning policies (pure module)"
    build-release/bench/bench_policy
    echo
fi
if [[ -x build-release/bench/bench_experiments ]]; then
    echo "== experiment statistics under repeated looks: A/A false positives, A/B power (pure)"
    build-release/bench/bench_experiments "${BENCH_EXPERIMENTS:-1000}"
    echo
fi
if [[ -x build-release/bench/bench_projection ]]; then
    echo "== weight-recalibrator: exact projection onto the capped simplex (pure)"
    build-release/bench/bench_projection "${BENCH_PROJECTIONS:-1000000}"
    echo
fi
if [[ -x build-release/bench/bench_drift ]]; then
    echo "== model-monitor drift check, rows x 20 features, beside scipy on the same data (pure)"
    "$HIVE_VENV/bin/python" bench/bench_drift_ref.py --binary build-release/bench/bench_drift \
        --rows "${BENCH_DRIFT_ROWS:-100000,1000000}"
    echo
fi
./hive stack up >/dev/null
echo "== telemetry intake and hypothesis engine through real Kafka and MongoDB"
"$HIVE_VENV/bin/python" scripts/bench_figures.py --binary build-release/optimizer/optimizer \
    --passthrough build-release/bench/bench_passthrough \
    --records "${BENCH_RECORDS:-20000}" --insights "${BENCH_INSIGHTS:-2000}"
echo
echo "== lookup time by _id and by the optimizer's filters, 10^3 to 10^5 documents"
"$HIVE_VENV/bin/python" scripts/bench_lookup.py
echo
echo "== failover after SIGKILL (same transactional id, static membership)"
"$HIVE_VENV/bin/python" scripts/bench_failover.py --binary build-release/optimizer/optimizer \
    --runs "${BENCH_FAILOVER_RUNS:-5}"
echo
echo "== the appliers: 1,000 commands, two replicas, applied end to end (weight-recalibrator, slo-adjuster)"
"$HIVE_VENV/bin/python" bench/bench_appliers.py --bin-dir build-release \
    --commands "${BENCH_APPLIER_COMMANDS:-1000}" --replicas 2
