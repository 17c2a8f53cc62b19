#!/bin/sh
# The CPU loss kernel's tests (tests/losses/test_kernel.py) beyond the default build:
#  0. src/unifocal/losses/_kernel.c compiled with -Wall -Wextra -Werror by gcc and clang (where found);
#  1. the kernel built with AddressSanitizer and UndefinedBehaviorSanitizer by gcc (any finding aborts);
#  2. the kernel built by every other C compiler found here (clang), plain.
# Each in a fresh cache directory, removed afterwards. Usage: sh scripts/check_kernel.sh [pytest options]
# (docs/losses.md, "The CPU kernel").
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for cc in gcc clang; do
    if command -v "$cc" >/dev/null 2>&1; then
        # with -march=native where the compiler takes it (as the kernel's own build does), else without
        native=-march=native
        "$cc" $native -x c -c -o /dev/null /dev/null 2>/dev/null || native=
        "$cc" -O3 $native -fopenmp-simd -fno-math-errno -fno-trapping-math -fPIC -Wall -Wextra -Werror \
            -c -o "$cache/warnings-$cc.o" src/unifocal/losses/_kernel.c
        echo "== $cc $native -Wall -Wextra -Werror: no warnings"
    fi
done
asan="$(gcc -print-file-name=libasan.so 2>/dev/null || true)"
ubsan="$(gcc -print-file-name=libubsan.so 2>/dev/null || true)"
if ! command -v gcc >/dev/null 2>&1; then
    echo "== gcc not found: no sanitizer build"
elif [ ! -e "$asan" ] || [ ! -e "$ubsan" ]; then
    echo "== gcc's sanitizer runtimes (libasan, libubsan) are not installed: no sanitizer build" >&2
    exit 1
else
    echo "== gcc with AddressSanitizer + UndefinedBehaviorSanitizer: $(gcc --version | head -n 1)"
    LD_PRELOAD="$asan:$ubsan" \
        ASAN_OPTIONS=detect_leaks=0 UNIFOCAL_CACHE_DIR="$cache/sanitizers" CC=gcc \
        "$PY" -m pytest -q -p no:cacheprovider -p tests.kernel_sanitizers tests/losses/test_kernel.py "$@"
fi
for cc in clang; do
    if command -v "$cc" >/dev/null 2>&1; then
        echo "== $cc: $("$cc" --version | head -n 1)"
        UNIFOCAL_CACHE_DIR="$cache/$cc" CC="$cc" "$PY" -m pytest -q -p no:cacheprovider tests/losses/test_kernel.py "$@"
        UNIFOCAL_CACHE_DIR="$cache/$cc" CC="$cc" "$PY" -c \
            "from unifocal.losses import kernel_status as k; s = k(); assert s.available and '$cc' in s.reason, s; print(s.reason)"
    else
        echo "== $cc not found: skipped"
    fi
done
