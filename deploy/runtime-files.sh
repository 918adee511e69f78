#!/bin/sh
# runtime-files.sh OUT PROGRAM...: copies each PROGRAM into OUT/usr/local/bin (curl into
# OUT/usr/bin) and every shared library they load, except glibc's own, to the path the
# dynamic loader found it under /usr (Debian 12 merges /lib into /usr/lib). deploy/Dockerfile
# builds its runtime stage from OUT; tests/integration/test_deploy.py runs the programs in a
# chroot of OUT plus glibc to show that nothing is missing.
set -eu
out=$1
shift
mkdir -p "$out/usr/local/bin" "$out/usr/bin"
for p in "$@"; do
    case ${p##*/} in
        curl) install -m 0755 "$p" "$out/usr/bin/curl" ;;
        *) install -m 0755 "$p" "$out/usr/local/bin/" ;;
    esac
done
ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do
        case $lib in
            /usr/*) dst=$out$lib ;;
            *) dst=$out/usr$lib ;;
        esac
        install -D -m 0644 "$(readlink -f "$lib")" "$dst"
    done
