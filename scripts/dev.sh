#!/bin/sh
# The development environment of unifocal, defined in this one place: `make demo`, `make test` and
# `make venv` call this script, and so does step 1 of .ci/run (`sh scripts/dev.sh install .venv-ci`).
# Without make, the same commands:
#
#   sh scripts/dev.sh demo [ARGS]     .venv (created or updated if needed), then `unifocal demo ARGS`
#                                     on the built-in phantom; prints where the run folder, figure and
#                                     predictions are (DEMO_DIR, default unifocal-demo)
#   sh scripts/dev.sh test [ARGS]     .venv likewise, then the README's test command `python -m pytest -q ARGS`
#   sh scripts/dev.sh install [DIR]   create DIR (default .venv) if missing and install into it, unless
#                                     it already holds this install
#
# The install: a virtual environment with an up-to-date pip, then torch first (so that the local CPU
# build is taken), unifocal in editable mode with the extras all and dev, and jax (the Keras tests'
# second backend), each under constraints/ci.txt. A stamp file in the environment records a hash of
# pyproject.toml, constraints/ci.txt and these steps; while they are unchanged nothing is reinstalled.
#
# Needs python3 >= 3.10 (PYTHON=/path/to/python3.X picks another interpreter) and a POSIX shell.
set -eu
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP=.unifocal-dev-install
# change this line whenever the install steps below change: every environment is then reinstalled
STEPS="v1: pip upgrade; torch; -e .[all,dev]; jax; each -c constraints/ci.txt"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "$PYTHON not found: install Python >= 3.10 (python.org or your package manager), or run again with PYTHON=/path/to/python3.X"
    ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
        || die "$PYTHON does not run: install Python >= 3.10, or run again with PYTHON=/path/to/python3.X"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "unifocal needs Python >= 3.10 but $PYTHON is $ver: install a newer Python and run again with PYTHON=python3.12 (for example)"
}

install_key() {  # what the stamp records: this install of these files
    "$PYTHON" -c '
import hashlib, sys
h = hashlib.sha256(sys.argv[1].encode())
for f in sys.argv[2:]:
    h.update(open(f, "rb").read())
print(h.hexdigest())' "$STEPS" pyproject.toml constraints/ci.txt
}

cmd_install() {  # cmd_install [DIR]
    dir="${1:-$VENV}"
    check_python
    key="$(install_key)"
    if [ -f "$dir/$STAMP" ] && [ "$(cat "$dir/$STAMP")" = "$key" ] && "$dir/bin/python" -c '' 2>/dev/null; then
        say "$dir: up to date (pyproject.toml and constraints/ci.txt unchanged since its install)"
        return 0
    fi
    if ! "$dir/bin/python" -c '' 2>/dev/null; then
        say "creating $dir with $PYTHON ($ver)"
        "$PYTHON" -m venv --clear "$dir" \
            || die "$PYTHON could not create a virtual environment: on Debian/Ubuntu install python3-venv (sudo apt install python3-venv), then run again"
        "$dir/bin/python" -m pip install -q --upgrade pip
    fi
    rm -f "$dir/$STAMP"
    say "installing into $dir (a few minutes, once): torch, then unifocal[all,dev] (editable), then jax, at the versions of constraints/ci.txt"
    "$dir/bin/python" -m pip install -q -c constraints/ci.txt torch
    "$dir/bin/python" -m pip install -q -c constraints/ci.txt -e ".[all,dev]"
    "$dir/bin/python" -m pip install -q -c constraints/ci.txt jax
    say "$key" > "$dir/$STAMP"
    say "$dir: installed"
}

cmd_demo() {
    cmd_install "$VENV"
    out="${DEMO_DIR:-unifocal-demo}"
    "$VENV/bin/unifocal" demo -o "$out" "$@"
    out="$(cd "$out" && pwd)"
    say ""
    say "run folder:  $out"
    [ -f "$out/learning_curves.png" ] && say "figure:      $out/learning_curves.png"
    [ -d "$out/predictions" ] && say "predictions: $out/predictions/"
    return 0
}

cmd_test() {
    cmd_install "$VENV"
    # the real-data tests read UNIFOCAL_DATA; unset, it defaults as in .ci/run
    UNIFOCAL_DATA="${UNIFOCAL_DATA:-$(cd .. && pwd)/shared/data}"
    export UNIFOCAL_DATA
    [ -d "$UNIFOCAL_DATA" ] \
        || say "note: no data folder at UNIFOCAL_DATA=$UNIFOCAL_DATA: the real-data tests are skipped (set UNIFOCAL_DATA to the folder holding BUSI/ and MSD_Task04_Hippocampus/)"
    PATH="$PWD/$VENV/bin:$PATH"
    VIRTUAL_ENV="$PWD/$VENV"
    export PATH VIRTUAL_ENV
    exec "$VENV/bin/python" -m pytest -q "$@"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    demo) cmd_demo "$@" ;;
    test) cmd_test "$@" ;;
    install) [ $# -le 1 ] || die "usage: sh scripts/dev.sh install [DIR]"; cmd_install "$@" ;;
    *) die "usage: sh scripts/dev.sh demo|test|install [ARGS] (see the comment at the top of scripts/dev.sh)" ;;
esac
