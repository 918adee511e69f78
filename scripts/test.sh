#!/usr/bin/env bash
# Runs the tests. Usage: scripts/test.sh [unit|integration|all]  (default all)
#   unit         C unit suites (cmocka) on the ASan+UBSan build, and again under valgrind;
#                the lint suite (clang-format, every public header compiles alone)
#   integration  the local stack is brought up; C integration suites on the ASan+UBSan
#                build, then the Python suites (pytest) against the real services
# Ends with the line "N passed, N failed" over every suite run; exits non-zero on any failure.
set -uo pipefail
cd "${HIVE_ROOT:?run through ./hive}"
what=${1:-all}
case "$what" in unit|integration|all) ;; *) echo "usage: ./hive test [unit|integration|all]" >&2; exit 2 ;; esac

results=.hive/test-results
rm -rf "$results"; mkdir -p "$results"
summary=()

if ! scripts/build.sh; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export CMOCKA_MESSAGE_OUTPUT=stdout

run_meson() { # label, build dir, meson test args...
    local label=$1 dir=$2; shift 2
    echo "== $label"
    rm -f "$dir/meson-logs/$label".*json
    meson test -C "$dir" --print-errorlogs --logbase "$label" "$@" | grep -vE '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout):|^Full log' || true
    # meson appends the wrapper's name to the log name when --wrapper is given
    cp "$(ls "$dir/meson-logs/$label"*.json | head -n 1)" "$results/$label.json" 2>/dev/null
    summary+=("$label=$results/$label.json")
}

if [[ $what == unit || $what == all ]]; then
    run_meson unit build-asan --suite unit
    run_meson valgrind build --suite unit --num-processes 2 \
        --wrapper 'valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite' \
        --timeout-multiplier 4
    run_meson lint build --suite lint
fi

if [[ $what == integration || $what == all ]]; then
    if ! ./hive stack up; then
        echo "the local stack did not come up"
        python3 scripts/summarize.py "${summary[@]}" stack=/nonexistent
        exit 1
    fi
    run_meson integration build-asan --suite integration
    echo "== pytest"
    export OPTIMIZER_BIN="$HIVE_ROOT/build-asan/optimizer/optimizer"
    dirs=()
    for d in tests/integration tests/e2e; do
        compgen -G "$d/test_*.py" >/dev/null && dirs+=("$d")
    done
    "$HIVE_VENV/bin/python" -m pytest -q -p no:cacheprovider "${dirs[@]}" \
        --junitxml="$results/pytest.xml" -o junit_family=xunit2 2>&1 | tail -n 40
    rc=${PIPESTATUS[0]}
    # 0: all passed, 1: some failed (counted from the XML); anything else means
    # pytest itself could not run the suites.
    if [[ $rc -ne 0 && $rc -ne 1 ]]; then
        echo "pytest exited with $rc: the Python suites did not run"
        rm -f "$results/pytest.xml"
    fi
    summary+=("pytest=$results/pytest.xml")
fi

echo "== summary"
python3 scripts/summarize.py "${summary[@]}" | tee "$results/summary.txt"
exit "${PIPESTATUS[0]}"
