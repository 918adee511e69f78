#!/usr/bin/env bash
# ./hive chaos [--duration S] [--kills N] [--outage S]: the closed loop under faults on a
# PRIVATE stack (scripts/chaos.py); the shared stack is only read for MLflow.
set -euo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
[[ ${HIVE_DEMO_NO_BUILD:-} == 1 ]] || scripts/build.sh plain
exec "$HIVE_VENV/bin/python" scripts/chaos.py "$@"
