#!/usr/bin/env bash
# Builds the suite. Usage: scripts/build.sh [plain|asan|release|all]  (default: plain and asan)
#   plain   build/          debugoptimized, warnings as errors
#   asan    build-asan/     the same with ASan + UBSan (what the tests run)
#   release build-release/  -O3, what ./hive bench measures
set -euo pipefail
cd "${HIVE_ROOT:-$(dirname "$0")/..}"

build_one() { # dir, meson options...
    local dir=$1; shift
    if [[ ! -f $dir/build.ninja ]]; then
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"   # print the errors on failure
    echo "built $dir"
}

case "${1:-default}" in
    plain) build_one build ;;
    asan) build_one build-asan -Db_sanitize=address,undefined -Db_lundef=false ;;
    release) build_one build-release --buildtype=release ;;
    default) build_one build; build_one build-asan -Db_sanitize=address,undefined -Db_lundef=false ;;
    all) build_one build; build_one build-asan -Db_sanitize=address,undefined -Db_lundef=false
         build_one build-release --buildtype=release ;;
    *) echo "usage: scripts/build.sh [plain|asan|release|all]" >&2; exit 2 ;;
esac
